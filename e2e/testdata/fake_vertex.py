"""A fake Google Vertex AI and Google OAuth token endpoint, for e2e/vertex_test.go.

The token endpoint takes the JWT bearer grant a service account makes (what
golang.org/x/oauth2/google sends for a key file) and verifies the assertion
with google-auth: its RS256 signature against the service account's
certificate, its audience (this token endpoint), issuer and scope. It mints
opaque access tokens that live TOKEN_LIFE seconds.

The Vertex endpoints accept only live minted tokens (401 UNAUTHENTICATED in
Google's error shape otherwise) and check what Vertex checks:
  Claude:  POST /v1/projects/P/locations/R/publishers/anthropic/models/M:rawPredict
           (or :streamRawPredict, which needs "stream": true) with a Messages
           body without "model" and with anthropic_version vertex-2023-10-16;
           answers Messages JSON or SSE.
  Gemini:  POST .../publishers/google/models/M:generateContent
           (or :streamGenerateContent?alt=sse) with a Gemini body; answers
           Gemini JSON or SSE. A gemini-3 model signs the first function call
           of an answer and refuses a current turn without its signature.
A model whose name ends in "-busy" gets 429 RESOURCE_EXHAUSTED, and so
does every request with a token of a busy account (config "accounts": more
service accounts, each {cert_file, client_email, busy}); a model whose name
ends in "-denied" gets 403 PERMISSION_DENIED, one ending in "-broken" 500
INTERNAL.
Answers: the function results of the last turn quoted (RESULT_PREFIX +
results joined by "|"), a call of every declared tool when the last user
text holds TRIGGER (each string argument ARG, each integer 1), or ANSWER.

GET /_stats reports what it saw (tokens minted, grants refused, requests).

Usage: fake_vertex.py CONFIG_JSON  (keys: cert_file, client_email, project,
region, token_life, answer, trigger, arg, result_prefix, accounts). Prints
"listening PORT" once it serves on 127.0.0.1:PORT (port 0 bound).
"""

import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from google.auth import jwt

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
VERSION = "vertex-2023-10-16"
PATH_RE = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/publishers/([^/]+)/models/([^/:]+):([A-Za-z]+)$")

cfg = {}
lock = threading.Lock()
tokens = {}  # token -> (expiry (epoch seconds), the account's client_email)
stats = {"minted": 0, "refused_grants": [], "requests": [], "unauthorized": 0}


class BadRequest(Exception):
    pass


def google_error(code, status, message):
    return code, "application/json; charset=UTF-8", json.dumps(
        {"error": {"code": code, "message": message, "status": status}}).encode()


def anthropic_error(code, typ, message):
    return code, "application/json", json.dumps({"type": "error", "error": {"type": typ, "message": message}}).encode()


def tool_args(schema):
    args = {}
    for name, prop in (schema or {}).get("properties", {}).items():
        args[name] = 1 if prop.get("type") == "integer" else cfg["arg"]
    return args


# ---- the token endpoint


def token_endpoint(handler, body, token_url):
    form = parse_qs(body.decode())
    grant = form.get("grant_type", [""])[0]
    assertion = form.get("assertion", [""])[0]
    if grant != JWT_GRANT:
        return refuse_grant("unsupported_grant_type", "grant_type " + grant)
    try:
        # The account named by the (still unverified) issuer; its
        # certificate then verifies the assertion.
        iss = jwt.decode(assertion, verify=False).get("iss")
        account = accounts().get(iss)
        if account is None:
            return refuse_grant("invalid_grant", "Invalid JWT: iss " + str(iss))
        with open(account["cert_file"]) as f:
            cert = f.read()
        claims = jwt.decode(assertion, certs=cert, audience=token_url)
    except Exception as e:  # google-auth raises ValueError and its own errors
        return refuse_grant("invalid_grant", "Invalid JWT Signature. (" + type(e).__name__ + ": " + str(e)[:120] + ")")
    if SCOPE not in str(claims.get("scope", "")).split():
        return refuse_grant("invalid_scope", "scope " + str(claims.get("scope")))
    tok = "ya29.fake-" + secrets.token_urlsafe(24)
    life = int(cfg["token_life"])
    with lock:
        tokens[tok] = (time.time() + life, iss)
        stats["minted"] += 1
    return 200, "application/json", json.dumps(
        {"access_token": tok, "expires_in": life, "token_type": "Bearer"}).encode()


def refuse_grant(err, desc):
    with lock:
        stats["refused_grants"].append(err + ": " + desc)
    return 400, "application/json", json.dumps({"error": err, "error_description": desc}).encode()


def accounts():
    out = {cfg["client_email"]: {"cert_file": cfg["cert_file"]}}
    for a in cfg.get("accounts", []):
        out[a["client_email"]] = a
    return out


def live(auth):
    """The account of a live token, or None."""
    if not auth.startswith("Bearer "):
        return None
    with lock:
        exp, account = tokens.get(auth[len("Bearer "):], (0, None))
    return account if time.time() < exp else None


# ---- Claude on Vertex


def check_messages(body, stream):
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    if "model" in body:
        raise BadRequest("model: Extra inputs are not permitted")
    if body.get("anthropic_version") != VERSION:
        raise BadRequest("anthropic_version: must be " + VERSION + ", got " + repr(body.get("anthropic_version")))
    if not isinstance(body.get("max_tokens"), int):
        raise BadRequest("max_tokens: Field required")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("messages: at least one message is required")
    if bool(body.get("stream")) != stream:
        raise BadRequest("stream must be true with streamRawPredict and absent or false with rawPredict")
    for m in msgs:
        # Claude Code sends system turns among the messages too.
        if m.get("role") not in ("user", "assistant", "system"):
            raise BadRequest("messages: roles must be user, assistant or system, got " + json.dumps(m.get("role")))


def text_of(content):
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")


def claude_blocks(body):
    last = body["messages"][-1]
    content = last.get("content")
    results = []
    if isinstance(content, list):
        for b in content:
            if b.get("type") == "tool_result":
                results.append(text_of(b.get("content", "")))
    if results:
        return [{"type": "text", "text": cfg["result_prefix"] + "|".join(results)}], "end_turn"
    tools = body.get("tools") or []
    if cfg["trigger"] in text_of(content) and tools:
        return [{"type": "tool_use", "id": "toolu_" + secrets.token_hex(8), "name": t["name"],
                 "input": tool_args(t.get("input_schema"))} for t in tools], "tool_use"
    return [{"type": "text", "text": cfg["answer"]}], "end_turn"


def claude(handler, model, method, raw):
    stream = method == "streamRawPredict"
    if method not in ("rawPredict", "streamRawPredict"):
        return google_error(404, "NOT_FOUND", "unknown method " + method)
    try:
        body = json.loads(raw)
        check_messages(body, stream)
    except (ValueError, BadRequest) as e:
        return anthropic_error(400, "invalid_request_error", str(e))
    blocks, stop = claude_blocks(body)
    usage_in = max(1, len(raw) // 4)
    msg_id = "msg_vrtx_" + secrets.token_hex(8)
    if not stream:
        return 200, "application/json", json.dumps({
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": blocks,
            "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": usage_in, "output_tokens": 7}}).encode()
    events = [("message_start", {"type": "message_start", "message": {
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": usage_in, "output_tokens": 1}}}),
        ("ping", {"type": "ping"})]
    for i, b in enumerate(blocks):
        if b["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
            for piece in re.findall(r"\S+\s*", b["text"]):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "text_delta", "text": piece}}))
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}}))
            js = json.dumps(b["input"])
            for piece in (js[:len(js) // 2], js[len(js) // 2:]):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "input_json_delta", "partial_json": piece}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": 7}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return 200, "text/event-stream", [
        ("event: %s\ndata: %s\n\n" % (name, json.dumps(data))).encode() for name, data in events]


# ---- Gemini on Vertex

GEMINI_FIELDS = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings",
                 "cachedContent", "labels"}


def check_gemini(body):
    if not isinstance(body, dict):
        raise BadRequest("Invalid JSON payload received.")
    for k in body:
        if k not in GEMINI_FIELDS:
            raise BadRequest('Invalid JSON payload received. Unknown name "%s": Cannot find field.' % k)
    contents = body.get("contents")
    if not contents:
        raise BadRequest("contents is not specified")
    for i, c in enumerate(contents):
        if c.get("role") not in ("user", "model"):
            raise BadRequest("Please use a valid role: user, model. (contents[%d])" % i)
        if not c.get("parts"):
            raise BadRequest("contents[%d].parts must not be empty." % i)


SIGNING_KEY = secrets.token_bytes(32)

# Numbers each answer's responseId: Gemini's are unique, and a client such
# as Claude Code merges the assistant messages of answers sharing one.
RESPONSE_IDS = itertools.count(1)


def thought_signature(nonce, name):
    """A thought signature only this fake makes or checks, as Gemini's are."""
    return nonce + hmac.new(SIGNING_KEY, nonce + name.encode(), hashlib.sha256).digest()[:16]


def decode_signature(sig):
    """Bytes in JSON as Google reads them: base64, standard or URL-safe,
    padded or not."""
    sig = sig.rstrip("=")
    return base64.b64decode(sig + "=" * (-len(sig) % 4), altchars=b"-_" if ("-" in sig or "_" in sig) else None,
                            validate=True)


def sign_first_call(parts):
    """Gemini 3 signs the first function call of an answer."""
    for p in parts:
        if "functionCall" in p:
            p["thoughtSignature"] = base64.b64encode(thought_signature(secrets.token_bytes(12),
                                                                       p["functionCall"]["name"])).decode()
            return


def check_signatures(contents):
    """Gemini 3 refuses a step of the current turn (after the last user
    text) whose first function call lacks the signature it gave it."""
    turn = 0
    for i, c in enumerate(contents):
        parts = c.get("parts", [])
        if (c.get("role") == "user" and any(p.get("text") for p in parts)
                and not any("functionResponse" in p for p in parts)):
            turn = i + 1
    for i, c in enumerate(contents[turn:]):
        calls = [p for p in c.get("parts", []) if "functionCall" in p]
        if c.get("role") != "model" or not calls:
            continue
        name, sig = calls[0]["functionCall"].get("name", ""), calls[0].get("thoughtSignature", "")
        try:
            raw = decode_signature(sig)
            ok = len(raw) == 28 and hmac.compare_digest(thought_signature(raw[:12], name), raw)
        except ValueError:
            ok = False
        if not ok:
            raise BadRequest("Function call is missing a thought_signature in functionCall parts. This is required "
                             "for tools to work correctly, and missing thought_signature may lead to degraded model "
                             "performance. Additional data, function call `default_api:%s` , position %d. Please refer "
                             "to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                             % (name, turn + i + 1))


def gemini_parts(body):
    last = body["contents"][-1].get("parts", [])
    results = [p["functionResponse"]["response"].get("content") for p in last
               if "functionResponse" in p and isinstance(p["functionResponse"].get("response"), dict)]
    if results:
        return [{"text": cfg["result_prefix"] + "|".join(str(r) for r in results)}]
    text = "".join(p.get("text", "") for p in last)
    decls = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    if cfg["trigger"] in text and decls:
        return [{"functionCall": {"name": d["name"], "args": tool_args(d.get("parametersJsonSchema") or d.get("parameters"))}}
                for d in decls]
    return [{"text": cfg["answer"]}]


def gemini(handler, model, method, query, raw):
    stream = method == "streamGenerateContent"
    if method not in ("generateContent", "streamGenerateContent"):
        return google_error(404, "NOT_FOUND", "unknown method " + method)
    if stream and query.get("alt") != ["sse"]:
        return google_error(400, "INVALID_ARGUMENT", "the fake streams only with alt=sse")
    signs = model.startswith("gemini-3")
    try:
        body = json.loads(raw)
        check_gemini(body)
        if signs:
            check_signatures(body["contents"])
    except (ValueError, BadRequest) as e:
        return google_error(400, "INVALID_ARGUMENT", str(e))
    parts = gemini_parts(body)
    if signs:
        sign_first_call(parts)
    n = max(1, len(raw) // 4)
    usage = {"promptTokenCount": n, "candidatesTokenCount": 7, "totalTokenCount": n + 7}
    if not stream:
        return 200, "application/json; charset=UTF-8", json.dumps({
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage, "modelVersion": model, "responseId": "vrtx-%d" % next(RESPONSE_IDS)}).encode()
    pieces = []
    for p in parts:
        if "text" in p:
            pieces += [[{"text": t}] for t in re.findall(r"\S+\s*", p["text"])]
        else:
            pieces.append([p])
    chunks = []
    for i, ps in enumerate(pieces):
        cand = {"content": {"role": "model", "parts": ps}, "index": 0}
        if i == len(pieces) - 1:
            cand["finishReason"] = "STOP"
        chunks.append(("data: %s\r\n\r\n" % json.dumps({"candidates": [cand], "usageMetadata": usage,
                                                          "modelVersion": model})).encode())
    return 200, "text/event-stream", chunks


# ---- the server


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, ctype, payload):
        self.send_response(status)
        self.send_header("content-type", ctype)
        if isinstance(payload, list):  # SSE events, one write each
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for chunk in payload:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path != "/_stats":
            return self.reply(*google_error(404, "NOT_FOUND", "not found"))
        with lock:
            out = json.dumps(stats).encode()
        self.reply(200, "application/json", out)

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        url = urlsplit(self.path)
        if url.path == "/token":
            return self.reply(*token_endpoint(self, raw, "http://%s/token" % self.headers.get("host")))
        auth = self.headers.get("authorization", "")
        rec = {"path": self.path, "token": auth[len("Bearer "):] if auth.startswith("Bearer ") else "",
               "anthropic_version_header": self.headers.get("anthropic-version"),
               "x_api_key": self.headers.get("x-api-key") is not None}
        rec["account"] = live(auth)
        result = self.route(url, auth, raw)
        rec["status"] = result[0]
        with lock:
            stats["requests"].append(rec)
        self.reply(*result)

    def route(self, url, auth, raw):
        account = live(auth)
        if not account:
            with lock:
                stats["unauthorized"] += 1
            return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 "
                                "access token, login cookie or other valid authentication credential.")
        m = PATH_RE.match(url.path)
        if not m:
            return google_error(404, "NOT_FOUND", "The requested URL " + url.path + " was not found on this server.")
        project, region, publisher, model, method = m.groups()
        if project != cfg["project"] or region != cfg["region"]:
            return google_error(403, "PERMISSION_DENIED", "Permission denied on resource project " + project)
        if model.endswith("-denied"):
            return google_error(403, "PERMISSION_DENIED", "Permission 'aiplatform.endpoints.predict' denied on resource "
                                "'//aiplatform.googleapis.com/projects/%s/locations/%s/publishers/%s/models/%s'"
                                % (project, region, publisher, model))
        if model.endswith("-broken"):
            return google_error(500, "INTERNAL", "Internal error encountered.")
        if model.endswith("-busy") or accounts()[account].get("busy"):  # over the project's quota
            return google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.googleapis.com/"
                                "online_prediction_requests_per_base_model with base model: " + model)
        if publisher == "anthropic" and model.startswith("claude"):
            return claude(self, model, method, raw)
        if publisher == "google" and model.startswith("gemini"):
            return gemini(self, model, method, parse_qs(url.query), raw)
        return google_error(404, "NOT_FOUND", "Publisher Model projects/%s/locations/%s/publishers/%s/models/%s not found."
                            % (project, region, publisher, model))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        cfg.update(json.load(f))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print("listening %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
