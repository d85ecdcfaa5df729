"""What a training run starts from when ``config.init.transformer`` names a pretrained Wan checkpoint: the
architecture must match, the checkpoint's tensors load, the modules it lacks (camera modules of another camera
mode, RoCE phases) keep their fresh initialisation, and an optional overlay (ReDirector's released tensors) is
applied over it. Everything loaded, fresh, ignored or overlaid is reported by name.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from mvtrack_jax.convert.checkpoint_io import MODULES_FILE, load_safetensors, read_checkpoint
from mvtrack_jax.convert.wan import config_from_diffusers, infer_config, match_state_dict, params_tree
from mvtrack_jax.convert.wan_names import is_camera_name, to_diffusers_names
from mvtrack_jax.models.wan import WanConfig

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
  flat, unknown, missing, misshaped = match_state_dict(sd, config)
  bad = [n for n in unknown + missing if not is_camera_name(n)]
  if bad or misshaped:
    raise ValueError(f"{os.fspath(path)}: weights do not fit the model: missing or unknown non-camera tensors "
                     f"{bad[:20]} ({len(bad)}), mis-shaped {misshaped[:20]} ({len(misshaped)})")
  report = {"loaded": sorted(n for n in sd if n not in unknown), "fresh": missing, "ignored": unknown}
  if overlay:
    over = to_diffusers_names(read_checkpoint(overlay)[0])
    over_flat, over_unknown, _, over_misshaped = match_state_dict(over, config)
    if over_unknown or over_misshaped:
      raise ValueError(f"{os.fspath(overlay)}: overlay tensors that are not parameters of config.model: "
                       f"unknown {over_unknown[:20]} ({len(over_unknown)}), mis-shaped {over_misshaped[:20]} "
                       f"({len(over_misshaped)})")
    flat.update(over_flat)
    report["overlaid"] = sorted(over)
    report["fresh"] = [n for n in missing if n not in over]
  tree = params_tree({p: v.astype(np.float32) for p, v in flat.items()}, config)
  return jax.tree.map(np.asarray, tree), report


# The files ``python -m mvtrack_jax.export --format=diffusers|diffsynth`` writes besides the weights.
TORCH_EXPORT_CONFIG = "mvtrack_config.json"
TORCH_EXPORT_INFO = "export.json"
_TORCH_EXPORT_WEIGHTS = {"diffusers": "", "diffsynth": "model.safetensors"}  # "" = the folder (diffusers layout)
MODULE_TREES = ("head", "text", "refiner", "conditioning")  # MODULES_FILE besides the camera modules, as "<tree>.<flax.path>"


def is_torch_export(path: str | os.PathLike) -> bool:
  """Whether ``path`` is a folder ``export --format=diffusers|diffsynth`` wrote (its config and info files)."""
  path = os.fspath(path)
  return all(os.path.isfile(os.path.join(path, f)) for f in (TORCH_EXPORT_CONFIG, TORCH_EXPORT_INFO))


def torch_export_params(path: str | os.PathLike, config: WanConfig) -> tuple[dict[str, Any], dict[str, Any]]:
  """The whole model's parameters from a folder ``export --format=diffusers|diffsynth`` wrote, the inverse of it.

  The DiT is read as :func:`pretrained_params` reads any checkpoint (so the same architecture check applies), but
  every tensor of ``config`` must be there: an export that lacks one is an error, not a fresh initialisation. The
  tracking head and the null text context come from ``MODULES_FILE`` (``head.<Flax path>``, ``text.<Flax path>``,
  Flax layout).

  Args:
    path: the export folder (``mvtrack_config.json``, ``export.json`` and the weights).
    config: the DiT's ``WanConfig`` (from ``mvtrack_config.json``'s model).

  Returns:
    ``({"dit": ..., "head"?: ..., "text"?: ...}`` float32 NumPy trees, ``export.json``'s dict``)``.

  Raises:
    FileNotFoundError: not such a folder, or its weights file is missing.
    ValueError: an unknown ``format`` in ``export.json``, or weights that do not fit ``config`` (as
      :func:`pretrained_params`, plus any tensor of ``config`` the export lacks).
  """
  path = os.fspath(path)
  if not is_torch_export(path):
    raise FileNotFoundError(f"{path}: not a folder written by export --format=diffusers|diffsynth (it needs "
                            f"{TORCH_EXPORT_CONFIG} and {TORCH_EXPORT_INFO})")
  with open(os.path.join(path, TORCH_EXPORT_INFO), encoding="utf-8") as f:
    info = json.load(f)
  fmt = info.get("format")
  if fmt not in _TORCH_EXPORT_WEIGHTS:
    raise ValueError(f"{path}/{TORCH_EXPORT_INFO}: format {fmt!r}; expected one of {sorted(_TORCH_EXPORT_WEIGHTS)}")
  weights = os.path.join(path, _TORCH_EXPORT_WEIGHTS[fmt]) if _TORCH_EXPORT_WEIGHTS[fmt] else path
  dit, report = pretrained_params(weights, config)
  if report["fresh"]:
    raise ValueError(f"{path}: the export lacks tensors of its own model: {report['fresh'][:20]} "
                     f"({len(report['fresh'])})")
  params: dict[str, Any] = {"dit": dit}
  modules = os.path.join(path, MODULES_FILE)
  extra = load_safetensors(modules) if os.path.exists(modules) else {}
  for top in MODULE_TREES:
    flat = {tuple(k.split(".")[1:]): np.asarray(v, np.float32) for k, v in extra.items() if k.split(".")[0] == top}
    if flat:
      params[top] = traverse_util.unflatten_dict(flat)
  return params, info
