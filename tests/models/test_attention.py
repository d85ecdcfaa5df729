"""Attention backends agree (forward and gradients) in float32 on CPU."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax.models.attention import BACKENDS, attention


# Tests are compile-bound on CPU: skip XLA's backend optimisations (halves compile time, same numerics).
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def _qkv(seed, b=2, s=150, t=150, n=3, d=20):
  rng = np.random.default_rng(seed)
  q = rng.standard_normal((b, s, n, d)).astype(np.float32)
  k = rng.standard_normal((b, t, n, d)).astype(np.float32)
  v = rng.standard_normal((b, t, n, d)).astype(np.float32)
  return jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)


def _naive(q, k, v):
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  logits = np.einsum("bsnd,btnd->bnst", q, k) / np.sqrt(q.shape[-1])
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return np.einsum("bnst,btnd->bsnd", p, v)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lengths", [(150, 150), (37, 9)])  # self (not a multiple of the block) and cross
def test_backends_match_float64_reference(backend, lengths):
  q, k, v = _qkv(0, s=lengths[0], t=lengths[1])
  out = _jit(lambda a, b, c: attention(a, b, c, backend=backend))(q, k, v)
  assert out.shape == q.shape and out.dtype == jnp.float32
  np.testing.assert_allclose(out, _naive(q, k, v), atol=1e-5, rtol=0)


def test_backend_gradients_agree():
  q, k, v = _qkv(1, s=140, t=140, d=16)
  w = jnp.asarray(np.random.default_rng(2).standard_normal(q.shape).astype(np.float32))
  grads = {}
  for backend in BACKENDS:
    loss = lambda a, b, c, be=backend: jnp.sum(attention(a, b, c, backend=be) * w)
    grads[backend] = _jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
  for backend in ("dot_product", "splash"):
    for g, ref in zip(grads[backend], grads["einsum"]):
      scale = float(jnp.abs(ref).max())
      assert float(jnp.abs(g - ref).max()) <= 1e-5 * max(scale, 1.0), backend


def test_custom_scale_and_bad_arguments():
  q, k, v = _qkv(3, s=8, t=8, n=1, d=4)
  np.testing.assert_allclose(attention(q, k, v, scale=0.0), jnp.broadcast_to(v.mean(1, keepdims=True), v.shape),
                             atol=1e-6)
  with pytest.raises(ValueError, match="backend must be one of"):
    attention(q, k, v, backend="flash9")
  with pytest.raises(ValueError, match=r"k \(2, 8, 1, 4\)"):
    attention(q, k, v[:, :5])
  with pytest.raises(ValueError, match="must be"):
    attention(q[0], k, v)
