package loadtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/evanw/esbuild/pkg/api"
	"github.com/google/go-cmp/cmp"
)

// k6Scripts are the entry points and the names each must export (options
// and the scenarios' exec functions).
var k6Scripts = map[string][]string{
	"k6/chat.js":   {"chat", "options"},
	"k6/stream.js": {"options", "stream"},
	"k6/all.js":    {"chat", "options", "stream"},
}

// bundleK6 parses a k6 script and everything it imports, as k6 would load
// it, with k6's built-in modules left external. It returns the parse errors
// or the names the entry point exports.
func bundleK6(t *testing.T, entry string, stdin *api.StdinOptions) (errs []string, exports []string) {
	t.Helper()
	opts := api.BuildOptions{
		Bundle:   true,
		Write:    false,
		Metafile: true,
		Format:   api.FormatESModule,
		Platform: api.PlatformNeutral,
		// k6's JavaScript runtime supports ES2020 syntax; newer syntax
		// would fail there even if it parses here.
		Target:   api.ES2020,
		External: []string{"k6", "k6/*"},
		LogLevel: api.LogLevelSilent,
		Outdir:   t.TempDir(),
	}
	if stdin != nil {
		opts.Stdin = stdin
	} else {
		opts.EntryPoints = []string{entry}
	}
	res := api.Build(opts)
	for _, m := range res.Errors {
		loc := ""
		if m.Location != nil {
			loc = m.Location.File + ":" + strconv.Itoa(m.Location.Line) + ": "
		}
		errs = append(errs, loc+m.Text)
	}
	if len(errs) > 0 {
		return errs, nil
	}
	var meta struct {
		Outputs map[string]struct {
			Exports []string `json:"exports"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(res.Metafile), &meta); err != nil {
		t.Fatalf("decoding esbuild metafile: %v", err)
	}
	for _, o := range meta.Outputs {
		exports = append(exports, o.Exports...)
	}
	slices.Sort(exports)
	return nil, exports
}

func TestK6ScriptsParse(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("k6/*.js")
	if err != nil {
		t.Fatal(err)
	}
	// Every script in k6/ is either an entry point listed above or a
	// library imported by one; a new entry point must be listed.
	for _, f := range files {
		if _, ok := k6Scripts[f]; !ok && f != "k6/lib.js" {
			t.Errorf("%s is neither a known entry point nor lib.js; add it to k6Scripts", f)
		}
	}
	for path, want := range k6Scripts {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			errs, got := bundleK6(t, path, nil)
			if len(errs) > 0 {
				t.Fatalf("parsing %s:\n%s", path, strings.Join(errs, "\n"))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("exports (-want +got)\n%s", diff)
			}
		})
	}
}

// TestK6CheckCatchesBrokenScripts proves the check above can fail.
func TestK6CheckCatchesBrokenScripts(t *testing.T) {
	t.Parallel()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, src, wantErr string
	}{
		{
			name:    "syntax error",
			src:     "import http from 'k6/http';\nexport default function () {\n  http.get('http://x';\n}\n",
			wantErr: `Expected ")" but found ";"`,
		},
		{
			name:    "missing import",
			src:     "import { nope } from './k6/missing.js';\nexport default function () { nope(); }\n",
			wantErr: `Could not resolve "./k6/missing.js"`,
		},
		{
			name:    "name not exported by lib.js",
			src:     "import { NOT_THERE } from './k6/lib.js';\nexport default function () { NOT_THERE(); }\n",
			wantErr: `No matching export in "k6/lib.js" for import "NOT_THERE"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs, _ := bundleK6(t, "", &api.StdinOptions{Contents: tt.src, ResolveDir: dir, Sourcefile: "broken.js", Loader: api.LoaderJS})
			if len(errs) == 0 {
				t.Fatalf("broken script parsed without error")
			}
			if !strings.Contains(strings.Join(errs, "\n"), tt.wantErr) {
				t.Errorf("errors %q do not mention %q", errs, tt.wantErr)
			}
		})
	}
}
