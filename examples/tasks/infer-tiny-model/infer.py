#!/usr/bin/env python3
"""Runs a trained tiny MLP (from train-tiny-model) on fixed query points, standard library only.

Reads `model.json` and `points.csv` (x,y per line) from the working directory, writes
`predictions.csv` (x,y,score,class) and `decision_map.txt` (the classifier's view of the
square [-1,1]^2 as text) to $AICPW_OUTPUT_DIR (default ./out). Reports progress through the
file named by $AICPW_PROGRESS_FILE when set, and through `progress: X` lines.
"""

import argparse
import csv
import json
import os
import sys

POINTS_MAX = 1_000_000


def load_model(path):
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    weights = document["weights"]
    hidden = document["architecture"]["hidden"]
    if len(weights["w1"]) != hidden or len(weights["w2"]) != hidden:
        raise ValueError("model.json: weight shapes do not match architecture.hidden")
    return weights


def score(weights, x, y):
    total = weights["b2"]
    for (w_x, w_y), bias, w_out in zip(weights["w1"], weights["b1"], weights["w2"]):
        pre = w_x * x + w_y * y + bias
        if pre > 0.0:
            total += w_out * pre
    return total


def report_progress(fraction):
    print(f"progress: {fraction:.3f}")
    path = os.environ.get("AICPW_PROGRESS_FILE")
    if path:
        temporary = path + ".partial"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(f"{fraction:.3f}\n")
        os.replace(temporary, path)


def read_points(path):
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) > POINTS_MAX:
        raise ValueError(f"{path}: more than {POINTS_MAX} points")
    return [(float(row["x"]), float(row["y"])) for row in rows]


def decision_map(weights, columns=48, rows=24):
    lines = []
    for row in range(rows):
        y = 1.0 - 2.0 * (row + 0.5) / rows
        line = ""
        for column in range(columns):
            x = -1.0 + 2.0 * (column + 0.5) / columns
            line += "#" if score(weights, x, y) > 0.0 else "."
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="model.json")
    parser.add_argument("--points", default="points.csv")
    parser.add_argument("--out", default=os.environ.get("AICPW_OUTPUT_DIR", "out"))
    args = parser.parse_args(argv)
    weights = load_model(args.model)
    points = read_points(args.points)
    os.makedirs(args.out, exist_ok=True)
    lines = ["x,y,score,class"]
    for index, (x, y) in enumerate(points, start=1):
        value = score(weights, x, y)
        lines.append(f"{x!r},{y!r},{value!r},{1 if value > 0.0 else -1}")
        if index % max(1, len(points) // 4) == 0:
            report_progress(index / len(points) * 0.9)
    with open(os.path.join(args.out, "predictions.csv"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "decision_map.txt"), "w", encoding="utf-8") as handle:
        handle.write(decision_map(weights))
    report_progress(1.0)
    positive = sum(1 for line in lines[1:] if line.endswith(",1"))
    print(f"scored {len(points)} points: {positive} in class +1, {len(points) - positive} in -1")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
