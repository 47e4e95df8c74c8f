package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// runSh is what scripts/run.sh (`make run`, `make run-global`) starts: the
// arguments of each command it runs.
type runSh struct {
	serve, envoyConfig, ratelimitConfig, envoy []string
	// ratelimitEnv are the variables it starts envoyproxy/ratelimit with.
	ratelimitEnv []string
}

// readRunSh reads the commands out of scripts/run.sh: the lines that start
// bin/extproc, "$ENVOY_BIN" and envoyproxy/ratelimit's `env ...` line.
// extproc itself is started by scripts/restart-extproc.sh, in a slot, with
// the flags run.sh writes to its args file and the slot's own (-grpc,
// -metrics). $XDS stands for its default, -xds.
func readRunSh(t *testing.T) runSh {
	t.Helper()
	b, err := os.ReadFile("../scripts/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	var r runSh
	for _, line := range joinContinued(string(b)) {
		words := shellWords(line)
		if len(words) == 0 {
			continue
		}
		for i, w := range words {
			if w == "$XDS" {
				words[i] = "-xds"
			}
		}
		switch {
		case words[0] == "printf" && strings.Contains(line, `"$EXTPROC_STATE/args"`):
			r.serve = append(r.serve, words[2:]...)
			r.serve = append(r.serve, slotFlags(t)...)
		case words[0] == "bin/extproc" && len(words) > 1 && words[1] == "envoy-config":
			r.envoyConfig = words[2:]
		case words[0] == "bin/extproc" && len(words) > 1 && words[1] == "ratelimit-config":
			r.ratelimitConfig = words[2:]
		case words[0] == "bin/extproc":
			r.serve = words[1:]
		case words[0] == "$ENVOY_BIN":
			r.envoy = words[1:]
		case words[0] == "env" && slices.Contains(words, "$RATELIMIT_BIN"):
			for _, w := range words[1:] {
				if name, _, ok := strings.Cut(w, "="); ok {
					r.ratelimitEnv = append(r.ratelimitEnv, name)
				}
			}
		}
	}
	if r.serve == nil || r.envoyConfig == nil || r.ratelimitConfig == nil || r.envoy == nil || r.ratelimitEnv == nil {
		t.Fatalf("scripts/run.sh: not every command found (extproc %q, envoy-config %q, ratelimit-config %q, envoy %q, ratelimit env %q): update readRunSh",
			r.serve, r.envoyConfig, r.ratelimitConfig, r.envoy, r.ratelimitEnv)
	}
	return r
}

// joinContinued returns the script's lines, those continued with a
// backslash joined, without leading blanks.
func joinContinued(script string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(script, "\n") {
		l = strings.TrimSpace(l)
		if c, ok := strings.CutSuffix(l, "\\"); ok {
			cur += c + " "
			continue
		}
		out = append(out, cur+l)
		cur = ""
	}
	return out
}

// setAlternative is `${NAME:+words}`, which the shell replaces with words
// when NAME is set, as run.sh's defaults set it.
var setAlternative = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*:\+([^}]*)\}`)

// shellWords splits a command line into words the way the shell would
// before expansion, as far as run.sh needs: quotes are removed, `${X:+...}`
// is what it holds, and the words end at a redirection, a pipe or a
// background &.
func shellWords(line string) []string {
	line = setAlternative.ReplaceAllString(line, "$1")
	var words []string
	var w strings.Builder
	inWord, quote := false, rune(0)
	for _, c := range line {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				w.WriteRune(c)
			}
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '>' || c == '|' || c == '&' || c == ';' || c == '#':
			if inWord && w.String() != "2" {
				words = append(words, w.String())
			}
			return words
		default:
			w.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// flagValues maps each flag in args ("-x" or "--x") to its value: the word
// after it, or "" for the boolean flags the caller names in bools.
func flagValues(args []string, bools ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		if name, v, ok := strings.Cut(a, "="); ok {
			m[name] = v
			continue
		}
		if slices.Contains(bools, a) || i+1 == len(args) {
			m[a] = ""
			continue
		}
		m[a] = args[i+1]
		i++
	}
	return m
}

func TestShellWords(t *testing.T) {
	for _, c := range []struct {
		line string
		want []string
	}{
		{`bin/extproc -config "$CONFIG" -grpc "unix:$SOCK" -metrics "$METRICS" &`, []string{"bin/extproc", "-config", "$CONFIG", "-grpc", "unix:$SOCK", "-metrics", "$METRICS"}},
		{`bin/extproc envoy-config -config "$CONFIG" >"$RUN_DIR/envoy.yaml"`, []string{"bin/extproc", "envoy-config", "-config", "$CONFIG"}},
		{`"$ENVOY_BIN" -c "$RUN_DIR/envoy.yaml" --log-level warn 2>"$RUN_DIR/envoy.log" &`, []string{"$ENVOY_BIN", "-c", "$RUN_DIR/envoy.yaml", "--log-level", "warn"}},
		{`a 'b c'`, []string{"a", "b c"}},
		{`bin/extproc envoy-config ${BODY_MODULE:+-body-module "$BODY_MODULE"} $XDS`, []string{"bin/extproc", "envoy-config", "-body-module", "$BODY_MODULE", "$XDS"}},
	} {
		if got := shellWords(c.line); !slices.Equal(got, c.want) {
			t.Errorf("shellWords(%q) = %q, want %q", c.line, got, c.want)
		}
	}
}

// slotFlags are the flags scripts/restart-extproc.sh starts extproc in a
// slot with, beside the args file's.
func slotFlags(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../scripts/restart-extproc.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range joinContinued(string(b)) {
		words := shellWords(line)
		if len(words) > 2 && words[0] == "exec" && words[1] == "$EXTPROC_BIN" {
			flags := slices.DeleteFunc(words[2:], func(w string) bool { return w == "${args[@]}" })
			// -addr-file tells the script which ports the slot bound; a
			// pod's are fixed.
			if i := slices.Index(flags, "-addr-file"); i >= 0 && i+1 < len(flags) {
				flags = slices.Delete(flags, i, i+2)
			}
			return flags
		}
	}
	t.Fatal(`scripts/restart-extproc.sh: no exec "$EXTPROC_BIN" line: update slotFlags`)
	return nil
}
