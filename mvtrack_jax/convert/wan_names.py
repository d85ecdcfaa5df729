"""PyTorch Wan2.1 weight names ↔ ``models.wan.WanDiT`` parameter paths, in one place.

Three namings meet here (docs/design.md §4.1):

- **diffusers** ``WanTransformer3DModel``: ``patch_embedding``, ``condition_embedder.{time_embedder.
  linear_1/2, time_proj, text_embedder.linear_1/2}``, ``blocks.N.attn1.{to_q,to_k,to_v,to_out.0,
  norm_q,norm_k}``, ``blocks.N.attn2.*``, ``blocks.N.norm2`` (affine LN before cross-attention),
  ``blocks.N.ffn.net.0.proj``, ``blocks.N.ffn.net.2``, ``blocks.N.scale_shift_table``,
  ``scale_shift_table``, ``proj_out``.
- **original Wan2.1 / DiffSynth** (also ReCamMaster checkpoints, optional ``model.diffusion_model.``
  prefix): ``blocks.N.self_attn.{q,k,v,o,norm_q,norm_k}``, ``cross_attn.*``, ``norm3`` (the affine LN:
  swapped with diffusers ``norm2``), ``ffn.0``, ``ffn.2``, ``modulation``, ``head.head``,
  ``head.modulation``, ``text_embedding.0/.2``, ``time_embedding.0/.2``, ``time_projection.1``.
- **camera modules**: ReCamMaster ``blocks.N.cam_encoder`` (Linear 12→dim) and ``blocks.N.projector``
  (Linear dim→dim); this project's Plücker modules as ``blocks.N.camera_proj`` and
  ``camera_encoder.{patch,fc1,fc2}``; Wan2.1-Fun / ReDirector ``control_adapter.{conv,
  residual_blocks.0.conv1, residual_blocks.0.conv2}`` and RoCE ``blocks.N.self_attn.rope_phase_{qk,vo}.1``
  (ReDirector's names; diffusers-side ``blocks.N.attn1.rope_phase_{qk,vo}``).
- **image context** (Wan I2V / Fun): diffusers ``condition_embedder.image_embedder.{norm1,
  ff.net.0.proj, ff.net.2, norm2}`` and ``blocks.N.attn2.{add_k_proj, add_v_proj, norm_added_k}``;
  original ``img_emb.proj.{0,1,3,4}`` and ``blocks.N.cross_attn.{k_img, v_img, norm_k_img}``.

Layouts: torch Linear ``(out, in)`` → Flax kernel ``(in, out)``; Conv3d ``(out, in, kt, kh, kw)`` →
``(kt, kh, kw, in, out)``; Conv2d ``(out, in, kh, kw)`` → ``(kh, kw, in, out)``; RMSNorm/LayerNorm
``weight`` → ``scale``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

ORIGINAL_PREFIX = "model.diffusion_model."

# Flax module name → diffusers module name (top level and inside a block).
_TOP = {
    "patch_embedding": "patch_embedding",
    "time_embedding_0": "condition_embedder.time_embedder.linear_1",
    "time_embedding_2": "condition_embedder.time_embedder.linear_2",
    "time_projection": "condition_embedder.time_proj",
    "text_embedding_0": "condition_embedder.text_embedder.linear_1",
    "text_embedding_2": "condition_embedder.text_embedder.linear_2",
    "proj_out": "proj_out",
    "scale_shift_table": "scale_shift_table",
    "camera_encoder": "camera_encoder",
    "control_adapter": "control_adapter",
    "image_embedder_norm1": "condition_embedder.image_embedder.norm1",
    "image_embedder_ff_0": "condition_embedder.image_embedder.ff.net.0.proj",
    "image_embedder_ff_2": "condition_embedder.image_embedder.ff.net.2",
    "image_embedder_norm2": "condition_embedder.image_embedder.norm2",
}
_BLOCK = {"to_out": "to_out.0", "ffn_in": "ffn.net.0.proj", "ffn_out": "ffn.net.2"}
_SUB = {"residual_blocks_0": "residual_blocks.0"}
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "scale_shift_table": "scale_shift_table"}

# One bidirectional name table: original Wan2.1 / DiffSynth / ReCamMaster names <-> diffusers names, as
# (original, diffusers) pairs of name prefixes (a pair without a trailing "." matches a whole name). Renaming in
# either direction replaces the first matching prefix at the top level, inside a block ("blocks.N."), and inside a
# block's attention module; names no pair matches (the camera modules, patch_embedding, q/k RMSNorms) are kept.
_TOP_NAMES = (
    ("text_embedding.0.", "condition_embedder.text_embedder.linear_1."),
    ("text_embedding.2.", "condition_embedder.text_embedder.linear_2."),
    ("time_embedding.0.", "condition_embedder.time_embedder.linear_1."),
    ("time_embedding.2.", "condition_embedder.time_embedder.linear_2."),
    ("time_projection.1.", "condition_embedder.time_proj."),
    ("head.head.", "proj_out."),
    ("head.modulation", "scale_shift_table"),
    ("img_emb.proj.0.", "condition_embedder.image_embedder.norm1."),
    ("img_emb.proj.1.", "condition_embedder.image_embedder.ff.net.0.proj."),
    ("img_emb.proj.3.", "condition_embedder.image_embedder.ff.net.2."),
    ("img_emb.proj.4.", "condition_embedder.image_embedder.norm2."),
)
_ATTENTION_MODULES = (("self_attn.", "attn1."), ("cross_attn.", "attn2."))
_BLOCK_NAMES = (
    ("norm3.", "norm2."),  # the cross-attention norm (the FFN's pre-norm has no weights in either)
    ("ffn.0.", "ffn.net.0.proj."),
    ("ffn.2.", "ffn.net.2."),
    ("modulation", "scale_shift_table"),
)
_ATTENTION_NAMES = (
    ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("o.", "to_out.0."),
    ("k_img.", "add_k_proj."), ("v_img.", "add_v_proj."), ("norm_k_img.", "norm_added_k."),  # image branch
    ("rope_phase_qk.1.", "rope_phase_qk."), ("rope_phase_vo.1.", "rope_phase_vo."),  # ReDirector's RoCE
)
_BLOCK_PREFIX = re.compile(r"^(blocks\.\d+\.)(.*)$")


def _swap(name: str, pairs, src: int) -> tuple[str, tuple[str, str] | None]:
  """``name`` with the first matching prefix of ``pairs`` (side ``src``: 0 original, 1 diffusers) replaced by the
  other side, and the pair used (None: no pair matched, ``name`` unchanged)."""
  for pair in pairs:
    key = pair[src]
    if name.startswith(key) if key.endswith(".") else name == key:
      return pair[1 - src] + name[len(key):], pair
  return name, None


def _rename(name: str, src: int) -> str:
  """One parameter name from side ``src`` (0 original, 1 diffusers) to the other (table above)."""
  block = _BLOCK_PREFIX.match(name)
  if not block:
    return _swap(name, _TOP_NAMES, src)[0]
  head, rest = block.groups()
  _, module = _swap(rest, _ATTENTION_MODULES, src)
  if module is None:
    return head + _swap(rest, _BLOCK_NAMES, src)[0]
  return head + module[1 - src] + _swap(rest[len(module[src]):], _ATTENTION_NAMES, src)[0]


def to_diffusers_names(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """Renames an original Wan2.1 / DiffSynth / ReCamMaster state dict to diffusers names.

  Strips the optional ``model.diffusion_model.`` prefix; diffusers names pass through unchanged.
  """
  out = {}
  for name, value in state_dict.items():
    new = _rename(name[len(ORIGINAL_PREFIX):] if name.startswith(ORIGINAL_PREFIX) else name, 0)
    if new in out:
      raise ValueError(f"to_diffusers_names: two keys map to {new!r} (mixed namings?)")
    out[new] = value
  return out


def to_original_names(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """Renames a diffusers-named state dict to original Wan2.1 / DiffSynth / ReCamMaster names (the
  names ReCamMaster's training scripts load; camera modules keep their names, no prefix)."""
  return {_rename(name, 1): value for name, value in state_dict.items()}


def torch_name(path: tuple[str, ...]) -> str:
  parts = []
  if path[0].startswith("blocks_"):
    parts.append("blocks." + path[0].split("_", 1)[1])
    parts.extend(_BLOCK.get(p, p) for p in path[1:-1])
  else:
    parts.append(_TOP.get(path[0], path[0]) if len(path) > 1 else path[0])
    parts.extend(_SUB.get(p, p) for p in path[1:-1])
  if len(path) > 1:
    parts.append(_LEAF.get(path[-1], path[-1]))
  return ".".join(parts)


def to_flax(value: np.ndarray, leaf: str, target_ndim: int) -> np.ndarray:
  if leaf == "kernel" and target_ndim == 2:
    return value.T
  if leaf == "kernel" and target_ndim == 5:
    return np.transpose(value, (2, 3, 4, 1, 0))
  if leaf == "kernel" and target_ndim == 4:
    return np.transpose(value, (2, 3, 1, 0))
  return value


def to_torch(value: np.ndarray, leaf: str) -> np.ndarray:
  if leaf == "kernel" and value.ndim == 2:
    return value.T
  if leaf == "kernel" and value.ndim == 5:
    return np.transpose(value, (4, 3, 0, 1, 2))
  if leaf == "kernel" and value.ndim == 4:
    return np.transpose(value, (3, 2, 0, 1))
  return value


def is_camera_name(name: str) -> bool:
  return bool(re.search(r"(^camera_encoder\.|\.cam_encoder\.|\.projector\.|\.camera_proj\.|^control_adapter\.|"
                        r"\.rope_phase_(qk|vo)\.)", name))
