"""A fake AWS Bedrock runtime for the end-to-end tests, faithful where the
gateway can get it wrong.

Every request's SigV4 signature is recomputed with botocore (the signer of
AWS's own Python SDK) for the test credentials, over the method, path, the
headers the request says it signed (host among them, as received) and the
exact body; a wrong one is refused as Bedrock does (403
InvalidSignatureException, whose message quotes the canonical request like
AWS's). InvokeModel bodies are checked as Bedrock checks them (no model or
stream field, anthropic_version bedrock-2023-05-31); a valid one is answered
by the Messages API of the Go mock at UPSTREAM (the model from the path,
the stream from the operation), and a streamed answer goes back as AWS
event-stream frames, one per event as it arrives, each read back with
botocore's own event-stream parser before it is sent. Converse and
ConverseStream (any model id) are answered the same way, through the inverse
mapping, in Converse's own JSON and events. A model id containing
"throttled" is answered 429 ThrottlingException; one containing "midstream"
streams until its first text delta, then sends a throttlingException
message in its place and ends, as Bedrock does when it fails mid-stream.

A request signed by an access key in THROTTLED_KEYS is answered 429
ThrottlingException too, as an account over its quota is.

Usage: fake_bedrock.py UPSTREAM ACCESS_KEY_ID SECRET_ACCESS_KEY SESSION_TOKEN REGION [THROTTLED_KEYS]
(SESSION_TOKEN "-" for none; several credentials as comma-separated lists
of the same length). Prints "LISTEN host:port" once it listens on
a port of its own, then serves until killed. GET /_requests returns the
InvokeModel requests so far (path, headers, body) as JSON.
"""

import base64
import binascii
import datetime
import http.server
import json
import struct
import sys
import threading
import urllib.parse
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

UPSTREAM, REGION = sys.argv[1], sys.argv[5]
# access key id -> (secret, session token or None)
CREDENTIALS = {k: (s, None if t == "-" else t)
               for k, s, t in zip(sys.argv[2].split(","), sys.argv[3].split(","), sys.argv[4].split(","))}
THROTTLED_KEYS = set(sys.argv[6].split(",")) if len(sys.argv) > 6 else set()
SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
                      "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")

recorded = []
recorded_lock = threading.Lock()


def encode_header(name, value):
    n, v = name.encode(), value.encode()
    return struct.pack("B", len(n)) + n + struct.pack("!BH", 7, len(v)) + v


def frame(headers, payload):
    """One event-stream message: prelude (total length, headers length, CRC),
    headers, payload, message CRC."""
    hb = b"".join(encode_header(k, v) for k, v in headers)
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack("!II", total, len(hb))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    msg = prelude + hb + payload
    return msg + struct.pack("!I", binascii.crc32(msg) & 0xFFFFFFFF)


def exception_frame(typ, message):
    return frame([(":exception-type", typ), (":content-type", "application/json"), (":message-type", "exception")],
                 json.dumps({"message": message}).encode())


def converse_to_block(b):
    if "text" in b:
        return {"type": "text", "text": b["text"]}
    if "toolUse" in b:
        t = b["toolUse"]
        return {"type": "tool_use", "id": t["toolUseId"], "name": t["name"], "input": t["input"]}
    if "toolResult" in b:
        t = b["toolResult"]
        return {"type": "tool_result", "tool_use_id": t["toolUseId"], "is_error": t.get("status") == "error",
                "content": [{"type": "text", "text": c["text"]} for c in t["content"]]}
    if "image" in b:
        i = b["image"]
        return {"type": "image", "source": {"type": "base64", "media_type": "image/" + i["format"], "data": i["source"]["bytes"]}}
    raise ValueError("unknown Converse content block %r" % b)


def chunk_frame(event_json):
    payload = json.dumps({"bytes": base64.b64encode(event_json).decode()}).encode()
    msg = frame([(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")], payload)
    # Read back with botocore's parser: a frame AWS's SDK could not read fails here.
    buf = EventStreamBuffer()
    buf.add_data(msg)
    parsed = list(buf)
    assert len(parsed) == 1 and parsed[0].payload == payload and parsed[0].headers[":event-type"] == "chunk"
    return msg


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def error(self, status, typ, message):
        body = json.dumps({"message": message}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("x-amzn-errortype", typ + ":http://internal.amazon.com/coral/com.amazon.bedrock/")
        self.send_header("x-amzn-requestid", "fake-request-id")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != "/_requests":
            return self.error(404, "UnknownOperationException", "unknown operation")
        with recorded_lock:
            body = json.dumps(recorded).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def check_signature(self, body):
        """Returns None, or the (status, type, message) Bedrock refuses with."""
        auth = self.headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return 403, "MissingAuthenticationTokenException", "Missing Authentication Token"
        fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        key, date, region, service, _ = fields["Credential"].split("/")
        if key not in CREDENTIALS:
            return 403, "UnrecognizedClientException", "The security token included in the request is invalid."
        SECRET_KEY, TOKEN = CREDENTIALS[key]
        if TOKEN is not None and self.headers.get("x-amz-security-token") != TOKEN:
            return 403, "UnrecognizedClientException", "The security token included in the request is invalid."
        if region != REGION or service != "bedrock":
            return 403, "InvalidSignatureException", f"Credential should be scoped to a valid region or service, not {region}/{service}."
        amz_date = self.headers.get("x-amz-date", "")
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 300:
            return 403, "InvalidSignatureException", "Signature expired: " + amz_date
        signed = fields["SignedHeaders"].split(";")
        if "host" not in signed:
            return 403, "InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization."
        headers = {h: self.headers.get(h, "") for h in signed}
        req = AWSRequest(method=self.command, url="http://" + self.headers["host"] + self.path, data=body, headers=headers)
        req.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(key, SECRET_KEY, TOKEN), "bedrock", REGION)
        canonical = signer.canonical_request(req)
        want = signer.signature(signer.string_to_sign(req, canonical), req)
        if want != fields["Signature"]:
            return 403, "InvalidSignatureException", (SIGNATURE_MISMATCH + "\n\nThe Canonical String for this request should have been\n'"
                                                      + canonical + "'\n")
        return None

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        refusal = self.check_signature(body)
        if refusal:
            return self.error(*refusal)
        parts = self.path.split("/")
        if len(parts) != 4 or parts[1] != "model" or parts[3] not in ("invoke", "invoke-with-response-stream", "converse", "converse-stream"):
            return self.error(404, "UnknownOperationException", "unknown operation " + self.path)
        model = urllib.parse.unquote(parts[2])
        if parts[3].startswith("converse"):
            return self.converse(model, parts[3] == "converse-stream", body)
        stream = parts[3] == "invoke-with-response-stream"
        try:
            req = json.loads(body)
        except ValueError:
            return self.error(400, "ValidationException", "Malformed input request, please reformat your input and try again.")
        with recorded_lock:
            recorded.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        for extra in ("model", "stream"):
            if extra in req:
                return self.error(400, "ValidationException", f"Malformed input request: #: extraneous key [{extra}] is not permitted, please reformat your input and try again.")
        if req.get("anthropic_version") != "bedrock-2023-05-31":
            return self.error(400, "ValidationException", "Malformed input request: #/anthropic_version: expected bedrock-2023-05-31")
        signed_by = self.headers["authorization"].split("Credential=", 1)[1].split("/", 1)[0]
        if "throttled" in model or signed_by in THROTTLED_KEYS:
            return self.error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
        del req["anthropic_version"]
        req["model"], req["stream"] = model, stream
        headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        # The mock's own test switches (x-mock-tool-calls) pass through.
        headers.update({k: v for k, v in self.headers.items() if k.lower().startswith("x-mock-")})
        up = urllib.request.Request(UPSTREAM + "/v1/messages", data=json.dumps(req).encode(), headers=headers)
        with urllib.request.urlopen(up) as resp:
            if stream:
                self.stream_answer(resp, "midstream" in model)
            else:
                self.json_answer(resp.read())

    def converse(self, model, stream, body):
        """Converse: checked as Bedrock checks it, answered by the mock's
        Messages API through the inverse mapping."""
        try:
            req = json.loads(body)
        except ValueError:
            return self.error(400, "ValidationException", "Malformed input request, please reformat your input and try again.")
        with recorded_lock:
            recorded.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        unknown = set(req) - {"messages", "system", "inferenceConfig", "toolConfig", "additionalModelRequestFields"}
        if unknown or not isinstance(req.get("messages"), list):
            return self.error(400, "ValidationException", f"Malformed input request: unknown or missing fields {sorted(unknown)}")
        msgs = [{"role": m["role"], "content": [converse_to_block(b) for b in m["content"]]} for m in req["messages"]]
        out = {"model": model, "stream": stream, "messages": msgs,
               "max_tokens": req.get("inferenceConfig", {}).get("maxTokens", 1024)}
        if req.get("system"):
            out["system"] = [{"type": "text", "text": b["text"]} for b in req["system"]]
        tc = req.get("toolConfig")
        if tc:
            out["tools"] = [{"name": t["toolSpec"]["name"], "input_schema": t["toolSpec"]["inputSchema"]["json"]} for t in tc["tools"]]
        headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        headers.update({k: v for k, v in self.headers.items() if k.lower().startswith("x-mock-")})
        up = urllib.request.Request(UPSTREAM + "/v1/messages", data=json.dumps(out).encode(), headers=headers)
        with urllib.request.urlopen(up) as resp:
            if stream:
                return self.converse_stream(resp)
            ans = json.loads(resp.read())
        content = []
        for b in ans["content"]:
            if b["type"] == "text":
                content.append({"text": b["text"]})
            elif b["type"] == "tool_use":
                content.append({"toolUse": {"toolUseId": b["id"], "name": b["name"], "input": b["input"]}})
        u = ans["usage"]
        data = json.dumps({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": ans["stop_reason"],
                           "usage": {"inputTokens": u["input_tokens"], "outputTokens": u["output_tokens"],
                                     "totalTokens": u["input_tokens"] + u["output_tokens"]},
                           "metrics": {"latencyMs": 1}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def converse_stream(self, resp):
        self.send_response(200)
        self.send_header("content-type", "application/vnd.amazon.eventstream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        usage, stop = {"inputTokens": 0, "outputTokens": 0}, "end_turn"

        def send(name, payload):
            msg = frame([(":event-type", name), (":content-type", "application/json"), (":message-type", "event")],
                        json.dumps(payload).encode())
            self.wfile.write(b"%x\r\n%s\r\n" % (len(msg), msg))
            self.wfile.flush()

        for line in resp:
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            ev = json.loads(line[len(b"data:"):])
            t = ev["type"]
            if t == "message_start":
                usage["inputTokens"] = ev["message"]["usage"]["input_tokens"]
                send("messageStart", {"role": "assistant"})
            elif t == "content_block_start" and ev["content_block"]["type"] == "tool_use":
                cb = ev["content_block"]
                send("contentBlockStart", {"contentBlockIndex": ev["index"], "start": {"toolUse": {"toolUseId": cb["id"], "name": cb["name"]}}})
            elif t == "content_block_delta":
                d = ev["delta"]
                delta = {"text": d["text"]} if d["type"] == "text_delta" else {"toolUse": {"input": d["partial_json"]}}
                send("contentBlockDelta", {"contentBlockIndex": ev["index"], "delta": delta})
            elif t == "content_block_stop":
                send("contentBlockStop", {"contentBlockIndex": ev["index"]})
            elif t == "message_delta":
                stop = ev["delta"]["stop_reason"]
                usage["outputTokens"] = ev["usage"]["output_tokens"]
            elif t == "message_stop":
                send("messageStop", {"stopReason": stop})
                usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
                send("metadata", {"usage": usage, "metrics": {"latencyMs": 1}})
        self.wfile.write(b"0\r\n\r\n")

    def json_answer(self, data):
        usage = json.loads(data).get("usage", {})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("x-amzn-bedrock-input-token-count", str(usage.get("input_tokens", 0)))
        self.send_header("x-amzn-bedrock-output-token-count", str(usage.get("output_tokens", 0)))
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def stream_answer(self, resp, fail_midway):
        self.send_response(200)
        self.send_header("content-type", "application/vnd.amazon.eventstream")
        self.send_header("x-amzn-bedrock-content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for line in resp:
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            msg = chunk_frame(line[len(b"data:"):].strip())
            if fail_midway and b"content_block_delta" in line:
                msg = exception_frame("throttlingException", "Too many tokens, please wait before trying again.")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(msg), msg))
            self.wfile.flush()
            if fail_midway and b"content_block_delta" in line:
                break
        self.wfile.write(b"0\r\n\r\n")


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("LISTEN %s:%d" % srv.server_address, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
