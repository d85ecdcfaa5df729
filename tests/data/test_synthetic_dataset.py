"""Tests of the synthetic TFDS builder: build, exact read-back, configs, interrupted builds."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from configs import synthetic_data
from mvtrack_jax.data import schema
from mvtrack_jax.data import synthetic
from mvtrack_jax.data import synthetic_dataset as sd

SMALL = dict(num_views=2, num_frames=3, height=16, width=24, num_tracks=12, num_train=3, num_validation=1,
             num_test=1)
SMALL_RENDER = {k: SMALL[k] for k in ("num_views", "num_frames", "height", "width", "num_tracks")}


def _version_dirs(data_dir, cfg):
  config_dir = os.path.join(data_dir, "mvtrack_synthetic", cfg.name)
  return sorted(os.listdir(config_dir)) if os.path.isdir(config_dir) else []


def test_build_and_exact_read_back(tmp_path):
  cfg = synthetic_data.get_config()
  cfg.update(SMALL)
  train = sd.load_split("train", data_dir=str(tmp_path), config=cfg)
  assert len(train) == 3
  for i in range(3):  # index i = seed i (records keep generation order).
    record = schema.validate_record(train[i], f"train[{i}]")
    expected = synthetic.render_scene(i, **SMALL_RENDER)
    assert set(record) == set(expected)
    for key in expected:
      assert record[key].dtype == expected[key].dtype
      np.testing.assert_array_equal(record[key], expected[key], err_msg=key)
  validation = sd.load_split("validation", data_dir=str(tmp_path), config=cfg)
  test = sd.load_split("test", data_dir=str(tmp_path), config=cfg)
  assert len(validation) == 1 and len(test) == 1
  np.testing.assert_array_equal(validation[0]["video"],
                                synthetic.render_scene(sd.SPLIT_SEED_OFFSETS["validation"], **SMALL_RENDER)["video"])
  assert not np.array_equal(test[0]["video"], validation[0]["video"])
  # Second call reuses the built dataset (no rebuild: the files are untouched).
  files = os.path.join(tmp_path, "mvtrack_synthetic", sd.resolve_config(cfg).name, str(sd.MvtrackSynthetic.VERSION))
  mtimes = {f: os.path.getmtime(os.path.join(files, f)) for f in os.listdir(files)}
  sd.load_split("train", data_dir=str(tmp_path), config=cfg)
  assert mtimes == {f: os.path.getmtime(os.path.join(files, f)) for f in os.listdir(files)}


@pytest.mark.parametrize("config", ["tiny", "custom"])
def test_sources_pickle_for_grain_workers(tmp_path, config):
  # grain's worker processes receive the data source by pickling; registered configs must survive.
  cfg = "tiny" if config == "tiny" else dict(SMALL, num_train=1)
  source = sd.load_split("test", data_dir=str(tmp_path), config=cfg)
  clone = pickle.loads(pickle.dumps(source))
  assert len(clone) == len(source)
  np.testing.assert_array_equal(clone[0]["video"], source[0]["video"])


def test_config_resolution(monkeypatch, tmp_path):
  assert sd.resolve_config(None) is sd.DEFAULT_CONFIG
  assert sd.resolve_config(synthetic_data.get_config()) is sd.DEFAULT_CONFIG
  assert sd.resolve_config(synthetic_data.get_config("tiny")) is sd.TINY_CONFIG
  assert sd.resolve_config("tiny") is sd.TINY_CONFIG
  custom = sd.resolve_config(SMALL)
  assert custom.name == "v2_t3_16x24_n12_s3-1-1" and custom.height == 16
  with pytest.raises(ValueError, match="num_views"):
    sd.resolve_config(dict(SMALL, num_views=0))
  with pytest.raises(ValueError, match="num_train"):
    sd.resolve_config(dict(SMALL, num_train=sd.MAX_SPLIT_SIZE))
  with pytest.raises(ValueError, match="unknown synthetic dataset config"):
    sd.resolve_config("huge")
  with pytest.raises(ValueError, match="unknown split"):
    sd.load_split("training", data_dir=str(tmp_path), config=SMALL)
  with pytest.raises(ValueError, match="0 scenes"):
    sd.load_split("test", data_dir=str(tmp_path), config=dict(SMALL, num_test=0))
  with pytest.raises(ValueError, match="arg"):
    synthetic_data.get_config("huge")
  monkeypatch.setenv("MVTRACK_DATA_DIR", str(tmp_path / "explicit"))
  assert sd.default_data_dir() == str(tmp_path / "explicit")
  monkeypatch.delenv("MVTRACK_DATA_DIR")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert sd.default_data_dir() == str(tmp_path / "xdg" / "mvtrack_jax" / "datasets")


def test_failed_build_leaves_nothing_and_next_load_rebuilds(monkeypatch, tmp_path):
  cfg = sd.resolve_config(SMALL)
  real_render = synthetic.render_scene
  calls = []

  def failing_render(seed, **kwargs):
    calls.append(seed)
    if len(calls) == 2:
      raise RuntimeError("simulated crash in the middle of generation")
    return real_render(seed, **kwargs)

  monkeypatch.setattr(sd.synthetic, "render_scene", failing_render)
  with pytest.raises(RuntimeError, match="simulated crash"):
    sd.load_split("train", data_dir=str(tmp_path), config=cfg)
  assert len(calls) == 2
  assert str(sd.MvtrackSynthetic.VERSION) not in _version_dirs(tmp_path, cfg)
  assert not any(d.startswith("incomplete") for d in _version_dirs(tmp_path, cfg))
  assert not sd.MvtrackSynthetic(config=cfg, data_dir=str(tmp_path)).is_prepared()

  monkeypatch.setattr(sd.synthetic, "render_scene", real_render)
  train = sd.load_split("train", data_dir=str(tmp_path), config=cfg)
  assert len(train) == 3
  np.testing.assert_array_equal(train[1]["tracks"], real_render(1, **SMALL_RENDER)["tracks"])


def test_killed_build_is_not_mistaken_for_a_dataset(tmp_path):
  """A build SIGKILLed mid-generation leaves only an ``incomplete.*`` dir; the next load rebuilds."""
  cfg = sd.resolve_config(SMALL)
  script = textwrap.dedent(f"""
      import os, signal
      from mvtrack_jax.data import synthetic_dataset as sd
      real = sd.synthetic.render_scene
      calls = []
      def render(seed, **kwargs):
        calls.append(seed)
        if len(calls) == 2:
          os.kill(os.getpid(), signal.SIGKILL)
        return real(seed, **kwargs)
      sd.synthetic.render_scene = render
      sd.load_split("train", data_dir={str(tmp_path)!r}, config={SMALL!r})
  """)
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, timeout=300)
  assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
  leftovers = _version_dirs(tmp_path, cfg)
  assert str(sd.MvtrackSynthetic.VERSION) not in leftovers
  assert any(d.startswith("incomplete") for d in leftovers), leftovers
  assert not sd.MvtrackSynthetic(config=cfg, data_dir=str(tmp_path)).is_prepared()

  train = sd.load_split("train", data_dir=str(tmp_path), config=cfg)
  assert len(train) == 3
  schema.validate_record(train[0])
  assert [d for d in _version_dirs(tmp_path, cfg) if not d.startswith(".")] == [str(sd.MvtrackSynthetic.VERSION)]


def test_scene_seed_and_record_sizes():
  assert sd.scene_seed("train", 0) == 0
  assert sd.scene_seed("test", 5) == 2_000_005
  assert sd.scene_seed("validation", np.int64(1), config="tiny") == 1_000_001
  assert sd.scene_seed("train", sd.MAX_SPLIT_SIZE - 1) == sd.MAX_SPLIT_SIZE - 1
  for split, index, config, message in [
      ("training", 0, None, "unknown split"), ("train", -1, None, "out of range"),
      ("train", sd.MAX_SPLIT_SIZE, None, "out of range"), ("test", 2, "tiny", "2 scene"),
      ("test", 1, dict(SMALL), "1 scene"), ("train", 1.0, None, "int"), ("train", True, None, "int"),
      ("train", 0, "huge", "unknown synthetic dataset config")]:
    with pytest.raises(ValueError, match=message):
      sd.scene_seed(split, index, config)
  assert sd.record_sizes("tiny") == dict(num_views=2, num_frames=4, height=32, width=48, num_tracks=32)
  assert sd.record_sizes() == sd.record_sizes("default") == dict(num_views=4, num_frames=16, height=64, width=64,
                                                                   num_tracks=256)
  assert sd.record_sizes(SMALL) == SMALL_RENDER
  assert sd.record_sizes(synthetic_data.get_config("tiny")) == sd.TINY_CONFIG.record_sizes()


def test_generated_examples_are_render_scene_of_scene_seed(monkeypatch, tmp_path):
  calls = []
  monkeypatch.setattr(sd.synthetic, "render_scene", lambda seed, **kwargs: calls.append((seed, kwargs)) or seed)
  builder = sd.MvtrackSynthetic(config=sd.resolve_config(SMALL), data_dir=str(tmp_path))
  examples = list(builder._generate_examples("train"))  # pylint: disable=protected-access
  assert examples == [(sd.scene_seed("train", i), sd.scene_seed("train", i)) for i in range(3)]
  assert calls == [(i, SMALL_RENDER) for i in range(3)]


def test_a_split_larger_than_tfds_memory_buffer_packs_without_tensorflow(monkeypatch, tmp_path):
  """TFDS spills a split past its in-memory buffer (1 GB) through ``tf.io.gfile``, i.e. TensorFlow, which is not
  installed: a 2,000-scene default-size split failed after rendering. Shrinking the buffer to 1 byte makes the
  small split spill the same way; the build raises it to the split's size while packing and restores it."""
  from tensorflow_datasets.core import shuffle as tfds_shuffle  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(tfds_shuffle, "MAX_MEM_BUFFER_SIZE", 1)
  cfg = synthetic_data.get_config()
  cfg.update(SMALL)
  train = sd.load_split("train", data_dir=str(tmp_path), config=cfg)
  assert len(train) == 3
  np.testing.assert_array_equal(train[2]["video"], synthetic.render_scene(2, **SMALL_RENDER)["video"])
  assert tfds_shuffle.MAX_MEM_BUFFER_SIZE == 1
  resolved = sd.resolve_config(cfg)
  record_bytes = sum(np.asarray(v).nbytes for v in synthetic.render_scene(0, **SMALL_RENDER).values())
  assert sd.packed_split_bytes(resolved) == 3 * record_bytes
