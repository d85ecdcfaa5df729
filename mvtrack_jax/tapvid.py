"""TAP-Vid point-tracking metrics: occlusion accuracy, ``< δ`` accuracy, Jaccard and AJ.

The definitions are those of the TAP-Vid benchmark (Doersch et al., NeurIPS 2022 Datasets &
Benchmarks; reference implementation ``compute_tapvid_metrics`` in google-deepmind/tapnet,
``tapnet/tapvid/evaluation_datasets.py``), reimplemented here once against an array namespace so
that the same code scores NumPy arrays in the evaluation scripts and ``jax.numpy`` arrays inside a
jitted training step (the training objective logs the tracking head's AJ on the batch).

For every query point (frame ``t_q``) the *scored* frames are

- ``query_mode='first'``: the frames strictly after the query frame (queries are sampled at the
  first visible frame, so the frames before it are known to be occluded);
- ``query_mode='strided'``: every frame except the query frame.

With ``within_δ = ‖p̂ − p‖² < δ²`` (strict) for ``δ ∈ {1, 2, 4, 8, 16}`` pixels of a 256 × 256
raster, restricted to scored frames:

- ``occlusion_accuracy`` (OA) = fraction of scored points whose predicted occlusion flag equals
  the ground truth;
- ``pts_within_δ`` = fraction of GT-visible scored points that are within δ, whatever the predicted
  occlusion; ``average_pts_within_thresh`` (δ_avg) = their mean over δ;
- ``jaccard_δ`` = TP / (GT-visible + FP) with TP = GT visible ∧ predicted visible ∧ within δ and
  FP = predicted visible ∧ (GT occluded ∨ not within δ) — i.e. TP / (TP + FP + FN);
  ``average_jaccard`` (AJ) = their mean over δ.

Every metric is computed per video (``(B,)``) or per track (``(B, N)``); the benchmark number is
the plain mean over videos (papers multiply by 100). A video (track) without any scored GT-visible
point gives NaN for ``pts_within_δ`` / ``jaccard_δ``, exactly like the reference; use ``nanmean``
when aggregating if such videos can occur.

Layouts. TAP-Vid uses query points ``(t, y, x)`` and ``(B, N, T)``-major tracks with an
*occluded* flag; the project (record schema, tracking head) uses query points ``(t, x, y)``,
``(..., T, N, 2)`` tracks and a *visible* flag. ``to_tapvid_format`` is the one place where that
conversion (and the rescale to the 256 × 256 raster) happens; ``rescale_to_raster`` maps pixel
coordinates of an ``H × W`` image to the raster. Pixel coordinates are continuous with the origin
at the top-left corner of the top-left pixel (docs/design.md §3), so a resize is an exact scaling.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = Any

THRESHOLDS: tuple[int, ...] = (1, 2, 4, 8, 16)
RASTER_SIZE = 256
QUERY_MODES = ("first", "strided")


def _namespace(*arrays: Array):
  """``jax.numpy`` when any argument is a JAX array (or tracer), else ``numpy``."""
  return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def metric_names() -> list[str]:
  """The keys returned by ``compute_tapvid_metrics``, in TAP-Vid's table order."""
  return (["average_jaccard", "average_pts_within_thresh", "occlusion_accuracy"]
          + [f"jaccard_{d}" for d in THRESHOLDS] + [f"pts_within_{d}" for d in THRESHOLDS])


def rescale_to_raster(points_xy: Array, image_size: Sequence[int], raster: int = RASTER_SIZE) -> Array:
  """Rescales ``(x, y)`` pixel coordinates of an ``H × W`` image to a ``raster × raster`` image.

  With corner-origin continuous coordinates (pixel centres at +0.5) a resize is the exact map
  ``x → x · raster / W``, ``y → y · raster / H`` (TAP-Vid's ``convert_grid_coordinates``).

  Args:
    points_xy: ``(..., 2)`` float ``(x, y)`` pixel coordinates (NumPy or JAX).
    image_size: ``(H, W)`` of the image the coordinates refer to, in pixels.
    raster: side of the square target raster (TAP-Vid: 256).

  Returns:
    ``(..., 2)`` coordinates on the raster, same array kind as ``points_xy``.

  Raises:
    ValueError: ``points_xy`` does not end in 2, or ``image_size`` / ``raster`` are not positive.
  """
  if np.shape(points_xy)[-1:] != (2,):
    raise ValueError(f"rescale_to_raster: points_xy has shape {np.shape(points_xy)}, expected (..., 2) (x, y)")
  if len(image_size) != 2 or min(image_size) <= 0 or raster <= 0:
    raise ValueError(f"rescale_to_raster: image_size={tuple(image_size)} must be positive (H, W) and "
                     f"raster={raster} positive")
  xp = _namespace(points_xy)
  height, width = image_size
  scale = xp.asarray([raster / width, raster / height], dtype=points_xy.dtype)
  return points_xy * scale


def to_tapvid_format(query_points_txy: Array, tracks: Array, visible: Array,
                     image_size: Sequence[int] | None = None,
                     raster: int = RASTER_SIZE) -> tuple[Array, Array, Array]:
  """Converts the project's track layout to TAP-Vid's, optionally rescaling to the raster.

  Project layout (record schema / tracking head): query points ``(..., N, 3)`` as ``(t, x, y)``
  (``t`` a frame index), tracks ``(..., T, N, 2)`` as ``(x, y)``, visibility ``(..., T, N)``.
  TAP-Vid layout: query points ``(..., N, 3)`` as ``(t, y, x)``, tracks ``(..., N, T, 2)`` as
  ``(x, y)``, ``occluded = ¬visible`` ``(..., N, T)``.

  Args:
    query_points_txy: ``(..., N, 3)`` float ``(t, x, y)``; pixels of the ``H × W`` image.
    tracks: ``(..., T, N, 2)`` float ``(x, y)`` pixels.
    visible: ``(..., T, N)`` bool (or 0/1) visibility.
    image_size: ``(H, W)``; when given, ``x, y`` of query points and tracks are rescaled to the
      ``raster × raster`` raster with ``rescale_to_raster`` (``t`` is untouched). ``None``: the
      coordinates are already on the raster.
    raster: raster side (256 for TAP-Vid numbers).

  Returns:
    ``(query_points_tyx (..., N, 3), occluded (..., N, T) bool, tracks_xy (..., N, T, 2))``, the
    first three arguments of ``compute_tapvid_metrics`` (same array kind as the inputs).

  Raises:
    ValueError: on inconsistent shapes (the message names the argument).
  """
  qs, ts, vs = np.shape(query_points_txy), np.shape(tracks), np.shape(visible)
  if len(qs) < 2 or qs[-1] != 3:
    raise ValueError(f"to_tapvid_format: query_points_txy has shape {qs}, expected (..., N, 3) (t, x, y)")
  if len(ts) < 3 or ts[-1] != 2:
    raise ValueError(f"to_tapvid_format: tracks has shape {ts}, expected (..., T, N, 2) (x, y)")
  if vs != ts[:-1]:
    raise ValueError(f"to_tapvid_format: visible has shape {vs}, expected {ts[:-1]} (tracks' (..., T, N))")
  if qs[:-1] != ts[:-3] + ts[-2:-1]:
    raise ValueError(f"to_tapvid_format: query_points_txy has shape {qs}, expected {ts[:-3] + ts[-2:-1] + (3,)} "
                     f"to match tracks {ts}")
  xp = _namespace(query_points_txy, tracks, visible)
  t = query_points_txy[..., 0:1]
  xy = query_points_txy[..., 1:3]
  tracks_nt = xp.swapaxes(tracks, -3, -2)
  if image_size is not None:
    xy = rescale_to_raster(xy, image_size, raster)
    tracks_nt = rescale_to_raster(tracks_nt, image_size, raster)
  query_tyx = xp.concatenate([t, xy[..., ::-1]], axis=-1)
  occluded = xp.logical_not(xp.swapaxes(visible.astype(bool), -2, -1))
  return query_tyx, occluded, tracks_nt


def evaluation_mask(query_frames: Array, num_frames: int, query_mode: str) -> Array:
  """Which frames are scored for each query.

  Args:
    query_frames: ``(...)`` query frame indices (float values are rounded, as in TAP-Vid).
    num_frames: ``T``.
    query_mode: ``'first'`` (frames strictly after the query frame) or ``'strided'`` (all frames
      but the query frame).

  Returns:
    ``(..., T)`` bool mask, same array kind as ``query_frames``.

  Raises:
    ValueError: unknown ``query_mode``.
  """
  if query_mode not in QUERY_MODES:
    raise ValueError(f"query_mode={query_mode!r}, expected one of {QUERY_MODES}")
  xp = _namespace(query_frames)
  q = xp.round(query_frames).astype(xp.int32)[..., None]
  frames = xp.arange(num_frames, dtype=xp.int32)
  return frames > q if query_mode == "first" else frames != q


def _check_inputs(query_points, gt_occluded, gt_tracks, pred_occluded, pred_tracks) -> None:
  """Shape checks (static, so they also run under ``jit``) and, for NumPy, value checks."""
  shapes = {name: np.shape(a) for name, a in (("query_points", query_points), ("gt_occluded", gt_occluded),
                                              ("gt_tracks", gt_tracks), ("pred_occluded", pred_occluded),
                                              ("pred_tracks", pred_tracks))}
  gts = shapes["gt_tracks"]
  if len(gts) != 4 or gts[-1] != 2:
    raise ValueError(f"gt_tracks has shape {gts}, expected (B, N, T, 2) [x, y]")
  b, n, t, _ = gts
  expected = {"query_points": (b, n, 3), "gt_occluded": (b, n, t), "pred_occluded": (b, n, t),
              "pred_tracks": (b, n, t, 2)}
  for name, shape in expected.items():
    if shapes[name] != shape:
      raise ValueError(f"{name} has shape {shapes[name]}, expected {shape} (from gt_tracks {gts}; "
                       "TAP-Vid layout: query points [t, y, x], tracks [x, y], occluded (B, N, T))")
  if not isinstance(query_points, jax.Array) and t > 0 and n > 0:
    frames = np.round(np.asarray(query_points)[..., 0])
    if frames.min() < 0 or frames.max() > t - 1:
      raise ValueError(f"query_points[..., 0] (query frame) spans [{frames.min()}, {frames.max()}], expected "
                       f"integers in [0, {t - 1}] (query points are [t, y, x])")


def compute_tapvid_metrics(query_points: Array, gt_occluded: Array, gt_tracks: Array, pred_occluded: Array,
                           pred_tracks: Array, query_mode: str,
                           get_trackwise_metrics: bool = False) -> dict[str, Array]:
  """TAP-Vid metrics (AJ, δ_avg, OA and their per-threshold terms), per video or per track.

  Same signature and definitions as TAP-Vid's reference ``compute_tapvid_metrics`` (see the module
  docstring). Works on NumPy arrays and on JAX arrays, including tracers inside ``jax.jit``
  (``query_mode`` and ``get_trackwise_metrics`` must then be static).

  Args:
    query_points: ``(B, N, 3)`` float ``[t, y, x]``; only ``t`` (rounded to an int frame) is used.
    gt_occluded: ``(B, N, T)`` bool, True = occluded in the ground truth.
    gt_tracks: ``(B, N, T, 2)`` float ``[x, y]`` on the 256 × 256 raster (``rescale_to_raster``).
    pred_occluded: ``(B, N, T)`` bool (or 0/1) predicted occlusion.
    pred_tracks: ``(B, N, T, 2)`` float ``[x, y]`` predictions on the same raster.
    query_mode: ``'first'`` or ``'strided'``.
    get_trackwise_metrics: return ``(B, N)`` per-track values instead of ``(B,)`` per video.

  Returns:
    Dict with ``occlusion_accuracy``, ``pts_within_{1,2,4,8,16}``, ``jaccard_{1,2,4,8,16}``,
    ``average_jaccard`` and ``average_pts_within_thresh``; each ``(B,)`` (or ``(B, N)``) float in
    ``[0, 1]`` (NaN where nothing is scored), same array kind as the inputs.

  Raises:
    ValueError: wrong shapes (naming the argument), unknown ``query_mode``, or (NumPy inputs)
      query frames outside ``[0, T − 1]``.
  """
  _check_inputs(query_points, gt_occluded, gt_tracks, pred_occluded, pred_tracks)
  xp = _namespace(query_points, gt_occluded, gt_tracks, pred_occluded, pred_tracks)
  axes = (2,) if get_trackwise_metrics else (1, 2)
  num_frames = np.shape(gt_tracks)[2]
  scored = evaluation_mask(xp.asarray(query_points)[..., 0], num_frames, query_mode)

  gt_occluded = xp.asarray(gt_occluded).astype(bool)
  pred_occluded = xp.asarray(pred_occluded).astype(bool)
  visible = xp.logical_not(gt_occluded)
  pred_visible = xp.logical_not(pred_occluded)

  def count(mask):
    return xp.sum(mask & scored, axis=axes)

  def ratio(num, den):
    if xp is np:
      with np.errstate(invalid="ignore", divide="ignore"):
        return num / den
    return num.astype(jnp.float32) / den.astype(jnp.float32)

  metrics: dict[str, Array] = {}
  metrics["occlusion_accuracy"] = ratio(count(pred_occluded == gt_occluded), xp.sum(scored, axis=axes))
  sq_dist = xp.sum(xp.square(xp.asarray(pred_tracks) - xp.asarray(gt_tracks)), axis=-1)
  num_visible = count(visible)
  within_all, jaccard_all = [], []
  for delta in THRESHOLDS:
    within = sq_dist < delta * delta
    correct = within & visible
    pts_within = ratio(count(correct), num_visible)
    true_pos = count(correct & pred_visible)
    false_pos = count(pred_visible & (gt_occluded | xp.logical_not(within)))
    jaccard = ratio(true_pos, num_visible + false_pos)
    metrics[f"pts_within_{delta}"] = pts_within
    metrics[f"jaccard_{delta}"] = jaccard
    within_all.append(pts_within)
    jaccard_all.append(jaccard)
  metrics["average_jaccard"] = xp.mean(xp.stack(jaccard_all, axis=0), axis=0)
  metrics["average_pts_within_thresh"] = xp.mean(xp.stack(within_all, axis=0), axis=0)
  return metrics


def mean_over_videos(per_video: Mapping[str, Array]) -> dict[str, float]:
  """Benchmark aggregation: the NaN-ignoring mean of each per-video metric, as Python floats.

  Args:
    per_video: output of ``compute_tapvid_metrics`` (or several concatenated along axis 0).

  Returns:
    ``{name: float}`` in ``[0, 1]`` (NaN only when every video is NaN for that metric).
  """
  out = {}
  for name, value in per_video.items():
    value = np.asarray(value, np.float64)
    out[name] = float(np.nanmean(value)) if np.any(np.isfinite(value)) else float("nan")
  return out
