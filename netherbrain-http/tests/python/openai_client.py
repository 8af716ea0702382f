#!/usr/bin/env python3
"""Drives Netherbrain's OpenAI-compatible endpoints with the official
`openai` package. Run by `tests/openai_compat.rs` against a test server;
exits non-zero (with the failed assertion) when something is off and prints
`ALL OK` at the end.

    python3 openai_client.py --base-url http://127.0.0.1:8080/v1 \
        --api-key nb_... --model tiny --expect "Hello from Netherbrain!"
"""

import argparse
import json
import sys

import openai


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--expect", default=None, help="the exact reply text")
    parser.add_argument(
        "--client-tools",
        action="store_true",
        help="a client-tool round trip: get_weather(Oslo) answered with a tool "
        "message, then a streamed get_weather(Rome) call",
    )
    parser.add_argument(
        "--fail-stream",
        action="store_true",
        help="one more streamed request whose run fails mid-stream (expect APIError)",
    )
    args = parser.parse_args()

    client = openai.OpenAI(
        base_url=args.base_url, api_key=args.api_key, timeout=30, max_retries=0
    )

    # Models: the presets.
    models = [m.id for m in client.models.list()]
    assert args.model in models, f"{args.model} not in {models}"
    model = client.models.retrieve(args.model)
    assert model.id == args.model and model.owned_by == "netherbrain", model
    print(f"models ok: {models}")

    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello."},
    ]

    # Non-streaming.
    completion = client.chat.completions.create(
        model=args.model, messages=messages, temperature=0.3, max_tokens=64, user="py"
    )
    assert completion.object == "chat.completion", completion
    assert completion.id.startswith("chatcmpl-"), completion.id
    assert completion.model == args.model, completion.model
    choice = completion.choices[0]
    assert choice.message.role == "assistant", choice
    assert choice.finish_reason == "stop", choice
    text = choice.message.content
    assert text, "empty reply"
    if args.expect is not None:
        assert text == args.expect, f"{text!r} != {args.expect!r}"
    assert completion.usage is not None and completion.usage.total_tokens > 0, completion
    assert (
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    print(f"non-streaming ok: {text!r}")

    # Streaming, without usage.
    stream = client.chat.completions.create(
        model=args.model, messages=messages, stream=True
    )
    parts, finish, ids = [], None, set()
    for chunk in stream:
        ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk", chunk
        assert chunk.usage is None, chunk
        for c in chunk.choices:
            if c.delta.content:
                parts.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    streamed = "".join(parts)
    assert finish == "stop", finish
    assert len(ids) == 1, ids
    if args.expect is not None:
        assert streamed == args.expect, f"{streamed!r} != {args.expect!r}"
    print(f"streaming ok: {streamed!r}")

    # Streaming with usage: the last chunk carries it and no choices.
    stream = client.chat.completions.create(
        model=args.model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1], chunks
    assert chunks[-1].choices == [], chunks[-1]
    assert chunks[-1].usage.total_tokens > 0, chunks[-1]
    streamed = "".join(
        c.delta.content or "" for ch in chunks for c in ch.choices
    )
    if args.expect is not None:
        assert streamed == args.expect, f"{streamed!r} != {args.expect!r}"
    print(f"streaming with usage ok: {chunks[-1].usage}")

    # Errors map to the client's exception classes.
    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("expected NotFoundError")
    except openai.NotFoundError as e:
        assert e.status_code == 404 and e.code == "model_not_found", e
    bad = openai.OpenAI(
        base_url=args.base_url, api_key="nb_badbadba_nope", timeout=30, max_retries=0
    )
    try:
        bad.models.list()
        raise AssertionError("expected AuthenticationError")
    except openai.AuthenticationError as e:
        assert e.status_code == 401 and e.code == "invalid_api_key", e
    try:
        client.chat.completions.create(model=args.model, messages=[])
        raise AssertionError("expected BadRequestError")
    except openai.BadRequestError as e:
        assert e.status_code == 400, e
    print("errors ok")

    if args.client_tools:
        tools = [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            }
        ]
        question = {"role": "user", "content": "Weather in Oslo?"}
        first = client.chat.completions.create(
            model=args.model, messages=[question], tools=tools, tool_choice="auto"
        )
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        calls = choice.message.tool_calls
        assert calls and len(calls) == 1, choice
        assert calls[0].type == "function" and calls[0].function.name == "get_weather"
        assert json.loads(calls[0].function.arguments) == {"city": "Oslo"}, calls[0]
        answer = client.chat.completions.create(
            model=args.model,
            tools=tools,
            messages=[
                question,
                choice.message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": calls[0].id, "content": "snow, -3 C"},
            ],
        )
        assert answer.choices[0].finish_reason == "stop", answer
        assert answer.choices[0].message.content == "Snow in Oslo.", answer
        stream = client.chat.completions.create(
            model=args.model,
            tools=tools,
            stream=True,
            messages=[{"role": "user", "content": "Weather in Rome?"}],
        )
        acc, finish = {}, None
        for chunk in stream:
            for c in chunk.choices:
                for d in c.delta.tool_calls or []:
                    entry = acc.setdefault(d.index, {"id": None, "name": "", "args": ""})
                    entry["id"] = d.id or entry["id"]
                    if d.function is not None:
                        entry["name"] += d.function.name or ""
                        entry["args"] += d.function.arguments or ""
                if c.finish_reason:
                    finish = c.finish_reason
        assert finish == "tool_calls", finish
        assert list(acc) == [0], acc
        assert acc[0]["name"] == "get_weather", acc
        assert json.loads(acc[0]["args"]) == {"city": "Rome"}, acc
        print("client tools ok")

    if args.fail_stream:
        stream = client.chat.completions.create(
            model=args.model, messages=messages, stream=True
        )
        try:
            for _ in stream:
                pass
            raise AssertionError("expected APIError mid-stream")
        except openai.APIError as e:
            assert "upstream" in e.message, e.message
        print("mid-stream error ok")

    print("ALL OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
