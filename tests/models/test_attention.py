"""Attention backends agree (forward and gradients) in float32 on CPU."""

import functools
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax.models.attention import BACKENDS, attention
from tests.helpers import REPO, cpu_env


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


def test_named_residuals_keep_values_and_gradients():
  """with_named_residuals(fn) computes fn and its gradients (XLA attention on CPU stands in for cuDNN)."""
  from mvtrack_jax.models.attention import with_named_residuals
  rng = np.random.default_rng(4)
  q, k, v = (jnp.asarray(rng.normal(size=(2, 12, 3, 8)), jnp.float32) for _ in range(3))
  fn = functools.partial(jax.nn.dot_product_attention, scale=0.3)
  loss = lambda f: lambda q, k, v: jnp.sum(jnp.sin(f(q, k, v)))
  np.testing.assert_allclose(with_named_residuals(fn, q, k, v), fn(q, k, v), atol=1e-6)
  wrapped = jax.grad(loss(lambda q, k, v: with_named_residuals(fn, q, k, v)), argnums=(0, 1, 2))(q, k, v)
  for got, want in zip(wrapped, jax.grad(loss(fn), argnums=(0, 1, 2))(q, k, v)):
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("policy,forwards", [("full", 4), ("save_attention", 2), ("offload_attention", 2)])
def test_cuda_lowering_runs_the_cudnn_forward_once_under_save_attention(monkeypatch, policy, forwards):
  """The scanned bf16 DiT's train-step gradient lowered for CUDA (on this CPU machine): per block the
  forward scan body has 2 fused attention forwards (self + cross); "full" remat recomputes both in the
  backward body (4 in all), the policies that keep ATTENTION_RESIDUALS do not (2)."""
  import importlib
  import re
  from jax import export
  from mvtrack_jax.models import wan
  from mvtrack_jax.models import wan_params
  attention_lib = importlib.import_module("mvtrack_jax.models.attention")  # the package exports a same-named function
  fa = pytest.importorskip("jax._src.cudnn.fused_attention_stablehlo")
  for name, value in (("check_cudnn_version", lambda: 91000), ("check_compute_capability", lambda c: True),
                      ("is_cuda_compute_capability_equal", lambda c: False)):
    if not hasattr(fa, name):
      pytest.skip(f"this jax has no {name} to stub for a CPU-side CUDA lowering")
    monkeypatch.setattr(fa, name, value)
  monkeypatch.setattr(attention_lib, "cudnn_supported", lambda q: q.dtype == jnp.bfloat16)
  cfg = wan.get_config("tiny", camera_mode="none", dtype="bfloat16", attention_backend="dot_product",
                       scan_layers=True, remat_policy=policy)
  model = wan.WanDiT(cfg)
  inputs = wan_params.example_inputs(cfg, latent_shape=(2, 4, 4), context_length=8, with_reference=False)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), **inputs))["params"]

  def loss(p):
    return jnp.sum(model.apply({"params": p}, **inputs).astype(jnp.float32))

  checks = [export.DisabledSafetyCheck.custom_call(n) for n in ("__cudnn$fmhaSoftmax", "__cudnn$fmhaSoftmaxBackward")]
  text = export.export(jax.jit(jax.grad(loss)), platforms=["cuda"], disabled_checks=checks)(params).mlir_module()
  assert len(re.findall(r"@__cudnn\$fmhaSoftmax\(", text)) == forwards
  assert len(re.findall(r"@__cudnn\$fmhaSoftmaxBackward\(", text)) == 2


_SHARDED_SPLASH = r"""
import jax, jax.numpy as jnp, numpy as np
from mvtrack_jax.models.attention import attention
from mvtrack_jax.training import mesh as mesh_lib
assert jax.device_count() == 8
rng = np.random.default_rng(0)
q, k, v = (jnp.asarray(rng.normal(size=(8, 40, 4, 16)), jnp.float32) for _ in range(3))
loss = lambda backend: lambda q, k, v: jnp.sum(jnp.sin(attention(q, k, v, backend=backend)))
want, want_grads = attention(q, k, v, backend="einsum"), jax.grad(loss("einsum"), argnums=(0, 1, 2))(q, k, v)
for shape in ((2, 2, 2), (1, 8, 1), (1, 1, 8)):   # data x fsdp x tensor; (1, 1, 8) cannot split 4 heads
  mesh = mesh_lib.make_mesh(shape, ("data", "fsdp", "tensor"))
  with jax.set_mesh(mesh):
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp"), None, None, None))
    args = [jax.device_put(x, sharding) for x in (q, k, v)]
    got = jax.jit(lambda q, k, v: attention(q, k, v, backend="splash"))(*args)
    grads = jax.jit(jax.grad(loss("splash"), argnums=(0, 1, 2)))(*args)
  assert np.abs(np.asarray(got) - np.asarray(want)).max() < 1e-5, shape
  for g, w in zip(grads, want_grads):
    assert np.abs(np.asarray(g) - np.asarray(w)).max() < 1e-5, shape
print("ok")
"""


def test_splash_inside_shard_map_on_eight_devices_matches_einsum():
  """Multi-chip meshes run the splash kernel per shard (shard_map); checked on 8 fake CPU devices in
  Pallas interpret mode against the einsum backend, values and gradients, for three mesh shapes."""
  proc = subprocess.run([sys.executable, "-c", _SHARDED_SPLASH], cwd=REPO, env=cpu_env(8), capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
