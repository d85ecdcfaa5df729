"""One jitted, sharded train step: all losses from one forward pass, the optax update, EMA, and
the non-finite guard.

``make_train_step`` wraps a pure objective ``loss_fn(params, batch, rng) -> (loss, metrics)``
(MVTrack4Gen's ``L_diff + λ_track L_track + λ_corr L_corr`` computed from a single DiT forward)
in ``jax.value_and_grad`` and an optax update. ``jit_train_step`` compiles it once with the state
donated (its buffers are reused for the new state) and explicit in/out shardings.

Non-finite guard: when the loss or the global gradient norm is NaN/inf, or the update itself is
(its global norm is NaN/inf: a finite gradient times a NaN or overflowing learning rate gives NaN
parameters that the loss and gradient of this step cannot show), the parameters, optimizer state and EMA are kept unchanged (selected with ``jnp.where``
inside the step, so no host round trip), ``nonfinite_consecutive``/``nonfinite_total`` are
incremented and the step counter still advances (the batch is consumed). The host loop stops the
run after a configured number of consecutive skips, so a state with non-finite values is never
produced, let alone saved.

Per-step randomness is ``fold_in(base_rng, step)``: independent of the mesh, the number of
processes and of interruptions, which makes resumed runs reproduce uninterrupted ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mvtrack_jax.training.train_state import TrainState

LossFn = Callable[[Any, Mapping[str, jax.Array], jax.Array],
                  tuple[jax.Array, Mapping[str, jax.Array]]]


def _select(ok: jax.Array, new: Any, old: Any) -> Any:
  return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def all_finite(tree: Any) -> jax.Array:
  """Boolean scalar: every floating-point leaf of ``tree`` is free of NaN and inf (integer leaves,
  e.g. optimizer step counts, are ignored; an empty tree is finite)."""
  leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return jnp.stack(leaves).all() if leaves else jnp.asarray(True)


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, *, base_rng: jax.Array,
                    ema_decay: float = 0.0, trainable: Any = None
                    ) -> Callable[[TrainState, Mapping[str, jax.Array]],
                                  tuple[TrainState, dict[str, jax.Array]]]:
  """Returns ``step(state, batch) -> (new_state, metrics)`` (not yet jitted).

  Args:
    loss_fn: ``(params, batch, rng) -> (scalar fp32 loss, dict of scalar metrics)``.
    tx: optimizer (frozen params must receive zero updates, see ``make_optimizer``).
    schedule: learning-rate schedule, evaluated at ``state.step`` for logging.
    base_rng: key folded with the step to give each step's RNG.
    ema_decay: EMA decay in [0, 1); used only when ``state.ema_params`` is not ``None``.
    trainable: optional bool pytree (structure of the params, ``optimizer.trainable_mask``);
      frozen leaves enter the loss through ``jax.lax.stop_gradient`` so no weight-gradient
      matmuls are built for them (their gradients are exact zeros). ``None``: all trainable.

  Returns:
    The step function. ``metrics`` holds ``loss``, every entry of the objective's metrics,
    ``grad_norm`` (global L2 norm of the trainable parameters' gradients), ``update_norm``,
    ``param_norm``, ``learning_rate``, ``nonfinite`` (1.0 when this step was skipped: non-finite loss,
    gradient or updated state),
    ``nonfinite_consecutive`` and ``nonfinite_total``.
  """
  if not 0.0 <= ema_decay < 1.0:
    raise ValueError(f"ema_decay={ema_decay}; expected 0 <= ema_decay < 1")

  def step(state: TrainState, batch: Mapping[str, jax.Array]):
    rng = jax.random.fold_in(base_rng, state.step)
    def objective(params):
      if trainable is not None:
        params = jax.tree.map(lambda p, t: p if t else jax.lax.stop_gradient(p), params, trainable)
      return loss_fn(params, batch, rng)

    (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    grad_norm = optax.tree.norm(grads)
    grads_ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    # Zero non-finite gradients before the update so NaNs never enter the optimizer arithmetic
    # (the result is discarded anyway when not ok, but this keeps the selected branch clean).
    safe_grads = jax.tree.map(lambda g: jnp.where(grads_ok, g, jnp.zeros_like(g)), grads)
    updates, new_opt_state = tx.update(safe_grads, state.opt_state, state.params)
    update_norm = optax.tree.norm(updates)
    # The guard checks what would be kept, not only what went in (module docstring). From a finite state and
    # finite gradients, the optimizer moments are finite; the new parameters and EMA are finite iff the update
    # is, and a NaN/inf anywhere in it makes its norm (logged anyway) NaN/inf.
    ok = grads_ok & jnp.isfinite(update_norm)
    new_params = optax.apply_updates(state.params, updates)
    params = _select(ok, new_params, state.params)
    opt_state = _select(ok, new_opt_state, state.opt_state)
    ema = state.ema_params
    if ema is not None:
      new_ema = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, new_params)
      ema = _select(ok, new_ema, ema)
    bad = 1 - ok.astype(jnp.int32)
    new_state = state.replace(
        step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema,
        nonfinite_consecutive=(state.nonfinite_consecutive + 1) * bad,
        nonfinite_total=state.nonfinite_total + bad)
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in aux.items()}
    metrics.update(
        loss=loss.astype(jnp.float32), grad_norm=grad_norm,
        update_norm=jnp.where(ok, update_norm, 0.0), param_norm=optax.tree.norm(params),
        learning_rate=jnp.asarray(schedule(state.step), jnp.float32),
        nonfinite=bad.astype(jnp.float32),
        nonfinite_consecutive=new_state.nonfinite_consecutive,
        nonfinite_total=new_state.nonfinite_total)
    return new_state, metrics

  return step


def make_eval_step(loss_fn: LossFn, *, base_rng: jax.Array
                   ) -> Callable[[Any, Mapping[str, jax.Array], jax.Array], dict[str, jax.Array]]:
  """Returns ``eval_step(params, batch, index) -> metrics`` (loss + objective metrics, fp32).

  The RNG is ``fold_in(base_rng, index)`` so evaluation at every checkpoint sees the same noise.
  """
  def eval_step(params, batch, index):
    loss, aux = loss_fn(params, batch, jax.random.fold_in(base_rng, index))
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in aux.items()}
    metrics["loss"] = loss.astype(jnp.float32)
    return metrics
  return eval_step


def jit_train_step(step_fn: Callable, state_shardings: TrainState, batch_sharding: Any,
                   mesh: jax.sharding.Mesh, rules: Sequence[tuple[str, Any]]) -> Callable:
  """Jits ``step_fn`` with the state donated and explicit shardings, under mesh + rules.

  Args:
    step_fn: from ``make_train_step``.
    state_shardings: ``TrainState`` of ``NamedSharding`` (``train_state.state_shardings``).
    batch_sharding: sharding applied to every batch leaf (``mesh.batch_sharding``).
    mesh: the mesh, activated with ``jax.set_mesh`` while tracing/running.
    rules: Flax logical axis rules active while tracing (for ``nn.with_logical_constraint``).

  Returns:
    ``step(state, batch) -> (state, metrics)``; it also exposes ``.lower(state, batch)`` for
    abstract lowering (``ShapeDtypeStruct`` inputs) and ``.jitted``.
  """
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  jitted = jax.jit(step_fn, in_shardings=(state_shardings, batch_sharding),
                   out_shardings=(state_shardings, replicated), donate_argnums=(0,))
  rules = tuple(rules)

  def run(state, batch):
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
      return jitted(state, batch)

  def lower(state, batch):
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
      return jitted.lower(state, batch)

  run.lower = lower
  run.jitted = jitted
  return run
