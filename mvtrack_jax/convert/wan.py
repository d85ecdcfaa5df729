"""Import PyTorch Wan2.1 / ReCamMaster transformer weights into ``mvtrack_jax.models.wan.WanDiT`` params.

Supported state-dict namings (docs/design.md §4.1), given as ``{name: numpy array}``:

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
``weight`` → ``scale``. Unknown, missing or mis-shaped
keys raise one ``ValueError`` that lists them. ``.safetensors`` files (single, or sharded with a
``*.safetensors.index.json``) are read with the ``safetensors`` NumPy API, no torch; BF16 tensors
(which NumPy lacks) are decoded to float32 through ``ml_dtypes``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Mapping

import flax.linen as nn
from flax import traverse_util
import jax
import numpy as np

from mvtrack_jax.models.wan import WanConfig, WanDiT, example_inputs, stack_block_params, unstack_block_params

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


# ----------------------------------------------------------------------------------------------
# Configs.

_DIFFUSERS_FIELDS = {
    "patch_size": "patch_size", "num_attention_heads": "num_heads", "attention_head_dim": "head_dim",
    "in_channels": "in_channels", "out_channels": "out_channels", "text_dim": "text_dim", "freq_dim": "freq_dim",
    "ffn_dim": "ffn_dim", "num_layers": "num_layers", "cross_attn_norm": "cross_attn_norm", "eps": "eps",
}
# diffusers fields that do not change the T2V network (or are checked below).
_IGNORED_FIELDS = {"_class_name", "_diffusers_version", "_name_or_path", "window_size", "qk_norm",
                   "rope_max_seq_len", "add_img_emb", "added_kv_proj_dim", "pos_embed_seq_len"}


def _split_condition_channels(kwargs: dict[str, Any]) -> None:
  """A patch embedding wider than the output (Fun: 32 in, 16 out; I2V: 36 in) takes the latents plus
  ``in − out`` conditioning channels, which this model feeds with zeros (``WanConfig.condition_channels``)."""
  total, out = int(kwargs.get("in_channels", 16)), int(kwargs.get("out_channels", 16))
  if total > out and "condition_channels" not in kwargs:
    kwargs["in_channels"], kwargs["condition_channels"] = out, total - out


def config_from_diffusers(config: Mapping[str, Any], **overrides) -> WanConfig:
  """``WanConfig`` from diffusers ``WanTransformer3DModel`` constructor fields (+ ``WanConfig`` fields).

  Args:
    config: mapping with diffusers names (``num_attention_heads``, ``attention_head_dim``, ...); it
      may also hold ``WanConfig`` field names (``camera_mode``, ``dtype``, ...).
    **overrides: further ``WanConfig`` fields; ``camera_mode`` defaults to ``"none"``.

  A diffusers ``in_channels`` above ``out_channels`` becomes ``in_channels = out_channels`` plus
  ``condition_channels`` (fed with zeros); ``image_dim`` enables the image branch, whose
  ``added_kv_proj_dim`` must be the model width (as in every Wan I2V / Fun checkpoint).

  Raises:
    ValueError: for unknown fields, ``added_kv_proj_dim`` other than the width, ``pos_embed_seq_len``
      (Wan2.1-FLF2V's image position embedding) or ``qk_norm`` other than ``"rms_norm_across_heads"``.
  """
  fields = {f.name for f in dataclasses.fields(WanConfig)}
  kwargs: dict[str, Any] = {"camera_mode": "none"}
  unknown = []
  for key, value in config.items():
    if key in _DIFFUSERS_FIELDS:
      kwargs[_DIFFUSERS_FIELDS[key]] = tuple(value) if key == "patch_size" else value
    elif key in fields:
      kwargs[key] = value
    elif key not in _IGNORED_FIELDS and not key.startswith("_"):
      unknown.append(key)
  if unknown:
    raise ValueError(f"config_from_diffusers: unknown config fields {sorted(unknown)}")
  kwargs["image_dim"] = int(config.get("image_dim") or 0)
  dim = int(config.get("num_attention_heads", 12)) * int(config.get("attention_head_dim", 128))
  if config.get("added_kv_proj_dim") not in (None, dim) or bool(config.get("added_kv_proj_dim")) != bool(
      kwargs["image_dim"]):
    raise ValueError(f"config_from_diffusers: added_kv_proj_dim={config.get('added_kv_proj_dim')!r} with "
                     f"image_dim={config.get('image_dim')!r}; expected both None or added_kv_proj_dim = the width "
                     f"{dim}")
  if config.get("pos_embed_seq_len") is not None:
    raise ValueError(f"config_from_diffusers: pos_embed_seq_len={config['pos_embed_seq_len']!r} (Wan2.1-FLF2V's "
                     "image position embedding) is not supported; expected None")
  _split_condition_channels(kwargs)
  if config.get("qk_norm", "rms_norm_across_heads") != "rms_norm_across_heads":
    raise ValueError(f"config_from_diffusers: qk_norm={config['qk_norm']!r}, expected 'rms_norm_across_heads'")
  kwargs.update(overrides)
  return WanConfig(**kwargs)


def infer_config(state_dict: Mapping[str, np.ndarray], *, head_dim: int = 128, **overrides) -> WanConfig:
  """Infers a ``WanConfig`` from the tensor shapes of a diffusers or original state dict.

  The head count is not recorded in the weights: ``num_heads = dim / head_dim`` (Wan2.1 uses 128).
  ``camera_mode`` is ``"recammaster"`` when ``cam_encoder`` weights are present, ``"plucker"`` for
  ``camera_proj`` weights, ``"redirector"`` (with ReDirector's shared RoPE frames) for
  ``control_adapter`` weights (``roce`` when ``rope_phase_*`` weights are present too), else
  ``"none"``. ``image_embedder`` weights set ``image_dim``; a patch embedding wider than the output
  sets ``condition_channels``.
  """
  sd = to_diffusers_names(state_dict)
  conv = np.shape(sd["patch_embedding.weight"])
  dim, in_channels, patch = conv[0], conv[1], tuple(conv[2:])
  layers = {int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))}
  camera_mode, extra = "none", {}
  if any(".cam_encoder." in k for k in sd):
    camera_mode = "recammaster"
  elif any(".camera_proj." in k for k in sd):
    camera_mode = "plucker"
  elif any(k.startswith("control_adapter.") for k in sd):
    camera_mode = "redirector"
    extra = dict(rope_mode="shared", roce=any(".rope_phase_" in k for k in sd))
  image = sd.get("condition_embedder.image_embedder.norm1.weight")
  kwargs = dict(
      patch_size=patch, num_heads=dim // head_dim, head_dim=head_dim, in_channels=in_channels,
      out_channels=np.shape(sd["proj_out.weight"])[0] // int(np.prod(patch)),
      text_dim=np.shape(sd["condition_embedder.text_embedder.linear_1.weight"])[1],
      freq_dim=np.shape(sd["condition_embedder.time_embedder.linear_1.weight"])[1],
      ffn_dim=np.shape(sd["blocks.0.ffn.net.0.proj.weight"])[0], num_layers=len(layers),
      cross_attn_norm="blocks.0.norm2.weight" in sd, camera_mode=camera_mode,
      image_dim=0 if image is None else int(np.shape(image)[0]), **extra)
  _split_condition_channels(kwargs)
  kwargs.update(overrides)
  return WanConfig(**kwargs)


# ----------------------------------------------------------------------------------------------
# State dicts.


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


def _torch_name(path: tuple[str, ...]) -> str:
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


def _to_flax(value: np.ndarray, leaf: str, target_ndim: int) -> np.ndarray:
  if leaf == "kernel" and target_ndim == 2:
    return value.T
  if leaf == "kernel" and target_ndim == 5:
    return np.transpose(value, (2, 3, 4, 1, 0))
  if leaf == "kernel" and target_ndim == 4:
    return np.transpose(value, (2, 3, 1, 0))
  return value


def _to_torch(value: np.ndarray, leaf: str) -> np.ndarray:
  if leaf == "kernel" and value.ndim == 2:
    return value.T
  if leaf == "kernel" and value.ndim == 5:
    return np.transpose(value, (4, 3, 0, 1, 2))
  if leaf == "kernel" and value.ndim == 4:
    return np.transpose(value, (3, 2, 0, 1))
  return value


def _expected_params(config: WanConfig):
  cfg = dataclasses.replace(config, scan_layers=False, remat_policy="none")
  inputs = example_inputs(cfg, latent_shape=tuple(cfg.patch_size), context_length=1,
                          with_reference=cfg.camera_mode != "none")
  shapes = jax.eval_shape(lambda: WanDiT(cfg).init(jax.random.key(0), **inputs))
  return nn.meta.unbox(shapes["params"])


def _fresh_camera_params(config: WanConfig, names: set[str], seed: int) -> dict[str, np.ndarray]:
  cfg = dataclasses.replace(config, scan_layers=False, remat_policy="none")
  inputs = example_inputs(cfg, latent_shape=tuple(cfg.patch_size), context_length=1)
  def init(key):  # XLA removes every parameter initialiser whose output is not selected.
    flat = traverse_util.flatten_dict(nn.meta.unbox(WanDiT(cfg).init(key, **inputs)["params"]))
    return {p: v for p, v in flat.items() if _torch_name(p) in names}
  return {_torch_name(p): _to_torch(np.asarray(v), p[-1]) for p, v in jax.jit(init)(jax.random.key(seed)).items()}


def _is_camera_name(name: str) -> bool:
  return bool(re.search(r"(^camera_encoder\.|\.cam_encoder\.|\.projector\.|\.camera_proj\.|^control_adapter\.|"
                        r"\.rope_phase_(qk|vo)\.)", name))


def convert_state_dict(state_dict: Mapping[str, Any], config: WanConfig, *, init_missing_camera: bool = False,
                       seed: int = 0) -> dict[str, Any]:
  """Diffusers- or original-named PyTorch weights → ``WanDiT`` params (plain NumPy pytree).

  Args:
    state_dict: ``{name: array}`` (NumPy, or anything ``np.asarray`` accepts).
    config: the target ``WanConfig``; with ``scan_layers`` the blocks are stacked (``blocks/block``).
    init_missing_camera: when the checkpoint lacks the camera modules of ``config.camera_mode``
      (e.g. plain Wan weights into a ``plucker`` model), initialise them freshly (zero-init
      projections: the network starts as the pretrained Wan) instead of raising.
    seed: PRNG seed of that fresh initialisation.

  Returns:
    Params tree in ``config.param_dtype``.

  Raises:
    ValueError: listing unknown, missing and mis-shaped keys.
  """
  sd = to_diffusers_names(state_dict)
  flat, unknown, missing, misshaped = _match(sd, config)
  if init_missing_camera and missing and all(_is_camera_name(n) for n in missing):
    flat.update(_match(_fresh_camera_params(config, set(missing), seed), config)[0])
    missing = []
  if unknown or missing or misshaped:
    raise ValueError(f"convert_state_dict: state dict does not match {config}:\n"
                     f"  unknown keys ({len(unknown)}): {unknown}\n  missing keys ({len(missing)}): {missing}\n"
                     f"  mis-shaped keys ({len(misshaped)}): {misshaped}")
  return _params_tree({p: v.astype(config.param_dtype) for p, v in flat.items()}, config)


def _match(sd: Mapping[str, Any], config: WanConfig) -> tuple[dict[tuple[str, ...], np.ndarray], list[str], list[str],
                                                             list[str]]:
  """Matches diffusers-named tensors to ``config``'s params: ``(flat params of the well-shaped names
  present, unknown names, missing names, mis-shape messages)``; values in Flax layout, dtype kept."""
  expected = traverse_util.flatten_dict(_expected_params(config))
  by_name = {_torch_name(path): (path, shape) for path, shape in expected.items()}
  flat, misshaped = {}, []
  for name, (path, shape) in by_name.items():
    if name in sd:
      value = _to_flax(np.asarray(sd[name]), path[-1], len(shape.shape))
      if value.shape != shape.shape:
        misshaped.append(f"{name}: got {tuple(np.shape(sd[name]))} -> {value.shape}, expected {shape.shape}")
      else:
        flat[path] = value
  return flat, sorted(set(sd) - set(by_name)), sorted(set(by_name) - set(sd)), misshaped


def _params_tree(flat: Mapping[tuple[str, ...], np.ndarray], config: WanConfig) -> dict[str, Any]:
  """Flat params → the nested tree of ``config`` (blocks stacked when it scans its layers)."""
  tree = traverse_util.unflatten_dict(dict(flat))
  return stack_block_params(tree, config.num_layers) if config.scan_layers else tree


def load_diffusers_transformer(state_dict: Mapping[str, np.ndarray], config: Mapping[str, Any],
                               **overrides) -> tuple[nn.Module, dict[str, Any]]:
  """Issue-3 entry point: a diffusers ``WanTransformer3DModel`` state dict → ``(WanDiT, params)``.

  Args:
    state_dict: ``{name: np.ndarray}`` with diffusers (or original Wan2.1/DiffSynth) names.
    config: diffusers constructor fields (``patch_size, num_attention_heads, attention_head_dim,
      in_channels, out_channels, text_dim, freq_dim, ffn_dim, num_layers, cross_attn_norm, eps``),
      optionally with ``WanConfig`` fields.
    **overrides: ``WanConfig`` fields (``dtype``, ``attention_backend``, ``scan_layers``, ...).
      ``camera_mode`` defaults to what the weights contain (``cam_encoder`` → ``recammaster``,
      ``camera_proj`` → ``plucker``, else ``none``).

  Returns:
    ``(module, params)``; ``module.apply({'params': params}, latents (B,F,H,W,C) float32,
    timestep (B,) in [0, 1000], context (B,L,text_dim))`` is the velocity ``(B,F,H,W,C)``.

  Raises:
    ValueError: listing unknown, missing or mis-shaped keys, or bad config fields.
  """
  if "camera_mode" not in overrides and "camera_mode" not in config:
    names = to_diffusers_names({k: None for k in state_dict})
    if any(".cam_encoder." in k for k in names):
      overrides["camera_mode"] = "recammaster"
    elif any(".camera_proj." in k for k in names):
      overrides["camera_mode"] = "plucker"
  cfg = config_from_diffusers(config, **overrides)
  return WanDiT(cfg), convert_state_dict(state_dict, cfg)


def load_original_transformer(state_dict: Mapping[str, np.ndarray], config: WanConfig | None = None, *,
                              init_missing_camera: bool = False, **overrides) -> tuple[nn.Module, dict[str, Any]]:
  """Original Wan2.1 / DiffSynth / ReCamMaster state dict → ``(WanDiT, params)``.

  Args:
    state_dict: ``{name: array}``, names like ``blocks.N.self_attn.q.weight`` (optional
      ``model.diffusion_model.`` prefix); ReCamMaster's ``blocks.N.cam_encoder``/``projector`` select
      ``camera_mode="recammaster"``.
    config: target config; default ``infer_config(state_dict, **overrides)``.
    init_missing_camera: see ``convert_state_dict``.

  Raises:
    ValueError: listing unknown, missing or mis-shaped keys.
  """
  cfg = config if config is not None else infer_config(state_dict, **overrides)
  if config is not None and overrides:
    cfg = dataclasses.replace(cfg, **overrides)
  return WanDiT(cfg), convert_state_dict(state_dict, cfg, init_missing_camera=init_missing_camera)


# ----------------------------------------------------------------------------------------------
# Files.


def to_diffusers(params: Mapping[str, Any], config: WanConfig) -> tuple[dict[str, Any], dict[str, np.ndarray],
                                                                        dict[str, np.ndarray]]:
  """``WanDiT`` params → diffusers ``WanTransformer3DModel`` (the inverse of :func:`convert_state_dict`).

  Args:
    params: the DiT params (scanned or not, boxed or not, any float dtype).
    config: their ``WanConfig``.

  Returns:
    ``(diffusers_config, wan_state_dict, camera_state_dict)``: the constructor fields for
    ``config.json``; float32 tensors in PyTorch layout under diffusers names; and the camera
    modules, which ``WanTransformer3DModel`` does not have, under this importer's names
    (``camera_encoder.*`` and ``blocks.N.camera_proj.*`` for ``plucker``, ReCamMaster's
    ``blocks.N.cam_encoder.*`` / ``blocks.N.projector.*``), empty for ``camera_mode="none"``.
  """
  tree = unstack_block_params(params) if config.scan_layers else nn.meta.unbox(params)
  wan_sd, camera_sd = {}, {}
  for path, value in traverse_util.flatten_dict(tree).items():
    name = _torch_name(path)
    array = _to_torch(np.asarray(value, np.float32), path[-1])
    (camera_sd if _is_camera_name(name) else wan_sd)[name] = np.ascontiguousarray(array)
  return diffusers_config(config), wan_sd, camera_sd


def diffusers_config(config: WanConfig) -> dict[str, Any]:
  """The ``config.json`` of diffusers' ``WanTransformer3DModel`` with ``config``'s architecture."""
  fields = {ours: diff for diff, ours in _DIFFUSERS_FIELDS.items()}
  out = {"_class_name": "WanTransformer3DModel", "qk_norm": "rms_norm_across_heads",
         "image_dim": config.image_dim or None, "added_kv_proj_dim": config.dim if config.image_dim else None,
         "rope_max_seq_len": 1024}
  for ours, diff in fields.items():
    value = getattr(config, ours)
    out[diff] = list(value) if isinstance(value, tuple) else value
  out["in_channels"] = config.in_channels + config.condition_channels
  return out


def _read_safetensors_file(path: str) -> dict[str, np.ndarray]:
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  out: dict[str, np.ndarray] = {}
  with open(path, "rb") as fh:
    header_len = int.from_bytes(fh.read(8), "little")
    header = json.loads(fh.read(header_len))
  bf16 = {k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "BF16"}
  with safe_open(path, framework="np") as f:
    for key in f.keys():
      if key not in bf16:
        out[key] = f.get_tensor(key)
  if bf16:  # NumPy has no bfloat16: decode the raw bytes with ml_dtypes.
    import ml_dtypes  # pylint: disable=g-import-not-at-top
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
    for key in bf16:
      start, end = header[key]["data_offsets"]
      arr = np.frombuffer(raw[start:end].tobytes(), dtype=ml_dtypes.bfloat16).reshape(header[key]["shape"])
      out[key] = arr.astype(np.float32)
  return out


# Written by ``python -m mvtrack_jax.export --format=diffusers`` beside the transformer's weights: the camera
# modules diffusers' WanTransformer3DModel has no place for (and the tracking head, null context).
MODULES_FILE = "mvtrack_modules.safetensors"


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads ``{name: np.ndarray}`` from a ``.safetensors`` file, a sharded ``*.safetensors.index.json``
  (its ``weight_map`` names the shard files beside it), or a directory holding one of these (besides
  an export's ``MODULES_FILE``, which is not the transformer's).

  BF16 tensors come back as float32. No torch needed.

  Raises:
    FileNotFoundError: when the path (or a shard it names) does not exist.
    ValueError: for a directory with no / several candidate files.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    index = sorted(f for f in os.listdir(path) if f.endswith(".safetensors.index.json"))
    files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors") and f != MODULES_FILE)
    if len(index) == 1:
      path = os.path.join(path, index[0])
    elif len(files) == 1:
      path = os.path.join(path, files[0])
    else:
      raise ValueError(f"load_safetensors: {path} must hold one *.safetensors.index.json or one *.safetensors "
                       f"file; found index files {index} and files {files}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"load_safetensors: no such file {path}")
  if path.endswith(".json"):
    with open(path) as fh:
      weight_map = json.load(fh)["weight_map"]
    out: dict[str, np.ndarray] = {}
    for shard in sorted(set(weight_map.values())):
      shard_path = os.path.join(os.path.dirname(path), shard)
      if not os.path.exists(shard_path):
        raise FileNotFoundError(f"load_safetensors: shard {shard_path} named in {path} does not exist")
      out.update(_read_safetensors_file(shard_path))
    missing = sorted(set(weight_map) - set(out))
    if missing:
      raise ValueError(f"load_safetensors: tensors {missing} listed in {path} are not in their shards")
    return out
  return _read_safetensors_file(path)


def read_torch_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """``{name: float32 array}`` from a torch pickle (``.ckpt``/``.pth``/``.pt``/``.bin``), loaded with
  ``weights_only=True`` (no code runs) and memory-mapped; a ``state_dict`` / ``module`` wrapper is
  unwrapped and bf16/fp16 tensors become float32.

  Raises:
    ImportError: torch is not installed; the message says how to convert the file without it.
    ValueError: the file holds no tensors.
  """
  path = os.fspath(path)
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f"{path}: reading a torch pickle needs torch (pip install torch==2.13.0 --index-url "
        "https://download.pytorch.org/whl/cpu), or convert it once elsewhere with "
        "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')") from e
  obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
  for key in ("state_dict", "module"):
    if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
      obj = obj[key]
  tensors = {k: v.float().numpy() for k, v in obj.items() if hasattr(v, "float")} if isinstance(obj, Mapping) else {}
  if not tensors:
    raise ValueError(f"{path}: no tensors found (a {type(obj).__name__}); expected a state dict")
  return tensors


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
  """Reads PyTorch weights and, for a diffusers folder, its ``config.json`` (transformer or VAE).

  ``path``: a diffusers model folder (``config.json`` + one or sharded safetensors; the camera modules
  of a folder written by ``export --format=diffusers`` are read from its ``MODULES_FILE``), a
  ``.safetensors`` file or ``*.safetensors.index.json``, or a torch pickle (original Wan /
  DiffSynth / ReCamMaster checkpoints, ``Wan2.1_VAE.pth``). Returns ``(state_dict, diffusers_config
  or None)``.

  Raises:
    FileNotFoundError, ImportError, ValueError: as the readers.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"weights: no such file or folder {path}")
  if os.path.isdir(path):
    config = None
    if os.path.exists(os.path.join(path, "config.json")):
      with open(os.path.join(path, "config.json")) as fh:
        config = json.load(fh)
    state_dict = load_safetensors(path)
    modules = os.path.join(path, MODULES_FILE)
    if os.path.exists(modules):  # the tracking head and null context are not the transformer's
      state_dict.update({k: v for k, v in load_safetensors(modules).items() if _is_camera_name(k)})
    return state_dict, config
  if path.endswith((".safetensors", ".json")):
    return load_safetensors(path), None
  return read_torch_pickle(path), None


ARCHITECTURE_FIELDS = ("patch_size", "num_heads", "head_dim", "in_channels", "out_channels", "text_dim", "freq_dim",
                       "ffn_dim", "num_layers", "cross_attn_norm", "image_dim", "condition_channels")


def pretrained_params(path: str | os.PathLike, config: WanConfig, *, overlay: str | os.PathLike = ""
                      ) -> tuple[dict[str, Any], dict[str, list[str]]]:
  """The parameters of a pretrained checkpoint for a model of ``config``, to start training from.

  The checkpoint's architecture (its ``config.json``, or inferred from the tensor shapes with
  ``config.head_dim``) must equal ``config``'s in every field of :data:`ARCHITECTURE_FIELDS`; the
  other fields (dtype, attention backend, remat, scan, camera mode) are the run's to choose.
  Tensors of modules the checkpoint lacks — camera modules of another camera mode, RoCE phases — are
  left out (the caller keeps its fresh initialisation of them); the checkpoint's camera modules that
  ``config`` does not have are ignored. Both are reported.

  Args:
    path: the base checkpoint (see :func:`read_checkpoint`).
    config: the model's ``WanConfig``.
    overlay: optional partial state dict read the same way and applied over the base, e.g.
      ReDirector's released ``step20000.safetensors`` (its trained self-attention and RoCE tensors)
      over Wan2.1-Fun-V1.1-1.3B-Control-Camera, as ReDirector's inference loads them. Every overlay
      tensor must be a parameter of ``config`` with the right shape.

  Returns:
    ``(params, report)``: a (partial) params tree in ``config``'s layout (scanned blocks stacked)
    as float32 NumPy arrays, and ``{"loaded", "fresh", "ignored"}`` lists of diffusers names
    (plus ``"overlaid"`` with an overlay).

  Raises:
    ValueError: architecture fields that differ (naming checkpoint and config values), missing or
      unexpected non-camera tensors, mis-shaped tensors, overlay tensors that are not parameters of
      ``config`` (listed).
  """
  state_dict, diffusers_config = read_checkpoint(path)
  sd = to_diffusers_names(state_dict)
  found = (config_from_diffusers(diffusers_config) if diffusers_config is not None
           else infer_config(sd, head_dim=config.head_dim))
  conflicts = [f"{f}: checkpoint {getattr(found, f)!r}, config {getattr(config, f)!r}" for f in ARCHITECTURE_FIELDS
               if tuple(np.atleast_1d(getattr(found, f))) != tuple(np.atleast_1d(getattr(config, f)))]
  if conflicts:
    raise ValueError(f"{os.fspath(path)}: the checkpoint's architecture differs from config.model "
                     f"(only dtype, attention backend, remat, scan and camera mode may differ): {conflicts}")
  flat, unknown, missing, misshaped = _match(sd, config)
  bad = [n for n in unknown + missing if not _is_camera_name(n)]
  if bad or misshaped:
    raise ValueError(f"{os.fspath(path)}: weights do not fit the model: missing or unknown non-camera tensors "
                     f"{bad[:20]} ({len(bad)}), mis-shaped {misshaped[:20]} ({len(misshaped)})")
  report = {"loaded": sorted(n for n in sd if n not in unknown), "fresh": missing, "ignored": unknown}
  if overlay:
    over = to_diffusers_names(read_checkpoint(overlay)[0])
    over_flat, over_unknown, _, over_misshaped = _match(over, config)
    if over_unknown or over_misshaped:
      raise ValueError(f"{os.fspath(overlay)}: overlay tensors that are not parameters of config.model: "
                       f"unknown {over_unknown[:20]} ({len(over_unknown)}), mis-shaped {over_misshaped[:20]} "
                       f"({len(over_misshaped)})")
    flat.update(over_flat)
    report["overlaid"] = sorted(over)
    report["fresh"] = [n for n in missing if n not in over]
  tree = _params_tree({p: v.astype(np.float32) for p, v in flat.items()}, config)
  return jax.tree.map(np.asarray, tree), report
