"""A training task: the model + objective + data the generic trainer is given.

The trainer (``trainer.train_and_evaluate``) knows nothing about DiTs or tracks: it needs

- ``init_params(rng) -> params`` whose leaves carry Flax logical-axis boxes (for sharding);
- ``loss_fn(params, batch, rng) -> (loss, metrics)``, a pure function computing every loss term
  from one forward pass (MVTrack4Gen: ``L_diff + λ_track L_track + λ_corr L_corr``);
- ``logical_axis_rules``: logical axis name → mesh axis;
- ``make_iterator(split, per_process_batch_size, seed)``: a checkpointable (grain) iterator of
  per-process numpy batches (each process reads its own shard);
- ``batch_spec(global_batch_size)``: name → ``jax.ShapeDtypeStruct`` of one global batch, for
  abstract lowering without data.

``mvtrack_jax.training.tasks.build_task(config)`` builds the real MVTrack4Gen task; tests build
small ones directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class Task:
  """See the module docstring.

  Attributes:
    name: short description for logs.
    init_params: ``rng -> boxed params``.
    loss_fn: ``(params, batch, rng) -> (scalar loss, {name: scalar})``.
    logical_axis_rules: ``((logical_name, mesh_axis_or_None), ...)``.
    make_iterator: ``(split, per_process_batch_size, seed) -> iterator`` of
      ``{name: np.ndarray}`` with ``get_state``/``set_state`` (grain).
    batch_spec: ``global_batch_size -> {name: ShapeDtypeStruct}``.
    eval_fn: optional ``(params, batch, rng) -> {name: scalar}`` used for validation instead of
      ``loss_fn`` (e.g. adding tracking AJ / correspondence PCK); default ``loss_fn``'s metrics.
    flops_per_example: optional analytic model FLOPs of one training example (3 × forward, the
      MFU convention), for the benchmark's MFU.
    frozen_aware_flops_per_example: optional FLOPs of one example counting only the gradients a
      partially frozen run computes (``training.flops.frozen_aware_train_flops``).
    tokens_per_example: optional number of DiT tokens per example, for tokens/s.
    pretrained_params: optional ``() -> (params subtree, report)``: host arrays that replace the
      matching leaves of freshly initialised params (and EMA params) before the first step of a
      new run (never on resume); ``report`` (``{"loaded", "fresh", "ignored"}`` name lists) is logged.
    trunk_gradient_norms: optional ``(params, batch, rng) -> {name: scalar}`` diagnostics the trainer logs once,
      on the first batch of a new run (``losses.objective.make_trunk_gradient_norms``).
  """
  name: str
  init_params: Callable[[jax.Array], Any]
  loss_fn: Callable[[Any, Mapping[str, jax.Array], jax.Array],
                    tuple[jax.Array, Mapping[str, jax.Array]]]
  logical_axis_rules: Sequence[tuple[str, Any]]
  make_iterator: Callable[[str, int, int], Iterator[Mapping[str, np.ndarray]]]
  batch_spec: Callable[[int], Mapping[str, jax.ShapeDtypeStruct]]
  eval_fn: Callable[..., Mapping[str, jax.Array]] | None = None
  flops_per_example: float | None = None
  frozen_aware_flops_per_example: float | None = None
  tokens_per_example: int | None = None
  pretrained_params: Callable[[], tuple[Any, Mapping[str, Sequence[str]]]] | None = None
  trunk_gradient_norms: Callable[..., Mapping[str, jax.Array]] | None = None
