"""Calls models served by the Gemini API through the gateway with the
official SDKs: every request is translated to generateContent (or
streamGenerateContent?alt=sse) and every answer back.

Run by e2e/gemini_test.go, and by e2e/vertex_test.go for Claude and Gemini
on Vertex AI (whose fake answers the same way). Text, streamed and not, reuses the checks of
sdk_streams.py (the SDKs' stream helpers, every raw event validated against
the SDK's types, count_tokens). Tools: the fake Gemini calls every declared
function when the user text holds TRIGGER, each string argument ARG, and
answers function responses with RESULT_PREFIX + the results joined by "|".

Usage: sdk_gemini.py BASE_URL CHAT_MODEL MESSAGES_MODEL WANT_TEXT TRIGGER ARG RESULT_PREFIX
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import anthropic  # noqa: E402
import openai  # noqa: E402
import pydantic  # noqa: E402
from anthropic.types import Message, RawMessageStreamEvent  # noqa: E402
from openai.types.chat import ChatCompletion, ChatCompletionChunk  # noqa: E402

import sdk_streams  # noqa: E402
from sdk_streams import check, fail, raw_events  # noqa: E402

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
           "required": ["city", "days"], "additionalProperties": False}
LOOKUP = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def chat_tools(base, model, trigger, arg, prefix):
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
             {"type": "function", "function": {"name": "lookup", "parameters": LOOKUP}}]
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Please " + trigger}]
    want = [("get_weather", {"city": arg, "days": 1}), ("lookup", {"q": arg})]

    with client.chat.completions.stream(model=model, messages=msgs, tools=tools,
                                        stream_options={"include_usage": True}) as stream:
        done = [ev.name for ev in stream if ev.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    got = [(c.function.name, json.loads(c.function.arguments)) for c in calls]
    check(got == want, f"chat stream: calls {got}, want {want}")
    check(done == ["get_weather", "lookup"], f"chat stream: arguments.done events {done}")
    check(final.choices[0].finish_reason == "tool_calls" and final.usage and final.usage.prompt_tokens > 0,
          f"chat stream: final {final!r}")

    events = raw_events(base, "/v1/chat/completions", {"model": model, "messages": msgs, "tools": tools, "stream": True}, {})
    check(events and events[-1][1] == "[DONE]", "chat stream does not end with [DONE]")
    for i, (_, data) in enumerate(events[:-1]):
        try:
            ChatCompletionChunk.model_validate_json(data)
        except pydantic.ValidationError as e:
            fail(f"chat chunk {i} does not validate: {e}\n{data}")

    plain = client.chat.completions.create(model=model, messages=msgs, tools=tools, max_tokens=100, temperature=0.5)
    ChatCompletion.model_validate(plain.to_dict())
    calls = plain.choices[0].message.tool_calls
    check(len(calls) == 2 and len({c.id for c in calls}) == 2, f"chat: calls {calls!r}")
    loop = msgs + [plain.choices[0].message.to_dict()] + [
        {"role": "tool", "tool_call_id": c.id, "content": f"result {i}"} for i, c in enumerate(calls)]
    answer = client.chat.completions.create(model=model, messages=loop, tools=tools)
    text = answer.choices[0].message.content
    check(text == prefix + "result 0|result 1" and answer.choices[0].finish_reason == "stop", f"chat: after the tool results {text!r}")
    print(f"ok chat tools: {len(events)} events, calls {[n for n, _ in got]}, then {text!r}")


def messages_tools(base, model, trigger, arg, prefix):
    client = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER},
             {"name": "lookup", "input_schema": LOOKUP}]
    msgs = [{"role": "user", "content": "Please " + trigger}]
    want = [("get_weather", {"city": arg, "days": 1}), ("lookup", {"q": arg})]

    with client.messages.stream(model=model, max_tokens=64, system="Be brief.", messages=msgs, tools=tools) as stream:
        for _ in stream:
            pass
        final = stream.get_final_message()
    got = [(b.name, b.input) for b in final.content if b.type == "tool_use"]
    check(got == want, f"messages stream: calls {got}, want {want}")
    check(final.stop_reason == "tool_use" and final.usage.output_tokens > 0, f"messages stream: final {final!r}")
    Message.model_validate(final.to_dict())

    hdr = {"anthropic-version": "2023-06-01", "x-api-key": "unused"}
    events = raw_events(base, "/v1/messages", {"model": model, "max_tokens": 64, "messages": msgs, "tools": tools,
                                               "stream": True}, hdr)
    adapter = pydantic.TypeAdapter(RawMessageStreamEvent)
    # ping may come anywhere (Claude on Vertex sends it) and is not a message event.
    events = [e for e in events if e[0] != "ping"]
    for i, (name, data) in enumerate(events):
        try:
            ev = adapter.validate_json(data)
        except pydantic.ValidationError as e:
            fail(f"messages event {i} ({name}) does not validate: {e}\n{data}")
        check(name == ev.type, f"messages event {i}: event line {name!r}, type {ev.type!r}")

    plain = client.messages.create(model=model, max_tokens=64, messages=msgs, tools=tools, extra_body={"top_k": 20})
    Message.model_validate(plain.to_dict())
    uses = [b for b in plain.content if b.type == "tool_use"]
    check(len(uses) == 2 and plain.stop_reason == "tool_use", f"messages: {plain!r}")
    loop = msgs + [{"role": "assistant", "content": [b.to_dict() for b in plain.content]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": f"result {i}"}
                                                for i, u in enumerate(uses)]}]
    with client.messages.stream(model=model, max_tokens=64, messages=loop, tools=tools) as stream:
        text = stream.get_final_text()
        answer = stream.get_final_message()
    check(text == prefix + "result 0|result 1" and answer.stop_reason == "end_turn", f"messages: after the tool results {answer!r}")
    print(f"ok messages tools: {len(events)} events, calls {[n for n, _ in got]}, then {text!r}")


def main():
    if len(sys.argv) != 8:
        fail(__doc__)
    base, chat_model, messages_model, want, trigger, arg, prefix = sys.argv[1:]
    sdk_streams.chat(base, chat_model, want)
    sdk_streams.messages(base, messages_model, want)
    chat_tools(base, chat_model, trigger, arg, prefix)
    messages_tools(base, messages_model, trigger, arg, prefix)
    print(json.dumps({"passed": 2}))


if __name__ == "__main__":
    main()
