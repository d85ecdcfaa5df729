"""MultiCamVideo decode benchmark: training examples per second per core at 480×832×81.

Run (``make bench``)::

  .venv/bin/python -m benchmarks.multicam_bench
  .venv/bin/python -m benchmarks.multicam_bench --num_cameras=10 --native=1280 --num_examples=4

Writes ``--num_scenes`` scenes in the MultiCamVideo layout into a temporary folder
(``readers.write_multicam_scene``: ``--num_cameras`` mp4s of ``--frames`` frames of ``--native``²,
H.264 at the project's default quality, of smooth moving patterns, the real dataset's geometry),
then times ``pipeline.sample_example`` (one thread: the cost per core) on a training-like
configuration (81-frame windows at 480×832, 256 query points) in three ways:

- ``eager``: ``read_multicam_scene`` decodes every camera and frame at native size, then the
  pipeline resizes two views (how the reader worked before lazy records);
- ``lazy``: ``MultiCamVideoSource`` records decode only the example's two views and window,
  still at native size, resized by the pipeline;
- ``lazy+size``: the same, resized to ``--decode_size`` while decoding (the paper config's
  ``data.multicamvideo.size = (832, 832)``).

Prints examples/s and seconds per example. Figures go to docs/performance.md with device and date.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from mvtrack_jax.data import pipeline
from mvtrack_jax.data import readers
from mvtrack_jax.geometry import cameras as geometry

_NUM_SCENES = flags.DEFINE_integer("num_scenes", 1, "Scenes written.")
_CAMERAS = flags.DEFINE_integer("num_cameras", 10, "Cameras per scene (MultiCamVideo: 10).")
_FRAMES = flags.DEFINE_integer("frames", 81, "Frames per video (MultiCamVideo: 81).")
_NATIVE = flags.DEFINE_integer("native", 1280, "Native square frame size (MultiCamVideo: 1280).")
_EXAMPLES = flags.DEFINE_integer("num_examples", 3, "Examples timed per mode (after one warm-up).")
_DECODE = flags.DEFINE_list("decode_size", ["832", "832"], "Decode size (height, width) of the lazy+size mode.")


def _scene(seed: int, num_cameras: int, frames: int, size: int) -> dict[str, np.ndarray]:
  """Cameras on a circle looking at the origin, moving slowly, and smooth coloured frames."""
  rng = np.random.default_rng(seed)
  angles = np.linspace(0, 2 * np.pi, num_cameras, endpoint=False)
  eyes = np.stack([5 * np.sin(angles), -1.0 * np.ones_like(angles), -5 * np.cos(angles)], -1)
  w2c = np.stack([np.stack([geometry.look_at(e + [0.01 * t, 0, 0], np.zeros(3)) for t in range(frames)]) for e in eyes])
  ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / 37.0
  video = np.empty((num_cameras, frames, size, size, 3), np.uint8)
  for v in range(num_cameras):
    for t in range(frames):
      phase = rng.uniform() + 0.05 * t + v
      video[v, t] = (127 + 100 * np.sin(xs[..., None] * 0.9 + ys[..., None] * 0.4 + np.arange(3) * 2.1 + phase))
  return {"video": video, "world_to_camera": w2c}


def _time(records, config: pipeline.PipelineConfig, num: int) -> float:
  """Seconds per ``sample_example`` (first call excluded)."""
  rng = np.random.default_rng(0)
  pipeline.sample_example(records(0), config, rng, train=True)
  start = time.perf_counter()
  for i in range(num):
    pipeline.sample_example(records(i), config, rng, train=True)
  return (time.perf_counter() - start) / num


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU cores, "
        f"python {platform.python_version()}")
  config = pipeline.PipelineConfig(batch_size=1, num_frames=81, height=480, width=832, num_query_points=256,
                                   read_threads=1)
  decode = tuple(int(v) for v in _DECODE.value)
  with tempfile.TemporaryDirectory() as root:
    start = time.perf_counter()
    for i in range(_NUM_SCENES.value):
      readers.write_multicam_scene(os.path.join(root, "train", "f24_aperture5", f"scene{i}"),
                                   _scene(i, _CAMERAS.value, _FRAMES.value, _NATIVE.value))
    print(f"wrote {_NUM_SCENES.value} scene(s) of {_CAMERAS.value} cameras x {_FRAMES.value} frames of "
          f"{_NATIVE.value}^2 in {time.perf_counter() - start:.1f} s")
    scenes = readers.find_multicam_scenes(os.path.join(root, "train"))
    lazy = readers.MultiCamVideoSource(os.path.join(root, "train"))
    sized = readers.MultiCamVideoSource(os.path.join(root, "train"), size=decode)
    modes = {"eager": lambda i: readers.read_multicam_scene(scenes[i % len(scenes)]),
             "lazy": lambda i: lazy[i % len(lazy)],
             f"lazy+size {decode[0]}x{decode[1]}": lambda i: sized[i % len(sized)]}
    for name, records in modes.items():
      seconds = _time(records, config, _EXAMPLES.value)
      print(f"{name:>22}: {1 / seconds:.3f} examples/s per core ({seconds:.2f} s per example; 2 views x 81 frames "
            f"-> 480x832, 256 query points)")


if __name__ == "__main__":
  app.run(main)
