"""Import PyTorch Wan2.1 / ReCamMaster transformer weights into ``mvtrack_jax.models.wan.WanDiT`` params, and
export them back: diffusers configs ↔ ``WanConfig``, state dicts ↔ parameter trees.

The names and tensor layouts are ``convert.wan_names``'s table, the files ``convert.checkpoint_io``'s readers, and
what a training run starts from (which tensors load, which stay fresh) ``convert.pretrained``'s policy. Unknown,
missing or mis-shaped keys raise one ``ValueError`` that lists them.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

import flax.linen as nn
from flax import traverse_util
import jax
import numpy as np

from mvtrack_jax.convert.wan_names import is_camera_name, to_diffusers_names, to_flax, to_torch, torch_name
from mvtrack_jax.models.wan import WanConfig, WanDiT
from mvtrack_jax.models.wan_params import example_inputs, stack_block_params, unstack_block_params

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
    return {p: v for p, v in flat.items() if torch_name(p) in names}
  return {torch_name(p): to_torch(np.asarray(v), p[-1]) for p, v in jax.jit(init)(jax.random.key(seed)).items()}


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
  flat, unknown, missing, misshaped = match_state_dict(sd, config)
  if init_missing_camera and missing and all(is_camera_name(n) for n in missing):
    flat.update(match_state_dict(_fresh_camera_params(config, set(missing), seed), config)[0])
    missing = []
  if unknown or missing or misshaped:
    raise ValueError(f"convert_state_dict: state dict does not match {config}:\n"
                     f"  unknown keys ({len(unknown)}): {unknown}\n  missing keys ({len(missing)}): {missing}\n"
                     f"  mis-shaped keys ({len(misshaped)}): {misshaped}")
  return params_tree({p: v.astype(config.param_dtype) for p, v in flat.items()}, config)


def match_state_dict(sd: Mapping[str, Any], config: WanConfig
                     ) -> tuple[dict[tuple[str, ...], np.ndarray], list[str], list[str], list[str]]:
  """Matches diffusers-named tensors to ``config``'s params: ``(flat params of the well-shaped names
  present, unknown names, missing names, mis-shape messages)``; values in Flax layout, dtype kept."""
  expected = traverse_util.flatten_dict(_expected_params(config))
  by_name = {torch_name(path): (path, shape) for path, shape in expected.items()}
  flat, misshaped = {}, []
  for name, (path, shape) in by_name.items():
    if name in sd:
      value = to_flax(np.asarray(sd[name]), path[-1], len(shape.shape))
      if value.shape != shape.shape:
        misshaped.append(f"{name}: got {tuple(np.shape(sd[name]))} -> {value.shape}, expected {shape.shape}")
      else:
        flat[path] = value
  return flat, sorted(set(sd) - set(by_name)), sorted(set(by_name) - set(sd)), misshaped


def params_tree(flat: Mapping[tuple[str, ...], np.ndarray], config: WanConfig) -> dict[str, Any]:
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
    name = torch_name(path)
    array = to_torch(np.asarray(value, np.float32), path[-1])
    (camera_sd if is_camera_name(name) else wan_sd)[name] = np.ascontiguousarray(array)
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
