#!/usr/bin/env python3
"""Trains a tiny multilayer perceptron on a two-class spiral, using only the standard library.

The data set comes from a fixed seed, the network is trained by hand-written backpropagation
with mini-batch SGD and momentum, and only +, -, *, / and comparisons touch the weights, so the
same arguments give the same output bytes on every IEEE-754 machine (the spiral's sin/cos
coordinates are rounded to 6 decimals to absorb last-bit differences between math libraries).

Prints `progress: X` lines (read by the AICPW executor) and loss lines; writes `model.json`
and `loss.csv` to $AICPW_OUTPUT_DIR (default ./out).
"""

import argparse
import json
import math
import os
import random
import sys
import time


def make_spirals(points_per_class, seed):
    """Two interleaved spirals with a little noise; labels are -1 and +1."""
    rng = random.Random(seed)
    samples = []
    for label, phase in ((-1.0, 0.0), (1.0, math.pi)):
        for index in range(points_per_class):
            radius = 0.1 + 0.9 * index / points_per_class
            angle = 3.5 * math.pi * radius + phase  # 1.75 turns from centre to rim
            x = radius * math.cos(angle) + rng.gauss(0.0, 0.02)
            y = radius * math.sin(angle) + rng.gauss(0.0, 0.02)
            samples.append(((round(x, 6), round(y, 6)), label))
    rng.shuffle(samples)
    return samples


class Mlp:
    """2 inputs -> `hidden` ReLU units -> 1 linear output (the class score)."""

    def __init__(self, hidden, rng):
        scale = math.sqrt(2.0 / 2.0)  # He initialisation for ReLU with fan-in 2
        self.w1 = [[round(rng.gauss(0.0, scale), 6) for _ in range(2)] for _ in range(hidden)]
        self.b1 = [0.0] * hidden
        out_scale = math.sqrt(1.0 / hidden)
        self.w2 = [round(rng.gauss(0.0, out_scale), 6) for _ in range(hidden)]
        self.b2 = 0.0

    def forward(self, point):
        x0, x1 = point
        pre = [w[0] * x0 + w[1] * x1 + b for w, b in zip(self.w1, self.b1)]
        act = [p if p > 0.0 else 0.0 for p in pre]
        score = sum(w * a for w, a in zip(self.w2, act)) + self.b2
        return pre, act, score

    def to_json(self):
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}


def train_batch(model, velocity, batch, learning_rate, momentum):
    """One SGD step on mean squared error against the +-1 labels; returns the batch loss."""
    hidden = len(model.w2)
    grad_w1 = [[0.0, 0.0] for _ in range(hidden)]
    grad_b1 = [0.0] * hidden
    grad_w2 = [0.0] * hidden
    grad_b2 = 0.0
    loss = 0.0
    for point, label in batch:
        pre, act, score = model.forward(point)
        error = score - label
        loss += error * error
        d_score = 2.0 * error / len(batch)
        grad_b2 += d_score
        for j in range(hidden):
            grad_w2[j] += d_score * act[j]
            if pre[j] > 0.0:
                d_pre = d_score * model.w2[j]
                grad_w1[j][0] += d_pre * point[0]
                grad_w1[j][1] += d_pre * point[1]
                grad_b1[j] += d_pre
    # Momentum SGD: v = momentum * v - lr * g; w += v
    for j in range(hidden):
        for k in range(2):
            velocity["w1"][j][k] = momentum * velocity["w1"][j][k] - learning_rate * grad_w1[j][k]
            model.w1[j][k] += velocity["w1"][j][k]
        velocity["b1"][j] = momentum * velocity["b1"][j] - learning_rate * grad_b1[j]
        model.b1[j] += velocity["b1"][j]
        velocity["w2"][j] = momentum * velocity["w2"][j] - learning_rate * grad_w2[j]
        model.w2[j] += velocity["w2"][j]
    velocity["b2"] = momentum * velocity["b2"] - learning_rate * grad_b2
    model.b2 += velocity["b2"]
    return loss / len(batch)


def evaluate(model, samples):
    loss = 0.0
    correct = 0
    for point, label in samples:
        score = model.forward(point)[2]
        loss += (score - label) ** 2
        correct += (score > 0.0) == (label > 0.0)
    return loss / len(samples), correct / len(samples)


def write_atomically(path, text):
    """Write to a temporary name and rename, so a reader never sees half a file."""
    temporary = path + ".partial"
    with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(temporary, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=48)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--points", type=int, default=200, help="points per class")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--out", default=os.environ.get("AICPW_OUTPUT_DIR", "out"))
    args = parser.parse_args(argv)
    for name in ("epochs", "hidden", "points", "batch"):
        if not 1 <= getattr(args, name) <= 100_000:
            parser.error(f"--{name} must be between 1 and 100000")
    return args


def main(argv):
    args = parse_args(argv)
    started = time.monotonic()
    samples = make_spirals(args.points, args.seed)
    rng = random.Random(args.seed + 1)
    model = Mlp(args.hidden, rng)
    velocity = {
        "w1": [[0.0, 0.0] for _ in range(args.hidden)],
        "b1": [0.0] * args.hidden,
        "w2": [0.0] * args.hidden,
        "b2": 0.0,
    }
    order = list(range(len(samples)))
    history = []
    report_every = max(1, args.epochs // 20)
    print(f"training on {len(samples)} points, hidden={args.hidden}, epochs={args.epochs}")
    for epoch in range(1, args.epochs + 1):
        rng.shuffle(order)
        total = 0.0
        batches = 0
        for start in range(0, len(order), args.batch):
            batch = [samples[i] for i in order[start:start + args.batch]]
            total += train_batch(model, velocity, batch, args.learning_rate, args.momentum)
            batches += 1
        history.append((epoch, total / batches))
        if epoch % report_every == 0 or epoch == args.epochs:
            loss, accuracy = evaluate(model, samples)
            print(f"epoch {epoch} loss {loss:.6f} accuracy {accuracy:.3f}")
            print(f"progress: {epoch / args.epochs:.3f}")
    loss, accuracy = evaluate(model, samples)
    os.makedirs(args.out, exist_ok=True)
    model_document = {
        "architecture": {"inputs": 2, "hidden": args.hidden, "activation": "relu", "outputs": 1},
        "training": {
            "data": "two-class spiral",
            "points": len(samples),
            "seed": args.seed,
            "epochs": args.epochs,
            "batch": args.batch,
            "learning_rate": args.learning_rate,
            "momentum": args.momentum,
        },
        "final_loss": loss,
        "train_accuracy": accuracy,
        "weights": model.to_json(),
    }
    write_atomically(os.path.join(args.out, "model.json"),
                     json.dumps(model_document, indent=1, sort_keys=True) + "\n")
    lines = ["epoch,loss"] + [f"{epoch},{value!r}" for epoch, value in history]
    write_atomically(os.path.join(args.out, "loss.csv"), "\n".join(lines) + "\n")
    elapsed = time.monotonic() - started
    print(f"done: loss {loss:.6f} accuracy {accuracy:.3f} in {elapsed:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
