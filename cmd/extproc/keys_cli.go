package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"strings"
	"time"

	"switchyard/keys"
)

const keysUsage = `usage: extproc keys COMMAND [flags] [NAME]
  list                         list the keys (never their secrets)
  show NAME                    show one key
  create NAME [key flags]      create a key; its secret is printed once
  update NAME [key flags]      change the flags given, leave the others
  rotate NAME                  replace the key's secret; the old one stops at once
  disable NAME | enable NAME   refuse the key (401) / accept it again
  revoke NAME                  delete the key
  teams                        list the teams and their member keys
  team-create NAME [-rpm N] [-tpm N] [-tpd N] [-usd-day D] [-usd-month D]
  team-update NAME [-rpm N] [-tpm N] [-tpd N] [-usd-day D] [-usd-month D]
  team-delete NAME             delete a team without keys
key flags: -team T -models a,b* -mcp-tools github/search_*,db/* -rpm N -tpm N -tpd N -usd-day D -usd-month D -expires 720h|2027-01-01T00:00:00Z
common flags: -admin URL (default $SWITCHYARD_ADMIN_URL or http://127.0.0.1:9090),
  credential from $SWITCHYARD_ADMIN_KEY or -admin-key-file FILE
`

type keysFlags struct {
	admin, adminKeyFile string
	team, models        string
	mcpTools            string
	lim                 keys.Limits
	expires             string
	set                 map[string]bool // the flags given
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	cmd, args := args[0], args[1:]
	var f keysFlags
	fs := flag.NewFlagSet("extproc keys "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("SWITCHYARD_ADMIN_URL")
	if def == "" {
		def = "http://127.0.0.1:9090"
	}
	fs.StringVar(&f.admin, "admin", def, "extproc's admin address")
	fs.StringVar(&f.adminKeyFile, "admin-key-file", "", "file holding the admin credential (default: $"+DefaultAdminKeyEnv+")")
	fs.StringVar(&f.team, "team", "", "team the key belongs to (\"\" with update: none)")
	fs.StringVar(&f.models, "models", "", "comma-separated model patterns the key may use (empty: all)")
	fs.StringVar(&f.mcpTools, "mcp-tools", "", "comma-separated server/tool patterns of MCP tools the key may call (empty: all)")
	fs.Int64Var(&f.lim.RequestsPerMinute, "rpm", 0, "requests per minute (0: no budget)")
	fs.Int64Var(&f.lim.TokensPerMinute, "tpm", 0, "tokens per minute (0: no budget)")
	fs.Int64Var(&f.lim.TokensPerDay, "tpd", 0, "tokens per UTC day (0: no budget)")
	fs.Float64Var(&f.lim.USDPerDay, "usd-day", 0, "US dollars per UTC day (0: no budget)")
	fs.Float64Var(&f.lim.USDPerMonth, "usd-month", 0, "US dollars per calendar month, UTC (0: no budget)")
	fs.StringVar(&f.expires, "expires", "", "when the key stops working: a duration from now or an RFC 3339 time")
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if cmd == "update" || cmd == "team-update" {
		// The API replaces a limits object whole: start from the current
		// one, so that -rpm alone leaves the token budgets as they are.
		if err := f.currentLimits(ctx, cmd, name); err != nil {
			return err
		}
	}
	method, path, body, err := f.request(cmd, name)
	if err != nil {
		return err
	}
	return f.call(ctx, method, path, body, stdout)
}

// currentLimits fills the limit flags not given from the key's or team's
// current limits.
func (f *keysFlags) currentLimits(ctx context.Context, cmd, name string) error {
	if name == "" || !f.limitsSet() {
		return nil
	}
	var cur struct {
		Key   *keys.KeyView `json:"key"`
		Teams []keys.TeamView
	}
	path := "/admin/v1/keys/" + name
	if cmd == "team-update" {
		path = "/admin/v1/teams"
	}
	var out bytes.Buffer
	if err := f.call(ctx, "GET", path, nil, &out); err != nil {
		return err
	}
	if err := json.Unmarshal(out.Bytes(), &cur); err != nil {
		return fmt.Errorf("reading the current limits: %w", err)
	}
	var l keys.Limits
	switch {
	case cur.Key != nil:
		l = cur.Key.Limits
	default:
		for _, t := range cur.Teams {
			if t.Name == name {
				l = t.Limits
			}
		}
	}
	given := f.lim
	f.lim = l
	if f.set["rpm"] {
		f.lim.RequestsPerMinute = given.RequestsPerMinute
	}
	if f.set["tpm"] {
		f.lim.TokensPerMinute = given.TokensPerMinute
	}
	if f.set["tpd"] {
		f.lim.TokensPerDay = given.TokensPerDay
	}
	if f.set["usd-day"] {
		f.lim.USDPerDay = given.USDPerDay
	}
	if f.set["usd-month"] {
		f.lim.USDPerMonth = given.USDPerMonth
	}
	return nil
}

// limitsSet says whether a limit flag was given.
func (f *keysFlags) limitsSet() bool {
	return f.set["rpm"] || f.set["tpm"] || f.set["tpd"] || f.set["usd-day"] || f.set["usd-month"]
}

// request maps a command to its admin API call.
func (f *keysFlags) request(cmd, name string) (method, path string, body any, err error) {
	needName := func() error {
		if name == "" {
			return fmt.Errorf("extproc keys %s needs a NAME", cmd)
		}
		return nil
	}
	k := "/admin/v1/keys/" + name
	switch cmd {
	case "list":
		return "GET", "/admin/v1/keys", nil, nil
	case "teams":
		return "GET", "/admin/v1/teams", nil, nil
	case "show":
		return "GET", k, nil, needName()
	case "rotate", "disable", "enable":
		return "POST", k + "/" + cmd, nil, needName()
	case "revoke":
		return "DELETE", k, nil, needName()
	case "create", "update":
		if err := needName(); err != nil {
			return "", "", nil, err
		}
		fields, err := f.keyFields()
		if err != nil {
			return "", "", nil, err
		}
		if cmd == "update" {
			return "PATCH", k, fields, nil
		}
		fields["name"] = name
		return "POST", "/admin/v1/keys", fields, nil
	case "team-create":
		return "POST", "/admin/v1/teams", map[string]any{"name": name, "limits": f.limits()}, needName()
	case "team-update":
		return "PATCH", "/admin/v1/teams/" + name, map[string]any{"limits": f.limits()}, needName()
	case "team-delete":
		return "DELETE", "/admin/v1/teams/" + name, nil, needName()
	}
	return "", "", nil, fmt.Errorf("unknown command %q\n%s", cmd, keysUsage)
}

func (f *keysFlags) limits() keys.Limits { return f.lim }

// list splits a comma-separated flag, dropping empty entries.
func list(s string) []string {
	out := []string{}
	for _, m := range strings.Split(s, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

func (f *keysFlags) keyFields() (map[string]any, error) {
	out := map[string]any{}
	if f.set["team"] {
		out["team"] = f.team
	}
	if f.set["models"] {
		out["models"] = list(f.models)
	}
	if f.set["mcp-tools"] {
		out["mcp_tools"] = list(f.mcpTools)
	}
	if f.limitsSet() {
		out["limits"] = f.limits()
	}
	if f.set["expires"] {
		t, err := time.Parse(time.RFC3339, f.expires)
		if err != nil {
			d, derr := time.ParseDuration(f.expires)
			if derr != nil {
				return nil, fmt.Errorf("-expires: %q is neither a duration nor an RFC 3339 time", f.expires)
			}
			t = time.Now().Add(d)
		}
		out["expires_at"] = t.UTC()
	}
	return out, nil
}

func (f *keysFlags) credential() (string, error) {
	if f.adminKeyFile != "" {
		b, err := os.ReadFile(f.adminKeyFile)
		if err != nil {
			return "", fmt.Errorf("reading -admin-key-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if v := strings.TrimSpace(os.Getenv(DefaultAdminKeyEnv)); v != "" {
		return v, nil
	}
	return "", errors.New("no admin credential: set $" + DefaultAdminKeyEnv + " or -admin-key-file")
}

// call sends one admin request and prints the JSON answer; an error answer
// becomes the command's error.
func (f *keysFlags) call(ctx context.Context, method, path string, body any, stdout io.Writer) error {
	cred, err := f.credential()
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	base := strings.TrimSuffix(f.admin, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set("Content-Type", "application/json")
	if u, err := user.Current(); err == nil {
		req.Header.Set(keys.ActorHeader, u.Username)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("calling the admin API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the admin API's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Message, Code string }
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s (%d %s)", e.Error.Message, resp.StatusCode, e.Error.Code)
		}
		return fmt.Errorf("admin API answered %s", resp.Status)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, raw, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(raw)
	}
	_, err = stdout.Write(pretty.Bytes())
	return err
}
