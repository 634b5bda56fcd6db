"""The Teams app icons, drawn in code and written as PNG with zlib (no imaging library).

Teams wants a full-colour icon of 192×192 pixels (the symbol inside the
central 120×120, on a solid background) and an outline icon of 32×32 pixels:
white on a transparent background. Both show a receipt with a check mark.
``python -m adapters.teams.icons manifest/teams`` writes them.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

RGBA = tuple[int, int, int, int]

ACCENT: RGBA = (0x2B, 0x57, 0x9A, 255)  # the manifest's accentColor
WHITE: RGBA = (255, 255, 255, 255)
CLEAR: RGBA = (0, 0, 0, 0)
GREEN: RGBA = (0x3F, 0xB9, 0x50, 255)


def png(width: int, height: int, pixels: list[list[RGBA]]) -> bytes:
    """An 8-bit RGBA PNG of ``pixels`` (rows of RGBA tuples)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _receipt(size: int, scale: float, ink: RGBA, paper: RGBA, check: RGBA) -> list[list[RGBA]]:
    """A receipt (zigzag foot, three lines, a check mark) on ``paper``, ``scale`` of the side."""
    grid = [[paper for _ in range(size)] for _ in range(size)]
    margin = (1 - scale) / 2 * size
    left, right = round(margin + 0.16 * scale * size), round(size - margin - 0.16 * scale * size)
    top, bottom = round(margin), round(size - margin)
    stroke = max(1, round(size / 32))
    tooth = max(2, (right - left) // 6)

    def fill(x0: int, y0: int, x1: int, y1: int, colour: RGBA) -> None:
        for y in range(max(0, y0), min(size, y1)):
            for x in range(max(0, x0), min(size, x1)):
                grid[y][x] = colour

    # The outline of the receipt, with a zigzag foot.
    fill(left, top, right, top + stroke, ink)
    fill(left, top, left + stroke, bottom - tooth, ink)
    fill(right - stroke, top, right, bottom - tooth, ink)
    for x in range(left, right):
        phase = (x - left) % (2 * tooth)
        y = bottom - tooth + (phase if phase < tooth else 2 * tooth - phase)
        fill(x, y - stroke, x + 1, y, ink)
    # Three lines of text.
    inner = left + 3 * stroke
    for i, width in enumerate((0.7, 0.55, 0.4)):
        y = top + round((0.2 + 0.14 * i) * (bottom - top))
        fill(inner, y, inner + round(width * (right - left - 6 * stroke)), y + stroke, ink)
    # A check mark in the lower right corner.
    cx, cy = right - round(0.28 * (right - left)), bottom - round(0.36 * (bottom - top))
    arm = max(2, round(0.12 * (right - left)))
    thick = max(1, stroke + (1 if size >= 64 else 0))
    for i in range(arm):
        fill(
            cx - arm + i, cy - arm // 2 + i, cx - arm + i + thick, cy - arm // 2 + i + thick, check
        )
    for i in range(2 * arm):
        fill(cx + i, cy + arm // 2 - i, cx + i + thick, cy + arm // 2 - i + thick, check)
    return grid


def color_icon() -> bytes:
    """192×192: a white receipt with a green check on the accent colour."""
    return png(192, 192, _receipt(192, 120 / 192, WHITE, ACCENT, GREEN))


def outline_icon() -> bytes:
    """32×32: the receipt in white on transparent (Teams tints it)."""
    return png(32, 32, _receipt(32, 0.95, WHITE, CLEAR, WHITE))


def write_icons(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "color.png", folder / "outline.png"]
    paths[0].write_bytes(color_icon())
    paths[1].write_bytes(outline_icon())
    return paths


if __name__ == "__main__":  # pragma: no cover - a maintenance helper
    for path in write_icons(Path(sys.argv[1] if len(sys.argv) > 1 else "manifest/teams")):
        print(path)
