package luahooks

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/gjson"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenCase is one testdata/golden/*.json file: example scripts (from
// hooks/examples) and a request; the .golden file next to it holds the
// dry-run report. (`extproc hooks test` runs the same scripts through the
// gateway's own plan; these cases test the hook engine alone.)
type goldenCase struct {
	Scripts   []string          `json:"scripts"`
	Path      string            `json:"path"`
	API       string            `json:"api"` // default openai
	Headers   map[string]string `json:"headers"`
	KeyName   string            `json:"key_name"`
	Providers []string          `json:"providers"`
	Routes    []string          `json:"routes"`
	Body      json.RawMessage   `json:"body"`
}

func TestGoldenExamples(t *testing.T) {
	t.Parallel()
	cases, err := filepath.Glob("testdata/golden/*.json")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	covered := map[string]bool{}
	for _, file := range cases {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			var gc goldenCase
			if err := dec.Decode(&gc); err != nil {
				t.Fatalf("decoding %s: %v", file, err)
			}
			if gc.Path == "" {
				gc.Path = "/v1/chat/completions"
			}
			if gc.API == "" {
				gc.API = "openai"
			}
			sources, err := ReadDir(filepath.Join("..", "hooks", "examples"), gc.Scripts)
			if err != nil {
				t.Fatal(err)
			}
			req := &Request{
				API: gc.API, Method: "POST", Path: gc.Path, Headers: lowerKeys(gc.Headers), Body: gc.Body,
				Model: gjson.GetBytes(gc.Body, "model").String(), KeyName: gc.KeyName, RequestID: "dry-run",
				IsProvider: func(n string) bool { return slices.Contains(gc.Providers, n) },
				IsRoute:    func(n string) bool { return slices.Contains(gc.Routes, n) },
			}
			var out bytes.Buffer
			set, err := NewSet(sources, Options{Timeout: 1e9})
			if err != nil {
				out.WriteString("invalid: " + err.Error() + "\n")
			} else {
				res, err := set.OnRequest(context.Background(), req)
				if err := (Report{Scripts: set.Scripts(), Result: res, Err: err}).WriteText(&out); err != nil {
					t.Fatal(err)
				}
			}
			golden := strings.TrimSuffix(file, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", golden, diff)
			}
		})
		var gc goldenCase
		if data, err := os.ReadFile(file); err == nil && json.Unmarshal(data, &gc) == nil {
			for _, s := range gc.Scripts {
				covered[s] = true
			}
		}
	}
	examples, _ := filepath.Glob(filepath.Join("..", "hooks", "examples", "*.lua"))
	for _, e := range examples {
		if !covered[filepath.Base(e)] {
			t.Errorf("example %s has no golden case", filepath.Base(e))
		}
	}
}

func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}
