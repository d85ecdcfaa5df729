"""Plücker ray maps: the dense camera encoding of CameraCtrl, ReDirector and MVTrack4Gen.

For each pixel centre, the ray with unit world direction ``d`` through it and origin ``o`` (the
camera centre) is encoded by its Plücker coordinates ``[o × d, d]`` (6 channels, moment first:
CameraCtrl / ReDirector ``ray_condition`` order; docs/design.md §3). Callers express ``cam_to_world``
relative to the reference camera at frame 0 (``geometry.relative_to_reference``) before encoding.
"""

from __future__ import annotations

import jax.numpy as jnp

from mvtrack_jax.geometry.cameras import Array, camera_rays


def plucker_rays(intrinsics: Array, cam_to_world: Array, height: int, width: int) -> jnp.ndarray:
  """Dense Plücker ray maps ``[o × d, d]`` through pixel centres.

  Args:
    intrinsics: ``(..., 3, 3)`` pixel intrinsics for a ``height × width`` image.
    cam_to_world: ``(..., 4, 4)`` camera-to-world poses, OpenCV axes, metres.
    height, width: output map size in pixels (pixel ``(i, j)`` is sampled at ``(j + 0.5, i + 0.5)``).

  Returns:
    ``(..., H, W, 6)`` float32 JAX array, channels ``[o × d, d]`` with ``‖d‖ = 1``.

  Raises:
    ValueError: when the trailing shapes are not ``(3, 3)`` / ``(4, 4)`` or the size is not positive.
  """
  intrinsics = jnp.asarray(intrinsics, jnp.float32)
  cam_to_world = jnp.asarray(cam_to_world, jnp.float32)
  if intrinsics.shape[-2:] != (3, 3):
    raise ValueError(f"plucker_rays: intrinsics must be (..., 3, 3), got {intrinsics.shape}")
  if cam_to_world.shape[-2:] != (4, 4):
    raise ValueError(f"plucker_rays: cam_to_world must be (..., 4, 4), got {cam_to_world.shape}")
  if height <= 0 or width <= 0:
    raise ValueError(f"plucker_rays: height and width must be positive, got {(height, width)}")
  origins, directions = camera_rays(intrinsics, cam_to_world, height, width)
  origins = jnp.broadcast_to(origins[..., None, None, :], directions.shape)
  moment = jnp.cross(origins, directions)
  return jnp.concatenate([moment, directions], axis=-1).astype(jnp.float32)
