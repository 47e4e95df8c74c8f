"""Reads the mock LLM's tool-call answers with the official SDKs.

Run by TestSDKToolCalls (tools_test.go) with the pinned `openai` and
`anthropic` packages (`make sdks`), for chat completions, Messages and the
Responses API. Each check uses the SDK's own stream helper, which
accumulates tool-call argument fragments and input_json_delta events into
the final message and raises on an event out of place, and
validates every raw event against the SDK's pydantic type. It then sends
the tool result back and expects the text answer that quotes it, as an agent
loop would. Prints one line per check; exits non-zero on the first failure.

Usage: sdk_tools.py BASE_URL WANT_ARG RESULT_PREFIX
"""

import json
import sys
import urllib.request

import anthropic
import openai
import pydantic
from anthropic.types import Message, RawMessageStreamEvent
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
    with urllib.request.urlopen(req, timeout=30) as r:
        for raw in r:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((name, line[len("data: "):]))
                name = None
    return events


def weather_schema():
    return {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"]}


def lookup_schema():
    return {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def chat(base, arg, prefix):
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": weather_schema()}},
             {"type": "function", "function": {"name": "lookup", "parameters": lookup_schema()}}]
    msgs = [{"role": "user", "content": "What is the weather?"}]
    want = [("get_weather", {"city": arg, "days": 1}), ("lookup", {"q": arg})]
    hdr = {"x-mock-tool-calls": "2"}

    with client.chat.completions.stream(model="m", messages=msgs, tools=tools, extra_headers=hdr,
                                        stream_options={"include_usage": True}) as stream:
        done = [ev.name for ev in stream if ev.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    choice = final.choices[0]
    calls = choice.message.tool_calls or []
    got = [(c.function.name, json.loads(c.function.arguments)) for c in calls]
    check(got == want, f"chat stream: calls {got}, want {want}")
    check(done == ["get_weather", "lookup"], f"chat stream: arguments.done events {done}")
    check(choice.finish_reason == "tool_calls" and final.usage is not None, f"chat stream: final {final!r}")
    check(len({c.id for c in calls}) == 2, f"chat stream: ids {[c.id for c in calls]}")

    body = {"model": "m", "messages": msgs, "tools": tools, "stream": True, "stream_options": {"include_usage": True}}
    events = raw_events(base, "/v1/chat/completions", body, hdr)
    check(events and events[-1][1] == "[DONE]", "chat stream does not end with [DONE]")
    for i, (_, data) in enumerate(events[:-1]):
        try:
            ChatCompletionChunk.model_validate_json(data)
        except pydantic.ValidationError as e:
            fail(f"chat chunk {i} does not validate: {e}\n{data}")

    plain = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "call:lookup"}], tools=tools)
    ChatCompletion.model_validate(plain.to_dict())
    call = plain.choices[0].message.tool_calls[0]
    check(call.function.name == "lookup" and json.loads(call.function.arguments) == {"q": arg},
          f"chat: text trigger gave {plain.choices[0].message!r}")

    loop = msgs + [plain.choices[0].message.to_dict(),
                   {"role": "tool", "tool_call_id": call.id, "content": "22 degrees"}]
    answer = client.chat.completions.create(model="m", messages=loop, tools=tools, extra_headers=hdr)
    text = answer.choices[0].message.content
    check(text == prefix + "22 degrees" and answer.choices[0].finish_reason == "stop", f"chat: after the tool result {text!r}")
    print(f"ok chat: {len(events)} events, calls {[n for n, _ in got]}, then {text!r}")


def messages(base, arg, prefix):
    client = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)
    tools = [{"name": "get_weather", "input_schema": weather_schema()},
             {"name": "lookup", "input_schema": lookup_schema()}]
    msgs = [{"role": "user", "content": "call:get_weather and call:lookup"}]
    want = [("get_weather", {"city": arg, "days": 1}), ("lookup", {"q": arg})]

    with client.messages.stream(model="c", max_tokens=64, messages=msgs, tools=tools) as stream:
        for _ in stream:
            pass
        final = stream.get_final_message()
    got = [(b.name, b.input) for b in final.content if b.type == "tool_use"]
    check(got == want, f"messages stream: calls {got}, want {want}")
    check(final.stop_reason == "tool_use", f"messages stream: final {final!r}")
    Message.model_validate(final.to_dict())

    hdr = {"anthropic-version": "2023-06-01", "x-api-key": "unused"}
    events = raw_events(base, "/v1/messages", {"model": "c", "max_tokens": 64, "messages": msgs, "tools": tools,
                                               "stream": True}, hdr)
    adapter = pydantic.TypeAdapter(RawMessageStreamEvent)
    for i, (name, data) in enumerate(events):
        if name == "ping":
            continue
        try:
            ev = adapter.validate_json(data)
        except pydantic.ValidationError as e:
            fail(f"messages event {i} ({name}) does not validate: {e}\n{data}")
        check(name == ev.type, f"messages event {i}: event line {name!r}, type {ev.type!r}")

    plain = client.messages.create(model="c", max_tokens=64, messages=msgs, tools=tools,
                                   extra_headers={"x-mock-tool-calls": "1"})
    Message.model_validate(plain.to_dict())
    use = plain.content[0]
    check(use.type == "tool_use" and use.name == "get_weather" and use.input == want[0][1], f"messages: {plain!r}")

    loop = msgs + [{"role": "assistant", "content": [b.to_dict() for b in plain.content]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "22 degrees"}]}]
    answer = client.messages.create(model="c", max_tokens=64, messages=loop, tools=tools)
    text = "".join(b.text for b in answer.content if b.type == "text")
    check(text == prefix + "22 degrees" and answer.stop_reason == "end_turn", f"messages: after the tool result {answer!r}")
    print(f"ok messages: {len(events)} events, calls {[n for n, _ in got]}, then {text!r}")


def responses(base, arg, prefix):
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    tools = [{"type": "function", "name": "get_weather", "parameters": weather_schema(), "strict": False},
             {"type": "function", "name": "lookup", "parameters": lookup_schema(), "strict": False}]
    inp = [{"role": "user", "content": "call:get_weather and call:lookup*2"}]
    want = [("get_weather", {"city": arg, "days": 1}), ("lookup", {"q": arg})]

    with client.responses.stream(model="r", input=inp, tools=tools) as stream:
        done = [ev.name for ev in stream if ev.type == "response.function_call_arguments.done"]
        final = stream.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    got = [(c.name, json.loads(c.arguments)) for c in calls]
    check(got == want, f"responses stream: calls {got}, want {want}")
    check(done == ["get_weather", "lookup"], f"responses stream: arguments.done events {done}")
    check(final.usage is not None and final.usage.output_tokens > 0, f"responses stream: final {final!r}")

    events = raw_events(base, "/v1/responses", {"model": "r", "input": inp, "tools": tools, "stream": True}, {})
    adapter = pydantic.TypeAdapter(ResponseStreamEvent)
    for i, (name, data) in enumerate(events):
        try:
            ev = adapter.validate_json(data)
        except pydantic.ValidationError as e:
            fail(f"responses event {i} ({name}) does not validate: {e}\n{data}")
        check(name == ev.type, f"responses event {i}: event line {name!r}, type {ev.type!r}")

    # The loop: lookup asked for two turns, get_weather for one.
    loop = inp + [c.to_dict() for c in calls] + [
        {"type": "function_call_output", "call_id": c.call_id, "output": f"{c.name} done"} for c in calls]
    second = client.responses.create(model="r", input=loop, tools=tools)
    Response.model_validate(second.to_dict())
    got2 = [(o.name, json.loads(o.arguments)) for o in second.output if o.type == "function_call"]
    check(got2 == want[1:], f"responses: second turn's calls {got2}, want {want[1:]}")
    loop += [o.to_dict() for o in second.output] + [
        {"type": "function_call_output", "call_id": second.output[0].call_id, "output": "22 degrees"}]
    answer = client.responses.create(model="r", input=loop, tools=tools)
    check(answer.output_text == prefix + "22 degrees", f"responses: after the loop {answer!r}")
    print(f"ok responses: {len(events)} events, calls {[n for n, _ in got]}, {[n for n, _ in got2]}, "
          f"then {answer.output_text!r}")


def main():
    if len(sys.argv) != 4:
        fail(__doc__)
    base, arg, prefix = sys.argv[1:]
    print(f"openai {openai.__version__}, anthropic {anthropic.__version__}")
    chat(base, arg, prefix)
    messages(base, arg, prefix)
    responses(base, arg, prefix)
    print(json.dumps({"passed": 3}))


if __name__ == "__main__":
    main()
