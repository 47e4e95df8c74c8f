package bedrock

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestForRoleAssumesTheRole: a role's credentials are the ones STS hands
// out for AssumeRole of that role, asked with the default chain's keys;
// they are held (no request waits for STS) and shared by every config
// naming the same region, profile and role.
func TestForRoleAssumesTheRole(t *testing.T) {
	const role = "arn:aws:iam::123456789012:role/unit-test"
	calls := 0
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Form.Get("Action") != "AssumeRole" || r.Form.Get("RoleArn") != role || !strings.Contains(r.Header.Get("authorization"), "Credential=AKIDBASEUNIT/") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		calls++
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIAROLEUNIT</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>role-session</SessionToken><Expiration>%s</Expiration></Credentials>
<AssumedRoleUser><Arn>%s/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>`,
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339), role)
	}))
	defer sts.Close()
	dir := t.TempDir()
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "AKIDBASEUNIT", "AWS_SECRET_ACCESS_KEY": "base", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_ENDPOINT_URL_STS": sts.URL, "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none")} {
		t.Setenv(k, v)
	}
	c := ForRole("eu-west-3", "", role)
	got, err := c.Get()
	if err != nil || got.AccessKeyID != "ASIAROLEUNIT" || got.SessionToken != "role-session" {
		t.Fatalf("role credentials %v, %v", got.AccessKeyID, err)
	}
	if ForRole("eu-west-3", "", role) != c || For("eu-west-3", "") == c {
		t.Error("the role's credentials are not shared by the same role alone")
	}
	if calls != 1 {
		t.Errorf("STS was asked %d times, want once", calls)
	}
}
