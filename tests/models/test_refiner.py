"""Track4Gen's refiner (models.refiner): exactly the identity at initialisation, per-frame with 2-D kernels."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from mvtrack_jax.models import refiner

SHAPE = (2, 3, 4, 5, 16)  # (B, F, h, w, D): one view's token grid


def _unbox(tree):
  return jax.tree.map(lambda v: getattr(v, "value", v), tree, is_leaf=lambda v: hasattr(v, "value"))


def _init(cfg, x):
  module = refiner.FeatureRefiner(cfg)
  return module, jax.jit(module.init)(jax.random.key(0), x)


@pytest.mark.parametrize("kernel", sorted(refiner.KERNELS))
def test_identity_at_initialisation_then_frames_mix_only_with_3d_kernels(kernel):
  x = jax.random.normal(jax.random.key(1), SHAPE)
  cfg = refiner.RefinerConfig(channels=8, depth=8, kernel=kernel)
  module, variables = _init(cfg, x)
  np.testing.assert_array_equal(jax.jit(module.apply)(variables, x), x)  # bitwise, not approximately
  flat = traverse_util.flatten_dict(_unbox(variables["params"]), sep="/")
  k = int(np.prod(refiner.KERNELS[kernel]))
  assert sum(v.size for v in flat.values()) == 2 * 16 * 8 + 8 + 16 + 8 * (k * 8 * 8 + 8)  # 1x1 in/out + convs
  # Trained (here: a non-zero output projection), frame 0's input reaches frame 1's output only across frames.
  flat["proj_out/kernel"] = jnp.ones_like(flat["proj_out/kernel"])
  trained = {"params": traverse_util.unflatten_dict(flat, sep="/")}
  moved = x.at[:, 0].add(1.0)
  out, out_moved = module.apply(trained, x), module.apply(trained, moved)
  assert float(jnp.abs(out_moved[:, 0] - out[:, 0]).max()) > 1e-3
  changed = float(jnp.abs(out_moved[:, 1] - out[:, 1]).max())
  assert (changed > 1e-4) if kernel == "3d" else (changed == 0.0)


def test_zero_projection_adds_nothing_and_bad_settings_are_named():
  x = jax.random.normal(jax.random.key(2), SHAPE)
  zeta = refiner.ZeroProjection()
  out = zeta.apply(zeta.init(jax.random.key(0), x), x)
  assert out.shape == x.shape and float(jnp.abs(out).max()) == 0.0
  with pytest.raises(ValueError, match="kernel='1d'"):
    refiner.RefinerConfig(kernel="1d")
  with pytest.raises(ValueError, match="one view"):
    refiner.FeatureRefiner(refiner.RefinerConfig()).init(jax.random.key(0), x[0])


def test_zero_projection_reads_the_direction_only():
  """ζ sees the refined features RMS-normalised per token: scaling them (which the cosine loss leaves free) changes
  nothing it injects."""
  x = jax.random.normal(jax.random.key(0), (2, 3, 4, 4, 8))
  zeta = refiner.ZeroProjection()
  params = jax.tree.map(lambda p: jax.random.normal(jax.random.key(1), p.shape),
                        nn.meta.unbox(zeta.init(jax.random.key(2), x)))
  out = zeta.apply(params, x)
  assert float(jnp.abs(out).max()) > 0
  np.testing.assert_allclose(zeta.apply(params, 1e5 * x), out, rtol=1e-4, atol=1e-5)
  rms = x / jnp.sqrt(jnp.mean(x ** 2, axis=-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(out, rms @ params["params"]["proj"]["kernel"] + params["params"]["proj"]["bias"],
                             rtol=1e-5, atol=1e-5)
