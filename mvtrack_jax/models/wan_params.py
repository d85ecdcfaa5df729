"""Helpers around the Wan DiT's parameters and inputs: random valid inputs, the scanned ↔ unscanned parameter
layouts, parameter counts.

``models.wan.WanDiT`` keeps its blocks either unrolled (``blocks_0 … blocks_{N−1}``) or scanned (``blocks/block``
with a leading layer axis, ``WanConfig.scan_layers``); the converters (``convert.wan``), the parity tests and the
benchmarks move parameters between the two with :func:`stack_block_params` / :func:`unstack_block_params`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mvtrack_jax.geometry import intrinsics_from_fov, invert_rigid, look_at
from mvtrack_jax.models.wan import WanConfig


def example_inputs(config: WanConfig, *, batch_size: int = 1, latent_shape: Sequence[int] = (2, 4, 6),
                   context_length: int = 8, with_reference: bool = True, image_tokens: int = 3,
                   seed: int = 0) -> dict[str, Any]:
  """Random valid ``WanDiT`` inputs (e.g. for ``init``), as keyword arguments.

  Args:
    config: the model config (decides channels, camera keys, frame packing).
    batch_size: ``B``.
    latent_shape: ``(F, H, W)`` latent grid of one view.
    context_length: text tokens ``L``.
    image_tokens: image-context tokens ``N`` (a model with ``image_dim > 0`` gets ``image_context``).
    with_reference: include ``reference_latents`` (cameras are always built when the mode needs them).
    seed: NumPy seed.

  Returns:
    dict with ``latents, timestep, context`` (+ ``reference_latents``, ``image_context``, ``cameras``) as float32
    NumPy arrays; cameras orbit a point 4 m in front of the reference camera.
  """
  rng = np.random.default_rng(seed)
  f, h, w = latent_shape
  out: dict[str, Any] = {
      "latents": rng.standard_normal((batch_size, f, h, w, config.in_channels)).astype(np.float32),
      "timestep": rng.uniform(0, 1000, (batch_size,)).astype(np.float32),
      "context": rng.standard_normal((batch_size, context_length, config.text_dim)).astype(np.float32),
  }
  if with_reference:
    out["reference_latents"] = rng.standard_normal((batch_size, f, h, w, config.in_channels)).astype(np.float32)
  if config.image_dim:
    out["image_context"] = rng.standard_normal((batch_size, image_tokens, config.image_dim)).astype(np.float32)
  if config.camera_mode != "none":
    frames = f * config.frames_per_latent
    height, width = h * config.vae_stride, w * config.vae_stride
    k = np.broadcast_to(intrinsics_from_fov(height, width, 60.0), (batch_size, frames, 3, 3)).astype(np.float32)
    def orbit(start):
      angles = start + np.linspace(0.0, 0.3, frames) + rng.uniform(-0.05, 0.05, (batch_size, 1))
      eye = np.stack([4 * np.sin(angles), np.zeros_like(angles), 4 - 4 * np.cos(angles)], -1)
      return invert_rigid(look_at(eye, np.broadcast_to([0.0, 0.0, 4.0], eye.shape))).astype(np.float32)
    out["cameras"] = {"target_intrinsics": k, "reference_intrinsics": k.copy(),
                      "target_cam_to_world": orbit(0.4), "reference_cam_to_world": orbit(0.0)}
  return out


def _unboxed(params):
  return nn.meta.unbox(params)


def stack_block_params(params: Mapping[str, Any], num_layers: int) -> dict[str, Any]:
  """Unscanned params (``blocks_0 … blocks_{N−1}``) → scanned layout (``blocks/block``, leading axis N).

  Raises:
    ValueError: when a ``blocks_i`` entry is missing or a ``blocks`` entry already exists.
  """
  params = dict(_unboxed(params))
  missing = [f"blocks_{i}" for i in range(num_layers) if f"blocks_{i}" not in params]
  if missing or "blocks" in params:
    raise ValueError(f"stack_block_params: expected unscanned params with blocks_0..blocks_{num_layers - 1}; "
                     f"missing {missing}, has 'blocks': {'blocks' in params}")
  layers = [params.pop(f"blocks_{i}") for i in range(num_layers)]
  params["blocks"] = {"block": jax.tree.map(lambda *xs: jnp.stack(xs), *layers)}
  return params


def unstack_block_params(params: Mapping[str, Any]) -> dict[str, Any]:
  """Scanned params (``blocks/block`` with leading layer axis) → ``blocks_0 … blocks_{N−1}``.

  Raises:
    ValueError: when ``params`` has no ``blocks/block`` entry.
  """
  params = dict(_unboxed(params))
  if "blocks" not in params or "block" not in params["blocks"]:
    raise ValueError(f"unstack_block_params: expected scanned params with 'blocks/block'; got keys {sorted(params)}")
  stacked = params.pop("blocks")["block"]
  num_layers = jax.tree.leaves(stacked)[0].shape[0]
  for i in range(num_layers):
    params[f"blocks_{i}"] = jax.tree.map(lambda a, i=i: a[i], stacked)
  return params


def count_params(params: Any) -> int:
  """Number of scalars in a params tree (arrays, boxed arrays or ``ShapeDtypeStruct``s)."""
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(_unboxed(params))))
