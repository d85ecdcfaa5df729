"""Epipolar (Sampson) error: a weight-free geometric-consistency proxy for novel-view videos.

MEt3R needs DUSt3R/MASt3R and DINO weights (``evaluation.learned``); on synthetic scenes with
known cameras a simpler, exact test of geometric consistency is available: a reference-view point
and the target-view point the model says corresponds to it (the tracking head's cross-view
tracks, or matches between the reference video and the generated target video) must satisfy the
epipolar constraint of the two *ground-truth* cameras at the same time instant. Because both
views are captured at the same instant, the constraint holds for dynamic scenes too.

Fundamental matrix (Hartley & Zisserman, *Multiple View Geometry*, 2nd ed., eq. 9.2 / result
9.19): with the relative pose of the reference camera to the target camera
``[R | t] = world_to_camera_tgt · inv(world_to_camera_ref)`` (OpenCV axes; ``X_tgt = R X_ref + t``),

    E = [t]_× R,        F = K_tgt⁻ᵀ E K_ref⁻¹,        x_tgtᵀ F x_ref = 0

for homogeneous pixel coordinates ``x = (x, y, 1)`` in the project convention (corner origin,
centres at +0.5; the same convention as the intrinsics, so no offset enters).

Sampson error (H&Z eq. 11.9), the first-order approximation of the squared geometric distance of
the correspondence ``(x_ref, x_tgt)`` to the variety ``x_tgtᵀ F x_ref = 0`` in the joint 4D
image space (i.e. the minimal total squared pixel displacement, over both images, that makes the
pair consistent):

    d²_S = (x_tgtᵀ F x_ref)² / ((F x_ref)₁² + (F x_ref)₂² + (Fᵀ x_tgt)₁² + (Fᵀ x_tgt)₂²)   [pixels²]

``sampson_error`` returns ``d²_S`` in pixels²; ``epipolar_consistency`` aggregates ``d²_S`` and its
square root ``d_S`` (pixels). Example: a rectified stereo pair whose target point is shifted by
``d`` pixels across the epipolar line has ``d²_S = d² / 2`` (the displacement is shared by both
images). A camera pair without baseline (``t = 0``) has no epipolar geometry (F = 0); its points
are excluded and counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any

DEFAULT_THRESHOLDS_PX = (1.0, 2.0, 4.0)


def _skew(v: np.ndarray) -> np.ndarray:
  """``(..., 3)`` → ``(..., 3, 3)`` cross-product matrices ``[v]_×``."""
  zero = np.zeros_like(v[..., 0])
  return np.stack([np.stack([zero, -v[..., 2], v[..., 1]], -1),
                   np.stack([v[..., 2], zero, -v[..., 0]], -1),
                   np.stack([-v[..., 1], v[..., 0], zero], -1)], axis=-2)


def _check(name: str, value: Array, tail: tuple[int, ...]) -> np.ndarray:
  arr = np.asarray(value, np.float64)
  if arr.ndim < len(tail) or arr.shape[-len(tail):] != tail:
    raise ValueError(f"{name} has shape {arr.shape}, expected (..., {', '.join(map(str, tail))})")
  return arr


def relative_pose(world_to_camera_ref: Array, world_to_camera_tgt: Array) -> np.ndarray:
  """``(..., 4, 4)`` rigid transform from reference-camera to target-camera coordinates."""
  ref = _check("world_to_camera_ref", world_to_camera_ref, (4, 4))
  tgt = _check("world_to_camera_tgt", world_to_camera_tgt, (4, 4))
  return tgt @ np.linalg.inv(ref)


def fundamental_matrix(intrinsics_ref: Array, world_to_camera_ref: Array, intrinsics_tgt: Array,
                       world_to_camera_tgt: Array) -> np.ndarray:
  """Fundamental matrix ``F`` with ``x_tgtᵀ F x_ref = 0`` for two calibrated cameras.

  Args:
    intrinsics_ref: ``(..., 3, 3)`` pixel intrinsics of the reference camera.
    world_to_camera_ref: ``(..., 4, 4)`` its OpenCV extrinsics.
    intrinsics_tgt: ``(..., 3, 3)`` pixel intrinsics of the target camera.
    world_to_camera_tgt: ``(..., 4, 4)`` its OpenCV extrinsics. Leading dims broadcast.

  Returns:
    ``(..., 3, 3)`` float64 ``K_tgt⁻ᵀ [t]_× R K_ref⁻¹`` (not rescaled; zero without baseline).

  Raises:
    ValueError: when a trailing shape is wrong (the message names the argument).
  """
  k_ref = _check("intrinsics_ref", intrinsics_ref, (3, 3))
  k_tgt = _check("intrinsics_tgt", intrinsics_tgt, (3, 3))
  rel = relative_pose(world_to_camera_ref, world_to_camera_tgt)
  essential = _skew(rel[..., :3, 3]) @ rel[..., :3, :3]
  return np.swapaxes(np.linalg.inv(k_tgt), -1, -2) @ essential @ np.linalg.inv(k_ref)


def sampson_error(points_ref: Array, points_tgt: Array, fundamental: Array) -> np.ndarray:
  """Squared Sampson distance of correspondences under ``F`` (pixels²).

  Args:
    points_ref: ``(..., N, 2)`` ``(x, y)`` pixels in the reference image.
    points_tgt: ``(..., N, 2)`` corresponding ``(x, y)`` pixels in the target image.
    fundamental: ``(..., 3, 3)`` with ``x_tgtᵀ F x_ref = 0`` (leading dims broadcast with the
      points' leading dims).

  Returns:
    ``(..., N)`` float64 ``d²_S`` in pixels²; NaN where ``F`` gives no epipolar line (``F = 0``).

  Raises:
    ValueError: when the shapes are wrong or the two point sets differ in shape.
  """
  p_ref = _check("points_ref", points_ref, (2,))
  p_tgt = _check("points_tgt", points_tgt, (2,))
  if p_ref.shape != p_tgt.shape or p_ref.ndim < 2:
    raise ValueError(f"points_ref {p_ref.shape} and points_tgt {p_tgt.shape} must both be (..., N, 2)")
  f = _check("fundamental", fundamental, (3, 3))
  x_ref = np.concatenate([p_ref, np.ones_like(p_ref[..., :1])], axis=-1)
  x_tgt = np.concatenate([p_tgt, np.ones_like(p_tgt[..., :1])], axis=-1)
  f_x_ref = np.einsum("...ij,...nj->...ni", f, x_ref)   # epipolar lines in the target image
  ft_x_tgt = np.einsum("...ji,...nj->...ni", f, x_tgt)  # epipolar lines in the reference image
  algebraic = np.sum(x_tgt * f_x_ref, axis=-1)
  denom = f_x_ref[..., 0] ** 2 + f_x_ref[..., 1] ** 2 + ft_x_tgt[..., 0] ** 2 + ft_x_tgt[..., 1] ** 2
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(denom > 0, algebraic ** 2 / denom, np.nan)


def epipolar_consistency(points_ref: Array, points_tgt: Array, visible: Array | None, intrinsics_ref: Array,
                         world_to_camera_ref: Array, intrinsics_tgt: Array, world_to_camera_tgt: Array, *,
                         min_baseline: float = 1e-9,
                         thresholds_px: tuple[float, ...] = DEFAULT_THRESHOLDS_PX) -> dict[str, float]:
  """Sampson error of predicted reference↔target correspondences under ground-truth cameras.

  Typical use: ``points_ref`` / ``points_tgt`` are the tracks of the same query points in the
  reference video and in the generated target video, ``(T, N, 2)``, with per-frame cameras
  ``(T, 3, 3)`` / ``(T, 4, 4)`` (the pair at frame ``t`` is compared under the cameras at ``t``).

  Args:
    points_ref: ``(..., N, 2)`` reference-view ``(x, y)`` pixels.
    points_tgt: ``(..., N, 2)`` target-view ``(x, y)`` pixels (same image size convention as
      ``intrinsics_tgt``).
    visible: ``(..., N)`` bool, which correspondences to score (e.g. predicted visible in both
      views); ``None`` scores all.
    intrinsics_ref, world_to_camera_ref, intrinsics_tgt, world_to_camera_tgt: ``(..., 3, 3)`` /
      ``(..., 4, 4)`` ground-truth cameras, leading dims broadcast with the points' (minus ``N``).
    min_baseline: camera pairs whose centres are closer than this (metres) have no epipolar
      geometry; their points are excluded and counted in ``num_degenerate``.
    thresholds_px: thresholds δ for ``frac_below_{δ}px`` (fraction of scored points with
      ``d_S < δ``).

  Returns:
    ``{'mean_sampson_px2', 'mean_sampson_px', 'median_sampson_px', 'frac_below_{δ}px', ...,
    'num_points', 'num_degenerate'}`` as Python floats / ints; the error values are NaN when no
    point is scored.

  Raises:
    ValueError: on inconsistent shapes (naming the argument).
  """
  p_ref = _check("points_ref", points_ref, (2,))
  fundamental = fundamental_matrix(intrinsics_ref, world_to_camera_ref, intrinsics_tgt, world_to_camera_tgt)
  d2 = sampson_error(p_ref, points_tgt, fundamental)
  rel = relative_pose(world_to_camera_ref, world_to_camera_tgt)
  baseline = np.linalg.norm(rel[..., :3, 3], axis=-1)[..., None]  # (..., 1): per camera pair
  degenerate = np.broadcast_to(baseline < min_baseline, d2.shape)
  if visible is None:
    mask = np.ones(d2.shape, bool)
  else:
    mask = np.asarray(visible).astype(bool)
    if mask.shape != d2.shape:
      raise ValueError(f"visible has shape {mask.shape}, expected {d2.shape} (the points' (..., N))")
  scored = mask & ~degenerate & np.isfinite(d2)
  values = d2[scored]
  dist = np.sqrt(values)
  out: dict[str, float] = {
      "mean_sampson_px2": float(values.mean()) if values.size else float("nan"),
      "mean_sampson_px": float(dist.mean()) if values.size else float("nan"),
      "median_sampson_px": float(np.median(dist)) if values.size else float("nan"),
  }
  for delta in thresholds_px:
    out[f"frac_below_{delta:g}px"] = float(np.mean(dist < delta)) if values.size else float("nan")
  out["num_points"] = int(values.size)
  out["num_degenerate"] = int(np.sum(mask & degenerate))
  return out
