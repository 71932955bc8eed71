"""A local stand-in for an OpenAI-compatible chat API, started by the advisor tests: it records each request
(path, headers, JSON body) and answers what the test set: a review as the message content (with usage), any
body, an HTTP error, or nothing for a while."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


def completion(content: str, *, prompt_tokens: int = 1000, completion_tokens: int = 200) -> dict[str, Any]:
    """A chat-completions answer whose first choice says `content`."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class StandInLLM:
    """`url` is the API's root. `answer_review(dict)`, `answer_raw(status, bytes)` and `hang(seconds)` set
    what the next requests get."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._status = 200
        self._payload = json.dumps(completion('{"summary": "ok", "observations": [], "actions": []}')).encode()
        self._delay = 0.0
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (http.server's name)
                return

            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stand_in._lock:
                    stand_in.requests.append(Request(self.path, dict(self.headers.items()), raw))
                    status, payload, delay = stand_in._status, stand_in._payload, stand_in._delay
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up waiting (the timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer_review(self, review: Any, **usage: int) -> None:
        self.answer_raw(200, json.dumps(completion(json.dumps(review), **usage)).encode())

    def answer_raw(self, status: int, payload: bytes) -> None:
        with self._lock:
            self._status, self._payload = status, payload

    def hang(self, seconds: float) -> None:
        with self._lock:
            self._delay = seconds

    def __enter__(self) -> StandInLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
