"""Preview one record: a side-by-side mp4 of its views and a frame grid with its tracks drawn.

Command line (``make demo`` runs the second one: the dataset of a training config; both build the synthetic
dataset on first use)::

  python -m mvtrack_jax.data.preview --split train --index 0 --out out/demo
  python -m mvtrack_jax.data.preview --config=configs/default.py --split train --index 0 --out out/demo/data_preview
  python -m mvtrack_jax.data.preview --npz clip.npz --out out/clip
  python -m mvtrack_jax.data.preview --multicam /data/MultiCamVideo/train/f24_aperture5/scene1 \\
      --out out/scene1 --max_side 256 --num_frames 21

Outputs in ``--out``:

- ``preview.mp4``: all views side by side (``V`` panels separated by a 2-pixel gap), each frame
  enlarged by an integer factor (nearest neighbour) so the panels are at least ``--min_side`` pixels
  tall; H.264 / yuv420p with odd sizes padded to even (``video_io.write_video``).
- ``tracks.png``: a grid with one row per view and one column per selected frame (up to
  ``--grid_frames``, evenly spaced), tracks drawn with OpenCV: a solid dot where the point is
  visible, a hollow circle where it projects into the image but is occluded; every track keeps one
  colour in all views and frames. At most ``--max_tracks`` tracks are drawn (evenly spaced among the
  points visible somewhere). Records without tracks (``N = 0``, e.g. MultiCamVideo) show frames only.

Pixel coordinates follow the project convention (corner origin, pixel centres at +0.5), so a
track at ``(x, y)`` is drawn at ``(s·x, s·y)`` in a panel enlarged ``s`` times.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from absl import app
from absl import flags
import cv2
import numpy as np
from ml_collections import config_flags

from mvtrack_jax import cli
from mvtrack_jax import drawing
from mvtrack_jax import errors
from mvtrack_jax.data import readers
from mvtrack_jax.data import schema
from mvtrack_jax.data import video_io

_HEADER = 14  # pixels of the label strip above each grid cell
FLAGS = flags.FLAGS


def track_grid(record: Mapping[str, np.ndarray], *, grid_frames: int = 6, max_tracks: int = 48,
               min_side: int = 128) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """The ``tracks.png`` image of a record (module docstring).

  Returns:
    ``(image, layout)``: ``image`` uint8 RGB; ``layout`` has ``frames`` (grid columns, record frame
    indices), ``tracks`` (drawn point indices), ``scale`` (enlargement) and ``cell_origin``
    ``(V, F, 2)`` top-left ``(x, y)`` pixel of each cell's frame in ``image``.
  """
  video = record["video"]
  v, t, h, w, _ = video.shape
  scale = drawing.upscale_factor(h, min_side)
  frames = np.unique(np.linspace(0, t - 1, min(grid_frames, t)).round().astype(int))
  chosen = drawing.select_tracks(record["visible"], max_tracks)
  colors = drawing.track_colors(record["tracks"].shape[2])[chosen]
  cell_h, cell_w = _HEADER + h * scale, w * scale
  gap = drawing.GAP
  grid = np.full((v * cell_h + (v - 1) * gap, frames.size * cell_w + (frames.size - 1) * gap, 3), 255, np.uint8)
  origins = np.zeros((v, frames.size, 2), int)
  for j in range(v):
    for c, f in enumerate(frames):
      frame = np.repeat(np.repeat(video[j, f], scale, axis=0), scale, axis=1)
      if chosen.size:
        frame = drawing.draw_tracks(frame, record["tracks"][j, f, chosen], record["visible"][j, f, chosen], colors,
                                    scale)
      y0, x0 = j * (cell_h + gap), c * (cell_w + gap)
      grid[y0 + _HEADER:y0 + cell_h, x0:x0 + cell_w] = frame
      cv2.putText(grid, f"view {j} t={f}", (x0 + 2, y0 + _HEADER - 3), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1,
                  cv2.LINE_AA)
      origins[j, c] = (x0, y0 + _HEADER)
  return grid, {"frames": frames, "tracks": chosen, "scale": np.array(scale), "cell_origin": origins}


def write_preview(record: Mapping[str, np.ndarray], out_dir: str | os.PathLike[str], *, fps: float = 8.0,
                  grid_frames: int = 6, max_tracks: int = 48, min_side: int = 128,
                  source: str = "<record>") -> dict[str, str]:
  """Validates a record and writes ``preview.mp4`` and ``tracks.png`` into ``out_dir``.

  Returns:
    ``{"video": path, "tracks": path}``.

  Raises:
    schema.RecordError: the record violates the schema (named ``source``).
  """
  record = schema.validate_record(record, source=source)
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  scale = drawing.upscale_factor(record["video"].shape[2], min_side)
  video_path = os.path.join(out_dir, "preview.mp4")
  video_io.write_video(video_path, drawing.side_by_side_video(record["video"], scale), fps=fps)
  grid, _ = track_grid(record, grid_frames=grid_frames, max_tracks=max_tracks, min_side=min_side)
  png_path = os.path.join(out_dir, "tracks.png")
  with video_io.atomic_output(png_path) as tmp:
    if not cv2.imwrite(tmp, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
      raise OSError(f"{png_path}: OpenCV could not write the PNG")
  return {"video": video_path, "tracks": png_path}


def load_record(*, split: str = "train", index: int = 0, npz: str | None = None, multicam: str | None = None,
                max_side: int | None = 256, num_frames: int | None = None, data_dir: str | None = None,
                dataset_config: Any = None) -> tuple[dict[str, np.ndarray], str]:
  """Loads the record to preview: ``npz`` file, MultiCamVideo scene, or ``split[index]`` of the synthetic set.

  Returns:
    ``(record, source_name)``.

  Raises:
    ValueError: both ``npz`` and ``multicam`` given, or ``index`` out of range.
    schema.RecordError: from the readers, naming the file and field.
  """
  if npz and multicam:
    raise ValueError("give at most one of --npz and --multicam")
  if npz:
    record = readers.read_npz_clip(npz)
    name = npz
  elif multicam:
    size = None
    if max_side:
      cams = readers.list_scene_cameras(multicam)
      first = next(video_io.iter_video(os.path.join(multicam, readers.VIDEOS_DIR, f"{cams[0]}.mp4"), num_frames=1))
      h, w = first.shape[:2]
      factor = min(1.0, max_side / max(h, w))
      size = (max(1, round(h * factor)), max(1, round(w * factor)))
    record = readers.read_multicam_scene(multicam, num_frames=num_frames, size=size)
    name = multicam
  else:
    from mvtrack_jax.data import synthetic_dataset  # pylint: disable=g-import-not-at-top  # tfds import is slow
    source = synthetic_dataset.load_split(split, data_dir=data_dir, config=dataset_config or None)
    if not 0 <= index < len(source):
      raise errors.UserError(f"--index {index} out of range: split {split!r} has {len(source)} records")
    record = dict(source[index])
    name = f"{split}[{index}]"
  if num_frames is not None and not multicam:
    record = dict(record)
    for key in ("video", "intrinsics", "world_to_camera", "tracks", "visible", "depth"):
      if key in record:
        record[key] = record[key][:, :num_frames]
    record["points_3d"] = record["points_3d"][:num_frames]
  return record, name


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_string("split", "train", "Synthetic dataset split (train, validation, test).")
  flags.DEFINE_integer("index", 0, "Record index within the split.")
  flags.DEFINE_string("npz", None, "Preview this .npz clip instead of the synthetic dataset.")
  flags.DEFINE_string("multicam", None, "Preview this MultiCamVideo scene folder instead.")
  flags.DEFINE_string("out", None, "Output directory for preview.mp4 and tracks.png.", required=True)
  flags.DEFINE_string("data_dir", None, "Synthetic dataset root (default $MVTRACK_DATA_DIR or ~/.cache/...).")
  flags.DEFINE_string("dataset_config", None, "Synthetic dataset config: default or tiny.")
  config_flags.DEFINE_config_file("config", None, "A training config: preview the synthetic dataset it trains on "
                                  "(data.synthetic, data.data_dir), e.g. configs/default.py.")
  flags.DEFINE_integer("num_frames", None, "Preview only the first frames.")
  flags.DEFINE_integer("max_side", 256, "MultiCamVideo: decode at most this many pixels per side.")
  flags.DEFINE_integer("min_side", 128, "Enlarge panels (integer factor) to at least this height.")
  flags.DEFINE_integer("grid_frames", 6, "Frames (columns) in tracks.png.")
  flags.DEFINE_integer("max_tracks", 48, "Tracks drawn in tracks.png.")
  flags.DEFINE_float("fps", 8.0, "Frame rate of preview.mp4.")


def main(argv) -> None:
  """Entry point under ``absl.app.run`` (flags from ``define_flags``)."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # Fail fast: the output folder and the input file or folder, before any record is read or built.
  video_io.check_output_dir(FLAGS.out)
  if FLAGS.npz:
    video_io.ensure_input_file(FLAGS.npz, "--npz")
  if FLAGS.multicam and not os.path.isdir(FLAGS.multicam):
    raise FileNotFoundError(f"--multicam {FLAGS.multicam}: no such folder (expected a MultiCamVideo scene folder)")
  data_dir, dataset_config = FLAGS.data_dir, FLAGS.dataset_config
  if FLAGS.config is not None:  # the synthetic dataset a training config trains on
    data = FLAGS.config.data
    if data.dataset != "synthetic" or dataset_config:
      raise app.UsageError(f"--config: previews the synthetic dataset of a training config (its data.dataset is "
                           f"{data.dataset!r}); not together with --dataset_config")
    data_dir, dataset_config = data_dir or data.data_dir or None, data.synthetic
  record, name = load_record(split=FLAGS.split, index=FLAGS.index, npz=FLAGS.npz, multicam=FLAGS.multicam,
                             max_side=FLAGS.max_side, num_frames=FLAGS.num_frames, data_dir=data_dir,
                             dataset_config=dataset_config)
  paths = write_preview(record, FLAGS.out, fps=FLAGS.fps, grid_frames=FLAGS.grid_frames,
                        max_tracks=FLAGS.max_tracks, min_side=FLAGS.min_side, source=name)
  dims = schema.record_dims(record)
  print(f"{name}: V={dims['V']} T={dims['T']} H={dims['H']} W={dims['W']} N={dims['N']}")
  print(f"wrote {paths['video']}")
  print(f"wrote {paths['tracks']}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
