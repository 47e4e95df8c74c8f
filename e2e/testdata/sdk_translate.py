"""Calls each API's models served with the other API, through the gateway,
with the official SDKs: every answer the client gets is translated.

Run by e2e/translate_test.go. It reuses the checks of sdk_streams.py (text,
streamed and not, every raw event validated against the SDK's types, and
count_tokens) and of the mock's sdk_tools.py (streamed and parallel tool
calls, then the tool result round trip), against a gateway whose routes send
the chat models to the Anthropic provider and the Messages models to the
OpenAI one.

Usage: sdk_translate.py BASE_URL CHAT_MODEL MESSAGES_MODEL WANT_TEXT TOOLS_DIR TOOL_ARG RESULT_PREFIX
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sdk_streams  # noqa: E402


def main():
    if len(sys.argv) != 8:
        sdk_streams.fail(__doc__)
    base, chat_model, messages_model, want, tools_dir, arg, prefix = sys.argv[1:]
    sys.path.insert(0, tools_dir)
    import sdk_tools  # noqa: E402

    sdk_streams.chat(base, chat_model, want)
    sdk_streams.messages(base, messages_model, want)
    sdk_tools.chat(base, arg, prefix)
    sdk_tools.messages(base, arg, prefix)
    print(json.dumps({"passed": 4}))


if __name__ == "__main__":
    main()
