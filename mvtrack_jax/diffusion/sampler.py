"""Flow-matching Euler sampler with classifier-free guidance (Wan / ReCamMaster inference).

Integrates the probability-flow ODE ``dx/dσ = v(x, σ)`` from pure noise (``σ = 1``) to data
(``σ = 0``) with Euler steps on the shifted inference grid of
:meth:`FlowMatchingSchedule.inference_sigmas` (50 steps, shift 5 in Wan2.1 / ReCamMaster /
ReDirector; docs/design.md §4.3):

  ``x ← x + v̂·(σ_{i+1} − σ_i)``,  ``v̂ = v_null + g·(v_cond − v_null)``  (classifier-free guidance),

where ``v_cond`` is the velocity under the conditioning context, ``v_null`` under the null context
and ``g`` the guidance scale (5 in the references; ``g = 1`` is plain conditional sampling). The
model call itself is the caller's (``velocity_fn``), so this module knows nothing about DiTs.
"""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from mvtrack_jax.diffusion.flow_matching import euler_step

Array = Any


def guided_velocity(v_cond: Array, v_null: Array, guidance_scale: float) -> Array:
  """Classifier-free guidance ``v_null + g·(v_cond − v_null)`` (Ho & Salimans 2022, Wan's sampler).

  Args:
    v_cond, v_null: velocities of the same shape under the conditioning / null context.
    guidance_scale: ``g``; 1 returns ``v_cond``, 0 returns ``v_null``.

  Returns:
    The guided velocity, shape of the inputs.

  Raises:
    ValueError: on a shape mismatch.
  """
  if v_cond.shape != v_null.shape:
    raise ValueError(f"guided_velocity: v_cond {v_cond.shape} and v_null {v_null.shape} must have the same shape")
  return v_null + guidance_scale * (v_cond - v_null)


def euler_sample(velocity_fn: Callable[[Array, float], Array], noise: Array, sigmas: Array, *,
                 progress: bool = False, description: str = "denoising",
                 callback: Callable[[int, float, Array], None] | None = None) -> Array:
  """Runs the Euler sampler from ``noise`` at ``sigmas[0]`` to ``sigmas[-1]``.

  Args:
    velocity_fn: ``(x, sigma) -> v`` with ``x`` of the shape of ``noise`` and ``sigma`` a Python
      float (the DiT's timestep input is ``1000·σ``); guidance, if any, happens inside it
      (:func:`guided_velocity`). Usually a jitted function.
    noise: ``x`` at ``sigmas[0]`` (standard normal for ``σ = 1``), any shape.
    sigmas: ``(n + 1,)`` decreasing noise levels, e.g.
      ``FlowMatchingSchedule().inference_sigmas(50)`` (ends at 0).
    progress: show a tqdm bar over the ``n`` steps (on stderr).
    description: label of the bar.
    callback: optional ``callback(i, sigma_i, x_i)`` before each step (e.g. to probe features).

  Returns:
    ``x`` at ``sigmas[-1]`` (the sample when the grid ends at 0), dtype of the Euler update.

  Raises:
    ValueError: when ``sigmas`` is not 1-D with at least 2 entries or is not strictly decreasing.
  """
  sigmas = np.asarray(sigmas, np.float64)
  if sigmas.ndim != 1 or sigmas.size < 2:
    raise ValueError(f"euler_sample: sigmas must be 1-D with >= 2 entries, got shape {sigmas.shape}")
  if np.any(np.diff(sigmas) >= 0):
    raise ValueError(f"euler_sample: sigmas must be strictly decreasing, got {sigmas.tolist()}")
  steps = range(sigmas.size - 1)
  if progress:
    steps = tqdm(steps, desc=description, unit="step")
  x = jnp.asarray(noise)
  for i in steps:
    sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
    if callback is not None:
      callback(i, sigma, x)
    x = euler_step(x, velocity_fn(x, sigma), sigma, sigma_next)
  return x
