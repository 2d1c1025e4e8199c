"""Draw the kernelspec logos (a rounded teal square with a white "{}"), without any image library.

    python kernel/make_logos.py      # writes kernel/logo-32x32.png and kernel/logo-64x64.png
"""

import struct
import zlib
from pathlib import Path


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def logo(size: int) -> bytes:
    teal, white, clear = (0, 121, 107, 255), (255, 255, 255, 255), (0, 0, 0, 0)
    radius, stroke = size // 5, max(size // 16, 2)

    def inside_rounded(x, y):
        cx = min(max(x, radius), size - 1 - radius)
        cy = min(max(y, radius), size - 1 - radius)
        return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2

    def brace(x, y, left: bool):
        # a "{" (or "}") drawn as a vertical bar with a notch in the middle and short serifs at the ends
        top, bottom, mid = size // 4, size - size // 4, size // 2
        bar = size * 3 // 8 if left else size - size * 3 // 8 - stroke
        tip = bar - size // 10 if left else bar + size // 10
        if top <= y < bottom and bar <= x < bar + stroke and abs(y - mid) > stroke // 2:
            return True
        if abs(y - mid) < stroke and min(tip, bar) <= x < max(tip, bar) + stroke:
            return True
        end = bar + size // 10 if left else bar - size // 10
        return (top <= y < top + stroke or bottom - stroke <= y < bottom) and min(end, bar) <= x < max(end, bar) + stroke

    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            color = clear
            if inside_rounded(x, y):
                color = white if brace(x, y, True) or brace(x, y, False) else teal
            row += bytes(color)
        rows.append(bytes(row))
    return png(size, size, rows)


if __name__ == "__main__":
    here = Path(__file__).parent
    for size in (32, 64):
        (here / f"logo-{size}x{size}.png").write_bytes(logo(size))
