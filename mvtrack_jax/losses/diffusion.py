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

Array = Any


def flow_matching_loss(pred_velocity: Array, target_velocity: Array, weight: Array) -> jax.Array:
  """Weighted velocity MSE (DiffSynth ``training_loss``; ReCamMaster/ReDirector train scripts).

  Args:
    pred_velocity: ``(B, F, h, w, C)`` DiT output for the target half (any float dtype).
    target_velocity: ``(B, F, h, w, C)`` ``ε − x₀``.
    weight: ``(B,)`` per-sample loss weights ``w(t)``.

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
  per_sample = err.reshape(err.shape[0], -1).mean(axis=-1)
  return jnp.mean(jnp.asarray(weight, jnp.float32) * per_sample)
