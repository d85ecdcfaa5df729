"""Reader of the DyCheck iPhone dataset (Gao et al., NeurIPS 2022) into the project's record schema.

DyCheck ("Monocular Dynamic View Synthesis: A Reality Check", github.com/KAIR-BAIR/dycheck) films a
dynamic scene with one hand-held iPhone (the **training** camera, the monocular input) and one or
two tripod-mounted phones (the held-out **validation** cameras). A processed sequence is a folder in
the Nerfies layout (Park et al. 2021)::

  <sequence>/dataset.json          {"count", "num_exemplars", "ids": [...], "train_ids": [...], "val_ids": [...]}
  <sequence>/metadata.json         {id: {"warp_id": time, "camera_id": camera, "appearance_id": ...}}
  <sequence>/camera/<id>.json      one camera per frame and camera (fields below)
  <sequence>/rgb/<s>x/<id>.png     RGB(A) frames, downscaled by the integer factor s (1x, 2x)
  <sequence>/covisible/<s>x/val/<id>.png   optional: pixels of a validation frame seen by the training camera
  (also depth/, keypoint/, splits/, scene.json, extra.json, points.npy: not read here)

Ids are ``"<camera>_<time:05d>"``, e.g. ``"0_00000"`` (training camera 0) and ``"1_00042"`` (validation
camera 1 at time 42, the same instant as ``"0_00042"``). Validation frames that could not be time-
synchronised were dropped by DyCheck's processing, so a validation camera may lack some times (in
``paper-windmill`` camera 2 starts at time 77). The time and camera of an id are read from
``metadata.json`` (``warp_id``, ``camera_id``), as DyCheck's ``_load_metadata_info`` does, not parsed
from the name. Source: ``dycheck/datasets/iphone.py`` (``Record3DProcessor._dump_data``) and
``dycheck/datasets/nerfies.py`` (``NerfiesParser``).

**Camera JSON** (``dycheck/geometry/camera.py``, class ``Camera``, after Nerfies' camera format):
``orientation`` 3×3, ``position`` 3, ``focal_length``, ``principal_point`` 2, ``skew``,
``pixel_aspect_ratio``, ``radial_distortion`` 3, ``tangential_distortion`` 2 (the older key
``tangential`` is accepted, as DyCheck's ``fromjson`` does), ``image_size`` 2 = ``(W, H)``.

- ``orientation`` is the **world-to-camera rotation** ("maps the world coordinates to local
  coordinates"; DyCheck writes it as ``c2w[:3, :3].T``) and ``position`` the camera centre in world
  coordinates, so ``X_cam = orientation · (X_world − position)``; the camera axes are OpenCV's
  ("the local-to-world transform assumes (right, down, forward)"; DyCheck converts the Record3D
  OpenGL poses with ``c2w @ diag(1, −1, −1, 1)``). Hence the project's extrinsics are simply
  ``world_to_camera = [[R, −R·p], [0, 0, 0, 1]]`` with ``R = orientation`` (DyCheck's ``extrin``).
- Intrinsics (DyCheck's ``intrin``): ``K = [[f, skew, cx], [0, f·pixel_aspect_ratio, cy], [0, 0, 1]]``.
- Pixel coordinates: DyCheck casts rays through ``get_pixels(use_center=True)`` = integer pixel index
  **+ 0.5**, i.e. the origin is the top-left corner of the top-left pixel and pixel centres sit at
  +0.5 — the project's convention (docs/design.md §3). The principal point is therefore used as
  stored, with no shift.
- Scale: the camera files describe the full-resolution images (``image_size``); DyCheck's
  ``rescale_image_domain(1/s)`` multiplies focal length and principal point by ``1/s`` for the
  ``rgb/<s>x`` images (size ``round(W/s) × round(H/s)``), which is exact for the corner-origin
  convention (``geometry.scale_intrinsics``); this reader does the same.
- Units: the iPhone cameras come from Record3D / ARKit in metres. DyCheck's ``scene.json`` centre and
  scale (a normalisation for NeRF training, applied by its parser at load time) are **not** applied:
  records stay in metres.
- Distortion: the iPhone cameras have none. The schema is a pinhole model, so a camera with a
  non-zero ``radial_distortion`` / ``tangential_distortion`` is rejected.

**Records.** :func:`read_clip` returns a schema record (``data.schema``) whose view 0 is the training
(reference) camera and views 1… the requested validation cameras, over given time ids. There are no
tracks (``tracks (V, T, 0, 2)``, ``visible (V, T, 0)``, ``points_3d (T, 0, 3)``, like MultiCamVideo)
and no depth. A validation camera's missing times are filled with its nearest present time (earlier
on ties: frame and camera), and :class:`DycheckClip` ``.present`` says which frames are real, so
metrics can skip the filled ones. For the iPhone validation cameras the filled camera is exact: they are
static, DyCheck solves one PnP pose per validation camera and writes it for every frame
(``Record3DProcessor._process_val_cameras``).

Bad input raises ``schema.RecordError`` naming the file and the field (missing file, invalid JSON,
missing or malformed field, a rotation that is not one, distortion, an image whose size disagrees with
``image_size``, ids missing from ``metadata.json``, a time the training camera lacks).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Mapping, Sequence

import imageio.v3 as iio
import numpy as np

from mvtrack_jax.data import readers
from mvtrack_jax.data import schema
from mvtrack_jax.geometry import cameras as geometry

RecordError = schema.RecordError

DATASET_JSON = "dataset.json"
METADATA_JSON = "metadata.json"
CAMERA_DIR = "camera"
RGB_DIR = "rgb"
COVISIBLE_DIR = "covisible"
_SCALE_DIR = re.compile(r"^(\d+)x$")
_ROTATION_TOL = 1e-3  # |RᵀR − I| of an orientation (the JSON holds float32 values)


# ------------------------------------------------------------------------------------------------
# Files.


def _array(value: Any, path: str, field: str, shape: tuple[int, ...]) -> np.ndarray:
  """``value`` as a finite float64 array of ``shape`` (``()`` for a scalar), else ``RecordError``."""
  try:
    arr = np.asarray(value, np.float64)
  except (TypeError, ValueError) as e:
    raise RecordError(path, field, f"expected numbers of shape {shape}, got {value!r}") from e
  if arr.shape != shape:
    raise RecordError(path, field, f"shape {arr.shape}, expected {shape}")
  if not np.all(np.isfinite(arr)):
    raise RecordError(path, field, f"non-finite value(s): {arr.tolist()}")
  return arr


# ------------------------------------------------------------------------------------------------
# Cameras.


@dataclasses.dataclass(frozen=True)
class DycheckCamera:
  """One DyCheck camera in the project's conventions (module docstring).

  Attributes:
    intrinsics: ``(3, 3)`` float64 pinhole ``K`` in pixels of the ``image_size`` images (corner origin,
      centres at +0.5).
    world_to_camera: ``(4, 4)`` float64 rigid OpenCV extrinsics (x right, y down, z forward), metres.
    image_size: ``(W, H)`` pixels the intrinsics refer to.
  """

  intrinsics: np.ndarray
  world_to_camera: np.ndarray
  image_size: tuple[int, int]

  def rescaled(self, scale: int) -> "DycheckCamera":
    """The camera of the ``rgb/<scale>x`` images: ``f``, ``c`` (and skew) × ``1/scale``, size ``round(W/scale)``."""
    w, h = self.image_size
    k = geometry.scale_intrinsics(self.intrinsics, 1.0 / scale, 1.0 / scale)
    return DycheckCamera(k, self.world_to_camera, (int(round(w / scale)), int(round(h / scale))))


def camera_from_dict(camera: Mapping[str, Any], path: str = "<camera>") -> DycheckCamera:
  """Converts a DyCheck / Nerfies camera dictionary to the project's conventions (module docstring).

  Args:
    camera: the parsed ``camera/<id>.json``: ``orientation`` (3, 3) world-to-camera rotation,
      ``position`` (3,) camera centre (metres), ``focal_length``, ``principal_point`` (2,) pixels,
      ``image_size`` (2,) ``(W, H)``; optional ``skew`` (0), ``pixel_aspect_ratio`` (1),
      ``radial_distortion`` (3,) and ``tangential_distortion`` (2,) (zeros; ``tangential`` accepted).
    path: the file, named in errors.

  Returns:
    A :class:`DycheckCamera`: ``intrinsics = [[f, skew, cx], [0, f·pixel_aspect_ratio, cy], [0, 0, 1]]``,
    ``world_to_camera = [[R, −R·position], [0, 0, 0, 1]]`` with ``R`` the orientation (re-orthonormalised
    by SVD to remove float32 rounding), ``image_size (W, H)``.

  Raises:
    schema.RecordError: a required field is missing, a field has the wrong shape or non-finite values,
      the orientation is not a rotation (``|RᵀR − I| > 1e-3`` or ``det R ≤ 0``), the focal length,
      pixel aspect ratio or image size is not positive, or the distortion is not zero.
  """
  if not isinstance(camera, Mapping):
    raise RecordError(path, "camera", f"expected a JSON object, got {type(camera).__name__}")
  for field in ("orientation", "position", "focal_length", "principal_point", "image_size"):
    if field not in camera:
      raise RecordError(path, field, f"missing (a DyCheck camera has orientation, position, focal_length, "
                        f"principal_point, image_size; keys here: {sorted(camera)})")
  rot = _array(camera["orientation"], path, "orientation", (3, 3))
  err = float(np.abs(rot.T @ rot - np.eye(3)).max())
  if err > _ROTATION_TOL or np.linalg.det(rot) <= 0:
    raise RecordError(path, "orientation", f"not a rotation matrix (|RᵀR − I| = {err:.3g}, det = "
                      f"{np.linalg.det(rot):.3g}); expected the world-to-camera rotation")
  u, _, vt = np.linalg.svd(rot)
  rot = u @ vt
  position = _array(camera["position"], path, "position", (3,))
  focal = float(_array(camera["focal_length"], path, "focal_length", ()))
  aspect = float(_array(camera.get("pixel_aspect_ratio", 1.0), path, "pixel_aspect_ratio", ()))
  skew = float(_array(camera.get("skew", 0.0), path, "skew", ()))
  cx, cy = _array(camera["principal_point"], path, "principal_point", (2,))
  size = _array(camera["image_size"], path, "image_size", (2,))
  if focal <= 0:
    raise RecordError(path, "focal_length", f"must be positive, got {focal}")
  if aspect <= 0:
    raise RecordError(path, "pixel_aspect_ratio", f"must be positive, got {aspect}")
  if np.any(size < 1) or np.any(np.mod(size, 1) != 0):
    raise RecordError(path, "image_size", f"expected two positive integers (W, H), got {size.tolist()}")
  tangential_key = "tangential_distortion" if "tangential_distortion" in camera else "tangential"
  for field, key, n in (("radial_distortion", "radial_distortion", 3),
                        ("tangential_distortion", tangential_key, 2)):
    value = camera.get(key)
    if value is None:
      continue
    dist = _array(value, path, key, (n,))
    if np.any(dist != 0):
      raise RecordError(path, key, f"non-zero lens distortion {dist.tolist()}: only undistorted pinhole cameras "
                        f"are supported (undistort the images first); the iPhone sequences have none")
  k = np.array([[focal, skew, cx], [0.0, focal * aspect, cy], [0.0, 0.0, 1.0]])
  w2c = np.eye(4)
  w2c[:3, :3] = rot
  w2c[:3, 3] = -rot @ position
  return DycheckCamera(k, w2c, (int(size[0]), int(size[1])))


def read_camera(path: str | os.PathLike[str]) -> DycheckCamera:
  """Reads one ``camera/<id>.json`` (:func:`camera_from_dict`; ``RecordError`` naming the file)."""
  path = os.fspath(path)
  return camera_from_dict(readers.load_json(path, "camera"), path)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
  """An ``(H, W, 3)`` uint8 RGB frame from a PNG (alpha dropped, grey replicated to 3 channels).

  Raises:
    schema.RecordError: missing or undecodable file, or not 8-bit grey/RGB/RGBA (field ``rgb``).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise RecordError(path, "rgb", "file not found")
  try:
    image = np.asarray(iio.imread(path))
  except Exception as e:  # imageio raises several types for corrupt files
    raise RecordError(path, "rgb", f"cannot decode the image: {e}") from e
  if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3, 4)):
    raise RecordError(path, "rgb", f"image of shape {image.shape} dtype {image.dtype}, expected 8-bit grey, RGB "
                      "or RGBA")
  if image.ndim == 2:
    image = image[..., None]
  return np.ascontiguousarray(np.broadcast_to(image, image.shape[:2] + (3,)) if image.shape[-1] == 1
                              else image[..., :3])


# ------------------------------------------------------------------------------------------------
# Sequences.


def available_scales(sequence_dir: str | os.PathLike[str]) -> list[int]:
  """The integer factors ``s`` of the ``rgb/<s>x`` folders of a sequence, ascending (``[]`` when none)."""
  rgb = os.path.join(os.fspath(sequence_dir), RGB_DIR)
  if not os.path.isdir(rgb):
    return []
  found = [int(m.group(1)) for m in map(_SCALE_DIR.match, os.listdir(rgb))
           if m and os.path.isdir(os.path.join(rgb, m.group(0)))]
  return sorted(s for s in found if s >= 1)


def find_sequences(root: str | os.PathLike[str]) -> list[str]:
  """``[root]`` when ``root`` holds a ``dataset.json``, else its sub-folders that do, sorted.

  Raises:
    FileNotFoundError: ``root`` is not a directory or holds no sequence.
  """
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise FileNotFoundError(f"{root}: not a directory (expected a DyCheck sequence or a folder of sequences)")
  if os.path.isfile(os.path.join(root, DATASET_JSON)):
    return [root]
  found = sorted(os.path.join(root, n) for n in os.listdir(root)
                 if os.path.isfile(os.path.join(root, n, DATASET_JSON)))
  if not found:
    raise FileNotFoundError(f"{root}: no DyCheck sequence: neither {root}/{DATASET_JSON} nor */{DATASET_JSON} exists")
  return found


@dataclasses.dataclass(frozen=True)
class DycheckSequence:
  """The index of one sequence (:func:`open_sequence`): which id holds which (time, camera).

  Attributes:
    path: the sequence folder.
    name: its base name (e.g. ``"paper-windmill"``).
    scale: the ``rgb/<scale>x`` folder the frames are read from.
    reference_camera: camera id of ``train_ids`` (the monocular input).
    validation_cameras: sorted camera ids of ``val_ids``.
    reference_times: ``(T_ref,)`` int64 sorted time ids of the reference camera.
    frame_names: ``{(time, camera): id}`` of every id of ``train_ids`` and ``val_ids``.
  """

  path: str
  name: str
  scale: int
  reference_camera: int
  validation_cameras: tuple[int, ...]
  reference_times: np.ndarray
  frame_names: Mapping[tuple[int, int], str]

  def present(self, camera: int, times: Sequence[int]) -> np.ndarray:
    """``(len(times),)`` bool: whether ``camera`` has a frame at each time."""
    return np.array([(int(t), int(camera)) in self.frame_names for t in times], bool)


def _id_list(dataset: Mapping[str, Any], key: str, path: str) -> list[str]:
  ids = dataset.get(key) if isinstance(dataset, Mapping) else None
  if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
    raise RecordError(path, key, f"missing or not a list of id strings (keys here: "
                      f"{sorted(dataset) if isinstance(dataset, Mapping) else type(dataset).__name__})")
  return ids


def open_sequence(sequence_dir: str | os.PathLike[str], *, scale: int | None = None) -> DycheckSequence:
  """Reads ``dataset.json`` and ``metadata.json`` of a sequence (module docstring).

  Args:
    sequence_dir: the sequence folder.
    scale: the ``rgb/<scale>x`` image folder; ``None`` = the smallest factor present (the highest
      resolution).

  Returns:
    A :class:`DycheckSequence`.

  Raises:
    schema.RecordError: a missing/invalid ``dataset.json`` (fields ``train_ids``, ``val_ids``) or
      ``metadata.json`` (an id without an entry, or an entry without an integer ``warp_id`` /
      ``camera_id``), ``train_ids`` spanning several cameras or none, two ids at the same
      (time, camera), a validation id on the training camera, or no ``rgb/<scale>x`` folder.
  """
  path = os.fspath(sequence_dir)
  dataset_path = os.path.join(path, DATASET_JSON)
  dataset = readers.load_json(dataset_path, "dataset")
  train_ids = _id_list(dataset, "train_ids", dataset_path)
  val_ids = _id_list(dataset, "val_ids", dataset_path)
  if not train_ids:
    raise RecordError(dataset_path, "train_ids", "empty: the sequence has no training (reference) frames")
  metadata_path = os.path.join(path, METADATA_JSON)
  metadata = readers.load_json(metadata_path, "metadata")
  if not isinstance(metadata, Mapping):
    raise RecordError(metadata_path, "metadata",
                      f"expected a JSON object of id -> entry, got {type(metadata).__name__}")

  def time_camera(frame_id: str) -> tuple[int, int]:
    entry = metadata.get(frame_id)
    if not isinstance(entry, Mapping):
      raise RecordError(metadata_path, frame_id, f"no entry for id {frame_id!r} (listed in {DATASET_JSON})")
    out = []
    for key in ("warp_id", "camera_id"):
      value = entry.get(key)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError(metadata_path, f"{frame_id}.{key}", f"expected a non-negative integer, got {value!r}")
      out.append(value)
    return out[0], out[1]

  frame_names: dict[tuple[int, int], str] = {}
  cameras: dict[str, set[int]] = {"train_ids": set(), "val_ids": set()}
  for key, ids in (("train_ids", train_ids), ("val_ids", val_ids)):
    for frame_id in ids:
      t, c = time_camera(frame_id)
      if (t, c) in frame_names:
        raise RecordError(dataset_path, key, f"ids {frame_names[(t, c)]!r} and {frame_id!r} are both time {t} of "
                          f"camera {c} ({METADATA_JSON})")
      frame_names[(t, c)] = frame_id
      cameras[key].add(c)
  if len(cameras["train_ids"]) != 1:
    raise RecordError(dataset_path, "train_ids", f"spans cameras {sorted(cameras['train_ids'])}; the protocol needs "
                      "one monocular training (reference) camera")
  (reference,) = cameras["train_ids"]
  if reference in cameras["val_ids"]:
    raise RecordError(dataset_path, "val_ids", f"holds frames of the training camera {reference}")
  scales = available_scales(path)
  if scale is None:
    if not scales:
      raise RecordError(os.path.join(path, RGB_DIR), "rgb", "no rgb/<s>x image folder (e.g. rgb/1x, rgb/2x)")
    scale = scales[0]
  elif isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale not in scales:
    raise RecordError(os.path.join(path, RGB_DIR, f"{scale}x"), "rgb",
                      f"no such image folder; this sequence has scales {scales}")
  times = np.array(sorted(t for t, c in frame_names if c == reference), np.int64)
  return DycheckSequence(path=path, name=os.path.basename(os.path.normpath(path)), scale=int(scale),
                         reference_camera=int(reference), validation_cameras=tuple(sorted(cameras["val_ids"])),
                         reference_times=times, frame_names=frame_names)


@dataclasses.dataclass(frozen=True)
class DycheckClip:
  """A window of a sequence as a schema record (:func:`read_clip`).

  Attributes:
    record: schema record with ``V = 1 + len(cameras)`` views over ``T = len(times)`` frames: ``video``
      ``(V, T, H, W, 3)`` uint8, ``intrinsics`` ``(V, T, 3, 3)`` (pixels of the read images),
      ``world_to_camera`` ``(V, T, 4, 4)`` (OpenCV, metres, DyCheck's world frame), ``tracks``
      ``(V, T, 0, 2)``, ``visible`` ``(V, T, 0)``, ``points_3d`` ``(T, 0, 3)``. View 0 is the
      reference (training) camera; a missing frame holds the camera's nearest present frame.
    present: ``(V, T)`` bool, False where a frame was filled (never for view 0).
    camera_ids: ``(V,)`` DyCheck camera id of each view.
    times: ``(T,)`` int64 DyCheck time ids.
    frame_names: ``V`` tuples of ``T`` ids (``None`` where filled).
  """

  record: dict[str, np.ndarray]
  present: np.ndarray
  camera_ids: tuple[int, ...]
  times: np.ndarray
  frame_names: tuple[tuple[str | None, ...], ...]


def _read_frame(sequence: DycheckSequence, frame_id: str) -> tuple[np.ndarray, DycheckCamera]:
  """The RGB frame and its camera at the sequence's scale, checked against each other."""
  camera_path = os.path.join(sequence.path, CAMERA_DIR, frame_id + ".json")
  camera = read_camera(camera_path).rescaled(sequence.scale)
  image_path = os.path.join(sequence.path, RGB_DIR, f"{sequence.scale}x", frame_id + ".png")
  image = read_image(image_path)
  if (image.shape[1], image.shape[0]) != camera.image_size:
    raise RecordError(image_path, "image_size",
                      f"image is {image.shape[1]}x{image.shape[0]} (W x H) but {camera_path} image_size scaled by "
                      f"1/{sequence.scale} gives {camera.image_size[0]}x{camera.image_size[1]}")
  return image, camera


def read_clip(sequence: DycheckSequence, times: Sequence[int], cameras: Sequence[int] | None = None) -> DycheckClip:
  """Reads the reference camera and validation cameras at the given times into a record.

  Args:
    sequence: :func:`open_sequence`'s index.
    times: ``(T,)`` DyCheck time ids (e.g. ``sequence.reference_times[:81]``); the reference camera
      must have all of them.
    cameras: validation camera ids (default: all); each must have a frame at one of ``times`` at least.

  Returns:
    A :class:`DycheckClip` (module docstring: missing validation frames are filled with the nearest
    present one, earlier on ties, and flagged in ``present``).

  Raises:
    schema.RecordError: a time the reference camera lacks (field ``train_ids``), an unknown camera or
      one without any frame at ``times`` (field ``val_ids``), a bad camera or image file (naming it),
      views of different image sizes, or a record that fails ``schema.validate_record``.
  """
  dataset_path = os.path.join(sequence.path, DATASET_JSON)
  times = np.asarray(times, np.int64).reshape(-1)
  if times.size == 0:
    raise ValueError(f"read_clip({sequence.path}): no times given")
  cameras = sequence.validation_cameras if cameras is None else tuple(int(c) for c in cameras)
  for c in cameras:
    if c not in sequence.validation_cameras:
      raise RecordError(dataset_path, "val_ids",
                        f"no validation camera {c}; cameras: {list(sequence.validation_cameras)}")
  views = (sequence.reference_camera,) + tuple(cameras)
  present = np.stack([sequence.present(c, times) for c in views])
  if not present[0].all():
    t = int(times[np.argmin(present[0])])
    raise RecordError(dataset_path, "train_ids", f"the training camera {sequence.reference_camera} has no frame at "
                      f"time {t}")
  for v, c in enumerate(views):
    if not present[v].any():
      raise RecordError(dataset_path, "val_ids", f"camera {c} has no frame at times {times[0]}..{times[-1]}")
  videos, intrinsics, extrinsics, names = [], [], [], []
  index = np.arange(times.size)
  for v, c in enumerate(views):
    have = np.flatnonzero(present[v])
    nearest = have[np.argmin(np.abs(index[:, None] - have[None, :]), axis=1)]  # argmin: earlier on ties
    frames = {int(j): _read_frame(sequence, sequence.frame_names[(int(times[j]), c)]) for j in have}
    videos.append(np.stack([frames[int(j)][0] for j in nearest]))
    intrinsics.append(np.stack([frames[int(j)][1].intrinsics for j in nearest]))
    extrinsics.append(np.stack([frames[int(j)][1].world_to_camera for j in nearest]))
    names.append(tuple(sequence.frame_names[(int(t), c)] if p else None for t, p in zip(times, present[v])))
  sizes = {vid.shape[1:3] for vid in videos}
  if len(sizes) != 1:
    raise RecordError(os.path.join(sequence.path, RGB_DIR, f"{sequence.scale}x"), "rgb",
                      f"views have different image sizes {sorted(sizes)} (cameras {list(views)}); the record "
                      "needs one size")
  t = times.size
  record = {"video": np.stack(videos), "intrinsics": np.stack(intrinsics), "world_to_camera": np.stack(extrinsics),
            "tracks": np.zeros((len(views), t, 0, 2), np.float32), "visible": np.zeros((len(views), t, 0), bool),
            "points_3d": np.zeros((t, 0, 3), np.float32)}
  record = schema.validate_record(record, source=f"{sequence.path} (times {times[0]}..{times[-1]})")
  return DycheckClip(record=record, present=present, camera_ids=views, times=times, frame_names=tuple(names))


def read_covisible(sequence: DycheckSequence, clip: DycheckClip) -> np.ndarray | None:
  """DyCheck's co-visibility masks of a clip's validation frames (``covisible/<s>x/val/<id>.png``).

  DyCheck scores its novel views only where the validation camera sees what the training camera saw
  (mPSNR / mSSIM / mLPIPS; ``dycheck/datasets/nerfies.py`` ``load_covisible``: an ``(H, W, 1)`` uint8 0/255 image
  read as a {0, 1} mask).

  Args:
    sequence: the sequence (its ``scale`` picks the folder).
    clip: :func:`read_clip`'s window.

  Returns:
    ``(V, T, H, W)`` bool: True where co-visible; view 0 (the reference) all True, a filled frame (``present``
    False) all False. None when the sequence has no ``covisible/<s>x/val`` folder.

  Raises:
    schema.RecordError: a present validation frame without its mask file, an undecodable one, or a mask whose
      size differs from the frame's.
  """
  folder = os.path.join(sequence.path, COVISIBLE_DIR, f"{sequence.scale}x", "val")
  if not os.path.isdir(folder):
    return None
  v, t, h, w = clip.record["video"].shape[:4]
  masks = np.zeros((v, t, h, w), bool)
  masks[0] = True
  for view in range(1, v):
    for j, name in enumerate(clip.frame_names[view]):
      if name is None:
        continue
      path = os.path.join(folder, name + ".png")
      if not os.path.isfile(path):
        raise RecordError(path, COVISIBLE_DIR, f"missing: {folder} has masks but not for validation frame {name}")
      mask = read_image(path)[..., 0]
      if mask.shape != (h, w):
        raise RecordError(path, COVISIBLE_DIR, f"mask of {mask.shape[1]}x{mask.shape[0]} (W x H) for a frame of "
                          f"{w}x{h}")
      masks[view, j] = mask > 127
  return masks
