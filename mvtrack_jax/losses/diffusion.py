"""L_diff: the weighted flow-matching MSE on the target half (Wan / ReCamMaster; docs/design.md §4.3).

``L_diff = mean_b w(t_b) · mean_{f,h,w,c} (v̂ − (ε − x₀))²`` over the *target* latents only (the
reference half is clean conditioning and is not scored). ``w`` comes from the precomputed table
``FlowMatchingSchedule.training_weights`` (mean 1 over the grid) and is never renormalised inside
the batch.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = Any


def flow_matching_loss(pred_velocity: Array, target_velocity: Array, weight: Array,
                       frame_mask: Array | None = None) -> jax.Array:
  """Weighted velocity MSE (DiffSynth ``training_loss``; ReCamMaster/ReDirector train scripts).

  Args:
    pred_velocity: ``(B, F, h, w, C)`` DiT output for the target half (any float dtype).
    target_velocity: ``(B, F, h, w, C)`` ``ε − x₀``.
    weight: ``(B,)`` per-sample loss weights ``w(t)``.
    frame_mask: optional ``(B, F)`` bool, the latent frames that count (False: a given, clean frame,
      ``models.frame_conditioning``); ``MSE_b`` is then the mean over the counted frames only.

  Returns:
    Scalar fp32 loss: batch mean of ``weight_b · MSE_b``.

  Raises:
    ValueError: on shape mismatches.
  """
  if pred_velocity.shape != target_velocity.shape:
    raise ValueError(f"flow_matching_loss: pred_velocity {pred_velocity.shape} and target_velocity "
                     f"{target_velocity.shape} must have the same shape")
  if weight.shape != pred_velocity.shape[:1]:
    raise ValueError(f"flow_matching_loss: weight must be ({pred_velocity.shape[0]},), got {weight.shape}")
  err = jnp.square(jnp.asarray(pred_velocity, jnp.float32) - jnp.asarray(target_velocity, jnp.float32))
  if frame_mask is None:
    per_sample = err.reshape(err.shape[0], -1).mean(axis=-1)
  else:
    if tuple(np.shape(frame_mask)) != err.shape[:2]:
      raise ValueError(f"flow_matching_loss: frame_mask must be {err.shape[:2]}, got {np.shape(frame_mask)}")
    counted = jnp.asarray(frame_mask, jnp.float32)
    per_frame = err.reshape(*err.shape[:2], -1).mean(axis=-1)
    per_sample = jnp.sum(per_frame * counted, axis=1) / jnp.maximum(counted.sum(axis=1), 1.0)
  return jnp.mean(jnp.asarray(weight, jnp.float32) * per_sample)
