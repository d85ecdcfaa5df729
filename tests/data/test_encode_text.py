"""The text cache: captions CSV matching, per-view / per-clip record files, resuming, and the pipeline's context."""

import os

import numpy as np
import pytest

from mvtrack_jax import run_config
from mvtrack_jax.data import encode_text, feature_cache, pipeline, schema, sources
from mvtrack_jax.models import text_encoder as text_lib
from tests.helpers import tiny_record, write_multicam_scene
from tests.helpers import FakeTextEncoder, run_cli

D = 8
CONFIG = "--config=configs/mvtrack4gen_recammaster.py:smoke"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  """A MultiCamVideo tree: train/f24_aperture5/scene{1,2} with 3 cameras of 4 frames."""
  root = tmp_path_factory.mktemp("multicam")
  for i in (1, 2):
    rec = tiny_record(seed=i, num_views=3, num_frames=4)
    write_multicam_scene(str(root / "train" / "f24_aperture5" / f"scene{i}"), rec["world_to_camera"].astype(np.float64),
                         rec["video"])
  return str(root)


def _config(root):
  return run_config.complete({
      "data": {"dataset": "multicamvideo", "data_dir": root, "synthetic": None},
      "text": {"encoder": "", "cache": "", "context_length": 16, "caption_dropout": 0.1}})


def _write(path, rows):
  path.write_text("file_name,text\n" + "".join(f'{f},"{t}"\n' for f, t in rows))
  return str(path)


def test_per_view_and_per_scene_captions_reach_the_batch(tree, tmp_path):
  captions = _write(tmp_path / "metadata.csv", [
      ("train/f24_aperture5/scene1/videos/cam01.mp4", "a dancer, seen from the left"),
      ("f24_aperture5/scene1/videos/cam02.mp4", "a dancer, seen from the front"),   # shorter tail, same video kind
      ("scene2", "two people walk"),                                              # a folder: every view of scene2
      ("scene2/videos/cam03.mp4", "two people walk away")])                      # the file's own row wins
  out = str(tmp_path / "text")
  enc = FakeTextEncoder(D)
  done = encode_text.encode_captions(_config(tree), captions, out, ["train"], encoder=enc, progress=False)
  assert done == {"train": {"encoded": 2, "uncaptioned": 1}}  # scene1/cam03 has no row
  null = np.load(os.path.join(out, feature_cache.NULL_NPY))
  np.testing.assert_array_equal(null, enc.encode([""])[0])
  # Beside it, Wan's standard negative prompt: the negative branch of guidance at inference.
  np.testing.assert_array_equal(feature_cache.read_negative_context(out), enc.encode([text_lib.WAN_NEGATIVE_PROMPT])[0])
  scene1 = np.load(feature_cache.record_path(out, "train", 0))
  assert scene1.dtype == np.float16 and scene1.shape == (3, 1 + 6, D)  # per view, padded to the longest caption
  left = enc.encode(["a dancer, seen from the left"])[0]
  np.testing.assert_allclose(scene1[0], left.astype(np.float16))
  np.testing.assert_array_equal(scene1[2, :1], null.astype(np.float16))
  assert not scene1[2, 1:].any()
  scene2 = np.load(feature_cache.record_path(out, "train", 1))
  assert scene2.shape == (3, 1 + 4, D)
  assert np.array_equal(scene2[0], scene2[1]) and not np.array_equal(scene2[0], scene2[2])

  # The pipeline gives each example its reference view's caption, zero-padded to context_length.
  source = feature_cache.CachedFeatureSource(sources.data_source(_config(tree).data, "train"), out, "train",
                                             feature_cache.TEXT_JSON, expect={"max_length": 16, "dim": D})
  cfg = pipeline.PipelineConfig(batch_size=1, num_frames=2, height=16, width=16, num_query_points=0,
                                context_shape=(16, D))
  example, _ = pipeline.window_example(source[0], cfg, views=(0, 2), start=0, train=False)
  assert example["context"].shape == (16, D) and example["context"].dtype == np.float32
  np.testing.assert_allclose(example["context"][:7], scene1[0].astype(np.float32))
  assert not example["context"][7:].any()
  assert pipeline.output_spec(cfg)["context"] == ((1, 16, D), np.dtype(np.float32))
  with pytest.raises(ValueError, match="max_length"):
    feature_cache.CachedFeatureSource(source.source, out, "train", feature_cache.TEXT_JSON, expect={"max_length": 512})

  # Resuming skips written records; changed captions cannot extend the cache.
  os.remove(feature_cache.record_path(out, "train", 1))
  assert encode_text.encode_captions(_config(tree), captions, out, ["train"], encoder=enc, progress=False) == {
      "train": {"encoded": 1, "uncaptioned": 0}}
  changed = _write(tmp_path / "changed.csv", [("scene2", "three people walk")])
  with pytest.raises(ValueError, match="captions_sha256"):
    encode_text.encode_captions(_config(tree), changed, out, ["train"], encoder=enc, progress=False)


def test_captions_that_match_nothing_write_nothing(tree, tmp_path):
  captions = _write(tmp_path / "metadata.csv", [("scene9/videos/cam01.mp4", "nobody")])
  out = tmp_path / "text"
  with pytest.raises(ValueError, match=r"none of its 1 rows names a view of train \(view names look like"):
    encode_text.encode_captions(_config(tree), captions, str(out), ["train"], encoder=FakeTextEncoder(D), progress=False)
  assert not out.exists()


def test_float16_overflow_is_an_error(tree, tmp_path):
  captions = _write(tmp_path / "metadata.csv", [("scene1", "huge values")])
  with pytest.raises(ValueError, match="beyond float16; use --dtype=float32"):
    encode_text.encode_captions(_config(tree), captions, str(tmp_path / "t"), ["train"], encoder=FakeTextEncoder(D, 1e6),
                                progress=False)
  done = encode_text.encode_captions(_config(tree), captions, str(tmp_path / "t32"), ["train"], dtype="float32",
                                     encoder=FakeTextEncoder(D, 1e6), progress=False)
  assert done["train"]["encoded"] == 2
  assert np.load(feature_cache.record_path(str(tmp_path / "t32"), "train", 0)).dtype == np.float32


def test_record_context_schema_and_pipeline_errors():
  rec = tiny_record(num_views=2, num_frames=4)
  cfg = pipeline.PipelineConfig(batch_size=1, num_frames=2, height=16, width=16, num_query_points=0,
                                context_shape=(4, D))
  with pytest.raises(schema.RecordError, match="context.*missing"):
    pipeline.window_example(rec, cfg, views=(0, 1), start=0, train=False)
  for bad, match in [(np.zeros((3, 2, D)), r"expected \(L, D\) or \(V=2, L, D\)"),
                     (np.full((2, D), np.nan), "non-finite"), (np.zeros((2, D), np.int32), "dtype")]:
    with pytest.raises(schema.RecordError, match=match):
      schema.validate_record(dict(rec, context=bad), source="clip.npz")
  with pytest.raises(schema.RecordError, match="at most 4 tokens of width 8"):
    pipeline.window_example(dict(rec, context=np.ones((5, D), np.float16)), cfg, views=(0, 1), start=0, train=False)
  # A clip-level context (an .npz clip may carry one) serves every view pair.
  example, _ = pipeline.window_example(dict(rec, context=np.ones((3, D), np.float16)), cfg, views=(1, 0), start=0,
                                       train=False)
  np.testing.assert_array_equal(example["context"], np.concatenate([np.ones((3, D)), np.zeros((1, D))]))
  with pytest.raises(ValueError, match="context_shape"):
    pipeline.PipelineConfig(context_shape=(0, D))


@pytest.fixture
def no_encoder(monkeypatch):
  """Building the umT5 encoder fails the test: every check must come before it."""
  def built(*_, **__):
    raise AssertionError("the text encoder was built before the paths were checked")
  monkeypatch.setattr(text_lib, "UMT5TextEncoder", built)


def _cli_args(tmp_path, **flags):
  """encode_text's command line on the smoke config: existing captions, data_dir and encoder folder unless given."""
  (tmp_path / "umt5").mkdir(exist_ok=True)
  args = {"captions": _write(tmp_path / "metadata.csv", [("scene1", "x")]), "config.data.data_dir": str(tmp_path),
          "config.text.encoder": str(tmp_path / "umt5"), "out": str(tmp_path / "text")} | flags
  return [CONFIG] + [f"--{k}={v}" for k, v in args.items()]


def test_cli_out_that_is_a_file_is_named_before_the_encoder_is_built(tmp_path, no_encoder):
  (tmp_path / "a_file").write_text("x")
  for out in (tmp_path / "a_file", tmp_path / "a_file" / "below"):
    with pytest.raises(NotADirectoryError, match=f"--out {out}: .*is a file"):
      run_cli(encode_text, *_cli_args(tmp_path, out=out))


def test_cli_read_only_parent_of_out_is_named(tmp_path, no_encoder, locked_dir):
  with pytest.raises(PermissionError, match=f"--out {locked_dir / 'text'}: cannot write in {locked_dir}"):
    run_cli(encode_text, *_cli_args(tmp_path, out=locked_dir / "text"))


def test_cli_missing_inputs_are_named_before_the_encoder_is_built(tmp_path, no_encoder):
  for flag, missing, what in (("captions", tmp_path / "missing.csv", "no such file"),
                              ("config.data.data_dir", tmp_path / "no_data", "no such folder"),
                              ("config.text.encoder", tmp_path / "no_umt5", "no such folder")):
    with pytest.raises(FileNotFoundError, match=f"--{flag} {missing}: {what}"):
      run_cli(encode_text, *_cli_args(tmp_path, **{flag: missing}))
  assert not (tmp_path / "text").exists()
