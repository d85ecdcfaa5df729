"""Checks of a run config's loop and optimizer values, made before any model is built or compiled.

A value that cannot train (a NaN or non-positive learning rate, ``keep_checkpoints = 0``, a step
count below 1, an EMA decay of 1) is rejected at the start of ``python -m mvtrack_jax.train``,
naming the ``--config.`` field, what it received and what it expects — instead of failing late, or
not failing at all and saving NaN weights (a NaN learning rate gives a finite loss and gradient and
NaN parameters) or deleting every checkpoint (``keep_checkpoints = 0``).

Fields absent from a config (the trainer's small test configs) are not checked here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ml_collections

from mvtrack_jax.errors import ConfigError

_MISSING = object()


def _lookup(config: ml_collections.ConfigDict, dotted: str) -> Any:
  node: Any = config
  for part in dotted.split("."):
    if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
      return _MISSING
    node = node[part]
  return node


def _number(v: Any) -> float | None:
  if isinstance(v, bool) or not isinstance(v, (int, float)):
    return None
  return float(v)


def _is_int(v: Any) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


# (field, predicate on the value, what is expected). Integers must be ints; reals may be ints.
_finite = lambda v: _number(v) is not None and math.isfinite(_number(v))
_CHECKS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("num_train_steps", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("batch_size", lambda v: _is_int(v) and (v >= 1 or v == -1), "an integer >= 1, or -1 (one per device)"),
    ("log_every_steps", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("checkpoint_every_steps", lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: only at the end)"),
    ("keep_checkpoints", lambda v: _is_int(v) and v >= 1,
     "an integer >= 1 (the newest checkpoints kept; 0 would delete every one)"),
    ("eval_every_steps", lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: no evaluation)"),
    ("eval_steps", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("max_consecutive_nonfinite", lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: never stop)"),
    ("stop_after_steps", _is_int, "an integer (> 0: stop there; otherwise off)"),
    ("ema_decay", lambda v: _finite(v) and 0.0 <= v < 1.0, "a number in [0, 1) (0: no EMA)"),
    ("optimizer.learning_rate", lambda v: _finite(v) and v > 0, "a finite number > 0"),
    ("optimizer.warmup_steps", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    ("optimizer.end_lr_factor", lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    ("optimizer.b1", lambda v: _finite(v) and 0.0 <= v < 1.0, "a number in [0, 1)"),
    ("optimizer.b2", lambda v: _finite(v) and 0.0 <= v < 1.0, "a number in [0, 1)"),
    ("optimizer.eps", lambda v: _finite(v) and v > 0, "a finite number > 0"),
    ("optimizer.weight_decay", lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    ("optimizer.grad_clip_norm", _finite, "a finite number (<= 0: no clipping)"),
)


def check_training_config(config: ml_collections.ConfigDict) -> None:
  """Rejects loop and optimizer values that cannot train (module docstring).

  Raises:
    ConfigError: every offending field in one message, each as
      ``--config.FIELD: got VALUE, expected WHAT``.
  """
  problems = []
  for field, ok, expected in _CHECKS:
    value = _lookup(config, field)
    if value is _MISSING:
      continue
    if not ok(value):
      problems.append(f"--config.{field}: got {value!r}, expected {expected}")
  if problems:
    raise ConfigError("; ".join(problems))
