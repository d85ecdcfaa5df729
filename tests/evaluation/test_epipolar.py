"""Tests of the Sampson epipolar error under known cameras."""

import cv2
import numpy as np
import pytest

from mvtrack_jax import geometry
from mvtrack_jax.evaluation import epipolar


def _two_views(rng, num_points=40):
  intrinsics = geometry.intrinsics_from_fov(120, 160, 55).astype(np.float64)
  w2c_ref = geometry.look_at(np.array([0.0, -0.3, -4.0]), np.zeros(3))
  w2c_tgt = geometry.look_at(np.array([1.5, -0.8, -3.5]), np.array([0.2, 0.0, 0.0]))
  points = rng.uniform(-1, 1, size=(num_points, 3))
  xy_ref, _ = geometry.project_points(points, intrinsics, w2c_ref)
  xy_tgt, _ = geometry.project_points(points, intrinsics, w2c_tgt)
  return intrinsics, w2c_ref, w2c_tgt, xy_ref, xy_tgt


def test_exact_correspondences_have_zero_error_and_match_opencv():
  rng = np.random.default_rng(0)
  k, w2c_ref, w2c_tgt, xy_ref, xy_tgt = _two_views(rng)
  f = epipolar.fundamental_matrix(k, w2c_ref, k, w2c_tgt)
  assert np.max(epipolar.sampson_error(xy_ref, xy_tgt, f)) < 1e-12
  out = epipolar.epipolar_consistency(xy_ref, xy_tgt, None, k, w2c_ref, k, w2c_tgt)
  assert out["mean_sampson_px"] < 1e-6 and out["num_points"] == 40 and out["frac_below_1px"] == 1.0
  # Perturbed points: agrees with OpenCV's own Sampson distance (pt1 = reference, pt2 = target).
  noisy = xy_tgt + rng.normal(scale=2.0, size=xy_tgt.shape)
  ours = epipolar.sampson_error(xy_ref, noisy, f)
  theirs = [cv2.sampsonDistance(np.append(a, 1.0), np.append(b, 1.0), f) for a, b in zip(xy_ref, noisy)]
  np.testing.assert_allclose(ours, theirs, rtol=1e-9)


@pytest.mark.parametrize("shift", [0.5, 1.0, 3.0])
def test_known_value_for_a_shifted_point_in_a_rectified_pair(shift):
  # Target camera 0.2 m to the right of the reference, same orientation: epipolar lines are the
  # image rows, so a vertical shift d gives d² / 2 and a horizontal shift gives 0.
  k = np.array([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]])
  w2c_ref = np.eye(4)
  w2c_tgt = np.eye(4)
  w2c_tgt[0, 3] = -0.2
  ref = np.array([[30.5, 20.5], [70.0, 60.0]])
  tgt = ref + np.array([[-9.0, shift], [-4.0, 0.0]])
  d2 = epipolar.sampson_error(ref, tgt, epipolar.fundamental_matrix(k, w2c_ref, k, w2c_tgt))
  np.testing.assert_allclose(d2, [shift ** 2 / 2, 0.0], atol=1e-12)
  out = epipolar.epipolar_consistency(ref, tgt, np.array([True, False]), k, w2c_ref, k, w2c_tgt)
  np.testing.assert_allclose(out["mean_sampson_px2"], shift ** 2 / 2)
  np.testing.assert_allclose(out["mean_sampson_px"], shift / np.sqrt(2))
  assert out["num_points"] == 1
  assert out["frac_below_1px"] == float(shift / np.sqrt(2) < 1.0)


def test_video_layout_masking_and_degenerate_pairs():
  rng = np.random.default_rng(1)
  k, w2c_ref, w2c_tgt, xy_ref, xy_tgt = _two_views(rng, num_points=10)
  # (T=3, N, 2) tracks with per-frame cameras; frame 2 has the target camera on the reference one.
  ref = np.stack([xy_ref] * 3)
  tgt = np.stack([xy_tgt, xy_tgt, xy_ref])
  tgt[1, :4] += 50.0  # garbage on points we mark invisible
  visible = np.ones((3, 10), bool)
  visible[1, :4] = False
  out = epipolar.epipolar_consistency(ref, tgt, visible, np.stack([k] * 3), np.stack([w2c_ref] * 3),
                                      np.stack([k] * 3), np.stack([w2c_tgt, w2c_tgt, w2c_ref]))
  assert out["num_points"] == 16 and out["num_degenerate"] == 10
  assert out["mean_sampson_px2"] < 1e-12
  with pytest.raises(ValueError, match="visible"):
    epipolar.epipolar_consistency(ref, tgt, visible[:, :5], k, w2c_ref, k, w2c_tgt)
  with pytest.raises(ValueError, match="intrinsics_tgt"):
    epipolar.fundamental_matrix(k, w2c_ref, k[:2], w2c_tgt)
  with pytest.raises(ValueError, match="points_tgt"):
    epipolar.sampson_error(xy_ref, xy_tgt[:5], np.eye(3))
