"""The clips each evaluation protocol of ``python -m mvtrack_jax.evaluate`` scores (its module docstring defines them):

- the synthetic split (:func:`scene_clips`): per scene, the ``recorded`` second view and preset trajectories
  re-rendered from the scene (``data.synthetic.render_novel_view``), windowed as the model's data;
- a folder of videos (:func:`video_clips`, DAVIS-style): each mp4 with ReCamMaster's preset trajectories, no
  ground truth; its cameras from a ``<stem>.cameras.npz`` beside it, else a static 60° camera;
- DyCheck (:func:`dycheck_clips`): the training camera as the reference, each validation camera as the target,
  with its frames as the ground truth.

Clips are in the pipeline layout (``data.pipeline.window_example``): videos ``(T, H, W, 3)`` uint8, intrinsics
``(T, 3, 3)`` pixels, OpenCV camera-to-world ``(T, 4, 4)`` relative to the reference camera at frame 0, query points
``(N, 3)`` ``(t, x, y)``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import numpy as np

from mvtrack_jax import builders
from mvtrack_jax import errors
from mvtrack_jax import run_config
from mvtrack_jax.data import dycheck as dycheck_lib
from mvtrack_jax.data import pipeline
from mvtrack_jax.data import readers
from mvtrack_jax.data import sources
from mvtrack_jax.data import synthetic
from mvtrack_jax.data import synthetic_dataset
from mvtrack_jax.geometry import cameras as geometry
from mvtrack_jax.geometry import trajectories
from mvtrack_jax.inference import clips as clips_lib

RECORDED = "recorded"  # the dataset's own second view as the target
VIDEO_EXTENSION = ".mp4"
# Largest entry change (rotation; metres of translation) of a DyCheck target trajectory still called static.
STATIC_TOLERANCE = 1e-5


def window_config(model_config, frames_per_latent: int | None = None):
  """The model's evaluation window: ``data.pipeline.PipelineConfig`` with centre crops at its sizes, and query
  points sampled on latent frames ``0, k, 2k, …`` (where a head's tracks are): ``k = frames_per_latent``, by
  default the model's autoencoder's temporal factor (several models: the least common multiple of theirs)."""
  k = frames_per_latent or builders.make_autoencoder(run_config.parse(model_config).autoencoder).temporal_factor
  return dataclasses.replace(sources.pipeline_config(model_config.data, 1, train=False), frames_per_latent=k,
                             latent_frame_queries=True)


def _preset_target_record(record: Mapping[str, np.ndarray], seed: int, sizes: Mapping[str, int], name: str,
                          frames: np.ndarray) -> dict[str, np.ndarray]:
  """A 2-view record: view 0 = the reference (view 0), view 1 = the preset trajectory, re-rendered.

  The preset starts at the reference camera's pose at ``frames[0]`` (default magnitudes) and pivots
  on the optical axis at the median depth of that frame; ``data.synthetic.render_novel_view`` (shared
  with ``generate``) renders it from poses relative to that camera.
  """
  ref_c2w = geometry.invert_rigid(np.asarray(record["world_to_camera"][0], np.float64))  # (T_rec, 4, 4)
  depth = np.asarray(record["depth"][0, frames[0]], np.float64) if "depth" in record else None
  distance = float(np.median(depth[np.isfinite(depth) & (depth > 0)])) if depth is not None else None
  look_at = None if not distance or name in trajectories.RECAMMASTER_NAMES else np.array([0.0, 0.0, distance])
  path = trajectories.preset_trajectory(name, frames.size, look_at_point=look_at)  # relative to the start camera
  return synthetic.render_novel_view(seed, record["intrinsics"][0], ref_c2w, frames, path, **sizes).record


def check_trajectory_names(trajectory_names: Sequence[str]) -> None:
  """Rejects a name :func:`scene_clips` does not know, before any model is loaded.

  Raises:
    errors.UserError: the first unknown name, with the known ones.
  """
  for name in trajectory_names:
    if name != RECORDED and name not in trajectories.PRESET_NAMES:
      raise errors.UserError(f"--trajectories: unknown {name!r}; expected '{RECORDED}' or one of "
                             f"{', '.join(trajectories.PRESET_NAMES)}")


def scene_clips(model_config, split: str, index: int, trajectory_names: Sequence[str],
                frames_per_latent: int | None = None) -> list[dict[str, np.ndarray]]:
  """The evaluation clips of scene ``index``: one pipeline-layout example per trajectory (module doc); query points
  on latent frames (:func:`window_config`).

  Raises:
    ValueError: a preset trajectory on a non-synthetic dataset, an unknown trajectory name, or a
      ``recorded`` trajectory on a single-view record.
  """
  check_trajectory_names(trajectory_names)
  data = model_config.data
  source = sources.data_source(data, split)
  record = source[index]
  pcfg = window_config(model_config, frames_per_latent)
  frames = np.arange(pcfg.num_frames) * pcfg.frame_stride
  clips = []
  for name in trajectory_names:
    rng = np.random.default_rng([index, 7])  # the same query points for every model
    if name == RECORDED:
      if np.shape(record["video"])[0] < 2:
        raise ValueError(f"scene {index} of split {split!r} has one view: no 'recorded' target view")
      clip_record = record
    else:
      if data.dataset != "synthetic":
        raise errors.UserError(f"--trajectories {name}: preset trajectories need ground truth rendered from the scene, "
                               f"which only the synthetic dataset has (config.data.dataset={data.dataset!r}); "
                               f"use '{RECORDED}'")
      sizes = synthetic_dataset.record_sizes(data.synthetic)
      clip_record = _preset_target_record(record, synthetic_dataset.scene_seed(split, index), sizes, name, frames)
    example, _ = pipeline.window_example(clip_record, pcfg, views=(0, 1), start=0, rng=rng, train=False,
                                         source=f"{split}[{index}]/{name}")
    clips.append(example)
  return clips


def protocol_num_frames(available: int, model_frames: int, frame_stride: int, frames_per_latent: int,
                        source: str = "<video>") -> int:
  """Window length ``T`` of a protocol clip: the model's frame count, truncated to the source, ``1 + k·m``.

  Args:
    available: frames (time steps) the source has.
    model_frames: the model's ``config.data.num_frames`` (81 for the paper config).
    frame_stride: source frames between consecutive window frames (``config.data.frame_stride``).
    frames_per_latent: ``k``, video frames per latent frame (4 for the Wan VAE, 1 for pixel models).
    source: named in the error.

  Returns:
    ``T = 1 + k·⌊(min(model_frames, ⌊(available − 1)/stride⌋ + 1) − 1)/k⌋`` (e.g. 81 → 81 for a
    100-frame video, 69 for a 70-frame one, with ``k = 4``).

  Raises:
    ValueError: ``T < 1 + k``: the source has too few frames for two latent frames.
  """
  k = int(frames_per_latent)
  fits = (int(available) - 1) // int(frame_stride) + 1 if available > 0 else 0
  t = min(int(model_frames), fits)
  t = 1 + k * ((t - 1) // k) if t >= 1 else 0
  if t < 1 + k:
    raise ValueError(f"{source}: {available} frame(s); a clip needs at least {1 + k} frames at stride {frame_stride} "
                     f"(1 + k with k = {k} frames per latent frame)")
  return t


def list_videos(directory: str) -> list[str]:
  """The ``*.mp4`` files of ``directory`` (not recursive), sorted by name.

  Raises:
    FileNotFoundError: ``directory`` is not a directory or holds no mp4 file.
  """
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"--videos {directory}: not a directory")
  paths = sorted(os.path.join(directory, n) for n in os.listdir(directory)
                 if n.lower().endswith(VIDEO_EXTENSION) and os.path.isfile(os.path.join(directory, n)))
  if not paths:
    raise FileNotFoundError(f"--videos {directory}: no {VIDEO_EXTENSION} files")
  return paths


def _protocol_clip(example: Mapping[str, np.ndarray], target_cam_to_world: np.ndarray, target_intrinsics: np.ndarray,
                   query_points: np.ndarray, target_video: np.ndarray | None = None,
                   present: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """A protocol clip: the reference view of ``example``, the target cameras, optional ground truth."""
  clip = {"reference_video": example["reference_video"],
          "reference_intrinsics": np.asarray(example["reference_intrinsics"], np.float32),
          "reference_cam_to_world": np.asarray(example["reference_cam_to_world"], np.float32),
          "target_intrinsics": np.asarray(target_intrinsics, np.float32),
          "target_cam_to_world": np.asarray(target_cam_to_world, np.float32),
          "query_points": np.asarray(query_points, np.float32)}
  if target_video is not None:
    clip["target_video"] = target_video
    clip["present"] = np.ones(target_video.shape[0], bool) if present is None else np.asarray(present, bool)
  return clip


def video_clips(path: str, model_config, trajectory_names: Sequence[str], *, frames_per_latent: int,
                fov: float = 60.0, grid: int = 8, released: Mapping[str, np.ndarray] | None = None,
                cameras_file: str | None = None) -> tuple[list[dict[str, np.ndarray]], dict[str, Any]]:
  """The ``--videos`` clips of one mp4: one per preset trajectory (module docstring).

  Args:
    path: the mp4 file.
    model_config: the model's config (``data`` block: frames, stride, resolution).
    trajectory_names: presets of ``geometry.trajectories.PRESET_NAMES``, or names of ``released``.
    frames_per_latent: ``k`` of :func:`protocol_num_frames`.
    fov: horizontal field of view (degrees) of the static pinhole camera assumed without ``cameras_file``.
    grid: the head's query points: a ``grid × grid`` lattice at frame 0 (``inference.clips.grid_query_points``).
    released: ``{name: (F, 4, 4)}`` camera paths relative to their frame 0 read from a file
      (``geometry.trajectories.read_recammaster_json``), resampled to the clip's length as ReDirector does.
    cameras_file: the video's cameras (``data.readers.read_camera_file``; e.g. ViPE's estimate, as ReDirector's
      inference conditions on): the reference half's intrinsics and poses, the target's intrinsics, the epipolar
      proxy's and the pose estimator's cameras. None: the static-camera assumption (identity pose, ``fov``).

  Returns:
    ``(clips, info)``: per trajectory a clip with ``reference_video`` ``(T, H, W, 3)`` uint8,
    ``reference_intrinsics``/``target_intrinsics`` ``(T, 3, 3)`` float32 pixels of the model's
    resolution, ``reference_cam_to_world`` (``cameras_file``'s, else identity) and ``target_cam_to_world``
    ``(T, 4, 4)`` float32 OpenCV poses relative to the reference camera at frame 0 (the target path starts there,
    as in ReDirector's inference), ``query_points`` ``(grid², 3)`` ``(t, x, y)``; no target video. ``info``:
    ``source``, ``reference_cameras`` (the camera file, or None), ``available_frames``, ``num_frames``,
    ``frame_stride``, ``frames`` (video frame indices).

  Raises:
    ValueError: an unknown trajectory or a video too short (:func:`protocol_num_frames`); schema.RecordError: a
      bad camera file, errors.UserError: one with fewer cameras than the video's frames; video_io.VideoError: an
      unreadable video.
  """
  base = window_config(model_config)
  cameras = None if cameras_file is None else readers.read_camera_file(cameras_file)
  record, *_ = clips_lib.reference_record(path, model_config, fov=fov, size=(base.height, base.width),
                                          cameras=cameras, cameras_source=cameras_file or "")
  available = int(record["video"].shape[1])
  t = protocol_num_frames(available, base.num_frames, base.frame_stride, frames_per_latent, path)
  pcfg = dataclasses.replace(base, num_frames=t, num_query_points=0)
  example, meta = pipeline.window_example(record, pcfg, views=(0, 1), start=0, train=False, source=path)
  queries = clips_lib.grid_query_points(pcfg.height, pcfg.width, grid)
  clips = []
  for name in trajectory_names:
    if released is not None and name in released:
      path_c2w = np.asarray(released[name], np.float64)
      c2w = path_c2w if len(path_c2w) == t else trajectories.redirector_resample(path_c2w, t)
      c2w, k = c2w.astype(np.float32), np.asarray(example["reference_intrinsics"], np.float32)
    else:
      c2w, k, _ = clips_lib.trajectory_cameras(name, t, example["reference_intrinsics"])
    clips.append(_protocol_clip(example, c2w, k, queries))
  info = {"source": os.path.abspath(path),
          "reference_cameras": None if cameras_file is None else os.path.abspath(cameras_file),
          "available_frames": available, "num_frames": t,
          "frame_stride": pcfg.frame_stride, "frames": [int(f) for f in meta["frames"]]}
  return clips, info


def dycheck_clips(sequence, model_config, *, frames_per_latent: int, grid: int = 8
                  ) -> tuple[list[tuple[str, dict[str, np.ndarray]]], dict[str, Any]]:
  """The ``--dycheck`` clips of one sequence: one per validation camera with a frame in the window.

  Args:
    sequence: ``data.dycheck.open_sequence``'s index.
    model_config: the model's config (``data`` block).
    frames_per_latent: ``k`` of :func:`protocol_num_frames`.
    grid: the head's query points (as :func:`video_clips`).

  Returns:
    ``(clips, info)``: ``[("camera<id>", clip)]`` with :func:`video_clips`' keys plus the ground truth
    ``target_video`` ``(T, H, W, 3)`` uint8 and ``present`` ``(T,)`` bool (False: a frame DyCheck
    dropped, filled with the nearest one); with DyCheck's co-visibility masks (``data.dycheck.read_covisible``)
    also ``covisible`` ``(T, H, W)`` bool, resized and cropped as the frames (a pixel is co-visible where most of
    its area was); the reference cameras are the training camera's, the target
    cameras the validation camera's, both relative to the reference camera at frame 0. ``info``:
    ``source``, ``scale``, ``available_frames``, ``num_frames``, ``frame_stride``, ``times`` (DyCheck
    time ids), ``reference_camera``, ``covisible`` (whether masks were found), ``cameras`` (per clip:
    ``camera_id``, ``present_frames``, ``static`` (the validation camera does not move: every pose within
    ``STATIC_TOLERANCE`` of its first), ``frame_names``) and ``skipped_cameras`` (no frame in the window).

  Raises:
    ValueError: a sequence too short (:func:`protocol_num_frames`) or without validation camera;
    schema.RecordError: bad files (``data.dycheck``).
  """
  if not sequence.validation_cameras:
    raise errors.UserError(f"--dycheck {sequence.path}: dataset.json has no val_ids (no held-out camera, no ground "
                           "truth)")
  base = window_config(model_config)
  available = int(sequence.reference_times.size)
  t = protocol_num_frames(available, base.num_frames, base.frame_stride, frames_per_latent, sequence.path)
  times = sequence.reference_times[np.arange(t) * base.frame_stride]
  cameras = [c for c in sequence.validation_cameras if sequence.present(c, times).any()]
  info = {"source": os.path.abspath(sequence.path), "scale": sequence.scale, "available_frames": available,
          "num_frames": t, "frame_stride": base.frame_stride, "times": [int(x) for x in times],
          "reference_camera": sequence.reference_camera, "cameras": {},
          "skipped_cameras": [c for c in sequence.validation_cameras if c not in cameras]}
  if not cameras:
    return [], info
  data = dycheck_lib.read_clip(sequence, times, cameras)
  covisible = dycheck_lib.read_covisible(sequence, data)
  info["covisible"] = covisible is not None
  pcfg = dataclasses.replace(base, num_frames=t, frame_stride=1, num_query_points=0)
  queries = clips_lib.grid_query_points(pcfg.height, pcfg.width, grid)
  clips = []
  for view, camera in enumerate(cameras, start=1):
    source = f"{sequence.path} (camera {camera})"
    example, _ = pipeline.window_example(data.record, pcfg, views=(0, view), start=0, train=False, source=source)
    name = f"camera{camera}"
    clip = _protocol_clip(example, example["target_cam_to_world"], example["target_intrinsics"], queries,
                          target_video=example["target_video"], present=data.present[view])
    if covisible is not None:  # the masks take the frames' resize and crop: a grey video through the same window
      masks = dict(data.record, video=np.repeat(covisible[..., None].astype(np.uint8) * 255, 3, axis=-1))
      resized, _ = pipeline.window_example(masks, pcfg, views=(0, view), start=0, train=False, source=source)
      clip["covisible"] = resized["target_video"][..., 0] > 127
    clips.append((name, clip))
    c2w = np.asarray(clip["target_cam_to_world"], np.float64)
    info["cameras"][name] = {"camera_id": camera, "present_frames": int(data.present[view].sum()),
                             "static": bool(np.abs(c2w - c2w[:1]).max() < STATIC_TOLERANCE),
                             "frame_names": list(data.frame_names[view])}
  return clips, info
