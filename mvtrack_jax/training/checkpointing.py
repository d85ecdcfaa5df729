"""Orbax checkpoints: train state + grain iterator state + config in one composite step.

Layout: ``WORKDIR/checkpoints/<step>/{state,data_iter,config}``; ``state`` is an Orbax
``StandardSave`` of the whole ``TrainState`` (params, optimizer state, EMA, counters),
``data_iter`` the grain iterator state (one JSON file per process, written by
``grain.checkpoint.CheckpointSave``), ``config`` the run's ``ConfigDict`` as JSON (the item names
and the host-side readers used by export and inference live in ``checkpoint_format``). Saving is
asynchronous (device→host copy happens before ``save`` returns, so the state may be donated to the
next step right away) and the manager keeps the last ``max_to_keep`` steps.

Restore targets are ``jax.ShapeDtypeStruct``s carrying the *current* run's shardings, so a
checkpoint written on one mesh or device count is read straight onto another (no replicated
staging copy, unlike maxdiffusion's restore-to-CPU-then-reshard).

A restore runs with ``checkpoint_format.draining_event_loops`` in force, so that a damaged step
fails with its one error and no ``RuntimeError: Event loop is closed`` tracebacks (see there why they came).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import grain
import ml_collections
import orbax.checkpoint as ocp
from etils import epath

from mvtrack_jax.checkpoint_format import CONFIG, DATA_ITER, STATE, draining_event_loops


def config_to_json_dict(config: ml_collections.ConfigDict | Mapping[str, Any]) -> dict[str, Any]:
  """The config as plain JSON-serialisable dict (tuples become lists)."""
  d = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
  return json.loads(json.dumps(d, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


class Checkpointer:
  """Thin owner of an ``ocp.CheckpointManager`` for the trainer's composite checkpoints.

  Args:
    directory: checkpoint root (created; e.g. ``WORKDIR/checkpoints``).
    max_to_keep: keep only the newest ``max_to_keep`` steps (None = all).
    async_save: write in a background thread.
  """

  def __init__(self, directory: str | epath.Path, *, max_to_keep: int | None = 3,
               async_save: bool = True):
    # Orbax needs absolute paths (a relative --workdir such as `out/demo` fails at save time).
    self.directory = epath.Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    """Newest finished checkpoint step, or ``None`` when there is none."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, *, data_iter: Any = None,
           config: ml_collections.ConfigDict | None = None, force: bool = True) -> bool:
    """Starts saving ``state`` (+ iterator state + config) as checkpoint ``step``.

    Args:
      step: step number (the state's ``step``).
      state: the train-state pytree of global ``jax.Array``s.
      data_iter: a grain ``DatasetIterator``/``DataLoaderIterator`` (its position is captured
        now) or ``None``.
      config: run config, stored as JSON (read by ``export``).
      force: save even if the manager's interval policy would skip it.

    Returns:
      Whether a save was started.
    """
    items = {STATE: ocp.args.StandardSave(state)}
    if data_iter is not None:
      items[DATA_ITER] = grain.checkpoint.CheckpointSave(data_iter)
    if config is not None:
      items[CONFIG] = ocp.args.JsonSave(config_to_json_dict(config))
    return self._manager.save(step, args=ocp.args.Composite(**items), force=force)

  def restore(self, abstract_state: Any, *, step: int | None = None,
              data_iter: Any = None) -> Any:
    """Restores the train state (and, in place, the iterator position).

    Args:
      abstract_state: pytree of ``jax.ShapeDtypeStruct`` with the target shardings (any mesh).
      step: which step; default the latest.
      data_iter: grain iterator to reposition, or ``None`` to skip the iterator state.

    Returns:
      The restored state, laid out as ``abstract_state``.

    Raises:
      FileNotFoundError: there is no checkpoint (at ``step``) under the directory.
    """
    step = self.latest_step() if step is None else step
    if step is None or step not in self.all_steps():
      raise FileNotFoundError(
          f"no checkpoint{'' if step is None else f' for step {step}'} in {self.directory}")
    items = {STATE: ocp.args.StandardRestore(abstract_state)}
    if data_iter is not None:
      items[DATA_ITER] = grain.checkpoint.CheckpointRestore(data_iter)
    with draining_event_loops():  # a damaged step: one error, no "Event loop is closed" tracebacks
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    return restored[STATE]

  def move_aside(self, step: int) -> str:
    """Moves checkpoint ``step`` out of the manager's folder (never deletes it) and returns where.

    The destination is ``<directory>_damaged/<step>`` (``-1``, ``-2``, … appended when taken), a
    sibling of the checkpoint folder, so no later run sees the step again.
    """
    self._manager.wait_until_finished()
    source = self.directory / str(step)
    target_root = self.directory.parent / f"{self.directory.name}_damaged"
    target_root.mkdir(parents=True, exist_ok=True)
    target, n = target_root / str(step), 0
    while target.exists():
      n += 1
      target = target_root / f"{step}-{n}"
    os.replace(str(source), str(target))
    self._manager.reload()
    return str(target)

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are committed."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
