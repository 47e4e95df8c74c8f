// Package luahooks runs operator Lua scripts ("hooks") on every gateway
// request, sandboxed, under a time budget, and hot-swapped without dropping
// requests. It is the only package that imports gopher-lua.
//
// A hooks directory holds *.lua files that run in file-name order (or in an
// explicit order from config). Each script defines on_request(req),
// on_response(res) or both. Top-level code runs once per pooled Lua state
// when the state is created; put constants in the per-script ctx table there.
// Globals a script sets live in that script's own environment; states are
// pooled and discarded after any failure, so never rely on them carrying
// anything from one request to the next.
//
// # Lua API
//
//	Name                        Meaning
//	--------------------------  ---------------------------------------------------------------
//	req.method, req.path        HTTP method and path
//	req.model                   model named in the body (after changes by earlier hooks)
//	req.key_name                configured name of the client key ("" if anonymous)
//	req.request_id, req.api     request id; "openai" or "anthropic"
//	req.session                 session key ("" for none): x-session-id, else the agent's own
//	                            (x-claude-code-session-id, metadata.user_id, session-id,
//	                            prompt_cache_key); after changes by earlier hooks
//	req:set_session(s)          set the session key (at most 256 bytes; "" drops it): weighted
//	                            aliases, key pools and the loop guard follow it
//	req:header(name)            header value or nil; case-insensitive; credentials read as nil
//	req:headers()               table of all headers (lower-case names, no credentials)
//	req:set_header(name, value) set a request header
//	req:remove_header(name)     remove a request header
//	req.body:get(path)          value at a gjson path ("messages.0.content", "messages.#"),
//	                            without decoding the whole body; nil if absent
//	req.body:decode()           the whole body as a Lua table
//	req.body:set(path, value)   set a body field (sjson path, "messages.-1" appends); nil deletes
//	req.body:raw()              the body as a string
//	req:set_model(model)        change the model (also rewrites "model" in the body)
//	req:provider(name)          send to this configured provider (unknown name: error)
//	req:route(name)             resolve through this configured route (unknown name: error)
//	req:upstream_api()          the API of the provider the request would reach as it stands
//	                            (its schema: "openai", "anthropic", "azure-openai", "gemini";
//	                            nil for none); not req.api: translated
//	req:tag(key, value)         attach a tag for logs and metrics (bounded, see below)
//	return req:reject(s, msg)   refuse the request: status s (400-599) and msg in the API's
//	                            error shape, of the type the gateway's own answers with s
//	                            have (429 rate_limit_error); later hooks do not run
//	res.status, res.request_id  upstream status; request id
//	res.api, res.upstream_api   the client's API ("openai" or "anthropic") and the provider's
//	                            schema; they differ when the gateway translated the request
//	                            (and for Azure OpenAI, which takes OpenAI bodies as they are)
//	res.tags                    table of the tags set by on_request hooks
//	res:header(name)            response header or nil
//	res:headers()               table of all response headers
//	res:set_header(name, value) set a response header the client sees
//	res:remove_header(name)     remove a response header
//	call.server, call.tool      on_tool_call(call), before an MCP tools/call is sent (tools.go)
//	call.key, call.session      client key name; Mcp-Session-Id ("" before initialize)
//	call.arguments              the arguments as a table; change it to change what is sent
//	call:reject(message)        refuse the call: the client gets a JSON-RPC error, the server nothing
//	result.size, result.is_error on_tool_result(result), once the answer ended: its bytes; tool
//	result.outcome              or call error; ok, tool_error, rpc_error, http_error, aborted
//	log(level, msg, fields)     structured log; level is debug, info, warn or error;
//	                            fields is an optional table
//	print(...)                  logged at info level with the script name
//	ctx                         per-script table filled by top-level code
//	null                        JSON null (body:get and decode return it; body:set writes it)
//
// Hooks may not set or remove a protected header (routing.ProtectedHeader):
// the gateway's own x-switchyard-*, Envoy's x-envoy-*, the credentials
// authorization, x-api-key and api-key, the request's identity x-request-id,
// host, content-length, transfer-encoding or any :pseudo header; trying is a
// hook error. Header values may not contain
// CR, LF or NUL and are at most 8 KiB.
//
// Tags: at most MaxTags (8) per request; keys are 1-32 characters of a-z, 0-9
// and _; values are printable UTF-8 of at most 64 bytes. A ninth key, or a
// key or value out of bounds, is a hook error.
//
// # Bodies that stay in Envoy
//
// A big body may stay in Envoy, which summarizes it (Request.BodyKept):
// the hooks then see the model and session from the summary and no body.
// The gateway runs them so only when no on_request script mentions body or
// set_model (Set.MayReadBody); otherwise it gets the body first. A hook
// that reaches the body anyway ends OnRequest with ErrNeedsBody, which no
// failure policy handles, even if the script caught the error; the
// gateway then runs the hooks again on the body.
//
// # Values between Lua and JSON
//
// Objects become tables with string keys, arrays tables with keys 1..n,
// null the null sentinel, numbers Lua numbers, which are 64-bit floats: an
// integer beyond 2^53 reads rounded (9007199254740993 as ...992, an id as
// another id). Back to JSON, a number still equal to the one at the same
// place in what the hook read (call.arguments, or the value at body:set's
// path) keeps that number's text; other integral values below 1e21 are
// written without a fraction, the rest in the shortest form that reads back
// the same. A table whose keys are exactly 1..n is an array, any other
// table an object with sorted keys (integral number keys become strings). An
// empty table is {} unless it came from an empty JSON array, which stays [].
// Invalid UTF-8 is written as U+FFFD. Functions, NaN, infinities, cycles and
// nesting deeper than 64 are errors.
//
// # Sandbox
//
// Only the base, string, table and math libraries are open, without load,
// loadstring, dofile, loadfile, require, module, collectgarbage, setfenv,
// getfenv, newproxy and string.dump; print goes to the logger. os, io, debug,
// package, channel and coroutine are absent. Each script has its own globals
// and its own copies of string, table and math: a script that replaces
// string.upper replaces it for itself only. Methods on strings (s:upper())
// always use the original library, and getmetatable("") is false.
//
// string.format takes Lua 5.1's conversions (%d %i %u %c %o %x %X %e %E %f
// %g %G %q %s and %%) with the flags - + space # 0, a width and a precision;
// any other (Go's %v, %T, %p, %b, %[1]d, %*d) is an error, as are a missing
// argument and, for any conversion but %s, an argument that is not a number
// or a string. Formatting itself is Go's (gopher-lua's): %q quotes as Go
// does, %x of a string writes its bytes in hex, and %u is not decimal.
//
// Every hook call runs with a deadline (Options.Timeout, default 5ms) that
// stops even an endless loop. Memory the deadline cannot see is guarded:
// string.rep, string.format and table.concat refuse to make a result more than
// 1 MiB larger than their largest input (string.format counts each conversion
// at the most it can write: %q four bytes per byte, %x five), gsub may grow
// its subject by at most max(1 MiB, its length), and all such growth in one
// call is limited to 16 MiB; the call stack (200 frames) and the value stack
// (16K slots, which bounds unpack and string.byte) are bounded. string.find,
// match, gmatch and gsub run on a copy of gopher-lua's matcher that checks the
// deadline while it backtracks, and gsub and gmatch find one match at a time
// (gsub checks the deadline across its matches, however cheap each is); a
// pattern nests at most 100000 levels (so a greedy repetition over a longer
// subject is an error) and has at most 32 captures, as in Lua. The
// concatenation operator is not guarded: it can only copy strings that already
// exist, and each copy costs time the deadline sees.
//
// Tables keep the integer keys 1 to 65535 in their array part and larger
// ones in their hash part, so t[1e7] = x stores one entry instead of
// allocating the gap in one step the deadline cannot stop. A sequence
// longer than 65535 is not whole to every operation: one set by index (an
// array from JSON among them) is whole to indexing and pairs, while #,
// ipairs, unpack and table.concat stop at element 65535 (t[#t+1] = v then
// keeps overwriting element 65536); one built by table.insert is whole to
// # and ipairs, while indexing past 65535 finds nil, and an index
// assigned past 65535 in it (t[i] = v, t[i] = nil) is not what # or the
// JSON sees. Either converts back to JSON whole.
//
// # Failures
//
// A hook that raises an error, runs out of time, trips a guard or returns
// anything but nothing or req:reject(...) is counted in
// switchyard_hooks_errors_total{script,reason} and logged with its script and
// line. Under fail_closed the request fails with an error wrapping
// ErrHookFailed (no stack trace); under fail_open the request continues as if
// that hook were absent: none of its changes are kept. A state that failed is
// discarded, never reused.
//
// # Versions and reload
//
// A Manager compiles every script once, loads it into a fresh state, runs
// each hook against a synthetic request, and only then swaps the whole set in
// as the next numbered version (switchyard_hooks_version). A broken set is
// refused as a whole; the old one keeps serving. Each request keeps the Set
// it started with, so it never sees half of two versions. Each Set has its
// own bounded pool of Lua states.
package luahooks
