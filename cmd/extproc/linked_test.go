package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLinkerDropsUnusedMethods: nothing extproc links looks a method up
// by name at run time (reflect's MethodByName, as text/template's Execute
// does). One such call makes the linker keep every exported method of
// every type that reaches an interface, all of go-control-plane's, Redis'
// and the cloud SDKs' included: about 70 % more code and tables for
// extproc to load and map (21.5 against 12.8 MB of text). The build flags
// are the Makefile's: without grpcnotrace, grpc links its request
// tracing, whose pages are templates.
func TestLinkerDropsUnusedMethods(t *testing.T) {
	cmd := exec.Command("go", "build", "-ldflags=-dumpdep", "-o", filepath.Join(t.TempDir(), "extproc"), ".")
	graph, err := cmd.CombinedOutput() // the linker writes the graph to stderr
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, graph[max(0, len(graph)-4000):])
	}
	if chain := reflectMethodCaller(graph); chain != nil {
		t.Errorf("the linker keeps every exported method: %s looks methods up by name, reached by\n\t%s",
			chain[0], strings.Join(chain[1:], "\n\t"))
	}
}

// reflectMethodCaller reads the linker's dependency graph ("caller ->
// callee" lines, "<ReflectMethod>" after a function that looks methods up
// by name) and returns the first such caller followed by what reached it, up
// to the program's roots; nil if there is none.
func reflectMethodCaller(graph []byte) []string {
	reachedBy := map[string]string{}
	var found string
	sc := bufio.NewScanner(bytes.NewReader(graph))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		from, to, ok := strings.Cut(sc.Text(), " -> ")
		if !ok {
			continue
		}
		if name, ok := strings.CutSuffix(to, " <ReflectMethod>"); ok && found == "" {
			found = name
		}
		from, _, _ = strings.Cut(from, " <")
		to, _, _ = strings.Cut(to, " <")
		if _, seen := reachedBy[to]; !seen {
			reachedBy[to] = from
		}
	}
	if found == "" {
		return nil
	}
	chain := []string{found}
	for by, ok := reachedBy[found]; ok && len(chain) < 20; by, ok = reachedBy[by] {
		chain = append(chain, by)
	}
	return chain
}
