"""Wan2.1 3D rotary position embedding (RoPE) with interleaved pairs.

Every self-attention token carries a 3D position ``(frame, row, column)`` on the token grid. The
head dimension ``d`` is split into three bands, ``h_dim = w_dim = 2·⌊d/6⌋`` and
``t_dim = d − 2·h_dim`` (44/42/42 for ``d = 128``), laid out ``[t | h | w]``. Inside band ``b`` of
width ``n`` the ``i``-th channel pair rotates by ``pos_b · θ^(−2i/n)`` with ``θ = 10000``, and the
pairs are *interleaved*: ``(x[2i], x[2i+1])`` (docs/design.md §4.1; diffusers ``WanRotaryPosEmbed`` +
``WanAttnProcessor.apply_rotary_emb``, original Wan ``rope_params``/``rope_apply``). A half-split
rotation (``x[i], x[i + d/2]``) is a different network.

Novel-view layout (docs/design.md §4.2): target tokens come first, then reference tokens. With
``rope_mode="distinct"`` (ReCamMaster) the reference frames continue the frame index
(``F'..2F'−1``); with ``rope_mode="shared"`` (ReDirector) both halves use ``0..F'−1``. A model trained on
clips of ``F_train`` token frames keeps its reference half at ``F_train..`` on a shorter clip
(``reference_offset``; ``WanConfig.rope_reference_offset``): ReCamMaster only ever sees 21 latent frames
(positions 21..41 for the reference), and a 13-frame clip with the reference at 13..25 would put it where
the target sat in training.

The angles depend only on static shapes: ``rope_tables`` computes the per-axis tables once in
float64 NumPy at trace time (as diffusers precomputes float64 tables) and broadcasts them to the
``(S, d/2)`` token tables inside the graph, so only ``O((f + h + w)·d)`` constants are embedded
(not ``O(S·d)``: 33 MB at 65,520 tokens).

RoCE (ReDirector's Rotary Camera Encoding): ``apply_phase`` turns the row and column pairs by
learned per-token, per-head phases predicted from the camera embedding (``models.wan``): on q and
k after RoPE (``RoPE·exp(iφ_qk)``), on v by ``−φ_vo`` before attention and on the output by
``+φ_vo`` after the output projection. Zero phases leave the network unchanged.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

ROPE_THETA = 10000.0
ROPE_MODES = ("distinct", "shared")


def rope_band_dims(head_dim: int) -> tuple[int, int, int]:
  """Widths ``(t_dim, h_dim, w_dim)`` of the frame/row/column bands of one attention head.

  Args:
    head_dim: per-head channel count ``d`` (must be even; ``d ≥ 6`` gives non-empty h/w bands).

  Returns:
    ``(d − 4·⌊d/6⌋, 2·⌊d/6⌋, 2·⌊d/6⌋)``, e.g. ``(44, 42, 42)`` for ``d = 128``.

  Raises:
    ValueError: when ``head_dim`` is odd or not positive.
  """
  if head_dim <= 0 or head_dim % 2:
    raise ValueError(f"rope_band_dims: head_dim must be a positive even integer, got {head_dim}")
  hw = 2 * (head_dim // 6)
  return head_dim - 2 * hw, hw, hw


def reference_start(num_frames: int, rope_mode: str, reference_offset: int | None = None) -> int:
  """The frame index of the reference view's first token frame: 0 (``"shared"``), else ``num_frames``, or
  ``reference_offset`` (the training clip's token frames) when that is larger, so the two views never share a
  frame index."""
  if rope_mode == "shared":
    return 0
  return max(num_frames, reference_offset or 0)


def token_positions(num_frames: int, height: int, width: int, *, with_reference: bool = False,
                    rope_mode: str = "distinct", reference_offset: int | None = None) -> np.ndarray:
  """Integer 3D positions of the token sequence ``[target | reference]``.

  Args:
    num_frames, height, width: token grid ``(f, h, w)`` of ONE view (after patchify).
    with_reference: append the reference view's tokens after the target's.
    rope_mode: ``"distinct"`` (reference frames ``f..2f−1``, ReCamMaster) or ``"shared"``
      (reference frames ``0..f−1``, ReDirector).
    reference_offset: ``"distinct"`` only: the reference frames start at ``max(f, reference_offset)``
      (:func:`reference_start`); None: at ``f``.

  Returns:
    ``(S, 3)`` int64 array of ``(frame, row, column)``, tokens ordered view, then ``(f, h, w)``
    row-major; ``S = f·h·w`` or ``2·f·h·w``.

  Raises:
    ValueError: for an unknown ``rope_mode``.
  """
  if rope_mode not in ROPE_MODES:
    raise ValueError(f"token_positions: rope_mode must be one of {ROPE_MODES}, got {rope_mode!r}")
  grid = np.stack(np.meshgrid(np.arange(num_frames), np.arange(height), np.arange(width), indexing="ij"), -1)
  pos = grid.reshape(-1, 3)
  if not with_reference:
    return pos
  ref = pos.copy()
  ref[:, 0] += reference_start(num_frames, rope_mode, reference_offset)
  return np.concatenate([pos, ref], axis=0)


def rope_angles(positions: np.ndarray, head_dim: int, theta: float = ROPE_THETA) -> tuple[np.ndarray, np.ndarray]:
  """Cosines and sines of the rotation angles of every channel pair of every token.

  Args:
    positions: ``(S, 3)`` integer ``(frame, row, column)`` positions (``token_positions``).
    head_dim: per-head channel count ``d``.
    theta: RoPE base (10000 in Wan).

  Returns:
    ``(cos, sin)``, each ``(S, d/2)`` float32 NumPy, pair ``i`` of the ``[t | h | w]`` layout.
  """
  positions = np.asarray(positions)
  if positions.ndim != 2 or positions.shape[1] != 3:
    raise ValueError(f"rope_angles: positions must be (S, 3), got {positions.shape}")
  angles = []
  for axis, band in enumerate(rope_band_dims(head_dim)):
    inv_freq = 1.0 / (theta ** (np.arange(0, band, 2, dtype=np.float64) / band))  # (band/2,)
    angles.append(positions[:, axis:axis + 1].astype(np.float64) * inv_freq[None, :])
  ang = np.concatenate(angles, axis=-1)
  return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def _axis_table(length: int, band: int, theta: float) -> np.ndarray:
  inv_freq = 1.0 / (theta ** (np.arange(0, band, 2, dtype=np.float64) / band))
  return np.arange(length, dtype=np.float64)[:, None] * inv_freq[None, :]


def rope_tables(num_frames: int, height: int, width: int, head_dim: int, *, with_reference: bool = False,
                rope_mode: str = "distinct", reference_offset: int | None = None,
                theta: float = ROPE_THETA) -> tuple[jnp.ndarray, jnp.ndarray]:
  """``(cos, sin)`` tables ``(S, d/2)`` of the token sequence ``[target | reference]``, built in-graph.

  Same values as ``rope_angles(token_positions(...), head_dim)`` (tested), but only the small
  per-axis tables are constants; the broadcast to every token happens in the graph.

  Args:
    num_frames, height, width: token grid of ONE view.
    head_dim: per-head channels ``d``.
    with_reference, rope_mode, reference_offset: as in ``token_positions``.
    theta: RoPE base.

  Returns:
    ``(cos, sin)`` float32 JAX arrays of shape ``(S, d/2)``.
  """
  if rope_mode not in ROPE_MODES:
    raise ValueError(f"rope_tables: rope_mode must be one of {ROPE_MODES}, got {rope_mode!r}")
  t_dim, h_dim, w_dim = rope_band_dims(head_dim)
  offsets = [0] if not with_reference else [0, reference_start(num_frames, rope_mode, reference_offset)]
  ang_f = _axis_table(max(offsets) + num_frames, t_dim, theta)
  ang_h = _axis_table(height, h_dim, theta)
  ang_w = _axis_table(width, w_dim, theta)
  grid = (num_frames, height, width)
  out = []
  for fn in (np.cos, np.sin):
    tf, th, tw = (jnp.asarray(fn(a), jnp.float32) for a in (ang_f, ang_h, ang_w))
    views = []
    for off in offsets:
      parts = [jnp.broadcast_to(tf[off:off + num_frames, None, None, :], grid + (t_dim // 2,)),
               jnp.broadcast_to(th[None, :, None, :], grid + (h_dim // 2,)),
               jnp.broadcast_to(tw[None, None, :, :], grid + (w_dim // 2,))]
      views.append(jnp.concatenate(parts, axis=-1).reshape(-1, head_dim // 2))
    out.append(jnp.concatenate(views, axis=0))
  return out[0], out[1]


def apply_rope(x: jnp.ndarray, cos: jnp.ndarray, sin: jnp.ndarray) -> jnp.ndarray:
  """Rotates interleaved channel pairs ``(x[2i], x[2i+1])`` of queries or keys.

  Args:
    x: ``(B, S, N, d)`` per-head queries/keys (any float dtype).
    cos, sin: ``(S, d/2)`` from ``rope_angles``.

  Returns:
    ``(B, S, N, d)`` in ``x``'s dtype; the rotation is computed in float32.

  Raises:
    ValueError: when the sequence length or ``d/2`` of ``x`` and the tables disagree.
  """
  if x.ndim != 4 or cos.shape != (x.shape[1], x.shape[3] // 2) or sin.shape != cos.shape:
    raise ValueError(f"apply_rope: x must be (B, S, N, d) with tables (S, d/2); got x {x.shape}, "
                     f"cos {cos.shape}, sin {sin.shape}")
  c = jnp.asarray(cos, jnp.float32)[None, :, None, :]
  s = jnp.asarray(sin, jnp.float32)[None, :, None, :]
  return _rotate_pairs(x, c, s)


def _rotate_pairs(x: jnp.ndarray, c: jnp.ndarray, s: jnp.ndarray) -> jnp.ndarray:
  """``x`` ``(..., d)`` with pair ``i`` multiplied by ``c[..., i] + i·s[..., i]`` (float32 math)."""
  xf = x.astype(jnp.float32).reshape(x.shape[:-1] + (x.shape[-1] // 2, 2))
  x0, x1 = xf[..., 0], xf[..., 1]
  out = jnp.stack([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)
  return out.reshape(x.shape).astype(x.dtype)


# ----------------------------------------------------------------------------------------------
# Rotary Camera Encoding (RoCE; ReDirector, arXiv 2511.19827).


def roce_phase_pairs(head_dim: int) -> int:
  """Phases per head ``P`` of RoCE: one per row and column RoPE pair, ``2·⌊d/6⌋`` (42 for ``d = 128``).

  ReDirector sizes its phase layers ``(2·d // 3) // 2`` per head and left-pads the phases with
  ``d/2 − P`` zeros, so the frame band gets no phase and the row/column bands get one each. The
  two agree only when ``(2·d // 3) // 2 == 2·⌊d/6⌋`` (``d`` = 32, 48, 96, 128, …; not 64 or 80):
  another ``d`` would rotate part of the frame band and loaded weights would mean something else.

  Raises:
    ValueError: ``head_dim`` where the two differ (the message lists nearby supported values).
  """
  _, h_dim, w_dim = rope_band_dims(head_dim)
  pairs = (h_dim + w_dim) // 2
  if (2 * head_dim // 3) // 2 != pairs:
    ok = [d for d in range(8, 257, 2) if (2 * d // 3) // 2 == 2 * (d // 6)]
    raise ValueError(f"RoCE: head_dim={head_dim} is unsupported: ReDirector's phase width (2·d//3)//2 = "
                     f"{(2 * head_dim // 3) // 2} differs from the row+column RoPE pairs 2·⌊d/6⌋ = {pairs}; "
                     f"supported head_dim values include {[d for d in ok if d >= 24][:12]}")
  return pairs


def apply_phase(x: jnp.ndarray, phase: jnp.ndarray) -> jnp.ndarray:
  """Rotates the row/column RoPE pairs of ``x`` by per-token, per-head camera phases (RoCE).

  Args:
    x: ``(B, S, N, d)`` queries, keys, values or outputs, heads split.
    phase: ``(B, S, N, P)`` angles in radians, ``P = roce_phase_pairs(d)``; pair ``i`` of the
      ``[t | h | w]`` layout turns by ``phase[..., i − (d/2 − P)]`` (the frame pairs by 0).

  Returns:
    ``(B, S, N, d)`` in ``x``'s dtype: ``x·exp(i·φ)`` on interleaved pairs, float32 math. With
    ``apply_rope`` first this is ReDirector's ``rope_apply_cam`` (``RoPE·exp(iφ)``).

  Raises:
    ValueError: on shape mismatches.
  """
  d = x.shape[-1]
  pairs = roce_phase_pairs(d)
  if x.ndim != 4 or phase.shape != x.shape[:3] + (pairs,):
    raise ValueError(f"apply_phase: x must be (B, S, N, d) and phase (B, S, N, {pairs}); got x {x.shape}, "
                     f"phase {phase.shape}")
  phase = jnp.pad(phase.astype(jnp.float32), ((0, 0),) * 3 + ((d // 2 - pairs, 0),))
  return _rotate_pairs(x, jnp.cos(phase), jnp.sin(phase))
