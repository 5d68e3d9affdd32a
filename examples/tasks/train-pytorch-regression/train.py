"""Fits y = sin(x) on [-3, 3] with a two-layer MLP: the GPU when the task got one, else the CPU.

Writes the model's weights to model.pt and the final training loss, as a JSON array of one
number, to loss.json (the task's summary for comparing results across machines).
"""
import argparse
import json
import os

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=2000)
steps = parser.parse_args().steps
out = os.environ.get("AICPW_OUTPUT_DIR", "/task/out")
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
x = torch.linspace(-3, 3, 1024, device=device).unsqueeze(1)
y = torch.sin(x)
model = torch.nn.Sequential(
    torch.nn.Linear(1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1)
).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
loss = torch.tensor(0.0)
for step in range(steps):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    if step % 100 == 0:
        print(f"progress: {step / steps:.3f}", flush=True)
torch.save(model.state_dict(), os.path.join(out, "model.pt"))
with open(os.path.join(out, "loss.json"), "w") as summary:
    json.dump([round(loss.item(), 6)], summary)
print(f"device {device}, final loss {loss.item():.6f}")
