"""``L_feat``: Track4Gen's correspondence loss on generator features, through a cosine-similarity cost volume.

Track4Gen (Jeong et al., CVPR 2025, arXiv 2412.06016) supervises the video generator's (refined) block features
so that points can be tracked by comparing them: tracks are estimated with "a computationally efficient cost
volume constructed from cosine similarity". The paper does not state how the cost volume becomes a loss, so the
form below is this project's reconstruction, each choice a :class:`FeatureTrackingConfig` field:

- features ``h`` ``(B, F, h, w, D)`` of one view at latent-frame rate are L2-normalised per token, ``ĥ``;
- the descriptor of query ``n`` is ``ĥ`` of its query frame sampled bilinearly at the query point and
  normalised again, ``d_n`` (:func:`losses.correspondence.bilinear_token_corners`);
- the cost volume is ``C_{n,f}(i, j) = ⟨d_n, ĥ[f, i, j]⟩ ∈ [−1, 1]`` for every other frame ``f``, and
  ``P_{n,f} = softmax(C_{n,f} / τ)`` over the ``h·w`` tokens of frame ``f``;
- ``mode="soft_argmax"`` (default): the estimate is ``p̂ = Σ P(i, j)·c(i, j)`` with ``c`` the token centres
  ``((j+½)s, (i+½)s)``; the loss is the Huber loss (``optax.losses.huber_loss``, δ in tokens) of
  ``‖p̂ − p*‖ / s``, in **token units** so that its size does not depend on the resolution;
- ``mode="local"``: the same soft-argmax restricted to the ``(2r+1)²`` tokens around the argmax of ``C``;
- ``mode="ce"``: cross-entropy of ``P`` against the bilinear 4-token distribution of the ground-truth point
  (the target of ``L_corr``);
- only pairs ``(n, f)`` with the point visible and inside the frame at both the query frame and ``f``, of a real
  track (``track_mask``), count; the loss is their mean (0 when there is none).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from mvtrack_jax.losses.correspondence import bilinear_token_corners

Array = Any
MODES = ("soft_argmax", "local", "ce")


@dataclasses.dataclass(frozen=True)
class FeatureTrackingConfig:
  """How the cost volume becomes a loss (module docstring).

  Attributes:
    mode: ``"soft_argmax"``, ``"local"`` or ``"ce"``.
    temperature: softmax temperature ``τ`` on cosine similarities (0.1: similarities span [−1, 1]).
    huber_delta: Huber threshold in tokens (soft-argmax modes).
    local_radius: half-width ``r`` of the ``local`` window, in tokens.
    query_frame: the latent frame the queries are taken at (0: Track4Gen's first-frame queries).
  """
  mode: str = "soft_argmax"
  temperature: float = 0.1
  huber_delta: float = 1.0
  local_radius: int = 2
  query_frame: int = 0

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f"FeatureTrackingConfig: mode={self.mode!r}, expected one of {MODES}")
    if not self.temperature > 0 or not self.huber_delta > 0:
      raise ValueError(f"FeatureTrackingConfig: temperature ({self.temperature}) and huber_delta "
                       f"({self.huber_delta}) must be > 0")
    if self.local_radius < 1 or self.query_frame < 0:
      raise ValueError(f"FeatureTrackingConfig: local_radius ({self.local_radius}) must be >= 1 and query_frame "
                       f"({self.query_frame}) >= 0")


def _normalise(x: jax.Array) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))


def token_centres(h: int, w: int, token_stride: float) -> jax.Array:
  """``(h·w, 2)`` video-pixel centres ``((j+½)s, (i+½)s)`` of the tokens of one frame, row-major."""
  s = float(token_stride)
  return jnp.stack(jnp.meshgrid((jnp.arange(w) + 0.5) * s, (jnp.arange(h) + 0.5) * s), -1).reshape(h * w, 2)


def cosine_cost_volume(features: Array, query_xy: Array, query_frame: int, token_stride: float) -> jax.Array:
  """Cosine similarity of each query point's descriptor with every token of every frame (module docstring).

  Args:
    features: ``(B, F, h, w, D)`` features of one view (computed in float32).
    query_xy: ``(B, N, 2)`` query points ``(x, y)`` in video pixels (corner origin) at latent frame ``query_frame``.
    query_frame: the latent frame the descriptors are sampled from.
    token_stride: video pixels per token ``s``.

  Returns:
    ``C`` ``(B, F, N, h·w)`` float32 in ``[−1, 1]``: ``⟨d_n, ĥ[f, token]⟩`` with ``ĥ`` the per-token L2-normalised
    features and ``d_n`` their bilinear sample at the query point, normalised again.
  """
  features = jnp.asarray(features, jnp.float32)
  b, f, h, w, _ = features.shape
  n = query_xy.shape[1]
  tokens = _normalise(features.reshape(b, f, h * w, -1))                          # ĥ, (B, F, hw, D)
  corner, weight = bilinear_token_corners(query_xy[..., 0], query_xy[..., 1], h, w, float(token_stride))
  picked = jnp.take_along_axis(tokens[:, query_frame], corner.reshape(b, n * 4)[..., None], axis=1)
  query = _normalise(jnp.einsum("bnc,bncd->bnd", weight, picked.reshape(b, n, 4, -1)))   # d_n, (B, N, D)
  return jnp.einsum("bnd,bfkd->bfnk", query, tokens)


def feature_tracking_loss(features: Array, tracks: Array, visible: Array, track_mask: Array, *, token_stride: float,
                          config: FeatureTrackingConfig = FeatureTrackingConfig()
                          ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """``L_feat`` of one view (module docstring).

  Args:
    features: ``(B, F, h, w, D)`` features at latent-frame rate (any float dtype; computed in float32).
    tracks: ``(B, F, N, 2)`` ground-truth ``(x, y)`` in video pixels (corner origin) at latent-frame rate.
    visible: ``(B, F, N)`` bool.
    track_mask: ``(B, N)`` bool, False = padding / no ground truth.
    token_stride: video pixels per token ``s``.
    config: the loss form.

  Returns:
    ``(loss, metrics)``: the scalar mean over valid pairs (float32) and ``feat_loss``, ``feat_pairs`` (valid pairs),
    ``feat_error_tokens`` (mean distance of the estimate — the argmax token centre for ``ce`` — to the ground
    truth, in tokens).

  Raises:
    ValueError: inconsistent shapes, or ``config.query_frame`` outside the ``F`` frames.
  """
  features = jnp.asarray(features, jnp.float32)
  if features.ndim != 5:
    raise ValueError(f"feature_tracking_loss: features must be (B, F, h, w, D), got {features.shape}")
  b, f, h, w, _ = features.shape
  if tracks.shape[:2] != (b, f) or tracks.ndim != 4 or tracks.shape[-1] != 2:
    raise ValueError(f"feature_tracking_loss: tracks must be ({b}, {f}, N, 2), got {tracks.shape}")
  n = tracks.shape[2]
  if visible.shape != (b, f, n) or track_mask.shape != (b, n):
    raise ValueError(f"feature_tracking_loss: visible must be {(b, f, n)} and track_mask {(b, n)}, got "
                     f"{visible.shape} and {track_mask.shape}")
  if not 0 <= config.query_frame < f:
    raise ValueError(f"feature_tracking_loss: query_frame {config.query_frame} outside the {f} latent frames")
  s = float(token_stride)
  tracks = jax.lax.stop_gradient(jnp.asarray(tracks, jnp.float32))
  x, y = tracks[..., 0], tracks[..., 1]                                           # (B, F, N)
  inside = (x >= 0) & (x < w * s) & (y >= 0) & (y < h * s)
  ok = jnp.asarray(visible, bool) & inside
  fq = config.query_frame
  valid = ok & ok[:, fq:fq + 1] & jnp.asarray(track_mask, bool)[:, None, :]
  valid = valid & (jnp.arange(f) != fq)[None, :, None]

  logits = cosine_cost_volume(features, tracks[:, fq], fq, s) / config.temperature   # (B, F, N, hw)
  centres = token_centres(h, w, s)
  if config.mode == "ce":
    target_corner, target_weight = bilinear_token_corners(x, y, h, w, s)          # (B, F, N, 4)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    per_pair = -jnp.sum(target_weight * jnp.take_along_axis(log_p, target_corner, axis=-1), axis=-1)
    estimate = centres[jnp.argmax(logits, axis=-1)]
  else:
    if config.mode == "local":
      best = jnp.argmax(logits, axis=-1)                                          # (B, F, N)
      bi, bj = best // w, best % w
      ti, tj = jnp.arange(h * w) // w, jnp.arange(h * w) % w
      near = ((jnp.abs(ti - bi[..., None]) <= config.local_radius)
              & (jnp.abs(tj - bj[..., None]) <= config.local_radius))
      logits = jnp.where(near, logits, -jnp.inf)
    estimate = jnp.einsum("bfnk,kc->bfnc", jax.nn.softmax(logits, axis=-1), centres)
    # sqrt(·+ε), not norm: an exact estimate must not give a NaN gradient.
    error = jnp.sqrt(jnp.sum(jnp.square(estimate - tracks), axis=-1) + 1e-12) / s
    per_pair = optax.losses.huber_loss(error, delta=config.huber_delta)
  count = jnp.sum(valid)
  denominator = jnp.maximum(count, 1).astype(jnp.float32)
  loss = jnp.sum(jnp.where(valid, per_pair, 0.0)) / denominator
  error_tokens = jnp.linalg.norm(jax.lax.stop_gradient(estimate) - tracks, axis=-1) / s
  metrics = {"feat_loss": loss, "feat_pairs": count.astype(jnp.float32),
             "feat_error_tokens": jnp.sum(jnp.where(valid, error_tokens, 0.0)) / denominator}
  return loss, metrics
