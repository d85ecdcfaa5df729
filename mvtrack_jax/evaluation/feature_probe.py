"""Track4Gen's layer study: how well do a generator's features track points by cosine nearest neighbour?

Track4Gen (Jeong et al., CVPR 2025, arXiv 2412.06016) chooses the block it supervises by tracking points with the
raw features of each block of a pretrained video generator and comparing the accuracy; after training it
compares the refined features with the raw ones. This module holds the metric; ``evaluation.probe_run`` runs it
over a split (``python -m mvtrack_jax.probe --probe=features``), and ``compare`` runs it at the Track4Gen tap.

Features (:data:`FEATURE_KINDS`), each ``(B, 2, F, h, w, D)`` at latent-frame rate, view 0 = reference,
1 = target (``MVTrack4Gen.velocity``):

- ``features``: the residual stream after a block (Track4Gen's choice of feature);
- ``q`` / ``k``: that block's attention queries / keys after RMSNorm and RoPE, heads concatenated (MVTrack4Gen's
  features, what its attention and tracking head read);
- ``refined``: the output of a Track4Gen model's refiner at its tap layer;
- ``zero_motion`` (:data:`ZERO_MOTION`), no feature: every point predicted where it was queried, scored the same way
  (the same at every layer and noise level): features that do no better track nothing.

Tracking (per view, within the view — Track4Gen's task is single-view tracking): each point that is visible at
latent frame ``query_frame`` (0: Track4Gen's first-frame queries) is a query; its descriptor is the feature
sampled bilinearly at its ground-truth position there, and its estimate in every other frame is the centre of
the cell with the highest cosine similarity (:func:`losses.feature_tracking.cosine_cost_volume`, the cost volume
``L_feat`` trains, read by argmax instead of soft-argmax). Before matching, the feature maps are resized
bilinearly by ``upsample`` (4 by default), as DIFT-style correspondence probes upsample features towards the image,
so the estimate is quantised to a quarter token instead of a whole one.

Score: TAP-Vid's δ_avg — the fraction of ground-truth-visible (point, frame) entries whose estimate lies strictly
within ``δ ∈ {1, 2, 4, 8, 16}`` pixels of the ground truth after rescaling the frame to 256 × 256
(``tapvid.rescale_to_raster``), averaged over the five δ — over the frames other than the query frame (TAP-Vid's
``strided`` mode for that query). Points hidden at the query frame or outside the frame, and padding
(``point_mask`` False), are not scored. Unlike TAP-Vid, which averages per video, entries are **pooled** over all
videos, both views and (in the run) all batches, so :func:`tracking_sums` returns counts that add up. The estimate
is quantised to cells of ``s/upsample`` video pixels (``s`` = token stride): on the demo's 64-pixel frames with
``s = 8`` and 4× upsampling a cell is 8 raster pixels wide, so even a perfect matcher scores about 0.6, not 1
(δ = 1, 2, 4 raster pixels are reached only when the truth lies near a cell centre); compare models at the same
stride and upsampling only.
"""

from __future__ import annotations

import csv
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mvtrack_jax import tapvid
from mvtrack_jax.data.video_io import atomic_output
from mvtrack_jax.evaluation.probe import save_figure
from mvtrack_jax.losses.feature_tracking import cosine_cost_volume, token_centres
from mvtrack_jax.models.mvtrack4gen import token_views

Array = Any
FEATURE_KINDS = ("features", "q", "k", "refined")
ZERO_MOTION = "zero_motion"  # the baseline row: every point stays where it was queried
# Features are upsampled 4× before matching (DIFT's protocol upsamples to the image; 4× keeps the paper-scale
# cost volume in memory while cutting the token quantisation of the estimate by four).
DEFAULT_UPSAMPLE = 4
SUM_FIELDS = ("count",) + tuple(f"within_{d}" for d in tapvid.THRESHOLDS)


def nearest_neighbour_tracks(features: Array, query_xy: Array, query_frame: int, token_stride: float) -> jax.Array:
  """``(B, F, N, 2)`` estimates ``(x, y)`` in video pixels: the centre of the most cosine-similar token per frame.

  Args:
    features: ``(B, F, h, w, D)`` features of one view.
    query_xy: ``(B, N, 2)`` query points in video pixels (corner origin) at latent frame ``query_frame``.
    query_frame: 0-based latent frame of the queries.
    token_stride: video pixels per token.
  """
  _, _, h, w, _ = np.shape(features)
  cost = cosine_cost_volume(features, query_xy, query_frame, token_stride)
  return token_centres(h, w, token_stride)[jnp.argmax(cost, axis=-1)]


def tracking_sums(features: Array, tracks: Array, visible: Array, point_mask: Array, *, token_stride: float,
                  image_size: Sequence[int], query_frame: int = 0, upsample: int = DEFAULT_UPSAMPLE) -> jax.Array:
  """Counts of the δ_avg of one view's features (module docstring); jit-able.

  Args:
    features: ``(B, F, h, w, D)``.
    tracks: ``(B, F, N, 2)`` ground-truth ``(x, y)`` in video pixels at latent-frame rate.
    visible: ``(B, F, N)`` bool.
    point_mask: ``(B, N)`` bool.
    token_stride: video pixels per token.
    image_size: ``(H, W)`` of the video frames, pixels.
    query_frame: 0-based latent frame of the queries.
    upsample: the features are first resized bilinearly by this integer factor (1: the token grid).

  Returns:
    ``(len(SUM_FIELDS),)`` float32: the scored entries and, for each δ, how many are within it.

  Raises:
    ValueError: inconsistent shapes or a query frame outside the ``F`` frames.
  """
  b, f = np.shape(features)[:2]
  n = np.shape(tracks)[2]
  if np.shape(tracks) != (b, f, n, 2) or np.shape(visible) != (b, f, n) or np.shape(point_mask) != (b, n):
    raise ValueError(f"tracking_sums: features {np.shape(features)} need tracks (B, F, N, 2), visible (B, F, N) and "
                     f"point_mask (B, N) with B={b}, F={f}; got {np.shape(tracks)}, {np.shape(visible)}, "
                     f"{np.shape(point_mask)}")
  if not 0 <= query_frame < f:
    raise ValueError(f"tracking_sums: query_frame {query_frame} outside the {f} latent frames")
  if int(upsample) < 1:
    raise ValueError(f"tracking_sums: upsample must be an integer >= 1, got {upsample}")
  if upsample > 1:  # half-pixel-centred bilinear resize: cell (i, j) of the finer grid is centred at ((j+½)s/u, (i+½)s/u)
    _, _, h, w, d = np.shape(features)
    features = jax.image.resize(jnp.asarray(features, jnp.float32), (b, f, h * upsample, w * upsample, d), "linear")
  tracks = jnp.asarray(tracks, jnp.float32)
  estimate = nearest_neighbour_tracks(features, tracks[:, query_frame], query_frame, token_stride / upsample)
  return estimate_sums(estimate, tracks, visible, point_mask, image_size=image_size, query_frame=query_frame)


def estimate_sums(estimate: Array, tracks: Array, visible: Array, point_mask: Array, *, image_size: Sequence[int],
                  query_frame: int = 0) -> jax.Array:
  """The counts of :func:`tracking_sums` for given estimates ``(B, F, N, 2)`` (video pixels) of the tracks ``(B, F,
  N, 2)``; ``estimate = tracks[:, query_frame]`` broadcast over frames is the ``zero_motion`` baseline."""
  tracks = jnp.asarray(tracks, jnp.float32)
  visible = jnp.asarray(visible, bool)
  f = tracks.shape[1]
  height, width = (float(v) for v in image_size)
  query = tracks[:, query_frame]
  inside = (query[..., 0] >= 0) & (query[..., 0] < width) & (query[..., 1] >= 0) & (query[..., 1] < height)
  valid = (visible & (visible[:, query_frame] & inside & jnp.asarray(point_mask, bool))[:, None]
           & (jnp.arange(f) != query_frame)[None, :, None])
  error = tapvid.rescale_to_raster(jnp.asarray(estimate, jnp.float32) - tracks, (height, width))
  sq = jnp.sum(jnp.square(error), axis=-1)
  within = [jnp.sum(valid & (sq < d * d)) for d in tapvid.THRESHOLDS]
  return jnp.stack([jnp.sum(valid)] + within).astype(jnp.float32)


def view_sums(features: Array, tracks: Array, visible: Array, point_mask: Array, **kwargs) -> jax.Array:
  """:func:`tracking_sums` of both views added: ``features`` ``(B, 2, F, h, w, D)``, ``tracks`` ``(B, 2, F, N, 2)``,
  ``visible`` ``(B, 2, F, N)``; keyword arguments as :func:`tracking_sums`."""
  return sum(tracking_sums(features[:, v], tracks[:, v], visible[:, v], point_mask, **kwargs) for v in (0, 1))


def layer_features(probes: Mapping[int, Mapping[str, Array]], layer: int, kind: str,
                   grid: Sequence[int]) -> jax.Array:
  """One feature kind of one layer in the ``(B, 2, F, h, w, D)`` view layout.

  ``probes`` come from ``MVTrack4Gen.velocity`` with the layer among ``feature_layers`` (``features``),
  ``probe_layers`` (``q``, ``k``: ``(B, S, heads, head_dim)`` in DiT token order, heads concatenated here) or equal to
  the refiner's ``feat_layer`` with ``with_refined`` (``refined``).

  Raises:
    ValueError: an unknown kind, or one the probes of that layer do not hold.
  """
  if kind not in FEATURE_KINDS:
    raise ValueError(f"layer_features: kind {kind!r}, expected one of {FEATURE_KINDS}")
  if kind not in probes.get(layer, {}):
    raise ValueError(f"layer_features: layer {layer} has no {kind!r} features (it has {sorted(probes.get(layer, {}))})")
  value = probes[layer][kind]
  if kind in ("q", "k"):
    return token_views(value.reshape(*value.shape[:2], -1), tuple(grid))
  return value


TABLE_COLUMNS = ("feature", "layer", "timestep", "sigma", "delta_avg", "count") + tuple(
    f"pts_within_{d}" for d in tapvid.THRESHOLDS)


def delta_table(sums: Array) -> np.ndarray:
  """``(..., len(SUM_FIELDS))`` counts → ``(...)`` δ_avg (NaN where nothing was scored)."""
  sums = np.asarray(sums, np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(sums[..., 0] > 0, np.mean(sums[..., 1:], axis=-1) / sums[..., 0], np.nan)


def best_layers(sums: Array, kinds: Sequence[str], layers: Sequence[int]) -> dict[str, int | None]:
  """Per kind, the layer with the highest δ_avg averaged over timesteps (``sums`` ``(L, T, K, fields)``); None for a
  kind scored at no layer."""
  table = delta_table(sums)                                                 # (L, T, K)
  out = {}
  for k, kind in enumerate(kinds):
    scored = np.isfinite(table[:, :, k]).any(axis=1)
    mean = np.where(scored, np.nanmean(np.where(scored[:, None], table[:, :, k], 0.0), axis=1), -np.inf)
    out[kind] = int(layers[int(np.argmax(mean))]) if scored.any() else None
  return out


def write_csv(path: str, sums: Array, kinds: Sequence[str], layers: Sequence[int], timesteps: Sequence[float],
              sigmas: Sequence[float]) -> None:
  """One row per (kind, layer, timestep) scored (:data:`TABLE_COLUMNS`), atomically; ``sums`` ``(L, T, K, fields)``."""
  sums = np.asarray(sums, np.float64)
  if sums.shape != (len(layers), len(timesteps), len(kinds), len(SUM_FIELDS)):
    raise ValueError(f"write_csv: sums have shape {sums.shape}, expected "
                     f"{(len(layers), len(timesteps), len(kinds), len(SUM_FIELDS))}")
  with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(TABLE_COLUMNS)
    for k, kind in enumerate(kinds):
      for i, layer in enumerate(layers):
        for j, t in enumerate(timesteps):
          cell = sums[i, j, k]
          if cell[0] == 0:
            continue
          writer.writerow([kind, int(layer), f"{float(t):.6g}", f"{float(sigmas[j]):.6g}",
                           f"{float(np.mean(cell[1:]) / cell[0]):.6g}", int(cell[0])]
                          + [f"{float(c / cell[0]):.6g}" for c in cell[1:]])


def write_plot(path: str, sums: Array, kinds: Sequence[str], layers: Sequence[int], timesteps: Sequence[float]) -> None:
  """δ_avg against layer, one panel per noise level, one line per feature kind (a single point for ``refined``);
  written atomically (matplotlib Agg)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  table = delta_table(sums)
  fig, axes = plt.subplots(1, len(timesteps), figsize=(3.2 * len(timesteps), 3.0), squeeze=False, sharey=True)
  for j, (ax, t) in enumerate(zip(axes[0], timesteps)):
    for k, kind in enumerate(kinds):
      ok = np.isfinite(table[:, j, k])
      if ok.any():
        ax.plot(np.asarray(layers)[ok], table[ok, j, k], marker="o", label=kind)
    ax.set_title(f"timestep {float(t):.0f}", fontsize=9)
    ax.set_xlabel("layer", fontsize=8)
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("δ_avg (cosine nearest neighbour)", fontsize=8)
  axes[0][-1].legend(fontsize=7)
  save_figure(fig, path)
