"""A small PNG line chart written with zlib alone (the daily report's and the performance page's equity
curves): no plotting library in a worker or a web process for a picture."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from decimal import Decimal

WHITE = (255, 255, 255)
GRID = (225, 228, 232)
ZERO = (150, 150, 150)
LINE = (33, 110, 214)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_encode(pixels: list[bytearray], width: int, height: int) -> bytes:
    """RGB rows (3 bytes a pixel) -> PNG bytes."""
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    )


def line_chart_png(values: Sequence[Decimal], *, width: int = 640, height: int = 240, margin: int = 12) -> bytes:
    """The values as a line from left to right, scaled to fit, with a grey line at zero when it is in range."""
    pixels = [bytearray(WHITE * width) for _ in range(height)]

    def put(x: int, y: int, color: tuple[int, int, int]) -> None:
        if 0 <= x < width and 0 <= y < height:
            pixels[y][3 * x : 3 * x + 3] = bytes(color)

    for y in range(margin, height - margin + 1, max(1, (height - 2 * margin) // 4)):
        for x in range(margin, width - margin):
            put(x, y, GRID)
    points = [float(v) for v in values] or [0.0]
    if len(points) == 1:
        points = points * 2
    low, high = min(points + [0.0]), max(points + [0.0])
    span = (high - low) or 1.0

    def to_xy(index: int, value: float) -> tuple[int, int]:
        x = margin + round(index * (width - 2 * margin - 1) / (len(points) - 1))
        y = height - margin - 1 - round((value - low) * (height - 2 * margin - 1) / span)
        return x, y

    _, zero_y = to_xy(0, 0.0)
    for x in range(margin, width - margin):
        put(x, zero_y, ZERO)
    for index in range(len(points) - 1):
        (x0, y0), (x1, y1) = to_xy(index, points[index]), to_xy(index + 1, points[index + 1])
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for step in range(steps + 1):
            x = x0 + round((x1 - x0) * step / steps)
            y = y0 + round((y1 - y0) * step / steps)
            for dy in (0, 1):  # two pixels thick
                put(x, y + dy, LINE)
    return png_encode(pixels, width, height)
