"""Euler/CFG sampler: exact recovery with the oracle velocity, guidance algebra, input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax.diffusion import flow_matching as fm
from mvtrack_jax.diffusion import sampler


@pytest.mark.parametrize("num_steps", [1, 7, 50])
def test_oracle_velocity_recovers_clean_sample(num_steps):
  # On the straight path x_σ = (1 − σ)x₀ + σε the true velocity ε − x₀ is constant, so Euler is
  # exact on any grid: starting from ε at σ = 1 it must land on x₀.
  k0, k1 = jax.random.split(jax.random.key(0))
  x0 = jax.random.normal(k0, (2, 3, 4, 4, 5))
  eps = jax.random.normal(k1, x0.shape)
  sigmas = fm.FlowMatchingSchedule().inference_sigmas(num_steps)
  seen = []

  def oracle(x, sigma):
    # The state the sampler holds must be on the path at every σ.
    np.testing.assert_allclose(x, fm.add_noise(x0, eps, jnp.full((2,), sigma)), atol=1e-5)
    seen.append(sigma)
    return eps - x0

  out = sampler.euler_sample(oracle, eps, sigmas)
  np.testing.assert_allclose(out, x0, atol=1e-5)
  assert seen == [float(s) for s in sigmas[:-1]]


def test_oracle_with_guidance_and_progress_bar():
  x0 = jnp.linspace(-1, 1, 24).reshape(1, 2, 3, 4)
  eps = jnp.cos(jnp.arange(24.0)).reshape(x0.shape)
  # Conditional = oracle, null = something else: guidance 1 must ignore the null branch exactly.
  velocity = lambda x, s: sampler.guided_velocity(eps - x0, 3.0 * x, 1.0)
  out = sampler.euler_sample(velocity, eps, fm.FlowMatchingSchedule().inference_sigmas(5), progress=True)
  np.testing.assert_allclose(out, x0, atol=1e-6)


def test_guided_velocity_algebra():
  c, n = jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
  np.testing.assert_allclose(sampler.guided_velocity(c, n, 1.0), c)
  np.testing.assert_allclose(sampler.guided_velocity(c, n, 0.0), n)
  np.testing.assert_allclose(sampler.guided_velocity(c, n, 5.0), n + 5 * (c - n))
  np.testing.assert_allclose(sampler.guided_velocity(c, c, 5.0), c)  # identical branches: no effect
  with pytest.raises(ValueError, match="v_null"):
    sampler.guided_velocity(c, jnp.zeros(3), 2.0)


def test_bad_sigma_grids():
  with pytest.raises(ValueError, match="decreasing"):
    sampler.euler_sample(lambda x, s: x, jnp.zeros(2), [0.0, 1.0])
  with pytest.raises(ValueError, match=">= 2 entries"):
    sampler.euler_sample(lambda x, s: x, jnp.zeros(2), [1.0])
