"""The benches' lean HTTP client (`bench.http`) against a real daphne-style peer: framing and errors."""

from __future__ import annotations

import asyncio

import pytest

from bench import http


async def _serve(responses: list[bytes]) -> tuple[asyncio.Server, int]:
    """A loopback server that answers each request on a connection with the next canned response."""
    pending = iter(responses)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(
                next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1]
            )
            await reader.readexactly(length)
            response = next(pending, None)
            if response is None:
                writer.close()
                return
            # Split the response over several writes, as a real server may.
            for index in range(0, len(response), 7):
                writer.write(response[index : index + 7])
                await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_content_length_and_chunked_answers_on_one_connection_then_a_close():
    async def scenario() -> None:
        server, port = await _serve(
            [
                b'HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok": "a"}',
                b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"ok\r\n7\r\n": "b"}\r\n0\r\n\r\n',
            ]
        )
        async with server:
            connection = await http.Connection.open("127.0.0.1", port)
            raw = http.request_bytes(f"127.0.0.1:{port}", "/api/webhook/x", b'{"a": 1}')
            assert await connection.request(raw, timeout=5) == (202, b'{"ok": "a"}')
            assert await connection.request(raw, timeout=5) == (200, b'{"ok": "b"}')
            with pytest.raises(http.HTTPError, match="closed"):
                await connection.request(raw, timeout=5)
            connection.close()

    asyncio.run(scenario())


def test_a_response_without_framing_is_an_error():
    async def scenario() -> None:
        server, port = await _serve([b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"])
        async with server:
            connection = await http.Connection.open("127.0.0.1", port)
            with pytest.raises(http.HTTPError, match="malformed"):
                await connection.request(http.request_bytes("h", "/", b"{}"), timeout=5)
            connection.close()

    asyncio.run(scenario())
