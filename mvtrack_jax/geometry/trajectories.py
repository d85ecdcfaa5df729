"""ReCamMaster's preset camera trajectories, as camera-to-world pose sequences.

ReCamMaster (arXiv 2503.11647) ships ten "basic" target trajectories that its
inference scripts and the MultiCamVideo validation split use: pan right/left, tilt up/down, zoom
in/out, translate up/down (with rotation), arc left/right (with rotation). This module builds them,
plus ``static``, for any start pose, so the synthetic renderer can move its cameras and the
generation CLI can take ``--trajectory NAME``.

Conventions (docs/design.md §3): poses are ``cam_to_world`` ``(4, 4)`` float64 matrices with OpenCV
camera axes (x right, y down, z forward) in metres. All motions are defined in the **start
camera's own axes**, so they mean the same thing whatever the start pose is (ReCamMaster feeds
cameras relative to the reference frame 0, where the start pose is the identity):

================ ===================================================================================
name             motion (``m`` = magnitude; ``x0, y0, z0`` = start camera axes in world coords)
================ ===================================================================================
static           no motion.
pan_right        yaw about the camera's y axis so the optical axis turns towards +x0 (the view
                 moves right); ``m`` degrees, default 30.
pan_left         the same towards −x0.
tilt_up          pitch about the camera's x axis so the optical axis turns towards −y0 (the view
                 moves up); ``m`` degrees, default 20.
tilt_down        the same towards +y0.
zoom_in          dolly: translate along +z0 (towards the scene), orientation fixed; ``m`` metres,
                 default 0.3 × the distance to ``look_at_point`` (1 m without one).
zoom_out         dolly along −z0.
translate_up     translate along −y0 (camera up) while turning to keep aiming at ``look_at_point``;
                 ``m`` metres, default 0.3 × the distance to the look-at point.
translate_down   the same along +y0.
arc_left         orbit about the axis through ``look_at_point`` along −y0 (camera up) so that the
                 camera centre moves towards −x0 (left), turning with the orbit so the look-at point
                 stays at the same place in the image; ``m`` degrees, default 45.
arc_right        the same orbit towards +x0.
================ ===================================================================================

Progress along each motion follows the smooth ease-in/ease-out profile
``s(i) = (1 − cos(π·i/(T−1))) / 2`` (zero velocity at both ends), so frame 0 is exactly the start
pose and frame ``T−1`` the full motion. "Keep aiming" for translate up/down applies, per frame,
the smallest rotation that carries the start viewing vector (start centre → look-at point) onto
the current one; this keeps frame 0 exactly equal to the start pose even when the look-at point is
not on the optical axis, and keeps the point at (nearly) the same place in the image.
``look_at_point`` defaults to the point 4 m in front of the start camera (on +z0).

**ReCamMaster's released trajectories** (``cam01`` … ``cam10``, :data:`RECAMMASTER_NAMES`): the ten cameras of
ReCamMaster's ``example_test_data/cameras/camera_extrinsics.json`` (KwaiVGI/ReCamMaster, MIT; the same file
ReDirector evaluates with), which the DAVIS protocol of both papers uses. Read with ReCamMaster's own conversion
(:func:`read_recammaster_json`: the row-major Unreal matrices transposed, columns reordered ``[1, 2, 0]``, the y
column negated, centimetres to metres, then relative to frame 0) they are, at constant speed, frame ``f`` of 81
carrying ``f / 80.5`` of the nominal motion: pan right / left 20° (``cam01``/``cam02``), tilt up / down 10°
(``cam03``/``cam04``), zoom in / out 2 m (``cam05``/``cam06``), translate up / down 1 m turning to keep aiming at
the point 4 m ahead (``cam07``/``cam08``), arc left / right: the camera centre moves along the chord of a 30°
orbit about the point 4 m ahead, turning to keep aiming at it (``cam09``/``cam10``). :func:`preset_trajectory`
builds them from this description (equal to every frame of the JSON within 0.01° and 1 mm) and, for
``T ≠ 81`` frames, resamples them as ReDirector's ``model_utils.make_camera_trajectory`` does: the 80 per-frame
steps (rotation about the mean axis, translation in the moving camera's axes) are linearly interpolated to
``T − 1`` steps of the same speed, so a shorter clip covers a shorter part of the motion. They ignore
``look_at_point`` and ``magnitude``.
"""

from __future__ import annotations

import json
import os

import numpy as np
from scipy.spatial.transform import Rotation

from mvtrack_jax.geometry import cameras

TRAJECTORY_NAMES = (
    "static",
    "pan_right",
    "pan_left",
    "tilt_up",
    "tilt_down",
    "zoom_in",
    "zoom_out",
    "translate_up",
    "translate_down",
    "arc_left",
    "arc_right",
)

# ReCamMaster's released trajectories (module docstring): name → what it does.
RECAMMASTER_MOTIONS = {"cam01": "pan_right", "cam02": "pan_left", "cam03": "tilt_up", "cam04": "tilt_down",
                       "cam05": "zoom_in", "cam06": "zoom_out", "cam07": "translate_up", "cam08": "translate_down",
                       "cam09": "arc_left", "cam10": "arc_right"}
RECAMMASTER_NAMES = tuple(RECAMMASTER_MOTIONS)
RECAMMASTER_FRAMES = 81
# Every name preset_trajectory accepts: this project's eased presets (the synthetic renderer's camera motions and
# the --split protocol's targets) and ReCamMaster's ten.
PRESET_NAMES = TRAJECTORY_NAMES + RECAMMASTER_NAMES
_RECAMMASTER_SPAN = 80.5  # frame f of the JSON carries f / 80.5 of the nominal motion
_RECAMMASTER_AIM = 4.0  # metres: the point translate and arc keep aiming at

# Default magnitudes: degrees for rotations, fractions of the look-at distance for translations.
DEFAULT_PAN_DEGREES = 30.0
DEFAULT_TILT_DEGREES = 20.0
DEFAULT_ARC_DEGREES = 45.0
DEFAULT_TRANSLATION_FRACTION = 0.3
DEFAULT_LOOK_AT_DISTANCE = 4.0  # metres in front of the start camera when no look-at point is given.


def _rotation_about_axis(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
  """Rodrigues: rotations ``(..., 3, 3)`` by ``angle`` (radians, ``(...)``) about unit ``axis`` (3,)."""
  axis = np.asarray(axis, np.float64)
  axis = axis / np.linalg.norm(axis)
  angle = np.asarray(angle, np.float64)[..., None, None]
  kx, ky, kz = axis
  k = np.array([[0.0, -kz, ky], [kz, 0.0, -kx], [-ky, kx, 0.0]])
  return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Smallest rotations ``(..., 3, 3)`` taking unit vectors ``a`` (3,) onto unit vectors ``b`` (..., 3)."""
  cross = np.cross(a, b)
  sin = np.linalg.norm(cross, axis=-1)
  cos = np.clip(np.einsum("i,...i->...", a, b), -1.0, 1.0)
  angle = np.arctan2(sin, cos)
  out = np.broadcast_to(np.eye(3), b.shape[:-1] + (3, 3)).copy()
  moving = sin > 1e-12
  for idx in zip(*np.nonzero(moving)):
    out[idx] = _rotation_about_axis(cross[idx] / sin[idx], angle[idx])
  return out


def _ease(num_frames: int) -> np.ndarray:
  """Ease-in/ease-out progress ``(T,)`` from 0 at frame 0 to 1 at frame T−1."""
  if num_frames == 1:
    return np.zeros(1)
  return 0.5 * (1.0 - np.cos(np.pi * np.arange(num_frames) / (num_frames - 1)))


def _pose(rotation: np.ndarray, centre: np.ndarray) -> np.ndarray:
  """``(..., 4, 4)`` camera-to-world poses from rotations ``(..., 3, 3)`` and camera centres ``(..., 3)``."""
  out = np.zeros(rotation.shape[:-2] + (4, 4))
  out[..., :3, :3], out[..., :3, 3], out[..., 3, 3] = rotation, centre, 1.0
  return out


def _recammaster_81(name: str) -> np.ndarray:
  """The 81 poses of ReCamMaster's ``name`` relative to frame 0, from the description in the module docstring."""
  motion = RECAMMASTER_MOTIONS[name]
  kind, _, direction = motion.partition("_")
  sign = 1.0 if direction in ("right", "down", "in") else -1.0
  p = np.arange(RECAMMASTER_FRAMES) / _RECAMMASTER_SPAN
  zero = np.zeros((RECAMMASTER_FRAMES, 3))
  x_axis, y_axis = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
  if kind == "pan":  # about camera y: + turns the optical axis towards +x (right)
    return _pose(_rotation_about_axis(y_axis, sign * np.deg2rad(20.0) * p), zero)
  if kind == "tilt":  # about camera x: + turns the optical axis towards -y (up)
    return _pose(_rotation_about_axis(x_axis, -sign * np.deg2rad(10.0) * p), zero)
  if kind == "zoom":
    return _pose(np.broadcast_to(np.eye(3), (RECAMMASTER_FRAMES, 3, 3)), zero + np.outer(sign * 2.0 * p, [0, 0, 1]))
  if kind == "translate":  # +y is down; turn about x to keep aiming at (0, 0, 4)
    height = sign * 1.0 * p
    return _pose(_rotation_about_axis(x_axis, np.arctan2(height, _RECAMMASTER_AIM)),
                 zero + np.outer(height, [0, 1, 0]))
  # arc: the chord of a 30° orbit about (0, 0, 4), turning about y to keep aiming at it
  end = np.array([sign * _RECAMMASTER_AIM * np.sin(np.deg2rad(30.0)), 0.0,
                  _RECAMMASTER_AIM * (1.0 - np.cos(np.deg2rad(30.0)))])
  centres = np.outer(p, end)
  yaw = np.arctan2(-centres[:, 0], _RECAMMASTER_AIM - centres[:, 2])
  return _pose(_rotation_about_axis(y_axis, yaw), centres)


def redirector_resample(poses: np.ndarray, num_frames: int) -> np.ndarray:
  """ReDirector's ``make_camera_trajectory`` resampling of a trajectory to ``num_frames`` poses (speed 1).

  The per-frame steps of ``poses`` ``(N, 4, 4)`` (rotation vectors of ``R_i^T R_{i+1}`` projected on their mean
  axis, translations in camera ``i``'s axes) are linearly interpolated over ``[0, 1]`` to ``num_frames − 1`` steps
  and integrated from ``poses[0]``: the motion keeps its speed, so fewer frames cover less of it.
  """
  rots, centres = poses[:, :3, :3], poses[:, :3, 3]
  steps = Rotation.from_matrix(np.einsum("nji,njk->nik", rots[:-1], rots[1:])).as_rotvec()  # (N-1, 3)
  local = np.einsum("nji,nj->ni", rots[:-1], centres[1:] - centres[:-1])  # (N-1, 3)
  total = steps.sum(axis=0)
  if np.linalg.norm(total) > 1e-6:
    axis = total / np.linalg.norm(total)
  elif np.linalg.norm(steps[0]) > 1e-6:
    axis = steps[0] / np.linalg.norm(steps[0])
  else:
    axis = np.array([0.0, 0.0, 1.0])
  src, dst = np.linspace(0.0, 1.0, len(steps)), np.linspace(0.0, 1.0, num_frames - 1)
  angles = np.interp(dst, src, steps @ axis)
  moves = np.stack([np.interp(dst, src, local[:, j]) for j in range(3)], axis=-1)
  out = [poses[0]]
  rot, centre, angle = rots[0], centres[0], 0.0
  for i in range(num_frames - 1):
    angle += angles[i]
    rot = rots[0] @ Rotation.from_rotvec(axis * angle).as_matrix()  # steps are in the moving camera's axes
    centre = centre + rot @ moves[i]
    out.append(_pose(rot, centre))
  return np.stack(out)


def recammaster_trajectory(name: str, num_frames: int = RECAMMASTER_FRAMES) -> np.ndarray:
  """``(T, 4, 4)`` OpenCV camera-to-world poses (metres) of ReCamMaster's ``cam01`` … ``cam10``, relative to frame 0
  (module docstring; ReDirector's resampling for ``T ≠ 81``).

  Raises:
    ValueError: an unknown name or ``num_frames < 1``.
  """
  if name not in RECAMMASTER_MOTIONS:
    raise ValueError(f"recammaster_trajectory: unknown name {name!r}; expected one of {', '.join(RECAMMASTER_NAMES)}")
  if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
    raise ValueError(f"recammaster_trajectory: num_frames must be an int >= 1, got {num_frames!r}")
  poses = _recammaster_81(name)
  return poses if num_frames == RECAMMASTER_FRAMES else redirector_resample(poses, int(num_frames))


def _parse_unreal_matrix(text: str, where: str) -> np.ndarray:
  """ReCamMaster's ``"[a b c d] [e f g h] ..."`` 4×4 string (row-major, translation in the last row)."""
  try:
    rows = [[float(v) for v in row.replace("[", "").replace("]", "").split()] for row in text.strip().split("] [")]
    matrix = np.array(rows, np.float64)
  except (AttributeError, ValueError) as e:
    raise ValueError(f"{where}: expected a '[a b c d] [e f g h] [i j k l] [m n o p]' matrix string, got {text!r}") \
        from e
  if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
    raise ValueError(f"{where}: expected 4 rows of 4 numbers, got {text!r}")
  return matrix


def read_recammaster_json(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
  """Reads a ReCamMaster ``camera_extrinsics.json`` (``{"frame<i>": {"cam<NN>": "[..] [..] [..] [..]"}}``).

  Each matrix is converted as ReCamMaster's ``inference_recammaster.py`` (and ReDirector's
  ``_build_traj_opencv_c2w``) convert it: transposed (the file is row-major with the translation in the last row),
  columns reordered ``[1, 2, 0]`` and the new y column negated (Unreal's forward/right/up camera axes → OpenCV's
  right/down/forward), centimetres → metres; then made relative to frame 0 (``inv(C_0) @ C_i``, which also
  removes the left-handed world: the relative rotations are proper).

  Returns:
    ``{camera name: (F, 4, 4) float64}`` for every camera of the file, frames in order ``frame0 … frame<F−1>``.

  Raises:
    FileNotFoundError: no such file; ValueError: not this layout (naming the file, frame and camera).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file (expected ReCamMaster's camera_extrinsics.json)")
  with open(path) as f:
    data = json.load(f)
  if not isinstance(data, dict) or "frame0" not in data:
    raise ValueError(f"{path}: expected ReCamMaster's layout "
                     "{'frame0': {'cam01': '[..] [..] [..] [..]', ...}, ...}")
  frames = [f"frame{i}" for i in range(len(data))]
  missing = [f for f in frames if f not in data]
  if missing:
    raise ValueError(f"{path}: frames must be frame0 … frame{len(data) - 1}; missing {missing[:3]}")
  out = {}
  for cam in sorted(data["frame0"]):
    mats = []
    for frame in frames:
      if cam not in data[frame]:
        raise ValueError(f"{path}: {frame} has no camera {cam!r}")
      c2w = _parse_unreal_matrix(data[frame][cam], f"{path}: {frame}.{cam}").T[:, [1, 2, 0, 3]]
      c2w[:3, 1] *= -1.0
      c2w[:3, 3] /= 100.0
      mats.append(c2w)
    mats = np.stack(mats)
    out[cam] = cameras.relative_to_reference(mats, mats[:1])
  return out


def preset_trajectory(
    name: str,
    num_frames: int,
    *,
    start_cam_to_world: np.ndarray | None = None,
    look_at_point: np.ndarray | None = None,
    magnitude: float | None = None,
) -> np.ndarray:
  """Camera-to-world poses of one of ReCamMaster's preset trajectories (or ``static``).

  Directions and defaults are those of the module docstring (all in the start camera's axes).

  Args:
    name: one of ``PRESET_NAMES``: this project's eased presets (``TRAJECTORY_NAMES``, snake_case, e.g.
      ``"pan_right"``, ``"arc_left"``) or ReCamMaster's released ``"cam01"`` … ``"cam10"`` (constant speed,
      fixed sizes: :func:`recammaster_trajectory`, composed with ``start_cam_to_world``).
    num_frames: ``T >= 1`` poses to return.
    start_cam_to_world: ``(4, 4)`` rigid OpenCV camera-to-world pose of frame 0 (default identity).
    look_at_point: ``(3,)`` world point (metres) that translate/arc motions keep aiming at and that
      sets the default translation length; default: 4 m in front of the start camera.
    magnitude: size of the whole motion: degrees for pan/tilt/arc, metres for zoom/translate
      (ignored by ``static``); default per the module docstring. Must be finite and >= 0.

  Returns:
    ``(T, 4, 4)`` float64 cam_to_world poses; ``[0]`` equals ``start_cam_to_world``; every
    rotation block is orthonormal with determinant +1.

  Raises:
    ValueError: unknown ``name`` (the message lists the valid names), ``num_frames < 1``, a
      malformed ``start_cam_to_world`` / ``look_at_point``, a negative or non-finite
      ``magnitude``, or a look-at point at the camera centre for a motion that aims at it.

  Source: the motions of ReCamMaster's released trajectories (KwaiVGI/ReCamMaster,
  ``camera_extrinsics.json``): ``cam01`` … ``cam10`` reproduce that file; the eased presets' magnitudes and
  easing are this project's.
  """
  if name in RECAMMASTER_MOTIONS:
    if look_at_point is not None or magnitude is not None:
      raise ValueError(f"preset_trajectory: {name} is ReCamMaster's released trajectory ({RECAMMASTER_MOTIONS[name]});"
                       " look_at_point and magnitude do not apply")
    relative = recammaster_trajectory(name, num_frames)
    if start_cam_to_world is None:
      return relative
    return np.asarray(start_cam_to_world, np.float64)[None] @ relative
  if name not in TRAJECTORY_NAMES:
    raise ValueError(f"preset_trajectory: unknown name {name!r}; valid names are {', '.join(PRESET_NAMES)}")
  if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
    raise ValueError(f"preset_trajectory: num_frames must be an int >= 1, got {num_frames!r}")
  if start_cam_to_world is None:
    start = np.eye(4)
  else:
    start = np.asarray(start_cam_to_world, np.float64)
    if start.shape != (4, 4) or not np.all(np.isfinite(start)):
      raise ValueError(f"preset_trajectory: start_cam_to_world must be a finite (4, 4) matrix, got shape {start.shape}")
    rot = start[:3, :3]
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-5) or np.linalg.det(rot) < 0.5 or \
       not np.allclose(start[3], [0.0, 0.0, 0.0, 1.0]):
      raise ValueError("preset_trajectory: start_cam_to_world must be rigid (orthonormal rotation, det +1, "
                       "last row [0, 0, 0, 1])")
  if magnitude is not None:
    magnitude = float(magnitude)
    if not np.isfinite(magnitude) or magnitude < 0:
      raise ValueError(f"preset_trajectory: magnitude must be finite and >= 0, got {magnitude}")

  rot0 = start[:3, :3]
  centre0 = start[:3, 3]
  y0, z0 = rot0[:, 1], rot0[:, 2]  # start camera axes (down, forward) in world coordinates
  if look_at_point is None:
    target = centre0 + DEFAULT_LOOK_AT_DISTANCE * z0
  else:
    target = np.asarray(look_at_point, np.float64)
    if target.shape != (3,) or not np.all(np.isfinite(target)):
      raise ValueError(f"preset_trajectory: look_at_point must be a finite (3,) point, got {np.shape(look_at_point)}")
  distance = float(np.linalg.norm(target - centre0))
  progress = _ease(num_frames)

  rots = np.broadcast_to(rot0, (num_frames, 3, 3)).copy()
  centres = np.broadcast_to(centre0, (num_frames, 3)).copy()
  kind, _, direction = name.partition("_")
  sign = 1.0 if direction in ("right", "down", "in") else -1.0

  if kind in ("pan", "tilt"):
    default = DEFAULT_PAN_DEGREES if kind == "pan" else DEFAULT_TILT_DEGREES
    angle = np.deg2rad(default if magnitude is None else magnitude) * progress
    if kind == "pan":
      # +angle about camera y turns z towards +x (right).
      local = _rotation_about_axis(np.array([0.0, 1.0, 0.0]), sign * angle)
    else:
      # +angle about camera x turns z towards −y (up); tilt_up has sign −1 → flip.
      local = _rotation_about_axis(np.array([1.0, 0.0, 0.0]), -sign * angle)
    rots = rot0 @ local
  elif kind == "zoom":
    length = (DEFAULT_TRANSLATION_FRACTION * distance if look_at_point is not None else 1.0) \
        if magnitude is None else magnitude
    centres = centre0 + sign * length * progress[:, None] * z0
  elif kind == "translate":
    if distance < 1e-9:
      raise ValueError("preset_trajectory: look_at_point coincides with the start camera centre")
    length = DEFAULT_TRANSLATION_FRACTION * distance if magnitude is None else magnitude
    centres = centre0 + sign * length * progress[:, None] * y0  # +y0 = down.
    view0 = (target - centre0) / distance
    views = target - centres
    norms = np.linalg.norm(views, axis=-1, keepdims=True)
    if np.any(norms < 1e-9):
      raise ValueError("preset_trajectory: the translation passes through look_at_point")
    rots = _rotation_between(view0, views / norms) @ rot0
  elif kind == "arc":
    angle = np.deg2rad(DEFAULT_ARC_DEGREES if magnitude is None else magnitude) * progress
    # Rotating about −y0 (camera up) by +angle moves a camera behind the target towards +x0.
    orbit = _rotation_about_axis(-y0, sign * angle)
    centres = target + np.einsum("tij,j->ti", orbit, centre0 - target)
    rots = orbit @ rot0

  out = _pose(rots, centres)
  out[0] = start  # exact, not just to rounding.
  return out
