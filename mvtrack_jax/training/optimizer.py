"""The optimizer: AdamW with warmup + cosine decay and global-norm clipping on a regex-selected
trainable subset; frozen parameters get no optimizer state.

ReCamMaster / MVTrack4Gen fine-tune only part of Wan2.1 (self-attention, camera modules and the
tracking head), so the optimizer is an ``optax.multi_transform`` over two labels:

- ``"trainable"``: ``clip_by_global_norm → adamw(schedule)``; weight decay on ≥2-D leaves only
  (kernels/embeddings, not biases or norm scales).
- ``"frozen"``: ``optax.set_to_zero()`` — its state is empty, so Adam moments exist only for the
  trainable leaves (for Wan-1.3B with ReCamMaster's trainable set that is a large memory saving).

Parameter paths are ``/``-joined pytree keys (``dit/blocks_3/attn1/query/kernel``); a leaf is
trainable when *any* pattern matches with ``re.search``. The global norm for clipping is taken
over the trainable gradients only (frozen gradients are zeroed before the chain).

``learning_rate_multipliers`` (``(regex, factor)`` pairs; a leaf two regexes select is an error) scales the AdamW update of the
leaves it selects, weight decay included, i.e. their learning rate: the usual fine-tuning practice of training a
module that starts from random weights (the tracking head) faster than the pretrained trunk around it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import optax

TRAINABLE = "trainable"
FROZEN = "frozen"


def path_to_str(path: Sequence[Any]) -> str:
  """``/``-joined names of a ``jax.tree_util`` key path (dict keys, attributes, indices)."""
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def _is_box(x: Any) -> bool:
  return isinstance(x, nn.meta.AxisMetadata)


def trainable_labels(params: Any, patterns: Sequence[str]) -> Any:
  """Labels every parameter ``"trainable"`` or ``"frozen"`` by regex on its path.

  Args:
    params: parameter pytree (raw arrays, ``ShapeDtypeStruct``s or Flax logical boxes).
    patterns: regular expressions searched (``re.search``) in each leaf's ``/``-joined path.

  Returns:
    A pytree of label strings with the structure of ``params`` (boxes count as leaves).

  Raises:
    ValueError: ``patterns`` is empty, a pattern is not a valid regex, or no leaf matches.
  """
  if isinstance(patterns, str):
    patterns = (patterns,)
  if not patterns:
    raise ValueError("trainable_patterns is empty: at least one regex is needed ('.*' = all)")
  try:
    compiled = [re.compile(p) for p in patterns]
  except re.error as e:
    raise ValueError(f"trainable_patterns {tuple(patterns)}: invalid regex: {e}") from e
  labels = jax.tree_util.tree_map_with_path(
      lambda path, _: TRAINABLE if any(c.search(path_to_str(path)) for c in compiled)
      else FROZEN, params, is_leaf=_is_box)
  if TRAINABLE not in jax.tree_util.tree_leaves(labels):
    some = [path_to_str(p) for p, _ in
            jax.tree_util.tree_flatten_with_path(params, is_leaf=_is_box)[0][:5]]
    raise ValueError(
        f"trainable_patterns {tuple(patterns)} match no parameter; paths look like {some}")
  return labels


def learning_rate_factors(params: Any, multipliers: Sequence[tuple[str, float]]) -> Any:
  """Per-leaf learning-rate factors: the factor of the ``(regex, factor)`` pair of ``multipliers`` whose regex
  ``re.search`` finds in the leaf's ``/``-joined path, else 1.

  Raises:
    ValueError: a key is not a valid regex, a factor is not a positive finite number, or two regexes select one
      leaf.
  """
  compiled = []
  for pattern, factor in multipliers:
    try:
      compiled.append((re.compile(pattern), float(factor)))
    except re.error as e:
      raise ValueError(f"learning_rate_multipliers: {pattern!r} is not a regular expression ({e})") from e
    if not 0 < float(factor) < float("inf"):
      raise ValueError(f"learning_rate_multipliers[{pattern!r}] = {factor}; expected a positive finite number")

  def factor(path, _):
    name = path_to_str(path)
    hits = [(c.pattern, f) for c, f in compiled if c.search(name)]
    if len(hits) > 1:
      raise ValueError(f"learning_rate_multipliers: {[p for p, _ in hits]} all select {name!r}; give each parameter "
                       "one factor")
    return hits[0][1] if hits else 1.0

  return jax.tree_util.tree_map_with_path(factor, params, is_leaf=_is_box)


def _scaled(inner: optax.GradientTransformation,
            multipliers: Sequence[tuple[str, float]]) -> optax.GradientTransformation:
  """``inner`` with each of its updates multiplied by the leaf's :func:`learning_rate_factors` factor.

  The state is ``inner``'s own, so adding or changing multipliers leaves the optimizer state's structure (and so
  every checkpoint written without them) as it was: a run can be resumed with other factors.
  """

  def update(updates, state, params=None):
    updates, state = inner.update(updates, state, params)
    factors = learning_rate_factors(updates, multipliers)
    return jax.tree.map(lambda u, f: u if f == 1.0 else u * f, updates, factors), state

  return optax.GradientTransformation(inner.init, update)


def learning_rate_schedule(config: ml_collections.ConfigDict,
                           num_train_steps: int) -> optax.Schedule:
  """Linear warmup from 0 to ``config.learning_rate`` then cosine decay to ``end_lr_factor``.

  Args:
    config: the ``optimizer`` config block (``learning_rate``, ``warmup_steps``,
      ``schedule`` ∈ {"cosine", "constant"}, ``end_lr_factor``).
    num_train_steps: total steps; the cosine reaches its end value there.

  Returns:
    ``step -> learning rate`` (jit-compatible).
  """
  lr = float(config.learning_rate)
  warmup = int(config.warmup_steps)
  kind = config.schedule
  if kind == "constant":
    if warmup:
      return optax.linear_schedule(0.0, lr, warmup)
    return optax.constant_schedule(lr)
  if kind != "cosine":
    raise ValueError(f"optimizer.schedule={kind!r}; expected 'cosine' or 'constant'")
  decay_steps = max(int(num_train_steps), warmup + 1)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=lr, warmup_steps=warmup, decay_steps=decay_steps,
      end_value=lr * float(config.end_lr_factor))


def make_optimizer(config: ml_collections.ConfigDict, num_train_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Builds the multi-transform optimizer described in the module docstring.

  Args:
    config: ``optimizer`` block: ``learning_rate``, ``warmup_steps``, ``schedule``,
      ``end_lr_factor``, ``b1``, ``b2``, ``eps``, ``weight_decay``, ``grad_clip_norm`` (≤ 0 = off),
      ``trainable_patterns`` (sequence of regexes), ``learning_rate_multipliers`` (``(regex, factor)`` pairs).
    num_train_steps: total steps for the schedule.

  Returns:
    ``(tx, schedule)``. ``tx.init`` accepts raw or logically boxed params.
  """
  schedule = learning_rate_schedule(config, num_train_steps)
  parts = []
  clip = float(config.grad_clip_norm)
  if clip > 0:
    parts.append(optax.clip_by_global_norm(clip))
  decay_mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)
  adamw = optax.adamw(
      schedule, b1=float(config.b1), b2=float(config.b2),
      eps=float(config.eps), weight_decay=float(config.weight_decay),
      mask=decay_mask)
  multipliers = tuple((str(p), float(f)) for p, f in config.learning_rate_multipliers)
  parts.append(_scaled(adamw, multipliers) if multipliers else adamw)
  patterns = tuple(config.trainable_patterns)
  tx = optax.multi_transform(
      {TRAINABLE: optax.chain(*parts), FROZEN: optax.set_to_zero()},
      lambda params: trainable_labels(params, patterns))
  return tx, schedule


def trainable_mask(params: Any, patterns: Sequence[str]) -> Any:
  """Boolean pytree: ``True`` where the leaf is trainable (see ``trainable_labels``)."""
  return jax.tree.map(lambda l: l == TRAINABLE, trainable_labels(params, patterns))
