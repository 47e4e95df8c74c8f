"""MCP client scenarios with the official Python SDK, for e2e/mcp_test.go.

Each scenario talks to the gateway's /mcp/<server> endpoints with a client
key and prints one JSON line of what it saw; the Go test asserts on it.

Usage: mcp_client.py GATEWAY_URL KEY MODE SCENARIO
  MODE: legacy (initialize handshake, Mcp-Session-Id) or auto (the SDK's
  default: discovers the newest protocol the server speaks)
  SCENARIO: basic | restricted | hooked | aggregate | loop | crash
  (aggregate talks to /mcp, the others to /mcp/<server>)
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

base, key, mode, scenario = sys.argv[1:5]


def connect(server):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    url = f"{base}/mcp/{server}" if server else f"{base}/mcp"
    return Client(streamable_http_client(url, http_client=http), mode=mode, raise_exceptions=True)


def text(result):
    return " ".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def call(client, tool, args, progress=None):
    try:
        r = await client.call_tool(tool, args, progress_callback=progress)
        return {"ok": not getattr(r, "is_error", getattr(r, "isError", False)), "text": text(r)}
    except Exception as e:  # the gateway's refusals are JSON-RPC errors
        return {"ok": False, "error": str(e), "code": getattr(getattr(e, "error", None), "code", None)}


async def basic():
    out = {}
    progress = []

    async def on_progress(p, total, message):
        progress.append(message)

    async with connect("alpha") as c:
        out["alpha_tools"] = sorted(t.name for t in (await c.list_tools()).tools)
        out["search"] = await call(c, "search_code", {"query": "needle"}, on_progress)
    out["progress"] = progress
    async with connect("beta") as c:
        out["beta_tools"] = sorted(t.name for t in (await c.list_tools()).tools)
        out["echo"] = await call(c, "echo", {"text": "hi"})
    return out


async def restricted():
    out = {}
    async with connect("alpha") as c:
        out["alpha_tools"] = sorted(t.name for t in (await c.list_tools()).tools)
        out["search"] = await call(c, "search_code", {"query": "x"})
        out["delete"] = await call(c, "delete_repo", {"repo": "prod"})
    try:
        async with connect("beta") as c:
            await c.list_tools()
        out["beta"] = "reachable"
    except Exception as e:
        out["beta"] = "refused: " + repr(e)
    return out


async def hooked():
    async with connect("alpha") as c:
        return {"rejected": await call(c, "echo", {"text": "a forbidden word"}),
                "rewritten": await call(c, "search_code", {"query": "rewrite-me"}),
                "plain": await call(c, "echo", {"text": "fine"})}


async def aggregate():
    progress = []

    async def on_progress(p, total, message):
        progress.append(message)

    async with connect(None) as c:
        tools = sorted(t.name for t in (await c.list_tools()).tools)
        return {"tools": tools,
                "search": await call(c, "alpha__search_code", {"query": "agg"}, on_progress),
                "echo": await call(c, "beta__echo", {"text": "agg"}),
                "again": await call(c, "beta__echo", {"text": "agg2"}),
                "unknown": await call(c, "nosuch__x", {}),
                "progress": progress}


async def loop():
    async with connect("alpha") as c:
        return {"calls": [await call(c, "echo", {"text": "same"}) for _ in range(3)],
                "other": await call(c, "echo", {"text": "different"})}


async def crash():
    out = {}
    async with connect("beta") as c:
        try:
            out["crash"] = await asyncio.wait_for(call(c, "crash", {}), 20)
        except Exception as e:
            out["crash"] = {"ok": False, "error": repr(e)}
    return out


async def main():
    fn = {"basic": basic, "restricted": restricted, "hooked": hooked, "aggregate": aggregate, "loop": loop, "crash": crash}[scenario]
    try:
        out = await asyncio.wait_for(fn(), 25)
    except BaseException as e:  # report, so the test shows what failed
        out = {"exception": repr(e)}
    print(json.dumps(out), flush=True)


asyncio.run(main())
