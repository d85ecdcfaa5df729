"""L_track: the MV-TAP / CoTracker3 multi-view tracking loss (docs/design.md §4.5).

For the head's ``K`` refinement iterations ``k = 0 … K−1`` (iteration weights ``γ^(K−k−1)``,
``γ = 0.8``; MV-TAP ``model_utils.track_loss``):

- ``L_pos = (1/K) Σ_k γ^(K−k−1) · mean_{GT-visible} Huber_δ(e_k)`` (Huber per coordinate,
  averaged over ``x, y``), ``δ = 6 px``;
- ``L_vis = (1/K) Σ_k mean_{valid} BCE-with-logits(vis_k, GT visible)``;
- ``L_conf = (1/K) Σ_k mean_{GT-visible} BCE-with-logits(conf_k, ‖sg(e_k)‖ < 12 px)``;
- ``L_track = 0.05·L_pos + L_vis + L_conf``.

**Units.** MV-TAP and CoTracker3 resize every video to their 384×512 model resolution, so their
errors, δ and the 12 px radius are pixels *of that resolution*, and the 0.05 weight balances an
``L_pos`` measured in them. Here videos keep their own size, so the error is converted to that
resolution first: ``e_k = (p̂_k − p) / s`` with ``s = diag(H, W) / diag(384, 512)``. This keeps every
term, and the balance between them, independent of the video size. (Scaling only δ instead would
make ``L_pos`` grow as ``s²``: ×2.25 at 480×832, ×0.005 at 32×32, where the position term then
vanished next to the two BCEs and the head never learned to move its tracks.) The scale is
isotropic (the diagonal), an approximation of MV-TAP's anisotropic resize for other aspect ratios.

The logits go through exactly one sigmoid (inside the BCE); the public MV-TAP code applies two.
Means are global masked means over (batch, view, frame, point), so samples whose ``track_mask`` is
all False contribute nothing; with nothing to average a term is 0.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

Array = Any


@dataclasses.dataclass(frozen=True)
class TrackingLossConfig:
  """Weights and thresholds of L_track (MV-TAP defaults).

  Attributes:
    huber_delta_px: Huber δ, in pixels of the reference resolution.
    confidence_threshold_px: "correct" radius for the confidence target, in pixels of the reference
      resolution.
    reference_size: ``(H, W)`` in whose pixels errors are measured (MV-TAP's 384×512 model
      resolution); a video's errors are divided by ``diag(video) / diag(reference_size)``.
    gamma: iteration discount γ.
    position_weight: weight of ``L_pos`` inside ``L_track`` (0.05).
    visibility_weight, confidence_weight: weights of ``L_vis`` and ``L_conf`` (1, 1).
  """

  huber_delta_px: float = 6.0
  confidence_threshold_px: float = 12.0
  reference_size: tuple[int, int] = (384, 512)
  gamma: float = 0.8
  position_weight: float = 0.05
  visibility_weight: float = 1.0
  confidence_weight: float = 1.0

  def pixel_scale(self, image_size: Sequence[int]) -> float:
    """Video pixels per reference-resolution pixel for an ``(H, W)`` video (diagonal ratio)."""
    return math.hypot(*image_size) / math.hypot(*self.reference_size)


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  mask = jnp.broadcast_to(mask, values.shape).astype(jnp.float32)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def tracking_loss(pred_tracks: Array, pred_visibility: Array, pred_confidence: Array, gt_tracks: Array,
                  gt_visible: Array, track_mask: Array, *, image_size: Sequence[int],
                  config: TrackingLossConfig = TrackingLossConfig()) -> tuple[jax.Array, dict[str, jax.Array]]:
  """MV-TAP tracking loss over all iterations, views, frames and points.

  Args:
    pred_tracks: ``(K, B, V, F, N, 2)`` predicted ``(x, y)`` in video pixels per iteration.
    pred_visibility: ``(K, B, V, F, N)`` visibility logits.
    pred_confidence: ``(K, B, V, F, N)`` confidence logits.
    gt_tracks: ``(B, V, F, N, 2)`` GT ``(x, y)`` pixels.
    gt_visible: ``(B, V, F, N)`` bool.
    track_mask: ``(B, N)`` bool; False = padding / no GT (ignored by every term).
    image_size: ``(H, W)`` of the video (errors are converted to reference-resolution pixels).
    config: :class:`TrackingLossConfig`.

  Returns:
    ``(L_track, terms)`` with ``terms = {"track_pos", "track_vis", "track_conf"}``; scalars, fp32.

  Raises:
    ValueError: on inconsistent shapes (the message names the argument).
  """
  if pred_tracks.ndim != 6 or pred_tracks.shape[-1] != 2:
    raise ValueError(f"tracking_loss: pred_tracks must be (K, B, V, F, N, 2), got {pred_tracks.shape}")
  k_iters = pred_tracks.shape[0]
  for name, arr in (("pred_visibility", pred_visibility), ("pred_confidence", pred_confidence)):
    if arr.shape != pred_tracks.shape[:-1]:
      raise ValueError(f"tracking_loss: {name} must be {pred_tracks.shape[:-1]}, got {arr.shape}")
  if gt_tracks.shape != pred_tracks.shape[1:]:
    raise ValueError(f"tracking_loss: gt_tracks must be {pred_tracks.shape[1:]}, got {gt_tracks.shape}")
  if gt_visible.shape != gt_tracks.shape[:-1]:
    raise ValueError(f"tracking_loss: gt_visible must be {gt_tracks.shape[:-1]}, got {gt_visible.shape}")
  b, _, _, n, _ = gt_tracks.shape
  if track_mask.shape != (b, n):
    raise ValueError(f"tracking_loss: track_mask must be {(b, n)}, got {track_mask.shape}")

  scale = config.pixel_scale(image_size)
  pred_tracks = jnp.asarray(pred_tracks, jnp.float32)
  gt_tracks = jax.lax.stop_gradient(jnp.asarray(gt_tracks, jnp.float32))
  valid = jnp.asarray(track_mask, bool)[:, None, None, :]                 # (B, 1, 1, N)
  visible = jnp.asarray(gt_visible, bool) & valid                         # (B, V, F, N)
  gt_vis_f = visible.astype(jnp.float32)

  weights = jnp.asarray([config.gamma ** (k_iters - k - 1) for k in range(k_iters)], jnp.float32)
  # Keep masked entries finite (NaN/inf GT at invisible points must not leak through the mask).
  safe_gt = jnp.where(visible[..., None], gt_tracks, 0.0)
  diff = jnp.where(visible[None, ..., None], pred_tracks - safe_gt[None], 0.0) / scale   # reference-res. pixels
  huber = optax.huber_loss(diff, delta=config.huber_delta_px).mean(axis=-1)               # (K, B, V, F, N)
  pos_k = jax.vmap(lambda h: _masked_mean(h, visible))(huber)
  l_pos = jnp.sum(weights * pos_k) / k_iters

  vis_bce = optax.sigmoid_binary_cross_entropy(jnp.asarray(pred_visibility, jnp.float32), gt_vis_f[None])
  l_vis = jnp.mean(jax.vmap(lambda x: _masked_mean(x, valid))(vis_bce))

  dist = jnp.linalg.norm(jax.lax.stop_gradient(diff), axis=-1)
  conf_target = (dist < config.confidence_threshold_px).astype(jnp.float32)
  conf_bce = optax.sigmoid_binary_cross_entropy(jnp.asarray(pred_confidence, jnp.float32), conf_target)
  l_conf = jnp.mean(jax.vmap(lambda x: _masked_mean(x, visible))(conf_bce))

  total = (config.position_weight * l_pos + config.visibility_weight * l_vis + config.confidence_weight * l_conf)
  return total, {"track_pos": l_pos, "track_vis": l_vis, "track_conf": l_conf}
