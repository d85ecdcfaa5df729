"""Track4Gen's feature probe: δ_avg of cosine nearest-neighbour tracking against TAP-Vid's definition, and the run
over a split on a model with a refiner."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax import tapvid
from mvtrack_jax.evaluation import feature_probe as fp
from mvtrack_jax.evaluation import probe_run

S = 4  # token stride, video pixels


def _brute_delta_avg(features, tracks, visible, image_size):
  """NumPy: per query (frame-0 GT position) the cosine argmax token centre in every frame, scored by TAP-Vid's
  ``compute_tapvid_metrics`` ('strided', queries at frame 0) on the 256 raster."""
  _, f, h, w, d = features.shape
  n = tracks.shape[2]
  unit = features / np.linalg.norm(features, axis=-1, keepdims=True)
  centres = np.stack(np.meshgrid((np.arange(w) + 0.5) * S, (np.arange(h) + 0.5) * S), -1).reshape(-1, 2)
  pred = np.zeros((f, n, 2))
  for i in range(n):
    u, v = np.clip(tracks[0, 0, i] / S - 0.5, 0, [w - 1, h - 1])
    j0, i0 = min(int(u), w - 2), min(int(v), h - 2)
    a, c = u - j0, v - i0
    desc = ((1 - a) * (1 - c) * unit[0, 0, i0, j0] + a * (1 - c) * unit[0, 0, i0, j0 + 1]
            + (1 - a) * c * unit[0, 0, i0 + 1, j0] + a * c * unit[0, 0, i0 + 1, j0 + 1])
    for t in range(f):
      pred[t, i] = centres[np.argmax(unit[0, t].reshape(-1, d) @ desc)]
  query = np.concatenate([np.zeros((n, 1)), tracks[0, 0]], -1)
  q, gt_occ, gt_xy = tapvid.to_tapvid_format(query[None], tracks[0][None], visible[0][None], image_size)
  _, _, pr_xy = tapvid.to_tapvid_format(query[None], pred[None], np.ones_like(visible[0])[None], image_size)
  m = tapvid.compute_tapvid_metrics(q, gt_occ, gt_xy, np.zeros_like(gt_occ), pr_xy, "strided")
  return float(m["average_pts_within_thresh"][0])


def test_delta_avg_is_tapvids_on_cosine_argmax_estimates():
  rng = np.random.default_rng(0)
  f, h, w, n = 4, 5, 6, 12
  features = rng.normal(size=(1, f, h, w, 8)).astype(np.float32)
  tracks = rng.uniform(0, [w * S, h * S], size=(1, f, n, 2)).astype(np.float32)
  # Make the features trackable for some points: the frame-0 token of point i reappears at its later positions.
  for i in range(6):
    ti, tj = (tracks[0, :, i] / S).astype(int).T[::-1]
    features[0, 1:, ti[1:], tj[1:]] = features[0, 0, ti[0], tj[0]]
  visible = rng.uniform(size=(1, f, n)) > 0.2
  visible[0, 0] = True  # TAP-Vid's queries are visible
  sums = np.asarray(fp.tracking_sums(features, tracks, visible, np.ones((1, n), bool), token_stride=S,
                                     image_size=(h * S, w * S), upsample=1))
  assert sums[0] == visible[0, 1:].sum()
  np.testing.assert_allclose(fp.delta_table(sums), _brute_delta_avg(features, tracks, visible, (h * S, w * S)),
                             rtol=1e-6)
  # Padding and points hidden at the query frame are not scored.
  mask = np.ones((1, n), bool)
  mask[0, 0] = False
  visible[0, 0, 1] = False
  fewer = np.asarray(fp.tracking_sums(features, tracks, visible, mask, token_stride=S, image_size=(h * S, w * S),
                                      upsample=1))
  assert fewer[0] == visible[0, 1:, 2:].sum()
  # Upsampling = matching on the bilinearly resized maps at the finer stride.
  fine = jax.image.resize(features, (1, f, 3 * h, 3 * w, 8), "linear")
  np.testing.assert_array_equal(
      fp.tracking_sums(features, tracks, visible, mask, token_stride=S, image_size=(h * S, w * S), upsample=3),
      fp.tracking_sums(fine, tracks, visible, mask, token_stride=S / 3, image_size=(h * S, w * S), upsample=1))


def test_features_that_move_with_the_points_track_exactly():
  """One distinct vector per token, carried along an integer-token shift: every estimate is the true token centre."""
  rng = np.random.default_rng(1)
  f, h, w = 3, 6, 6
  base = rng.normal(size=(h, w, 16)).astype(np.float32)
  features = np.stack([np.roll(base, t, axis=1) for t in range(f)])[None]       # shifts one token right per frame
  xy = np.stack(np.meshgrid((np.arange(3) + 0.5) * S, (np.arange(h) + 0.5) * S), -1).reshape(-1, 2)
  tracks = np.stack([xy + [t * S, 0] for t in range(f)])[None].astype(np.float32)
  sums = fp.tracking_sums(features, tracks, np.ones(tracks.shape[:3], bool), np.ones((1, len(xy)), bool),
                          token_stride=S, image_size=(h * S, w * S), upsample=1)
  assert float(fp.delta_table(sums)) == 1.0
  # The zero-motion baseline scores the same points: here every point moves a whole token (16 raster px) per frame.
  still = np.broadcast_to(tracks[:, :1], tracks.shape)
  zero = fp.estimate_sums(still, tracks, np.ones(tracks.shape[:3], bool), np.ones((1, len(xy)), bool),
                          image_size=(h * S, w * S))
  np.testing.assert_array_equal(zero[0], sums[0])
  assert float(fp.delta_table(zero)) == 0.0


def test_layer_features_and_bad_inputs():
  q = jnp.arange(2 * 2 * 1 * 2 * 2 * 3 * 4, dtype=jnp.float32).reshape(2, 8, 3, 4)    # (B, S, heads, head_dim)
  views = fp.layer_features({1: {"q": q}}, 1, "q", (1, 2, 2))
  assert views.shape == (2, 2, 1, 2, 2, 12)
  np.testing.assert_array_equal(views[:, 1].reshape(2, 4, 12), q[:, :4].reshape(2, 4, 12))  # target = first tokens
  with pytest.raises(ValueError, match="has no 'k' features"):
    fp.layer_features({1: {"q": q}}, 1, "k", (1, 2, 2))
  with pytest.raises(ValueError, match="expected one of"):
    fp.layer_features({1: {"q": q}}, 1, "v", (1, 2, 2))
  with pytest.raises(ValueError, match="query_frame 3 outside"):
    fp.tracking_sums(np.zeros((1, 3, 2, 2, 4)), np.zeros((1, 3, 5, 2)), np.ones((1, 3, 5), bool),
                     np.ones((1, 5), bool), token_stride=S, image_size=(8, 8), query_frame=3)


@pytest.mark.integration
def test_run_feature_probe_scores_raw_features_everywhere_and_refined_at_the_tap(tiny_track4gen_checkpoint,
                                                                                  tiny_checkpoint, tmp_path):
  record = probe_run.run_feature_probe(tiny_track4gen_checkpoint, str(tmp_path / "p"), num_batches=1, batch_size=2,
                                       timesteps=[999.0, 500.0], kinds=["features", "k", "refined"],
                                       progress=False)
  assert record["settings"]["layers"] == [0, 1, 2, 3]
  assert record["tap"]["layer"] == 1
  for kind in ("features", "k"):
    assert all(v is not None and 0 <= v <= 1 for row in record["delta_avg"][kind] for v in row)
  refined = record["delta_avg"]["refined"]
  assert [row[0] is not None for row in refined] == [False, True, False, False]
  # A fresh refiner is close to the identity (zero-initialised residual), so the refined features track like the raw.
  assert abs(record["tap"]["refined"] - record["tap"]["features"]) < 0.1
  with open(tmp_path / "p" / "feature_probe.json") as f:
    assert json.load(f)["best_layer"]["features"] in (0, 1, 2, 3)
  assert os.path.getsize(tmp_path / "p" / "feature_probe.png") > 0
  rows = open(tmp_path / "p" / "feature_probe_table.csv").read().splitlines()
  assert rows[0].startswith("feature,layer,timestep") and len(rows) == 1 + 2 * 4 * 3 + 2  # + zero_motion, refined
  assert record["kinds"][-1] == "zero_motion" and 0 <= record["zero_motion"] <= 1
  assert all(v == pytest.approx(record["zero_motion"], abs=1e-6) for row in record["delta_avg"]["zero_motion"]
             for v in row)
  with pytest.raises(ValueError, match="needs a model with a refiner"):
    probe_run.run_feature_probe(tiny_checkpoint, str(tmp_path / "q"), kinds=["refined"], progress=False)
