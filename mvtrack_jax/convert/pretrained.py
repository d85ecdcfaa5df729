"""What a training run starts from when ``config.init.transformer`` names a pretrained Wan checkpoint: the
architecture must match, the checkpoint's tensors load, the modules it lacks (camera modules of another camera
mode, RoCE phases) keep their fresh initialisation, and an optional overlay (ReDirector's released tensors) is
applied over it. Everything loaded, fresh, ignored or overlaid is reported by name.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from mvtrack_jax.convert.checkpoint_io import read_checkpoint
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
