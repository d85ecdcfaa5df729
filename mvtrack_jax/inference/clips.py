"""The clips the inference commands feed a model: a reference record from an mp4, an ``.npz`` clip or a dataset
record; target cameras from a preset or a cameras JSON; query points (a grid or a file); and the true target view
where the scene can be re-rendered. ``generate`` and ``evaluate`` build their clips here, so a clip means the same
thing in both (the ``--reference``, ``--trajectory``, ``--resize`` and ``--query_points`` contracts are stated in
``mvtrack_jax.generate``'s docstring).

Errors name the flag a value came from (``--reference``, ``--trajectory``, ...), since every caller takes them from
the command line.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from mvtrack_jax import errors
from mvtrack_jax.data import pipeline
from mvtrack_jax.data import readers
from mvtrack_jax.data import sources
from mvtrack_jax.data import synthetic
from mvtrack_jax.data import synthetic_dataset
from mvtrack_jax.data import video_io
from mvtrack_jax.geometry import cameras as geometry
from mvtrack_jax.geometry import trajectories

# How an mp4 reference of another aspect ratio is fitted to the model's frame (module docstring); the first is the
# default.
RESIZE_POLICIES = ("crop", "pad", "stretch")



def load_array(path: str, name: str) -> np.ndarray:
  """An array from ``path`` (``.npy``, ``.json`` or a text table: ``.csv`` comma-separated, else whitespace) given as
  flag ``--name``; ``FileNotFoundError`` / ``ValueError`` naming the flag and file when it is missing or unreadable."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--{name} {path}: no such file")
  try:
    if path.endswith(".npy"):
      return np.load(path, allow_pickle=False)
    if path.endswith(".json"):
      with open(path) as f:
        return np.asarray(json.load(f), np.float64)
    return np.loadtxt(path, delimiter="," if path.endswith(".csv") else None, ndmin=2)
  except (OSError, ValueError, json.JSONDecodeError) as e:
    raise errors.UserError(f"--{name} {path}: cannot read an array ({e})") from e


def is_video_spec(spec: str) -> bool:
  """Whether a ``--reference`` names a video file (anything but ``dataset:SPLIT:INDEX`` and an ``.npz`` clip)."""
  return not (spec.startswith("dataset:") or spec.endswith(".npz"))


def reference_record(spec: str, model_config, *, reference_view: int = 0, fov: float = 60.0,
                     intrinsics: np.ndarray | None = None, max_frames: int | None = None,
                     size: tuple[int, int] | None = None, resize: str = "crop",
                     cameras: tuple[np.ndarray, np.ndarray] | None = None, cameras_source: str = "cameras"
                     ) -> tuple[dict[str, np.ndarray], str, float | None, np.ndarray]:
  """A 2-view schema record whose view 0 is the reference video (view 1 a copy or another view).

  An mp4 is decoded only up to its ``max_frames``-th frame, each frame scaled while decoding (area
  averaging) by the ``resize`` policy (module docstring) for the model's ``size = (height, width)``:
  ``crop`` shrinks it (aspect kept, never enlarged) to the smallest size that still covers ``size`` — the
  pipeline then crops it as any record —, ``pad`` scales it to fit inside ``size`` and centres it on black,
  ``stretch`` scales it to ``size``; so memory follows the model's frame size, not the video's (an 8K clip
  costs one 8K frame at a time). Its intrinsics are those of the record's frames.

  Args:
    spec: ``--reference`` (module docstring).
    model_config: the model's training config (``data`` block for ``dataset:`` specs).
    reference_view: view of an ``.npz`` / dataset record.
    fov: horizontal field of view (degrees) of an mp4 without ``intrinsics``.
    intrinsics: ``(3, 3)`` pixel intrinsics of an mp4, in the video's own pixels.
    cameras: ``(intrinsics (T', 3, 3), cam_to_world (T', 4, 4))`` of an mp4's frames (``data.readers.read_camera_file``:
      the video's own pixels, OpenCV poses), ``T'`` the video's frame count (at least ``max_frames``); without them
      (and without ``intrinsics``) an mp4 is taken by a static camera of ``fov`` (the *static-camera assumption*).
      An ``errors.UserError`` for a dataset or ``.npz`` reference, with ``intrinsics``, or with another count.
    cameras_source: names ``cameras`` in errors (its file).
    max_frames: read at most this many leading frames of an mp4 (``None``: all).
    size: the model's ``(height, width)`` (``None``: an mp4 keeps its size; needs ``resize="crop"``).
    resize: ``"crop"``, ``"pad"`` or ``"stretch"`` (``RESIZE_POLICIES``), for an mp4.

  Returns:
    ``(record, source_name, fps or None, to_record)``: ``to_record`` ``(3, 3)`` the affine map of homogeneous
    pixels ``(x, y, 1)`` (corner origin) from the mp4's pixels to the record's (identity for ``.npz`` and
    ``dataset:`` references).

  Raises:
    ValueError: malformed spec, view or intrinsics (``errors.UserError`` for ``resize``: unknown, or ``pad``/
    ``stretch`` for a reference that is not an mp4); FileNotFoundError: missing file;
    data.schema.RecordError / video_io.VideoError: unreadable data (naming the file).
  """
  check_resize(resize, spec)
  if cameras is not None and not is_video_spec(spec):
    raise errors.UserError(f"{cameras_source}: a camera file is for an mp4 reference; {spec} carries its own cameras")
  if resize != "crop" and size is None:
    raise errors.UserError(f"--resize {resize}: needs the model's frame size")
  fps, to_record = None, np.eye(3)
  if spec.startswith("dataset:"):
    parts = spec.split(":")
    if len(parts) != 3 or not parts[2].isdigit():
      raise errors.UserError(f"--reference {spec!r}: expected dataset:SPLIT:INDEX, e.g. dataset:test:0")
    source = sources.data_source(model_config.data, parts[1])
    index = int(parts[2])
    if index >= len(source):
      raise errors.UserError(f"--reference {spec!r}: split {parts[1]!r} has {len(source)} records")
    record = dict(source[index])
  elif spec.endswith(".npz"):
    record = readers.read_npz_clip(spec)
  else:
    if not os.path.isfile(spec):
      raise FileNotFoundError(f"--reference {spec}: no such file (expected an mp4, an .npz or dataset:SPLIT:INDEX)")
    h0, w0 = video_io.frame_size(spec)
    decoded = _decode_size(h0, w0, size, resize)
    video = video_io.read_video(spec, num_frames=max_frames, size=None if decoded == (h0, w0) else decoded)
    fps = video_io.video_fps(spec)
    t, h, w, _ = video.shape
    to_record = np.diag([w / w0, h / h0, 1.0])
    if resize == "pad" and (h, w) != tuple(size):
      top, left = (size[0] - h) // 2, (size[1] - w) // 2
      video = np.pad(video, ((0, 0), (top, size[0] - h - top), (left, size[1] - w - left), (0, 0)))
      to_record[:2, 2] = left, top
      t, h, w, _ = video.shape
    c2w = np.eye(4)
    if cameras is not None:
      if intrinsics is not None:
        raise errors.UserError(f"--intrinsics and the camera file {cameras_source}: give one")
      k, c2w = (np.asarray(c, np.float64) for c in cameras)
      n = min(len(k), len(c2w))
      if n < t or (max_frames is None and n != t):  # more poses than frames: the file is of another (longer) clip
        raise errors.UserError(f"{cameras_source}: {n} camera(s) for the {t} frame(s) of {spec}; expected one per "
                               "video frame")
      k, c2w = k[:t], c2w[:t]
    elif intrinsics is None:
      k = geometry.intrinsics_from_fov(h0, w0, fov)
    else:
      k = np.asarray(intrinsics, np.float64)
      if k.shape != (3, 3):
        raise errors.UserError(f"--intrinsics: expected a 3x3 pinhole matrix, got shape {k.shape}")
      geometry.check_intrinsics(k, "--intrinsics")
    k = to_record @ k  # the video's pixels → the record's (corner origin)
    record = {
        "video": video[None], "intrinsics": np.broadcast_to(k, (1, t, 3, 3)).astype(np.float32),
        "world_to_camera": np.broadcast_to(geometry.invert_rigid(c2w), (1, t, 4, 4)).astype(np.float32),
        "tracks": np.zeros((1, t, 0, 2), np.float32), "visible": np.zeros((1, t, 0), bool),
        "points_3d": np.zeros((t, 0, 3), np.float32)}
  v = record["video"].shape[0]
  if not 0 <= reference_view < v:
    raise errors.UserError(f"--reference_view {reference_view}: {spec} has {v} view(s)")
  views = [reference_view, (reference_view + 1) % v] if v > 1 else [0, 0]
  record = {key: (value if key == "points_3d" else np.asarray(value)[views])
            for key, value in record.items() if key != "depth"}
  return record, spec, fps, to_record


def check_trajectory(spec: str, *, magnitude: float | None = None, look_at_depth: float | None = None) -> None:
  """``errors.UserError`` naming ``--trajectory`` unless ``spec`` is a preset name or a ``.json`` path, and naming
  ``--magnitude`` / ``--look_at_depth`` given with one of ReCamMaster's fixed trajectories."""
  if spec not in trajectories.PRESET_NAMES and not spec.endswith(".json"):
    raise errors.UserError(f"--trajectory {spec!r}: expected one of {', '.join(trajectories.PRESET_NAMES)} or a "
                           ".json cameras file")
  if spec in trajectories.RECAMMASTER_NAMES and (magnitude is not None or look_at_depth is not None):
    raise errors.UserError(f"--trajectory {spec} is ReCamMaster's released trajectory "
                           f"({trajectories.RECAMMASTER_MOTIONS[spec]}, fixed size): --magnitude and --look_at_depth "
                           "apply to the eased presets only")


def check_resize(resize: str, reference: str) -> None:
  """``errors.UserError`` naming ``--resize`` unless it is a ``RESIZE_POLICIES`` policy that applies to
  ``reference`` (``pad``/``stretch`` fit an mp4; ``.npz`` and ``dataset:`` references are windowed as the model's
  data)."""
  if resize not in RESIZE_POLICIES:
    raise errors.UserError(f"--resize {resize}: expected one of {', '.join(RESIZE_POLICIES)}")
  if resize != "crop" and not is_video_spec(reference):
    raise errors.UserError(f"--resize {resize}: expected crop for {reference} (pad and stretch fit an mp4 reference; "
                           ".npz and dataset: references are windowed as the model's data)")


def _decode_size(h: int, w: int, size: tuple[int, int] | None, resize: str = "crop") -> tuple[int, int]:
  """``(height, width)`` to scale an ``h × w`` frame to while decoding. ``crop``: the smallest size of the same
  aspect that covers ``size`` (the pipeline's resize rule, ``data.pipeline``), never larger than the frame itself;
  ``pad``: the largest of the same aspect inside ``size``; ``stretch``: ``size``."""
  if size is None:
    return h, w
  if resize == "stretch":
    return int(size[0]), int(size[1])
  if resize == "pad":
    scale = min(size[0] / h, size[1] / w)
    return min(size[0], max(1, int(round(h * scale)))), min(size[1], max(1, int(round(w * scale))))
  scale = min(1.0, max(size[0] / h, size[1] / w))
  return max(min(h, size[0]), int(round(h * scale))), max(min(w, size[1]), int(round(w * scale)))


def trajectory_cameras(spec: str, num_frames: int, reference_intrinsics: np.ndarray, *,
                       magnitude: float | None = None, look_at_depth: float | None = None
                       ) -> tuple[np.ndarray, np.ndarray, str]:
  """Target ``(cam_to_world (T, 4, 4), intrinsics (T, 3, 3), name)`` relative to the reference frame 0.

  Args:
    spec: a preset name (``geometry.trajectories.PRESET_NAMES``: the eased presets or ReCamMaster's ``cam01`` …
      ``cam10``) or a cameras JSON path.
    num_frames: ``T``.
    reference_intrinsics: ``(T, 3, 3)`` (used when the JSON gives none, and for presets).
    magnitude, look_at_depth: preset options.

  Raises:
    ValueError: unknown name / malformed JSON (naming the field, got vs expected).
  """
  check_trajectory(spec, magnitude=magnitude, look_at_depth=look_at_depth)
  if spec in trajectories.PRESET_NAMES:
    look_at = None if look_at_depth is None else np.array([0.0, 0.0, float(look_at_depth)])
    c2w = trajectories.preset_trajectory(spec, num_frames, look_at_point=look_at, magnitude=magnitude)
    return c2w.astype(np.float32), np.asarray(reference_intrinsics, np.float32), spec
  if not os.path.isfile(spec):
    raise FileNotFoundError(f"--trajectory {spec}: no such file")
  try:
    with open(spec) as f:
      data = json.load(f)
    c2w = np.asarray(data["cam_to_world"], np.float64)
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise errors.UserError(f"--trajectory {spec}: expected JSON with a 'cam_to_world' list of 4x4 matrices "
                           f"({e})") from e
  if c2w.shape != (num_frames, 4, 4):
    raise errors.UserError(f"--trajectory {spec}: cam_to_world has shape {c2w.shape}, expected ({num_frames}, 4, 4) "
                           f"(one pose per generated frame)")
  geometry.check_rigid(c2w, f"--trajectory {spec}: cam_to_world")
  intr = np.asarray(reference_intrinsics, np.float64)
  if data.get("intrinsics") is not None:
    k = np.asarray(data["intrinsics"], np.float64)
    if k.shape == (3, 3):
      k = np.broadcast_to(k, (num_frames, 3, 3))
    if k.shape != (num_frames, 3, 3):
      raise errors.UserError(f"--trajectory {spec}: intrinsics has shape {k.shape}, expected (3, 3) or "
                             f"({num_frames}, 3, 3)")
    intr = geometry.check_intrinsics(k, f"--trajectory {spec}: intrinsics")
  return c2w.astype(np.float32), intr.astype(np.float32), os.path.basename(spec)


def ground_truth_target(reference: str, model_config, record: dict[str, np.ndarray], config, start: int,
                        target_cam_to_world: np.ndarray, query_points: np.ndarray, scale: np.ndarray,
                        crop: np.ndarray) -> dict[str, np.ndarray] | None:
  """The true target view of a generation where it is known (module docstring), else ``None``.

  Known for ``reference = "dataset:SPLIT:INDEX"`` when ``model_config.data.dataset`` is the built-in
  ``"synthetic"`` one: the scene (``synthetic_dataset.scene_seed(SPLIT, INDEX)``) is re-rendered by
  ``data.synthetic.render_novel_view`` from the reference camera (``record`` view 0) and the target
  cameras ``reference_cam_to_world(window frame 0) @ target_cam_to_world`` with the reference's
  intrinsics, then windowed, resized and cropped exactly as the reference (``pipeline.window_example``).
  The caller decides that the cameras are a preset's (the reference's intrinsics; JSON cameras may
  carry others and get no ground truth in ``run``).

  Args:
    reference: the ``--reference`` spec.
    model_config: the model's config (``data`` block).
    record: ``reference_record``'s record (view 0 = the reference view, record pixels and frames).
    config: the ``pipeline.PipelineConfig`` the reference example was made with.
    start: first record frame of the window (``--start_frame``).
    target_cam_to_world: ``(T, 4, 4)`` OpenCV camera-to-world poses relative to the reference camera at
      window frame 0 (metres), as given to the model.
    query_points: ``(N, 3)`` ``(t, x, y)``: window frame (rounded to the nearest) and pixel of the
      generated video (corner origin, centres at +0.5).
    scale, crop: ``(2,)`` the reference example's ``(sx, sy)`` resize factors and ``(x0, y0)`` crop offset
      (``window_example`` metadata): video pixel = record pixel · scale − crop.

  Returns:
    ``None``, or ``{"video": (T, H, W, 3) uint8, "tracks": (T, N, 2) float32 pixels (x, y) of the query
    points in the true target view (NaN where a query ray hit nothing), "visible": (T, N) bool,
    "cam_to_world": (T, 4, 4) float32 the true target cameras relative to the reference at window
    frame 0 (the given ones up to float32 rounding)}``.

  Raises:
    ValueError: a malformed spec or cameras (``render_novel_view``).
  """
  if not reference.startswith("dataset:") or model_config.data.dataset != "synthetic":
    return None
  _, split, index = reference.split(":")
  sizes = synthetic_dataset.record_sizes(model_config.data.synthetic)
  frames = start + config.frame_stride * np.arange(config.num_frames)
  q = np.asarray(query_points, np.float64)
  q_record = np.concatenate([frames[np.clip(np.round(q[:, :1]).astype(int), 0, frames.size - 1)],
                             (q[:, 1:] + crop) / scale], axis=1)
  novel = synthetic.render_novel_view(
      synthetic_dataset.scene_seed(split, int(index)), record["intrinsics"][0],
      geometry.invert_rigid(np.asarray(record["world_to_camera"][0], np.float64)), frames, target_cam_to_world,
      query_points=q_record, **sizes)
  example, _ = pipeline.window_example(novel.record, config, views=(0, 1), start=start, train=False,
                                       source=f"{reference} (ground truth)")
  tracks = novel.query_tracks[1, frames].astype(np.float64) * scale - crop
  inside = ((tracks[..., 0] >= 0) & (tracks[..., 0] <= config.width) &
            (tracks[..., 1] >= 0) & (tracks[..., 1] <= config.height))  # as the pipeline crops tracks
  return {"video": example["target_video"], "tracks": tracks.astype(np.float32),
          "visible": novel.query_visible[1, frames] & inside, "cam_to_world": example["target_cam_to_world"]}


def grid_query_points(height: int, width: int, grid: int) -> np.ndarray:
  """``(grid², 3)`` float32 ``(0, x, y)`` at the centres of a ``grid × grid`` partition of the frame."""
  if grid < 1:
    raise errors.UserError(f"--grid must be >= 1, got {grid}")
  ys = (np.arange(grid) + 0.5) * height / grid
  xs = (np.arange(grid) + 0.5) * width / grid
  yy, xx = np.meshgrid(ys, xs, indexing="ij")
  return np.stack([np.zeros(grid * grid), xx.ravel(), yy.ravel()], -1).astype(np.float32)


def user_query_points(path: str, to_video: np.ndarray, num_frames: int, height: int, width: int) -> np.ndarray:
  """Query points from a file, mapped from input-video pixels to the generated video's (module doc) by the
  ``(3, 3)`` affine ``to_video`` (homogeneous ``(x, y, 1)``, corner origin).

  Raises:
    ValueError: not ``(N, 3)``/``(N, 2)``, non-finite, a frame outside ``[0, num_frames − 1]``, or a
      point outside the generated ``height × width`` frame after the resize and crop (naming it).
  """
  q = np.asarray(load_array(path, "query_points"), np.float64)
  if q.ndim != 2 or q.shape[1] not in (2, 3):
    raise errors.UserError(f"--query_points {path}: expected an (N, 3) (t, x, y) or (N, 2) (x, y) array, got {q.shape}")
  if not np.all(np.isfinite(q)):
    row = int(np.argwhere(~np.isfinite(q))[0][0])
    raise errors.UserError(f"--query_points {path}: row {row} is {q[row].tolist()}; query points must be finite")
  if q.shape[1] == 2:
    q = np.concatenate([np.zeros((q.shape[0], 1)), q], axis=1)
  if np.any((q[:, 0] < 0) | (q[:, 0] > num_frames - 1)):
    raise errors.UserError(f"--query_points {path}: frame indices must be in [0, {num_frames - 1}]")
  original = q[:, 1:].copy()
  q[:, 1:] = q[:, 1:] @ to_video[:2, :2].T + to_video[:2, 2]
  outside = (q[:, 1] < 0) | (q[:, 1] >= width) | (q[:, 2] < 0) | (q[:, 2] >= height)
  if outside.any():
    row = int(np.argmax(outside))
    raise errors.UserError(f"--query_points {path}: {int(outside.sum())} point(s) outside the generated "
                           f"{height}x{width} frame after the resize; first: row {row}, (x, y) = "
                           f"{original[row].tolist()} input pixels")
  return q.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class NovelViewClip:
  """One clip for a model, as ``generate`` builds it (:func:`novel_view_clip`).

  Attributes:
    inputs: the pipeline's clip, batch of one: ``reference_video`` ``(1, T, H, W, 3)`` uint8,
      ``reference_intrinsics`` / ``target_intrinsics`` ``(1, T, 3, 3)`` pixels, ``reference_cam_to_world`` /
      ``target_cam_to_world`` ``(1, T, 4, 4)`` OpenCV camera-to-world relative to the reference at frame 0 (metres),
      ``query_points`` ``(1, N, 3)`` ``(t, x, y)`` in generated pixels.
    source: the reference's name (file name or ``dataset:SPLIT:INDEX``); ``source_fps`` its frame rate (None for
      records without one).
    trajectory: the trajectory's name (a preset, or the JSON's file name).
    frame_stride: source frames between clip frames.
    to_video: ``(3, 3)`` affine map from input pixels to generated pixels (decode, ``--resize``, crop).
    truth: the true target view where it is known (:func:`ground_truth_target`), else None.
  """

  inputs: dict[str, np.ndarray]
  source: str
  source_fps: float | None
  trajectory: str
  frame_stride: int
  to_video: np.ndarray
  truth: dict[str, np.ndarray] | None


def novel_view_clip(model_config, reference: str, trajectory: str, *, num_frames: int | None = None,
                    height: int | None = None, width: int | None = None, reference_view: int = 0,
                    start_frame: int = 0, fov: float = 60.0, intrinsics: np.ndarray | None = None,
                    magnitude: float | None = None, look_at_depth: float | None = None,
                    query_points: str | None = None, grid: int = 8, resize: str = "crop",
                    reference_cameras: str | None = None, frame_stride: int | None = None) -> NovelViewClip:
  """The clip of ``generate``'s flags (its docstring states each contract) for a model of ``model_config``: the
  reference windowed as the model's data (centre crop, ``num_frames``/``height``/``width`` defaulting to the
  model's), the trajectory's target cameras, the query points (a file in input pixels, or a ``grid × grid``
  lattice at frame 0) and, for a synthetic dataset scene with a preset trajectory, the ground truth.
  ``reference_cameras``: an mp4's camera file (``data.readers.read_camera_file``, one pose per video frame from
  frame 0), the reference's cameras instead of the static-camera assumption. ``frame_stride``: source frames
  between clip frames (default the model's); an mp4 too short for the model's stride is sampled at the largest
  stride that fits its frames (``NovelViewClip.frame_stride`` says which), since any clip of at least
  ``num_frames`` frames can be a reference.

  Raises:
    FileNotFoundError, ValueError, errors.UserError: as :func:`reference_record`, :func:`trajectory_cameras` and
      :func:`user_query_points`, naming the flag.
  """
  base = sources.pipeline_config(model_config.data, 1, train=False)
  pcfg = dataclasses.replace(base, num_frames=int(num_frames or base.num_frames), height=int(height or base.height),
                             width=int(width or base.width), num_query_points=0,
                             frame_stride=int(frame_stride or base.frame_stride))
  record, source, source_fps, to_record = reference_record(
      reference, model_config, reference_view=reference_view, fov=fov, intrinsics=intrinsics,
      max_frames=start_frame + pcfg.frame_stride * (pcfg.num_frames - 1) + 1, size=(pcfg.height, pcfg.width),
      resize=resize, cameras=None if reference_cameras is None else readers.read_camera_file(reference_cameras),
      cameras_source=f"--reference_cameras {reference_cameras}")
  available, span = record["video"].shape[1] - start_frame, pcfg.num_frames - 1
  if (frame_stride is None and is_video_spec(reference) and span > 0 and 1 + pcfg.frame_stride * span > available
      and available > span):  # a short mp4: the largest stride its frames allow
    pcfg = dataclasses.replace(pcfg, frame_stride=(available - 1) // span)
  example, meta = pipeline.window_example(record, pcfg, views=(0, 1), start=start_frame, train=False, source=source)
  t, h, w = pcfg.num_frames, pcfg.height, pcfg.width
  # Input pixels → generated pixels: the decode (and resize) map, then the pipeline's scale and crop.
  to_video = np.array([[meta["scale"][0], 0.0, -meta["crop"][0]], [0.0, meta["scale"][1], -meta["crop"][1]],
                       [0.0, 0.0, 1.0]]) @ to_record
  c2w, k_tgt, name = trajectory_cameras(trajectory, t, example["reference_intrinsics"], magnitude=magnitude,
                                        look_at_depth=look_at_depth)
  queries = user_query_points(query_points, to_video, t, h, w) if query_points else grid_query_points(h, w, grid)
  truth = None
  if trajectory in trajectories.PRESET_NAMES:
    truth = ground_truth_target(reference, model_config, record, pcfg, start_frame, c2w, queries, meta["scale"],
                                meta["crop"])
  inputs = {"reference_video": example["reference_video"][None],
            "reference_intrinsics": example["reference_intrinsics"][None],
            "reference_cam_to_world": example["reference_cam_to_world"][None],
            "target_intrinsics": k_tgt[None], "target_cam_to_world": c2w[None], "query_points": queries[None]}
  return NovelViewClip(inputs=inputs, source=source, source_fps=source_fps, trajectory=name,
                       frame_stride=pcfg.frame_stride, to_video=to_video, truth=truth)
