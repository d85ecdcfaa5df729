"""Camera conditioning inputs: ReCamMaster pose features, packed Plücker maps, patch encoder."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax.geometry import intrinsics_from_fov, invert_rigid, look_at, plucker_rays, project_points
from mvtrack_jax.models import camera


def _orbit(frames, start, batch=2):
  angles = start + np.linspace(0, 0.5, frames)[None] + np.arange(batch)[:, None] * 0.1
  eye = np.stack([3 * np.sin(angles), 0.2 * angles, 3 - 3 * np.cos(angles)], -1)
  w2c = look_at(eye, np.broadcast_to([0.0, 0.0, 3.0], eye.shape))
  return invert_rigid(w2c).astype(np.float32)


def test_recammaster_features_follow_the_released_recipe():
  tgt, ref = _orbit(8, 0.7), _orbit(8, 0.0)
  feats = np.asarray(camera.recammaster_pose_features(jnp.asarray(tgt), jnp.asarray(ref), frames_per_latent=4))
  assert feats.shape == (2, 2, 12)
  for b in range(2):
    for f, frame in enumerate([3, 7]):  # last frame of each group = RGB frames 0, 4 of the unpadded video
      rel = np.linalg.inv(ref[b, 0]) @ tgt[b, frame]
      np.testing.assert_allclose(feats[b, f], rel[:3, :].reshape(12), atol=1e-5)
  with pytest.raises(ValueError, match="not a multiple"):
    camera.recammaster_pose_features(jnp.asarray(tgt[:, :7]), jnp.asarray(ref[:, :7]), 4)
  with pytest.raises(ValueError, match=r"target_cam_to_world.*expected shape"):
    camera.recammaster_pose_features(jnp.asarray(tgt[0]), jnp.asarray(ref), 4)


def test_plucker_latent_maps_pack_frames_and_sample_latent_cell_centres():
  stride, (h, w), fpl = 8, (3, 5), 2
  k = np.broadcast_to(intrinsics_from_fov(h * stride, w * stride, 55.0), (2, 4, 3, 3)).astype(np.float32)
  tgt, ref = _orbit(4, 0.4), _orbit(4, 0.0)
  maps = np.asarray(camera.plucker_latent_maps(jnp.asarray(k), jnp.asarray(tgt), jnp.asarray(ref), h, w, stride, fpl))
  assert maps.shape == (2, 2, h, w, 6 * fpl)
  rel = np.linalg.inv(ref[:, :1]) @ tgt
  k_lat = k.copy()
  k_lat[..., :2, :] /= stride
  rays = np.asarray(plucker_rays(k_lat, rel, h, w))  # (2, 4, h, w, 6)
  np.testing.assert_allclose(maps[:, 1, ..., 6:], rays[:, 3], atol=1e-5)  # latent frame 1, second frame
  np.testing.assert_allclose(maps[:, 0, ..., :6], rays[:, 0], atol=1e-5)
  # Idempotent: cameras already relative to the reference give the same maps.
  again = camera.plucker_latent_maps(jnp.asarray(k), jnp.asarray(rel), jnp.asarray(np.linalg.inv(ref[:, :1]) @ ref),
                                     h, w, stride, fpl)
  np.testing.assert_allclose(again, maps, atol=1e-5)
  # The ray of latent cell (i, j) passes through video pixel ((j + ½)·s, (i + ½)·s).
  d = rays[0, 2, 1, 4, 3:]
  o = rel[0, 2, :3, 3]
  xy, z = project_points((o + 2.0 * d)[None], k[0, 2], np.linalg.inv(rel[0, 2]))
  np.testing.assert_allclose(xy[0], [(4 + 0.5) * stride, (1 + 0.5) * stride], atol=1e-3)
  assert z[0] > 0


def test_plucker_patch_encoder_shapes():
  enc = camera.PluckerPatchEncoder(dim=32, patch_size=(1, 2, 2))
  maps = jnp.ones((2, 3, 4, 6, 24))
  params = enc.init(jax.random.key(0), maps)
  out = enc.apply(params, maps)
  assert out.shape == (2, 3 * 2 * 3, 32)
  assert params["params"]["patch"]["kernel"].value.shape == (1, 2, 2, 24, 32)


def test_pack_causal_camera_frames_repeats_frame_zero():
  # Wan's causal VAE: 1 + 4·(F − 1) video frames for F latent frames → F·4 camera entries.
  b, f, k = 2, 3, 4
  poses = jnp.arange(b * (1 + k * (f - 1)), dtype=jnp.float32).reshape(b, -1, 1, 1) * jnp.ones((4, 4))
  packed = camera.pack_causal_camera_frames({"target_cam_to_world": poses}, f, k)["target_cam_to_world"]
  assert packed.shape == (b, f * k, 4, 4)
  np.testing.assert_array_equal(packed[:, :k], jnp.repeat(poses[:, :1], k, axis=1))
  np.testing.assert_array_equal(packed[:, k:], poses[:, 1:])
  # Already packed, or k = 1: unchanged.
  full = jnp.zeros((b, f * k, 4, 4))
  assert camera.pack_causal_camera_frames({"x": full}, f, k)["x"] is full
  assert camera.pack_causal_camera_frames({"x": poses}, 9, 1)["x"] is poses
