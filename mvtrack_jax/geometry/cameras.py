"""Pinhole cameras in the project's one convention, and the operations every module shares.

Conventions (docs/design.md §3):

- Intrinsics ``K`` are pixel-unit pinhole matrices ``(..., 3, 3)``: ``[[fx, 0, cx], [0, fy, cy],
  [0, 0, 1]]``.
- Extrinsics are ``world_to_camera`` rigid transforms ``(..., 4, 4)`` with OpenCV axes (x right,
  y down, z forward) in metres; ``cam_to_world = invert_rigid(world_to_camera)``.
- Pixel coordinates are continuous ``(x, y)`` with the origin at the top-left corner of the
  top-left pixel, so pixel ``(i, j)`` (row, column) has its centre at ``(j + 0.5, i + 0.5)``
  (TAP-Vid convention). Projection: ``x = fx · X / Z + cx``, ``y = fy · Y / Z + cy``.

Every function accepts NumPy or JAX arrays and returns the same kind (JAX when any input is a
JAX array), so the data pipeline stays in NumPy while models differentiate through the same code.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = Any


def _xp(*arrays: Array):
  """Returns ``jax.numpy`` when any argument is a JAX array (or tracer), else ``numpy``."""
  return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def invert_rigid(transform: Array) -> Array:
  """Inverts rigid transforms ``[R | t]`` exactly (``[Rᵀ | −Rᵀt]``).

  Args:
    transform: ``(..., 4, 4)`` rigid transforms (rotation + translation, last row ``0 0 0 1``).

  Returns:
    ``(..., 4, 4)`` inverses, same dtype.
  """
  xp = _xp(transform)
  rot = transform[..., :3, :3]
  trans = transform[..., :3, 3]
  rot_t = xp.swapaxes(rot, -1, -2)
  new_t = -xp.einsum("...ij,...j->...i", rot_t, trans)
  top = xp.concatenate([rot_t, new_t[..., None]], axis=-1)
  bottom = xp.broadcast_to(xp.asarray([0, 0, 0, 1], dtype=transform.dtype), top.shape[:-2] + (1, 4))
  return xp.concatenate([top, bottom], axis=-2)


def relative_to_reference(cam_to_world: Array, reference_cam_to_world: Array) -> Array:
  """Expresses camera-to-world poses in the frame of a reference camera.

  ``c2w_rel = inv(reference_cam_to_world) @ cam_to_world`` (docs/design.md §3: every camera of both views
  relative to the reference camera at frame 0, as in ReCamMaster and ReDirector).

  Args:
    cam_to_world: ``(..., 4, 4)`` poses.
    reference_cam_to_world: ``(..., 4, 4)`` pose(s), broadcast against ``cam_to_world``.

  Returns:
    ``(..., 4, 4)`` relative camera-to-world poses.
  """
  xp = _xp(cam_to_world, reference_cam_to_world)
  return xp.matmul(invert_rigid(reference_cam_to_world), cam_to_world)


def project_points(points_world: Array, intrinsics: Array, world_to_camera: Array) -> tuple[Array, Array]:
  """Projects world points into pixels.

  Args:
    points_world: ``(..., N, 3)`` world coordinates in metres.
    intrinsics: ``(..., 3, 3)`` pixel intrinsics (batch dims broadcast with ``points_world``'s).
    world_to_camera: ``(..., 4, 4)`` OpenCV extrinsics.

  Returns:
    ``(xy, z)``: ``xy`` ``(..., N, 2)`` continuous pixel coordinates (corner origin, centres at
    +0.5) and ``z`` ``(..., N)`` camera-space depth in metres. Points with ``z <= 0`` are behind the
    camera; their ``xy`` is computed with ``z`` clamped away from zero and is meaningless.
  """
  xp = _xp(points_world, intrinsics, world_to_camera)
  rot = world_to_camera[..., None, :3, :3]
  trans = world_to_camera[..., None, :3, 3]
  cam = xp.einsum("...ij,...j->...i", rot, points_world) + trans
  z = cam[..., 2]
  safe_z = xp.where(xp.abs(z) < 1e-12, 1e-12, z)
  fx = intrinsics[..., None, 0, 0]
  fy = intrinsics[..., None, 1, 1]
  cx = intrinsics[..., None, 0, 2]
  cy = intrinsics[..., None, 1, 2]
  skew = intrinsics[..., None, 0, 1]
  x = fx * cam[..., 0] / safe_z + skew * cam[..., 1] / safe_z + cx
  y = fy * cam[..., 1] / safe_z + cy
  return xp.stack([x, y], axis=-1), z


def pixel_centers(height: int, width: int, dtype=np.float32) -> np.ndarray:
  """Continuous ``(x, y)`` coordinates of pixel centres, ``(H, W, 2)``: ``(j + 0.5, i + 0.5)``."""
  ys, xs = np.meshgrid(np.arange(height, dtype=dtype) + 0.5, np.arange(width, dtype=dtype) + 0.5, indexing="ij")
  return np.stack([xs, ys], axis=-1)


def camera_rays(intrinsics: Array, cam_to_world: Array, height: int, width: int) -> tuple[Array, Array]:
  """World-space rays through the pixel centres of a ``height × width`` image.

  Args:
    intrinsics: ``(..., 3, 3)`` pixel intrinsics of that image size.
    cam_to_world: ``(..., 4, 4)`` camera-to-world poses (OpenCV axes).
    height, width: image size in pixels.

  Returns:
    ``(origins, directions)``: ``origins`` ``(..., 3)`` camera centres and ``directions``
    ``(..., H, W, 3)`` unit-length world directions through the pixel centres ``(j+0.5, i+0.5)``.
  """
  xp = _xp(intrinsics, cam_to_world)
  dtype = intrinsics.dtype if np.issubdtype(np.dtype(intrinsics.dtype), np.floating) else np.float32
  centers = xp.asarray(pixel_centers(height, width, dtype=np.float64)).astype(dtype)
  fx = intrinsics[..., 0, 0, None, None]
  fy = intrinsics[..., 1, 1, None, None]
  cx = intrinsics[..., 0, 2, None, None]
  cy = intrinsics[..., 1, 2, None, None]
  skew = intrinsics[..., 0, 1, None, None]
  y_cam = (centers[..., 1] - cy) / fy
  x_cam = (centers[..., 0] - cx - skew * y_cam) / fx
  d_cam = xp.stack([x_cam, y_cam, xp.ones_like(x_cam)], axis=-1)
  rot = cam_to_world[..., None, None, :3, :3]
  d_world = xp.einsum("...ij,...j->...i", rot, d_cam)
  d_world = d_world / xp.linalg.norm(d_world, axis=-1, keepdims=True)
  return cam_to_world[..., :3, 3], d_world


def scale_intrinsics(intrinsics: Array, scale_x: float, scale_y: float) -> Array:
  """Intrinsics after resizing the image by ``(scale_x, scale_y)``.

  With corner-origin continuous pixel coordinates a resize maps ``x → scale_x · x`` exactly, so
  ``fx, cx`` (and skew) scale by ``scale_x`` and ``fy, cy`` by ``scale_y``. Tracks scale the same
  way: ``tracks · [scale_x, scale_y]``.
  """
  xp = _xp(intrinsics)
  s = xp.asarray([[scale_x, scale_x, scale_x], [scale_y, scale_y, scale_y], [1.0, 1.0, 1.0]], dtype=intrinsics.dtype)
  return intrinsics * s


def crop_intrinsics(intrinsics: Array, x0: float, y0: float) -> Array:
  """Intrinsics after cropping the image at top-left ``(x0, y0)`` pixels (tracks: ``− [x0, y0]``)."""
  xp = _xp(intrinsics)
  offset = xp.asarray([[0.0, 0.0, x0], [0.0, 0.0, y0], [0.0, 0.0, 0.0]], dtype=intrinsics.dtype)
  return intrinsics - offset


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, -1.0, 0.0])) -> np.ndarray:
  """OpenCV ``world_to_camera`` of a camera at ``eye`` looking at ``target``.

  Args:
    eye, target: ``(..., 3)`` world positions (metres).
    up: world "up" direction (``(..., 3)``). The camera's y axis points *down* in OpenCV, so the
      default ``(0, −1, 0)`` means a world whose gravity is +y (the project's synthetic scenes).

  Returns:
    ``(..., 4, 4)`` float64 world-to-camera transforms.

  Raises:
    ValueError: when ``eye == target`` or the viewing direction is parallel to ``up``.
  """
  eye = np.asarray(eye, np.float64)
  target = np.asarray(target, np.float64)
  up = np.broadcast_to(np.asarray(up, np.float64), eye.shape)
  forward = target - eye
  norm = np.linalg.norm(forward, axis=-1, keepdims=True)
  if np.any(norm < 1e-9):
    raise ValueError(f"look_at: eye and target coincide (eye={eye.tolist()}, target={target.tolist()})")
  forward = forward / norm
  right = np.cross(-up, forward)  # camera x = y × z with camera y = world down = −up.
  rnorm = np.linalg.norm(right, axis=-1, keepdims=True)
  if np.any(rnorm < 1e-9):
    raise ValueError("look_at: viewing direction is parallel to `up`; pick another up vector")
  right = right / rnorm
  down = np.cross(forward, right)
  rot_c2w = np.stack([right, down, forward], axis=-1)  # columns = camera axes in world coords
  c2w = np.zeros(eye.shape[:-1] + (4, 4))
  c2w[..., :3, :3] = rot_c2w
  c2w[..., :3, 3] = eye
  c2w[..., 3, 3] = 1.0
  return invert_rigid(c2w)


def intrinsics_from_fov(height: int, width: int, fov_x_degrees: float) -> np.ndarray:
  """Pinhole intrinsics with square pixels, principal point at the image centre, float32 ``(3, 3)``.

  Raises:
    ValueError: ``fov_x_degrees`` not in (0, 180).
  """
  if not 0.0 < float(fov_x_degrees) < 180.0:
    raise ValueError(f"field of view {fov_x_degrees} degrees: expected a value in (0, 180)")
  fx = 0.5 * width / np.tan(np.deg2rad(fov_x_degrees) / 2.0)
  return np.array([[fx, 0.0, width / 2.0], [0.0, fx, height / 2.0], [0.0, 0.0, 1.0]], np.float32)


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
  return tuple(int(i) for i in np.argwhere(mask)[0])


def _finite_matrices(m: np.ndarray, size: int, name: str, what: str) -> np.ndarray:
  """``m`` as float64 ``(..., size, size)`` with finite entries, else ``ValueError`` naming ``name``."""
  m = np.asarray(m, np.float64)
  if m.ndim < 2 or m.shape[-2:] != (size, size):
    raise ValueError(f"{name}: shape {m.shape}, expected (..., {size}, {size}) {what}")
  bad = ~np.isfinite(m)
  if bad.any():
    at = _first_bad(bad)
    raise ValueError(f"{name}: {m[at]} at index {at}; {what} must be finite")
  return m


def check_intrinsics(k: np.ndarray, name: str) -> np.ndarray:
  """``(..., 3, 3)`` pinhole intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` (pixels) checked, as float64.

  Args:
    k: intrinsics in pixels.
    name: what to name in errors (the flag or file and the field, e.g. ``"--trajectory c.json: intrinsics"``).

  Raises:
    ValueError: wrong shape, a non-finite entry (named as NaN/inf with its index), a focal length
      ``≤ 0``, or rows other than ``[0, fy, cy]`` / ``[0, 0, 1]``.
  """
  k = _finite_matrices(k, 3, name, "intrinsics")
  focal = np.stack([k[..., 0, 0], k[..., 1, 1]], -1)
  if (focal <= 0).any():
    at = _first_bad(focal <= 0)
    raise ValueError(f"{name}: focal length {focal[at]} px at index {at}; fx and fy must be > 0")
  if not np.allclose(k[..., 2, :], [0.0, 0.0, 1.0], atol=1e-6) or not np.allclose(k[..., 1, 0], 0.0, atol=1e-6):
    raise ValueError(f"{name}: expected [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (last row [0, 0, 1])")
  return k


def check_rigid(m: np.ndarray, name: str, *, tolerance: float = 1e-4) -> np.ndarray:
  """``(..., 4, 4)`` rigid transforms (camera-to-world or world-to-camera) checked and returned as float64.

  Args:
    m: the transforms (metres for the translation).
    name: what to name in errors.
    tolerance: largest ``|R Rᵀ − I|`` entry accepted.

  Raises:
    ValueError: wrong shape, a non-finite entry (named as NaN/inf with its index), a last row other
      than ``[0, 0, 0, 1]``, or a rotation that is not orthonormal with determinant +1 (first index):
      non-invertible or scaled cameras are not rigid.
  """
  m = _finite_matrices(m, 4, name, "poses")
  if not np.allclose(m[..., 3, :], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
    raise ValueError(f"{name}: last row must be [0, 0, 0, 1]")
  rot = m[..., :3, :3]
  err = np.abs(rot @ np.swapaxes(rot, -1, -2) - np.eye(3)).max(axis=(-1, -2))
  bad = (err > tolerance) | (np.linalg.det(rot) < 0)
  if bad.any():
    at = _first_bad(bad)
    raise ValueError(f"{name}: pose {at} is not rigid (|R Rᵀ − I| = {err[at]:.3g}, det R = "
                     f"{np.linalg.det(rot)[at]:.3g}); expected a rotation with determinant +1 and a translation "
                     "(non-invertible or scaled cameras are not allowed)")
  return m
