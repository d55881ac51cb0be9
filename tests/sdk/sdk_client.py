"""Drives the gateway with an official SDK, unmodified, and reports what the
SDK returned as JSON, for the Rust tests in tests/scenarios/official_sdks.rs to judge.

    python sdk_client.py '{"sdk": "anthropic", "base_url": "http://127.0.0.1:PORT",
                           "model": "m", "stream": true, "tools": false}'

(`"ca_file": "ca.pem"` makes the SDK trust that CA, for a gateway serving
https with a private certificate. `"count_tokens": true` asks the Anthropic SDK's `messages.count_tokens` instead.)

Prints one JSON line per streamed text piece as it arrives
(`{"piece": "..."}`, flushed at once, so a test can see the stream is
incremental), then one result line: `{"ok": true, ...}` with what the SDK
parsed, or `{"ok": false, "class": "NotFoundError", "status": 404, ...}`
with the exception the SDK raised.
"""

import json
import sys

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather by city",
    "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def http_client(args, default_client):
    """The SDK's own HTTP client, trusting `ca_file` (a gateway serving TLS
    with a private CA) when one is given; else the SDK's default."""
    if not args.get("ca_file"):
        return None
    return default_client(verify=args["ca_file"])


def emit(line):
    print(json.dumps(line), flush=True)


def run_openai(args):
    import openai

    client = openai.OpenAI(
        base_url=args["base_url"] + "/v1",
        api_key=args.get("api_key", "sk-client-secret"),
        max_retries=0,
        http_client=http_client(args, openai.DefaultHttpxClient),
    )
    request = {
        "model": args["model"],
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello?"},
        ],
        "max_tokens": 64,
    }
    if args.get("tools"):
        request["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": WEATHER_TOOL["name"],
                    "description": WEATHER_TOOL["description"],
                    "parameters": WEATHER_TOOL["schema"],
                },
            }
        ]
    try:
        if not args.get("stream"):
            completion = client.chat.completions.create(**request)
            choice = completion.choices[0]
            return {
                "ok": True,
                "class": type(completion).__name__,
                "object": completion.object,
                "model": completion.model,
                "text": choice.message.content,
                "finish_reason": choice.finish_reason,
                "usage": completion.usage.model_dump() if completion.usage else None,
                "tool_calls": [
                    {"name": c.function.name, "arguments": json.loads(c.function.arguments)}
                    for c in (choice.message.tool_calls or [])
                ],
            }
        stream = client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **request)
        text, finish, usage, chunks, calls = "", None, None, 0, {}
        for chunk in stream:
            chunks += 1
            assert chunk.object == "chat.completion.chunk", chunk
            if chunk.usage:
                usage = chunk.usage.model_dump()
            for choice in chunk.choices:
                if choice.delta.content:
                    emit({"piece": choice.delta.content})
                    text += choice.delta.content
                for call in choice.delta.tool_calls or []:
                    entry = calls.setdefault(call.index, {"name": None, "arguments": ""})
                    if call.function and call.function.name:
                        entry["name"] = call.function.name
                    if call.function and call.function.arguments:
                        entry["arguments"] += call.function.arguments
                if choice.finish_reason:
                    finish = choice.finish_reason
        return {
            "ok": True,
            "class": "Stream",
            "chunks": chunks,
            "text": text,
            "finish_reason": finish,
            "usage": usage,
            "tool_calls": [
                {"name": c["name"], "arguments": json.loads(c["arguments"])} for _, c in sorted(calls.items())
            ],
        }
    except openai.APIStatusError as e:
        return status_error(e)
    except openai.APIError as e:
        return {"ok": False, "class": type(e).__name__, "message": str(e)}


def run_anthropic(args):
    import anthropic

    client = anthropic.Anthropic(
        base_url=args["base_url"],
        api_key=args.get("api_key", "sk-ant-client-secret"),
        max_retries=0,
        http_client=http_client(args, anthropic.DefaultHttpxClient),
    )
    request = {
        "model": args["model"],
        "max_tokens": 64,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Hello?"}],
    }
    if args.get("tools"):
        request["tools"] = [
            {
                "name": WEATHER_TOOL["name"],
                "description": WEATHER_TOOL["description"],
                "input_schema": WEATHER_TOOL["schema"],
            }
        ]

    def message_result(message, **extra):
        return {
            "ok": True,
            "class": type(message).__name__,
            "type": message.type,
            "role": message.role,
            "model": message.model,
            "text": "".join(b.text for b in message.content if b.type == "text"),
            "stop_reason": message.stop_reason,
            "usage": {"input_tokens": message.usage.input_tokens, "output_tokens": message.usage.output_tokens},
            "tool_uses": [{"name": b.name, "input": b.input} for b in message.content if b.type == "tool_use"],
            **extra,
        }

    try:
        if args.get("count_tokens"):
            request.pop("max_tokens")
            counted = client.messages.count_tokens(**request)
            return {"ok": True, "class": type(counted).__name__, "input_tokens": counted.input_tokens}
        if not args.get("stream"):
            return message_result(client.messages.create(**request))
        events = []
        with client.messages.stream(**request) as stream:
            for event in stream:
                events.append(event.type)
                if event.type == "text":
                    emit({"piece": event.text})
            final = stream.get_final_message()
        return message_result(final, events=events)
    except anthropic.APIStatusError as e:
        return status_error(e)
    except anthropic.APIError as e:
        return {"ok": False, "class": type(e).__name__, "message": str(e)}


def status_error(e):
    return {
        "ok": False,
        "class": type(e).__name__,
        "status": e.status_code,
        "message": getattr(e, "message", str(e)),
        "body": e.body,
        "retry_after": e.response.headers.get("retry-after"),
    }


def main():
    args = json.loads(sys.argv[1])
    run = {"openai": run_openai, "anthropic": run_anthropic}[args["sdk"]]
    emit(run(args))


if __name__ == "__main__":
    main()
