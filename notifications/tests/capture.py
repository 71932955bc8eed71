"""Local stand-ins for the notification services, started by the tests: one HTTP server that answers as
Telegram's Bot API and Discord's and Slack's incoming webhooks, and a small SMTP server. Both record what
they receive (with the time), and can be told to answer with an error."""

from __future__ import annotations

import email
import json
import socketserver
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    body: Any
    at: float
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""

    def form(self) -> dict[str, tuple[str | None, bytes]]:
        """A multipart body's fields: name -> (file name or None, bytes)."""
        content_type = next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")
        message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + self.raw)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.walk():
            name = part.get_param("name", header="content-disposition")
            if name:
                payload = part.get_payload(decode=True)
                fields[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
        return fields


def email_attachments(received: Received) -> list[tuple[str | None, str, bytes]]:
    """(file name, content type, bytes) of each attachment of a message the SMTP stand-in received."""
    message = email.message_from_string(received.body["data"])
    found = []
    for part in message.walk():
        if part.get_content_disposition() == "attachment":
            payload = part.get_payload(decode=True)
            found.append((part.get_filename(), part.get_content_type(), payload if isinstance(payload, bytes) else b""))
    return found


class CaptureHTTP:
    """`url` + any path: records JSON POSTs. `fail(prefix, status, times)` answers `status` to the next
    `times` requests whose path starts with `prefix`; `hang(prefix, seconds)` delays answers there."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._failures: dict[str, list[int]] = {}
        self._delays: dict[str, float] = {}
        self._lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
                return

            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                status, delay = capture._answer_for(self.path)
                if delay:
                    time.sleep(delay)
                with capture._lock:
                    capture.received.append(Received(self.path, body, time.time(), dict(self.headers.items()), raw))
                payload = json.dumps({"ok": 200 <= status < 300, "result": {}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer_for(self, path: str) -> tuple[int, float]:
        with self._lock:
            delay = next((d for p, d in self._delays.items() if path.startswith(p)), 0.0)
            for prefix, statuses in self._failures.items():
                if path.startswith(prefix) and statuses:
                    return statuses.pop(0), delay
        return 200, delay

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(self, prefix: str, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.setdefault(prefix, []).extend([status] * times)

    def hang(self, prefix: str, seconds: float) -> None:
        with self._lock:
            self._delays[prefix] = seconds

    def on(self, prefix: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.startswith(prefix)]

    def __enter__(self) -> CaptureHTTP:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class CaptureSMTP:
    """A minimal SMTP server (enough for smtplib): records each message's recipients and text.
    `refuse` holds addresses answered 550 at RCPT TO."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.refuse: set[str] = set()
        capture = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                def say(line: str) -> None:
                    self.wfile.write((line + "\r\n").encode())

                say("220 capture ESMTP")
                recipients: list[str] = []
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    line = raw.decode("utf-8", "replace").strip()
                    verb = line.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        say("250 capture")
                    elif verb == "MAIL":
                        recipients = []
                        say("250 OK")
                    elif verb == "RCPT":
                        address = line.split(":", 1)[1].strip().strip("<>")
                        if address in capture.refuse:
                            say("550 no such user")
                        else:
                            recipients.append(address)
                            say("250 OK")
                    elif verb == "DATA":
                        say("354 end with <CRLF>.<CRLF>")
                        lines: list[str] = []
                        while True:
                            data = self.rfile.readline().decode("utf-8", "replace")
                            if data in (".\r\n", ".\n", ""):
                                break
                            lines.append(data[1:] if data.startswith("..") else data)  # SMTP dot-stuffing
                        capture.messages.append(
                            Received("smtp", {"to": recipients, "data": "".join(lines)}, time.time())
                        )
                        say("250 OK queued")
                    elif verb == "QUIT":
                        say("221 bye")
                        return
                    else:
                        say("250 OK")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def __enter__(self) -> CaptureSMTP:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
