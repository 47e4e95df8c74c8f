package processor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/routing"
)

// The aggregated /mcp endpoint talks to each MCP server itself to open a
// session (initialize) and list its tools: a small MCP client over
// streamable HTTP, the handshake protocol. Tool calls do not pass here:
// they go through Envoy to the server's cluster, streamed.

// mcpHandshakeVersion is the protocol the gateway speaks to servers.
const mcpHandshakeVersion = "2025-06-18"

// mcpUpstreamTimeout bounds one call of the gateway's own to a server.
const mcpUpstreamTimeout = 5 * time.Second

var mcpHTTP = &http.Client{Timeout: mcpUpstreamTimeout,
	// A redirect to another host would take the server's credential there
	// (Go keeps a header it does not know across hosts); Envoy, which
	// carries the tool calls, follows none either.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// serverSession is the gateway's session with one server.
type serverSession struct {
	id      string // the server's Mcp-Session-Id, "" for a server without sessions
	version string // the protocol version it answered
}

// errSessionGone is a server's 404 to a message in a session: by MCP, the
// server has ended that session (a restart forgets them all), and the
// client must open a new one.
var errSessionGone = errors.New("the server has ended the session")

// mcpServerURL is the server's endpoint.
func mcpServerURL(s *routing.MCPServer) string {
	return s.Scheme + "://" + hostPort(s.Host, s.Port) + s.Path
}

func hostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// rpcCall POSTs one JSON-RPC message to the server and returns the reply to
// it (nil for a notification) and the session id the server set.
func rpcCall(ctx context.Context, s *routing.MCPServer, ss serverSession, body string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, mcpUpstreamTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", mcpServerURL(s), strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("accept", "application/json, text/event-stream")
	req.Header.Set("mcp-protocol-version", or(ss.version, mcpHandshakeVersion))
	if ss.id != "" {
		req.Header.Set(routing.MCPSessionHeader, ss.id)
	}
	if s.Credential != nil {
		req.Header.Set(s.Credential.Name, s.Credential.Value)
	}
	resp, err := mcpHTTP.Do(req)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // without the URL: its query may hold a token
		}
		return nil, "", fmt.Errorf("calling MCP server %q: %w", s.Name, err)
	}
	defer resp.Body.Close()
	session := resp.Header.Get(routing.MCPSessionHeader)
	if resp.StatusCode == http.StatusAccepted {
		return nil, session, nil
	}
	if resp.StatusCode == http.StatusNotFound && ss.id != "" {
		return nil, session, fmt.Errorf("MCP server %q answered HTTP 404: %w", s.Name, errSessionGone)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, session, fmt.Errorf("MCP server %q answered HTTP %d", s.Name, resp.StatusCode)
	}
	id := gjson.Get(body, "id").Raw
	if strings.HasPrefix(resp.Header.Get("content-type"), "text/event-stream") {
		msg, err := readSSEReply(resp.Body, id)
		return msg, session, err
	}
	msg, err := io.ReadAll(io.LimitReader(resp.Body, maxPendingAnswer))
	return msg, session, err
}

// readSSEReply reads SSE events until the one carrying the reply to id.
func readSSEReply(r io.Reader, id string) ([]byte, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxPendingAnswer)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		if rest, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			data = append(data, bytes.TrimPrefix(rest, []byte(" "))...)
			continue
		}
		if len(line) == 0 && data != nil {
			if gjson.GetBytes(data, "id").Raw == id {
				return data, nil
			}
			data = nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("the answer ended without the reply")
}

// openServerSession initializes a session with the server.
func openServerSession(ctx context.Context, s *routing.MCPServer) (serverSession, error) {
	reply, id, err := rpcCall(ctx, s, serverSession{}, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+
		mcpHandshakeVersion+`","capabilities":{},"clientInfo":{"name":"switchyard","version":"1"}}}`)
	if err != nil {
		return serverSession{}, err
	}
	if e := gjson.GetBytes(reply, "error.message"); e.Exists() {
		return serverSession{}, fmt.Errorf("MCP server %q refused initialize: %s", s.Name, e.Str)
	}
	ss := serverSession{id: id, version: gjson.GetBytes(reply, "result.protocolVersion").Str}
	if _, _, err := rpcCall(ctx, s, ss, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); err != nil {
		return serverSession{}, err
	}
	return ss, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// deleteServerSession ends the gateway's session with a server, best
// effort: a server that does not answer lets it expire.
func deleteServerSession(ctx context.Context, s *routing.MCPServer, ss serverSession) {
	ctx, cancel := context.WithTimeout(ctx, mcpUpstreamTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "DELETE", mcpServerURL(s), nil)
	if err != nil {
		return
	}
	req.Header.Set(routing.MCPSessionHeader, ss.id)
	req.Header.Set("mcp-protocol-version", or(ss.version, mcpHandshakeVersion))
	if s.Credential != nil {
		req.Header.Set(s.Credential.Name, s.Credential.Value)
	}
	if resp, err := mcpHTTP.Do(req); err == nil {
		resp.Body.Close()
	}
}
