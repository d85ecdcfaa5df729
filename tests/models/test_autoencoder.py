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


def test_queries_move_to_their_ground_truth_position_at_the_latent_frame():
  """k = 4, 9 frames → latent frames at video frames 0, 4, 8. A point moving 1 px/frame queried at
  video frame 3 goes to latent frame 1 (frame 4) at its position there, not at its frame-3 position."""
  t, n = 9, 3
  x = 10.0 + np.arange(t, dtype=np.float32)
  tracks = np.stack([np.stack([x, np.full(t, 5.0)], -1)] * n, axis=1)[None]   # (1, T, N, 2)
  visible = np.ones((1, t, n), bool)
  visible[0, 4, 1] = False                                  # point 1 hidden at frame 4: goes to frame 0 or 8
  visible[0, [0, 4, 8], 2] = False                          # point 2 visible at no latent frame
  query = np.array([[[3.0, 13.0, 5.0], [3.0, 13.0, 5.0], [5.0, 15.0, 5.0]]], np.float32)
  out, ok = ae.queries_at_latent_frames(query, tracks, visible, 4, 3)
  np.testing.assert_allclose(out[0, 0], [1.0, 14.0, 5.0])   # old behaviour: (1, 13, 5)
  np.testing.assert_allclose(out[0, 1], [0.0, 10.0, 5.0])   # |0 − 3| < |8 − 3|
  np.testing.assert_array_equal(ok[0], [True, True, False])
  np.testing.assert_allclose(out[0, 2], ae.query_frames_to_latent(query, 4, 3)[0, 2])
  # k = 1 and queries at visible entries: unchanged.
  same, _ = ae.queries_at_latent_frames(np.array([[[2.0, 12.0, 5.0]]], np.float32), tracks[:, :, :1],
                                        visible[:, :, :1], 1, t)
  np.testing.assert_allclose(same[0, 0], [2.0, 12.0, 5.0])
  with pytest.raises(ValueError, match="latent frames"):
    ae.queries_at_latent_frames(query, tracks, visible, 4, 2)
