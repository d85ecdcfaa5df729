r"""Benchmarks the train step: step time, tokens/s, model TFLOP, MFU, peak memory, loss overhead.

``python -m mvtrack_jax.bench --config=configs/mvtrack4gen_recammaster.py
[--baseline=configs/recammaster_diffusion_only.py] [--torch_reference] [--steps=10] [--warmup=3]
[--config.x=y ...]``

For each config (and the optional diffusion-only baseline) it builds the real task and the
sharded train state on all devices, feeds one fixed random (but valid) batch — no dataset is read,
so the figures are the model's, not the input pipeline's — compiles the jitted step, runs
``--warmup`` steps, then times ``--steps`` steps (``block_until_ready`` on the loss) and prints:

- step time (mean / min over the timed steps), compile time;
- tokens/s (DiT tokens, target + reference, per second over all devices);
- model TFLOP per step, analytic (``training.flops``: matmuls + S² attention + head; 3× forward,
  the MFU convention), the frozen-aware count (only the gradients a partially frozen run computes;
  ``training.flops.frozen_aware_train_flops``) and XLA's own count of the compiled step (includes
  remat recomputation);
- MFU = analytic model FLOP/s ÷ (devices × dense bf16 peak of the device kind,
  ``training.flops.PEAK_BF16_FLOPS``), and the same with the frozen-aware FLOPs;
- memory: the compiled step's own footprint (``compiled.memory_analysis()``: arguments + outputs +
  temporaries − aliased; per config, also on CPU) and the device allocator's peak so far
  (``memory_stats()['peak_bytes_in_use']``, cumulative over the process: with ``--baseline`` the
  baseline's figure includes the first config's peak);
- with ``--baseline``: the overhead of L_track + L_corr, ``t_full / t_baseline − 1``;
- with ``--torch_reference``: ``benchmarks/torch_reference.py`` (diffusers ``WanTransformer3DModel``,
  bf16, SDPA, gradient checkpointing, ``attn1`` trainable) at the baseline's shapes (else the
  config's) and the ratio of its step time to the JAX step (skipped without CUDA).

``config.batch_size`` is the global batch, or ``−n`` for ``n`` per device (the paper config: 1 per
GPU, so it runs as printed on one GPU or on eight).

A JSON line with every figure is printed last (for docs/performance.md).
"""

from __future__ import annotations

import json
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from mvtrack_jax import cli
from mvtrack_jax import run_config
from mvtrack_jax.training import distributed
from mvtrack_jax.training import flops as flops_lib
from mvtrack_jax.training import mesh as mesh_lib
from mvtrack_jax.training import optimizer as optimizer_lib
from mvtrack_jax.training import train_state as state_lib
from mvtrack_jax.training import trainer

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the command's flags on absl's ``FLAGS`` (not at import: see ``train.define_flags``)."""
  config_flags.DEFINE_config_file("config", None, "Config to benchmark.", lock_config=True)
  config_flags.DEFINE_config_file(
      "baseline", None, "Optional diffusion-only config for the L_track + L_corr overhead.", lock_config=True)
  flags.DEFINE_boolean("torch_reference", False, "Also time the PyTorch reference (benchmarks/torch_reference.py, "
                       "diffusers WanTransformer3DModel) of the baseline's (else the config's) shapes and print the "
                       "ratio; skipped without CUDA.")
  flags.DEFINE_integer("steps", 10, "Timed steps.")
  flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")


def benchmark(config: ml_collections.ConfigDict, *, steps: int = 10, warmup: int = 3
              ) -> dict[str, Any]:
  """Times ``steps`` train steps of ``config`` on all devices (see module docstring).

  Returns:
    dict of figures (``step_time_s``, ``tokens_per_s``, ``model_tflop_per_step``, ``mfu``, ...).
  """
  config = run_config.complete(config)
  mesh = mesh_lib.make_mesh(tuple(config.mesh.shape), tuple(config.mesh.axes))
  batch_size = mesh_lib.global_batch_size(int(config.batch_size), mesh)
  per_process = mesh_lib.check_batch_size(batch_size, mesh)
  task = trainer.build_task(config)
  rules = tuple(task.logical_axis_rules)
  tx, schedule = optimizer_lib.make_optimizer(config.optimizer, int(config.num_train_steps))
  ema_decay = float(config.ema_decay)
  init_key, train_key, _ = trainer.base_keys(int(config.seed))
  abstract, shardings = state_lib.state_shardings(
      task.init_params, tx, use_ema=ema_decay > 0, mesh=mesh, rules=rules)
  state, _ = state_lib.init_train_state(task.init_params, tx, init_key, use_ema=ema_decay > 0,
                                        mesh=mesh, rules=rules)
  step = trainer.build_train_step(config, task, tx, schedule, abstract, shardings, mesh,
                                 train_key=train_key)
  spec = task.batch_spec(batch_size)
  from mvtrack_jax.training import tasks  # pylint: disable=g-import-not-at-top
  local = tasks.random_batch(spec, per_process, config, seed=jax.process_index())
  batch = mesh_lib.make_global_batch(local, mesh)

  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  footprint = None
  try:
    m = compiled.memory_analysis()
    footprint = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                 - m.alias_size_in_bytes)
  except Exception:  # pylint: disable=broad-except  (memory analysis is backend-dependent)
    pass
  xla_flops = None
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    xla_flops = float(cost.get("flops", 0.0)) * jax.device_count() or None
  except Exception:  # pylint: disable=broad-except  (cost analysis is backend-dependent)
    pass
  for _ in range(warmup):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics["loss"])
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics["loss"])
    times.append(time.perf_counter() - t)
  step_s = float(np.mean(times))
  model_flops = (task.flops_per_example or 0.0) * batch_size
  frozen_flops = (task.frozen_aware_flops_per_example or 0.0) * batch_size
  device = jax.devices()[0]
  peak = flops_lib.peak_flops(device.device_kind)
  mem = None
  try:
    stats = device.memory_stats() or {}
    mem = stats.get("peak_bytes_in_use")
  except Exception:  # pylint: disable=broad-except
    pass
  return {
      "config": config.name,
      "device": f"{jax.device_count()}x {device.device_kind}",
      "batch_size": batch_size,
      "tokens_per_example": task.tokens_per_example,
      "compile_s": compile_s,
      "step_time_s": step_s,
      "step_time_min_s": float(np.min(times)),
      "tokens_per_s": (task.tokens_per_example or 0) * batch_size / step_s,
      "model_tflop_per_step": model_flops / 1e12,
      "frozen_aware_tflop_per_step": frozen_flops / 1e12,
      "xla_tflop_per_step": None if xla_flops is None else xla_flops / 1e12,
      "peak_tflops_per_device": None if peak is None else peak / 1e12,
      "mfu": None if peak is None or not model_flops else
             model_flops / step_s / (peak * jax.device_count()),
      "mfu_frozen_aware": None if peak is None or not frozen_flops else
                          frozen_flops / step_s / (peak * jax.device_count()),
      "step_memory_gib": None if footprint is None else footprint / 2 ** 30,
      "process_peak_memory_gib": None if mem is None else mem / 2 ** 30,
      "loss": float(metrics["loss"]),
      "date": time.strftime("%Y-%m-%d"),
  }


def _print(result: dict[str, Any]) -> None:
  for k, v in result.items():
    if isinstance(v, float):
      v = f"{v:.4g}"
    print(f"  {k:22s} {v}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.config is None:
    raise app.UsageError("--config is required")
  distributed.initialize()
  config = run_config.complete(cli.loaded_config(FLAGS["config"]))
  baseline = run_config.complete(cli.loaded_config(FLAGS["baseline"])) if FLAGS.baseline is not None else None
  result = benchmark(config, steps=FLAGS.steps, warmup=FLAGS.warmup)
  print(f"benchmark of {config.name}:")
  _print(result)
  if baseline is not None:
    base = benchmark(baseline, steps=FLAGS.steps, warmup=FLAGS.warmup)
    print(f"baseline {baseline.name}:")
    _print(base)
    result["baseline_step_time_s"] = base["step_time_s"]
    result["track_corr_overhead"] = result["step_time_s"] / base["step_time_s"] - 1.0
    print(f"  L_track + L_corr overhead: {100 * result['track_corr_overhead']:.2f} %")
  if FLAGS.torch_reference:
    from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top  (run from the repository root)
    compared = baseline if baseline is not None else config
    jax_s = result.get("baseline_step_time_s", result["step_time_s"])
    ref = torch_reference.reference_step_time(compared, steps=FLAGS.steps, warmup=FLAGS.warmup)
    if ref is not None:
      result["torch_step_time_s"] = ref["step_time_s"]
      result["speed_ratio_torch_over_jax"] = ref["step_time_s"] / jax_s
      print(f"PyTorch reference ({ref['device']}, SDPA {ref['sdpa']}): {ref['step_time_s']:.3f} s/step; "
            f"JAX is {result['speed_ratio_torch_over_jax']:.2f}x faster on {compared.get('name', '')}")
  print(json.dumps(result))


if __name__ == "__main__":
  define_flags()
  cli.run(main)
