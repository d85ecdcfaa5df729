"""The train state: everything a training step reads and writes, and how it is laid out.

``TrainState`` is one pytree (a ``flax.struct`` dataclass) so that a single Orbax item holds all
of it — parameters, optimizer state, optional EMA parameters, the step and the non-finite
counters — and a resumed run is bit-identical to an uninterrupted one (maxdiffusion dropped the
optimizer state on resume; here there is nothing to forget).

Sharding: the parameters' Flax logical-axis boxes are pushed through ``tx.init`` inside
``jax.eval_shape`` (optax's ``zeros_like`` keeps the boxes), so Adam moments get exactly the
parameters' shardings; scalars are replicated. The state is then materialised directly on the
mesh by a jitted init with those ``out_shardings`` (no host copy of the full model).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import flax.struct
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mvtrack_jax.training import mesh as mesh_lib


class TrainState(flax.struct.PyTreeNode):
  """Training state (a pytree).

  Attributes:
    step: int32 scalar, number of train steps run (including skipped non-finite steps; it
      indexes the batch and the per-step RNG).
    params: model parameters (fp32), e.g. ``{"dit": ..., "head": ...}``.
    opt_state: optax state; frozen parameters have none.
    ema_params: exponential moving average of ``params`` or ``None`` when EMA is off.
    nonfinite_consecutive: int32 scalar, non-finite steps in a row (0 after a good step).
    nonfinite_total: int32 scalar, all skipped steps so far.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any
  nonfinite_consecutive: jax.Array
  nonfinite_total: jax.Array


def create_train_state(params: Any, tx: optax.GradientTransformation,
                       use_ema: bool) -> TrainState:
  """A fresh state at step 0 (works on raw or logically boxed params).

  Args:
    params: initial parameters.
    tx: the optimizer (``make_optimizer``).
    use_ema: keep an EMA copy of the parameters (initialised to ``params``).
  """
  zero = jnp.zeros((), jnp.int32)
  return TrainState(step=zero, params=params, opt_state=tx.init(params),
                    ema_params=params if use_ema else None,
                    nonfinite_consecutive=zero, nonfinite_total=zero)


def _boxed_state_fn(init_params: Callable[[jax.Array], Any], tx: optax.GradientTransformation,
                    use_ema: bool) -> Callable[[jax.Array], TrainState]:
  return lambda rng: create_train_state(init_params(rng), tx, use_ema)


def state_shardings(init_params: Callable[[jax.Array], Any], tx: optax.GradientTransformation,
                    *, use_ema: bool, mesh: jax.sharding.Mesh,
                    rules: Sequence[tuple[str, Any]]) -> tuple[TrainState, TrainState]:
  """Abstract train state and its shardings, without allocating anything.

  Args:
    init_params: ``rng -> params`` whose leaves carry Flax logical-axis boxes
      (``nn.with_logical_partitioning`` / ``nn.LogicallyPartitioned``); raw leaves are replicated.
    tx: optimizer.
    use_ema: whether the state holds EMA params.
    mesh: target mesh.
    rules: logical axis rules.

  Returns:
    ``(abstract, shardings)``: ``abstract`` is a ``TrainState`` of ``jax.ShapeDtypeStruct`` with
    ``.sharding`` set (the target for Orbax restore and for ``jit.lower``); ``shardings`` the same
    tree of ``NamedSharding``.
  """
  boxed = jax.eval_shape(_boxed_state_fn(init_params, tx, use_ema), jax.random.key(0))
  shardings = mesh_lib.logical_to_shardings(boxed, mesh, rules)
  abstract = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      nn.unbox(boxed), shardings)
  return abstract, shardings


def init_train_state(init_params: Callable[[jax.Array], Any], tx: optax.GradientTransformation,
                     rng: jax.Array, *, use_ema: bool, mesh: jax.sharding.Mesh,
                     rules: Sequence[tuple[str, Any]]) -> tuple[TrainState, TrainState]:
  """Initialises the train state directly on the mesh.

  Args: as ``state_shardings`` plus ``rng`` (the parameter-init key).

  Returns:
    ``(state, shardings)`` with every leaf a global ``jax.Array`` laid out by ``shardings``.
  """
  _, shardings = state_shardings(init_params, tx, use_ema=use_ema, mesh=mesh, rules=rules)
  fn = _boxed_state_fn(init_params, tx, use_ema)
  with jax.set_mesh(mesh), nn.logical_axis_rules(tuple(rules)):
    state = jax.jit(lambda r: nn.unbox(fn(r)), out_shardings=shardings)(rng)
  return state, shardings


def overlay_params(state: TrainState, values: Any) -> TrainState:
  """Replaces leaves of ``state.params`` (and ``ema_params``) with host ``values``, outside jit.

  ``values`` is a (partial) tree with the params' structure; each of its leaves is cast to the
  target leaf's dtype and placed with ``jax.device_put`` onto that leaf's sharding, so weights are
  never baked into a compiled program and each device receives only its shards.

  Raises:
    ValueError: a path of ``values`` that ``state.params`` lacks, or a shape that differs.
  """
  targets = flax.traverse_util.flatten_dict(state.params)
  updates = {}
  for path, value in flax.traverse_util.flatten_dict(values).items():
    if path not in targets:
      raise ValueError(f"overlay_params: {'/'.join(path)} is not a parameter of the model")
    target = targets[path]
    if tuple(value.shape) != tuple(target.shape):
      raise ValueError(f"overlay_params: {'/'.join(path)} has shape {tuple(value.shape)}, the model's is "
                       f"{tuple(target.shape)}")
    updates[path] = (np.asarray(value).astype(target.dtype), target.sharding)

  def merged(tree):
    # A host copy per tree: params and ema_params must never share a buffer (the train step donates both), and on
    # CPU device_put may alias a suitably aligned host array (may_alias=False notwithstanding), which would make the
    # two trees one buffer.
    flat = flax.traverse_util.flatten_dict(tree)
    flat.update({path: jax.device_put(np.array(value, copy=True), sharding) for path, (value, sharding) in updates.items()})
    return flax.traverse_util.unflatten_dict(flat)
  return state.replace(params=merged(state.params),
                       ema_params=None if state.ema_params is None else merged(state.ema_params))


@functools.partial(jax.jit, static_argnames=("dtype",))
def cast_floating(tree: Any, dtype: Any) -> Any:
  """Casts floating-point leaves of ``tree`` to ``dtype`` (others unchanged)."""
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)
