package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tidwall/gjson"

	"switchyard/luahooks"
	"switchyard/routing"
)

// toolCallPath reports the MCP server of a `hooks test --path /mcp/<server>`,
// whose request is then a JSON-RPC tools/call.
func toolCallPath(path string) (string, bool) {
	server, ok := strings.CutPrefix(path, "/mcp/")
	return server, ok && server != "" && !strings.Contains(server, "/")
}

// runToolCallTest dry-runs the on_tool_call hooks on a tools/call body and,
// with --config, the key's allow-list.
func runToolCallTest(ctx context.Context, w io.Writer, router *routing.Router, set *luahooks.Set, server, keyName string, body []byte) error {
	if !gjson.ValidBytes(body) || gjson.GetBytes(body, "method").Str != "tools/call" {
		return errors.New(`with --path /mcp/<server> the request is a JSON-RPC tools/call: {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":...,"arguments":{...}}}`)
	}
	tool := gjson.GetBytes(body, "params.name").Str
	fmt.Fprintf(w, "tool call: %s/%s\n", server, tool)
	if router != nil {
		if router.MCPServer(server) == nil {
			return fmt.Errorf("unknown MCP server %q in the config", server)
		}
		if p, ok := router.PrincipalNamed(keyName); ok && !p.AllowsMCPTool(server, tool) {
			fmt.Fprintf(w, "answer: refused: the tool is not in the mcp_tools of key %q\n", keyName)
			return errors.New("the call would not be sent")
		}
	}
	res, err := set.OnToolCall(ctx, &luahooks.ToolCall{Server: server, Tool: tool, Arguments: []byte(gjson.GetBytes(body, "params.arguments").Raw),
		KeyName: keyName, RequestID: "hooks-test"})
	for _, c := range res.Changes {
		fmt.Fprintf(w, "  %s: %s %s\n", c.Script, c.Op, c.Value)
	}
	switch {
	case err != nil:
		fmt.Fprintf(w, "hook failed: %v\n", err)
		return errors.New("a hook failed; the gateway would answer this call with an error")
	case res.Reject != nil:
		fmt.Fprintf(w, "answer: refused by a hook: %s\n", *res.Reject)
		return errors.New("the call would not be sent")
	case res.Arguments != nil:
		fmt.Fprintf(w, "arguments sent: %s\n", res.Arguments)
	default:
		fmt.Fprintln(w, "arguments sent: unchanged")
	}
	return nil
}
