"""Tests of the grain input pipeline: batch contract, geometry consistency, determinism, sharding."""

import dataclasses
import hashlib
import json

import grain
import numpy as np
import pytest

from mvtrack_jax.data import pipeline
from mvtrack_jax.data import schema
from mvtrack_jax.data import synthetic
from mvtrack_jax.geometry import cameras as geometry
from tests.helpers import tiny_record

CONFIG = pipeline.PipelineConfig(batch_size=2, num_frames=4, frame_stride=1, height=16, width=24,
                                 num_query_points=12, read_threads=1, prefetch_buffer_size=2)


@pytest.fixture(scope="module")
def records():
  return [synthetic.render_scene(i, num_views=3, num_frames=6, height=32, width=32, num_tracks=32) for i in range(4)]


def _batches(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_batch_shapes_dtypes_and_reference_identity(records):
  batch = next(pipeline.make_iterator(records, CONFIG, seed=0))
  spec = pipeline.output_spec(CONFIG)
  assert set(batch) == set(spec) == set(pipeline.OUTPUT_KEYS)
  for key, (shape, dtype) in spec.items():
    assert batch[key].shape == shape, key
    assert batch[key].dtype == dtype, key
  np.testing.assert_allclose(batch["reference_cam_to_world"][:, 0], np.broadcast_to(np.eye(4), (2, 4, 4)), atol=1e-6)
  assert batch["track_mask"].any()


@pytest.mark.parametrize("make_record", [synthetic.render_scene, lambda seed, **kw: tiny_record(seed=seed, **kw)],
                         ids=["render_scene", "tiny_record"])
def test_geometry_consistent_after_resize_and_crop(make_record):
  rec = make_record(5, num_views=3, num_frames=6, height=48, width=64, num_tracks=64)
  config = dataclasses.replace(CONFIG, height=32, width=24, num_query_points=40)
  checked = 0
  for i in range(6):
    ex, meta = pipeline.sample_example_with_metadata(rec, config, pipeline.example_rng(0, 0, i), train=True)
    views, frames, points = meta["views"], meta["frames"], meta["points"]
    w2c = rec["world_to_camera"].astype(np.float64)
    ref0_w2c = w2c[views[0], frames[0]]
    for v, name in enumerate(["reference", "target"]):
      c2w_rel = ex[f"{name}_cam_to_world"].astype(np.float64)
      # Relative pose is inv(c2w_ref0) @ c2w.
      np.testing.assert_allclose(c2w_rel, ref0_w2c @ geometry.invert_rigid(w2c[views[v], frames]), atol=1e-5)
      for t in range(config.num_frames):
        real = points >= 0
        p_world = rec["points_3d"][frames[t], points[real]].astype(np.float64)
        p_rel = p_world @ ref0_w2c[:3, :3].T + ref0_w2c[:3, 3]  # world → reference frame-0 camera coords
        xy, z = geometry.project_points(p_rel, ex[f"{name}_intrinsics"][t].astype(np.float64),
                                        geometry.invert_rigid(c2w_rel[t]))
        vis = ex["visible"][v, t, real]
        np.testing.assert_allclose(ex["tracks"][v, t, real][vis], xy[vis], atol=2e-3)
        assert np.all(z[vis] > 0)
        checked += int(vis.sum())
        # Visible means inside the output image.
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= config.width) & (xy[:, 1] >= 0) & (xy[:, 1] <= config.height)
        assert np.all(inside[vis])
        assert np.all(~ex["visible"][v, t, ~real])
  assert checked > 100


def test_video_resize_and_crop_match_the_intrinsics():
  rec = synthetic.render_scene(1, num_views=2, num_frames=4, height=48, width=64, num_tracks=8)
  ys, xs = np.mgrid[0:48, 0:64]
  ramp = np.stack([3 * xs, 4 * ys, np.zeros_like(xs)], -1).astype(np.uint8)  # value = 3·(x − 0.5) at centre x
  rec = dict(rec, video=np.broadcast_to(ramp, rec["video"].shape).copy())
  config = dataclasses.replace(CONFIG, height=32, width=24)
  for i in range(4):
    ex, meta = pipeline.sample_example_with_metadata(rec, config, pipeline.example_rng(1, 0, i), train=True)
    (sx, sy), (x0, y0) = meta["scale"], meta["crop"]
    assert 0 <= x0 <= round(64 * sx) - 24 and 0 <= y0 <= round(48 * sy) - 32
    centres = geometry.pixel_centers(32, 24, dtype=np.float64)
    x_src = (centres[..., 0] + x0) / sx
    y_src = (centres[..., 1] + y0) / sy
    frame = ex["target_video"][2].astype(np.float64)
    interior = (slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(frame[..., 0][interior], 3 * (x_src - 0.5)[interior], atol=2.0)
    np.testing.assert_allclose(frame[..., 1][interior], 4 * (y_src - 0.5)[interior], atol=2.0)
    # The intrinsics map the same way: K_out = S·K − crop.
    k = rec["intrinsics"][meta["views"][1], meta["frames"][2]]
    np.testing.assert_allclose(ex["target_intrinsics"][2][0], [sx * k[0, 0], 0, sx * k[0, 2] - x0], rtol=1e-5)
    np.testing.assert_allclose(ex["target_intrinsics"][2][1], [0, sy * k[1, 1], sy * k[1, 2] - y0], rtol=1e-5)


def test_query_points_are_visible_in_reference_at_their_frame(records):
  for batch in _batches(pipeline.make_iterator(records, CONFIG, seed=3), 3):
    for b in range(CONFIG.batch_size):
      mask = batch["track_mask"][b]
      t = batch["query_points"][b, mask, 0].astype(int)
      idx = np.flatnonzero(mask)
      assert np.all(batch["visible"][b, 0, t, idx])
      np.testing.assert_array_equal(batch["query_points"][b, mask, 1:], batch["tracks"][b, 0, t, idx])
      assert np.all(batch["query_points"][b, mask, 0] == np.floor(batch["query_points"][b, mask, 0]))
      assert np.all(batch["query_points"][b, ~mask] == 0)


def test_evaluation_windows_sample_queries_on_latent_frames(records):
  """latent_frame_queries (evaluation windows, protocol_clips.window_config): every query sits on a frame 0, k, 2k,
  … where the head's tracks are; training windows sample any visible frame."""
  config = dataclasses.replace(CONFIG, num_frames=5, frame_stride=1, frames_per_latent=2, latent_frame_queries=True)
  frames = set()
  for seed in range(4):
    example, _ = pipeline.window_example(records[seed], config, views=(0, 1), start=0,
                                         rng=np.random.default_rng(seed), train=False)
    mask = example["track_mask"]
    frames |= set(example["query_points"][mask, 0].astype(int).tolist())
  assert frames and frames <= {0, 2, 4}
  plain = dataclasses.replace(config, latent_frame_queries=False)
  anywhere = set()
  for seed in range(4):
    example, _ = pipeline.window_example(records[seed], plain, views=(0, 1), start=0,
                                         rng=np.random.default_rng(seed), train=False)
    anywhere |= set(example["query_points"][example["track_mask"], 0].astype(int).tolist())
  assert anywhere - {0, 2, 4}


def test_sample_query_points_prefers_distinct_points_and_is_uniform_over_entries():
  rng = np.random.default_rng(0)
  vis = np.ones((4, 3), bool)
  t, n = pipeline.sample_query_points(vis, 3, rng)
  assert sorted(n.tolist()) == [0, 1, 2]
  t, n = pipeline.sample_query_points(vis, 7, rng)
  assert sorted(n[:3].tolist()) == [0, 1, 2] and len(n) == 7
  assert len(set(zip(t.tolist(), n.tolist()))) == 7  # entries never repeat
  vis = np.zeros((4, 2), bool)
  vis[:3, 0] = True
  vis[2, 1] = True
  t, n = pipeline.sample_query_points(vis, 10, rng)  # fewer visible entries than requested
  assert len(n) == 4 and np.all(vis[t, n])
  # One draw picks point 0 (3 visible frames) with probability 3/4: uniform over entries.
  picks = np.array([pipeline.sample_query_points(vis, 1, rng)[1][0] for _ in range(2000)])
  assert abs((picks == 0).mean() - 0.75) < 0.04
  assert pipeline.sample_query_points(np.zeros((4, 0), bool), 5, rng)[0].shape == (0,)


def test_determinism_and_seed_dependence(records):
  a = _batches(pipeline.make_iterator(records, CONFIG, seed=7), 3)
  b = _batches(pipeline.make_iterator(records, CONFIG, seed=7), 3)
  for x, y in zip(a, b):
    _assert_batches_equal(x, y)
  c = next(pipeline.make_iterator(records, CONFIG, seed=8))
  assert not all(np.array_equal(a[0][k], c[k]) for k in a[0])


def test_iterator_state_restore_gives_exactly_the_next_batch(records):
  iterator = pipeline.make_iterator(records, CONFIG, seed=11)
  _batches(iterator, 3)  # cross an epoch boundary (4 records = 2 batches per epoch)
  state = json.loads(json.dumps(iterator.get_state()))
  expected = _batches(iterator, 2)
  restored = pipeline.make_iterator(records, CONFIG, seed=11, state=state)
  for x, y in zip(expected, _batches(restored, 2)):
    _assert_batches_equal(x, y)
  fresh = pipeline.make_iterator(records, CONFIG, seed=11)
  fresh.set_state(state)
  _assert_batches_equal(expected[0], next(fresh))


def test_records_without_tracks_are_padded_with_false_mask(records):
  rec = dict(records[0])
  v, t = rec["video"].shape[:2]
  rec.update(tracks=np.zeros((v, t, 0, 2), np.float32), visible=np.zeros((v, t, 0), bool),
             points_3d=np.zeros((t, 0, 3), np.float32))
  batch = next(pipeline.make_iterator([rec, rec], CONFIG, seed=0))
  assert batch["tracks"].shape == (2, 2, 4, 12, 2)
  assert not batch["track_mask"].any() and not batch["visible"].any()
  assert np.all(batch["query_points"] == 0) and np.all(batch["tracks"] == 0)


def _constant_record(value, base):
  return dict(base, video=np.full_like(base["video"], value))


def test_sharding_splits_records_across_processes(records):
  source = [_constant_record(10 * (i + 1), records[0]) for i in range(5)]
  config = dataclasses.replace(CONFIG, batch_size=1)

  def values(shard):
    it = pipeline.make_iterator(source, config, seed=0, train=False, shard_options=shard)
    return [int(b["reference_video"][0, 0, 0, 0, 0]) for b in it]

  shard0 = values(grain.sharding.ShardOptions(shard_index=0, shard_count=2, drop_remainder=True))
  shard1 = values(grain.sharding.ShardOptions(shard_index=1, shard_count=2, drop_remainder=True))
  assert shard0 == [10, 30] and shard1 == [20, 40]  # record 4 dropped: equal shard lengths
  assert values(grain.sharding.ShardOptions(0, 2, drop_remainder=False)) == [10, 30, 50]
  # Without jax.distributed this is process 0 of 1: everything.
  assert values(None) == [10, 20, 30, 40, 50]
  # Training streams of the two shards are disjoint too.
  seen = [set(), set()]
  for k in range(2):
    it = pipeline.make_iterator(source, config, seed=0, train=True,
                                shard_options=grain.sharding.ShardOptions(k, 2, drop_remainder=True))
    seen[k] = {int(next(it)["reference_video"][0, 0, 0, 0, 0]) for _ in range(6)}
  assert seen[0] == {10, 30} and seen[1] == {20, 40}
  with pytest.raises(ValueError, match="too few"):
    pipeline.make_dataset(source[:1], config, seed=0, shard_options=grain.sharding.ShardOptions(1, 2, True))


def test_eval_is_one_ordered_pass_with_centre_crop(records):
  config = dataclasses.replace(CONFIG, batch_size=3, drop_remainder=False)
  batches = list(pipeline.make_iterator(records, config, seed=0, train=False))
  assert [b["track_mask"].shape[0] for b in batches] == [3, 1]
  _, meta = pipeline.sample_example_with_metadata(records[0], CONFIG, np.random.default_rng(0), train=False)
  np.testing.assert_array_equal(meta["crop"], [0, (24 - 16) // 2])  # 32×32 → 24×24 → centred 16×24


def test_frame_stride_window(records):
  config = dataclasses.replace(CONFIG, num_frames=3, frame_stride=2)
  _, meta = pipeline.sample_example_with_metadata(records[0], config, np.random.default_rng(0))
  assert np.all(np.diff(meta["frames"]) == 2) and meta["frames"][-1] < 6
  assert meta["views"][0] != meta["views"][1]


def test_bad_records_and_configs(records):
  one_view = {k: (v[:1] if k not in ("points_3d",) else v) for k, v in records[0].items()}
  with pytest.raises(schema.RecordError, match="needs >= 2"):
    pipeline.sample_example(one_view, CONFIG, np.random.default_rng(0))
  with pytest.raises(schema.RecordError, match="window of num_frames=4 with frame_stride=2 needs 7"):
    pipeline.sample_example(records[0], dataclasses.replace(CONFIG, frame_stride=2), np.random.default_rng(0))
  bad = dict(records[0], intrinsics=np.full_like(records[0]["intrinsics"], np.nan))
  with pytest.raises(schema.RecordError, match=r"source\[1\] \(views \[\d, \d\], frames \d\.\.\d\): field 'intrinsics'"):
    next(pipeline.make_iterator([records[0], bad], dataclasses.replace(CONFIG, shuffle=False), seed=0))
  short = dict(records[0], tracks=records[0]["tracks"][:1], visible=records[0]["visible"][:1])
  with pytest.raises(schema.RecordError, match="clip.npz: field 'tracks': shape"):
    pipeline.sample_example(short, CONFIG, np.random.default_rng(1), source="clip.npz")
  with pytest.raises(ValueError, match="batch_size"):
    pipeline.PipelineConfig(batch_size=0)
  with pytest.raises(ValueError, match="empty"):
    pipeline.make_dataset([], CONFIG, seed=0)


@pytest.mark.slow
def test_pipeline_over_the_tfds_synthetic_source(tmp_path):
  """End to end over the built-in dataset's TFDS array_record source (tiny config, built in tmp_path)."""
  from mvtrack_jax.data import synthetic_dataset  # pylint: disable=g-import-not-at-top
  source = synthetic_dataset.load_split("train", data_dir=str(tmp_path), config="tiny")
  config = dataclasses.replace(CONFIG, height=32, width=32)
  iterator = pipeline.make_iterator(source, config, seed=0)
  batch = next(iterator)
  for key, (shape, dtype) in pipeline.output_spec(config).items():
    assert batch[key].shape == shape and batch[key].dtype == dtype, key
  assert batch["track_mask"].any()
  state = iterator.get_state()
  expected = next(iterator)
  _assert_batches_equal(expected, next(pipeline.make_iterator(source, config, seed=0, state=state)))


@pytest.mark.slow
def test_multiprocess_prefetch_matches_in_process_and_restores(records):
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()  # grain worker processes read absl flags
  config = dataclasses.replace(CONFIG, worker_count=2)
  iterator = pipeline.make_iterator(records, config, seed=5)
  first = _batches(iterator, 3)
  state = json.loads(json.dumps(iterator.get_state()))
  expected = next(iterator)
  in_process = _batches(pipeline.make_iterator(records, dataclasses.replace(config, worker_count=0), seed=5), 4)
  for x, y in zip(first + [expected], in_process):
    _assert_batches_equal(x, y)
  _assert_batches_equal(expected, next(pipeline.make_iterator(records, config, seed=5, state=state)))


# --- window_example: the per-example transform after the view/window draws --------------------------

# Captured with sample_example_with_metadata as it was before window_example existed (commit 8732395):
# tiny_record(3, num_views=3, num_frames=6, height=40, width=56, num_tracks=24), example_rng(0, 0, i) for the
# cases of _GOLDEN_CASES. Metadata exact; uint8/bool arrays by sha256 prefix; float arrays by (sum, weighted
# sum) since the float outputs differ across processes in the last bits (~1e-17 in the relative cameras).
_GOLDEN = [
    ({
        "views": [2, 1],
        "frames": [1, 2, 3, 4],
        "points": [0, 8, 18, 12, 20, 11, 5, 16, 2, 3, 1, 19, 9, 22, 23, 13, 11, 20, 5, 18],
        "scale": [0.8035714285714286, 0.8],
        "crop": [5, 0],
    }, {
        "query_points": [732.562171, 1112.537541],
        "reference_cam_to_world": [15.747386, 23.551725],
        "reference_intrinsics": [449.076309, 654.084799],
        "reference_video": "4f9d884212abd795",
        "target_cam_to_world": [8.326276, 13.091623],
        "target_intrinsics": [449.076309, 654.084799],
        "target_video": "471f2873edf1e490",
        "track_mask": "9b8f65607d891ebc",
        "tracks": [5517.136981, 8249.860067],
        "visible": "60fdc67c27a53a71",
    }),
    ({
        "views": [2, 0],
        "frames": [0, 1, 2, 3],
        "points": [11, 20, 6, 13, 18, 8, 16, 23, 17, 10, 14, 1, 9, 5, 21, 2, 19, 7, 22, 0],
        "scale": [0.8035714285714286, 0.8],
        "crop": [8, 0],
    }, {
        "query_points": [680.454361, 1022.811383],
        "reference_cam_to_world": [15.748216, 23.55317],
        "reference_intrinsics": [437.076309, 636.770513],
        "reference_video": "36e6448443bcb567",
        "target_cam_to_world": [7.076971, 12.085095],
        "target_intrinsics": [437.076309, 636.770513],
        "target_video": "b0ac1b1b260fb611",
        "track_mask": "9b8f65607d891ebc",
        "tracks": [4967.715496, 7366.859586],
        "visible": "e1dbadd789b6721b",
    }),
    ({
        "views": [0, 2],
        "frames": [0, 2, 4],
        "points": [14, 21, 8, 12, 1, 18, 6, 4, 10, 9, 20, 22, 0, 7, 17, 23, 13, 15, 5, 19, 11, 2, 3, 16, 14, 14, 18, 4,
                   12, 8],
        "scale": [0.39285714285714285, 0.4],
        "crop": [3, 0],
    }, {
        "query_points": [510.033971, 770.910213],
        "reference_cam_to_world": [12.291052, 18.485179],
        "reference_intrinsics": [166.35458, 240.276843],
        "reference_video": "e64afa214031d57f",
        "target_cam_to_world": [23.637101, 35.978657],
        "target_intrinsics": [166.35458, 240.276843],
        "target_video": "7333609a6a24e01a",
        "track_mask": "5cc7f71eb464de4b",
        "tracks": [3027.105924, 4573.162015],
        "visible": "59278ecd80902c8e",
    }),
]
_GOLDEN_CASES = [  # (config overrides, train, example index)
    (dict(num_frames=4, height=32, width=24, num_query_points=20), True, 0),
    (dict(num_frames=4, height=32, width=24, num_query_points=20), True, 1),
    (dict(num_frames=3, frame_stride=2, height=16, width=16, num_query_points=30), False, 2),
]


def _summary(array):
  array = np.asarray(array)
  if array.dtype.kind in "biu":
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]
  x = array.astype(np.float64).ravel()
  return [float(x.sum()), float((x * np.linspace(1.0, 2.0, x.size)).sum())]


def test_sample_example_with_metadata_unchanged_by_the_window_example_refactor():
  rec = tiny_record(3, num_views=3, num_frames=6, height=40, width=56, num_tracks=24)
  for (overrides, train, index), (meta_expected, summaries) in zip(_GOLDEN_CASES, _GOLDEN):
    config = pipeline.PipelineConfig(**overrides)
    ex, meta = pipeline.sample_example_with_metadata(rec, config, pipeline.example_rng(0, 0, index), train=train)
    assert {k: v.tolist() for k, v in meta.items()} == meta_expected
    assert sorted(ex) == sorted(summaries)
    for key, expected in summaries.items():
      got = _summary(ex[key])
      if isinstance(expected, str):
        assert got == expected, key
      else:
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5, err_msg=key)


def _window_after_draws(record, config, index, train, **kwargs):
  """``sample_example_with_metadata``'s example and ``window_example`` with the views/start it drew."""
  expected, meta = pipeline.sample_example_with_metadata(record, config, pipeline.example_rng(0, 0, index),
                                                         train=train)
  rng = pipeline.example_rng(0, 0, index)
  v, t = record["video"].shape[:2]
  rng.integers(v), rng.integers(v - 1), rng.integers(t - config.window_span + 1)  # the draws, in order
  got, got_meta = pipeline.window_example(record, config, views=meta["views"], start=int(meta["frames"][0]),
                                          rng=rng, train=train, **kwargs)
  return expected, meta, got, got_meta


@pytest.mark.parametrize("train", [True, False])
def test_window_example_with_the_drawn_views_and_start_is_identical(records, train):
  config = dataclasses.replace(CONFIG, height=24, width=16, frame_stride=2, num_frames=3, num_query_points=20)
  for index in range(4):
    expected, meta, got, got_meta = _window_after_draws(records[index % 2], config, index, train)
    assert got.keys() == expected.keys() and got_meta.keys() == meta.keys()
    for key in expected:
      assert got[key].dtype == expected[key].dtype, key
      np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    for key in meta:
      np.testing.assert_array_equal(got_meta[key], meta[key], err_msg=key)


def test_window_example_defaults_are_deterministic_and_take_given_queries(records):
  rec = records[2]
  ex, meta = pipeline.window_example(rec, CONFIG, views=(1, 2), start=1)
  again, _ = pipeline.window_example(rec, CONFIG, views=np.array([1, 2]), start=np.int64(1))
  explicit, _ = pipeline.window_example(rec, CONFIG, views=(1, 2), start=1, rng=np.random.default_rng(0))
  for key in ex:
    np.testing.assert_array_equal(ex[key], again[key], err_msg=key)
    np.testing.assert_array_equal(ex[key], explicit[key], err_msg=key)
  np.testing.assert_array_equal(meta["views"], [1, 2])
  np.testing.assert_array_equal(meta["frames"], [1, 2, 3, 4])
  np.testing.assert_array_equal(meta["crop"], [0, (24 - 16) // 2])  # rng=None, train=False: centre crop
  # Given queries (a previous example's) reproduce that example: same rows, no sampling.
  mask = ex["track_mask"]
  queries = (ex["query_points"][mask, 0].astype(int), meta["points"][mask])
  other, other_meta = pipeline.window_example(rec, CONFIG, views=(1, 2), start=1, rng=np.random.default_rng(7),
                                              query_points=queries)
  for key in ex:
    np.testing.assert_array_equal(other[key], ex[key], err_msg=key)
  np.testing.assert_array_equal(other_meta["points"], meta["points"])
  # The same view twice is allowed (e.g. a reference paired with itself).
  same, _ = pipeline.window_example(rec, CONFIG, views=(0, 0), start=0)
  np.testing.assert_array_equal(same["reference_video"], same["target_video"])


def test_window_example_rejects_bad_views_start_and_queries(records):
  rec = records[0]  # 3 views, 6 frames; CONFIG windows span 4 frames
  for views in [(0, 3), (-1, 1), (0,), (0.0, 1.0)]:
    with pytest.raises(ValueError, match="views"):
      pipeline.window_example(rec, CONFIG, views=views, start=0)
  for start in [-1, 3, 1.0, True]:
    with pytest.raises(ValueError, match="start"):
      pipeline.window_example(rec, CONFIG, views=(0, 1), start=start)
  with pytest.raises(schema.RecordError, match="needs 7"):
    pipeline.window_example(rec, dataclasses.replace(CONFIG, frame_stride=2), views=(0, 1), start=0)
  ex, meta = pipeline.window_example(rec, CONFIG, views=(0, 1), start=0)
  hidden = np.argwhere(~ex["visible"][0, :, ex["track_mask"]].T)  # (t, query slot) not visible in the reference
  bad_queries = [
      ((np.array([0]), np.array([0, 1])), "equal length"),
      ((np.zeros(13, int), np.zeros(13, int)), "equal length"),  # more than num_query_points=12
      ((np.array([0.0]), np.array([1.0])), "int arrays"),
      ((np.array([4]), np.array([0])), "frames must be in"),
      ((np.array([0]), np.array([32])), "points in"),
  ]
  if hidden.size:
    t, slot = hidden[0]
    bad_queries.append(((np.array([t]), np.array([meta["points"][slot]])), "not visible"))
  for queries, message in bad_queries:
    with pytest.raises(ValueError, match=message):
      pipeline.window_example(rec, CONFIG, views=(0, 1), start=0, query_points=queries)


def test_mixture_proportions_source_ids_and_state_restore(records):
  trackless = [dict(r, tracks=r["tracks"][:, :, :0], visible=r["visible"][:, :, :0], points_3d=r["points_3d"][:, :0])
               for r in records]
  cfg = dataclasses.replace(CONFIG, batch_size=4, mixture=("multicamvideo", "synthetic"))
  it = pipeline.make_iterator([trackless, records], cfg, seed=0, weights=[1.0, 3.0])
  batches = _batches(it, 6)
  ids = np.concatenate([b["source_id"] for b in batches])
  assert np.bincount(ids).tolist() == [6, 18]                   # exactly 1:3 over every 4 examples
  for b in batches:                                             # trackless examples have no real query point
    assert not b["track_mask"][b["source_id"] == 0].any() and b["track_mask"][b["source_id"] == 1].any()
  assert pipeline.output_spec(cfg)["source_id"] == ((4,), np.dtype(np.int32))
  # Restoring a saved position continues with exactly the next batches.
  it = pipeline.make_iterator([trackless, records], cfg, seed=0, weights=[1.0, 3.0])
  _batches(it, 2)
  state = it.get_state()
  json.dumps(state)
  restored = pipeline.make_iterator([trackless, records], cfg, seed=0, weights=[1.0, 3.0], state=state)
  for a, b in zip(_batches(restored, 3), batches[2:5]):
    _assert_batches_equal(a, b)
  # A zero weight drops a source; bad mixtures are named.
  only = _batches(pipeline.make_iterator([trackless, records], cfg, seed=0, weights=[0.0, 1.0]), 2)
  assert all((b["source_id"] == 1).all() for b in only)
  with pytest.raises(ValueError, match="one entry per source"):
    pipeline.make_iterator([records], cfg, seed=0, weights=[1.0])
  with pytest.raises(ValueError, match="for training"):
    pipeline.make_iterator([trackless, records], cfg, seed=0, train=False, weights=[1.0, 1.0])
