"""Tests of the attention-layer correspondence probe metrics (``mvtrack_jax.evaluation.probe``)."""

import csv
import json
import os

import jax
import numpy as np
import pytest

from mvtrack_jax.evaluation import probe

GRID = (3, 3, 4)  # F, h, w
STRIDE = 8


def _centre(token):
  i, j = divmod(int(token), GRID[2])
  return ((j + 0.5) * STRIDE, (i + 0.5) * STRIDE)


def _perfect_inputs(kind, b=2, n=4, alpha=200.0, seed=0):
  """q/k whose attention is exactly right for ``kind``: q at the query token = α·e_c, k at the GT
  key token = e_c, with one basis vector c per (pair, point); everything else 0. GT at token centres."""
  num_frames, h, w = GRID
  hw = h * w
  pairs = probe.kind_pairs(kind, num_frames)
  rng = np.random.default_rng(seed)
  head_dim = len(pairs) * n
  heads = 2
  s_tokens = 2 * num_frames * hw
  q = np.zeros((b, s_tokens, heads, head_dim), np.float32)
  k = np.zeros_like(q)
  tracks = np.zeros((b, 2, num_frames, n, 2), np.float32)
  tokens = np.zeros((b, 2, num_frames, n), int)
  for bi in range(b):
    for v in range(2):
      for f in range(num_frames):
        tokens[bi, v, f] = rng.permutation(hw)[:n]
        tracks[bi, v, f] = [_centre(t) for t in tokens[bi, v, f]]
  start = lambda view, frame: (1 - view) * num_frames * hw + frame * hw
  for p, (qv, qf, kv, kf) in enumerate(pairs):
    for bi in range(b):
      for ni in range(n):
        c = p * n + ni
        q[bi, start(qv, qf) + tokens[bi, qv, qf, ni], :, c] = alpha
        k[bi, start(kv, kf) + tokens[bi, kv, kf, ni], :, c] = 1.0
  visible = np.ones((b, 2, num_frames, n), bool)
  mask = np.ones((b, n), bool)
  return q, k, tracks, visible, mask


@pytest.mark.parametrize("kind", probe.KINDS)
def test_perfect_attention_scores_100(kind):
  q, k, tracks, visible, mask = _perfect_inputs(kind)
  scores = probe.pair_scores(q, k, tracks, visible, mask, grid=GRID, token_stride=STRIDE,
                             pairs=probe.kind_pairs(kind, GRID[0]))
  assert bool(np.all(scores["valid"]))
  np.testing.assert_allclose(scores["error"], 0.0, atol=1e-4)
  # Temporal kinds share the frame-0 query token across their F−1 pairs, so its q matches every key
  # frame equally and the full-softmax mass splits evenly over them; cross-view queries are distinct.
  expected_attention = 1.0 if kind == "cross_view" else 1.0 / (GRID[0] - 1)
  np.testing.assert_allclose(scores["attention"], expected_attention, atol=1e-4)
  # DiffTrack's confidence is the peak of the full attention row on the key frame: all of the key
  # frame's mass sits on one token, so it equals the attention score (a frame-renormalised softmax
  # would give 1 for the temporal kinds too).
  np.testing.assert_allclose(scores["confidence"], expected_attention, atol=1e-4)
  sums = np.asarray(probe.kind_sums(q, k, tracks, visible, mask, grid=GRID, token_stride=STRIDE, kind=kind))
  m = probe.metrics_from_sums(sums)
  assert m["accuracy"] == pytest.approx(100.0)
  assert m["confidence"] == pytest.approx(expected_attention, abs=1e-4)
  assert m["attention_score"] == pytest.approx(expected_attention, abs=1e-4)


def test_validity_mask_and_weak_attention():
  q, k, tracks, visible, mask = _perfect_inputs("cross_view", alpha=0.0)  # α = 0: uniform attention
  visible[0, 0, 1, 0] = False       # invisible in the key (reference) frame 1 → pair f=1 of point 0 invalid
  mask[1, 2] = False                # padding point
  tracks[0, 1, 2, 1] = (-3.0, 4.0)  # query outside the image in target frame 2
  scores = probe.pair_scores(q, k, tracks, visible, mask, grid=GRID, token_stride=STRIDE,
                             pairs=probe.kind_pairs("cross_view", GRID[0]))
  valid = np.asarray(scores["valid"])
  assert not valid[1, 0, 0] and not valid[:, 1, 2].any() and not valid[2, 0, 1]
  assert valid.sum() == 3 * 2 * 4 - 1 - 3 - 1
  hw = GRID[1] * GRID[2]
  # Uniform attention over all 2·F·h·w tokens: the peak of the full row is 1/(2·F·h·w), not the
  # 1/(h·w) of a softmax renormalised over the key frame (DiffTrack's definition, not ours before).
  np.testing.assert_allclose(scores["confidence"], 1.0 / (2 * GRID[0] * hw), rtol=1e-5)
  np.testing.assert_allclose(scores["attention"], 1.0 / (2 * GRID[0]), rtol=1e-5)  # 1 frame of 2F
  sums = np.asarray(probe.kind_sums(q, k, tracks, visible, mask, grid=GRID, token_stride=STRIDE, kind="cross_view"))
  assert sums[0] == valid.sum()


def test_random_qk_is_near_chance():
  rng = np.random.default_rng(1)
  num_frames, h, w = GRID
  b, n, heads, head_dim = 2, 128, 2, 8
  s_tokens = 2 * num_frames * h * w
  q = rng.normal(size=(b, s_tokens, heads, head_dim)).astype(np.float32)
  k = rng.normal(size=(b, s_tokens, heads, head_dim)).astype(np.float32)
  xy = rng.uniform(0, 1, size=(b, 2, num_frames, n, 2)) * np.array([w * STRIDE, h * STRIDE])
  tracks = xy.astype(np.float32)
  visible = np.ones((b, 2, num_frames, n), bool)
  mask = np.ones((b, n), bool)
  sums = np.asarray(probe.kind_sums(q, k, tracks, visible, mask, grid=GRID, token_stride=STRIDE, kind="cross_view"))
  # Chance: the argmax token is uniform over the h·w centres (i.i.d. keys), so the expected PCK of
  # a GT point is the fraction of centres strictly within 8 px of it.
  cx, cy = np.meshgrid((np.arange(w) + 0.5) * STRIDE, (np.arange(h) + 0.5) * STRIDE)
  gt = tracks[:, 0].reshape(-1, 2)  # key frames of cross_view are the reference frames
  d = np.hypot(gt[:, None, 0] - cx.ravel(), gt[:, None, 1] - cy.ravel())
  chance = (d < probe.DEFAULT_PCK_THRESHOLD).mean(axis=1)
  expected = 100.0 * chance.mean()
  std = 100.0 * np.sqrt((chance * (1 - chance)).sum()) / len(chance)
  acc = probe.metrics_from_sums(sums)["accuracy"]
  assert sums[0] == len(chance)
  assert abs(acc - expected) < 4 * std + 1.0, (acc, expected, std)


def test_minmax_and_harmonic_mean_by_hand():
  acc = np.array([[0.0, 50.0], [100.0, 25.0]])
  conf = np.array([[0.2, 0.4], [0.6, np.nan]])
  attn = np.array([[0.5, 0.5], [0.5, 0.5]])  # constant → 1 (neutral)
  np.testing.assert_allclose(probe.minmax_normalize(acc), [[0, 0.5], [1, 0.25]])
  np.testing.assert_allclose(probe.minmax_normalize(conf), [[0, 0.5], [1, 0]])
  np.testing.assert_allclose(probe.minmax_normalize(attn), np.ones((2, 2)))
  np.testing.assert_allclose(probe.minmax_normalize(np.full((2, 2), np.nan)), np.zeros((2, 2)))
  hm = probe.harmonic_mean(acc, conf, attn)
  # (0,1): 3 / (1/0.5 + 1/0.5 + 1/1) = 0.6; (1,0): 3/(1+1+1) = 1; zeros/NaN → 0.
  np.testing.assert_allclose(hm, [[0.0, 0.6], [1.0, 0.0]])
  np.testing.assert_allclose(probe.harmonic_mean([[1.0, 2.0]], [[3.0, 5.0]], [[0.1, 0.2]]), [[0.0, 1.0]])


def test_top_layers_ranking():
  table = np.array([[0.1, 0.2], [0.9, 0.0], [0.5, 0.5], [np.nan, 0.8], [0.5, 0.5]])
  # Means: 0.15, 0.45, 0.5, 0.4 (NaN → 0), 0.5 → 2 and 4 tie (lower first), then 1.
  assert probe.top_layers(table, k=3) == [2, 4, 1]
  assert probe.top_layers(table, layers=[10, 11, 12, 13, 14], k=2) == [12, 14]
  assert probe.top_layers(table, k=10) == [2, 4, 1, 3, 0]


def test_metric_tables_and_writers(tmp_path):
  layers, timesteps = [0, 3], [999.0, 500.0, 10.0]
  rng = np.random.default_rng(0)
  sums = np.zeros((2, 3, 3, 4))
  sums[..., 0] = 10
  sums[..., 1] = rng.integers(0, 11, (2, 3, 3))
  sums[..., 2] = rng.uniform(1, 10, (2, 3, 3))
  sums[..., 3] = rng.uniform(1, 10, (2, 3, 3))
  sums[1, 2, 0] = 0  # no valid entry → NaN
  tables = probe.metric_tables(sums, probe.KINDS, layers)
  assert set(tables) == set(probe.KINDS)
  assert tables["reference_temporal"]["accuracy"].shape == (2, 3)
  assert np.isnan(tables["reference_temporal"]["accuracy"][1, 2])
  assert tables["reference_temporal"]["harmonic_mean"][1, 2] == 0.0
  assert len(tables["cross_view"]["top_layers"]) == 2
  probe.write_csv(str(tmp_path / "t.csv"), tables, layers, timesteps)
  with open(tmp_path / "t.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 3 * 2 * 3 and tuple(rows[0]) == probe.TABLE_COLUMNS
  assert rows[5]["accuracy"] == "" and rows[5]["num_entries"] == "0"
  probe.write_json(str(tmp_path / "t.json"), {"tables": probe.tables_to_json(tables)})
  loaded = json.loads((tmp_path / "t.json").read_text())
  assert loaded["tables"]["reference_temporal"]["accuracy"][1][2] is None
  probe.write_heatmap(str(tmp_path / "h.png"), "cross_view", tables["cross_view"], layers, timesteps)
  assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
  assert sorted(os.listdir(tmp_path)) == ["h.png", "t.csv", "t.json"]  # no temporaries left


def test_validation_errors():
  q, k, tracks, visible, mask = _perfect_inputs("cross_view", b=1, n=2)
  kw = dict(grid=GRID, token_stride=STRIDE, pairs=[(1, 0, 0, 0)])
  with pytest.raises(ValueError, match="q and k"):
    probe.pair_scores(q, k[:, :-1], tracks, visible, mask, **kw)
  with pytest.raises(ValueError, match="S="):
    probe.pair_scores(q, k, tracks, visible, mask, grid=(2, 3, 4), token_stride=STRIDE, pairs=[(1, 0, 0, 0)])
  with pytest.raises(ValueError, match="tracks"):
    probe.pair_scores(q, k, tracks[:, :, :2], visible, mask, **kw)
  with pytest.raises(ValueError, match="visible"):
    probe.pair_scores(q, k, tracks, visible[..., :1], mask, **kw)
  with pytest.raises(ValueError, match="point_mask"):
    probe.pair_scores(q, k, tracks, visible, mask[:, :1], **kw)
  with pytest.raises(ValueError, match="pair"):
    probe.pair_scores(q, k, tracks, visible, mask, grid=GRID, token_stride=STRIDE, pairs=[(1, 5, 0, 0)])
  with pytest.raises(ValueError, match="pairs is empty"):
    probe.pair_scores(q, k, tracks, visible, mask, grid=GRID, token_stride=STRIDE, pairs=[])
  with pytest.raises(ValueError, match="pck_threshold"):
    probe.pair_scores(q, k, tracks, visible, mask, pck_threshold=0, **kw)
  with pytest.raises(ValueError, match="token_stride"):
    probe.pair_scores(q, k, tracks, visible, mask, grid=GRID, token_stride=0, pairs=[(1, 0, 0, 0)])
  with pytest.raises(ValueError, match="kind"):
    probe.kind_pairs("temporal", 3)
  with pytest.raises(ValueError, match="layers"):
    probe.probe_sums({0: {"q": q, "k": k}}, tracks, visible, mask, grid=GRID, token_stride=STRIDE, layers=[1])
  with pytest.raises(ValueError, match="sums"):
    probe.metrics_from_sums(np.zeros((2, 3)))
  with pytest.raises(ValueError, match="same shape"):
    probe.harmonic_mean(np.zeros((2, 2)), np.zeros((2, 3)), np.zeros((2, 2)))
  with pytest.raises(ValueError, match="k must be"):
    probe.top_layers(np.zeros((2, 2)), k=0)
  with pytest.raises(ValueError, match="layers has"):
    probe.top_layers(np.zeros((2, 2)), layers=[0])


def test_kind_pairs_and_single_frame():
  assert probe.kind_pairs("reference_temporal", 3) == [(0, 0, 0, 1), (0, 0, 0, 2)]
  assert probe.kind_pairs("target_temporal", 2) == [(1, 0, 1, 1)]
  assert probe.kind_pairs("cross_view", 2) == [(1, 0, 0, 0), (1, 1, 0, 1)]
  assert probe.kind_pairs("target_temporal", 1) == []
  q = np.zeros((1, 2 * 4, 1, 2), np.float32)
  tracks = np.full((1, 2, 1, 1, 2), 1.0, np.float32)
  sums = probe.kind_sums(q, q, tracks, np.ones((1, 2, 1, 1), bool), np.ones((1, 1), bool), grid=(1, 2, 2),
                         token_stride=4, kind="reference_temporal")
  np.testing.assert_array_equal(sums, np.zeros(4))
  assert np.isnan(probe.metrics_from_sums(sums)["accuracy"])


def test_probe_sums_jits():
  q, k, tracks, visible, mask = _perfect_inputs("cross_view", b=1, n=2)
  fn = jax.jit(lambda q, k: probe.probe_sums({5: {"q": q, "k": k}}, tracks, visible, mask, grid=GRID,
                                             token_stride=STRIDE))
  out = np.asarray(fn(q, k))
  assert out.shape == (1, 3, 4)
  assert out[0, 2, 1] == out[0, 2, 0] == 3 * 2  # cross_view: all valid and correct
