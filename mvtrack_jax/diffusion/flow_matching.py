"""Rectified-flow (flow-matching) schedule of Wan2.1 / ReCamMaster / ReDirector.

The model learns the velocity of the straight path between data and noise:

  ``x_σ = (1 − σ)·x₀ + σ·ε``,  target velocity ``v = ε − x₀``,  ``σ ∈ [0, 1]`` (1 = pure noise).

Training (docs/design.md §4.3, DiffSynth ``FlowMatchScheduler(shift=5, sigma_min=0, extra_one_step=True)``
with ``set_timesteps(1000, training=True)``):

- grid: ``σ = linspace(1, 0, 1001)[:-1]`` shifted by ``σ' = s·σ / (1 + (s − 1)·σ)``, ``s = 5``;
- the DiT's timestep input is ``1000·σ'``; the grid index is drawn uniformly;
- the loss weight of grid point ``t = 1000·σ'`` is ``y = exp(−2·((t − 500)/1000)²)``,
  ``w = (y − min y)·1000 / Σ(y − min y)`` (mean 1 over the grid). The table is computed once;
  it is never renormalised inside a batch (that gives NaN at batch size 1).

Inference: 50 Euler steps ``x ← x + v·(σ_next − σ)`` on the shifted grid ``linspace(1, 0, 51)[:-1]``
with a final ``σ_next = 0``. The sampler (generation issue) reuses :func:`inference_sigmas` and
:func:`euler_step`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = Any


def shift_sigmas(sigmas: Array, shift: float) -> Array:
  """Applies the timestep shift ``σ' = s·σ / (1 + (s − 1)·σ)`` (SD3 / Wan; docs/design.md §4.3).

  Args:
    sigmas: any-shape array of ``σ ∈ [0, 1]`` (NumPy or JAX).
    shift: ``s > 0``; ``s > 1`` moves mass towards high noise.

  Returns:
    Shifted ``σ'`` of the same shape and kind.

  Raises:
    ValueError: if ``shift <= 0``.
  """
  if shift <= 0:
    raise ValueError(f"shift_sigmas: shift must be > 0, got {shift}")
  return shift * sigmas / (1.0 + (shift - 1.0) * sigmas)


WEIGHTINGS = ("wan", "uniform")


@dataclasses.dataclass(frozen=True)
class FlowMatchingSchedule:
  """The training and inference grids of the Wan flow-matching scheduler.

  Attributes:
    num_train_steps: size of the training grid (1000 in Wan/DiffSynth).
    shift: timestep shift ``s`` (5 for Wan2.1 T2V at 480p, ReCamMaster, ReDirector).
    num_inference_steps: default number of Euler steps for sampling (50).
    weighting: loss weight over the training grid: ``"wan"`` (the bell curve below, DiffSynth's
      ``training_weight``; for fine-tuning a pretrained Wan, it gives the grid ends ``σ' → 1`` and
      ``σ' → 0`` almost no weight) or ``"uniform"`` (``w = 1``; for a model trained from scratch, which must
      also learn the first denoising steps where the global layout of the sample is decided).
  """

  num_train_steps: int = 1000
  shift: float = 5.0
  num_inference_steps: int = 50
  weighting: str = "wan"

  def __post_init__(self):
    if self.num_train_steps < 2:
      raise ValueError(f"FlowMatchingSchedule: num_train_steps must be >= 2, got {self.num_train_steps}")
    if self.shift <= 0:
      raise ValueError(f"FlowMatchingSchedule: shift must be > 0, got {self.shift}")
    if self.weighting not in WEIGHTINGS:
      raise ValueError(f"FlowMatchingSchedule: weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
    if self.num_inference_steps < 1:
      raise ValueError(f"FlowMatchingSchedule: num_inference_steps must be >= 1, got {self.num_inference_steps}")

  def training_sigmas(self) -> np.ndarray:
    """Shifted training grid ``(num_train_steps,)`` float64, decreasing from 1 (index 0) towards 0."""
    base = np.linspace(1.0, 0.0, self.num_train_steps + 1, dtype=np.float64)[:-1]
    return shift_sigmas(base, self.shift)

  def training_timesteps(self) -> np.ndarray:
    """DiT timestep inputs ``1000·σ'`` of the training grid, ``(num_train_steps,)`` float64."""
    return 1000.0 * self.training_sigmas()

  def training_weights(self) -> np.ndarray:
    """Loss-weight table ``(num_train_steps,)`` float64, mean exactly 1.

    ``"wan"`` (DiffSynth ``training_weight``): ``y = exp(−2·((t − 500)/1000)²)`` with ``t = 1000·σ'``;
    ``w = (y − min y)·N / Σ(y − min y)``, so the grid point with the smallest ``y`` gets weight 0 (as in the
    reference scheduler). ``"uniform"``: ``w = 1``.
    """
    if self.weighting == "uniform":
      return np.ones(self.num_train_steps, np.float64)
    t = self.training_timesteps()
    y = np.exp(-2.0 * ((t - self.num_train_steps / 2) / self.num_train_steps) ** 2)
    y = y - y.min()
    return y * (self.num_train_steps / y.sum())

  def sample_training(self, rng: jax.Array, batch_size: int) -> dict[str, jax.Array]:
    """Draws one training grid index per sample, uniformly.

    Args:
      rng: a JAX PRNG key.
      batch_size: ``B`` (static).

    Returns:
      dict with ``index`` ``(B,)`` int32, ``sigma`` ``(B,)`` float32 (``σ'``), ``timestep``
      ``(B,)`` float32 (``1000·σ'``, the DiT input) and ``weight`` ``(B,)`` float32 (table lookup).
    """
    index = jax.random.randint(rng, (batch_size,), 0, self.num_train_steps)
    sigmas = jnp.asarray(self.training_sigmas(), jnp.float32)
    weights = jnp.asarray(self.training_weights(), jnp.float32)
    sigma = sigmas[index]
    return {"index": index, "sigma": sigma, "timestep": 1000.0 * sigma, "weight": weights[index]}

  def inference_sigmas(self, num_steps: int | None = None) -> np.ndarray:
    """Sampling grid ``(num_steps + 1,)`` float64: shifted ``linspace(1, 0, n + 1)[:-1]`` then a final 0.

    Step ``i`` integrates from ``σ[i]`` to ``σ[i + 1]``; ``σ[0] = 1`` (pure noise), ``σ[-1] = 0``.
    """
    n = self.num_inference_steps if num_steps is None else num_steps
    if n < 1:
      raise ValueError(f"inference_sigmas: num_steps must be >= 1, got {n}")
    base = np.linspace(1.0, 0.0, n + 1, dtype=np.float64)[:-1]
    return np.concatenate([shift_sigmas(base, self.shift), [0.0]])


def _expand(sigma: Array, ndim: int) -> Array:
  sigma = jnp.asarray(sigma)
  return sigma.reshape(sigma.shape + (1,) * (ndim - sigma.ndim))


def add_noise(clean: Array, noise: Array, sigma: Array) -> jax.Array:
  """Noises latents along the straight path ``x_σ = (1 − σ)·x₀ + σ·ε`` (docs/design.md §4.3).

  Args:
    clean: ``x₀`` ``(B, ...)`` latents.
    noise: ``ε`` of the same shape (standard normal).
    sigma: ``(B,)`` (or scalar) ``σ ∈ [0, 1]``, broadcast over the trailing axes.

  Returns:
    ``x_σ`` with the shape of ``clean``, in the promoted dtype of the inputs.

  Raises:
    ValueError: when ``clean`` and ``noise`` shapes differ.
  """
  if clean.shape != noise.shape:
    raise ValueError(f"add_noise: clean {clean.shape} and noise {noise.shape} must have the same shape")
  s = _expand(sigma, clean.ndim)
  return (1.0 - s) * clean + s * noise


def velocity_target(clean: Array, noise: Array) -> jax.Array:
  """Flow-matching regression target ``v = ε − x₀`` (``d x_σ / d σ``), same shape as the inputs."""
  if clean.shape != noise.shape:
    raise ValueError(f"velocity_target: clean {clean.shape} and noise {noise.shape} must have the same shape")
  return noise - clean


def euler_step(sample: Array, velocity: Array, sigma: Array, sigma_next: Array) -> jax.Array:
  """One Euler step of the probability-flow ODE: ``x ← x + v·(σ_next − σ)`` (DiffSynth ``step``).

  Args:
    sample: ``x_σ`` ``(B, ...)``.
    velocity: predicted ``v`` of the same shape.
    sigma, sigma_next: scalars or ``(B,)``; ``σ_next < σ`` when denoising.

  Returns:
    ``x_{σ_next}`` with the shape of ``sample``.
  """
  if sample.shape != velocity.shape:
    raise ValueError(f"euler_step: sample {sample.shape} and velocity {velocity.shape} must have the same shape")
  dt = _expand(jnp.asarray(sigma_next) - jnp.asarray(sigma), sample.ndim)
  return sample + velocity * dt
