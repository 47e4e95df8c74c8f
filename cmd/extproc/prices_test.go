package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPricesCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(minimalConfig+"prices:\n  - {model: \"my-*\", input: 2.5, output: 10}\n"), 0o600)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"prices", "-config", path, "my-model", "gpt-4o-mini", "llama3.2", "gpt-4o-audio-preview"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"my-model\t2.5 10 2.5 2.5 5, x2 x1\t(config prices \"my-*\")\n",
		"gpt-4o-mini\t0.15 0.6 0.075 0.15 0.3, x1.6666667 x1\t(shipped, taken ",
		"llama3.2\tunpriced: costs nothing, counted in switchyard_unpriced_requests_total\n",
		"gpt-4o-audio-preview\tunpriced: costs nothing, counted in switchyard_unpriced_requests_total\t(shipped, taken ",
		` "gpt-*audio*": unpriced)` + "\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(minimalConfig+"prices:\n  - {model: x, input: 1}\n"), 0o600)
	if err := run(context.Background(), []string{"prices", "-config", bad, "x"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "prices[0].output: is required") {
		t.Errorf("invalid config: %v", err)
	}
	if err := run(context.Background(), []string{"prices", "-config", path}, &out, &errOut); err == nil {
		t.Error("no model named: no error")
	}
}
