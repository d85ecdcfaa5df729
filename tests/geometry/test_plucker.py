"""plucker_rays: channels [o × d, d], unit directions through pixel centres."""

import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax.geometry import intrinsics_from_fov, invert_rigid, look_at, plucker_rays, project_points


def test_plucker_rays_geometry():
  h, w = 5, 7
  k = intrinsics_from_fov(h, w, 70.0)
  k[0, 2] += 0.3  # off-centre principal point
  w2c = look_at(np.array([1.0, -0.5, -2.0]), np.array([0.2, 0.1, 1.0]))
  c2w = invert_rigid(w2c).astype(np.float32)
  rays = plucker_rays(k, c2w, h, w)
  assert rays.shape == (h, w, 6) and rays.dtype == jnp.float32
  moment, d = np.asarray(rays[..., :3]), np.asarray(rays[..., 3:])
  np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-6)
  o = c2w[:3, 3]
  np.testing.assert_allclose(moment, np.cross(np.broadcast_to(o, d.shape), d), atol=1e-5)
  # Any point on the ray o + t·d projects onto the pixel centre (j + 0.5, i + 0.5).
  pts = (o + 3.0 * d).reshape(-1, 3)
  xy, z = project_points(pts, k, w2c.astype(np.float32))
  ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  np.testing.assert_allclose(xy, np.stack([jj + 0.5, ii + 0.5], -1).reshape(-1, 2), atol=1e-4)
  assert np.all(z > 0)


def test_plucker_rays_batch_and_errors():
  k = np.broadcast_to(intrinsics_from_fov(4, 4, 60.0), (2, 3, 3, 3))
  c2w = np.broadcast_to(np.eye(4, dtype=np.float32), (2, 3, 4, 4))
  assert plucker_rays(k, c2w, 4, 4).shape == (2, 3, 4, 4, 6)
  with pytest.raises(ValueError, match="intrinsics"):
    plucker_rays(np.eye(4), np.eye(4), 4, 4)
  with pytest.raises(ValueError, match="cam_to_world"):
    plucker_rays(np.eye(3), np.eye(3), 4, 4)
  with pytest.raises(ValueError, match="positive"):
    plucker_rays(np.eye(3), np.eye(4), 0, 4)
