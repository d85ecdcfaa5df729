"""ReCamMaster's preset camera trajectories, as camera-to-world pose sequences.

ReCamMaster (arXiv 2503.11647, paper-notes §2.8) ships ten "basic" target trajectories that its
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
"""

from __future__ import annotations

import numpy as np

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
    name: one of ``TRAJECTORY_NAMES`` (snake_case, e.g. ``"pan_right"``, ``"arc_left"``).
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

  Source: trajectory list from ReCamMaster's inference presets (paper-notes §2.8); the exact
  magnitudes of the released JSON are not reproduced, the defaults above are this project's.
  """
  if name not in TRAJECTORY_NAMES:
    raise ValueError(f"preset_trajectory: unknown name {name!r}; valid names are {', '.join(TRAJECTORY_NAMES)}")
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
  x0, y0, z0 = rot0[:, 0], rot0[:, 1], rot0[:, 2]
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

  out = np.zeros((num_frames, 4, 4))
  out[:, :3, :3] = rots
  out[:, :3, 3] = centres
  out[:, 3, 3] = 1.0
  out[0] = start  # exact, not just to rounding.
  return out
