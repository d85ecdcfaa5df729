"""Real photographs used as textures by the synthetic renderer (scikit-image's bundled images).

scikit-image ships a few dozen real images inside its wheel (docs/design.md §5): portraits, animals,
objects, microscopy and astronomy photographs, and material close-ups (brick, grass, gravel).
They load offline, so synthetic scenes get natural image statistics without any download. Images
that need a download (``eagle``, ``cells3d`` …) fail offline and are skipped; every image is tried
once per process and the result is cached.

Textures are ``(h, w, 3)`` float32 RGB in ``[0, 1]``, resized so that the longer side is at most
``max_side`` pixels (anti-aliased). The default, ``MAX_TEXTURE_SIDE`` = 128, keeps nearest-texel
lookups cheap and sharp enough for the 64-pixel renders the default dataset uses; the renderer's
``"paper"`` style (480×832 frames) loads them at ``PAPER_TEXTURE_SIDE`` = 1024, i.e. at their native
resolution (300–1000 pixels; only ``retina``, 1411², is reduced), and samples them through the
mip-map pyramids of ``mipmap_levels``. Grayscale images are replicated to RGB.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

MAX_TEXTURE_SIDE = 128  # default longer side, pixels (the "default" render style).
PAPER_TEXTURE_SIDE = 1024  # longer side for the "paper" render style (480×832 frames), pixels.

# scikit-image loaders, in a fixed order (scene sampling indexes into this list).
TEXTURE_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "brick",
    "grass",
    "gravel",
    "retina",
    "immunohistochemistry",
    "colorwheel",
    "stereo_motorcycle",
    "camera",
    "coins",
    "moon",
    "clock",
    "cell",
    "eagle",  # needs a download; skipped offline.
)


def _to_rgb_float(image: np.ndarray) -> np.ndarray:
  """Any skimage image (bool/uint8/float, gray/RGB/RGBA) → float32 RGB in [0, 1]."""
  image = np.asarray(image)
  if image.dtype == np.bool_:
    image = image.astype(np.float32)
  elif np.issubdtype(image.dtype, np.integer):
    image = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
  else:
    image = image.astype(np.float32)
    lo, hi = float(image.min()), float(image.max())
    image = (image - lo) / max(hi - lo, 1e-6)
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  return np.ascontiguousarray(image[..., :3])


def _load_one(name: str, max_side: int = MAX_TEXTURE_SIDE) -> np.ndarray | None:
  """Loads, converts and downsizes one skimage image (longer side <= ``max_side``); ``None`` if unavailable."""
  import skimage.data  # pylint: disable=g-import-not-at-top
  import skimage.transform  # pylint: disable=g-import-not-at-top
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      image = getattr(skimage.data, name)()
  except (KeyboardInterrupt, SystemExit):
    raise
  except BaseException:  # pylint: disable=broad-except
    # Missing file, no network, no pooch; under pytest skimage's fetcher raises pytest's Skipped
    # (a BaseException), which must not skip the caller's test.
    return None
  if isinstance(image, tuple):  # stereo_motorcycle → (left, right, disparity).
    image = image[0]
  image = _to_rgb_float(image)
  scale = max_side / max(image.shape[:2])
  if scale < 1.0:
    shape = (max(2, round(image.shape[0] * scale)), max(2, round(image.shape[1] * scale)))
    image = skimage.transform.resize(image, shape, order=1, anti_aliasing=True, preserve_range=True)
  return np.clip(image, 0.0, 1.0).astype(np.float32)


@functools.cache
def load_textures(max_side: int = MAX_TEXTURE_SIDE) -> tuple[tuple[str, np.ndarray], ...]:
  """The available textures as ``((name, (h, w, 3) float32 RGB in [0, 1]), ...)``.

  Each name of ``TEXTURE_NAMES`` is tried once per process and ``max_side`` (cached); failures are
  skipped, so the list (and its order) is the same for every ``max_side``.

  Args:
    max_side: longest side in pixels; larger images are reduced (anti-aliased), smaller ones kept.

  Raises:
    RuntimeError: when none of the images can be loaded (scikit-image data missing).
  """
  out = []
  for name in TEXTURE_NAMES:
    image = _load_one(name, max_side)
    if image is not None:
      out.append((name, image))
  if not out:
    raise RuntimeError(f"load_textures: none of the scikit-image images {TEXTURE_NAMES} could be loaded")
  return tuple(out)


def mipmap_levels(image: np.ndarray) -> tuple[np.ndarray, ...]:
  """The mip-map pyramid of a texture: ``image`` and successive halvings down to one texel.

  Level ``l + 1`` is level ``l`` Gaussian-prefiltered and reduced by 2 (``skimage.transform.
  pyramid_gaussian``; odd sides round up), so a lookup whose pixel covers ``≈ 2^l`` level-0
  texels reads level ``l`` without aliasing.

  Args:
    image: ``(h, w, 3)`` float RGB in ``[0, 1]``.

  Returns:
    ``(image, (⌈h/2⌉, ⌈w/2⌉, 3), …, (1, 1, 3))`` float32 arrays in ``[0, 1]``.
  """
  import skimage.transform  # pylint: disable=g-import-not-at-top
  levels = skimage.transform.pyramid_gaussian(np.asarray(image, np.float32), downscale=2, channel_axis=-1)
  return tuple(np.clip(level, 0.0, 1.0).astype(np.float32) for level in levels)
