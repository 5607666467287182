#!/usr/bin/env python3
"""Draws Hearth's app icons (a flame on a warm tile) for the web app manifest and the phone's
home screen: assets/icons/icon.svg by hand-written geometry, and the PNGs the same shape
rasterized here (4x4 supersampling, no imaging library needed). Run it again only to change
the icon; the files it writes are committed.

    python3 scripts/gen-icons.py
"""
import math
import os
import struct
import zlib

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "hearth-server", "assets", "icons")

TILE = (0x9A, 0x34, 0x12)  # the page's accent colour
OUTER = (0xF5, 0x9E, 0x0B)
INNER = (0xFE, 0xF3, 0xC7)
CORNER = 0.22  # tile corner radius, as a share of the side


def flame(cx, cy, r, tip):
    """A teardrop: a circle and the triangle from `tip` to the circle's tangent points."""
    d = cy - tip
    a = math.asin(r / d)
    length = math.sqrt(d * d - r * r)
    tx, ty = length * math.sin(a), tip + length * math.cos(a)
    tri = ((cx, tip), (cx + tx, ty), (cx - tx, ty))

    def inside(x, y):
        if (x - cx) ** 2 + (y - cy) ** 2 <= r * r:
            return True
        (x1, y1), (x2, y2), (x3, y3) = tri
        def side(ax, ay, bx, by):
            return (bx - ax) * (y - ay) - (by - ay) * (x - ax)
        s1, s2, s3 = side(x1, y1, x2, y2), side(x2, y2, x3, y3), side(x3, y3, x1, y1)
        return (s1 >= 0 and s2 >= 0 and s3 >= 0) or (s1 <= 0 and s2 <= 0 and s3 <= 0)

    svg = (f"M{cx:.4f} {tip:.4f}L{cx + tx:.4f} {ty:.4f}"
           f"A{r:.4f} {r:.4f} 0 1 1 {cx - tx:.4f} {ty:.4f}Z")
    return inside, svg


OUTER_IN, OUTER_SVG = flame(0.5, 0.62, 0.22, 0.16)
INNER_IN, INNER_SVG = flame(0.5, 0.70, 0.11, 0.47)


def in_tile(x, y, full):
    if full:
        return True
    c = CORNER
    qx, qy = min(x, 1 - x), min(y, 1 - y)
    if qx >= c or qy >= c:
        return True
    return (qx - c) ** 2 + (qy - c) ** 2 <= c * c


def colour(x, y, full):
    if not in_tile(x, y, full):
        return None
    if INNER_IN(x, y):
        return INNER
    if OUTER_IN(x, y):
        return OUTER
    return TILE


def png(size, full):
    """`full`: the tile fills the square (a maskable icon or Apple's, which round it themselves)."""
    ss = 4
    rows = []
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(ss):
                for sx in range(ss):
                    x = (px + (sx + 0.5) / ss) / size
                    y = (py + (sy + 0.5) / ss) / size
                    c = colour(x, y, full)
                    if c:
                        acc[0] += c[0]; acc[1] += c[1]; acc[2] += c[2]; acc[3] += 255
            n = ss * ss
            alpha = acc[3] // n
            if alpha:
                k = acc[3] / 255
                row += bytes([round(acc[0] / k), round(acc[1] / k), round(acc[2] / k), alpha])
            else:
                row += bytes(4)
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def svg():
    hexc = lambda c: "#%02x%02x%02x" % c
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1">'
        f'<rect width="1" height="1" rx="{CORNER}" fill="{hexc(TILE)}"/>'
        f'<path d="{OUTER_SVG}" fill="{hexc(OUTER)}"/>'
        f'<path d="{INNER_SVG}" fill="{hexc(INNER)}"/>'
        "</svg>\n"
    )


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "icon.svg"), "w") as f:
        f.write(svg())
    for name, size, full in [("icon-192.png", 192, False), ("icon-512.png", 512, False),
                             ("maskable-512.png", 512, True), ("apple-touch-icon.png", 180, True)]:
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(png(size, full))
        print("wrote", name)


if __name__ == "__main__":
    main()
