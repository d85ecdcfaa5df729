"""Attention-layer correspondence probe (DiffTrack protocol, extended to cross-view by MVTrack4Gen).

Which DiT layers and denoising timesteps encode point correspondence in their self-attention?
DiffTrack (Nam et al., arXiv 2506.17220; code ``soow0n/difftrack-v1``: ``utils/evaluation.py``,
``utils/confidence_attention_score.py``, ``utils/harmonic_mean.py``) scores every (layer × timestep)
by three numbers; MVTrack4Gen (project page, "layer analysis") does the same for temporal
correspondence in each view and for cross-view correspondence (docs/design.md §4.6).

Inputs are the probe features of ``WanDiT(..., probe_layers=...)``: ``q``/``k`` of shape
``(B, S, heads, head_dim)`` after RMSNorm and RoPE (exactly what the attention uses),
``S = 2·F·h·w``, **target frames first, then reference frames**, each frame row-major ``(h, w)``.
Token ``(f, i, j)`` covers video pixels ``[j·s, (j+1)·s) × [i·s, (i+1)·s)``, centre
``((j+½)·s, (i+½)·s)``, ``s`` = token stride in video pixels (``NovelViewPipeline.token_stride``).
Pixel coordinates: continuous ``(x, y)``, origin at the top-left pixel's corner (docs/design.md §3).
Ground truth: tracks ``(B, 2, F, N, 2)`` at latent-frame rate (view 0 = reference, 1 = target),
``visible`` ``(B, 2, F, N)``, ``point_mask`` ``(B, N)``.

Correspondence kinds (:data:`KINDS`), each a list of (query frame → key frame) pairs
(:func:`kind_pairs`):

- ``reference_temporal``: queries at the GT reference-view positions in latent frame 0, matched in
  reference frame ``j`` for ``j = 1 … F−1``;
- ``target_temporal``: the same inside the target view;
- ``cross_view``: queries at the GT target-view positions in target frame ``f``, matched in
  reference frame ``f`` for ``f = 0 … F−1`` (the direction ``L_corr`` supervises).

Per pair and point (:func:`pair_scores`):

- query descriptor = ``q`` of the query frame bilinearly sampled at the query pixel on the grid of
  token centres (per head; clamped to the outermost centres);
- logits ``q·kᵀ/√head_dim`` against all ``S`` tokens, in float32;
- **attention score** = attention mass of the full softmax over all ``S`` tokens (the layer's
  self-attention row for that query; exact when the query sits on a token centre, interpolated
  otherwise) that falls on the key frame's ``h·w`` tokens, mean over heads;
- **confidence** = the largest head-averaged full-softmax attention weight on a key-frame token
  (DiffTrack ``confidence_attention_score.py``: the max of the full attention row over that frame's
  tokens, not of a softmax renormalised over the frame — that one is larger by the factor 1/attention
  score, 0.488 vs 0.0059 on one measured row, and could reorder layers);
- predicted match = centre of the argmax token of the frame-restricted softmax (over the key
  frame's ``h·w`` tokens, averaged over heads), in pixels;
- **matching accuracy** = PCK: 100 × fraction of valid points with ``‖pred − gt‖ < threshold``
  (strict; 8 px by default, DiffTrack);
- valid = GT-visible in both the query and key frames, both positions inside the image
  ``[0, w·s) × [0, h·s)``, and ``point_mask``.

Where it differs from DiffTrack's code (so absolute numbers are comparable within this project, and layer
rankings — after the min–max normalisation below — are expected to be close, but its PCK/attention values are not
DiffTrack's): the match is one-directional (the frame-restricted argmax, where DiffTrack averages the
query→key and key→query frame softmaxes and takes an NC-Net soft-mutual argmax), read at token centres (DiffTrack
grid-samples at the query and interpolates tracks to every RGB frame), and scored at latent-frame rate
(video frames ``0, k, 2k, …``); the attention score is the mass on the key frame only (DiffTrack: on all other
frames). The confidence definition is DiffTrack's.

Aggregation: each metric of a kind is the **mean over all valid (point, pair) entries** of the kind
(pooled over the batch, all pairs and all batches — not a mean of per-video or per-pair means).
:func:`kind_sums` returns the sums (count, correct, confidence, attention) so that batches add up on
the host. A kind without any valid entry (e.g. temporal kinds when ``F = 1``) gives NaN.

Tables (:func:`metric_tables`): per kind, ``(layers × timesteps)`` tables of accuracy, confidence
and attention score, and the **harmonic mean** ``HM = 3 / (1/a + 1/c + 1/s)`` of the three after
min–max normalising each table over the whole table (:func:`minmax_normalize`; non-finite cells
→ 0; a cell with a normalised 0 gives HM 0, like DiffTrack's ``inf → 0``). A constant table
(max = min over its finite cells) normalises to 1 in every finite cell, so it leaves the ranking to
the two other metrics (DiffTrack's ``0/0 → NaN → 0`` would zero the whole HM table instead).
:func:`top_layers` ranks layers by their mean HM over timesteps.

Writers: :func:`write_csv`, :func:`write_json`, :func:`write_heatmap` (matplotlib, Agg), all atomic
(``data.video_io.atomic_output``).

Memory: pairs are scored one at a time inside ``jax.lax.map``; the largest temporary is one pair's
logits ``(B, N, heads, S)`` float32 — never ``(pairs, B, N, S)``.
"""

from __future__ import annotations

import csv
import json
import math
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mvtrack_jax.data.video_io import atomic_output

Array = Any

KINDS: tuple[str, ...] = ("reference_temporal", "target_temporal", "cross_view")
METRICS: tuple[str, ...] = ("accuracy", "confidence", "attention_score")
SUM_FIELDS: tuple[str, ...] = ("count", "correct", "confidence", "attention")
REFERENCE, TARGET = 0, 1  # view index in tracks/visible (pipeline layout)
DEFAULT_PCK_THRESHOLD = 8.0


def _check_grid(grid: Sequence[int], token_stride: Any, fn: str) -> tuple[int, int, int]:
  if len(tuple(grid)) != 3 or any(int(g) < 1 for g in grid):
    raise ValueError(f"{fn}: grid must be (F, h, w) of positive ints, got {tuple(grid)}")
  if not float(token_stride) > 0:
    raise ValueError(f"{fn}: token_stride must be > 0 video pixels, got {token_stride}")
  return tuple(int(g) for g in grid)


def kind_pairs(kind: str, num_frames: int) -> list[tuple[int, int, int, int]]:
  """The (query view, query frame, key view, key frame) pairs of a correspondence kind.

  Views are track indices (``REFERENCE = 0``, ``TARGET = 1``); frames are latent frames.

  Args:
    kind: one of :data:`KINDS`.
    num_frames: latent frames ``F`` per view (>= 1).

  Returns:
    ``reference_temporal``: ``[(0, 0, 0, j) for j in 1..F−1]``; ``target_temporal``:
    ``[(1, 0, 1, j) for j in 1..F−1]``; ``cross_view``: ``[(1, f, 0, f) for f in 0..F−1]``.
    Temporal kinds are empty when ``F = 1``.

  Raises:
    ValueError: unknown ``kind`` or ``num_frames < 1``.
  """
  if kind not in KINDS:
    raise ValueError(f"kind_pairs: kind={kind!r}, expected one of {KINDS}")
  if int(num_frames) < 1:
    raise ValueError(f"kind_pairs: num_frames must be >= 1, got {num_frames}")
  if kind == "reference_temporal":
    return [(REFERENCE, 0, REFERENCE, j) for j in range(1, num_frames)]
  if kind == "target_temporal":
    return [(TARGET, 0, TARGET, j) for j in range(1, num_frames)]
  return [(TARGET, f, REFERENCE, f) for f in range(num_frames)]


def _validate_inputs(q, k, tracks, visible, point_mask, grid, fn):
  num_frames, h, w = grid
  if q.ndim != 4 or q.shape != k.shape:
    raise ValueError(f"{fn}: q and k must both be (B, S, heads, head_dim); got q {q.shape}, k {k.shape}")
  b, s_tokens = q.shape[:2]
  if s_tokens != 2 * num_frames * h * w:
    raise ValueError(f"{fn}: q has S={s_tokens} tokens, expected 2·F·h·w = {2 * num_frames * h * w} for grid "
                     f"{tuple(grid)}")
  if tracks.ndim != 5 or tracks.shape[:3] != (b, 2, num_frames) or tracks.shape[-1] != 2:
    raise ValueError(f"{fn}: tracks must be (B={b}, 2, F={num_frames}, N, 2), got {tracks.shape}")
  if tuple(visible.shape) != tuple(tracks.shape[:-1]):
    raise ValueError(f"{fn}: visible must be {tuple(tracks.shape[:-1])}, got {tuple(visible.shape)}")
  n = tracks.shape[3]
  if tuple(point_mask.shape) != (b, n):
    raise ValueError(f"{fn}: point_mask must be {(b, n)}, got {tuple(point_mask.shape)}")


def _bilinear_tokens(frame_tokens: jax.Array, xy: jax.Array, h: int, w: int, stride: float) -> jax.Array:
  """Samples ``(B, h·w, H, D)`` frame tokens at pixel positions ``(B, N, 2)`` → ``(B, N, H, D)``."""
  u = jnp.clip(xy[..., 0] / stride - 0.5, 0.0, w - 1.0)
  v = jnp.clip(xy[..., 1] / stride - 0.5, 0.0, h - 1.0)
  j0 = jnp.clip(jnp.floor(u), 0, w - 1).astype(jnp.int32)
  i0 = jnp.clip(jnp.floor(v), 0, h - 1).astype(jnp.int32)
  j1 = jnp.minimum(j0 + 1, w - 1)
  i1 = jnp.minimum(i0 + 1, h - 1)
  a = (u - j0)[..., None, None]
  c = (v - i0)[..., None, None]
  take = lambda i, j: jnp.take_along_axis(frame_tokens, (i * w + j)[:, :, None, None], axis=1)
  return ((1 - a) * (1 - c) * take(i0, j0) + a * (1 - c) * take(i0, j1) + (1 - a) * c * take(i1, j0)
          + a * c * take(i1, j1))


def pair_scores(q: Array, k: Array, tracks: Array, visible: Array, point_mask: Array, *, grid: Sequence[int],
                token_stride: float, pairs: Sequence[tuple[int, int, int, int]],
                pck_threshold: float = DEFAULT_PCK_THRESHOLD) -> dict[str, jax.Array]:
  """Per-(pair, point) probe scores of one layer (module docstring; DiffTrack protocol). Jit-able.

  Args:
    q, k: ``(B, S, heads, head_dim)`` probe q/k (any float dtype; computed in float32),
      ``S = 2·F·h·w``, target tokens first.
    tracks: ``(B, 2, F, N, 2)`` float GT ``(x, y)`` in video pixels at latent-frame rate; view 0 =
      reference, 1 = target.
    visible: ``(B, 2, F, N)`` bool GT visibility.
    point_mask: ``(B, N)`` bool; False = padding / no GT.
    grid: ``(F, h, w)`` latent frames and tokens per frame of ONE view (static).
    token_stride: video pixels per token ``s`` (static).
    pairs: static list of ``(query_view, query_frame, key_view, key_frame)`` (:func:`kind_pairs`).
    pck_threshold: PCK distance in video pixels (strict ``<``).

  Returns:
    dict of ``(P, B, N)`` arrays, ``P = len(pairs)``: ``valid`` bool, ``correct`` bool (within the
    threshold), ``confidence`` float32 (max over key-frame tokens of the head-averaged full-softmax
    attention, in ``[0, attention]``),
    ``attention`` float32 (head-averaged full-softmax mass on the key frame, in ``[0, 1]``),
    ``error`` float32 (pixels), and ``prediction`` ``(P, B, N, 2)`` float32 pixel ``(x, y)``.
    Entries where ``valid`` is False hold values computed anyway (ignore them).

  Raises:
    ValueError: on shapes inconsistent with ``grid``, an empty ``pairs``, pair indices out of
      range, or ``pck_threshold <= 0``.
  """
  num_frames, h, w = _check_grid(grid, token_stride, "pair_scores")
  q, k = jnp.asarray(q), jnp.asarray(k)
  tracks, visible, point_mask = jnp.asarray(tracks), jnp.asarray(visible), jnp.asarray(point_mask)
  _validate_inputs(q, k, tracks, visible, point_mask, (num_frames, h, w), "pair_scores")
  pairs = [tuple(int(x) for x in p) for p in pairs]
  if not pairs:
    raise ValueError("pair_scores: pairs is empty; expected at least one (query_view, query_frame, key_view, "
                     "key_frame)")
  for p in pairs:
    if len(p) != 4 or p[0] not in (0, 1) or p[2] not in (0, 1) or not (0 <= p[1] < num_frames and
                                                                           0 <= p[3] < num_frames):
      raise ValueError(f"pair_scores: pair {p} out of range; expected (view in {{0, 1}}, frame in [0, {num_frames}), "
                       f"view, frame)")
  if not float(pck_threshold) > 0:
    raise ValueError(f"pair_scores: pck_threshold must be > 0 pixels, got {pck_threshold}")
  b, s_tokens, heads, head_dim = q.shape
  hw = h * w
  stride = float(token_stride)
  width, height = w * stride, h * stride
  scale = 1.0 / math.sqrt(head_dim)
  # Token offset of a frame: target half first (view 1 → 0), reference half after (view 0 → F·hw).
  start = lambda view, frame: (1 - view) * num_frames * hw + frame * hw
  table = np.asarray([(start(qv, qf), start(kv, kf), qv, qf, kv, kf) for qv, qf, kv, kf in pairs], np.int32)
  tracks = tracks.astype(jnp.float32)
  visible = visible.astype(bool)
  point_mask = point_mask.astype(bool)
  centres_x = (jnp.arange(w, dtype=jnp.float32) + 0.5) * stride
  centres_y = (jnp.arange(h, dtype=jnp.float32) + 0.5) * stride
  threshold = jnp.asarray(pck_threshold, jnp.float32)

  def inside(xy):
    return (xy[..., 0] >= 0) & (xy[..., 0] < width) & (xy[..., 1] >= 0) & (xy[..., 1] < height)

  def one_pair(row):
    q_start, k_start, qv, qf, kv, kf = (row[i] for i in range(6))
    query_xy = tracks[:, qv, qf]                                              # (B, N, 2)
    gt_xy = tracks[:, kv, kf]
    frame_q = jax.lax.dynamic_slice_in_dim(q, q_start, hw, axis=1).astype(jnp.float32)
    desc = _bilinear_tokens(frame_q, query_xy, h, w, stride) * scale         # (B, N, H, D)
    logits = jnp.einsum("bnhd,bshd->bnhs", desc, k.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)
    key_logits = jax.lax.dynamic_slice_in_dim(logits, k_start, hw, axis=3)   # (B, N, H, hw)
    lse_all = jax.nn.logsumexp(logits, axis=-1)
    lse_key = jax.nn.logsumexp(key_logits, axis=-1)
    attention = jnp.exp(lse_key - lse_all).mean(axis=-1)                     # (B, N)
    frame_attn = jax.nn.softmax(key_logits, axis=-1).mean(axis=2)            # (B, N, hw)
    confidence = jnp.exp(key_logits - lse_all[..., None]).mean(axis=2).max(axis=-1)  # full row, key frame
    best = jnp.argmax(frame_attn, axis=-1)
    prediction = jnp.stack([centres_x[best % w], centres_y[best // w]], axis=-1)
    error = jnp.linalg.norm(prediction - gt_xy, axis=-1)
    valid = (visible[:, qv, qf] & visible[:, kv, kf] & inside(query_xy) & inside(gt_xy) & point_mask)
    return {"valid": valid, "correct": error < threshold, "confidence": confidence, "attention": attention,
            "error": error, "prediction": prediction}

  return jax.lax.map(one_pair, jnp.asarray(table))


def kind_sums(q: Array, k: Array, tracks: Array, visible: Array, point_mask: Array, *, grid: Sequence[int],
              token_stride: float, kind: str, pck_threshold: float = DEFAULT_PCK_THRESHOLD) -> jax.Array:
  """Sums over the valid (pair, point) entries of one kind, for host-side accumulation. Jit-able.

  Args:
    q, k, tracks, visible, point_mask, grid, token_stride, pck_threshold: see :func:`pair_scores`.
    kind: one of :data:`KINDS`.

  Returns:
    ``(4,)`` float32 ``[count, correct, confidence, attention]`` (:data:`SUM_FIELDS`): number of
    valid entries, of those within the PCK threshold, and the sums of confidence and attention
    score. All zero when the kind has no pair (``F = 1`` for temporal kinds).

  Raises:
    ValueError: see :func:`pair_scores`; unknown ``kind``.
  """
  num_frames = _check_grid(grid, token_stride, "kind_sums")[0]
  pairs = kind_pairs(kind, num_frames)
  if not pairs:
    return jnp.zeros((len(SUM_FIELDS),), jnp.float32)
  scores = pair_scores(q, k, tracks, visible, point_mask, grid=grid, token_stride=token_stride, pairs=pairs,
                       pck_threshold=pck_threshold)
  valid = scores["valid"]
  total = lambda x: jnp.sum(jnp.where(valid, x, 0).astype(jnp.float32))
  return jnp.stack([total(jnp.ones_like(valid)), total(scores["correct"]), total(scores["confidence"]),
                    total(scores["attention"])])


def probe_sums(probes: Mapping[int, Mapping[str, Array]], tracks: Array, visible: Array, point_mask: Array, *,
               grid: Sequence[int], token_stride: float, layers: Sequence[int] | None = None,
               kinds: Sequence[str] = KINDS, pck_threshold: float = DEFAULT_PCK_THRESHOLD) -> jax.Array:
  """:func:`kind_sums` for every probe layer and kind of one DiT forward. Jit-able.

  Args:
    probes: ``{layer: {"q": (B, S, heads, head_dim), "k": ...}}`` from ``WanDiT(probe_layers=...)``.
    tracks, visible, point_mask, grid, token_stride, pck_threshold: see :func:`pair_scores`.
    layers: the layers to score, in output order (default: ``sorted(probes)``).
    kinds: correspondence kinds, in output order.

  Returns:
    ``(len(layers), len(kinds), 4)`` float32 sums (:data:`SUM_FIELDS` on the last axis).

  Raises:
    ValueError: a layer missing from ``probes``, unknown kinds, or bad shapes (:func:`pair_scores`).
  """
  layers = sorted(probes) if layers is None else [int(l) for l in layers]
  missing = [l for l in layers if l not in probes]
  if missing:
    raise ValueError(f"probe_sums: layers {missing} not in probes (have {sorted(probes)})")
  bad = [kd for kd in kinds if kd not in KINDS]
  if bad or not kinds:
    raise ValueError(f"probe_sums: kinds={list(kinds)}, expected a non-empty subset of {KINDS}")
  return jnp.stack([
      jnp.stack([kind_sums(probes[l]["q"], probes[l]["k"], tracks, visible, point_mask, grid=grid,
                           token_stride=token_stride, kind=kd, pck_threshold=pck_threshold) for kd in kinds])
      for l in layers])


# ----------------------------------------------------------------------------------------------
# Tables (NumPy, host side).


def metrics_from_sums(sums: Array) -> dict[str, np.ndarray]:
  """Means over valid entries from accumulated sums.

  Args:
    sums: ``(..., 4)`` sums (:data:`SUM_FIELDS`), e.g. ``(layers, timesteps)`` + ``(4,)`` of one kind.

  Returns:
    ``{"accuracy": PCK in % (0–100), "confidence": mean max frame attention (0–1),
    "attention_score": mean attention mass on the key frame (0–1), "count": number of entries}``,
    float64 arrays of shape ``sums.shape[:-1]``; NaN where ``count == 0``.

  Raises:
    ValueError: when the last axis is not of size 4.
  """
  sums = np.asarray(sums, np.float64)
  if sums.ndim < 1 or sums.shape[-1] != len(SUM_FIELDS):
    raise ValueError(f"metrics_from_sums: sums must be (..., {len(SUM_FIELDS)}) {SUM_FIELDS}, got {sums.shape}")
  count = sums[..., 0]
  with np.errstate(invalid="ignore", divide="ignore"):
    mean = lambda x: np.where(count > 0, x / np.where(count > 0, count, 1.0), np.nan)
    return {"accuracy": 100.0 * mean(sums[..., 1]), "confidence": mean(sums[..., 2]),
            "attention_score": mean(sums[..., 3]), "count": count}


def minmax_normalize(table: Array) -> np.ndarray:
  """Min–max normalises a table over all its cells (DiffTrack ``utils/harmonic_mean.normalize``).

  Args:
    table: any-shaped float array, e.g. ``(layers, timesteps)``.

  Returns:
    float64 array of the same shape: ``(x − min)/(max − min)`` over the finite cells; non-finite
    cells → 0; when every finite cell has the same value (constant table), those cells → 1 (neutral
    in the harmonic mean); an all-non-finite table → all 0.
  """
  table = np.asarray(table, np.float64)
  finite = np.isfinite(table)
  out = np.zeros(table.shape, np.float64)
  if not finite.any():
    return out
  lo, hi = table[finite].min(), table[finite].max()
  if hi > lo:
    out[finite] = (table[finite] - lo) / (hi - lo)
  else:
    out[finite] = 1.0
  return out


def harmonic_mean(accuracy: Array, confidence: Array, attention_score: Array) -> np.ndarray:
  """DiffTrack's harmonic mean of the three min–max normalised tables.

  ``HM = 3 / (1/a + 1/c + 1/s)`` with ``a, c, s`` = :func:`minmax_normalize` of each table; a cell
  where any normalised value is 0 (or non-finite) gets 0 (DiffTrack: ``inf``/NaN → 0).

  Args:
    accuracy, confidence, attention_score: tables of the same shape (raw units).

  Returns:
    float64 table in ``[0, 1]``.

  Raises:
    ValueError: when the shapes differ.
  """
  shapes = {np.shape(accuracy), np.shape(confidence), np.shape(attention_score)}
  if len(shapes) != 1:
    raise ValueError(f"harmonic_mean: accuracy {np.shape(accuracy)}, confidence {np.shape(confidence)} and "
                     f"attention_score {np.shape(attention_score)} must have the same shape")
  a, c, s = (minmax_normalize(x) for x in (accuracy, confidence, attention_score))
  positive = (a > 0) & (c > 0) & (s > 0)
  with np.errstate(divide="ignore"):
    hm = 3.0 / (1.0 / np.where(positive, a, 1.0) + 1.0 / np.where(positive, c, 1.0) + 1.0 / np.where(positive, s, 1.0))
  return np.where(positive, hm, 0.0)


def top_layers(table: Array, layers: Sequence[int] | None = None, k: int = 3) -> list[int]:
  """Layers ranked by their mean over timesteps of a ``(layers × timesteps)`` table (e.g. HM).

  Ranking: descending mean over the timestep axis (non-finite cells count as 0); ties keep the
  lower layer first (stable sort).

  Args:
    table: ``(L, T)`` table, rows = layers.
    layers: the 0-based layer id of each row (default ``0 … L−1``).
    k: how many to return (all layers when ``k > L``).

  Returns:
    The ``min(k, L)`` best layer ids, best first.

  Raises:
    ValueError: ``table`` not 2-D or empty, ``layers`` of the wrong length, or ``k < 1``.
  """
  table = np.asarray(table, np.float64)
  if table.ndim != 2 or table.size == 0:
    raise ValueError(f"top_layers: table must be a non-empty (layers, timesteps) array, got shape {table.shape}")
  layers = list(range(table.shape[0])) if layers is None else [int(l) for l in layers]
  if len(layers) != table.shape[0]:
    raise ValueError(f"top_layers: layers has {len(layers)} entries, expected {table.shape[0]} (table rows)")
  if int(k) < 1:
    raise ValueError(f"top_layers: k must be >= 1, got {k}")
  score = np.where(np.isfinite(table), table, 0.0).mean(axis=1)
  order = np.argsort(-score, kind="stable")
  return [layers[i] for i in order[:int(k)]]


def metric_tables(sums: Array, kinds: Sequence[str] = KINDS, layers: Sequence[int] | None = None,
                  k: int = 3) -> dict[str, dict[str, Any]]:
  """All tables of a probe run from its accumulated sums.

  Args:
    sums: ``(L, T, K, 4)`` sums over batches (layers × timesteps × kinds × :data:`SUM_FIELDS`).
    kinds: the ``K`` kind names.
    layers: the ``L`` layer ids (default ``0 … L−1``).
    k: number of top layers per kind.

  Returns:
    ``{kind: {"accuracy", "confidence", "attention_score", "harmonic_mean", "count": (L, T) float64,
    "top_layers": [layer, ...]}}`` (:func:`metrics_from_sums`, :func:`harmonic_mean`,
    :func:`top_layers` on the HM table).

  Raises:
    ValueError: when ``sums`` is not ``(L, T, len(kinds), 4)``.
  """
  sums = np.asarray(sums, np.float64)
  if sums.ndim != 4 or sums.shape[2] != len(kinds) or sums.shape[3] != len(SUM_FIELDS):
    raise ValueError(f"metric_tables: sums must be (L, T, K={len(kinds)}, {len(SUM_FIELDS)}), got {sums.shape}")
  out = {}
  for i, kind in enumerate(kinds):
    m = metrics_from_sums(sums[:, :, i])
    m["harmonic_mean"] = harmonic_mean(m["accuracy"], m["confidence"], m["attention_score"])
    m["top_layers"] = top_layers(m["harmonic_mean"], layers, k)
    out[kind] = m
  return out


# ----------------------------------------------------------------------------------------------
# Writers.

TABLE_COLUMNS = ("kind", "layer", "timestep", "sigma", "accuracy", "confidence", "attention_score", "harmonic_mean",
                 "num_entries")


def _finite_or_none(x: float) -> float | None:
  return float(x) if np.isfinite(x) else None


def write_csv(path: str, tables: Mapping[str, Mapping[str, Any]], layers: Sequence[int],
              timesteps: Sequence[float], sigmas: Sequence[float] | None = None) -> None:
  """Writes the tables in long format, one row per (kind, layer, timestep), atomically.

  Columns :data:`TABLE_COLUMNS`; NaN (no valid entry) is written as an empty field.

  Raises:
    ValueError: when a table is not ``(len(layers), len(timesteps))``.
  """
  sigmas = [t / 1000.0 for t in timesteps] if sigmas is None else list(sigmas)
  with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(TABLE_COLUMNS)
    for kind, m in tables.items():
      for name in METRICS + ("harmonic_mean", "count"):
        if np.shape(m[name]) != (len(layers), len(timesteps)):
          raise ValueError(f"write_csv: {kind}/{name} has shape {np.shape(m[name])}, expected "
                           f"{(len(layers), len(timesteps))}")
      for i, layer in enumerate(layers):
        for j, t in enumerate(timesteps):
          cell = lambda name: "" if not np.isfinite(m[name][i, j]) else f"{float(m[name][i, j]):.6g}"
          writer.writerow([kind, int(layer), f"{float(t):.6g}", f"{float(sigmas[j]):.6g}", cell("accuracy"),
                           cell("confidence"), cell("attention_score"), cell("harmonic_mean"),
                           int(m["count"][i, j])])


def tables_to_json(tables: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """JSON-able copy of :func:`metric_tables` output (lists of rows; NaN/inf → None)."""
  out = {}
  for kind, m in tables.items():
    out[kind] = {name: [[_finite_or_none(x) for x in row] for row in np.asarray(m[name], np.float64)]
                 for name in METRICS + ("harmonic_mean", "count")}
    out[kind]["top_layers"] = [int(l) for l in m["top_layers"]]
  return out


def write_json(path: str, record: Mapping[str, Any]) -> None:
  """Writes a JSON-able record atomically (indent 2; NaN is not allowed — use :func:`tables_to_json`)."""
  text = json.dumps(record, indent=2, allow_nan=False)
  with atomic_output(path) as tmp, open(tmp, "w") as f:
    f.write(text + "\n")


def write_heatmap(path: str, kind: str, tables: Mapping[str, Any], layers: Sequence[int],
                  timesteps: Sequence[float]) -> None:
  """One PNG per kind: accuracy, confidence, attention score and HM heatmaps (layers × timesteps).

  Rows are layers (0-based, top = first), columns DiT timesteps ``1000·σ`` (noisiest left when
  given in that order); cells without valid entries are grey; the top layers (by mean HM) are
  marked with ``*`` on the HM panel's layer labels. Written atomically (matplotlib Agg backend).

  Raises:
    ValueError: when a table is not ``(len(layers), len(timesteps))``.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  panels = (("accuracy", "matching accuracy (PCK, %)"), ("confidence", "confidence"),
            ("attention_score", "attention score"), ("harmonic_mean", "harmonic mean (normalised)"))
  for name, _ in panels:
    if np.shape(tables[name]) != (len(layers), len(timesteps)):
      raise ValueError(f"write_heatmap: {kind}/{name} has shape {np.shape(tables[name])}, expected "
                       f"{(len(layers), len(timesteps))}")
  top = set(int(l) for l in tables.get("top_layers", ()))
  fig_h = 1.5 + 0.28 * len(layers)
  fig, axes = plt.subplots(1, 4, figsize=(4.0 * 4, fig_h), squeeze=False)
  cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.8")
  for ax, (name, title) in zip(axes[0], panels):
    data = np.ma.masked_invalid(np.asarray(tables[name], np.float64))
    im = ax.imshow(data, aspect="auto", cmap=cmap, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(len(timesteps)))
    ax.set_xticklabels([f"{float(t):.0f}" for t in timesteps], fontsize=7, rotation=90)
    ax.set_yticks(range(len(layers)))
    labels = [f"*{int(l)}" if name == "harmonic_mean" and int(l) in top else str(int(l)) for l in layers]
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("DiT timestep (1000·σ)", fontsize=8)
    ax.set_ylabel("layer", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
  fig.suptitle(f"{kind}: top layers by mean HM {[int(l) for l in tables.get('top_layers', ())]}", fontsize=10)
  save_figure(fig, path)


def save_figure(fig, path: str) -> None:
  """Writes a matplotlib figure as a 100-dpi PNG atomically (``data.video_io.atomic_output``) and closes it."""
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig.tight_layout()
  try:
    with atomic_output(path) as tmp:
      fig.savefig(tmp, dpi=100, format="png")
  finally:
    plt.close(fig)
