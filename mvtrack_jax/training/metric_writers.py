"""Metric writers: ``metrics.jsonl``, TensorBoard event files and a terminal progress bar.

Only process 0 writes (``jax.process_index() == 0``); the others get a writer that does nothing,
so multi-host logs are not duplicated. TensorBoard files are written with ``tensorboardX`` —
TensorFlow is not a dependency.

``metrics.jsonl`` has one JSON object per logged step (``{"step": 10, "loss": ..., ...}``). A
resumed run first drops the lines of steps after the restored checkpoint (they were logged by the
interrupted run but their updates were lost), so the file of an interrupted-and-resumed run equals
the file of an uninterrupted run except for wall-clock fields (``steps_per_sec``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import tqdm

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


class MetricWriter:
  """Writes train/eval metrics to jsonl + TensorBoard and drives a tqdm progress bar.

  Args:
    workdir: run directory; writes ``metrics.jsonl``, ``eval_metrics.jsonl``, ``tensorboard/``.
    total_steps: ``num_train_steps`` (for the progress bar's ETA).
    initial_step: step the run starts (or resumes) at.
    resume_step: restored checkpoint step (jsonl lines after it are dropped) or ``None``.
    enabled: write anything at all (default: only process 0).
    tensorboard: write TensorBoard event files.
    progress_bar: show a tqdm bar on stderr.
  """

  def __init__(self, workdir: str, *, total_steps: int, initial_step: int = 0,
               resume_step: int | None = None, enabled: bool | None = None,
               tensorboard: bool = True, progress_bar: bool = True):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._train = self._eval = self._tb = self._bar = None
    if not self.enabled:
      return
    self._train = JsonlWriter(os.path.join(workdir, "metrics.jsonl"), resume_step=resume_step)
    self._eval = JsonlWriter(os.path.join(workdir, "eval_metrics.jsonl"), resume_step=resume_step)
    if tensorboard:
      import tensorboardX  # Local import: optional at runtime, no TensorFlow needed.
      self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"))
    if progress_bar:
      self._bar = tqdm.tqdm(total=total_steps, initial=initial_step, desc="train",
                            unit="step", dynamic_ncols=True, smoothing=0.1)

  def _scalars(self, prefix: str, step: int, metrics: Mapping[str, Any]) -> None:
    if self._tb is None:
      return
    for k, v in metrics.items():
      v = np.asarray(v)
      if v.ndim == 0 and np.issubdtype(v.dtype, np.number):
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
    if self._bar is not None:
      self._bar.close()
