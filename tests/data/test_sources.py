"""Run-config sources: the primary, the training mixture, strict splits and the MultiCamVideo keys."""

import ml_collections
import numpy as np
import pytest

from mvtrack_jax import run_config
from mvtrack_jax.errors import ConfigError
from mvtrack_jax.data import readers, sources
from tests.helpers import tiny_record


def _raw(**kw) -> dict:
  """A ``config.data`` block (the schema's defaults) reading MultiCamVideo, with ``kw`` set, as written in a file."""
  data = run_config.default_config().data
  with data.ignore_type():
    for key, value in dict(dict(dataset="multicamvideo", data_dir="", train_split="train", eval_split="val"),
                           **kw).items():
      data[key] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
  return data.to_dict()


def _data(**kw) -> ml_collections.ConfigDict:
  """The same block validated and completed, as every entry point gives it to ``data.sources``."""
  return run_config.complete({"data": _raw(**kw)}).data


def test_specs_mixture_and_eval_source():
  data = _data(data_dir="/d", mixture={"synthetic": {"dataset": "synthetic", "synthetic": "tiny", "weight": 3.0}},
               eval_source="synthetic")
  specs = sources.source_specs(data)
  assert list(specs) == ["multicamvideo", "synthetic"] and specs["synthetic"]["weight"] == 3.0
  assert specs["multicamvideo"]["multicamvideo"] == run_config.MultiCamVideo().model_dump()
  assert specs["synthetic"]["latents_dir"] == "" and specs["synthetic"]["text_cache"] == ""
  assert sources.eval_source_name(data) == "synthetic"
  assert sources.splits_read(data) == ["train"] and sources.splits_read(data, "synthetic") == ["train", "val"]


def test_the_source_fields_are_the_schemas():
  assert set(sources.SOURCE_FIELDS) == set(run_config.Source.model_fields)


@pytest.mark.parametrize("bad,match", [
    (dict(mixture={"multicamvideo": {"dataset": "npz", "data_dir": "/x"}}), "named like the primary"),
    (dict(mixture={"s": {"dataset": "synthetic", "wieght": 1.0}}), r"mixture.s.wieght: no such field"),
    (dict(multicamvideo={"size": (3,)}), r"multicamvideo.size"),
    (dict(eval_source="nope"), "eval_source 'nope' names no source"),
    (dict(weight=0.0), "every source has weight 0"),
])
def test_bad_sources_are_rejected_by_the_schema(bad, match):
  with pytest.raises(ConfigError, match=match):
    _data(data_dir="/d", **bad)


def test_missing_split_is_an_error_and_multicamvideo_keys_apply(tmp_path):
  rec = tiny_record(num_views=3, num_frames=4)
  readers.write_multicam_scene(str(tmp_path / "train" / "f24_aperture5" / "scene0"), rec)
  readers.write_multicam_scene(str(tmp_path / "val" / "10basic_trajectories"), rec)
  data = _data(data_dir=str(tmp_path), multicamvideo={"cameras": ("cam03", "cam01"), "size": (16, 24),
                                                      "num_frames": 3, "focal_length_mm": 35.0})
  record = sources.data_source(data, "train")[0]
  assert isinstance(record["video"], readers.LazyVideo) and record["video"].shape == (2, 3, 16, 24, 3)
  assert record["intrinsics"][0, 0, 0, 0] == pytest.approx(24 * 24 / 23.76)       # the folder's lens
  val = sources.data_source(data, "val")[0]
  assert val["intrinsics"][0, 0, 0, 0] == pytest.approx(24 * 35 / 23.76)          # the configured lens
  np.testing.assert_allclose(val["world_to_camera"], record["world_to_camera"], atol=1e-5)
  with pytest.raises(ValueError, match=r"config.data.mixture.s: dataset 'npz' needs a data_dir"):
    sources.data_source(_data(data_dir="/d", mixture={"s": {"dataset": "npz"}}), "train", "s")
  with pytest.raises(FileNotFoundError, match=r"split 'validation': no folder .*validation \(data_dir has \['train', 'val'\]\)"):
    sources.data_source(data, "validation")
