"""An MCP server written with the official Python SDK, for e2e/mcp_test.go.

Serves streamable HTTP at /rpc on 127.0.0.1 (port 0 bound) and prints
"listening PORT" once it serves. Every request must carry
"Authorization: Bearer TOKEN" (401 otherwise); the credential headers of
every request are appended to SEEN_FILE as JSON lines, so that the test can
check the server never saw the client's key.

Tools: search_code (reports three progress notifications, then answers),
echo, delete_repo, and crash (reports progress, then the process exits
mid-answer).

Usage: mcp_server.py NAME TOKEN SEEN_FILE
"""

import json
import os
import socket
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer

name, token, seen_file = sys.argv[1], sys.argv[2], sys.argv[3]
server = MCPServer(name)


@server.tool()
async def search_code(query: str, ctx: Context) -> str:
    """Search the code for a query."""
    for i in range(3):
        await ctx.report_progress(i + 1, 3, f"{name} step {i + 1}")
        await anyio.sleep(0.05)
    return f"{name} found {query}"


@server.tool()
def echo(text: str) -> str:
    """Echo the text."""
    return f"{name} echo {text}"


@server.tool()
def delete_repo(repo: str) -> str:
    """Delete a repository."""
    return f"{name} deleted {repo}"


@server.tool()
async def crash(ctx: Context) -> str:
    """Die in the middle of the answer."""
    await ctx.report_progress(1, 2, "about to crash")
    await anyio.sleep(0.1)
    os._exit(3)


def checked(app):
    async def wrapped(scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            with open(seen_file, "a") as f:
                f.write(json.dumps({k: headers.get(k, "") for k in ("authorization", "x-api-key", "api-key")}) + "\n")
            if headers.get("authorization") != f"Bearer {token}":
                body = b'{"error":"wrong or missing server credential"}'
                await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return wrapped


def main():
    app = checked(server.streamable_http_app(streamable_http_path="/rpc"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(f"listening {sock.getsockname()[1]}", flush=True)
    cfg = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(cfg).run(sockets=[sock])


main()
