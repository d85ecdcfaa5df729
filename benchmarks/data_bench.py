"""Data benchmark: synthetic scenes rendered per second and batches per second through the pipeline.

Run (``make bench``)::

  .venv/bin/python -m benchmarks.data_bench
  .venv/bin/python -m benchmarks.data_bench --source=memory --num_batches=500 --worker_count=2

Measures, and prints with the settings used:

1. ``synthetic.render_scene`` at its default size (V=4, T=16, 64×64, N=256): scenes/s on one core,
   and the implied single-process build time of the default dataset (train + validation + test).
2. The grain input pipeline (``data.pipeline``) at a training-like default configuration (batch 2,
   T=8, 32×32, 256 query points) over the built-in synthetic train split (``--source=tfds``: the
   TFDS array_record data source of ``synthetic_dataset.load_split``, built on first use and timed)
   or over scenes rendered into memory (``--source=memory``): batches/s and examples/s after a
   warm-up, in training mode (shuffle, repeat, random crops).
"""

from __future__ import annotations

import platform
import time

from absl import app
from absl import flags

from mvtrack_jax.data import pipeline
from mvtrack_jax.data import synthetic

_SOURCE = flags.DEFINE_enum("source", "tfds", ["tfds", "memory"], "Records: built-in TFDS split or rendered in memory.")
_DATASET_CONFIG = flags.DEFINE_string("dataset_config", "default", "Synthetic dataset config for --source=tfds.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Synthetic dataset root (default $MVTRACK_DATA_DIR or ~/.cache/...).")
_NUM_RENDER = flags.DEFINE_integer("num_render", 10, "Scenes rendered for the render timing (after 1 warm-up).")
_NUM_MEMORY = flags.DEFINE_integer("num_memory_scenes", 16, "Scenes rendered for --source=memory.")
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 300, "Batches timed (after --warmup).")
_WARMUP = flags.DEFINE_integer("warmup", 10, "Batches drawn before timing.")
_BATCH = flags.DEFINE_integer("batch_size", 2, "Per-process batch size.")
_FRAMES = flags.DEFINE_integer("num_frames", 8, "Frames per window.")
_HEIGHT = flags.DEFINE_integer("height", 32, "Output height.")
_WIDTH = flags.DEFINE_integer("width", 32, "Output width.")
_QUERIES = flags.DEFINE_integer("num_query_points", 256, "Query points per example.")
_THREADS = flags.DEFINE_integer("read_threads", 2, "grain read threads.")
_WORKERS = flags.DEFINE_integer("worker_count", 0, "grain worker processes (mp_prefetch); 0 = in-process.")
_SEED = flags.DEFINE_integer("seed", 0, "Pipeline seed.")


def bench_render(num: int) -> float:
  """Scenes per second of ``render_scene`` at its default size (first call, texture loading, excluded)."""
  synthetic.render_scene(10_000)
  start = time.perf_counter()
  for i in range(num):
    synthetic.render_scene(10_001 + i)
  return num / (time.perf_counter() - start)


def bench_pipeline(source, config: pipeline.PipelineConfig, num_batches: int, warmup: int, seed: int) -> float:
  """Batches per second through ``make_iterator(train=True)`` after ``warmup`` batches."""
  iterator = pipeline.make_iterator(source, config, seed=seed, train=True)
  for _ in range(warmup):
    next(iterator)
  start = time.perf_counter()
  for _ in range(num_batches):
    next(iterator)
  return num_batches / (time.perf_counter() - start)


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  print(f"machine: {platform.machine()} {platform.processor() or ''}, {_cpu_count()} CPU cores, "
        f"python {platform.python_version()}")

  rate = bench_render(_NUM_RENDER.value)
  print(f"render_scene (V=4, T=16, 64x64, N=256): {rate:.2f} scenes/s over {_NUM_RENDER.value} scenes (1 process)")

  if _SOURCE.value == "tfds":
    from mvtrack_jax.data import synthetic_dataset  # pylint: disable=g-import-not-at-top
    cfg = synthetic_dataset.resolve_config(_DATASET_CONFIG.value)
    total = sum(cfg.split_size(s) for s in synthetic_dataset.SPLITS)
    print(f"dataset config {cfg.name!r}: {total} scenes -> estimated single-process build {total / rate:.0f} s")
    start = time.perf_counter()
    source = synthetic_dataset.load_split("train", data_dir=_DATA_DIR.value, config=_DATASET_CONFIG.value)
    print(f"load_split('train'): {len(source)} records ready in {time.perf_counter() - start:.1f} s "
          "(includes the build when it was not built yet)")
  else:
    source = [synthetic.render_scene(i) for i in range(_NUM_MEMORY.value)]
    print(f"memory source: {len(source)} rendered scenes")

  config = pipeline.PipelineConfig(
      batch_size=_BATCH.value, num_frames=_FRAMES.value, height=_HEIGHT.value, width=_WIDTH.value,
      num_query_points=_QUERIES.value, read_threads=_THREADS.value, worker_count=_WORKERS.value)
  bps = bench_pipeline(source, config, _NUM_BATCHES.value, _WARMUP.value, _SEED.value)
  print(f"pipeline ({_SOURCE.value}; batch={config.batch_size}, T={config.num_frames}, "
        f"{config.height}x{config.width}, N={config.num_query_points}, read_threads={config.read_threads}, "
        f"workers={config.worker_count}): {bps:.1f} batches/s = {bps * config.batch_size:.1f} examples/s "
        f"over {_NUM_BATCHES.value} batches")


def _cpu_count() -> int:
  import os  # pylint: disable=g-import-not-at-top
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


if __name__ == "__main__":
  app.run(main)
