"""Reads the mock LLM's answers through the gateway with the official SDKs.

Run by e2e/sdk_test.go with the pinned `openai` and `anthropic` packages
(`make sdks`). Each check uses the SDK's own stream helper, which accumulates
the events into a response and raises on an event out of place (a text delta
before its output item, a content block delta before message_start, ...),
and validates every raw event against the SDK's pydantic type, which rejects
a missing required field. Prints one line per check; exits non-zero on the
first failure.

Usage: sdk_streams.py BASE_URL OPENAI_MODEL ANTHROPIC_MODEL WANT_TEXT
"""

import json
import sys
import urllib.error
import urllib.request

import anthropic
import openai
import pydantic
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def raw_events(base, path, body, headers):
    """The stream's (event name, data) pairs, read without any SDK."""
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **headers})
    events, name = [], None
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            for raw in r:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    name = line[len("event: "):]
                elif line.startswith("data: "):
                    events.append((name, line[len("data: "):]))
                    name = None
    except urllib.error.HTTPError as e:
        fail(f"{path}: status {e.code}: {e.read()!r}")
    return events


def validate_each(adapter, events, what):
    types = []
    for i, (name, data) in enumerate(events):
        try:
            ev = adapter.validate_json(data)
        except pydantic.ValidationError as e:
            fail(f"{what} event {i} ({name}) does not validate: {e}\n{data}")
        check(name is None or name == ev.type, f"{what} event {i}: event line {name!r}, type {ev.type!r}")
        types.append(ev.type)
    return types


def responses(base, model, want):
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    with client.responses.stream(model=model, input="Say hello") as stream:
        deltas = "".join(ev.delta for ev in stream if ev.type == "response.output_text.delta")
        final = stream.get_final_response()
    check(deltas == want, f"responses stream: deltas {deltas!r}, want {want!r}")
    check(final.output_text == want, f"responses stream: final output_text {final.output_text!r}")
    check(final.status == "completed" and final.usage is not None, f"responses stream: final {final!r}")
    Response.model_validate(final.to_dict())

    types = validate_each(
        pydantic.TypeAdapter(ResponseStreamEvent),
        raw_events(base, "/v1/responses", {"model": model, "input": "hi", "stream": True}, {}),
        "responses",
    )
    n = types.count("response.output_text.delta")
    want_types = (
        ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
        + ["response.output_text.delta"] * n
        + ["response.output_text.done", "response.content_part.done", "response.output_item.done",
           "response.completed"]
    )
    check(n > 0 and types == want_types, f"responses event types {types}")

    plain = client.responses.create(model=model, input="hi")
    Response.model_validate(plain.to_dict())
    check(plain.output_text == want, f"responses: output_text {plain.output_text!r}")
    print(f"ok responses: {len(types)} events, text {deltas!r}")


def chat(base, model, want):
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    msgs = [{"role": "user", "content": "Say hello"}]
    with client.chat.completions.stream(model=model, messages=msgs, stream_options={"include_usage": True}) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    got = final.choices[0].message.content
    check(got == want, f"chat stream: content {got!r}, want {want!r}")
    check(final.choices[0].finish_reason == "stop" and final.usage is not None, f"chat stream: final {final!r}")

    events = raw_events(base, "/v1/chat/completions",
                        {"model": model, "messages": msgs, "stream": True, "stream_options": {"include_usage": True}}, {})
    check(events and events[-1][1] == "[DONE]", "chat stream does not end with [DONE]")
    for i, (_, data) in enumerate(events[:-1]):
        try:
            ChatCompletionChunk.model_validate_json(data)
        except pydantic.ValidationError as e:
            fail(f"chat chunk {i} does not validate: {e}\n{data}")

    plain = client.chat.completions.create(model=model, messages=msgs)
    ChatCompletion.model_validate(plain.to_dict())
    check(plain.choices[0].message.content == want, f"chat: content {plain.choices[0].message.content!r}")
    print(f"ok chat: {len(events)} events, text {got!r}")


def messages(base, model, want):
    client = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)
    msgs = [{"role": "user", "content": "Say hello"}]
    with client.messages.stream(model=model, max_tokens=64, messages=msgs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    check(text == want, f"messages stream: text {text!r}, want {want!r}")
    check(final.stop_reason == "end_turn" and final.content[0].text == want, f"messages stream: final {final!r}")
    Message.model_validate(final.to_dict())

    hdr = {"anthropic-version": "2023-06-01", "x-api-key": "unused"}
    events = raw_events(base, "/v1/messages", {"model": model, "max_tokens": 64, "messages": msgs, "stream": True}, hdr)
    # ping may come anywhere and is not a message event.
    pings = [e for e in events if e[0] == "ping"]
    check(all(json.loads(d) == {"type": "ping"} for _, d in pings), f"messages: ping events {pings}")
    types = validate_each(pydantic.TypeAdapter(RawMessageStreamEvent), [e for e in events if e[0] != "ping"], "messages")
    n = types.count("content_block_delta")
    want_types = (["message_start", "content_block_start"] + ["content_block_delta"] * n
                  + ["content_block_stop", "message_delta", "message_stop"])
    check(n > 0 and types == want_types, f"messages event types {types}")

    plain = client.messages.create(model=model, max_tokens=64, messages=msgs)
    Message.model_validate(plain.to_dict())
    check(plain.content[0].text == want, f"messages: text {plain.content[0].text!r}")

    count = client.messages.count_tokens(model=model, messages=msgs)
    MessageTokensCount.model_validate(count.to_dict())
    check(count.input_tokens > 0, f"count_tokens: {count!r}")
    print(f"ok messages: {len(events)} events, text {text!r}; count_tokens {count.input_tokens}")


def main():
    if len(sys.argv) != 5:
        fail(__doc__)
    base, openai_model, anthropic_model, want = sys.argv[1:]
    print(f"openai {openai.__version__}, anthropic {anthropic.__version__}")
    responses(base, openai_model, want)
    chat(base, openai_model, want)
    messages(base, anthropic_model, want)
    print(json.dumps({"passed": 3}))


if __name__ == "__main__":
    main()
