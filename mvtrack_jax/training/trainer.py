"""The training loop: mesh → state (fresh or resumed) → jitted steps → logs, evals, checkpoints.

``train_and_evaluate(config, workdir)`` is the one canonical loop (big_vision style) used by
``python -m mvtrack_jax.train`` for the CPU demo and for multi-host GPU/TPU runs alike:

1. build the mesh from ``config.mesh``; check ``batch_size`` divides over data×fsdp and processes;
2. build the task (model + objective + data) and the optimizer;
3. restore the latest checkpoint in ``WORKDIR/checkpoints`` onto *this* mesh (train state and the
   grain iterator position) or initialise a fresh sharded state;
4. loop: next per-process batch → global arrays → one jitted, donated train step; every
   ``log_every_steps`` write metrics (process 0), every ``eval_every_steps`` (and before the
   first step, ``eval_at_start``) evaluate on the validation split, every ``checkpoint_every_steps`` and at the end save (async);
   a new run whose task has ``trunk_gradient_norms`` (λ_feat > 0) computes them on its first batch and logs them
   once, with the first logged step;
5. stop with ``NonFiniteError`` after ``max_consecutive_nonfinite`` skipped steps in a row
   (without saving the bad state; the last checkpoint stays the newest), or cleanly after
   ``stop_after_steps`` / on SIGTERM (pre-emption), saving first.

Nothing is saved that cannot be resumed from: the train step never keeps a non-finite update
(``train_step``), a state with NaN/inf values is never checkpointed, and a restored state is
checked for them before the run continues from it (a poisoned step is moved aside like a damaged
one). The config is validated and completed with the schema's defaults before any work (``run_config``).

Logged values are those of the logged step itself (no averaging over the interval), so a run
resumed from any checkpoint reproduces the uninterrupted ``metrics.jsonl`` exactly (wall-clock
fields aside, and the once-per-run gradient norms when the run stopped before its first logged step).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from mvtrack_jax import checkpoint_format
from mvtrack_jax import run_config
from mvtrack_jax.data import video_io
from mvtrack_jax.errors import ConfigError
from mvtrack_jax.training import checkpointing
from mvtrack_jax.training import mesh as mesh_lib
from mvtrack_jax.training import metric_writers
from mvtrack_jax.training import optimizer as optimizer_lib
from mvtrack_jax.training import train_state as state_lib
from mvtrack_jax.training import train_step as step_lib
from mvtrack_jax.training.task import Task


class NonFiniteError(FloatingPointError):
  """Raised when too many consecutive train steps had a non-finite loss or gradient."""


class TrainingStopped(Exception):
  """A run stopped by SIGTERM or SIGINT after checkpointing: rerun with the same workdir to resume.

  Attributes:
    step: the step checkpointed; signal_name: ``"SIGTERM"`` or ``"SIGINT"``.
  """

  def __init__(self, step: int, signal_name: str, checkpoint_dir: str):
    self.step, self.signal_name = step, signal_name
    super().__init__(f"stopped by {signal_name} at step {step}; checkpoint in {checkpoint_dir}; rerun with the same "
                     "--workdir to resume")


class _PreemptionFlag:
  """Set by SIGTERM (SLURM / TPU maintenance) or a first SIGINT (Ctrl-C): the loop saves and stops at
  the next log step. A second SIGINT aborts at once (``KeyboardInterrupt``, no checkpoint)."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = None  # the name of the first signal received
    self._previous = {}

  def install(self) -> None:
    for sig in self.SIGNALS:
      if sig == signal.SIGINT and signal.getsignal(sig) is signal.SIG_IGN:
        continue  # launched with Ctrl-C ignored (a background job of a script): keep ignoring it, as Python does
      try:
        self._previous[sig] = signal.signal(sig, self._handler)
      except ValueError:  # Not the main thread (e.g. some test runners): no handler.
        pass

  def _handler(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    if self.requested is not None and signum == signal.SIGINT:
      self.uninstall()
      raise KeyboardInterrupt(f"second {name}: aborting without a checkpoint")
    logging.warning("%s received: will checkpoint and stop at the next log step (Ctrl-C again aborts at once)", name)
    self.requested = self.requested or name

  def uninstall(self) -> None:
    for sig, previous in self._previous.items():
      if previous is not None:
        signal.signal(sig, previous)
    self._previous = {}

  def any_process(self) -> bool:
    """Whether any process was signalled (a collective when there are several processes)."""
    if jax.process_count() == 1:
      return self.requested is not None
    flags = multihost_utils.process_allgather(np.array([self.requested is not None], np.int32))
    return bool(np.asarray(flags).any())


def base_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(init_key, train_key, eval_key)`` derived from the config seed."""
  root = jax.random.key(seed)
  return (jax.random.fold_in(root, 0), jax.random.fold_in(root, 1), jax.random.fold_in(root, 2))


def build_task(config: ml_collections.ConfigDict) -> Task:
  """The real MVTrack4Gen task for ``config`` (imported lazily: heavy model code)."""
  from mvtrack_jax.training import tasks  # pylint: disable=g-import-not-at-top
  return tasks.build_task(config)


def build_train_step(config: ml_collections.ConfigDict, task: Task, tx, schedule, abstract_state,
                     shardings, mesh, *, train_key: jax.Array):
  """The jitted, sharded train step of ``task`` (trainable set from ``config.optimizer``).

  Shared by the trainer and ``mvtrack_jax.bench`` so that the benchmark times exactly the step
  that training runs.
  """
  return step_lib.jit_train_step(
      step_lib.make_train_step(
          task.loss_fn, tx, schedule, base_rng=train_key,
          ema_decay=float(config.ema_decay),
          trainable=optimizer_lib.trainable_mask(
              abstract_state.params, tuple(config.optimizer.trainable_patterns))),
      shardings, mesh_lib.batch_sharding(mesh), mesh, tuple(task.logical_axis_rules))


def _host_metrics(metrics: dict[str, jax.Array]) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(metrics).items()}


def evaluate(config: ml_collections.ConfigDict, task: Task, params: Any,
             mesh: jax.sharding.Mesh, eval_step: Any, per_process_batch: int) -> dict[str, float]:
  """Mean validation metrics over ``config.eval_steps`` batches (a fresh iterator each time).

  Returns:
    ``{name: mean}``; non-finite batches are excluded per metric.
  """
  it = task.make_iterator("validation", per_process_batch, int(config.seed))
  sums: dict[str, float] = {}
  counts: dict[str, int] = {}
  for i in range(int(config.eval_steps)):
    try:
      local = next(it)
    except StopIteration:
      break
    out = _host_metrics(eval_step(params, mesh_lib.make_global_batch(local, mesh), i))
    for k, v in out.items():
      if np.isfinite(v):
        sums[k] = sums.get(k, 0.0) + v
        counts[k] = counts.get(k, 0) + 1
  if not sums:
    logging.warning("evaluation produced no batch: the %r split of the evaluation source has fewer examples than "
                    "one batch of %d per process (batches are never partial)", config.data.eval_split,
                    per_process_batch)
  return {k: sums[k] / counts[k] for k in sums}


class CheckpointError(RuntimeError):
  """No checkpoint of a workdir restores (each step's cause is in the message)."""


_state_is_finite = jax.jit(step_lib.all_finite)


def state_is_finite(state: Any) -> bool:
  """Whether every floating-point value of a (sharded) train state is finite (one device→host scalar)."""
  return bool(jax.device_get(_state_is_finite(state)))


def restore_newest(ckpt: checkpointing.Checkpointer, abstract_state: Any, make_iterator: Any,
                   config: ml_collections.ConfigDict | None = None) -> tuple[int | None, Any, Any]:
  """Restores the newest checkpoint that restores, moving damaged newer steps aside.

  With ``config``, each step's stored config is compared first (``check_resumed_config``): a run
  resumed with another architecture or objective is an error, and its checkpoints are left alone
  (their restore would fail on the different parameter tree, which is not damage).

  A step that fails to restore (a missing or corrupt data file, manifest or iterator state) or
  restores NaN/inf values (saved by an older version without the update guard) is logged in one
  line naming the step and the cause, moved to ``checkpoints_damaged/`` (never deleted;
  ``Checkpointer.move_aside``) and the previous step is tried; ``metrics.jsonl`` is later cut back to
  the restored step, so no step is logged twice.

  Returns:
    ``(step, state, train_iterator)``; ``(None, None, fresh iterator)`` when there is no checkpoint.

  Raises:
    CheckpointError: checkpoints exist but none restores.
  """
  failures = []
  for step in sorted(ckpt.all_steps(), reverse=True):
    changes = []
    if config is not None:
      try:
        stored = checkpoint_format.read_config(ckpt.directory, step)
      except Exception:  # pylint: disable=broad-except  (a damaged config item: the restore below reports it)
        stored = None
      if stored is not None:
        changes = check_resumed_config(stored, config, log=False)  # ValueError: not damage, nothing is moved
    data_iter = make_iterator()  # a failed restore may have moved an iterator half-way
    try:
      state = ckpt.restore(abstract_state, step=step, data_iter=data_iter)
      if not state_is_finite(state):
        raise FloatingPointError("its parameters or optimizer state hold NaN/inf values")
    except Exception as e:  # pylint: disable=broad-except  (any damage; the cause is reported)
      cause = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
      where = ckpt.move_aside(step) if jax.process_index() == 0 else "(moved by process 0)"
      logging.error("checkpoint step %d does not restore (%s); moved it to %s, trying the previous step",
                    step, cause, where)
      failures.append(f"step {step}: {cause}")
      continue
    _warn_changes(changes)  # of the step resumed from, once
    logging.info("resuming from %s step %d", ckpt.directory, step)
    return step, state, data_iter
  if failures:
    raise CheckpointError(f"no checkpoint in {ckpt.directory} restores ({'; '.join(failures)}); the damaged steps "
                          f"are in {ckpt.directory}_damaged/. Rerun to start this run afresh from step 0 (its "
                          "metrics files are cut back), start a new run in another --workdir, or repair them.")
  return None, None, make_iterator()


# Config blocks that define what a checkpoint holds (marked resume_fixed in the schema: a change is an error on
# resume) and blocks whose change on resume is allowed but reported.
_RESUME_FIXED = run_config.resume_fixed_fields()
_RESUME_REPORTED = ("optimizer", "num_train_steps", "batch_size", "seed", "ema_decay", "mesh", "data", "image")


def check_resumed_config(stored: Mapping[str, Any], config: ml_collections.ConfigDict, *,
                         log: bool = True) -> list[tuple[str, Any, Any]]:
  """Compares a resumed run's config with the one stored in its checkpoint.

  Returns:
    The allowed changes ``(field, old, new)``, also logged as warnings unless ``log`` is False
    (``restore_newest`` logs those of the step it restores only, not once per damaged step tried).

  Raises:
    ValueError: what the checkpoint holds changed — the architecture or the objective (``model``,
      ``head``, ``objective``, ``autoencoder``, ``text.context_length``), the trainable set
      (``optimizer.trainable_patterns``) or the EMA turned on/off — naming every changed field;
      other optimizer, loop and data changes are logged as warnings ``field: old → new``.
  """
  old = flax.traverse_util.flatten_dict(checkpointing.config_to_json_dict(run_config.complete(stored)), sep=".")
  new = flax.traverse_util.flatten_dict(checkpointing.config_to_json_dict(run_config.complete(config)), sep=".")
  changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
  under = lambda key, blocks: any(key == b or key.startswith(b + ".") for b in blocks)
  fixed = [k for k in changed if under(k, _RESUME_FIXED)]
  if "ema_decay" in changed and (float(old.get("ema_decay") or 0) > 0) != (float(new.get("ema_decay") or 0) > 0):
    fixed.append("ema_decay")  # turning the EMA on or off changes what the checkpoint holds
  if fixed:
    raise ValueError("the run in this workdir was trained with another architecture or objective; changed: "
                     + ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in fixed)
                     + ". Use a new --workdir, or the stored config.json, to resume.")
  reported = [(k, old.get(k), new.get(k)) for k in changed if under(k, _RESUME_REPORTED)]
  if log:
    _warn_changes(reported)
  return reported


def _warn_changes(changes: list[tuple[str, Any, Any]]) -> None:
  for k, old, new in changes:
    logging.warning("resuming with a changed %s: %r -> %r", k, old, new)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       task: Task | None = None) -> dict[str, float]:
  """Trains (or resumes training) according to ``config``, writing everything to ``workdir``.

  Args:
    config: run config (see ``configs/default.py`` for every field).
    workdir: run directory: ``checkpoints/``, ``metrics.jsonl``, ``eval_metrics.jsonl``,
      ``tensorboard/``, ``config.json``.
    task: model/objective/data; default ``build_task(config)``.

  Returns:
    The last logged train metrics (host floats), plus ``step``.

  Raises:
    NonFiniteError: ``config.max_consecutive_nonfinite`` consecutive non-finite steps.
    ValueError: inconsistent config (mesh vs devices, batch size vs mesh/processes), or a resume
      whose architecture or objective differs from the checkpoint's (``check_resumed_config``).
    CheckpointError: checkpoints exist but none restores (``restore_newest``).
    ConfigError: an invalid config (``run_config.parse``: unknown fields, wrong types, values that cannot
      train), before any work.
    TrainingStopped: SIGTERM or a first SIGINT stopped the run after checkpointing (one received while
      the run starts up — building the task, restoring, compiling — stops it at the first log step).
    KeyboardInterrupt: a second SIGINT.
  """
  config = run_config.complete(config)
  preemption = _PreemptionFlag()
  preemption.install()  # from the start: a SIGTERM while the run starts up still ends in a clean stop, exit 75
  try:
    return _train_and_evaluate(config, workdir, task, preemption)
  finally:
    preemption.uninstall()


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, task: Task | None,
                        preemption: _PreemptionFlag) -> dict[str, float]:
  """``train_and_evaluate`` inside the installed signal handlers."""
  os.makedirs(workdir, exist_ok=True)
  total_steps = int(config.num_train_steps)
  mesh = mesh_lib.make_mesh(tuple(config.mesh.shape), tuple(config.mesh.axes))
  per_process_batch = mesh_lib.check_batch_size(mesh_lib.global_batch_size(int(config.batch_size), mesh), mesh)
  task = task or build_task(config)
  rules = tuple(task.logical_axis_rules)
  logging.info("task %s on mesh %s (%d processes), per-process batch %d", task.name,
               dict(mesh.shape), jax.process_count(), per_process_batch)

  tx, schedule = optimizer_lib.make_optimizer(config.optimizer, total_steps)
  ema_decay = float(config.ema_decay)
  use_ema = ema_decay > 0
  init_key, train_key, eval_key = base_keys(int(config.seed))
  abstract_state, shardings = state_lib.state_shardings(
      task.init_params, tx, use_ema=use_ema, mesh=mesh, rules=rules)

  ckpt = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), max_to_keep=int(config.keep_checkpoints),
      async_save=bool(config.async_checkpointing))
  resume_step, state, train_iter = restore_newest(
      ckpt, abstract_state, lambda: task.make_iterator("train", per_process_batch, int(config.seed)), config)
  if resume_step is None:
    state, _ = state_lib.init_train_state(
        task.init_params, tx, init_key, use_ema=use_ema, mesh=mesh, rules=rules)
    if task.pretrained_params is not None:  # a new run starts from pretrained weights; a resume never does
      values, report = task.pretrained_params()
      state = state_lib.overlay_params(state, values)
      logging.info("initialised %d tensors from pretrained weights; freshly initialised: %s; ignored: %s",
                   len(report["loaded"]), list(report["fresh"]) or "none", list(report["ignored"]) or "none")
  start_step = int(jax.device_get(state.step))
  if start_step > total_steps:  # it would train nothing and report "trained to step num_train_steps"
    raise ConfigError(
        f"--config.num_train_steps: got {total_steps}, but the checkpoint in {ckpt.directory} is already at step "
        f"{start_step}; pass at least {start_step} to continue this run, or use another --workdir")
  if jax.process_index() == 0:
    with video_io.atomic_output(os.path.join(workdir, "config.json")) as tmp:
      with open(tmp, "w", encoding="utf-8") as f:
        json.dump(checkpointing.config_to_json_dict(config), f, indent=2)

  train_step = build_train_step(config, task, tx, schedule, abstract_state, shardings, mesh,
                                train_key=train_key)
  eval_fn = task.eval_fn
  if eval_fn is None:
    eval_fn = step_lib.make_eval_step(task.loss_fn, base_rng=eval_key)
  else:
    raw_eval = eval_fn
    eval_fn = lambda p, b, i: raw_eval(p, b, jax.random.fold_in(eval_key, i))
  eval_jit = jax.jit(eval_fn, in_shardings=(shardings.params, mesh_lib.batch_sharding(mesh),
                                            None))

  def eval_step(params, batch, index):
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
      return eval_jit(params, batch, jnp.int32(index))

  first_step_metrics: dict[str, float] = {}  # logged with the first train record of a new run

  def log_trunk_gradients(params, batch):
    """The task's once-per-run gradient diagnostics on the first batch (``Task.trunk_gradient_norms``)."""
    fn = jax.jit(task.trunk_gradient_norms, in_shardings=(shardings.params, mesh_lib.batch_sharding(mesh), None))
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
      values = _host_metrics(fn(params, batch, jax.random.fold_in(train_key, 0)))
    logging.info("gradient norms on the shared trunk at the first step: %s",
                 ", ".join(f"{k} = {v:.4g}" for k, v in sorted(values.items())))
    first_step_metrics.update(values)

  # A run that restored nothing starts at step 0: lines an earlier attempt logged (before a double Ctrl-C,
  # or from checkpoints that all turned out damaged) are dropped, so every step is logged once.
  writer = metric_writers.MetricWriter(
      workdir, total_steps=total_steps, initial_step=start_step,
      resume_step=resume_step if resume_step is not None else -1,
      tensorboard=bool(config.tensorboard), progress_bar=bool(config.progress_bar))
  log_every = max(int(config.log_every_steps), 1)
  ckpt_every = int(config.checkpoint_every_steps)
  eval_every = int(config.eval_every_steps)
  max_bad = int(config.max_consecutive_nonfinite)
  stop_after = int(config.stop_after_steps)
  last_logged: dict[str, float] = {}
  previous_metrics = None
  t_last, steps_since = time.perf_counter(), 0

  def check_nonfinite(metrics, step):
    consecutive = int(jax.device_get(metrics["nonfinite_consecutive"]))
    if consecutive:
      logging.warning("step %d: non-finite loss, gradient or update; update skipped (%d in a row, %d total)",
                      step, consecutive, int(jax.device_get(metrics["nonfinite_total"])))
    if max_bad > 0 and consecutive >= max_bad:
      raise NonFiniteError(
          f"{consecutive} consecutive train steps (up to step {step}) had a non-finite loss, gradient or "
          f"update (max_consecutive_nonfinite={max_bad}); stopping. The newest checkpoint in "
          f"{ckpt.directory} (step {ckpt.latest_step()}) holds the last good state.")

  try:
    step = start_step
    if eval_every > 0 and step == 0 and bool(config.eval_at_start):
      writer.write_eval(0, evaluate(config, task, state.params, mesh, eval_step, per_process_batch))
    while step < total_steps:
      local = next(train_iter)
      batch = mesh_lib.make_global_batch(local, mesh)
      if step == 0 and task.trunk_gradient_norms is not None:
        writer.status("gradient norms of each loss term…")
        log_trunk_gradients(state.params, batch)
      if step == start_step:  # the call compiles first (a minute for the demo on 2 cores): say so on the bar
        writer.status("compiling the train step…")
      state, metrics = train_step(state, batch)
      if step == start_step:
        writer.status("")
      step += 1
      steps_since += 1
      writer.advance()
      if previous_metrics is not None:  # One step behind: keeps a step in flight.
        check_nonfinite(previous_metrics, step - 1)
      previous_metrics = metrics
      is_last = step == total_steps
      stop_now = (stop_after > 0 and step >= stop_after) or (
          (step % log_every == 0 or is_last) and preemption.any_process())
      if step % log_every == 0 or is_last:
        check_nonfinite(metrics, step)
        host = _host_metrics(metrics)
        now = time.perf_counter()
        host["steps_per_sec"] = steps_since / max(now - t_last, 1e-9)
        t_last, steps_since = now, 0
        host.update(first_step_metrics)
        first_step_metrics.clear()
        writer.write_train(step, host)
        last_logged = dict(host, step=step)
      if eval_every > 0 and (step % eval_every == 0 or is_last):
        writer.write_eval(step, evaluate(config, task, state.params, mesh, eval_step,
                                         per_process_batch))
      if (ckpt_every > 0 and step % ckpt_every == 0) or is_last or stop_now:
        check_nonfinite(metrics, step)
        if not np.isfinite(float(jax.device_get(metrics["param_norm"]))):  # the step guard keeps this from happening
          raise NonFiniteError(f"step {step}: the train state holds NaN/inf values; not checkpointing it. The "
                               f"newest checkpoint in {ckpt.directory} (step {ckpt.latest_step()}) is the last "
                               "good state.")
        ckpt.save(step, state, data_iter=train_iter, config=config)
      if stop_now and not is_last:
        logging.warning("stopping at step %d (pre-emption / stop_after_steps); rerun with the "
                        "same workdir to resume", step)
        break
  finally:
    writer.close()
    ckpt.close()
  if preemption.requested is not None and step < total_steps:
    raise TrainingStopped(step, preemption.requested, str(ckpt.directory))
  return last_logged
