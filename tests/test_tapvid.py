"""Tests of the TAP-Vid metrics on hand-computed cases, NumPy and jitted JAX."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax import tapvid


def _case(num_points=3, num_frames=6, query_frame=0, seed=0):
  rng = np.random.default_rng(seed)
  gt_tracks = rng.uniform(20, 230, size=(1, num_points, num_frames, 2))
  gt_occluded = np.zeros((1, num_points, num_frames), bool)
  query = np.concatenate([np.full((1, num_points, 1), float(query_frame)), gt_tracks[:, :, 0, ::-1]], axis=-1)
  return query, gt_occluded, gt_tracks


def test_perfect_prediction_scores_one():
  query, occ, tracks = _case()
  m = tapvid.compute_tapvid_metrics(query, occ, tracks, occ, tracks, "first")
  assert set(m) == set(tapvid.metric_names())
  for name, value in m.items():
    assert value.shape == (1,), name
    np.testing.assert_allclose(value, 1.0, err_msg=name)


def test_all_occluded_ground_truth():
  query, occ, tracks = _case()
  gt_occ = np.ones_like(occ)
  # Predicting "occluded" everywhere: OA = 1; nothing GT-visible, so δ and Jaccard are 0/0 = NaN.
  m = tapvid.compute_tapvid_metrics(query, gt_occ, tracks, gt_occ, tracks, "strided")
  np.testing.assert_allclose(m["occlusion_accuracy"], 1.0)
  assert np.isnan(m["pts_within_4"]).all() and np.isnan(m["average_jaccard"]).all()
  # Predicting "visible" everywhere: OA = 0 and every prediction is a false positive (Jaccard 0).
  m = tapvid.compute_tapvid_metrics(query, gt_occ, tracks, occ, tracks, "strided")
  np.testing.assert_allclose(m["occlusion_accuracy"], 0.0)
  np.testing.assert_allclose(m["average_jaccard"], 0.0)


@pytest.mark.parametrize("offset,expected", [
    (3.0, [0, 0, 1, 1, 1]),
    (4.0, [0, 0, 0, 1, 1]),    # strict: exactly δ = 4 px away is not within 4
    (0.5, [1, 1, 1, 1, 1]),
    (20.0, [0, 0, 0, 0, 0]),
])
def test_off_by_known_pixels(offset, expected):
  query, occ, tracks = _case()
  pred = tracks + np.array([0.0, offset])  # shifted in y
  m = tapvid.compute_tapvid_metrics(query, occ, tracks, occ, pred, "first")
  for delta, e in zip(tapvid.THRESHOLDS, expected):
    np.testing.assert_allclose(m[f"pts_within_{delta}"], e)
    np.testing.assert_allclose(m[f"jaccard_{delta}"], e)  # all predicted visible: FP = beyond δ
  np.testing.assert_allclose(m["average_jaccard"], np.mean(expected))
  np.testing.assert_allclose(m["average_pts_within_thresh"], np.mean(expected))
  np.testing.assert_allclose(m["occlusion_accuracy"], 1.0)


def test_diagonal_offset_uses_euclidean_distance():
  query, occ, tracks = _case()
  pred = tracks + np.array([3.0, 4.0])  # 5 px away
  m = tapvid.compute_tapvid_metrics(query, occ, tracks, occ, pred, "first")
  np.testing.assert_allclose([m[f"pts_within_{d}"][0] for d in tapvid.THRESHOLDS], [0, 0, 0, 1, 1])


def test_first_vs_strided_masks():
  # One track, T = 5, query at frame 2; the prediction is wrong (and claims visible) on frames 0, 1.
  query, occ, tracks = _case(num_points=1, num_frames=5, query_frame=2)
  pred = tracks.copy()
  pred[:, :, :2] += 50.0
  first = tapvid.compute_tapvid_metrics(query, occ, tracks, occ, pred, "first")     # frames 3, 4
  strided = tapvid.compute_tapvid_metrics(query, occ, tracks, occ, pred, "strided")  # frames 0, 1, 3, 4
  np.testing.assert_allclose(first["average_pts_within_thresh"], 1.0)
  np.testing.assert_allclose(first["average_jaccard"], 1.0)
  np.testing.assert_allclose(strided["average_pts_within_thresh"], 0.5)
  # 2 TP, 2 FP (beyond δ while predicted visible), 4 GT-visible: 2 / (4 + 2).
  np.testing.assert_allclose(strided["average_jaccard"], 2.0 / 6.0)
  mask = tapvid.evaluation_mask(np.array([2.0]), 5, "first")
  np.testing.assert_array_equal(mask, [[False, False, False, True, True]])
  mask = tapvid.evaluation_mask(np.array([1.6]), 5, "strided")  # rounds to frame 2
  np.testing.assert_array_equal(mask, [[True, True, False, True, True]])


def test_hand_computed_jaccard_with_false_positive_and_negative():
  # T = 4, query at 0 ('first' scores frames 1..3):
  #   frame 1: GT visible, predicted visible, exact    -> TP, occlusion correct
  #   frame 2: GT occluded, predicted visible          -> FP, occlusion wrong
  #   frame 3: GT visible, predicted occluded, exact   -> FN (still counts for δ), occlusion wrong
  query, occ, tracks = _case(num_points=1, num_frames=4)
  gt_occ = occ.copy()
  gt_occ[0, 0, 2] = True
  pred_occ = occ.copy()
  pred_occ[0, 0, 3] = True
  m = tapvid.compute_tapvid_metrics(query, gt_occ, tracks, pred_occ, tracks, "first")
  np.testing.assert_allclose(m["occlusion_accuracy"], 1.0 / 3.0)
  np.testing.assert_allclose(m["average_pts_within_thresh"], 1.0)
  np.testing.assert_allclose(m["average_jaccard"], 1.0 / 3.0)  # 1 / (2 GT-visible + 1 FP)


def _loop_reference(query, gt_occ, gt_tracks, pred_occ, pred_tracks, mode):
  """An independent per-point loop over the TAP-Vid definitions (per track)."""
  b, n, t, _ = gt_tracks.shape
  out = {k: np.zeros((b, n)) for k in tapvid.metric_names()}
  for i in range(b):
    for j in range(n):
      q = int(round(query[i, j, 0]))
      frames = [f for f in range(t) if (f > q if mode == "first" else f != q)]
      oa = np.mean([gt_occ[i, j, f] == pred_occ[i, j, f] for f in frames])
      out["occlusion_accuracy"][i, j] = oa
      vis = [f for f in frames if not gt_occ[i, j, f]]
      for d in tapvid.THRESHOLDS:
        near = {f: np.sum((pred_tracks[i, j, f] - gt_tracks[i, j, f]) ** 2) < d * d for f in frames}
        pts = np.mean([near[f] for f in vis]) if vis else np.nan
        tp = sum(1 for f in vis if near[f] and not pred_occ[i, j, f])
        fp = sum(1 for f in frames if not pred_occ[i, j, f] and (gt_occ[i, j, f] or not near[f]))
        den = len(vis) + fp
        out[f"pts_within_{d}"][i, j] = pts
        out[f"jaccard_{d}"][i, j] = tp / den if den else np.nan
      out["average_jaccard"][i, j] = np.mean([out[f"jaccard_{d}"][i, j] for d in tapvid.THRESHOLDS])
      out["average_pts_within_thresh"][i, j] = np.mean([out[f"pts_within_{d}"][i, j] for d in tapvid.THRESHOLDS])
  return out


def _random_batch(seed=1, b=2, n=7, t=9):
  rng = np.random.default_rng(seed)
  gt_tracks = rng.uniform(0, 256, size=(b, n, t, 2))
  pred_tracks = gt_tracks + rng.normal(scale=6.0, size=gt_tracks.shape)
  gt_occ = rng.uniform(size=(b, n, t)) < 0.3
  pred_occ = rng.uniform(size=(b, n, t)) < 0.3
  query = np.concatenate([rng.integers(0, t - 1, size=(b, n, 1)).astype(np.float64),
                          rng.uniform(0, 256, size=(b, n, 2))], axis=-1)
  return query, gt_occ, gt_tracks, pred_occ, pred_tracks


@pytest.mark.parametrize("mode", ["first", "strided"])
def test_matches_independent_loop_numpy_and_trackwise(mode):
  args = _random_batch()
  ref = _loop_reference(*args, mode)
  tw = tapvid.compute_tapvid_metrics(*args, mode, get_trackwise_metrics=True)
  for name in tapvid.metric_names():
    assert tw[name].shape == (2, 7)
    np.testing.assert_allclose(tw[name], ref[name], err_msg=name)
  # Per video: pooled counts over all tracks (not the mean of track values); recompute pooled.
  pv = tapvid.compute_tapvid_metrics(*args, mode)
  assert pv["average_jaccard"].shape == (2,)
  query, gt_occ, gt_tracks, pred_occ, pred_tracks = args
  flat = (query.reshape(1, -1, 3), gt_occ.reshape(1, -1, 9), gt_tracks.reshape(1, -1, 9, 2),
          pred_occ.reshape(1, -1, 9), pred_tracks.reshape(1, -1, 9, 2))
  one = tapvid.compute_tapvid_metrics(*(a[:, :7] for a in flat), mode)
  np.testing.assert_allclose(one["average_jaccard"][0], pv["average_jaccard"][0])


@pytest.mark.parametrize("mode", ["first", "strided"])
def test_jax_jit_matches_numpy(mode):
  args = _random_batch(seed=3)
  expected = tapvid.compute_tapvid_metrics(*args, mode)
  fn = jax.jit(tapvid.compute_tapvid_metrics, static_argnames=("query_mode", "get_trackwise_metrics"))
  got = fn(*(jnp.asarray(a) for a in args), query_mode=mode)
  for name in tapvid.metric_names():
    assert isinstance(got[name], jax.Array)
    np.testing.assert_allclose(np.asarray(got[name]), expected[name], rtol=1e-6, atol=1e-6, err_msg=name)


def test_to_tapvid_format_and_rescale():
  rng = np.random.default_rng(0)
  h, w, t, n = 48, 64, 5, 4
  tracks = rng.uniform(0, 48, size=(2, t, n, 2))           # project layout (B, T, N, 2)
  visible = rng.uniform(size=(2, t, n)) < 0.7
  query_txy = np.concatenate([np.zeros((2, n, 1)), tracks[:, 0]], axis=-1)
  q, occ, tr = tapvid.to_tapvid_format(query_txy, tracks, visible, image_size=(h, w))
  assert q.shape == (2, n, 3) and occ.shape == (2, n, t) and tr.shape == (2, n, t, 2)
  np.testing.assert_array_equal(occ, ~np.swapaxes(visible, 1, 2))
  np.testing.assert_allclose(tr[1, 2, 3], tracks[1, 3, 2] * [256 / w, 256 / h])
  np.testing.assert_allclose(q[..., 1], tracks[:, 0, :, 1] * 256 / h)  # y first
  np.testing.assert_allclose(q[..., 2], tracks[:, 0, :, 0] * 256 / w)
  # The image's far corner maps to the raster's far corner (corner-origin coordinates).
  np.testing.assert_allclose(tapvid.rescale_to_raster(np.array([w, h], float), (h, w)), [256, 256])
  # JAX in, JAX out.
  qj, occj, trj = tapvid.to_tapvid_format(jnp.asarray(query_txy), jnp.asarray(tracks), jnp.asarray(visible))
  assert isinstance(trj, jax.Array)
  np.testing.assert_allclose(np.asarray(trj), np.swapaxes(tracks, 1, 2), rtol=1e-6)
  # End to end: a perfect prediction scores 1 after conversion.
  m = tapvid.compute_tapvid_metrics(q, occ, tr, occ, tr, "strided")
  assert np.all((m["average_jaccard"] == 1.0) | np.isnan(m["average_jaccard"]))


def test_errors_name_the_argument():
  query, occ, tracks = _case()
  with pytest.raises(ValueError, match="pred_tracks"):
    tapvid.compute_tapvid_metrics(query, occ, tracks, occ, tracks[..., :1], "first")
  with pytest.raises(ValueError, match="query_points"):
    tapvid.compute_tapvid_metrics(query[..., :2], occ, tracks, occ, tracks, "first")
  with pytest.raises(ValueError, match="query_mode"):
    tapvid.compute_tapvid_metrics(query, occ, tracks, occ, tracks, "last")
  bad = query.copy()
  bad[..., 0] = 6.0
  with pytest.raises(ValueError, match=r"query frame"):
    tapvid.compute_tapvid_metrics(bad, occ, tracks, occ, tracks, "first")
  with pytest.raises(ValueError, match="visible"):
    tapvid.to_tapvid_format(np.zeros((3, 3)), np.zeros((5, 3, 2)), np.zeros((5, 4), bool))
