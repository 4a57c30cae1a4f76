"""Certify a linear classifier whose smoothed behaviour is known exactly.

For f(x) = [w.x + b > 0], Gaussian smoothing gives P(f(x + e) = 1) = Phi(m / sigma) with m the
signed distance of x to the boundary, and g's exact robust radius is |m|. rsengine's certified
radii must stay below it (with probability >= 1 - alpha) and approach it as n grows.

Run: python examples/certify_linear.py
"""
import torch

from rsengine import Smooth

w, b, sigma = torch.tensor([3.0, -4.0]), 0.5, 0.5
model = torch.nn.Linear(2, 2)
with torch.no_grad():
    model.weight.copy_(torch.stack([-w, w]))  # class 1 where w.x + b > 0
    model.bias.copy_(torch.tensor([-b, b]))

smooth = Smooth(model, num_classes=2, sigma=sigma, seed=0)
xs = torch.tensor([[0.3, -0.2], [0.1, 0.1], [-0.4, 0.3], [0.0, 0.125]])
labels, radii = smooth.certify_batch(xs, n0=100, n=100_000, alpha=0.001, batch_size=50_000)
print(f"{'x':>16}  {'true radius':>11}  {'certified':>9}  class")
for x, label, radius in zip(xs.tolist(), labels, radii):
    margin = (w @ torch.tensor(x) + b).item() / w.norm().item()
    point = "(" + ", ".join(f"{v:.3f}" for v in x) + ")"
    print(f"{point:>16}  {abs(margin):11.4f}  {radius:9.4f}  {label}")
