package luahooks

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Check compiles and validates the scripts of dir exactly as a reload
// would, and returns their names in the order they run. Errors name the
// file and line.
func Check(dir string, files []string) ([]string, error) {
	sources, err := ReadDir(dir, files)
	if err != nil {
		return nil, err
	}
	cfg, err := Options{Dir: dir, Files: files}.config()
	if err != nil {
		return nil, err
	}
	s, err := buildSet(cfg, 0, sources)
	if err != nil {
		return nil, err
	}
	return s.Scripts(), nil
}

// Report is what a dry run of on_request hooks did to one request.
type Report struct {
	Scripts []string
	Result  Result
	// Err is the hook failure that would fail the request (fail_closed), or
	// nil.
	Err error
}

// NewSet validates sources exactly as a reload would and returns them as a
// Set, for a dry run. It registers no metrics.
func NewSet(sources []Source, opts Options) (*Set, error) {
	opts.Registerer = nil
	cfg, err := opts.config()
	if err != nil {
		return nil, err
	}
	return buildSet(cfg, 0, sources)
}

// WriteText prints the report for people: each change by script, then the
// merged result, then the error if any.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "scripts: %s\n", strings.Join(r.Scripts, ", "))
	b.WriteString("changes:\n")
	if len(r.Result.Changes) == 0 {
		b.WriteString("  (none)\n")
	}
	for _, c := range r.Result.Changes {
		fmt.Fprintf(&b, "  %s\n", c)
	}
	if r.Err == nil {
		b.WriteString("result:\n")
		writeResult(&b, r.Result)
	} else {
		fmt.Fprintf(&b, "error: %v\n", r.Err)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeResult(b *strings.Builder, res Result) {
	n := b.Len()
	if res.Reject != nil {
		fmt.Fprintf(b, "  reject: %d %s\n", res.Reject.Status, res.Reject.Message)
	}
	if res.Model != "" {
		fmt.Fprintf(b, "  model: %s\n", res.Model)
	}
	if res.Provider != "" {
		fmt.Fprintf(b, "  provider: %s\n", res.Provider)
	}
	if res.Route != "" {
		fmt.Fprintf(b, "  route: %s\n", res.Route)
	}
	for _, k := range slices.Sorted(maps.Keys(res.SetHeaders)) {
		fmt.Fprintf(b, "  set header %s: %s\n", k, res.SetHeaders[k])
	}
	for _, k := range res.RemoveHeaders {
		fmt.Fprintf(b, "  remove header %s\n", k)
	}
	for _, k := range slices.Sorted(maps.Keys(res.Tags)) {
		fmt.Fprintf(b, "  tag %s = %s\n", k, res.Tags[k])
	}
	if res.Body != nil {
		fmt.Fprintf(b, "  body: %s\n", res.Body)
	}
	if b.Len() == n {
		b.WriteString("  (no changes)\n")
	}
}
