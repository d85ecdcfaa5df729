"""Readers that turn on-disk datasets into schema records (``mvtrack_jax.data.schema``).

Two formats are supported, each with a reader of one clip and a random-access source (``len`` +
``__getitem__`` → record) that ``mvtrack_jax.data.pipeline`` consumes.

1. ReCamMaster **MultiCamVideo** (Bai et al., arXiv 2503.11647; docs/design.md §4.8)::

     <root>/.../f{18,24,35,50}_aperture{...}/sceneK/videos/cam01.mp4 ... cam10.mp4
     <root>/.../f{18,24,35,50}_aperture{...}/sceneK/cameras/camera_extrinsics.json

   Videos are 81 frames of 1280×1280 at 15 fps. ``camera_extrinsics.json`` maps
   ``"frame{i}" → {"camXX": "[r r r 0] [r r r 0] [r r r 0] [tx ty tz 1] "}``: a 4×4 Unreal Engine
   camera-to-world matrix in row-vector convention (translation in the last row) in centimetres,
   Unreal axes (x forward, y right, z up; left-handed). The conversion to an OpenCV
   camera-to-world matrix in metres is the one of the ReCamMaster / ReDirector data loaders
   (verified against their ``parse_matrix`` + ``c2w[:, [1, 2, 0, 3]]; c2w[:3, 1] *= -1;
   c2w[:3, 3] /= 100`` code): parse the 4 rows → transpose → reorder the columns ``[1, 2, 0, 3]``
   → negate column 1 → divide the translation by 100. ``unreal_to_opencv_cam_to_world`` does
   exactly this.

   Handedness: that conversion keeps Unreal's *left-handed world* axes, so for proper Unreal
   rotations its 3×3 block has determinant −1 (a reflection), which no rigid ``world_to_camera``
   can represent. The reader therefore re-expresses the world in a right-handed frame by negating
   the world y axis (``WORLD_FLIP = diag(1, −1, 1, 1)`` applied on the left) when all matrices of
   the scene have determinant −1. Every relative pose ``inv(c2w_a) @ c2w_b`` — the only thing the
   models see (docs/design.md §3, "relative cameras") — is unchanged by this, because
   ``inv(F c_a) F c_b = inv(c_a) c_b``. A scene whose cameras mix both handednesses is rejected
   (no single world frame makes all of them rigid).

   Intrinsics: focal length ``f`` mm from the folder name ``f{f}_aperture…`` with a 23.76 mm
   square sensor: ``fx = fy = W · f / 23.76`` pixels, principal point at the image centre
   ``(W / 2, H / 2)`` (ReDirector's loader). Scenes without such a folder above them (the
   validation layout ``val/10basic_trajectories/``) take the focal length given by the caller
   (``config.data.multicamvideo.focal_length_mm``). The dataset has no depth and no tracks:
   records carry ``N = 0`` (tracks ``(V, T, 0, 2)``, visible ``(V, T, 0)``, points_3d
   ``(T, 0, 3)``).

   **Lazy decoding.** A scene is 10 × 81 frames of 1280², about 4 GB decoded, of which a training
   example uses two views and one window. ``MultiCamVideoSource`` therefore returns records whose
   ``video`` is a :class:`LazyVideo`: the cameras are parsed at once (small JSON), the frames are
   decoded only when ``read_window(views, frames)`` asks for them (the input pipeline does), each view's
   mp4 up to the last requested frame, resized while decoding to ``size``. ``np.asarray`` of it
   decodes everything, so code that needs the whole video keeps working.

   ``write_multicam_scene`` writes a record in this layout (stand-ins, tests, benchmarks).

2. **``.npz`` clips** — one record per file, the project's interchange format for multi-view
   tracking data (Kubric multi-view, Panoptic Studio, DexYCB, PointOdyssey...). The file is a
   plain ``numpy.savez`` archive (no pickled objects) whose arrays are exactly the record fields:

   =============== ====================== ====================================================
   key             shape / dtype          content
   =============== ====================== ====================================================
   video           (V, T, H, W, 3) uint8  RGB frames of every view, synchronised
   intrinsics      (V, T, 3, 3) float     pinhole K in pixels of this H × W
   world_to_camera (V, T, 4, 4) float     rigid extrinsics, OpenCV axes (x right, y down,
                                          z forward), metres
   tracks          (V, T, N, 2) float     (x, y) pixel positions; origin at the top-left corner
                                          of the top-left pixel, pixel centres at +0.5
   visible         (V, T, N) bool         in front of the camera, inside the image, unoccluded
   points_3d       (T, N, 3) float        world positions of the tracked points, metres
   depth           (V, T, H, W) float     optional camera-space z-depth, metres
   =============== ====================== ====================================================

   Converting a dataset: express every camera in one world frame with OpenCV axes (negate the y
   and z camera axes of an OpenGL/Blender camera, i.e. ``c2w_cv = c2w_gl @ diag(1, −1, −1, 1)``),
   convert tracks to the corner-origin pixel convention (add 0.5 to integer-centred coordinates),
   set ``visible`` false for occluded or out-of-frame points (their ``tracks`` values are then
   ignored but must be finite), use ``N = 0`` arrays for clips without tracks, and call
   ``write_npz_clip``, which validates the record first. Any float dtype is accepted on reading
   and returned as float32.

All readers validate with ``schema.validate_record``; bad input raises ``schema.RecordError``
naming the file and the field (missing or corrupt mp4, json with missing frames or cameras,
fields whose V/T/N disagree, NaN/inf, non-invertible cameras, tracks outside the image).
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from typing import Any, Iterable, Mapping, Sequence

import cv2
import numpy as np

from mvtrack_jax.data import schema
from mvtrack_jax.data import video_io
from mvtrack_jax.geometry import cameras as geometry

RecordError = schema.RecordError
Record = dict[str, np.ndarray]

# MultiCamVideo constants (ReCamMaster's dataset card; docs/design.md §4.8).
UNREAL_SENSOR_WIDTH_MM = 23.76
MULTICAM_FOCAL_LENGTHS_MM = (18.0, 24.0, 35.0, 50.0)
MULTICAM_FPS = 15.0
EXTRINSICS_FILE = os.path.join("cameras", "camera_extrinsics.json")
VIDEOS_DIR = "videos"
# Negates the world y axis: turns Unreal's left-handed world into a right-handed one.
WORLD_FLIP = np.diag([1.0, -1.0, 1.0, 1.0])

_FOCAL_FOLDER = re.compile(r"^f(\d+(?:\.\d+)?)_aperture", re.IGNORECASE)
_CAMERA_NAME = re.compile(r"^cam\d+$")


# ----------------------------------------------------------------------------------------------
# MultiCamVideo
# ----------------------------------------------------------------------------------------------


def parse_unreal_matrix(text: str, *, source: str = "<json>", field: str = "matrix") -> np.ndarray:
  """Parses ``"[a b c d] [e f g h] [i j k l] [m n o p] "`` into a ``(4, 4)`` float64 array (rows).

  Raises:
    RecordError: naming ``source``/``field`` when the text is not four bracketed rows of four
      numbers.
  """
  if not isinstance(text, str):
    raise RecordError(source, field, f"expected a matrix string '[r r r 0] ... [tx ty tz 1]', got {type(text).__name__}")
  rows = re.findall(r"\[([^\[\]]*)\]", text)
  try:
    values = [[float(v) for v in row.split()] for row in rows]
  except ValueError as e:
    raise RecordError(source, field, f"non-numeric entry in {text!r}: {e}") from e
  if len(values) != 4 or any(len(r) != 4 for r in values):
    raise RecordError(source, field, f"expected 4 bracketed rows of 4 numbers, got {text!r}")
  return np.asarray(values, np.float64)


def unreal_to_opencv_cam_to_world(matrix: np.ndarray) -> np.ndarray:
  """Converts Unreal row-vector camera matrices (cm) into OpenCV camera-to-world (m).

  The ReCamMaster / ReDirector conversion, step by step: transpose (row-vector → column-vector),
  reorder the columns ``[1, 2, 0, 3]`` (Unreal camera axes forward/right/up → right/up/forward),
  negate column 1 (up → down), divide the translation by 100 (cm → m).

  Args:
    matrix: ``(..., 4, 4)`` parsed Unreal matrices (rows as written in the json).

  Returns:
    ``(..., 4, 4)`` float64 camera-to-world matrices with OpenCV camera axes, still in Unreal's
    (left-handed) world axes; see the module docstring for the handedness fix.
  """
  c2w = np.swapaxes(np.asarray(matrix, np.float64), -1, -2)
  c2w = c2w[..., :, [1, 2, 0, 3]].copy()
  c2w[..., :3, 1] *= -1.0
  c2w[..., :3, 3] /= 100.0
  return c2w


def focal_length_from_path(path: str | os.PathLike[str]) -> float | None:
  """Focal length (mm) from the nearest ``f{mm}_aperture…`` folder in ``path``, or ``None``."""
  parts = os.path.normpath(os.path.abspath(os.fspath(path))).split(os.sep)
  for part in reversed(parts):
    match = _FOCAL_FOLDER.match(part)
    if match:
      return float(match.group(1))
  return None


def multicam_intrinsics(height: int, width: int, focal_length_mm: float) -> np.ndarray:
  """Pinhole intrinsics of a MultiCamVideo camera at its native ``height × width``.

  ``fx = fy = W · f / 23.76`` px (23.76 mm square sensor), principal point at ``(W / 2, H / 2)``
  (corner-origin pixel coordinates). Source: ReDirector's MultiCamVideo loader.

  Returns:
    ``(3, 3)`` float64 ``K``.
  """
  focal_px = width * focal_length_mm / UNREAL_SENSOR_WIDTH_MM
  return np.array([[focal_px, 0.0, width / 2.0], [0.0, focal_px, height / 2.0], [0.0, 0.0, 1.0]])


def _resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  h, w = size
  if frame.shape[:2] == (h, w):
    return frame
  shrink = h <= frame.shape[0] and w <= frame.shape[1]
  return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def load_json(path: str, field: str) -> Any:
  """The parsed JSON file at ``path``; ``RecordError(path, field)`` when it is missing or not JSON
  (shared by the dataset readers: MultiCamVideo here, ``data.dycheck``, ``data.convert_kubric``)."""
  if not os.path.isfile(path):
    raise RecordError(path, field, "file not found")
  try:
    with open(path, "r") as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise RecordError(path, field, f"not valid JSON: {e}") from e


def list_scene_cameras(scene_dir: str | os.PathLike[str]) -> list[str]:
  """Sorted camera names (``camXX``) of the ``videos/camXX.mp4`` files of a MultiCamVideo scene."""
  videos = os.path.join(os.fspath(scene_dir), VIDEOS_DIR)
  if not os.path.isdir(videos):
    raise RecordError(os.fspath(scene_dir), "video", f"no '{VIDEOS_DIR}' folder (expected {videos})")
  names = sorted(n[:-4] for n in os.listdir(videos) if n.endswith(".mp4") and _CAMERA_NAME.match(n[:-4]))
  if not names:
    raise RecordError(videos, "video", "no camXX.mp4 files")
  return names


class LazyVideo:
  """A record's ``(V, T, H, W, 3)`` uint8 ``video`` decoded on demand from one video file per view.

  Attributes:
    paths: one video file per view; ``shape``, ``ndim`` (5), ``dtype`` (uint8) as an array's.

  ``read_window(views, frames)`` decodes only those views, each up to its last requested frame, resizing
  to ``size`` while decoding (cv2 ``INTER_AREA`` when shrinking); ``np.asarray(video)`` and
  indexing decode everything. Errors (``RecordError``) name the file: undecodable, a frame size
  other than the first view's, fewer frames than ``T``.
  """

  ndim = 5
  dtype = np.dtype(np.uint8)

  def __init__(self, paths: Sequence[str], num_frames: int, native_hw: tuple[int, int],
               size: tuple[int, int] | None = None):
    self.paths, self.native_hw, self.size = list(paths), tuple(native_hw), None if size is None else tuple(size)
    self.shape = (len(self.paths), int(num_frames)) + (self.size or self.native_hw) + (3,)

  def read_window(self, views: Sequence[int], frames: Sequence[int]) -> np.ndarray:
    """``(len(views), len(frames), H, W, 3)`` uint8: the given views at the given frames (any order)."""
    frames = [int(f) for f in frames]
    if not frames or min(frames) < 0 or max(frames) >= self.shape[1]:
      raise ValueError(f"LazyVideo.read_window: frames must be in [0, {self.shape[1]}), got {frames}")
    wanted = set(frames)
    out = []
    for view in views:
      path = self.paths[int(view)]
      decoded = {}
      try:
        for index, frame in enumerate(video_io.iter_video(path, num_frames=max(frames) + 1)):
          if index == 0 and frame.shape[:2] != self.native_hw:
            raise RecordError(path, "video", f"frame size {frame.shape[:2]} differs from {self.native_hw} of "
                              f"{os.path.basename(self.paths[0])}")
          if index in wanted:
            decoded[index] = _resize_frame(frame, self.size) if self.size else frame
      except video_io.VideoError as e:
        raise RecordError(path, "video", str(e)) from e
      if len(decoded) < len(wanted):
        raise RecordError(path, "video", f"has {len(decoded) and max(decoded) + 1} frames; frame {max(frames)} "
                          f"requested ({self.shape[1]} frames in the camera file)")
      out.append(np.stack([decoded[f] for f in frames]))
    return np.stack(out)

  def __array__(self, dtype=None, copy=None):
    video = self.read_window(range(self.shape[0]), range(self.shape[1]))
    return video if dtype is None else video.astype(dtype)

  def __getitem__(self, index):
    return np.asarray(self)[index]

  def __len__(self) -> int:
    return self.shape[0]


def read_multicam_scene(scene_dir: str | os.PathLike[str], *, cameras: Sequence[str] | None = None,
                        num_frames: int | None = None, focal_length_mm: float | None = None,
                        size: tuple[int, int] | None = None, lazy: bool = False) -> Record:
  """Reads one MultiCamVideo scene into a record (``N = 0``: no tracks, no depth).

  Args:
    scene_dir: the ``sceneK`` folder holding ``videos/camXX.mp4`` and
      ``cameras/camera_extrinsics.json``.
    cameras: camera names to read, in this order (e.g. ``["cam01", "cam05"]``); default all
      ``camXX.mp4`` files of ``videos/``, sorted.
    num_frames: read the first ``num_frames`` frames (default: all frames of the videos, or with
      ``lazy`` all frames of the camera file).
    focal_length_mm: lens focal length for a scene without an ``f{mm}_aperture…`` folder above it
      (the folder's value wins when there is one).
    size: optional ``(height, width)`` to resize frames to while decoding (cv2 INTER_AREA when
      shrinking), with the intrinsics scaled to match (``geometry.scale_intrinsics``); keeps memory
      bounded for 1280×1280 sources.
    lazy: return ``video`` as a :class:`LazyVideo` (nothing decoded yet; the record is then checked
      when the pipeline validates the part it uses).

  Returns:
    A record: ``video`` ``(V, T, H, W, 3)`` uint8 (validated; or a ``LazyVideo``), ``intrinsics``
    ``(V, T, 3, 3)`` px, ``world_to_camera`` ``(V, T, 4, 4)`` (OpenCV, metres, right-handed world;
    see module docstring), empty ``tracks``/``visible``/``points_3d``.

  Raises:
    RecordError: naming the file and field for a missing folder/video/json, an undecodable mp4,
      videos with different sizes or too few frames, a json without some ``frame{i}`` or camera,
      malformed or non-rigid matrices, mixed handedness, or no known focal length.
  """
  scene_dir = os.fspath(scene_dir)
  if not os.path.isdir(scene_dir):
    raise RecordError(scene_dir, "scene", "scene folder not found")
  if num_frames is not None and num_frames < 1:
    raise ValueError(f"read_multicam_scene: num_frames must be >= 1 or None, got {num_frames}")
  if size is not None and (len(size) != 2 or min(size) < 1):
    raise ValueError(f"read_multicam_scene: size must be (height, width) >= 1, got {size}")
  names = list(cameras) if cameras is not None else list_scene_cameras(scene_dir)
  if not names:
    raise ValueError("read_multicam_scene: `cameras` is empty")
  if focal_length_mm is not None and not focal_length_mm > 0:
    raise ValueError(f"read_multicam_scene: focal_length_mm must be positive, got {focal_length_mm}")
  focal_length_mm = focal_length_from_path(scene_dir) or focal_length_mm
  if focal_length_mm is None:
    raise RecordError(scene_dir, "intrinsics", "no focal length: no 'f{mm}_aperture...' folder above the scene; "
                      "set it (config.data.multicamvideo.focal_length_mm)")
  if lazy:
    return _lazy_multicam_scene(scene_dir, names, num_frames, focal_length_mm, size)

  # Videos.
  videos = []
  native_hw = None
  for name in names:
    path = os.path.join(scene_dir, VIDEOS_DIR, f"{name}.mp4")
    frames, hw = [], None
    try:
      for frame in video_io.iter_video(path, num_frames=num_frames):
        hw = hw or frame.shape[:2]
        frames.append(_resize_frame(frame, size) if size else frame)
    except video_io.VideoError as e:
      raise RecordError(path, "video", str(e)) from e
    if native_hw is None:
      native_hw = hw
    elif hw != native_hw:
      raise RecordError(path, "video", f"frame size {hw} differs from {native_hw} of {names[0]}.mp4")
    if num_frames is not None and len(frames) < num_frames:
      raise RecordError(path, "video", f"has {len(frames)} frames, {num_frames} requested")
    if videos and len(frames) != len(videos[0]):
      raise RecordError(path, "video", f"has {len(frames)} frames but {names[0]}.mp4 has {len(videos[0])}")
    videos.append(np.stack(frames))
  video = np.stack(videos)
  v, t, h, w, _ = video.shape
  record = _multicam_cameras(scene_dir, names, t, native_hw, (h, w), focal_length_mm)
  record["video"] = video
  return schema.validate_record(record, source=scene_dir)


def _lazy_multicam_scene(scene_dir: str, names: Sequence[str], num_frames: int | None, focal_length_mm: float,
                         size: tuple[int, int] | None) -> Record:
  """``read_multicam_scene(lazy=True)``: cameras now, frames on demand (``LazyVideo``)."""
  paths = [os.path.join(scene_dir, VIDEOS_DIR, f"{name}.mp4") for name in names]
  for path in paths:
    if not os.path.isfile(path):
      raise RecordError(path, "video", "video file not found")
  try:
    native_hw = video_io.frame_size(paths[0])
  except video_io.VideoError as e:
    raise RecordError(paths[0], "video", str(e)) from e
  json_path = os.path.join(scene_dir, EXTRINSICS_FILE)
  data = load_json(json_path, "camera_extrinsics")
  frames_in_json = sum(1 for key in data if re.fullmatch(r"frame\d+", key)) if isinstance(data, Mapping) else 0
  t = frames_in_json if num_frames is None else num_frames
  if t < 1:
    raise RecordError(json_path, "camera_extrinsics", "no 'frame{i}' entries")
  video = LazyVideo(paths, t, native_hw, size)
  record = _multicam_cameras(scene_dir, names, t, native_hw, video.shape[2:4], focal_length_mm, data)
  record["video"] = video
  return record


def _multicam_cameras(scene_dir: str, names: Sequence[str], t: int, native_hw: tuple[int, int],
                      hw: tuple[int, int], focal_length_mm: float, data: Any = None) -> Record:
  """Every record field of a MultiCamVideo scene but ``video``: cameras of ``t`` frames (from the parsed
  extrinsics ``data``, read here when None), intrinsics of ``hw`` frames resized from ``native_hw``, empty
  tracks."""
  v, (h, w) = len(names), hw
  json_path = os.path.join(scene_dir, EXTRINSICS_FILE)
  if data is None:
    data = load_json(json_path, "camera_extrinsics")
  if not isinstance(data, Mapping):
    raise RecordError(json_path, "camera_extrinsics", f"expected an object of 'frame{{i}}' entries, got {type(data).__name__}")
  raw = np.zeros((v, t, 4, 4))
  for i in range(t):
    key = f"frame{i}"
    if key not in data:
      raise RecordError(json_path, key, f"missing (the videos have {t} frames; json has {len(data)} frame entries)")
    entry = data[key]
    if not isinstance(entry, Mapping):
      raise RecordError(json_path, key, f"expected an object of camXX matrices, got {type(entry).__name__}")
    for j, name in enumerate(names):
      if name not in entry:
        raise RecordError(json_path, f"{key}/{name}", f"camera missing (entry has {sorted(entry)})")
      raw[j, i] = parse_unreal_matrix(entry[name], source=json_path, field=f"{key}/{name}")
  c2w = unreal_to_opencv_cam_to_world(raw)
  det = np.linalg.det(c2w[..., :3, :3])
  if np.any(np.abs(np.abs(det) - 1.0) > 1e-2):
    j, i = (int(x) for x in np.argwhere(np.abs(np.abs(det) - 1.0) > 1e-2)[0])
    raise RecordError(json_path, f"frame{i}/{names[j]}",
                      f"rotation block is not orthonormal (det = {det[j, i]:.4g}); non-invertible or scaled camera")
  if np.all(det < 0):
    c2w = WORLD_FLIP @ c2w
  elif not np.all(det > 0):
    flipped = sorted({names[j] for j in range(v) if np.any(det[j] < 0)})
    kept = sorted({names[j] for j in range(v) if np.any(det[j] > 0)})
    raise RecordError(json_path, "camera_extrinsics",
                      f"cameras mix handedness (det −1 after conversion: {flipped}; det +1: {kept}); "
                      "no single world frame makes them all rigid; read them with separate `cameras=` lists")
  world_to_camera = geometry.invert_rigid(c2w)

  k = multicam_intrinsics(native_hw[0], native_hw[1], focal_length_mm)
  if (h, w) != tuple(native_hw):
    k = geometry.scale_intrinsics(k, w / native_hw[1], h / native_hw[0])
  return {
      "intrinsics": np.broadcast_to(k, (v, t, 3, 3)).astype(np.float32),
      "world_to_camera": world_to_camera.astype(np.float32),
      "tracks": np.zeros((v, t, 0, 2), np.float32),
      "visible": np.zeros((v, t, 0), bool),
      "points_3d": np.zeros((t, 0, 3), np.float32),
  }


def write_multicam_scene(scene_dir: str | os.PathLike[str], record: Mapping[str, np.ndarray], *,
                         fps: float = MULTICAM_FPS) -> list[str]:
  """Writes a record's video and cameras in the MultiCamVideo layout (inverse of ``read_multicam_scene``).

  ``videos/camXX.mp4`` per view (H.264, so frames come back within a few levels) and
  ``cameras/camera_extrinsics.json`` (Unreal row-vector matrices in centimetres, the world's y axis
  negated back to Unreal's left-handed axes). Tracks and depth are not stored (the format has
  none); the intrinsics are not either: the reader derives them from the focal length of the
  ``f{mm}_aperture…`` folder, so put ``scene_dir`` under one that matches the record's ``fx``.

  Returns:
    The camera names, ``cam01`` … in view order.
  """
  scene_dir = os.fspath(scene_dir)
  video, w2c = np.asarray(record["video"]), np.asarray(record["world_to_camera"], np.float64)
  names = [f"cam{j + 1:02d}" for j in range(video.shape[0])]
  for j, name in enumerate(names):
    video_io.write_video(os.path.join(scene_dir, VIDEOS_DIR, f"{name}.mp4"), video[j], fps=fps)
  unreal = WORLD_FLIP @ geometry.invert_rigid(w2c)          # right-handed OpenCV world → Unreal's axes
  unreal[..., :3, 3] *= 100.0                               # metres → centimetres
  unreal[..., :3, 1] *= -1.0                                # camera y: down → up
  rows = np.zeros_like(unreal)
  rows[..., [1, 2, 0, 3]] = unreal                          # (right, up, forward) → (forward, right, up)
  rows = np.swapaxes(rows, -1, -2)                          # column vectors → row vectors
  text = lambda m: "".join("[" + " ".join(f"{v:.9g}" for v in row) + "] " for row in m)
  data = {f"frame{i}": {name: text(rows[j, i]) for j, name in enumerate(names)} for i in range(video.shape[1])}
  path = os.path.join(scene_dir, EXTRINSICS_FILE)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with video_io.atomic_output(path) as tmp:
    with open(tmp, "w") as fh:
      json.dump(data, fh)
  return names


def find_multicam_scenes(root: str | os.PathLike[str]) -> list[str]:
  """Sorted scene folders under ``root`` (any depth) that hold ``videos/`` and the extrinsics json."""
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise FileNotFoundError(f"MultiCamVideo root {root!r} is not a directory")
  scenes = []
  for dirpath, dirnames, _ in os.walk(root):
    if VIDEOS_DIR in dirnames and os.path.isfile(os.path.join(dirpath, EXTRINSICS_FILE)):
      scenes.append(dirpath)
      dirnames[:] = []  # a scene does not contain scenes
    dirnames.sort()
  return sorted(scenes)


class MultiCamVideoSource:
  """Random-access source over the scenes of a MultiCamVideo tree: ``source[i]`` → record.

  Scenes are found once (sorted paths, so indices are stable) and read on access, so the source
  is cheap to pickle into grain worker processes. Keyword arguments are forwarded to
  ``read_multicam_scene`` (``cameras``, ``num_frames``, ``size``, ``focal_length_mm``, ``lazy``). By
  default records are lazy (module docstring): the pipeline decodes only an example's two views
  and window, at ``size``.
  """

  def __init__(self, root: str | os.PathLike[str], *, cameras: Sequence[str] | None = None,
               num_frames: int | None = None, size: tuple[int, int] | None = None,
               focal_length_mm: float | None = None, lazy: bool = True):
    self.root = os.fspath(root)
    self.scenes = find_multicam_scenes(self.root)
    if not self.scenes:
      raise FileNotFoundError(
          f"no MultiCamVideo scenes under {self.root!r} (expected .../sceneK/videos/camXX.mp4 and "
          f".../sceneK/{EXTRINSICS_FILE})")
    self._kwargs = dict(cameras=None if cameras is None else list(cameras), num_frames=num_frames,
                        size=None if size is None else tuple(size), focal_length_mm=focal_length_mm, lazy=lazy)

  def __len__(self) -> int:
    return len(self.scenes)

  def __getitem__(self, index: int) -> Record:
    index = int(index)
    if not -len(self) <= index < len(self):
      raise IndexError(f"MultiCamVideoSource index {index} out of range [0, {len(self)})")
    return read_multicam_scene(self.scenes[index], **self._kwargs)

  def caption_keys(self, index: int) -> list[str]:
    """The absolute ``videos/camXX.mp4`` path of each view of record ``index``, in record order (what a
    captions file such as ReCamMaster's ``metadata.csv`` names; ``data.encode_text``)."""
    scene = self.scenes[int(index)]
    cameras = self._kwargs["cameras"] or list_scene_cameras(scene)
    return [os.path.abspath(os.path.join(scene, VIDEOS_DIR, f"{name}.mp4")) for name in cameras]

  def __repr__(self) -> str:
    return f"MultiCamVideoSource(root={self.root!r}, scenes={len(self)}, {self._kwargs})"


# ----------------------------------------------------------------------------------------------
# .npz clips
# ----------------------------------------------------------------------------------------------


def write_npz_clip(path: str | os.PathLike[str], record: Mapping[str, np.ndarray], *, compress: bool = True) -> None:
  """Validates a record and writes it atomically as an ``.npz`` clip (layout: module docstring).

  Args:
    path: destination file; parent directories are created.
    record: a schema record (``depth`` optional).
    compress: ``numpy.savez_compressed`` (default) or plain ``numpy.savez``.

  Raises:
    RecordError: the record violates the schema (the message names ``path`` and the field).
  """
  path = os.fspath(path)
  clean = schema.validate_record(record, source=path)
  save = np.savez_compressed if compress else np.savez
  with video_io.atomic_output(path) as tmp:
    with open(tmp, "wb") as f:
      save(f, **clean)


def read_npz_clip(path: str | os.PathLike[str]) -> Record:
  """Reads and validates an ``.npz`` clip (layout: module docstring).

  Returns:
    The record with ``video`` uint8, ``visible`` bool and float32 elsewhere.

  Raises:
    RecordError: naming the file and field when the file is missing or not a readable npz archive,
      holds pickled objects, or violates the schema (missing/unknown field, disagreeing V/T/N/H/W,
      NaN/inf, invalid cameras, visible tracks outside the image).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise RecordError(path, "<file>", "npz clip not found")
  try:
    with np.load(path, allow_pickle=False) as archive:
      record = {}
      for key in archive.files:
        try:
          record[key] = archive[key]
        except ValueError as e:  # object arrays need pickle
          raise RecordError(path, key, f"cannot load without pickle (object array?): {e}") from e
  except RecordError:
    raise
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise RecordError(path, "<file>", f"not a readable .npz archive: {e}") from e
  return schema.validate_record(record, source=path)


# Per-video camera files: ``<video stem>.cameras.npz`` beside an mp4.
CAMERA_FILE_SUFFIX = ".cameras.npz"


def camera_file_for(video_path: str) -> str:
  """Where the per-video camera file of ``video_path`` sits: ``clip.mp4`` → ``clip.cameras.npz`` beside it."""
  return os.path.splitext(os.fspath(video_path))[0] + CAMERA_FILE_SUFFIX


def existing_camera_file(video_path: str) -> str | None:
  """:func:`camera_file_for` when that file exists, else None (the static-camera assumption)."""
  path = camera_file_for(video_path)
  return path if os.path.isfile(path) else None


def read_camera_file(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
  """Reads the cameras of a video that has no recorded ones (a ViPE, COLMAP or GLOMAP estimate, converted).

  The file is an ``.npz`` with ``intrinsics`` ``(T, 3, 3)`` (or one ``(3, 3)`` for every frame) pinhole matrices
  in the video's own pixels (corner origin, the centre of the top-left pixel at ``(0.5, 0.5)``) and
  ``cam_to_world`` ``(T, 4, 4)`` OpenCV camera-to-world poses (x right, y down, z forward; any world frame and
  scale: consumers make them relative to frame 0), one per video frame from the first.

  Returns:
    ``(intrinsics (T, 3, 3), cam_to_world (T, 4, 4))``, float64.

  Raises:
    RecordError: naming the file and field: not a readable npz, a missing key, wrong shapes, different frame
      counts, non-finite values, invalid intrinsics or poses that are not rigid.
  """
  path = os.fspath(path)
  try:
    with np.load(path, allow_pickle=False) as archive:
      missing = [k for k in ("intrinsics", "cam_to_world") if k not in archive.files]
      if missing:
        raise RecordError(path, missing[0], f"missing; a camera file holds 'intrinsics' (T, 3, 3) pixels and "
                                            f"'cam_to_world' (T, 4, 4) OpenCV poses (has {sorted(archive.files)})")
      k, c2w = np.asarray(archive["intrinsics"], np.float64), np.asarray(archive["cam_to_world"], np.float64)
  except RecordError:
    raise
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise RecordError(path, "<file>", f"not a readable .npz archive: {e}") from e
  if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or not len(c2w):
    raise RecordError(path, "cam_to_world", f"shape {c2w.shape}, expected (T, 4, 4) with T >= 1")
  if k.shape == (3, 3):
    k = np.broadcast_to(k, (len(c2w), 3, 3))
  if k.shape != (len(c2w), 3, 3):
    raise RecordError(path, "intrinsics", f"shape {k.shape}, expected (3, 3) or ({len(c2w)}, 3, 3) (one per pose)")
  try:
    k = geometry.check_intrinsics(k, f"{path}: intrinsics")
    c2w = geometry.check_rigid(c2w, f"{path}: cam_to_world")
  except ValueError as e:
    raise RecordError(path, "cameras", str(e)) from e
  return k, c2w


class NpzClipSource:
  """Random-access source over ``.npz`` clips: ``source[i]`` → record of the i-th file.

  Args:
    paths_or_dir: a directory (all ``*.npz`` below it, recursively, sorted), a single ``.npz``
      file, or a sequence of files (kept in the given order).
  """

  def __init__(self, paths_or_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]):
    if isinstance(paths_or_dir, (str, os.PathLike)):
      p = os.fspath(paths_or_dir)
      if os.path.isdir(p):
        paths = sorted(os.path.join(d, f) for d, _, files in os.walk(p) for f in files if f.endswith(".npz"))
        if not paths:
          raise FileNotFoundError(f"NpzClipSource: no .npz files under {p!r}")
      elif os.path.isfile(p):
        paths = [p]
      else:
        raise FileNotFoundError(f"NpzClipSource: {p!r} is neither a directory nor a file")
    else:
      paths = [os.fspath(x) for x in paths_or_dir]
      if not paths:
        raise ValueError("NpzClipSource: empty list of paths")
    self.paths = paths

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> Record:
    index = int(index)
    if not -len(self) <= index < len(self):
      raise IndexError(f"NpzClipSource index {index} out of range [0, {len(self)})")
    return read_npz_clip(self.paths[index])

  def caption_keys(self, index: int) -> list[str]:
    """``[absolute path of clip index]``: one caption for all views of the clip (``data.encode_text``)."""
    return [os.path.abspath(self.paths[int(index)])]

  def __repr__(self) -> str:
    return f"NpzClipSource({len(self)} clips, first={self.paths[0]!r})"
