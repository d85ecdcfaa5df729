"""A small stand-in task for trainer infrastructure tests: a 2-layer MLP with logical axes.

The model carries the same logical axis names as the DiT (``embed``, ``mlp``), the objective
returns the MVTrack4Gen metric names (``loss_diff``, ``loss_track``, ``loss_corr``) and uses the
step RNG (noise on the inputs), and the data comes from a grain pipeline sharded across processes
so that process ``p`` holds rows ``[p·b, (p+1)·b)`` of every global batch (the global batch is the
same for any process count). Examples whose index is in ``poison`` have NaN inputs.
"""

from __future__ import annotations

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np

from mvtrack_jax import run_config
from mvtrack_jax.training.task import Task

IN, HIDDEN, OUT = 8, 32, 4
RULES = (("embed", "fsdp"), ("mlp", "tensor"), ("batch", ("data", "fsdp")))


class ToyMLP(nn.Module):
  """``x (B, IN) -> (B, OUT)``; kernels partitioned over (embed, mlp) logical axes."""

  @nn.compact
  def __call__(self, x):
    init = nn.initializers.lecun_normal()
    h = nn.Dense(HIDDEN, kernel_init=nn.with_logical_partitioning(init, ("embed", "mlp")),
                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)),
                 name="body")(x)
    h = nn.with_logical_constraint(jnp.tanh(h), ("batch", "mlp"))
    return nn.Dense(OUT, kernel_init=nn.with_logical_partitioning(init, ("mlp", "embed")),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
                    name="head")(h)


_TRUE_W = np.random.default_rng(123).normal(size=(IN, OUT)).astype(np.float32)


def example(index: int, poison: frozenset[int] = frozenset()) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(index)
  x = rng.normal(size=(IN,)).astype(np.float32)
  y = np.sin(x @ _TRUE_W).astype(np.float32)
  if index in poison:
    x = np.full_like(x, np.nan)
  return {"x": x, "y": y}


def _make_iterator(split: str, per_process_batch: int, seed: int, *, poison=frozenset()):
  p, n = jax.process_index(), jax.process_count()
  b, offset = per_process_batch, (0 if split == "train" else 10_000_000)
  global_b = b * n

  def index(j):  # j-th example of this process -> global example index.
    return offset + (j // b) * global_b + p * b + (j % b)

  ds = grain.MapDataset.range(1_000_000).map(lambda j: example(index(int(j)), poison))
  return iter(ds.batch(b, drop_remainder=True).to_iter_dataset())


def loss_fn(params, batch, rng):
  x = batch["x"] + 0.01 * jax.random.normal(rng, batch["x"].shape)
  pred = ToyMLP().apply({"params": params}, x)
  loss_diff = jnp.mean((pred - batch["y"]) ** 2)
  loss_track = jnp.mean(jnp.abs(pred - batch["y"]))
  loss_corr = jnp.mean(pred ** 2) * 0.0
  loss = loss_diff + 0.01 * loss_track + 0.01 * loss_corr
  return loss, {"loss_diff": loss_diff, "loss_track": loss_track, "loss_corr": loss_corr}


def make_task(poison=frozenset()) -> Task:
  def init_params(rng):
    return ToyMLP().init(rng, jnp.zeros((1, IN)))["params"]

  def batch_spec(global_batch):
    return {"x": jax.ShapeDtypeStruct((global_batch, IN), jnp.float32),
            "y": jax.ShapeDtypeStruct((global_batch, OUT), jnp.float32)}

  return Task(
      name="toy-mlp", init_params=init_params, loss_fn=loss_fn, logical_axis_rules=RULES,
      make_iterator=lambda s, b, seed: _make_iterator(s, b, seed, poison=frozenset(poison)),
      batch_spec=batch_spec)


def toy_config(**overrides):
  """The schema's default run config with the toy task's loop, batch and optimizer (``overrides``: dotted
  field → value; the model/data fields are unused, the toy task replaces them)."""
  c = run_config.default_config()
  c.num_train_steps = 6
  c.log_every_steps = 1
  c.checkpoint_every_steps = 2
  c.eval_every_steps = 3
  c.eval_steps = 2
  c.eval_at_start = False
  c.keep_checkpoints = 3
  c.max_consecutive_nonfinite = 3
  c.batch_size = 8
  c.ema_decay = 0.9
  c.progress_bar = False
  c.optimizer.learning_rate = 3e-2
  c.optimizer.warmup_steps = 2
  c.optimizer.b2 = 0.999
  c.optimizer.trainable_patterns = (".*",)
  for k, v in overrides.items():
    target = c
    *parents, leaf = k.split(".")
    for p in parents:
      target = target[p]
    target[leaf] = v
  return c
