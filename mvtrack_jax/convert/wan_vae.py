"""Import PyTorch Wan2.1 VAE weights into ``mvtrack_jax.models.wan_vae.WanVAE`` params.

Two namings are accepted, as ``{name: numpy array}``:

- **diffusers** ``AutoencoderKLWan`` (a ``vae/`` folder: ``config.json`` + ``*.safetensors``):
  ``encoder.conv_in``, ``encoder.down_blocks.N.{norm1,conv1,norm2,conv2,conv_shortcut}``,
  ``encoder.down_blocks.N.{resample.1,time_conv}``, ``encoder.mid_block.{resnets.N,attentions.0.
  {norm,to_qkv,proj}}``, ``encoder.{norm_out,conv_out}``, ``quant_conv``, ``post_quant_conv``,
  ``decoder.conv_in``, ``decoder.mid_block.*``, ``decoder.up_blocks.N.resnets.M.*``,
  ``decoder.up_blocks.N.upsamplers.0.{resample.1,time_conv}``, ``decoder.{norm_out,conv_out}``;
- **original Wan2.1** (``Wan2.1_VAE.pth``): ``encoder.conv1``, ``encoder.downsamples.N.residual.
  {0,2,3,6}`` / ``.shortcut`` / ``.resample.1`` / ``.time_conv``, ``encoder.middle.{0,1,2}``,
  ``encoder.head.{0,2}``, ``conv1``/``conv2`` (quant convs), ``decoder.upsamples.N`` as one flat list
  (``num_res_blocks + 1`` residual blocks then a resample, per stage), mapped to the diffusers names
  by the same rules as diffusers' ``convert_wan_vae_to_diffusers``, derived from the config instead
  of hard-coded indices.

Layouts: Conv3d ``(out, in, kt, kh, kw)`` → ``(kt, kh, kw, in, out)``; Conv2d ``(out, in, kh, kw)``
→ ``(kh, kw, in, out)``; RMS-norm ``gamma`` ``(C, 1, 1[, 1])`` → ``(C,)``. Unknown, missing or
mis-shaped keys raise one ``ValueError`` that lists them.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from mvtrack_jax.convert.checkpoint_io import read_checkpoint
from mvtrack_jax.models.wan_vae import WanVAE, WanVAEConfig

_LIST_NAMES = ("down_blocks", "up_blocks", "resnets", "attentions")


def _flax_path(name: str) -> tuple[str, ...]:
  """diffusers key → Flax param path (``encoder.down_blocks.3.conv1.weight`` → ``encoder/down_blocks_3/conv1/kernel``)."""
  parts = name.split(".")
  out: list[str] = []
  i = 0
  while i < len(parts):
    p = parts[i]
    if p in _LIST_NAMES and i + 1 < len(parts) and parts[i + 1].isdigit():
      out.append(f"{p}_{parts[i + 1]}")
      i += 2
    elif p == "upsamplers" and i + 1 < len(parts) and parts[i + 1] == "0":
      out.append("upsampler")
      i += 2
    elif p == "resample" and i + 1 < len(parts) and parts[i + 1] == "1":
      out.append("resample")
      i += 2
    else:
      out.append({"weight": "kernel"}.get(p, p) if i == len(parts) - 1 else p)
      i += 1
  return tuple(out)


def _torch_name(path: tuple[str, ...]) -> str:
  """Inverse of :func:`_flax_path`."""
  out = []
  for i, p in enumerate(path):
    m = re.fullmatch(r"(down_blocks|up_blocks|resnets|attentions)_(\d+)", p)
    if m:
      out += [m.group(1), m.group(2)]
    elif p == "upsampler":
      out += ["upsamplers", "0"]
    elif p == "resample":
      out += ["resample", "1"]
    else:
      out.append("weight" if (p == "kernel" and i == len(path) - 1) else p)
  return ".".join(out)


def original_to_diffusers_names(state_dict: Mapping[str, Any], config: WanVAEConfig) -> dict[str, Any]:
  """Renames original ``Wan2.1_VAE.pth`` keys to diffusers' (values untouched); diffusers names pass through."""
  res = {"residual.0": "norm1", "residual.2": "conv1", "residual.3": "norm2", "residual.6": "conv2",
         "shortcut": "conv_shortcut"}
  per_stage = config.num_res_blocks + 1
  out = {}
  for key, value in state_dict.items():
    new = key
    m = re.fullmatch(r"(encoder|decoder)\.middle\.(\d)\.(.+)", key)
    if m:
      side, idx, rest = m.groups()
      if idx == "1":
        new = f"{side}.mid_block.attentions.0.{rest}"
      else:
        for a, b in res.items():
          rest = re.sub(rf"^{re.escape(a)}\.", f"{b}.", rest)
        new = f"{side}.mid_block.resnets.{int(idx) // 2}.{rest}"
    elif re.fullmatch(r"(encoder|decoder)\.head\.[02]\.\w+", key):
      side, idx, leaf = key.split(".")[0], key.split(".")[2], key.split(".")[3]
      new = f"{side}.{'norm_out' if idx == '0' else 'conv_out'}.{leaf}"
    elif re.fullmatch(r"(encoder|decoder)\.conv1\.\w+", key):
      new = key.replace(".conv1.", ".conv_in.")
    elif re.fullmatch(r"conv1\.\w+", key):
      new = "quant_conv." + key.split(".", 1)[1]
    elif re.fullmatch(r"conv2\.\w+", key):
      new = "post_quant_conv." + key.split(".", 1)[1]
    elif key.startswith("encoder.downsamples."):
      _, _, idx, rest = key.split(".", 3)
      for a, b in res.items():
        rest = re.sub(rf"^{re.escape(a)}\.", f"{b}.", rest)
      new = f"encoder.down_blocks.{idx}.{rest}"
    elif key.startswith("decoder.upsamples."):
      _, _, idx, rest = key.split(".", 3)
      stage, pos = divmod(int(idx), per_stage + 1)
      if pos < per_stage:
        for a, b in res.items():
          rest = re.sub(rf"^{re.escape(a)}\.", f"{b}.", rest)
        new = f"decoder.up_blocks.{stage}.resnets.{pos}.{rest}"
      else:
        new = f"decoder.up_blocks.{stage}.upsamplers.0.{rest}"
    out[new] = value
  return out


def expected_param_shapes(config: WanVAEConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Flat ``{path: shape}`` of :class:`WanVAE` params (``jax.eval_shape``, nothing allocated)."""
  s, t = config.spatial_factor, config.temporal_factor
  video = jax.ShapeDtypeStruct((1, 1 + t, s, s, 3), jnp.float32)
  shapes = jax.eval_shape(lambda v: WanVAE(config).init(jax.random.key(0), v), video)["params"]
  return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes).items()}


def num_params(config: WanVAEConfig) -> int:
  """Parameter count of :class:`WanVAE` for ``config`` (126.9 M for Wan2.1's)."""
  return int(sum(np.prod(s) for s in expected_param_shapes(config).values()))


def convert_state_dict(state_dict: Mapping[str, Any], config: WanVAEConfig) -> dict[str, Any]:
  """``{diffusers or original name: array}`` → nested Flax params for :class:`WanVAE` (float32).

  Raises:
    ValueError: listing unknown keys, missing keys and mis-shaped tensors (received vs expected
      shape, after the layout transpose).
  """
  expected = expected_param_shapes(config)
  named = original_to_diffusers_names(state_dict, config)
  flat, unknown, bad, seen = {}, [], [], set()
  for name, value in named.items():
    path = _flax_path(name)
    if path not in expected:
      unknown.append(name)
      continue
    seen.add(path)
    arr = np.asarray(value, np.float32)
    if path[-1] == "kernel" and arr.ndim in (4, 5):
      arr = np.transpose(arr, tuple(range(2, arr.ndim)) + (1, 0))
    elif path[-1] == "gamma":
      arr = arr.reshape(-1)
    if arr.shape != expected[path]:
      bad.append(f"{name}: got {tuple(np.shape(value))} → {arr.shape}, expected {expected[path]}")
      continue
    flat[path] = arr
  missing = sorted(_torch_name(p) for p in expected if p not in seen)
  if unknown or missing or bad:
    raise ValueError("convert_state_dict (Wan VAE): weights do not match the config "
                     f"(base_dim={config.base_dim}, z_dim={config.z_dim}, dim_mult={config.dim_mult}, "
                     f"num_res_blocks={config.num_res_blocks}):"
                     + (f"\n  unknown keys ({len(unknown)}): {sorted(unknown)[:20]}" if unknown else "")
                     + (f"\n  missing keys ({len(missing)}): {missing[:20]}" if missing else "")
                     + (f"\n  wrong shapes ({len(bad)}): {bad[:20]}" if bad else ""))
  return traverse_util.unflatten_dict(flat)


def load_diffusers_vae(state_dict: Mapping[str, np.ndarray], config: Mapping[str, Any],
                       **overrides) -> tuple[nn.Module, dict[str, Any]]:
  """A diffusers ``AutoencoderKLWan`` state dict and config → ``(WanVAE, params)``.

  Args:
    state_dict: ``{name: np.ndarray}``, diffusers (or original Wan2.1) names.
    config: diffusers constructor fields (``base_dim, z_dim, dim_mult, num_res_blocks, attn_scales,
      temperal_downsample, dropout``, optionally ``latents_mean/std``).
    **overrides: :class:`WanVAEConfig` fields (e.g. ``dtype``).

  Returns:
    ``(module, params)``: ``module.apply({'params': params}, video, method='encode')`` → ``(mean,
    logvar)``; ``method='decode'`` → video (see :class:`WanVAE`).

  Raises:
    ValueError: unsupported config fields, or unknown / missing / mis-shaped weights.
  """
  cfg = WanVAEConfig.from_diffusers(config, **overrides)
  return WanVAE(cfg), convert_state_dict(state_dict, cfg)


def read_config(path: str | os.PathLike, **overrides) -> WanVAEConfig:
  """The :class:`WanVAEConfig` of the weights at ``path`` without reading them: a diffusers folder's
  ``config.json``, or Wan2.1's architecture for a single file (which carries no config)."""
  path = os.fspath(path)
  config: dict[str, Any] = {}
  if os.path.isdir(path):
    config_path = os.path.join(path, "config.json")
    if not os.path.exists(config_path):
      raise FileNotFoundError(f"{path}: a diffusers VAE folder must hold config.json (and *.safetensors)")
    with open(config_path) as fh:
      config = json.load(fh)
  elif not os.path.exists(path):
    raise FileNotFoundError(f"Wan VAE weights: no such file or folder {path}")
  return WanVAEConfig.from_diffusers(config, **overrides)


def random_params(config: WanVAEConfig, seed: int = 0) -> dict[str, Any]:
  """Randomly initialised :class:`WanVAE` params (tests and benchmarks; no weights needed)."""
  s, t = config.spatial_factor, config.temporal_factor
  video = jnp.zeros((1, 1 + t, s, s, 3), jnp.float32)
  return jax.jit(lambda key: WanVAE(config).init(key, video)["params"])(jax.random.key(seed))


def load_vae(path: str | os.PathLike, **overrides) -> tuple[nn.Module, dict[str, Any]]:
  """Loads a Wan2.1 VAE from a diffusers ``vae/`` folder (``config.json`` + safetensors) or from an
  original checkpoint file (``Wan2.1_VAE.pth`` or a ``.safetensors`` with original names; Wan2.1's
  default architecture is assumed, since such files carry no config).

  Raises:
    FileNotFoundError, ValueError, ImportError: as ``convert.checkpoint_io.read_checkpoint`` and
      :func:`convert_state_dict`.
  """
  cfg = read_config(path, **overrides)
  return WanVAE(cfg), convert_state_dict(read_checkpoint(path)[0], cfg)


__all__ = ["convert_state_dict", "load_diffusers_vae", "load_vae", "read_config", "random_params",
           "num_params", "expected_param_shapes", "original_to_diffusers_names"]
