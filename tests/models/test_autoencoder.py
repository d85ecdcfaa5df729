"""PixelAutoencoder: exact space-to-depth round trip and clear errors; latent-rate helpers."""

import numpy as np
import pytest

from mvtrack_jax.models import autoencoder as ae


@pytest.mark.parametrize("patch", [1, 2, 4])
def test_round_trip_is_exact(patch):
  rng = np.random.default_rng(patch)
  video = rng.integers(0, 256, size=(2, 3, 8, 12, 3), dtype=np.uint8)
  model = ae.PixelAutoencoder(patch)
  lat = model.encode(video)
  assert lat.shape == (2, 3, 8 // patch, 12 // patch, 3 * patch * patch) == model.latent_shape(video.shape)
  assert lat.dtype == np.float32
  assert float(lat.min()) >= -1.0 and float(lat.max()) <= 1.0
  np.testing.assert_array_equal(np.asarray(model.decode(lat)), video)
  assert model.spatial_factor == patch and model.temporal_factor == 1


def test_space_to_depth_layout():
  video = np.zeros((1, 1, 4, 4, 3), np.uint8)
  video[0, 0, 1, 0, 2] = 255  # row 1 col 0 blue → latent cell (0, 0), channel (p1=1, p2=0, c=2).
  lat = np.asarray(ae.PixelAutoencoder(2).encode(video))
  assert lat[0, 0, 0, 0, 1 * 6 + 0 * 3 + 2] == 1.0
  assert (lat == 1.0).sum() == 1


def test_bad_inputs():
  model = ae.PixelAutoencoder(4)
  with pytest.raises(ValueError, match="divisible by patch=4.*H=6"):
    model.encode(np.zeros((1, 1, 6, 8, 3), np.uint8))
  with pytest.raises(ValueError, match="uint8"):
    model.encode(np.zeros((1, 1, 8, 8, 3), np.float32))
  with pytest.raises(ValueError, match=r"\(B, T, H, W, 3\)"):
    model.encode(np.zeros((1, 8, 8, 3), np.uint8))
  with pytest.raises(ValueError, match="48"):
    model.decode(np.zeros((1, 1, 2, 2, 12), np.float32))
  with pytest.raises(ValueError, match="patch"):
    ae.PixelAutoencoder(0)


def test_latent_rate_helpers():
  np.testing.assert_array_equal(ae.latent_frame_indices(81, 4), np.arange(0, 81, 4))
  assert len(ae.latent_frame_indices(81, 4)) == 21
  tracks = np.arange(1 * 2 * 9 * 3 * 2, dtype=np.float32).reshape(1, 2, 9, 3, 2)
  vis = np.ones((1, 2, 9, 3), bool)
  t2, v2 = ae.tracks_to_latent_rate(tracks, vis, 4)
  assert t2.shape == (1, 2, 3, 3, 2) and v2.shape == (1, 2, 3, 3)
  np.testing.assert_array_equal(t2[:, :, 2], tracks[:, :, 8])
  q = np.array([[[0, 1, 2], [5, 3, 4], [80, 1, 1]]], np.float32)
  out = ae.query_frames_to_latent(q, 4, 21)
  np.testing.assert_array_equal(out[0, :, 0], [0, 1, 20])
  np.testing.assert_array_equal(out[..., 1:], q[..., 1:])
