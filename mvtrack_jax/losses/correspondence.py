"""L_corr: cross-entropy on the DiT's own attention map (MVTrack4Gen's multi-view correspondence loss).

MVTrack4Gen (project page, step 3) supervises the 3D attention map directly: each target-view
query token at a tracked point should attend to the ground-truth corresponding reference-view
location. The paper gives no equation; this module implements this project's reconstruction of it (docs/design.md
§4.4) with every unknown a :class:`CorrespondenceConfig` option:

- rows: for each point ``n`` and latent frame ``f`` where the point is visible in *both* views
  (and inside both frames), the target-view token containing its GT target-view position;
- logits ``q_row · Kᵀ / √d`` of the probe layer (q/k after RMSNorm and RoPE — what the attention
  uses), in fp32, for those rows only;
- softmax ``domain``: ``reference_frame`` (the reference tokens of the same latent frame;
  default), ``reference_video`` (all reference tokens) or ``all`` (the full attention row);
- ``target``: ``bilinear`` weights over the 4 reference token centres around the GT reference
  location (default) or the ``onehot`` token containing it;
- ``head_reduction``: ``per_head`` (CE per head, averaged; default) or ``mean_attention`` (CE of
  the head-averaged attention distribution);
- summed over the configured probe layers.

``CE = logsumexp(logits) − Σ_c w_c·logit_c`` (per head). The S×S map is never built: the rows of
one latent frame at a time are scored against the domain's keys inside a rematerialised
``lax.map``, so temporary memory is ``O(B·N·heads·|domain|) ≤ O(B·N·S·heads)``.

Token layout (``WanDiT`` probes, docs/design.md §3/§4.2): ``S = 2·F·h·w`` tokens, target frames first,
then reference frames; each frame's tokens row-major ``(h, w)``; token ``(f, i, j)`` covers video
pixels ``[j·s, (j+1)·s) × [i·s, (i+1)·s)`` with ``s = vae_stride · patch_h``, centre
``((j + ½)·s, (i + ½)·s)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

Array = Any

DOMAINS = ("reference_frame", "reference_video", "all")
TARGETS = ("bilinear", "onehot")
HEAD_REDUCTIONS = ("per_head", "mean_attention")


@dataclasses.dataclass(frozen=True)
class CorrespondenceConfig:
  """Options of L_corr (paper silent on all of them; defaults from the issue).

  Attributes:
    layers: 0-based probe layers whose attention is supervised; losses are summed over them.
    domain: softmax domain, one of ``DOMAINS``.
    target: target distribution, one of ``TARGETS``.
    head_reduction: one of ``HEAD_REDUCTIONS``.
  """

  layers: tuple[int, ...] = (18,)
  domain: str = "reference_frame"
  target: str = "bilinear"
  head_reduction: str = "per_head"

  def __post_init__(self):
    if self.domain not in DOMAINS:
      raise ValueError(f"CorrespondenceConfig: domain={self.domain!r}, expected one of {DOMAINS}")
    if self.target not in TARGETS:
      raise ValueError(f"CorrespondenceConfig: target={self.target!r}, expected one of {TARGETS}")
    if self.head_reduction not in HEAD_REDUCTIONS:
      raise ValueError(
          f"CorrespondenceConfig: head_reduction={self.head_reduction!r}, expected one of {HEAD_REDUCTIONS}")
    if not self.layers or any(int(l) < 0 for l in self.layers):
      raise ValueError(f"CorrespondenceConfig: layers must be non-empty 0-based indices, got {self.layers}")


def correspondence_targets(tracks: Array, visible: Array, track_mask: Array, *, grid: Sequence[int],
                           token_stride: int, target: str = "bilinear") -> dict[str, jax.Array]:
  """Rows and target distributions of L_corr from GT tracks (no gradient flows through them).

  Args:
    tracks: ``(B, 2, F, N, 2)`` float GT ``(x, y)`` in video pixels at latent-frame rate; view 0 =
      reference, 1 = target.
    visible: ``(B, 2, F, N)`` bool.
    track_mask: ``(B, N)`` bool, False = padding / no GT.
    grid: ``(F, h, w)`` latent frames and tokens per frame.
    token_stride: video pixels per token ``s``.
    target: ``'bilinear'`` or ``'onehot'``.

  Returns:
    dict with ``row`` ``(B, F, N)`` int32: token index of the row in the target half (frame offset
    included); ``col`` ``(B, F, N, 4)`` int32: within-frame reference token indices ``i·w + j``;
    ``weight`` ``(B, F, N, 4)`` float32 summing to 1; ``valid`` ``(B, F, N)`` bool (visible in
    both views, inside both frames, ``track_mask``).

  Raises:
    ValueError: on inconsistent shapes or an unknown ``target``.
  """
  if target not in TARGETS:
    raise ValueError(f"correspondence_targets: target={target!r}, expected one of {TARGETS}")
  num_frames, h, w = (int(g) for g in grid)
  if tracks.ndim != 5 or tracks.shape[1] != 2 or tracks.shape[2] != num_frames or tracks.shape[-1] != 2:
    raise ValueError(f"correspondence_targets: tracks must be (B, 2, F={num_frames}, N, 2), got {tracks.shape}")
  if visible.shape != tracks.shape[:-1]:
    raise ValueError(f"correspondence_targets: visible must be {tracks.shape[:-1]}, got {visible.shape}")
  b, _, _, n, _ = tracks.shape
  if track_mask.shape != (b, n):
    raise ValueError(f"correspondence_targets: track_mask must be {(b, n)}, got {track_mask.shape}")
  tracks = jax.lax.stop_gradient(jnp.asarray(tracks, jnp.float32))
  s = float(token_stride)
  height, width = h * s, w * s
  x, y = tracks[..., 0], tracks[..., 1]                               # (B, 2, F, N)
  inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
  valid = (jnp.asarray(visible, bool) & inside).all(axis=1) & jnp.asarray(track_mask, bool)[:, None, :]

  # Target-view token containing the GT target location.
  ti = jnp.clip(jnp.floor(y[:, 1] / s), 0, h - 1).astype(jnp.int32)
  tj = jnp.clip(jnp.floor(x[:, 1] / s), 0, w - 1).astype(jnp.int32)
  frame = jnp.arange(num_frames, dtype=jnp.int32)[None, :, None]
  row = frame * (h * w) + ti * w + tj

  xr, yr = x[:, 0], y[:, 0]
  if target == "onehot":
    ri = jnp.clip(jnp.floor(yr / s), 0, h - 1).astype(jnp.int32)
    rj = jnp.clip(jnp.floor(xr / s), 0, w - 1).astype(jnp.int32)
    col = jnp.repeat((ri * w + rj)[..., None], 4, axis=-1)
    weight = jnp.broadcast_to(jnp.asarray([1.0, 0.0, 0.0, 0.0], jnp.float32), col.shape)
  else:
    col, weight = bilinear_token_corners(xr, yr, h, w, s)
  return {"row": row, "col": col.astype(jnp.int32), "weight": weight.astype(jnp.float32), "valid": valid}


def bilinear_token_corners(x: Array, y: Array, h: int, w: int, token_stride: float) -> tuple[jax.Array, jax.Array]:
  """The 4 tokens around a point and their bilinear weights, on an ``h × w`` token grid.

  Token ``(i, j)`` has its centre at video pixel ``((j+½)·s, (i+½)·s)`` (``models.wan.token_grid``); a point is
  clamped to the grid of centres (a point nearer the border than half a token takes the border tokens).

  Args:
    x, y: same-shape float arrays of video pixel coordinates (corner origin).
    h, w: tokens per column / row.
    token_stride: video pixels per token ``s``.

  Returns:
    ``(index, weight)``, both ``x.shape + (4,)``: within-frame token indices ``i·w + j`` (int32) of the corners
    ``(i0, j0), (i0, j1), (i1, j0), (i1, j1)`` and weights summing to 1 (float32).
  """
  u = jnp.clip(x / token_stride - 0.5, 0.0, w - 1.0)
  v = jnp.clip(y / token_stride - 0.5, 0.0, h - 1.0)
  j0 = jnp.clip(jnp.floor(u), 0, max(w - 2, 0)).astype(jnp.int32)
  i0 = jnp.clip(jnp.floor(v), 0, max(h - 2, 0)).astype(jnp.int32)
  j1 = jnp.minimum(j0 + 1, w - 1)
  i1 = jnp.minimum(i0 + 1, h - 1)
  a = jnp.clip(u - j0, 0.0, 1.0)
  c = jnp.clip(v - i0, 0.0, 1.0)
  index = jnp.stack([i0 * w + j0, i0 * w + j1, i1 * w + j0, i1 * w + j1], axis=-1).astype(jnp.int32)
  weight = jnp.stack([(1 - a) * (1 - c), a * (1 - c), (1 - a) * c, a * c], axis=-1).astype(jnp.float32)
  return index, weight


def attention_correspondence_loss(q: Array, k: Array, tracks: Array, visible: Array, track_mask: Array, *,
                                  grid: Sequence[int], token_stride: int,
                                  config: CorrespondenceConfig = CorrespondenceConfig()
                                  ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """L_corr of one probe layer (MVTrack4Gen "multi-view correspondence loss"; notes §1.8.3).

  Args:
    q, k: ``(B, S, heads, head_dim)`` query/key features of the layer (any float dtype; the
      logits are computed in fp32), ``S = 2·F·h·w``, target tokens first.
    tracks, visible, track_mask: GT as in :func:`correspondence_targets`.
    grid: ``(F, h, w)``.
    token_stride: video pixels per token.
    config: domain / target / head reduction (``config.layers`` is not used here).

  Returns:
    ``(loss, aux)``: scalar fp32 mean CE (nats) over valid rows, 0 when there is none;
    ``aux = {"rows": number of valid rows (fp32), "accuracy": fraction of valid rows whose
    argmax of the head-averaged attention (softmax over the domain per head, then the mean over
    heads) is a target token with non-zero weight}``.

  Raises:
    ValueError: when ``q``/``k`` shapes disagree with each other or with ``grid``.
  """
  num_frames, h, w = (int(g) for g in grid)
  hw = h * w
  if q.ndim != 4 or q.shape != k.shape:
    raise ValueError(f"attention_correspondence_loss: q {q.shape} and k {k.shape} must both be (B, S, heads, head_dim)")
  b, s_tokens, heads, head_dim = q.shape
  if s_tokens != 2 * num_frames * hw:
    raise ValueError(f"attention_correspondence_loss: S={s_tokens} tokens but grid {tuple(grid)} implies "
                     f"2·F·h·w={2 * num_frames * hw}")
  tgt = correspondence_targets(tracks, visible, track_mask, grid=grid, token_stride=token_stride,
                               target=config.target)
  n = tgt["row"].shape[-1]
  if n == 0:
    zero = jnp.zeros((), jnp.float32)
    return zero, {"rows": zero, "accuracy": zero}
  rows = tgt["row"].reshape(b, num_frames * n)
  q_rows = jnp.take_along_axis(q, rows[:, :, None, None], axis=1)          # (B, F·N, H, D)
  q_rows = q_rows.reshape(b, num_frames, n, heads, head_dim).astype(jnp.float32) / math.sqrt(head_dim)
  ref_offset = num_frames * hw
  if config.domain == "reference_frame":
    keys = k[:, ref_offset:].reshape(b, num_frames, hw, heads, head_dim)
    col_offset = jnp.zeros((num_frames,), jnp.int32)
  elif config.domain == "reference_video":
    keys = k[:, ref_offset:]
    col_offset = jnp.arange(num_frames, dtype=jnp.int32) * hw
  else:
    keys = k
    col_offset = ref_offset + jnp.arange(num_frames, dtype=jnp.int32) * hw

  @jax.checkpoint
  def frame_ce(args):
    q_f, col_f, w_f, offset_f, keys_f = args                             # q_f (B, N, H, D)
    logits = jnp.einsum("bnhd,bmhd->bnhm", q_f, keys_f.astype(jnp.float32),
                        precision=jax.lax.Precision.HIGHEST)
    logp = jax.nn.log_softmax(logits, axis=-1)                           # (B, N, H, M)
    if config.head_reduction == "mean_attention":
      logp = jax.nn.logsumexp(logp, axis=2, keepdims=True) - math.log(heads)
    idx = jnp.broadcast_to((col_f + offset_f)[:, :, None, :], logp.shape[:3] + (4,))
    picked = jnp.take_along_axis(logp, idx, axis=-1)                     # (B, N, H', 4)
    ce = -jnp.sum(picked * w_f[:, :, None, :], axis=-1).mean(axis=-1)    # (B, N)
    # The matched token is the argmax of the head-averaged attention (softmax per head, then the
    # mean), not of the head-averaged logits: one head with large logits would otherwise decide.
    best = jnp.argmax(jax.nn.softmax(logits, axis=-1).mean(axis=2), axis=-1)  # (B, N)
    hit = jnp.any((best[..., None] == col_f + offset_f) & (w_f > 0), axis=-1)
    return ce, hit

  if config.domain == "reference_frame":
    xs = (jnp.moveaxis(q_rows, 1, 0), jnp.moveaxis(tgt["col"], 1, 0), jnp.moveaxis(tgt["weight"], 1, 0),
          col_offset, jnp.moveaxis(keys, 1, 0))
    ce, hit = jax.lax.map(frame_ce, xs)
  else:
    xs = (jnp.moveaxis(q_rows, 1, 0), jnp.moveaxis(tgt["col"], 1, 0), jnp.moveaxis(tgt["weight"], 1, 0),
          col_offset)
    ce, hit = jax.lax.map(lambda a: frame_ce(a + (keys,)), xs)
  valid = jnp.moveaxis(tgt["valid"], 1, 0)                                # (F, B, N)
  count = valid.sum().astype(jnp.float32)
  denom = jnp.maximum(count, 1.0)
  loss = jnp.sum(jnp.where(valid, ce, 0.0)) / denom
  accuracy = jnp.sum(jnp.where(valid, hit, False)).astype(jnp.float32) / denom
  return loss, {"rows": count, "accuracy": accuracy}


def multi_layer_correspondence_loss(probes: Mapping[int, Mapping[str, Array]], tracks: Array, visible: Array,
                                    track_mask: Array, *, grid: Sequence[int], token_stride: int,
                                    config: CorrespondenceConfig = CorrespondenceConfig()
                                    ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """L_corr summed over ``config.layers`` (the paper's "multi-layer matching loss").

  Args:
    probes: ``{layer: {"q": (B, S, heads, head_dim), "k": ...}}`` from ``WanDiT(probe_layers=...)``.
    tracks, visible, track_mask, grid, token_stride: see :func:`attention_correspondence_loss`.
    config: :class:`CorrespondenceConfig`.

  Returns:
    ``(loss, metrics)`` with per-layer ``corr_loss/layer_{l}``, ``corr_token_hit_rate/layer_{l}`` (the ``accuracy``
    of :func:`attention_correspondence_loss`: a hit is the argmax landing on any of the ≤ 4 tokens of the bilinear
    target, i.e. within about one token, 16 px at Wan's 480p tokens: a token hit rate, not PCK at a pixel
    threshold; the probe's PCK is ``evaluation.probe``) and
    ``corr_rows``.

  Raises:
    KeyError: when a configured layer is missing from ``probes``.
  """
  total = jnp.zeros((), jnp.float32)
  metrics: dict[str, jax.Array] = {}
  for layer in config.layers:
    if layer not in probes:
      raise KeyError(f"multi_layer_correspondence_loss: layer {layer} not in probes (have {sorted(probes)})")
    loss, aux = attention_correspondence_loss(probes[layer]["q"], probes[layer]["k"], tracks, visible, track_mask,
                                              grid=grid, token_stride=token_stride, config=config)
    total = total + loss
    metrics[f"corr_loss/layer_{layer}"] = loss
    metrics[f"corr_token_hit_rate/layer_{layer}"] = aux["accuracy"]
    metrics["corr_rows"] = aux["rows"]
  return total, metrics
