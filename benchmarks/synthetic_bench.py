"""Rendering cost of synthetic dataset scenes (default: the paper-size ``paper`` config).

Run::

  .venv/bin/python -m benchmarks.synthetic_bench                      # 2 paper scenes, 1 process
  .venv/bin/python -m benchmarks.synthetic_bench --num_workers=2      # 2 scenes side by side
  .venv/bin/python -m benchmarks.synthetic_bench --num_scenes=1 --pack  # + TFDS packing and read-back

Renders ``--num_scenes`` train scenes of ``--config`` (a registered name or ``configs/synthetic_data.py``
arg) with the dataset build's own staging stage (``synthetic_dataset.stage_scenes``: the worker
pool, atomic per-scene files) into a temporary data directory, then prints, with the settings used:

1. per scene: CPU seconds (user + system of the rendering process; render + staging write) and wall
   seconds, peak resident memory per process and staged bytes per scene;
2. the extrapolation: CPU-hours per 1,000 scenes (mean CPU seconds per scene × 1000 / 3600) and the
   wall-clock hours of 1,000 scenes with ``K`` such processes in parallel (CPU-hours / K, assuming
   one free core per process);
3. scene statistics of the first scene: visible share of track samples and per-frame displacement
   of visible tracks (pixels/frame, median and 95th percentile), to check motion at this frame rate;
4. with ``--pack``: the time to pack the staged scenes into the TFDS array_record dataset and to read
   scene 0 back, and that the read-back equals the staged scene.

With ``--num_workers=1`` (the default) scenes render in this process after a warm-up render that
loads the textures; with more workers each worker's first scene includes its texture loading (about
a second of CPU at paper size) and the wall time includes starting the workers.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from configs import synthetic_data
from mvtrack_jax.data import synthetic
from mvtrack_jax.data import synthetic_dataset

_CONFIG = flags.DEFINE_string("config", "paper", "configs/synthetic_data.py arg: default, tiny or paper.")
_NUM_SCENES = flags.DEFINE_integer("num_scenes", 2, "Scenes rendered (train seeds 0 .. n-1).")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 1, "Rendering processes (1: this process, after a warm-up).")
_PACK = flags.DEFINE_bool("pack", False, "Also pack the staged scenes into the TFDS dataset and read one back.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Scratch data directory (default: a temporary one, deleted).")


def _scene_statistics(record: dict[str, np.ndarray]) -> dict[str, float]:
  """Visible share and per-frame displacement (pixels) of visible tracks, over views and frame pairs."""
  tracks, visible = record["tracks"], record["visible"]
  both = visible[:, 1:] & visible[:, :-1]
  step = np.linalg.norm(tracks[:, 1:] - tracks[:, :-1], axis=-1)[both]
  return {"visible": float(visible.mean()), "median_px_per_frame": float(np.median(step)) if step.size else 0.0,
          "p95_px_per_frame": float(np.percentile(step, 95)) if step.size else 0.0}


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  cfg = synthetic_data.get_config(_CONFIG.value)
  cfg.num_train, cfg.num_validation, cfg.num_test = _NUM_SCENES.value, 0, 0
  config = synthetic_dataset.resolve_config(cfg)
  data_dir = _DATA_DIR.value or tempfile.mkdtemp(prefix="synthetic_bench_")
  sizes = config.record_sizes()
  machine = platform.processor() or platform.machine()
  print(f"{datetime.date.today()} {platform.node()} ({os.cpu_count()} CPUs, {machine}), "
        f"load average {os.getloadavg()[0]:.2f}")
  print(f"config {_CONFIG.value!r}: {sizes}; {_NUM_SCENES.value} scene(s), {_NUM_WORKERS.value} process(es)")
  try:
    if _NUM_WORKERS.value == 1:  # warm-up: textures and their mip-maps load once per process.
      synthetic.render_scene(0, **dict(sizes, num_frames=1, height=8, width=8, num_tracks=1))
    report = synthetic_dataset.stage_scenes(config, data_dir=data_dir, num_workers=_NUM_WORKERS.value)
    cpu, wall = np.array(report.cpu_seconds), np.array(report.wall_seconds)
    staged = synthetic_dataset.staging_dir(config, data_dir=data_dir)
    first = os.path.join(staged, "train", "000000.npz")
    print(f"per scene: CPU {', '.join(f'{c:.1f}' for c in cpu)} s (mean {cpu.mean():.1f}); wall "
          f"{', '.join(f'{w:.1f}' for w in wall)} s (mean {wall.mean():.1f}); peak memory "
          f"{report.peak_rss_bytes / 1e9:.2f} GB per process; staged {os.path.getsize(first) / 1e6:.0f} MB per scene")
    print(f"all {report.num_workers} process(es): {report.elapsed_seconds:.1f} s wall for {cpu.size} scene(s)")
    cpu_hours = report.cpu_hours_per_1000_scenes()
    print(f"=> {cpu_hours:.1f} CPU-hours per 1,000 scenes; 1,000 scenes take {cpu_hours / 16:.1f} h on 16 free "
          f"cores, {cpu_hours / 64:.2f} h on 64 (one process per core)")
    with np.load(first) as data:
      record = {k: data[k] for k in data.files}
    stats = _scene_statistics(record)
    print(f"scene 0: visible {stats['visible']:.2f} of track samples; visible tracks move "
          f"{stats['median_px_per_frame']:.1f} px/frame (median), {stats['p95_px_per_frame']:.1f} (95th pct)")
    if _PACK.value:
      start = time.perf_counter()
      builder = synthetic_dataset.prepare(config, data_dir=data_dir)
      packed = time.perf_counter() - start
      start = time.perf_counter()
      read = builder.as_data_source("train")[0]
      equal = all(np.array_equal(read[k], record[k]) for k in record)
      print(f"packed {cpu.size} scene(s) in {packed:.1f} s; read scene 0 back in {time.perf_counter() - start:.1f} s; "
            f"equal to the staged scene: {equal}")
  finally:
    if _DATA_DIR.value is None:
      shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
