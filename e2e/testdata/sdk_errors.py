"""Checks that the official SDKs read the errors the gateway answers: each
case calls MODEL through the gateway, streamed or not, and expects the SDK
to raise its own error class for STATUS, with the error type TYPE and a
message holding WANT.

Run by e2e/googleerrors_test.go for Claude on the fake Vertex AI, whose
platform errors come in Google's shape.

Usage: sdk_errors.py BASE_URL CASES_JSON
CASES_JSON: [{"api": "messages"|"chat", "model", "stream", "status", "type", "want"}]
"""

import json
import sys

import anthropic
import openai

ANTHROPIC_CLASSES = {401: anthropic.AuthenticationError, 403: anthropic.PermissionDeniedError,
                     429: anthropic.RateLimitError, 500: anthropic.InternalServerError}
OPENAI_CLASSES = {401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
                  429: openai.RateLimitError, 500: openai.InternalServerError}


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def call(base, c):
    msgs = [{"role": "user", "content": "hi"}]
    if c["api"] == "messages":
        client = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)
        return client.messages.create(model=c["model"], max_tokens=8, messages=msgs, stream=c["stream"])
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    return client.chat.completions.create(model=c["model"], messages=msgs, stream=c["stream"])


def main():
    base, cases = sys.argv[1], json.loads(sys.argv[2])
    for c in cases:
        name = "%(api)s %(model)s stream=%(stream)s" % c
        classes = ANTHROPIC_CLASSES if c["api"] == "messages" else OPENAI_CLASSES
        try:
            call(base, c)
        except (anthropic.APIStatusError, openai.APIStatusError) as e:
            if not isinstance(e, classes[c["status"]]) or e.status_code != c["status"]:
                fail("%s: %s %d, want %s" % (name, type(e).__name__, e.status_code, classes[c["status"]].__name__))
            if c["api"] == "messages":
                body = e.body if isinstance(e.body, dict) else {}
                typ, msg = body.get("error", {}).get("type"), body.get("error", {}).get("message", "")
                if body.get("type") != "error":
                    fail("%s: body %r is not Anthropic's error shape" % (name, e.body))
            else:
                typ, msg = e.type, e.message
            if typ != c["type"] or c["want"] not in msg:
                fail("%s: type %r message %r, want %r holding %r" % (name, typ, msg, c["type"], c["want"]))
            print("ok: %s -> %s %d %s" % (name, type(e).__name__, e.status_code, typ), flush=True)
            continue
        fail(name + ": no error raised")
    print(json.dumps({"passed": len(cases)}), flush=True)


if __name__ == "__main__":
    main()
