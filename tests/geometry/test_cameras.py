"""Tests of the camera conventions every module relies on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax import geometry


def _random_pose(rng: np.random.Generator) -> np.ndarray:
  """A random world_to_camera looking roughly at the origin from ~3 m."""
  eye = rng.normal(size=3)
  eye = 3.0 * eye / np.linalg.norm(eye)
  target = rng.normal(scale=0.2, size=3)
  up = np.array([0.0, -1.0, 0.0]) + rng.normal(scale=0.1, size=3)
  return geometry.look_at(eye, target, up)


def test_invert_rigid_is_exact_inverse():
  rng = np.random.default_rng(0)
  w2c = np.stack([_random_pose(rng) for _ in range(5)])
  c2w = geometry.invert_rigid(w2c)
  np.testing.assert_allclose(c2w @ w2c, np.broadcast_to(np.eye(4), w2c.shape), atol=1e-12)
  np.testing.assert_allclose(c2w, np.linalg.inv(w2c), atol=1e-12)
  # Same result through JAX, returned as a JAX array.
  out = geometry.invert_rigid(jnp.asarray(w2c, jnp.float32))
  assert isinstance(out, jax.Array)
  np.testing.assert_allclose(np.asarray(out), c2w, atol=1e-5)


def test_look_at_opencv_axes():
  # Camera at -3 z looking at the origin with world gravity +y: identity rotation.
  w2c = geometry.look_at(np.array([0.0, 0.0, -3.0]), np.zeros(3))
  np.testing.assert_allclose(w2c[:3, :3], np.eye(3), atol=1e-12)
  np.testing.assert_allclose(w2c[:3, 3], [0.0, 0.0, 3.0], atol=1e-12)
  # The target projects to the principal point, a point below it (+y world) to a larger image y.
  k = geometry.intrinsics_from_fov(48, 64, 60.0)
  xy, z = geometry.project_points(np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.5, 0.0, 0.0]]), k, w2c)
  np.testing.assert_allclose(xy[0], [32.0, 24.0], atol=1e-6)
  assert xy[1, 1] > 24.0 and xy[2, 0] > 32.0
  np.testing.assert_allclose(z, [3.0, 3.0, 3.0])
  with pytest.raises(ValueError, match="coincide"):
    geometry.look_at(np.zeros(3), np.zeros(3))
  with pytest.raises(ValueError, match="parallel"):
    geometry.look_at(np.zeros(3), np.array([0.0, 1.0, 0.0]))


def test_rays_through_pixel_centres_reproject_to_those_centres():
  rng = np.random.default_rng(1)
  h, w = 5, 7
  k = np.array([[40.0, 0.0, 3.1], [0.0, 42.0, 2.4], [0.0, 0.0, 1.0]])
  w2c = _random_pose(rng)
  origins, dirs = geometry.camera_rays(k, geometry.invert_rigid(w2c), h, w)
  assert dirs.shape == (h, w, 3)
  np.testing.assert_allclose(np.linalg.norm(dirs, axis=-1), 1.0, atol=1e-12)
  points = origins + 2.5 * dirs.reshape(-1, 3)
  xy, z = geometry.project_points(points, k, w2c)
  np.testing.assert_allclose(xy.reshape(h, w, 2), geometry.pixel_centers(h, w), atol=1e-9)
  assert (z > 0).all()
  # Pixel (row 0, col 0) has its centre at (0.5, 0.5): corner-origin TAP-Vid convention.
  np.testing.assert_allclose(geometry.pixel_centers(h, w)[0, 0], [0.5, 0.5])
  np.testing.assert_allclose(geometry.pixel_centers(h, w)[2, 6], [6.5, 2.5])


def test_relative_to_reference_makes_reference_identity():
  rng = np.random.default_rng(2)
  c2w = geometry.invert_rigid(np.stack([_random_pose(rng) for _ in range(4)]))
  rel = geometry.relative_to_reference(c2w, c2w[0])
  np.testing.assert_allclose(rel[0], np.eye(4), atol=1e-12)
  # Relative poses are invariant to a change of world frame.
  world = geometry.invert_rigid(_random_pose(rng))
  rel2 = geometry.relative_to_reference(world @ c2w, (world @ c2w)[0])
  np.testing.assert_allclose(rel2, rel, atol=1e-12)
  # Idempotent once relative.
  np.testing.assert_allclose(geometry.relative_to_reference(rel, rel[0]), rel, atol=1e-12)


def test_resize_and_crop_intrinsics_move_projections_like_pixels():
  rng = np.random.default_rng(3)
  k = np.array([[50.0, 0.0, 32.0], [0.0, 55.0, 24.0], [0.0, 0.0, 1.0]], np.float32)
  w2c = _random_pose(rng)
  points = rng.normal(scale=0.3, size=(10, 3))
  xy, _ = geometry.project_points(points, k, w2c)
  xy_s, _ = geometry.project_points(points, geometry.scale_intrinsics(k, 0.5, 0.25), w2c)
  np.testing.assert_allclose(xy_s, xy * np.array([0.5, 0.25]), rtol=1e-5)
  xy_c, _ = geometry.project_points(points, geometry.crop_intrinsics(k, 3.0, 5.0), w2c)
  np.testing.assert_allclose(xy_c, xy - np.array([3.0, 5.0]), rtol=1e-5, atol=1e-4)
  kj = geometry.crop_intrinsics(jnp.asarray(k), 3.0, 5.0)
  np.testing.assert_allclose(np.asarray(kj), geometry.crop_intrinsics(k, 3.0, 5.0))


def test_camera_validators_name_the_problem():
  from mvtrack_jax.geometry import cameras as cams
  k = cams.intrinsics_from_fov(32, 48, 60.0)
  np.testing.assert_allclose(cams.check_intrinsics(np.stack([k, k]), "K"), np.stack([k, k]))
  bad = np.stack([k, k]).astype(np.float64)
  bad[1, 1, 1] = np.nan
  with pytest.raises(ValueError, match=r"K: nan at index \(1, 1, 1\)"):
    cams.check_intrinsics(bad, "K")
  with pytest.raises(ValueError, match="focal length -1.0"):
    cams.check_intrinsics(np.array([[-1.0, 0, 1], [0, 1, 1], [0, 0, 1]]), "K")
  with pytest.raises(ValueError, match=r"field of view 0 degrees"):
    cams.intrinsics_from_fov(32, 48, 0)
  pose = np.eye(4)
  cams.check_rigid(pose, "c2w")
  for broken, match in ((np.diag([1.0, 1.0, -1.0, 1.0]), "not rigid"), (np.diag([2.0, 1.0, 1.0, 1.0]), "not rigid"),
                        (np.full((4, 4), np.inf), "inf at index"), (np.eye(3), "expected")):
    with pytest.raises(ValueError, match=match):
      cams.check_rigid(broken, "c2w")
