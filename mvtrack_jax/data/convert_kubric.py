r"""Converts Kubric multi-view renders of dynamic scenes into this project's ``.npz`` clips.

``python -m mvtrack_jax.data.convert_kubric --input=SCENE_DIR --out=CLIP.npz`` converts one scene;
``--input=ROOT --out=OUT_DIR`` converts every scene found below ``ROOT`` (any depth) into
``OUT_DIR/<scene path relative to ROOT>.npz``. Clips are validated (``schema.validate_record``) and
written atomically by ``readers.write_npz_clip``.

Input layout (one scene)
------------------------
The layout of MVTracker's Kubric multi-view point-tracking data (Rajič et al., arXiv 2508.21060;
read by ``mvtracker/datasets/kubric_multiview_dataset.py`` of github.com/ethz-vlg/mvtracker): every
view is a Kubric render folder as written by Kubric's ``write_image_dict`` (``kubric/file_io.py``,
google-research/kubric), plus one file of world-space point paths per scene::

  SCENE/tracks_3d.npz                  key "tracks_3d": (T, N, 3) float, world positions of the
                                       tracked points at every frame (Kubric world units)
  SCENE/view_0/ ... SCENE/view_{V-1}/  one folder per camera, sorted by the integer after "view_"
    rgba_00000.png ... rgba_{T-1}.png  RGBA (or RGB) uint8 frames (``rgb_XXXXX.png`` also accepted)
    depth_00000.tiff ...               float32 (H, W[, 1]) TIFF: distance from the camera centre
                                       along the pixel ray (Kubric's depth, see below); or
    depth_00000.png ...                16-bit PNG scaled to ``data_ranges.json``'s
                                       ``{"depth": {"min": a, "max": b}}``: depth = v / 65535 ·
                                       (b − a) + a (Kubric's ``write_scaled_png`` / MOVi encoding)
    metadata.json                      {"metadata": {"resolution": [W, H]} (or "width"/"height";
                                       optional), "camera": {see below}}
    tracks_2d.npz                      optional, keys "tracks_2d" (T, N, 2) pixels and "occlusion"
                                       (T, N) bool: used only as a cross-check of the cameras

Other files Kubric or MVTracker write (``segmentation_*.png``, ``data_ranges.json`` without depth,
``events.json``, ``views.npz``/``cameras.npz``, ``tracked_objects.json`` …) are ignored. Frame files
must be numbered contiguously from 00000 (``write_image_dict`` numbers them 0..T−1); ``T`` is the
number of RGB frames and every view, ``tracks_3d`` and the camera arrays must agree on it.

``metadata.json["camera"]`` is Kubric's ``get_camera_info`` (``kubric/utils.py``):

- ``positions`` ``(T, 3)``: camera centre in world coordinates at every frame;
- ``quaternions`` ``(T, 4)``: camera orientation as a ``(w, x, y, z)`` unit quaternion
  (``Object3D.quaternion`` in ``kubric/core/objects.py``, pyquaternion order); with ``positions`` it
  forms the Blender camera-to-world matrix ``[R(q) | p]`` (``Object3D.matrix_world``);
- ``K`` ``(3, 3)`` (or ``(T, 3, 3)``): Kubric's normalised intrinsics (``PerspectiveCamera.intrinsics``
  in ``kubric/core/cameras.py``) ``[[f/sw, 0, −1/2], [0, −f/sh, −1/2], [0, 0, −1]]`` in image units
  (width = height = 1) and acting on *Blender* camera coordinates;
- ``focal_length`` and ``sensor_width`` (mm) and ``field_of_view`` (horizontal, **radians**: the
  value is ``2·atan(sensor_width / 2 / focal_length)``, e.g. 0.8576 for 35 mm on a 32 mm sensor,
  although the MOVi README calls it degrees). Used when ``K`` is absent (``fx = fy = W·f/sw``
  pixels, principal point at the image centre), and cross-checked against ``K`` when both are given.
- ``R`` (``matrix_world`` at one frame only) is ignored.

Conventions and their conversion
--------------------------------
- Camera axes. Kubric cameras are Blender cameras: x right, y up, looking along −z
  (``PerspectiveCamera(up="Y", front="-Z")``). OpenCV's are x right, y down, z forward, so
  ``cam_to_world_cv = cam_to_world_blender @ diag(1, −1, −1, 1)`` and ``world_to_camera =
  invert_rigid(cam_to_world_cv)``. The world frame is kept as it is (Kubric's is right-handed,
  z up), so the extrinsics stay proper rigid transforms.
- Intrinsics. Kubric's projection is ``K @ p_blender`` divided by its third coordinate, giving
  normalised image coordinates in ``[0, 1]²`` with the origin at the top-left image corner (``y``
  down; Kubric's ``z_to_depth`` puts pixel ``j``'s centre at ``(j + 0.5) / W``), i.e. exactly this
  project's corner-origin pixel convention after scaling by ``(W, H)``. Hence
  ``K_pixels = diag(W, H, 1) @ K @ diag(1, −1, −1)`` (MVTracker's loader does the same).
- Depth. Kubric's depth is the Euclidean distance from the camera centre to the surface along the
  pixel's ray, not the camera z (MOVi README, "depth"; MVTracker's ``depth_from_euclidean_to_z``).
  It is converted to z-depth with the unit ray direction through each pixel centre:
  ``z = distance · d_z`` where ``d = normalize(K_pixels⁻¹ [x, y, 1])`` (``geometry.camera_rays``;
  equal to Kubric's ``z_to_depth`` scaling for a centred principal point). Values that are not
  finite or exceed ``max_depth`` become 0, "no surface" (MVTracker's loader notes Kubric depths of
  ~1e10 on some pixels and zeroes those above 1000). ``depth_type="z"`` skips the conversion for renders
  that already hold z-depth.
- Units. Kubric positions, depth and points are Blender units, nominally metres (Kubric's physics
  runs in SI units). ``scale`` (metres per unit, default 1) multiplies all of them, which leaves
  ``tracks`` unchanged; MVTracker, for one, treats its Kubric scenes as smaller than real ones (it
  divides real-world centimetres by 13 to get Kubric units when simulating depth noise).
- Tracks. ``tracks[v, t, n] = project_points(points_3d[t, n], intrinsics[v, t],
  world_to_camera[v, t])`` computed from the float32 values the record stores (so the schema's
  1e-3 px invariant holds exactly), corner-origin pixels.
- Visibility. ``visible[v, t, n]`` iff the point is in front of the camera (z > 1e-6 units), its
  projection lies in ``[0, W) × [0, H)``, the pixel containing it has a surface (depth > 0), and the
  point's camera z agrees with that pixel's z-depth within ``depth_tolerance`` relative
  (default 0.01, the schema's 1 %): ``|z − depth| ≤ depth_tolerance · depth``. The test is
  two-sided, so points on a silhouette whose pixel centre sees another surface are marked not
  visible (conservative), and every visible point satisfies the schema's depth invariant.
  ``tracks_2d.npz``'s ``occlusion`` is not used.
- Cross-check. When a view has ``tracks_2d.npz``, every point it marks unoccluded must lie in
  front of the converted camera and its ``tracks_2d`` must equal the projection within
  ``TRACKS_2D_TOLERANCE_PX``; a mismatch (a camera convention or units problem) is an error.

Errors
------
Bad input raises ``schema.RecordError`` naming the file and the field: a missing folder, file or
JSON key (``…/view_1/metadata.json: field 'camera/quaternions': missing``), unreadable images or
archives, frame numbering gaps, disagreeing frame counts or image sizes, non-unit quaternions, an
intrinsics matrix that is not in Kubric's sign convention (e.g. an OpenCV ``K``), ``K`` disagreeing
with ``focal_length / sensor_width``, negative depth, a ``tracks_2d`` mismatch, and any schema
violation of the resulting record.
"""

from __future__ import annotations

import os
import re
import zipfile
from typing import Any, Mapping

from absl import app
from absl import flags
import imageio.v3 as iio
import numpy as np

from mvtrack_jax import cli
from mvtrack_jax import errors
from mvtrack_jax.data import readers
from mvtrack_jax.data import schema
from mvtrack_jax.data import video_io
from mvtrack_jax.geometry import cameras as geometry

RecordError = schema.RecordError
Record = dict[str, np.ndarray]

TRACKS_3D_FILE = "tracks_3d.npz"
TRACKS_2D_FILE = "tracks_2d.npz"
METADATA_FILE = "metadata.json"
DATA_RANGES_FILE = "data_ranges.json"
VIEW_PREFIX = "view_"
DEPTH_TYPES = ("distance", "z")
# Blender camera axes (x right, y up, z backward) → OpenCV (x right, y down, z forward), applied on
# the right of a camera-to-world matrix.
BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])

DEFAULT_DEPTH_TOLERANCE = 0.01  # relative, the schema's 1 % depth invariant.
DEFAULT_MAX_DEPTH = 1000.0  # Kubric units; larger depths are "no surface" (MVTracker's threshold).
TRACKS_2D_TOLERANCE_PX = 0.05
_QUATERNION_NORM_TOL = 1e-3
_FOCAL_REL_TOL = 1e-3
_NEAR = 1e-6

_VIEW_DIR = re.compile(r"^view_(\d+)$")
_RGB_FILE = re.compile(r"^(rgba|rgb)_(\d+)\.png$")
_DEPTH_FILE = re.compile(r"^depth_(\d+)\.(tiff|tif|png)$")

FLAGS = flags.FLAGS


# ----------------------------------------------------------------------------------------------
# Camera conventions
# ----------------------------------------------------------------------------------------------


def quaternion_to_rotation(quaternions: np.ndarray, *, source: str = "<camera>",
                           field: str = "camera/quaternions") -> np.ndarray:
  """Rotation matrices of ``(w, x, y, z)`` unit quaternions (Kubric / pyquaternion order).

  Args:
    quaternions: ``(..., 4)`` quaternions ``(w, x, y, z)``; normalised before use.
    source, field: what to name in errors.

  Returns:
    ``(..., 3, 3)`` float64 proper rotation matrices (``R @ v`` rotates ``v``).

  Raises:
    RecordError: the last axis is not 4, or a quaternion's norm differs from 1 by more than 1e-3.
  """
  q = np.asarray(quaternions, np.float64)
  if q.shape[-1:] != (4,):
    raise RecordError(source, field, f"shape {q.shape}, expected (..., 4) quaternions (w, x, y, z)")
  norm = np.linalg.norm(q, axis=-1)
  bad = np.abs(norm - 1.0) > _QUATERNION_NORM_TOL
  if bad.any():
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise RecordError(source, field, f"quaternion at index {first} has norm {float(norm[first]):.6g}, expected a unit "
                      "quaternion (w, x, y, z)")
  w, x, y, z = np.moveaxis(q / norm[..., None], -1, 0)
  rot = np.stack([
      1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
      2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
      2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
  ], axis=-1)
  return rot.reshape(q.shape[:-1] + (3, 3))


def kubric_cam_to_world(positions: np.ndarray, quaternions: np.ndarray, *, source: str = "<camera>") -> np.ndarray:
  """Blender camera-to-world matrices ``[R(q) | p]`` of Kubric camera positions and quaternions.

  Args:
    positions: ``(T, 3)`` camera centres, world units.
    quaternions: ``(T, 4)`` ``(w, x, y, z)`` orientations.

  Returns:
    ``(T, 4, 4)`` float64 camera-to-world with *Blender* camera axes (x right, y up, z backward).
  """
  pos = np.asarray(positions, np.float64)
  rot = quaternion_to_rotation(quaternions, source=source)
  c2w = np.zeros(pos.shape[:-1] + (4, 4))
  c2w[..., :3, :3] = rot
  c2w[..., :3, 3] = pos
  c2w[..., 3, 3] = 1.0
  return c2w


def blender_to_opencv_cam_to_world(cam_to_world: np.ndarray) -> np.ndarray:
  """``cam_to_world @ diag(1, −1, −1, 1)``: Blender/OpenGL camera axes → OpenCV, same world frame."""
  return np.asarray(cam_to_world, np.float64) @ BLENDER_TO_OPENCV


def kubric_intrinsics_to_pixels(k: np.ndarray, height: int, width: int, *, source: str = "<camera>",
                                field: str = "camera/K") -> np.ndarray:
  """Pixel intrinsics (OpenCV camera) of Kubric's normalised Blender-camera ``K``.

  ``K_pixels = diag(W, H, 1) @ K @ diag(1, −1, −1)`` (module docstring, "Intrinsics").

  Args:
    k: ``(..., 3, 3)`` Kubric ``K`` ``[[fx, s, −cx], [0, −fy, −cy], [0, 0, −1]]`` in image units.
    height, width: image size in pixels.

  Returns:
    ``(..., 3, 3)`` float64 ``[[W·fx, W·s, W·cx], [0, H·fy, H·cy], [0, 0, 1]]``.

  Raises:
    RecordError: ``k`` is not ``(..., 3, 3)``, not in Kubric's sign convention (last row
      ``[0, 0, −1]``, ``K[0, 0] > 0``, ``K[1, 1] < 0``, ``K[1, 0] = 0``) or its principal point is
      not inside the unit image (a K in pixels, or in OpenCV convention).
  """
  k = np.asarray(k, np.float64)
  if k.shape[-2:] != (3, 3):
    raise RecordError(source, field, f"shape {k.shape}, expected (3, 3) or (T, 3, 3)")
  kubric_signs = (np.allclose(k[..., 2, :], [0.0, 0.0, -1.0], atol=1e-6) and np.all(k[..., 0, 0] > 0)
                  and np.all(k[..., 1, 1] < 0) and np.allclose(k[..., 1, 0], 0.0, atol=1e-6))
  if not kubric_signs:
    raise RecordError(source, field, "not Kubric's normalised Blender-camera intrinsics "
                      "[[fx, 0, -cx], [0, -fy, -cy], [0, 0, -1]] (an OpenCV K has last row [0, 0, 1]); got "
                      f"{np.round(k.reshape(-1, 3, 3)[0], 6).tolist()}")
  cx, cy = -k[..., 0, 2], -k[..., 1, 2]
  if np.any((cx <= 0) | (cx >= 1) | (cy <= 0) | (cy >= 1)):
    raise RecordError(source, field, f"principal point ({float(np.ravel(cx)[0]):.6g}, {float(np.ravel(cy)[0]):.6g}) "
                      "is not inside the unit image: K must be in normalised image units (width = height = 1)")
  return np.diag([float(width), float(height), 1.0]) @ k @ np.diag([1.0, -1.0, -1.0])


def intrinsics_from_camera_info(camera: Mapping[str, Any], height: int, width: int, num_frames: int, *,
                                source: str = "<metadata.json>") -> np.ndarray:
  """``(T, 3, 3)`` pixel intrinsics of a Kubric ``camera`` metadata entry (module docstring).

  Uses ``K`` when present (checked against ``focal_length / sensor_width`` when those are present
  too), else ``focal_length`` and ``sensor_width``, else ``field_of_view`` (radians); square pixels
  and a centred principal point in the last two cases.

  Raises:
    RecordError: naming ``source`` and the field, for malformed values, a ``K`` that is not in
      Kubric's convention or disagrees with the focal length, or no intrinsics at all.
  """
  def number(key: str) -> float | None:
    if key not in camera or camera[key] is None:
      return None
    try:
      value = float(camera[key])
    except (TypeError, ValueError) as e:
      raise RecordError(source, f"camera/{key}", f"expected a number, got {camera[key]!r}") from e
    if not np.isfinite(value) or value <= 0:
      raise RecordError(source, f"camera/{key}", f"expected a positive number, got {value}")
    return value

  focal, sensor, fov = number("focal_length"), number("sensor_width"), number("field_of_view")
  if "K" in camera:
    k = _float_array(camera["K"], source, "camera/K")
    if k.ndim == 3 and k.shape[0] != num_frames:
      raise RecordError(source, "camera/K", f"has {k.shape[0]} matrices, expected one or {num_frames} (frames)")
    k_px = kubric_intrinsics_to_pixels(k, height, width, source=source)
    if focal is not None and sensor is not None:
      expected = width * focal / sensor
      got = k_px[..., 0, 0]
      if np.any(np.abs(got - expected) > _FOCAL_REL_TOL * expected):
        raise RecordError(source, "camera/K", f"fx = {float(np.ravel(got)[0]):.6g} px disagrees with focal_length / "
                          f"sensor_width · W = {focal} / {sensor} · {width} = {expected:.6g} px")
    return np.broadcast_to(k_px, (num_frames, 3, 3)).copy()
  if focal is not None and sensor is not None:
    f_px = width * focal / sensor
  elif fov is not None:
    if fov >= np.pi:
      raise RecordError(source, "camera/field_of_view", f"{fov} is not a horizontal field of view in radians (< pi)")
    f_px = 0.5 * width / np.tan(fov / 2.0)
  else:
    raise RecordError(source, "camera/K", "missing, and no focal_length + sensor_width or field_of_view to derive it")
  k_px = np.array([[f_px, 0.0, width / 2.0], [0.0, f_px, height / 2.0], [0.0, 0.0, 1.0]])
  return np.broadcast_to(k_px, (num_frames, 3, 3)).copy()


def distance_to_z_depth(distance: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
  """Converts ray-distance depth maps into camera z-depth.

  Args:
    distance: ``(T, H, W)`` distance from the camera centre to each pixel's surface along the ray
      through the pixel centre.
    intrinsics: ``(T, 3, 3)`` pixel intrinsics of that ``H × W``.

  Returns:
    ``(T, H, W)`` float64 z-depth ``distance · d_z``, ``d`` the unit camera-space ray direction
    through the pixel centre (``geometry.camera_rays`` with an identity pose).
  """
  t, h, w = distance.shape
  _, dirs = geometry.camera_rays(np.asarray(intrinsics, np.float64), np.broadcast_to(np.eye(4), (t, 4, 4)), h, w)
  return np.asarray(distance, np.float64) * dirs[..., 2]


def project_and_test_visibility(points_3d: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray,
                                depth: np.ndarray, depth_tolerance: float = DEFAULT_DEPTH_TOLERANCE
                                ) -> tuple[np.ndarray, np.ndarray]:
  """Projects world paths into every view and tests visibility against the depth maps.

  Args:
    points_3d: ``(T, N, 3)`` world positions.
    intrinsics: ``(V, T, 3, 3)`` pixel intrinsics; world_to_camera: ``(V, T, 4, 4)`` OpenCV.
    depth: ``(V, T, H, W)`` camera z-depth, 0 where there is no surface.
    depth_tolerance: relative tolerance of the two-sided depth test (module docstring).

  Returns:
    ``(tracks (V, T, N, 2) float64, visible (V, T, N) bool)``: corner-origin pixel positions and
    in-front ∧ inside ``[0, W) × [0, H)`` ∧ ``depth > 0`` ∧ ``|z − depth| ≤ tol · depth`` at the
    pixel containing the projection.
  """
  v, t, h, w = depth.shape
  xy, z = geometry.project_points(np.asarray(points_3d, np.float64)[None], np.asarray(intrinsics, np.float64),
                                  np.asarray(world_to_camera, np.float64))
  inside = (z > _NEAR) & (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
  visible = np.zeros(z.shape, bool)
  vi, ti, ni = np.nonzero(inside)
  if vi.size:
    col = np.clip(np.floor(xy[vi, ti, ni, 0]).astype(np.int64), 0, w - 1)
    row = np.clip(np.floor(xy[vi, ti, ni, 1]).astype(np.int64), 0, h - 1)
    pix = depth[vi, ti, row, col]
    visible[vi, ti, ni] = (pix > 0) & (np.abs(z[vi, ti, ni] - pix) <= depth_tolerance * pix)
  return xy, visible


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def _float_array(value: Any, source: str, field: str) -> np.ndarray:
  try:
    arr = np.asarray(value, np.float64)
  except (TypeError, ValueError) as e:
    raise RecordError(source, field, f"not a numeric array: {e}") from e
  if not np.isfinite(arr).all():
    raise RecordError(source, field, f"{int((~np.isfinite(arr)).sum())} non-finite value(s)")
  return arr


def _load_npz(path: str, keys: tuple[str, ...], field: str) -> dict[str, np.ndarray]:
  if not os.path.isfile(path):
    raise RecordError(path, field, "file not found")
  try:
    with np.load(path, allow_pickle=False) as archive:
      out = {}
      for key in keys:
        if key not in archive.files:
          raise RecordError(path, key, f"missing (archive has {sorted(archive.files)})")
        out[key] = archive[key]
      return out
  except RecordError:
    raise
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise RecordError(path, field, f"not a readable .npz archive: {e}") from e


def _read_image(path: str, field: str) -> np.ndarray:
  plugin = "pillow" if path.lower().endswith(".png") else "tifffile"
  try:
    return np.asarray(iio.imread(path, plugin=plugin))
  except Exception as e:  # imageio raises many types (OSError, ValueError, plugin errors).
    raise RecordError(path, field, f"unreadable image: {type(e).__name__}: {e}") from e


def _numbered_files(view_dir: str, pattern: re.Pattern, field: str, index_group: int) -> list[str]:
  """Files of ``view_dir`` matching ``pattern``, checked to be numbered 0..T−1, in frame order."""
  found: dict[int, str] = {}
  for name in os.listdir(view_dir):
    match = pattern.match(name)
    if match:
      index = int(match.group(index_group))
      if index in found:
        raise RecordError(os.path.join(view_dir, name), field, f"frame {index} is given twice "
                          f"(also {found[index]})")
      found[index] = name
  if not found:
    return []
  missing = sorted(set(range(max(found) + 1)) - set(found))
  if missing:
    raise RecordError(view_dir, field, f"frame file(s) {missing[:5]} missing: {field} frames must be numbered "
                      f"contiguously from 00000 (found {len(found)} files up to {max(found):05d})")
  return [os.path.join(view_dir, found[i]) for i in range(len(found))]


def find_view_dirs(scene_dir: str) -> list[str]:
  """``view_N`` folders of a scene, sorted by ``N``."""
  if not os.path.isdir(scene_dir):
    raise RecordError(scene_dir, "scene", "scene folder not found")
  views = [(int(m.group(1)), name) for name in os.listdir(scene_dir)
           if (m := _VIEW_DIR.match(name)) and os.path.isdir(os.path.join(scene_dir, name))]
  return [os.path.join(scene_dir, name) for _, name in sorted(views)]


def is_kubric_scene(path: str) -> bool:
  """Whether ``path`` holds ``tracks_3d.npz`` and at least one ``view_N`` folder."""
  return os.path.isfile(os.path.join(path, TRACKS_3D_FILE)) and bool(find_view_dirs(path))


def find_kubric_scenes(root: str) -> list[str]:
  """Sorted scene folders below ``root`` (any depth; a scene does not contain scenes)."""
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise FileNotFoundError(f"Kubric root {root!r} is not a directory")
  scenes = []
  for dirpath, dirnames, _ in os.walk(root):
    if is_kubric_scene(dirpath):
      scenes.append(dirpath)
      dirnames[:] = []
    dirnames.sort()
  return sorted(scenes)


def _read_depth_frames(view_dir: str, depth_files: list[str]) -> np.ndarray:
  """``(T, H, W)`` float64 depth of a view, decoded (TIFF float, or 16-bit PNG with data_ranges.json)."""
  ranges = None
  frames = []
  for path in depth_files:
    img = _read_image(path, "depth")
    if img.ndim == 3 and img.shape[-1] == 1:
      img = img[..., 0]
    if img.ndim != 2:
      raise RecordError(path, "depth", f"shape {img.shape}, expected a single-channel (H, W) or (H, W, 1) image")
    if path.endswith(".png"):
      if img.dtype != np.uint16:
        raise RecordError(path, "depth", f"dtype {img.dtype}: a PNG depth must be 16-bit scaled to data_ranges.json")
      if ranges is None:
        ranges_path = os.path.join(view_dir, DATA_RANGES_FILE)
        data = readers.load_json(ranges_path, "depth")
        entry = data.get("depth") if isinstance(data, Mapping) else None
        if not isinstance(entry, Mapping) or "min" not in entry or "max" not in entry:
          raise RecordError(ranges_path, "depth",
                            'missing {"depth": {"min": ..., "max": ...}} for the 16-bit PNG depth')
        ranges = (float(entry["min"]), float(entry["max"]))
      lo, hi = ranges
      img = img.astype(np.float64) / 65535.0 * (hi - lo) + lo
    elif not np.issubdtype(img.dtype, np.floating):
      raise RecordError(path, "depth", f"dtype {img.dtype}, expected a float TIFF")
    frames.append(np.asarray(img, np.float64))
  shapes = {f.shape for f in frames}
  if len(shapes) != 1:
    raise RecordError(view_dir, "depth", f"depth frames have different sizes {sorted(shapes)}")
  return np.stack(frames)


def _read_view(view_dir: str) -> dict[str, Any]:
  """RGB frames, raw depth and camera entry of one ``view_N`` folder (not yet converted)."""
  rgb_files = _numbered_files(view_dir, _RGB_FILE, "video", 2)
  if not rgb_files:
    raise RecordError(view_dir, "video", "no rgba_XXXXX.png (or rgb_XXXXX.png) frames")
  kinds = {re.match(_RGB_FILE, os.path.basename(p)).group(1) for p in rgb_files}
  if len(kinds) > 1:
    raise RecordError(view_dir, "video", "both rgba_*.png and rgb_*.png frames; keep one kind")
  frames = []
  for path in rgb_files:
    img = _read_image(path, "video")
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
      raise RecordError(path, "video", f"shape {img.shape}, expected an RGB or RGBA (H, W, 3|4) image")
    if img.dtype == np.uint16:
      img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    elif img.dtype != np.uint8:
      raise RecordError(path, "video", f"dtype {img.dtype}, expected 8- or 16-bit")
    if frames and img.shape[:2] != frames[0].shape[:2]:
      raise RecordError(path, "video", f"size {img.shape[:2]} differs from {frames[0].shape[:2]} of {rgb_files[0]}")
    frames.append(img[..., :3])
  video = np.stack(frames)
  t, h, w = video.shape[:3]

  depth_files = _numbered_files(view_dir, _DEPTH_FILE, "depth", 1)
  if not depth_files:
    raise RecordError(view_dir, "depth", "no depth_XXXXX.tiff (or 16-bit depth_XXXXX.png) frames")
  if len({os.path.splitext(p)[1] for p in depth_files}) > 1:
    raise RecordError(view_dir, "depth", "depth frames mix file formats; keep one (.tiff or .png)")
  if len(depth_files) != t:
    raise RecordError(view_dir, "depth", f"{len(depth_files)} depth frames but {t} RGB frames")
  depth = _read_depth_frames(view_dir, depth_files)
  if depth.shape[1:] != (h, w):
    raise RecordError(depth_files[0], "depth", f"size {depth.shape[1:]} differs from the RGB frames' {(h, w)}")

  meta_path = os.path.join(view_dir, METADATA_FILE)
  meta = readers.load_json(meta_path, "camera")
  if not isinstance(meta, Mapping) or not isinstance(meta.get("camera"), Mapping):
    raise RecordError(meta_path, "camera", "missing: expected an object with a 'camera' entry (Kubric get_camera_info)")
  info = meta.get("metadata")
  if isinstance(info, Mapping):
    if "resolution" in info:
      res = _float_array(info["resolution"], meta_path, "metadata/resolution")
      if res.shape != (2,) or tuple(res) != (w, h):
        raise RecordError(meta_path, "metadata/resolution", f"{info['resolution']} differs from the frames' [W, H] = "
                          f"[{w}, {h}]")
    elif "width" in info and "height" in info and (info["width"], info["height"]) != (w, h):
      raise RecordError(meta_path, "metadata/width", f"width x height {info['width']} x {info['height']} differs from "
                        f"the frames' {w} x {h}")
  return {"video": video, "depth": depth, "camera": meta["camera"], "metadata_path": meta_path}


def _view_cameras(camera: Mapping[str, Any], height: int, width: int, num_frames: int, meta_path: str,
                  scale: float) -> tuple[np.ndarray, np.ndarray]:
  """``(intrinsics (T,3,3) px, cam_to_world (T,4,4) OpenCV, scaled)`` of a view's camera entry."""
  arrays = {}
  for key in ("positions", "quaternions"):
    if key not in camera:
      raise RecordError(meta_path, f"camera/{key}", "missing (Kubric get_camera_info writes positions and quaternions)")
    arr = _float_array(camera[key], meta_path, f"camera/{key}")
    size = 3 if key == "positions" else 4
    if arr.shape != (num_frames, size):
      raise RecordError(meta_path, f"camera/{key}",
                        f"shape {arr.shape}, expected ({num_frames}, {size}): one per frame")
    arrays[key] = arr
  c2w = blender_to_opencv_cam_to_world(kubric_cam_to_world(arrays["positions"] * scale, arrays["quaternions"],
                                                           source=meta_path))
  k = intrinsics_from_camera_info(camera, height, width, num_frames, source=meta_path)
  return k, c2w


def _check_tracks_2d(path: str, tracks: np.ndarray, z: np.ndarray) -> None:
  """Compares a view's ``tracks_2d.npz`` with the projection (module docstring, "Cross-check")."""
  data = _load_npz(path, ("tracks_2d", "occlusion"), "tracks_2d")
  ref, occ = data["tracks_2d"], data["occlusion"]
  if ref.shape != tracks.shape:
    raise RecordError(path, "tracks_2d", f"shape {ref.shape}, expected {tracks.shape} (T, N, 2)")
  if occ.shape != tracks.shape[:2]:
    raise RecordError(path, "occlusion", f"shape {occ.shape}, expected {tracks.shape[:2]} (T, N)")
  check = ~occ.astype(bool)
  behind = check & (z <= _NEAR)
  if behind.any():
    t, n = (int(i) for i in np.argwhere(behind)[0])
    raise RecordError(path, "occlusion",
                      f"{int(behind.sum())} point(s) the file marks unoccluded lie behind the camera (first: frame "
                      f"{t}, point {n}, camera z = {float(z[t, n]):.4g}); the camera poses do not match the Kubric "
                      "conventions (Blender axes, (w, x, y, z) quaternions)")
  if check.any():
    err = np.abs(ref.astype(np.float64) - tracks).max(-1)
    err = np.where(check, np.nan_to_num(err, nan=np.inf), 0.0)
    if err.max() > TRACKS_2D_TOLERANCE_PX:
      t, n = (int(i) for i in np.unravel_index(np.argmax(err), err.shape))
      raise RecordError(path, "tracks_2d", f"differs from the projection of tracks_3d by up to {err.max():.4g} px "
                        f"(frame {t}, point {n}: file {ref[t, n].tolist()}, projected {tracks[t, n].tolist()}); "
                        "the cameras, intrinsics or units do not match the Kubric conventions")


# ----------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------


def read_kubric_scene(scene_dir: str | os.PathLike[str], *, depth_tolerance: float = DEFAULT_DEPTH_TOLERANCE,
                      scale: float = 1.0, depth_type: str = "distance", max_depth: float = DEFAULT_MAX_DEPTH,
                      check_tracks_2d: bool = True) -> Record:
  """Reads one Kubric multi-view scene (module docstring layout) into a validated record.

  Args:
    scene_dir: the scene folder (``tracks_3d.npz`` and ``view_N/`` folders).
    depth_tolerance: relative tolerance of the visibility depth test (default 0.01).
    scale: metres per Kubric unit; multiplies camera positions, depth and points (tracks unchanged).
    depth_type: ``"distance"`` (Kubric: distance along the ray, converted to z) or ``"z"``.
    max_depth: depth values (Kubric units, before ``scale``) above this, or non-finite, become 0
      ("no surface").
    check_tracks_2d: compare each view's ``tracks_2d.npz`` (if any) with the projection.

  Returns:
    A record (``schema.validate_record``): video ``(V,T,H,W,3)`` uint8, intrinsics ``(V,T,3,3)`` px,
    world_to_camera ``(V,T,4,4)`` (OpenCV axes, metres), depth ``(V,T,H,W)`` camera z-depth in
    metres (0 = no surface), tracks ``(V,T,N,2)`` corner-origin px, visible ``(V,T,N)`` bool,
    points_3d ``(T,N,3)`` metres; float fields float32.

  Raises:
    RecordError: naming the file and field for any bad input (module docstring, "Errors").
    ValueError: an argument is out of range.
  """
  scene_dir = os.fspath(scene_dir)
  if depth_type not in DEPTH_TYPES:
    raise ValueError(f"read_kubric_scene: depth_type must be one of {DEPTH_TYPES}, got {depth_type!r}")
  if not (np.isfinite(scale) and scale > 0):
    raise ValueError(f"read_kubric_scene: scale must be a positive number, got {scale}")
  if not (np.isfinite(depth_tolerance) and depth_tolerance > 0):
    raise ValueError(f"read_kubric_scene: depth_tolerance must be positive, got {depth_tolerance}")
  if not max_depth > 0:
    raise ValueError(f"read_kubric_scene: max_depth must be positive, got {max_depth}")
  view_dirs = find_view_dirs(scene_dir)
  if not view_dirs:
    raise RecordError(scene_dir, "video", "no view_N folders (expected view_0/, view_1/, ...)")

  tracks_path = os.path.join(scene_dir, TRACKS_3D_FILE)
  points = _load_npz(tracks_path, ("tracks_3d",), "points_3d")["tracks_3d"]
  if points.ndim != 3 or points.shape[-1] != 3:
    raise RecordError(tracks_path, "tracks_3d", f"shape {points.shape}, expected (T, N, 3) world positions")
  points = _float_array(points, tracks_path, "tracks_3d") * scale

  videos, depths, ks, c2ws = [], [], [], []
  for view_dir in view_dirs:
    view = _read_view(view_dir)
    t, h, w = view["video"].shape[:3]
    if videos and view["video"].shape != videos[0].shape:
      raise RecordError(view_dir, "video", f"frames (T, H, W) = {(t, h, w)} differ from {videos[0].shape[:3]} of "
                        f"{view_dirs[0]}")
    if t != points.shape[0]:
      raise RecordError(view_dir, "video", f"{t} frames but {tracks_path} has {points.shape[0]}")
    k, c2w = _view_cameras(view["camera"], h, w, t, view["metadata_path"], scale)
    raw = view["depth"]
    if np.any(raw < 0):
      raise RecordError(view_dir, "depth", f"negative depth (min {float(np.nanmin(raw)):.6g})")
    raw = np.where(np.isfinite(raw) & (raw <= max_depth), raw, 0.0) * scale
    depths.append(distance_to_z_depth(raw, k) if depth_type == "distance" else raw)
    videos.append(view["video"])
    ks.append(k)
    c2ws.append(c2w)

  # Store float32 and derive tracks from the stored values, so the schema invariants hold exactly.
  k32 = np.stack(ks).astype(np.float32)
  w2c32 = geometry.invert_rigid(np.stack(c2ws)).astype(np.float32)
  pts32 = points.astype(np.float32)
  depth32 = np.stack(depths).astype(np.float32)
  tracks, visible = project_and_test_visibility(pts32, k32, w2c32, depth32.astype(np.float64), depth_tolerance)
  if check_tracks_2d:
    _, z = geometry.project_points(pts32.astype(np.float64)[None], k32.astype(np.float64), w2c32.astype(np.float64))
    for v, view_dir in enumerate(view_dirs):
      path = os.path.join(view_dir, TRACKS_2D_FILE)
      if os.path.isfile(path):
        _check_tracks_2d(path, tracks[v], z[v])
  record = {
      "video": np.stack(videos),
      "intrinsics": k32,
      "world_to_camera": w2c32,
      "depth": depth32,
      "tracks": tracks.astype(np.float32),
      "visible": visible,
      "points_3d": pts32,
  }
  return schema.validate_record(record, source=scene_dir)


def convert(input_path: str | os.PathLike[str], out: str | os.PathLike[str], **kwargs) -> list[str]:
  """Converts one scene (``input_path`` is a scene) or every scene below ``input_path``.

  Args:
    input_path: a scene folder, or a root holding scene folders at any depth.
    out: for one scene, the ``.npz`` file to write; for a root, the output folder, which receives
      ``<scene path relative to the root>.npz`` per scene.
    **kwargs: forwarded to ``read_kubric_scene``.

  Returns:
    The written ``.npz`` paths, in scene order.

  Raises:
    RecordError: bad input (file and field named); nothing is written for that scene.
    FileNotFoundError: ``input_path`` is missing or holds no scene.
    ValueError: ``out`` does not end in ``.npz`` for a single scene.
    IsADirectoryError / NotADirectoryError / PermissionError: ``out`` cannot be written (a folder where a file is
      due or the reverse, or not writable); checked before any scene is read.
  """
  input_path, out = os.fspath(input_path), os.fspath(out)
  if not os.path.isdir(input_path):
    raise FileNotFoundError(f"--input {input_path!r} is not a directory")
  if is_kubric_scene(input_path):
    if not out.endswith(".npz"):
      raise errors.UserError(f"--out must be a .npz file for a single scene, got {out!r}")
    video_io.check_output_file(out)
    readers.write_npz_clip(out, read_kubric_scene(input_path, **kwargs))
    return [out]
  scenes = find_kubric_scenes(input_path)
  if not scenes:
    raise FileNotFoundError(f"no Kubric scenes under {input_path!r} (a scene folder holds {TRACKS_3D_FILE} and "
                            "view_N/ folders)")
  if out.endswith(".npz"):
    raise errors.UserError(f"--out must be a folder when --input holds several scenes, got {out!r}")
  video_io.check_output_dir(out)
  written = []
  for scene in scenes:
    path = os.path.join(out, os.path.relpath(scene, input_path) + ".npz")
    readers.write_npz_clip(path, read_kubric_scene(scene, **kwargs))
    written.append(path)
  return written


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_string("input", None, "A Kubric multi-view scene folder, or a root of scene folders.")
  flags.DEFINE_string("out", None, "Output .npz (one scene) or output folder (a root of scenes).")
  flags.DEFINE_float("depth_tolerance", DEFAULT_DEPTH_TOLERANCE, "Relative tolerance of the visibility depth test.")
  flags.DEFINE_float("scale", 1.0, "Metres per Kubric unit (multiplies positions, depth, points).")
  flags.DEFINE_enum("depth_type", "distance", list(DEPTH_TYPES),
                    "distance: Kubric's ray-distance depth (converted to z); z: already camera z-depth.")
  flags.DEFINE_float("max_depth", DEFAULT_MAX_DEPTH, "Depths above this (Kubric units) mean no surface.")
  flags.DEFINE_bool("check_tracks_2d", True, "Cross-check the projection against view_N/tracks_2d.npz when present.")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.input or not FLAGS.out:
    raise app.UsageError("--input and --out are required")
  paths = convert(FLAGS.input, FLAGS.out, depth_tolerance=FLAGS.depth_tolerance, scale=FLAGS.scale,
                  depth_type=FLAGS.depth_type, max_depth=FLAGS.max_depth, check_tracks_2d=FLAGS.check_tracks_2d)
  for path in paths:
    print(f"wrote {path}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
