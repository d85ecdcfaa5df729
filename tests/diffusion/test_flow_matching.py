"""Flow-matching schedule vs. the docs/design.md §4.3 / DiffSynth values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax.diffusion import flow_matching as fm


def test_training_grid_and_shift():
  s = fm.FlowMatchingSchedule()
  sig = s.training_sigmas()
  assert sig.shape == (1000,)
  # Unshifted grid linspace(1, 0, 1001)[:-1] then 5σ/(1+4σ).
  base = np.arange(1000, 0, -1) / 1000.0
  np.testing.assert_allclose(sig, 5 * base / (1 + 4 * base), rtol=1e-12)
  assert sig[0] == 1.0
  np.testing.assert_allclose(sig[-1], 5e-3 / (1 + 4e-3), rtol=1e-12)  # ≈ 0.00498
  assert np.all(np.diff(sig) < 0)
  np.testing.assert_allclose(s.training_timesteps(), 1000 * sig)
  # σ = 0.5 unshifted maps to 5/6 with shift 5.
  np.testing.assert_allclose(fm.shift_sigmas(np.array(0.5), 5.0), 5 / 6)
  with pytest.raises(ValueError, match="shift"):
    fm.FlowMatchingSchedule(shift=0.0)


def test_weight_table_matches_formula():
  s = fm.FlowMatchingSchedule()
  w = s.training_weights()
  t = 1000 * s.training_sigmas()
  y = np.exp(-2 * ((t - 500) / 1000) ** 2)
  expected = (y - y.min()) * 1000 / (y - y.min()).sum()
  np.testing.assert_allclose(w, expected, rtol=1e-12)
  np.testing.assert_allclose(w.mean(), 1.0, rtol=1e-12)
  assert w.min() == 0.0 and w[0] == 0.0  # σ' = 1 (t = 1000) is the farthest from 500.
  # Peak at the grid point with t closest to 500: unshifted σ = 1/6 → index 833.
  assert int(np.argmax(w)) == int(np.argmin(np.abs(t - 500)))
  np.testing.assert_allclose(w.max(), 2.0764, atol=1e-4)


def test_uniform_weighting_and_bad_weighting():
  uniform = fm.FlowMatchingSchedule(weighting="uniform")
  np.testing.assert_array_equal(uniform.training_weights(), np.ones(1000))
  # The grid is the same; only the weights change (Wan's gives σ' = 1 no weight at all).
  np.testing.assert_array_equal(uniform.training_sigmas(), fm.FlowMatchingSchedule().training_sigmas())
  batch = uniform.sample_training(jax.random.key(0), 16)
  np.testing.assert_array_equal(np.asarray(batch["weight"]), np.ones(16, np.float32))
  with pytest.raises(ValueError, match="weighting"):
    fm.FlowMatchingSchedule(weighting="bell")


def test_sample_training_batch_one_is_finite_and_uses_table():
  s = fm.FlowMatchingSchedule()
  out = s.sample_training(jax.random.key(0), 1)
  for name in ("sigma", "timestep", "weight"):
    assert out[name].shape == (1,)
    assert np.all(np.isfinite(np.asarray(out[name])))
  i = int(out["index"][0])
  np.testing.assert_allclose(out["sigma"][0], s.training_sigmas()[i], rtol=1e-6)
  np.testing.assert_allclose(out["weight"][0], s.training_weights()[i], rtol=1e-5)
  np.testing.assert_allclose(out["timestep"][0], 1000 * s.training_sigmas()[i], rtol=1e-5)
  many = s.sample_training(jax.random.key(1), 4096)
  assert 0 <= int(many["index"].min()) and int(many["index"].max()) < 1000
  assert abs(float(many["index"].mean()) - 499.5) < 20  # uniform


def test_noising_velocity_and_euler_are_consistent():
  rng = np.random.default_rng(0)
  x0 = jnp.asarray(rng.normal(size=(2, 3, 4, 4, 5)), jnp.float32)
  eps = jnp.asarray(rng.normal(size=x0.shape), jnp.float32)
  sigma = jnp.asarray([0.0, 1.0])
  xs = fm.add_noise(x0, eps, sigma)
  np.testing.assert_allclose(xs[0], x0[0], atol=0)
  np.testing.assert_allclose(xs[1], eps[1], atol=0)
  v = fm.velocity_target(x0, eps)
  # With the exact velocity one Euler step from any σ to 0 recovers x₀ (straight path).
  x_half = fm.add_noise(x0, eps, jnp.asarray([0.7, 0.3]))
  np.testing.assert_allclose(fm.euler_step(x_half, v, jnp.asarray([0.7, 0.3]), 0.0), x0, atol=1e-6)
  with pytest.raises(ValueError, match="same shape"):
    fm.add_noise(x0, eps[:1], sigma)


def test_inference_grid():
  s = fm.FlowMatchingSchedule()
  g = s.inference_sigmas()
  assert g.shape == (51,)
  assert g[0] == 1.0 and g[-1] == 0.0
  base = np.linspace(1, 0, 51)[:-1]
  np.testing.assert_allclose(g[:-1], 5 * base / (1 + 4 * base))
  assert np.all(np.diff(g) < 0)
  assert s.inference_sigmas(10).shape == (11,)
