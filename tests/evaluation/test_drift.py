"""Weight-free drift metrics against their definitions on constructed videos."""

import numpy as np
import pytest

from mvtrack_jax.evaluation import drift


def _scene(t=6, h=40, w=48, seed=0):
  """A smooth texture translating 2 px right per frame, with its exact tracks (all visible)."""
  rng = np.random.default_rng(seed)
  big = np.kron(rng.integers(0, 256, (h // 4 + 2, w // 4 + 8, 3)), np.ones((4, 4, 1)))
  video = np.stack([big[:h, 2 * (t - i):2 * (t - i) + w] for i in range(t)]).astype(np.uint8)
  xy = np.stack(np.meshgrid(np.arange(6, w - 16, 5) + 0.5, np.arange(4, h - 4, 5) + 0.5), -1).reshape(-1, 2)
  tracks = np.stack([xy + [2 * i, 0] for i in range(t)])
  return video, tracks, np.ones(tracks.shape[:2], bool)


def test_track_colour_drift_is_zero_along_true_tracks_and_the_brute_force_mean_otherwise():
  video, tracks, visible = _scene()
  assert drift.track_colour_drift(video, tracks, visible) == pytest.approx(0.0, abs=1e-9)
  # Pixel centres sampled exactly: the drift is the plain mean RGB distance to frame 0, over visible pairs.
  noisy = np.clip(video.astype(int) + np.random.default_rng(1).integers(-30, 31, video.shape), 0, 255).astype(np.uint8)
  visible[2, :3] = False
  ix, iy = tracks[..., 0].astype(int), tracks[..., 1].astype(int)
  colours = noisy[np.arange(len(noisy))[:, None], iy, ix].astype(float)
  expected = np.linalg.norm(colours[1:] - colours[:1], axis=-1)[visible[1:]].mean()
  assert drift.track_colour_drift(noisy, tracks, visible) == pytest.approx(expected, rel=1e-9)
  visible[0] = False  # no point visible in the first frame: nothing to score
  assert np.isnan(drift.track_colour_drift(noisy, tracks, visible))
  with pytest.raises(ValueError, match=r"tracks must be \(6, N, 2\)"):
    drift.track_colour_drift(video, tracks[:3], visible[:3])


def test_temporal_flickering_is_vbenchs_formula():
  video = np.zeros((3, 4, 4, 3), np.uint8)
  video[1] = 51  # MAE 51 between frames 0-1 and 1-2
  assert drift.temporal_flickering(video) == pytest.approx((255 - 51) / 255)
  assert drift.temporal_flickering(video[:1] * 0 + 7) != drift.temporal_flickering(video[:1] * 0 + 7)  # NaN
  with pytest.raises(ValueError, match="uint8"):
    drift.temporal_flickering(video.astype(np.float32))


def test_flow_track_survival_follows_a_steady_scene_and_loses_a_scrambled_one():
  video, _, _ = _scene()
  assert drift.flow_track_survival(np.repeat(video[:1], 6, axis=0)) == 1.0  # a still video keeps every track
  moving = drift.flow_track_survival(video)  # tracks near the edge the content leaves through are lost
  scrambled = video.copy()
  scrambled[3:] = np.random.default_rng(2).integers(0, 256, scrambled[3:].shape)
  assert moving > 0.5 and drift.flow_track_survival(scrambled) < 0.1
