package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"switchyard/keys"
)

// TestKeysCLI drives the CLI against the admin API of a file store.
func TestKeysCLI(t *testing.T) {
	s, err := keys.Open(context.Background(), keys.NewFile(filepath.Join(t.TempDir(), "keys.json")), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler(keys.AdminOptions{Credential: "cli-admin"}))
	defer srv.Close()
	t.Setenv(DefaultAdminKeyEnv, "cli-admin")
	keysCmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"keys"}, append(args, "-admin", srv.URL)...), &out, &out)
		return out.String(), err
	}
	if _, err := keysCmd("team-create", "ml", "-rpm", "10"); err != nil {
		t.Fatal(err)
	}
	out, err := keysCmd("create", "dev-1", "-team", "ml", "-models", "gpt-*, claude-*", "-tpd", "5000", "-expires", "720h")
	if err != nil {
		t.Fatal(err)
	}
	var created keys.Created
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Secret, keys.SecretPrefix) {
		t.Fatalf("create printed %q (%v)", out, err)
	}
	k := created.Key
	if k.Team != "ml" || len(k.Models) != 2 || k.Limits.TokensPerDay != 5000 || k.ExpiresAt == nil {
		t.Errorf("created %+v", k)
	}
	if _, err := keysCmd("update", "dev-1", "-rpm", "3"); err != nil {
		t.Fatal(err)
	}
	got := mustState(t, s).Keys["dev-1"]
	if got.Limits.RequestsPerMinute != 3 || got.Limits.TokensPerDay != 5000 || got.Team != "ml" || len(got.Models) != 2 {
		t.Errorf("update changed more than -rpm: %+v", got)
	}
	if _, err := keysCmd("update", "dev-1", "-mcp-tools", "github/search_*, db/*"); err != nil {
		t.Fatal(err)
	}
	if got := mustState(t, s).Keys["dev-1"].MCPTools; len(got) != 2 || got[1] != "db/*" {
		t.Errorf("update -mcp-tools: %q", got)
	}
	if _, err := keysCmd("update", "dev-1", "-usd-day", "2.5"); err != nil {
		t.Fatal(err)
	}
	if l := mustState(t, s).Keys["dev-1"].Limits; l.USDPerDay != 2.5 || l.RequestsPerMinute != 3 || l.TokensPerDay != 5000 {
		t.Errorf("update -usd-day: %+v", l)
	}
	if _, err := keysCmd("team-update", "ml", "-tpm", "100", "-usd-month", "300"); err != nil {
		t.Fatal(err)
	}
	if l := mustState(t, s).Teams["ml"].Limits; l.RequestsPerMinute != 10 || l.TokensPerMinute != 100 || l.USDPerMonth != 300 {
		t.Errorf("team-update -tpm changed the other limits: %+v", l)
	}
	if out, _ := keysCmd("list"); strings.Contains(out, created.Secret) || !strings.Contains(out, "dev-1") {
		t.Errorf("list = %s", out)
	}
	if _, err := keysCmd("create", "dev-1"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("duplicate create: %v", err)
	}
	if _, err := keysCmd("revoke", "dev-1"); err != nil {
		t.Fatal(err)
	}
	if len(mustState(t, s).Keys) != 0 {
		t.Error("revoke left the key")
	}
	t.Setenv(DefaultAdminKeyEnv, "wrong")
	if _, err := keysCmd("list"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong credential: %v", err)
	}
}

func mustState(t testing.TB, s *keys.Store) keys.State {
	t.Helper()
	st, err := s.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}
