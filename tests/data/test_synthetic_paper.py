"""Tests of the paper-resolution synthetic config, the "paper" render style and the staged build.

No paper-size scene is rendered here: the same machinery runs at small sizes (the "paper" style
with a few pixels, the staged build of small configs, chunked ray casting with a small chunk).
"""

import os

import numpy as np
import pytest

from configs import synthetic_data
from mvtrack_jax import run_config
from mvtrack_jax.data import raytrace
from mvtrack_jax.data import schema
from mvtrack_jax.data import sources
from mvtrack_jax.data import synthetic
from mvtrack_jax.data import synthetic_dataset as sd
from mvtrack_jax.data import textures
from mvtrack_jax.geometry import cameras

SMALL_PAPER = dict(num_views=2, num_frames=3, height=16, width=24, num_tracks=12, num_train=3, num_validation=1,
                   num_test=1, style="paper")
SCENES = [("train", 0), ("train", 1), ("train", 2), ("validation", 0), ("test", 0)]


def _records(source):
  return [source[i] for i in range(len(source))]


def _assert_same_records(a, b):
  assert len(a) == len(b)
  for ra, rb in zip(a, b):
    assert set(ra) == set(rb)
    for key in ra:
      assert ra[key].dtype == rb[key].dtype, key
      np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)


def _load_all(data_dir, cfg, num_workers=None):
  return {split: _records(sd.load_split(split, data_dir=str(data_dir), config=cfg, num_workers=num_workers))
          for split in sd.SPLITS}


def test_paper_config_resolves_with_the_paper_sizes(tmp_path):
  paper = sd.resolve_config("paper")
  assert paper is sd.PAPER_CONFIG
  assert (paper.num_views, paper.num_frames, paper.height, paper.width, paper.num_tracks) == (2, 81, 480, 832, 1024)
  assert (paper.num_train, paper.num_validation, paper.num_test, paper.style) == (64, 8, 8, "paper")
  assert sd.record_sizes("paper") == dict(num_views=2, num_frames=81, height=480, width=832, num_tracks=1024,
                                          style="paper")
  assert sd.resolve_config(synthetic_data.get_config("paper")) is sd.PAPER_CONFIG
  # Larger splits: a custom config of the same record sizes and style, in its own directory.
  cfg = synthetic_data.get_config("paper")
  cfg.num_train = 1000
  big = sd.resolve_config(cfg)
  assert big.name == "v2_t81_480x832_n1024_s1000-8-8_paper" and big.style == "paper"
  assert big.record_sizes() == paper.record_sizes()
  assert sd.scene_seed("test", 7, "paper") == 2_000_007
  with pytest.raises(ValueError, match="8 scene"):
    sd.scene_seed("test", 8, "paper")
  with pytest.raises(ValueError, match="style"):
    sd.resolve_config(dict(SMALL_PAPER, style="fancy"))
  with pytest.raises(ValueError, match="style"):
    synthetic.render_scene(0, num_views=1, num_frames=1, height=4, width=4, num_tracks=1, style="fancy")
  assert sd.resolve_config(dict(SMALL_PAPER, style="default")).name == "v2_t3_16x24_n12_s3-1-1"
  assert sd.resolve_config(SMALL_PAPER).name == "v2_t3_16x24_n12_s3-1-1_paper"
  assert sd.staging_dir("paper", data_dir=str(tmp_path)) == str(
      tmp_path / "mvtrack_synthetic" / "paper" / f".staging_{sd.MvtrackSynthetic.VERSION}")


@pytest.mark.parametrize("synthetic_setting", ["paper", "config_dict"])
def test_run_config_data_synthetic_paper_reaches_load_split(monkeypatch, synthetic_setting):
  # config.data.synthetic = "paper" (or configs/synthetic_data.py:paper) as sources.data_source passes it.
  seen = []
  monkeypatch.setattr(sd, "load_split", lambda split, data_dir=None, config=None: seen.append(config) or [])
  sources._source.cache_clear()  # pylint: disable=protected-access
  setting = "paper" if synthetic_setting == "paper" else synthetic_data.get_config("paper")
  data = run_config.complete({"data": {"dataset": "synthetic", "data_dir": "", "synthetic": setting}}).data
  try:
    sources.data_source(data, "train")
  finally:
    sources._source.cache_clear()  # pylint: disable=protected-access
  assert len(seen) == 1 and sd.resolve_config(seen[0]) is sd.PAPER_CONFIG


def test_paper_style_changes_only_the_video():
  sizes = dict(num_views=2, num_frames=3, height=24, width=40, num_tracks=16)
  default = synthetic.render_scene(4, **sizes)
  paper = synthetic.render_scene(4, style="paper", **sizes)
  schema.validate_record(paper, "paper style")
  for key in default:
    if key != "video":
      np.testing.assert_array_equal(paper[key], default[key], err_msg=key)
  assert not np.array_equal(paper["video"], default["video"])
  # render_scene_views / render_novel_view take the style from record_sizes and reproduce the record.
  c2w = cameras.invert_rigid(paper["world_to_camera"].astype(np.float64))
  again = synthetic.render_scene_views(4, paper["intrinsics"].astype(np.float64), c2w, style="paper", **sizes)
  np.testing.assert_array_equal(again["video"], paper["video"])


@pytest.mark.parametrize("style", ["default", "paper"])
def test_chunked_rendering_equals_one_pass(monkeypatch, style):
  sizes = dict(num_views=2, num_frames=5, height=20, width=28, num_tracks=24, style=style)
  one_pass = synthetic.render_scene(6, **sizes)
  monkeypatch.setattr(raytrace, "_MAX_CHUNK_RAYS", 2 * 20 * 28 * 2)  # chunks of 2 frames (2, 2, 1)
  chunked = synthetic.render_scene(6, **sizes)
  monkeypatch.setattr(raytrace, "_MAX_CHUNK_RAYS", 10)  # smaller than a frame: one frame per chunk
  per_frame = synthetic.render_scene(6, **sizes)
  _assert_same_records([one_pass, one_pass], [chunked, per_frame])


def test_paper_textures_and_mipmaps():
  small = textures.load_textures()
  large = textures.load_textures(textures.PAPER_TEXTURE_SIDE)
  assert [name for name, _ in large] == [name for name, _ in small]  # same list: same scene draws
  sides = [max(image.shape[:2]) for _, image in large]
  assert max(sides) == textures.PAPER_TEXTURE_SIDE and min(sides) > textures.MAX_TEXTURE_SIDE
  levels = textures.mipmap_levels(large[0][1])
  assert levels[0].shape == large[0][1].shape and levels[-1].shape == (1, 1, 3)
  assert all(b.shape[0] == -(-a.shape[0] // 2) for a, b in zip(levels, levels[1:]))
  # Trilinear lookups: bilinear between texel centres when magnified, the mean when minified.
  checker = np.zeros((64, 64, 3), np.float32)
  checker[::2, ::2] = checker[1::2, 1::2] = 1.0
  u = np.array([0.5 / 64, 1.0 / 64, 0.3])
  v = np.array([0.5 / 64, 0.5 / 64, 0.7])
  fine = raytrace._sample_mipmap(checker, u, v, np.full(3, 1e-4), np.full(3, 1e-4))  # pylint: disable=protected-access
  np.testing.assert_allclose(fine[:2, 0], [1.0, 0.5], atol=1e-6)
  coarse = raytrace._sample_mipmap(checker, u, v, np.full(3, 0.5), np.full(3, 0.5))  # pylint: disable=protected-access
  np.testing.assert_allclose(coarse, 0.5, atol=0.02)


def test_parallel_build_from_a_partly_staged_area_equals_serial_build(tmp_path):
  cfg = sd.resolve_config(SMALL_PAPER)
  serial = _load_all(tmp_path / "serial", cfg, num_workers=1)
  assert not os.path.exists(sd.staging_dir(cfg, data_dir=str(tmp_path / "serial")))  # removed once packed
  for split, records in serial.items():  # record i = render_scene(scene_seed(split, i), **record_sizes)
    _assert_same_records(records, [synthetic.render_scene(sd.scene_seed(split, i), **sd.record_sizes(cfg))
                                   for i in range(len(records))])

  data_dir = str(tmp_path / "parallel")
  first = sd.stage_scenes(cfg, data_dir=data_dir, num_workers=1, scenes=SCENES[:2])
  assert (first.num_scenes, first.num_skipped, len(first.cpu_seconds)) == (2, 0, 2)
  staging = sd.staging_dir(cfg, data_dir=data_dir)
  before = {name: os.stat(os.path.join(staging, "train", name)) for name in ("000000.npz", "000001.npz")}
  report = sd.stage_scenes(cfg, data_dir=data_dir, num_workers=2)  # a spawned pool renders the other 3
  assert (report.num_workers, report.num_scenes, report.num_skipped, len(report.cpu_seconds)) == (2, 5, 2, 3)
  for name, stat in before.items():  # finished scenes are skipped: not rewritten
    after = os.stat(os.path.join(staging, "train", name))
    assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
  assert sd.stage_scenes(cfg, data_dir=data_dir, num_workers=2).num_skipped == 5
  parallel = _load_all(data_dir, cfg)  # packs the staged scenes
  for split in sd.SPLITS:
    _assert_same_records(parallel[split], serial[split])
  assert not os.path.exists(staging)


def test_interrupted_build_resumes_and_skips_finished_scenes(monkeypatch, tmp_path):
  cfg = sd.resolve_config(SMALL_PAPER)
  real_render = synthetic.render_scene
  calls = []

  def crash_on_third(seed, **kwargs):
    calls.append(seed)
    if len(calls) == 3:
      raise RuntimeError("simulated crash after two scenes")
    return real_render(seed, **kwargs)

  monkeypatch.setattr(sd.synthetic, "render_scene", crash_on_third)
  with pytest.raises(RuntimeError, match="simulated crash"):
    sd.load_split("train", data_dir=str(tmp_path), config=cfg, num_workers=1)
  staging = sd.staging_dir(cfg, data_dir=str(tmp_path))
  assert sorted(os.listdir(os.path.join(staging, "train"))) == ["000000.npz", "000001.npz"]
  assert not sd.MvtrackSynthetic(config=cfg, data_dir=str(tmp_path)).is_prepared()
  leftover = os.path.join(staging, "train", "000002.npz.x1y2.tmp")  # a writer killed mid-scene
  with open(leftover, "wb") as handle:
    handle.write(b"partial")

  calls.clear()
  monkeypatch.setattr(sd.synthetic, "render_scene", lambda seed, **kwargs: calls.append(seed) or real_render(
      seed, **kwargs))
  train = sd.load_split("train", data_dir=str(tmp_path), config=cfg, num_workers=1)
  assert calls == [2, sd.scene_seed("validation", 0), sd.scene_seed("test", 0)]  # only the missing scenes
  assert not os.path.exists(staging)  # leftovers and staged scenes are gone once the dataset is complete
  monkeypatch.setattr(sd.synthetic, "render_scene", real_render)
  _assert_same_records(_records(train), [real_render(i, **sd.record_sizes(cfg)) for i in range(3)])


def test_unreadable_staged_scene_is_rendered_again(tmp_path):
  cfg = sd.resolve_config(dict(SMALL_PAPER, style="default"))
  sd.stage_scenes(cfg, data_dir=str(tmp_path), scenes=[("train", 0), ("train", 1)])
  staging = sd.staging_dir(cfg, data_dir=str(tmp_path))
  with open(os.path.join(staging, "train", "000001.npz"), "wb") as handle:
    handle.write(b"not a zip file")
  builder = sd.MvtrackSynthetic(config=cfg, data_dir=str(tmp_path))
  with pytest.warns(UserWarning, match="unreadable"):
    examples = list(builder._generate_examples("train"))  # pylint: disable=protected-access
  assert [seed for seed, _ in examples] == [0, 1, 2]
  _assert_same_records([record for _, record in examples],
                       [synthetic.render_scene(i, **sd.record_sizes(cfg)) for i in range(3)])


def test_worker_count(tmp_path):
  resolve = sd._resolve_workers  # pylint: disable=protected-access
  assert resolve(None, sd.POOL_MIN_PIXELS - 1, 10) == 1  # small builds: the calling process
  assert resolve(None, sd.POOL_MIN_PIXELS, 10) == min(os.cpu_count(), 10)
  assert resolve(3, 10, 2) == 2  # never more workers than scenes
  for bad in (0, -1, 1.5, True):
    with pytest.raises(ValueError, match="num_workers"):
      sd.stage_scenes(SMALL_PAPER, data_dir=str(tmp_path), num_workers=bad, scenes=[])
  with pytest.raises(ValueError, match="out of range"):
    sd.stage_scenes(SMALL_PAPER, data_dir=str(tmp_path), scenes=[("train", 3)])
