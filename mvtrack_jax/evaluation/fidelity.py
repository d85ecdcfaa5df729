"""Image fidelity of generated target videos against ground-truth target views: PSNR and SSIM.

On synthetic held-out scenes the ground-truth target view exists, so pixel fidelity is measurable
(ReDirector and MVTrack4Gen report PSNR / LPIPS on DyCheck / iPhone for the same reason). Both
metrics come from scikit-image (``skimage.metrics``):

- PSNR = 10 · log10(data_range² / MSE) in dB (``peak_signal_noise_ratio``). :func:`psnr` gives it per
  frame (MSE over all pixels and channels of the frame; +inf for an exact frame). The video score of
  :func:`video_fidelity` pools the error first: MSE over **all frames**, pixels and channels, then
  PSNR (equal to skimage's PSNR of the whole video array). A per-frame mean would be +inf as soon as
  one frame is exact, and that happens in evaluation: a preset trajectory starts at the reference
  camera, so frame 0 of its ground truth *is* the reference frame, and the ``copy_reference``
  baseline (or any model) would score +inf however wrong its other frames are. The video PSNR is
  +inf only when the whole video is exact.
- SSIM (Wang et al., IEEE TIP 2004), per frame and then averaged over the frames, with the paper's settings, as scikit-image documents them for
  matching the original implementation: 11 × 11 Gaussian window with σ = 1.5, population
  covariances (``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``); colour frames
  are scored per channel and averaged (``channel_axis=-1``). ``gaussian_weights=False`` gives
  scikit-image's default 7 × 7 uniform window instead.

DyCheck's protocol (Gao et al., "Monocular Dynamic View Synthesis: A Reality Check", NeurIPS 2022; its
``dycheck/core/metrics/image.py``) scores each frame and averages over frames, within a co-visibility mask
(pixels of the validation view seen by the training views): :func:`masked_psnr` (mPSNR: the MSE of the masked
pixels and channels) and :func:`masked_ssim` (mSSIM: the SSIM statistics blurred by mask-renormalised "partial"
convolutions, as DyCheck's code does — windows holding no masked pixel score 1 there, and so here), averaged by
:func:`frame_mean_fidelity`. Without a mask they are the per-frame PSNR and the SSIM above (to float rounding). A
frame whose mask is empty is left out of the mean (DyCheck's ``masked_mean`` clips the denominator instead, which
would count it as an exact frame).

Value ranges: ``uint8`` videos are in ``[0, 255]`` (``data_range = 255``); floating-point videos
are expected in ``[0, 1]`` (``data_range = 1``) unless ``data_range`` is given (e.g. ``2.0`` for
``[-1, 1]``, whose values are then not range-checked). Both videos must share the dtype kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
import skimage.metrics

Array = Any

_RANGE_TOL = 1e-6


def _prepare(generated: Array, target: Array, data_range: float | None) -> tuple[np.ndarray, np.ndarray, float]:
  gen = np.asarray(generated)
  tgt = np.asarray(target)
  for name, arr in (("generated", gen), ("target", tgt)):
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
      raise ValueError(f"{name} has shape {arr.shape}, expected a video (T, H, W, 3) or (T, H, W, 1) "
                       "(a single frame needs a leading T = 1 axis)")
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
      raise ValueError(f"{name} has dtype {arr.dtype}, expected uint8 ([0, 255]) or float ([0, 1])")
    if arr.shape[0] == 0:
      raise ValueError(f"{name} has no frames (shape {arr.shape})")
  if gen.shape != tgt.shape:
    raise ValueError(f"generated has shape {gen.shape} but target has shape {tgt.shape}; they must match "
                     "(resize the generated video to the target's resolution first)")
  if (gen.dtype == np.uint8) != (tgt.dtype == np.uint8):
    raise ValueError(f"generated is {gen.dtype} but target is {tgt.dtype}; convert both to uint8 [0, 255] or "
                     "both to float [0, 1]")
  if data_range is None:
    if gen.dtype == np.uint8:
      data_range = 255.0
    else:
      data_range = 1.0
      for name, arr in (("generated", gen), ("target", tgt)):
        lo, hi = float(np.min(arr)), float(np.max(arr))
        if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL or not np.isfinite([lo, hi]).all():
          raise ValueError(f"{name} is float with values in [{lo:.4g}, {hi:.4g}], expected [0, 1]; pass "
                           "data_range= for another range (e.g. 2.0 for [-1, 1])")
  elif data_range <= 0:
    raise ValueError(f"data_range={data_range}, expected > 0")
  if gen.shape[-1] == 1:
    gen, tgt = gen[..., 0], tgt[..., 0]
  if gen.dtype != np.uint8:
    gen, tgt = gen.astype(np.float64), tgt.astype(np.float64)
  return gen, tgt, float(data_range)


def psnr(generated: Array, target: Array, data_range: float | None = None) -> np.ndarray:
  """Per-frame PSNR of a generated video against its ground truth.

  Args:
    generated: ``(T, H, W, 3)`` or ``(T, H, W, 1)`` video, uint8 or float.
    target: ground-truth video of the same shape and dtype kind.
    data_range: peak-to-peak value range; default 255 for uint8, 1 for float in ``[0, 1]``.

  Returns:
    ``(T,)`` float64 PSNR in dB (+inf for identical frames).

  Raises:
    ValueError: shapes / dtypes disagree or are unsupported, or float values leave ``[0, 1]``
      without an explicit ``data_range``.
  """
  gen, tgt, rng = _prepare(generated, target, data_range)
  with np.errstate(divide="ignore"):
    return np.array([skimage.metrics.peak_signal_noise_ratio(t, g, data_range=rng) for g, t in zip(gen, tgt)])


def ssim(generated: Array, target: Array, data_range: float | None = None, *,
         gaussian_weights: bool = True) -> np.ndarray:
  """Per-frame SSIM of a generated video against its ground truth.

  Args:
    generated: ``(T, H, W, 3)`` or ``(T, H, W, 1)`` video, uint8 or float.
    target: ground-truth video of the same shape and dtype kind.
    data_range: peak-to-peak value range; default 255 for uint8, 1 for float in ``[0, 1]``.
    gaussian_weights: Wang et al.'s 11 × 11 Gaussian window (σ = 1.5, population covariance);
      False: scikit-image's default 7 × 7 uniform window with sample covariance.

  Returns:
    ``(T,)`` float64 SSIM in ``[−1, 1]`` (1 for identical frames).

  Raises:
    ValueError: as ``psnr``, or frames smaller than the SSIM window (11 px, or 7 px uniform).
  """
  gen, tgt, rng = _prepare(generated, target, data_range)
  window = 11 if gaussian_weights else 7
  if min(gen.shape[1], gen.shape[2]) < window:
    raise ValueError(f"frames of {gen.shape[1]}x{gen.shape[2]} pixels are smaller than the {window}x{window} "
                     "SSIM window")
  kwargs = dict(data_range=rng, channel_axis=-1 if gen.ndim == 4 else None)
  if gaussian_weights:
    kwargs.update(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
  return np.array([skimage.metrics.structural_similarity(t, g, **kwargs) for g, t in zip(gen, tgt)])


def video_fidelity(generated: Array, target: Array, data_range: float | None = None, *,
                   gaussian_weights: bool = True) -> dict[str, float]:
  """Video PSNR (dB, MSE pooled over all frames; module docstring) and mean per-frame SSIM.

  Returns:
    ``{'psnr': float, 'ssim': float}``; ``psnr`` is +inf only when every frame is exact.

  Args / Raises: as ``psnr`` and ``ssim``.
  """
  gen, tgt, rng = _prepare(generated, target, data_range)
  with np.errstate(divide="ignore"):
    video_psnr = skimage.metrics.peak_signal_noise_ratio(tgt, gen, data_range=rng)
  return {"psnr": float(video_psnr),
          "ssim": float(np.mean(ssim(generated, target, data_range, gaussian_weights=gaussian_weights)))}


def _frame_masks(mask: Array | None, shape: tuple[int, ...]) -> np.ndarray:
  """``(T, H, W)`` float64 {0, 1} masks for videos of ``shape`` ``(T, H, W[, C])`` (all ones for None)."""
  if mask is None:
    return np.ones(shape[:3])
  m = np.asarray(mask)
  if m.shape != tuple(shape[:3]):
    raise ValueError(f"mask has shape {m.shape}, expected {tuple(shape[:3])} (one (H, W) mask per frame)")
  return m.astype(bool).astype(np.float64)


def masked_psnr(generated: Array, target: Array, mask: Array | None = None,
                data_range: float | None = None) -> np.ndarray:
  """Per-frame PSNR over the pixels where ``mask`` is True (DyCheck's mPSNR; module docstring).

  Args:
    generated, target: videos as :func:`psnr`.
    mask: ``(T, H, W)`` bool (None: every pixel).
    data_range: as :func:`psnr`.

  Returns:
    ``(T,)`` float64 dB: ``10·log10(range² / MSE)`` with the MSE of the masked pixels and all channels; +inf for
    an exact frame, NaN for a frame with an empty mask.

  Raises:
    ValueError: as :func:`psnr`, or a mask of another shape.
  """
  gen, tgt, rng = _prepare(generated, target, data_range)
  m = _frame_masks(mask, gen.shape)
  sq = ((gen.astype(np.float64) - tgt.astype(np.float64)) / rng) ** 2
  if sq.ndim == 4:
    sq = sq.mean(-1)
  counts = m.sum((1, 2))
  with np.errstate(divide="ignore", invalid="ignore"):
    mse = (sq * m).sum((1, 2)) / counts
    return np.where(counts > 0, -10.0 * np.log10(mse), np.nan)


def _partial_blur(z: np.ndarray, m: np.ndarray, f: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
  """One "valid" 1-D blur of ``z`` ``(H, W, C)`` along ``axis`` over the support ``m`` ``(H, W)``, renormalised by
  the fraction of the window inside it (DyCheck's partial convolution); returns the blur and its support."""
  taps = f.size
  zw = sliding_window_view(z * m[..., None], taps, axis=axis) @ f
  inside = sliding_window_view(m, taps, axis=axis).sum(-1)
  with np.errstate(divide="ignore", invalid="ignore"):
    out = np.where(inside[..., None] > 0, zw * taps / inside[..., None], 0.0)
  return out, (inside > 0).astype(np.float64)


def masked_ssim(generated: Array, target: Array, mask: Array | None = None,
                data_range: float | None = None) -> np.ndarray:
  """Per-frame SSIM within ``mask`` as DyCheck computes it (mSSIM; module docstring).

  The 11-tap Gaussian (σ = 1.5, ``k1 = 0.01``, ``k2 = 0.03``) blurs x then y over the masked pixels, renormalised by
  the masked fraction of each window; variances are clipped at 0 and the covariance at their geometric mean; the
  score is the mean of the SSIM map over its valid ``(H − 10) × (W − 10)`` positions and the channels.

  Args:
    generated, target, data_range: as :func:`ssim`.
    mask: ``(T, H, W)`` bool (None: every pixel: Wang et al.'s SSIM, equal to :func:`ssim` to rounding).

  Returns:
    ``(T,)`` float64.

  Raises:
    ValueError: as :func:`ssim`, or a mask of another shape.
  """
  gen, tgt, rng = _prepare(generated, target, data_range)
  masks = _frame_masks(mask, gen.shape)
  if min(gen.shape[1], gen.shape[2]) < 11:
    raise ValueError(f"frames of {gen.shape[1]}x{gen.shape[2]} pixels are smaller than the 11x11 SSIM window")
  f = np.exp(-0.5 * ((np.arange(11) - 5) / 1.5) ** 2)
  f /= f.sum()
  c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
  scores = []
  for g, t, m in zip(gen.astype(np.float64), tgt.astype(np.float64), masks):
    if g.ndim == 2:
      g, t = g[..., None], t[..., None]

    def blur(z):
      z, support = _partial_blur(z, m, f, axis=1)
      return _partial_blur(z, support, f, axis=0)[0]

    mu0, mu1 = blur(g), blur(t)
    s00 = np.maximum(blur(g * g) - mu0 * mu0, 0.0)
    s11 = np.maximum(blur(t * t) - mu1 * mu1, 0.0)
    s01 = blur(g * t) - mu0 * mu1
    s01 = np.sign(s01) * np.minimum(np.sqrt(s00 * s11), np.abs(s01))
    ssim_map = ((2 * mu0 * mu1 + c1) * (2 * s01 + c2)) / ((mu0 ** 2 + mu1 ** 2 + c1) * (s00 + s11 + c2))
    scores.append(float(ssim_map.mean()))
  return np.array(scores)


def frame_mean_fidelity(generated: Array, target: Array, mask: Array | None = None,
                        data_range: float | None = None) -> dict[str, float]:
  """DyCheck's video scores: :func:`masked_psnr` and :func:`masked_ssim` averaged over the frames.

  Returns:
    ``{'psnr': dB, 'ssim': float}`` (frames with an empty mask are left out; NaN if every mask is empty).

  Args / Raises: as :func:`masked_psnr`.
  """
  psnrs = masked_psnr(generated, target, mask, data_range)
  ssims = masked_ssim(generated, target, mask, data_range)
  keep = ~np.isnan(psnrs)
  if not keep.any():
    return {"psnr": float("nan"), "ssim": float("nan")}
  return {"psnr": float(np.mean(psnrs[keep])), "ssim": float(np.mean(ssims[keep]))}
