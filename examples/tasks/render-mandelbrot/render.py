#!/usr/bin/env python3
"""Renders the Mandelbrot set to a grayscale PGM image, standard library only.

Escape-time colouring with integer grey levels, so the same arguments give the
same image bytes on every machine. Writes `mandelbrot.pgm` to $AICPW_OUTPUT_DIR (default
./out) and prints `progress: X` lines while rendering.
"""

import argparse
import os
import sys

SIDE_MAX = 4096
ITERATIONS_MAX = 100_000


def escape_time(c_real, c_imag, iterations_max):
    """Iterations until |z| > 2 for z <- z^2 + c, or iterations_max if it never escapes."""
    z_real = 0.0
    z_imag = 0.0
    for iteration in range(iterations_max):
        real_squared = z_real * z_real
        imag_squared = z_imag * z_imag
        if real_squared + imag_squared > 4.0:
            return iteration
        z_imag = 2.0 * z_real * z_imag + c_imag
        z_real = real_squared - imag_squared + c_real
    return iterations_max


def render(width, height, iterations_max, center, span):
    """Rows of grey levels: black inside the set, brighter the faster a point escapes."""
    center_real, center_imag = center
    scale = span / width
    pixels = bytearray()
    reports = max(1, height // 20)
    for row in range(height):
        c_imag = center_imag + (height / 2.0 - row - 0.5) * scale
        for column in range(width):
            c_real = center_real + (column + 0.5 - width / 2.0) * scale
            steps = escape_time(c_real, c_imag, iterations_max)
            pixels.append(0 if steps == iterations_max else 255 - (steps * 255) // iterations_max)
        if (row + 1) % reports == 0 or row + 1 == height:
            print(f"progress: {(row + 1) / height:.3f}", flush=True)
    return bytes(pixels)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--iterations", type=int, default=256)
    parser.add_argument("--center", type=float, nargs=2, default=(-0.6, 0.0))
    parser.add_argument("--span", type=float, default=3.2, help="width of the view")
    parser.add_argument("--out", default=os.environ.get("AICPW_OUTPUT_DIR", "out"))
    args = parser.parse_args(argv)
    if not (1 <= args.width <= SIDE_MAX and 1 <= args.height <= SIDE_MAX):
        parser.error(f"--width and --height must be between 1 and {SIDE_MAX}")
    if not 1 <= args.iterations <= ITERATIONS_MAX:
        parser.error(f"--iterations must be between 1 and {ITERATIONS_MAX}")
    pixels = render(args.width, args.height, args.iterations, args.center, args.span)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "mandelbrot.pgm")
    with open(path, "wb") as handle:
        handle.write(f"P5\n{args.width} {args.height}\n255\n".encode("ascii"))
        handle.write(pixels)
    inside = pixels.count(0)
    print(f"wrote {path}: {args.width}x{args.height}, {inside} pixels inside the set")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
