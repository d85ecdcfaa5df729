"""Multi-head scaled dot-product attention behind one function, with interchangeable backends.

``attention(q, k, v, backend=...)`` computes ``softmax(q·kᵀ·scale)·v`` per head, full (non-causal,
unmasked) attention as in Wan2.1. Backends (all agree to ~1e-6 in float32 on CPU; tested):

- ``"einsum"``: two einsums with the logits and softmax in float32. Materialises the ``S×T``
  attention map, so it is for CPU and small sequences (it is the fastest on CPU, docs/design.md §5).
- ``"dot_product"``: ``jax.nn.dot_product_attention``. On a GPU with bf16/fp16 inputs and a head
  dim that cuDNN supports it asks for the cuDNN fused flash kernel (``implementation="cudnn"``);
  everywhere else it uses XLA's implementation. The cuDNN path goes through
  :func:`with_named_residuals`, so its backward residuals (the output and the softmax statistics)
  carry the checkpoint name :data:`ATTENTION_RESIDUALS` and a remat policy can keep them
  (``models.wan``'s ``save_attention`` / ``offload_attention``): JAX's own cuDNN ``custom_vjp`` does
  not name them, so under any named policy but ``everything_saveable`` the backward pass re-ran the
  attention forward (a CUDA lowering showed 2 fused forwards per block instead of 1; attention is
  ~80 % of the FLOPs at 65k tokens).
- ``"splash"``: the Pallas TPU splash-attention kernel
  (``jax.experimental.pallas.ops.tpu.splash_attention``; blockwise online softmax, never
  materialising the map). Off TPU it runs in Pallas interpret mode, which works on CPU in
  jax 0.10 (checked: forward and backward), so the same code path is tested here. Under a
  multi-device mesh it runs inside ``shard_map`` (examples over data × fsdp, heads over tensor;
  tested on 8 fake CPU devices against the einsum backend). Sequences are
  padded to a multiple of the block size; padded keys get their own segment id so that no real
  query attends to them, padded queries are dropped.

Shapes follow ``jax.nn.dot_product_attention``: ``(B, S, N, d)`` with heads on the third axis.
"""

from __future__ import annotations

import functools
import math

import jax
from jax.ad_checkpoint import checkpoint_name
import jax.numpy as jnp

BACKENDS = ("einsum", "dot_product", "splash")
# Checkpoint name of the attention backward's residuals (see with_named_residuals).
ATTENTION_RESIDUALS = "attention_residuals"


def _einsum_attention(q, k, v, scale):
  logits = jnp.einsum("bsnd,btnd->bnst", q, k, preferred_element_type=jnp.float32) * scale
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("bnst,btnd->bsnd", probs, v, preferred_element_type=jnp.float32).astype(q.dtype)


def cudnn_supported(q: jnp.ndarray) -> bool:
  """Whether ``"dot_product"`` uses cuDNN for ``q``: a GPU backend, bf16/fp16, head dim a multiple of 8, ≤ 128."""
  return (jax.default_backend() == "gpu" and q.dtype in (jnp.bfloat16, jnp.float16)
          and q.shape[-1] % 8 == 0 and q.shape[-1] <= 128)


def _dot_product_attention(q, k, v, scale):
  if cudnn_supported(q):
    return with_named_residuals(
        functools.partial(jax.nn.dot_product_attention, scale=scale, implementation="cudnn"), q, k, v)
  return jax.nn.dot_product_attention(q, k, v, scale=scale)


def with_named_residuals(fn, q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray) -> jnp.ndarray:
  """``fn(q, k, v)`` whose backward residuals are ordinary forward values named :data:`ATTENTION_RESIDUALS`.

  Args:
    fn: an attention function of ``(B, S, N, d)`` queries and ``(B, T, N, d)`` keys/values (e.g.
      ``jax.nn.dot_product_attention`` with ``implementation="cudnn"``), differentiable by ``jax.vjp``.
    q, k, v: its inputs.

  Returns:
    ``fn(q, k, v)``, ``(B, S, N, d)``.

  ``jax.vjp(fn)`` runs on gradient-stopped inputs, so the forward (for cuDNN, one fused kernel that
  also returns its softmax statistics) is part of the primal computation, and its residuals — the
  leaves of the VJP closure, named with ``checkpoint_name`` — are what a remat policy can save or
  offload. A ``custom_vjp`` routes the cotangent of the output back to ``q, k, v`` through that
  closure. Same values and gradients as ``fn`` (tested with XLA's attention on CPU). Meant for
  kernels with small residuals (cuDNN: output + per-row statistics); an implementation whose VJP
  keeps the ``S × T`` probabilities would save those.
  """
  stop = jax.lax.stop_gradient
  out, vjp_fn = jax.vjp(fn, stop(q), stop(k), stop(v))
  leaves, treedef = jax.tree.flatten(vjp_fn)
  leaves = [checkpoint_name(leaf, ATTENTION_RESIDUALS) for leaf in leaves]
  return _through_residuals(treedef, q, k, v, checkpoint_name(out, ATTENTION_RESIDUALS), leaves)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _through_residuals(treedef, q, k, v, out, leaves):
  del treedef, q, k, v, leaves
  return out


def _through_residuals_fwd(treedef, q, k, v, out, leaves):
  del treedef, q, k, v
  return out, leaves


def _through_residuals_bwd(treedef, leaves, g):
  dq, dk, dv = jax.tree.unflatten(treedef, leaves)(g)
  return dq, dk, dv, jnp.zeros_like(g), [jnp.zeros_like(leaf) for leaf in leaves]


_through_residuals.defvjp(_through_residuals_fwd, _through_residuals_bwd)


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


@functools.lru_cache(maxsize=64)
def _splash_kernel(num_heads: int, q_len: int, kv_len: int, block_q: int, block_kv: int, interpret: bool,
                   mesh: object = None):
  # ``mesh``: the context mesh of the call (part of the cache key: the kernel's mask arrays belong to it).
  # Imported lazily: the TPU Pallas module is only needed by this backend.
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as splash_mask
  mask = splash_mask.MultiHeadMask([splash_mask.FullMask((q_len, kv_len)) for _ in range(num_heads)])
  block_sizes = splash.BlockSizes(
      block_q=block_q, block_kv=block_kv, block_kv_compute=block_kv,
      block_q_dkv=block_q, block_kv_dkv=block_kv, block_kv_dkv_compute=block_kv,
      block_q_dq=block_q, block_kv_dq=block_kv)
  with jax.ensure_compile_time_eval():  # concrete mask-info arrays, safe to cache across traces
    kernel = splash.make_splash_mha(mask, block_sizes=block_sizes, head_shards=1, q_seq_shards=1,
                                    interpret=interpret)
  return kernel, splash.SegmentIds


def _splash_attention(q, k, v, scale):
  """Splash attention; under a multi-device mesh (``jax.set_mesh``) one kernel per shard via ``shard_map``.

  Pallas kernels are not partitioned by GSPMD, so on a mesh the examples are split over the mesh's
  batch axes (``data``, ``fsdp``) and the heads over ``tensor``, as the activations' logical axes
  (``models.wan.LOGICAL_AXIS_RULES``) place them; each device attends over the whole sequence of its
  examples and heads (no communication). An axis that does not divide its dimension is not split.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1:
    return _splash_local(q, k, v, scale)
  sizes = dict(zip(mesh.axis_names, mesh.axis_sizes))
  batch_axes = tuple(a for a in ("data", "fsdp") if sizes.get(a, 1) > 1)
  if q.shape[0] % math.prod(sizes[a] for a in batch_axes):
    batch_axes = ()
  heads_axis = "tensor" if sizes.get("tensor", 1) > 1 and q.shape[2] % sizes["tensor"] == 0 else None
  spec = jax.sharding.PartitionSpec(batch_axes or None, None, heads_axis, None)
  local = functools.partial(_splash_local, scale=scale)
  return jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec), out_specs=spec, check_vma=False)(q, k, v)


def _splash_local(q, k, v, scale):
  batch, q_len, num_heads, _ = q.shape
  kv_len = k.shape[1]
  on_tpu = jax.default_backend() == "tpu"
  block = 512 if on_tpu else 128
  block_q = min(block, _round_up(q_len, 128))
  block_kv = min(block, _round_up(kv_len, 128))
  q_pad, kv_pad = _round_up(q_len, block_q), _round_up(kv_len, block_kv)
  kernel, segment_ids_cls = _splash_kernel(num_heads, q_pad, kv_pad, block_q, block_kv, not on_tpu,
                                           jax.sharding.get_abstract_mesh())
  # The kernel does not scale the logits: scale q (in float32, then back to the input dtype).
  qs = (q.astype(jnp.float32) * scale).astype(q.dtype)
  to_heads_first = lambda x, n, pad: jnp.pad(jnp.swapaxes(x, 1, 2), ((0, 0), (0, 0), (0, pad - n), (0, 0)))
  qh = to_heads_first(qs, q_len, q_pad)
  kh = to_heads_first(k, kv_len, kv_pad)
  vh = to_heads_first(v, kv_len, kv_pad)
  # Padded keys: segment 1 (never attended by real queries). Padded queries stay in segment 0 so
  # that no softmax row is empty; their outputs are cut off below.
  segment_ids = segment_ids_cls(q=jnp.zeros((q_pad,), jnp.int32),
                                kv=(jnp.arange(kv_pad) >= kv_len).astype(jnp.int32))
  out = jax.vmap(lambda a, b, c: kernel(a, b, c, segment_ids=segment_ids))(qh, kh, vh)
  return jnp.swapaxes(out[:, :, :q_len], 1, 2).astype(q.dtype)


def attention(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, *, backend: str = "einsum",
              scale: float | None = None) -> jnp.ndarray:
  """Full multi-head attention ``softmax(q kᵀ · scale) v``.

  Args:
    q: ``(B, S, N, d)`` queries.
    k: ``(B, T, N, d)`` keys.
    v: ``(B, T, N, d)`` values.
    backend: ``"einsum"``, ``"dot_product"`` or ``"splash"`` (module docstring).
    scale: logit scale; default ``1/√d`` (Wan / PyTorch SDPA).

  Returns:
    ``(B, S, N, d)`` in ``q``'s dtype. Softmax statistics are float32 in every backend.

  Raises:
    ValueError: for an unknown backend or inconsistent shapes.
  """
  if backend not in BACKENDS:
    raise ValueError(f"attention: backend must be one of {BACKENDS}, got {backend!r}")
  if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
    raise ValueError(f"attention: q, k, v must be (B, S, N, d); got {q.shape}, {k.shape}, {v.shape}")
  if k.shape != v.shape or q.shape[0] != k.shape[0] or q.shape[2:] != k.shape[2:]:
    raise ValueError(f"attention: expected q (B, S, N, d) and k = v (B, T, N, d); got q {q.shape}, "
                     f"k {k.shape}, v {v.shape}")
  if scale is None:
    scale = 1.0 / math.sqrt(q.shape[-1])
  if backend == "einsum":
    return _einsum_attention(q, k, v, scale)
  if backend == "dot_product":
    return _dot_product_attention(q, k, v, scale)
  return _splash_attention(q, k, v, scale)
