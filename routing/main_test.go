package routing

import (
	"os"
	"testing"
)

// TestMain keeps the AWS default chain of Bedrock providers on this
// process's environment: static test keys, no shared files, and never the
// instance metadata service.
func TestMain(m *testing.M) {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDROUTINGTEST", "AWS_SECRET_ACCESS_KEY": "routing-test-secret",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	} {
		os.Setenv(k, v)
	}
	os.Exit(m.Run())
}
