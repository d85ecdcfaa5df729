"""Metric writers: ``metrics.jsonl``, TensorBoard event files and a terminal progress bar.

Only process 0 writes (``jax.process_index() == 0``); the others get a writer that does nothing,
so multi-host logs are not duplicated. TensorBoard files are written with ``tensorboardX`` —
TensorFlow is not a dependency.

``metrics.jsonl`` has one JSON object per logged step (``{"step": 10, "loss": ..., ...}``). A
resumed run first drops the lines of steps after the restored checkpoint (they were logged by the
interrupted run but their updates were lost; a run that restored nothing drops them all), so the
file of an interrupted-and-resumed run equals the file of an uninterrupted run except for
wall-clock fields (``steps_per_sec``). TensorBoard is told the same (``purge_step``).

While the progress bar is shown, log lines go above it (``logs_above_progress_bars``) instead of being
appended to the bar's line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

import jax
import numpy as np
import tqdm
from absl import logging as absl_logging

# Fields that depend on wall-clock time (excluded when comparing runs).
TIMING_KEYS: tuple[str, ...] = ("steps_per_sec", "examples_per_sec", "elapsed_sec")


def _to_python(v: Any) -> Any:
  v = np.asarray(v)
  if v.ndim:
    return v.tolist()
  v = v.item()
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)  # JSON has no NaN/inf; keep them visible as strings ("nan", "inf").
  return v


class JsonlWriter:
  """Appends one JSON object per call to ``path`` (flushed, so a crash loses nothing).

  Args:
    path: file (parent created).
    resume_step: when set, lines with ``step > resume_step`` are dropped first.
  """

  def __init__(self, path: str, *, resume_step: int | None = None):
    self.path = path
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if resume_step is not None and os.path.exists(path):
      truncate_jsonl(path, resume_step)
    self._f = open(path, "a", encoding="utf-8")

  def write(self, step: int, metrics: Mapping[str, Any]) -> None:
    record = {"step": int(step)}
    record.update({k: _to_python(v) for k, v in sorted(metrics.items())})
    self._f.write(json.dumps(record) + "\n")
    self._f.flush()

  def close(self) -> None:
    self._f.close()


def truncate_jsonl(path: str, last_step: int) -> None:
  """Rewrites ``path`` keeping only records with ``step <= last_step`` (atomic replace)."""
  with open(path, encoding="utf-8") as f:
    lines = [l for l in f if l.strip()]
  kept = [l for l in lines if json.loads(l)["step"] <= last_step]
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.writelines(kept)
  os.replace(tmp, path)


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """All records of a ``metrics.jsonl`` file."""
  with open(path, encoding="utf-8") as f:
    return [json.loads(l) for l in f if l.strip()]


class _LinesAboveBars:
  """A text stream that writes each complete line with ``tqdm.write`` to the stream it wraps.

  ``tqdm.write`` clears the bars on that terminal, writes the line and redraws them, so the line lands
  above the bar rather than after the bar's text. Anything but ``write`` (``isatty``, ``fileno``,
  ``encoding``) is the wrapped stream's.
  """

  def __init__(self, stream: TextIO):
    self.wrapped, self._partial = stream, ""

  def write(self, text: str) -> int:
    head, newline, self._partial = (self._partial + text).rpartition("\n")
    if newline:
      tqdm.tqdm.write(head, file=self.wrapped)
    return len(text)

  def flush(self) -> None:
    self.wrapped.flush()

  def finish(self) -> None:
    """Writes a last unterminated piece as it is."""
    if self._partial:
      self.wrapped.write(self._partial)
      self._partial = ""

  def __eq__(self, other: Any) -> bool:
    """Equal to the wrapped stream: absl compares its handler's stream with ``sys.stderr`` to decide
    whether to write a record a second time, and to leave ``sys.stderr`` open on close."""
    return other is self or other == self.wrapped

  def __hash__(self) -> int:
    return hash(self.wrapped)

  def __getattr__(self, name: str) -> Any:
    if name == "wrapped":  # not set yet (copy, pickle): no recursion
      raise AttributeError(name)
    return getattr(self.wrapped, name)


@contextlib.contextmanager
def logs_above_progress_bars() -> Iterator[None]:
  """Inside, the root logger's console handlers write each line above tqdm bars instead of into their line.

  Under ``absl.app.run`` the console handler is absl's ``ABSLHandler``, whose ``python_handler`` does
  the writing, to the ``sys.stderr`` of its creation; with ``logging.basicConfig`` it is a
  ``StreamHandler``. Each gets a ``_LinesAboveBars`` stream and its own one back on exit.
  ``tqdm.contrib.logging.logging_redirect_tqdm`` does not do: it only knows ``StreamHandler``s, so it
  leaves ``ABSLHandler`` writing into the bar, and handed absl's logger (which has no handler of its
  own; its records propagate to the root) it would add a second handler and print every line twice.
  ``sys.stderr`` itself is left alone (a bar created inside would write through the wrapper), so
  what absl writes there directly (before flag parsing, or with ``--logtostderr``) is not moved.
  """
  consoles = [s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s is not None]
  swapped = []
  for handler in logging.root.handlers:
    writer = handler.python_handler if isinstance(handler, absl_logging.ABSLHandler) else handler
    if isinstance(writer, logging.StreamHandler) and any(writer.stream is c for c in consoles):
      wrapper = _LinesAboveBars(writer.stream)
      writer.setStream(wrapper)
      swapped.append((writer, wrapper))
  try:
    yield
  finally:
    for writer, wrapper in swapped:
      wrapper.finish()
      if writer.stream is wrapper:  # unless someone pointed the handler elsewhere meanwhile
        writer.setStream(wrapper.wrapped)


class MetricWriter:
  """Writes train/eval metrics to jsonl + TensorBoard and drives a tqdm progress bar.

  Args:
    workdir: run directory; writes ``metrics.jsonl``, ``eval_metrics.jsonl``, ``tensorboard/``.
    total_steps: ``num_train_steps`` (for the progress bar's ETA).
    initial_step: step the run starts (or resumes) at.
    resume_step: restored checkpoint step (jsonl lines and TensorBoard events after it are dropped;
      ``-1`` for a run starting afresh drops them all) or ``None`` (keep everything).
    enabled: write anything at all (default: only process 0).
    tensorboard: write TensorBoard event files.
    progress_bar: show a tqdm bar on stderr; log lines are written above it while it is shown
      (``logs_above_progress_bars``), so a warning does not break the bar's line.
  """

  def __init__(self, workdir: str, *, total_steps: int, initial_step: int = 0,
               resume_step: int | None = None, enabled: bool | None = None,
               tensorboard: bool = True, progress_bar: bool = True):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._train = self._eval = self._tb = self._bar = None
    self._above_bar = contextlib.ExitStack()
    if not self.enabled:
      return
    self._train = JsonlWriter(os.path.join(workdir, "metrics.jsonl"), resume_step=resume_step)
    self._eval = JsonlWriter(os.path.join(workdir, "eval_metrics.jsonl"), resume_step=resume_step)
    if tensorboard:
      import tensorboardX  # Local import: optional at runtime, no TensorFlow needed.
      # purge_step: TensorBoard hides the events an earlier attempt wrote from the resumed step on, as the
      # jsonl files drop their lines, so each step shows once.
      self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"),
                                            purge_step=None if resume_step is None else resume_step + 1)
    if progress_bar:
      self._bar = tqdm.tqdm(total=total_steps, initial=initial_step, desc="train", file=sys.stderr,
                            unit="step", dynamic_ncols=True, smoothing=0.1)
      self._above_bar.enter_context(logs_above_progress_bars())

  def _scalars(self, prefix: str, step: int, metrics: Mapping[str, Any]) -> None:
    if self._tb is None:
      return
    for k, v in metrics.items():
      v = np.asarray(v)
      # Non-finite values (a skipped step's loss) stay in the jsonl files as "nan"/"inf"; TensorBoard would
      # warn once per value and plot nothing.
      if v.ndim == 0 and np.issubdtype(v.dtype, np.number) and np.isfinite(v):
        self._tb.add_scalar(f"{prefix}/{k}", float(v), int(step))
    self._tb.flush()

  def write_train(self, step: int, metrics: Mapping[str, Any]) -> None:
    """Logs train metrics of ``step`` (jsonl + ``train/*`` TensorBoard scalars + bar postfix)."""
    if not self.enabled:
      return
    self._train.write(step, metrics)
    self._scalars("train", step, metrics)
    if self._bar is not None and "loss" in metrics:
      self._bar.set_postfix(loss=f"{float(np.asarray(metrics['loss'])):.4g}", refresh=False)

  def write_eval(self, step: int, metrics: Mapping[str, Any]) -> None:
    """Logs evaluation metrics of ``step`` (``eval_metrics.jsonl`` + ``eval/*`` scalars)."""
    if not self.enabled:
      return
    self._eval.write(step, metrics)
    self._scalars("eval", step, metrics)

  def status(self, text: str) -> None:
    """Shows ``text`` after the progress bar (e.g. ``compiling…`` while the bar cannot move); ``""`` clears it."""
    if self._bar is not None:
      self._bar.set_postfix_str(text, refresh=True)

  def advance(self, n: int = 1) -> None:
    """Moves the progress bar by ``n`` steps."""
    if self._bar is not None:
      self._bar.update(n)

  def close(self) -> None:
    if not self.enabled:
      return
    self._train.close()
    self._eval.close()
    if self._tb is not None:
      self._tb.close()
    self._above_bar.close()
    if self._bar is not None:
      self._bar.close()
