"""Validate the golden outputs under testdata against the official SDKs'
types: requests against the create-params types, responses and stream
events against the response models, and each stream through the SDK's own
accumulator. Run by TestGoldenAgainstSDKs with the venv `make sdks` fills.

Usage: sdk_check.py TESTDATA_DIR    (prints {"checked": N} on success)
"""
import json
import pathlib
import sys

import anthropic.types as at
import openai.types.chat as oc
from anthropic.lib.streaming._messages import accumulate_event
from openai.lib.streaming.chat._completions import ChatCompletionStreamState
from openai.types.shared import ErrorObject
from pydantic import TypeAdapter

root = pathlib.Path(sys.argv[1])
checked = 0


def wants(direction, ext):
    for p in sorted((root / direction).glob(f"*.want.{ext}")):
        text = p.read_text()
        if ext == "json" and "refused" in json.loads(text):
            continue
        yield p, text


def events(text):
    """(name, data) for each event of a want.sse file."""
    for raw in text.split("\n\n"):
        if not raw.strip():
            continue
        name, data = "", []
        for line in raw.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
        yield name, "\n".join(data)


def check(path, what, fn):
    global checked
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report any rejection with the file
        sys.exit(f"{path}: {what} rejected by the SDK: {e}")
    checked += 1


anthropic_params = TypeAdapter(at.MessageCreateParams)
openai_params = TypeAdapter(oc.CompletionCreateParams)
anthropic_event = TypeAdapter(at.RawMessageStreamEvent)

for p, t in wants("chat_to_messages", "json"):
    check(p, "MessageCreateParams", lambda: anthropic_params.validate_python(json.loads(t)))
for p, t in wants("messages_to_chat", "json"):
    check(p, "CompletionCreateParams", lambda: openai_params.validate_python(json.loads(t)))
for p, t in wants("messages_response_to_chat", "json"):
    check(p, "ChatCompletion", lambda: oc.ChatCompletion.model_validate_json(t))
for p, t in wants("chat_response_to_messages", "json"):
    check(p, "Message", lambda: at.Message.model_validate_json(t))
for p, t in wants("gemini_response_to_chat", "json"):
    check(p, "ChatCompletion", lambda: oc.ChatCompletion.model_validate_json(t))
for p, t in wants("gemini_response_to_messages", "json"):
    check(p, "Message", lambda: at.Message.model_validate_json(t))
for p, t in wants("gemini_error_to_chat", "json"):
    check(p, "ErrorObject", lambda: ErrorObject.model_validate(json.loads(t)["body"]["error"]))
for p, t in wants("gemini_error_to_messages", "json"):
    check(p, "ErrorResponse", lambda: at.ErrorResponse.model_validate(json.loads(t)["body"]))
for p, t in wants("error_to_chat", "json"):
    check(p, "ErrorObject", lambda: ErrorObject.model_validate(json.loads(t)["body"]["error"]))
for p, t in wants("error_to_messages", "json"):
    check(p, "ErrorResponse", lambda: at.ErrorResponse.model_validate(json.loads(t)["body"]))


def openai_stream(t):
    state = ChatCompletionStreamState()
    for _, data in events(t):
        if data == "[DONE]":
            break
        obj = json.loads(data)
        if "error" in obj:
            ErrorObject.model_validate(obj["error"])
            return
        state.handle_chunk(oc.ChatCompletionChunk.model_validate(obj))
    # The snapshot, not get_final_completion, which raises on "length".
    final = state.current_completion_snapshot
    oc.ChatCompletion.model_validate(final.model_dump())
    for call in final.choices[0].message.tool_calls or []:
        json.loads(call.function.arguments)


def anthropic_stream(t):
    snapshot, bufs = None, {}
    for name, data in events(t):
        obj = json.loads(data)
        if name == "error":
            at.ErrorResponse.model_validate(obj)
            return
        ev = anthropic_event.validate_python(obj)
        snapshot = accumulate_event(event=ev, current_snapshot=snapshot, json_bufs=bufs)
    at.Message.model_validate(snapshot.model_dump())


for p, t in wants("messages_stream_to_chat", "sse"):
    check(p, "ChatCompletionChunk stream", lambda: openai_stream(t))
for p, t in wants("chat_stream_to_messages", "sse"):
    check(p, "RawMessageStreamEvent stream", lambda: anthropic_stream(t))
for p, t in wants("gemini_stream_to_chat", "sse"):
    check(p, "ChatCompletionChunk stream", lambda: openai_stream(t))
for p, t in wants("gemini_stream_to_messages", "sse"):
    check(p, "RawMessageStreamEvent stream", lambda: anthropic_stream(t))

print(json.dumps({"checked": checked}))
