"""The on-disk format of a training checkpoint and of an export, and the host-side readers of both (a leaf: training
writes the format, inference and export read it, neither imports the other).

- A training step: ``WORKDIR/checkpoints/<step>/{state,data_iter,config}`` (``STATE``, ``DATA_ITER``, ``CONFIG``),
  Orbax items written by ``training.checkpointing``; :func:`read_params` reads some top-level fields of the train
  state as numpy arrays with no mesh, :func:`read_config` the stored config.
- An export (``python -m mvtrack_jax.export --format=orbax``): ``DIR/params/``, ``DIR/config.json``,
  ``DIR/export.json``; :func:`load_exported`.

Orbax restores run inside :func:`draining_event_loops`, so a damaged step reports its one error and no
``Event loop is closed`` tracebacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging as std_logging
import os
from typing import Any, Iterator

from etils import epath
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from mvtrack_jax import errors


class _ReadOnlyNoise(std_logging.Filter):
  """Drops Orbax's warnings about the read-only managers this module opens on purpose (they describe
  the requested mode, not a problem) and about the state item's absent per-item metadata file."""

  _BENIGN = ("CheckpointManagerOptions.read_only=True, setting", "Given directory is read only=",
             "Metadata file does not exist:")

  def filter(self, record: std_logging.LogRecord) -> bool:
    return not str(record.getMessage()).startswith(self._BENIGN)


std_logging.getLogger("absl").addFilter(_ReadOnlyNoise())  # Orbax logs through absl's logger


# Items of one training checkpoint step: WORKDIR/checkpoints/<step>/{state,data_iter,config}.
STATE = "state"
DATA_ITER = "data_iter"
CONFIG = "config"


# How long a closing restore loop waits for reads still in flight (they are local file reads that have
# already failed or are about to; the limit only keeps a wedged filesystem from hanging a fallback).
_DRAIN_TIMEOUT_S = 300.0


class _DrainingEventLoop(asyncio.SelectorEventLoop):
  """An event loop whose ``close`` first lets its pending tasks finish.

  Orbax restores a pytree in a fresh event loop (``asyncio_utils.run_sync``) as one
  ``asyncio.gather`` over TensorStore opens and reads, one per array, and closes the loop as soon as
  that gather returns. When the step is damaged (a missing ``manifest.ocdbt`` makes every array's
  open fail) the gather raises with the first error while the other arrays' TensorStore futures are
  still in flight; each then completes on a TensorStore thread, calls ``loop.call_soon_threadsafe``
  on the closed loop and prints a ``RuntimeError: Event loop is closed`` traceback (issue #15 counted
  202 after one damaged step, hiding the one line that names the damage), and tasks that finished
  unobserved log ``Task exception was never retrieved``. Waiting for those tasks here, before the loop
  closes, lets every future deliver its result to a live loop; their errors are the same damage and
  are dropped (``return_exceptions``), the restore still raises its first one. Cancelling them
  instead (``asyncio.run``'s teardown) is not enough: a TensorStore read already running still calls
  back later. The cost is the rest of the damaged step's reads, no more I/O than a whole restore.
  """

  def close(self) -> None:
    if not self.is_closed() and not self.is_running():
      pending = [t for t in asyncio.all_tasks(self) if not t.done()]
      if pending:
        drain = asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
          self.run_until_complete(asyncio.wait_for(drain, _DRAIN_TIMEOUT_S))
    super().close()


class _DrainingEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
  _loop_factory = _DrainingEventLoop


@contextlib.contextmanager
def draining_event_loops() -> Iterator[None]:
  """Event loops created inside (Orbax's restore loops) finish their tasks before they close.

  A policy rather than a patch of Orbax: ``asyncio.new_event_loop`` is the one public hook between
  Orbax's ``run_sync`` and the loop it closes; the previous policy comes back on exit.
  """
  previous = asyncio.get_event_loop_policy()
  asyncio.set_event_loop_policy(_DrainingEventLoopPolicy())
  try:
    yield
  finally:
    asyncio.set_event_loop_policy(previous)


def read_params(directory: str | os.PathLike[str], *, step: int | None = None,
                keys: tuple[str, ...] = ("params",)) -> tuple[int, dict[str, Any]]:
  """Reads only some top-level fields of a checkpoint's train state as numpy arrays.

  No optimizer state is read, no mesh is needed (for export / inference on any machine).

  Args:
    directory: checkpoint root (``WORKDIR/checkpoints``).
    step: step to read; default the latest.
    keys: ``TrainState`` fields to read (``"params"``, ``"ema_params"``).

  Returns:
    ``(step, {key: numpy pytree})``.

  Raises:
    FileNotFoundError: no checkpoint; KeyError: a requested field is absent (e.g. EMA off).
  """
  directory = epath.Path(directory).absolute()  # Orbax needs absolute paths.
  with ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(read_only=True)) as manager:
    step = _checked_step(manager, directory, step)
    state_dir = directory / str(step) / STATE
    meta = ocp.PyTreeCheckpointer().metadata(state_dir)
    tree = meta.item_metadata.tree if hasattr(meta, "item_metadata") else meta.tree
    if "ema_params" in keys and tree.get("ema_params") is None:
      raise KeyError(f"checkpoint {state_dir} holds no EMA weights: the run was trained with config.ema_decay = 0; "
                     "drop --use_ema (or train with --config.ema_decay=0.999)")
    missing = [k for k in keys if k not in tree or tree[k] is None]
    if missing:
      raise KeyError(f"checkpoint {state_dir} has no {missing}; its fields are "
                     f"{sorted(k for k in tree if tree[k] is not None)}")
    target = {k: tree[k] for k in keys}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
    with draining_event_loops():  # a damaged step: its one error, no "Event loop is closed" tracebacks
      restored = ocp.PyTreeCheckpointer().restore(
          state_dir, args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True))
  return step, {k: restored[k] for k in keys}


def read_config(directory: str | os.PathLike[str], step: int | None = None) -> dict[str, Any]:
  """The config JSON stored with checkpoint ``step`` (default latest) under ``directory``.

  Raises:
    FileNotFoundError: no checkpoint (at ``step``).
  """
  directory = epath.Path(directory).absolute()
  with ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(read_only=True)) as manager:
    step = _checked_step(manager, directory, step)
    return dict(manager.restore(step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()}))[CONFIG])


def _checked_step(manager: ocp.CheckpointManager, directory: Any, step: int | None) -> int:
  """``step``, or the newest saved step when None.

  Raises:
    FileNotFoundError: no checkpoint, or ``step`` was never saved (the message lists the saved steps).
  """
  saved = sorted(manager.all_steps())
  if not saved:
    raise FileNotFoundError(f"no checkpoint in {directory}")
  if step is None:
    return saved[-1]
  if step not in saved:
    raise FileNotFoundError(f"--step {step}: no checkpoint of that step in {directory}; the saved steps are {saved}")
  return int(step)


def load_exported(path: str | os.PathLike[str]) -> tuple[Any, ml_collections.ConfigDict, dict[str, Any]]:
  """Loads an export directory written by ``mvtrack_jax.export --format=orbax``.

  Returns:
    ``(params, config, info)``: params as host numpy arrays (exported dtype), the training
    config as a ``ConfigDict``, and ``export.json``.

  Raises:
    FileNotFoundError: ``path`` is not an export directory.
    errors.UserError: its ``config.json`` or ``export.json`` is not valid JSON (naming the file).
  """
  p = epath.Path(path).absolute()
  if not (p / "params").exists() or not (p / "config.json").exists():
    raise FileNotFoundError(f"{p} is not an export directory (expected params/ and config.json)")
  meta = ocp.StandardCheckpointer().metadata(p / "params")
  tree = meta.item_metadata.tree if hasattr(meta, "item_metadata") else meta
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  params = ocp.PyTreeCheckpointer().restore(
      p / "params", args=ocp.args.PyTreeRestore(item=tree, restore_args=restore_args))
  config = ml_collections.ConfigDict(_read_json(p / "config.json"))
  info = _read_json(p / "export.json") if (p / "export.json").exists() else {}
  return params, config, info


def _read_json(path: epath.Path) -> Any:
  """``path``'s JSON; a damaged file is a ``UserError`` naming it (not a bare ``JSONDecodeError``)."""
  try:
    return json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise errors.UserError(f"{path}: not valid JSON ({e}); the export is damaged: export it again") from None
