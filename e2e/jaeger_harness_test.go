package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"switchyard/internal/testkit"
)

// jaegerConfig runs Jaeger (v2, an OpenTelemetry collector) with what the
// tracing tests need only: OTLP over gRPC in, spans kept in memory, and
// the query API. Every listener binds port 0; startJaeger learns the ports
// from the kernel's socket table.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
extensions:
  jaeger_query:
    storage: {traces: mem}
    http: {endpoint: "127.0.0.1:0"}
    grpc: {endpoint: "127.0.0.1:0"}
  jaeger_storage:
    backends:
      mem: {memory: {max_traces: 10000}}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:0"}
exporters:
  jaeger_storage_exporter: {trace_storage: mem}
`

// jaeger is a running Jaeger: otlp is its OTLP gRPC receiver's host:port,
// query the base URL of its HTTP query API.
type jaeger struct {
	otlp, query string
}

func startJaeger(t testing.TB) *jaeger {
	t.Helper()
	bin := toolBin(t, "JAEGER_BIN", "jaeger")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, []byte(jaegerConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &testkit.SyncBuffer{}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	c, err := startChild(cmd)
	if err != nil {
		t.Fatalf("starting jaeger: %v", err)
	}
	t.Cleanup(func() {
		c.stop(os.Interrupt, 10*time.Second)
		if t.Failed() {
			t.Logf("jaeger output:\n%s", tail(out.String(), 4000))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, err := findJaeger(ctx, cmd.Process.Pid, c.done)
	if err != nil {
		t.Fatalf("jaeger did not listen: %v\n%s", err, out.String())
	}
	return j
}

// findJaeger waits for Jaeger's three listeners and tells them apart: the
// query API answers HTTP/1.1, the OTLP receiver accepts an export, the
// query gRPC API refuses one.
func findJaeger(ctx context.Context, pid int, done <-chan struct{}) (*jaeger, error) {
	for {
		ports, err := listeningPorts(pid)
		if err == nil && len(ports) == 3 {
			j := &jaeger{}
			for _, p := range ports {
				addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
				switch {
				case answersHTTP(ctx, addr):
					j.query = "http://" + addr
				case acceptsOTLP(ctx, addr):
					j.otlp = addr
				}
			}
			if j.query != "" && j.otlp != "" {
				return j, nil
			}
		}
		select {
		case <-done:
			return nil, fmt.Errorf("jaeger exited")
		case <-ctx.Done():
			return nil, fmt.Errorf("listening on %v: %w", ports, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// listeningPorts are the TCP ports process pid listens on: the sockets
// among its open files that the kernel's TCP table shows listening.
func listeningPorts(pid int) ([]int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st ... inode (field 10)
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil {
				ports = append(ports, int(p))
			}
		}
		f.Close()
	}
	return ports, nil
}

func answersHTTP(ctx context.Context, addr string) bool {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/services", nil)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func acceptsOTLP(ctx context.Context, addr string) bool {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = coltracepb.NewTraceServiceClient(conn).Export(ctx, &coltracepb.ExportTraceServiceRequest{})
	return err == nil
}

// jaegerTrace is a trace as Jaeger's query API returns it.
type jaegerTrace struct {
	Spans []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
		ProcessID string `json:"processID"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// traceSpan is one span of a trace, flattened.
type traceSpan struct {
	id, parent, name, service string
	tags                      map[string]string
}

func (tr *jaegerTrace) spans() []traceSpan {
	var out []traceSpan
	for _, s := range tr.Spans {
		ts := traceSpan{id: s.SpanID, name: s.OperationName, service: tr.Processes[s.ProcessID].ServiceName, tags: map[string]string{}}
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" {
				ts.parent = r.SpanID
			}
		}
		for _, tag := range s.Tags {
			ts.tags[tag.Key] = fmt.Sprint(tag.Value)
		}
		out = append(out, ts)
	}
	return out
}

// waitTrace polls Jaeger for the trace id until ready says it is whole.
func (j *jaeger) waitTrace(t testing.TB, id string, ready func([]traceSpan) bool) []traceSpan {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last []traceSpan
	for time.Now().Before(deadline) {
		resp, err := http.Get(j.query + "/api/traces/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Data []jaegerTrace }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK && len(body.Data) == 1 {
			last = body.Data[0].spans()
			if ready(last) {
				return last
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, s := range last {
		t.Logf("span %s %q (%s) parent %s: %v", s.id, s.name, s.service, s.parent, s.tags)
	}
	t.Fatalf("trace %s not complete in Jaeger after 20s (%d spans)", id, len(last))
	return nil
}
