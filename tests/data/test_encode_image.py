"""The image cache: encode_image with the tiny stand-in CLIP encoder, resuming, and the reference view's features in
the pipeline's batches (``image_context``), mixtures, bad inputs through the command's entry point."""

import json
import os

import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers.models.clip.modeling_clip")  # the stand-in encoder's model (seconds to import)

from mvtrack_jax import run_config  # noqa: E402
from mvtrack_jax.convert import standins  # noqa: E402
from mvtrack_jax.data import encode_image, feature_cache, pipeline, readers, schema, sources  # noqa: E402
from mvtrack_jax.models import image_encoder  # noqa: E402
from mvtrack_jax.training import tasks  # noqa: E402
from tests.helpers import load_config  # noqa: E402
from tests.helpers import tiny_record  # noqa: E402
from tests.helpers import run_cli  # noqa: E402

V, N, D = 3, standins.IMAGE_TOKENS, standins.IMAGE_DIM


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
  """The stand-ins' image_encoder/ + image_processor/ (a tiny random CLIP vision model, 17 tokens of width 32)."""
  root = tmp_path_factory.mktemp("standins")
  standins.write_image_encoder(str(root / "image_encoder"), str(root / "image_processor"))
  return str(root)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
  """An npz dataset: train/ 3 clips and validation/ 2 clips of 3 views × 4 frames of 32×48 (all frames differ)."""
  root = tmp_path_factory.mktemp("npz")
  for split, seeds in (("train", (0, 1, 2)), ("validation", (3, 4))):
    for i, seed in enumerate(seeds):
      rec = tiny_record(seed=seed, num_views=V, num_frames=4, height=32, width=48, num_tracks=8)
      rec["video"] = np.roll(rec["video"], 7 * seed, axis=3)  # tiny_record's frames depend on the view only
      readers.write_npz_clip(str(root / split / f"clip{i}.npz"), rec)
  return str(root)


@pytest.fixture(scope="module")
def encoder(standin):
  return image_encoder.CLIPImageEncoder(standin)


def _config(clips, encoder_path="", cache=""):
  """``configs/default.py:test`` on the npz clips: every window is the whole clip (start 0), centred crops."""
  c = load_config("default.py", "test")
  c.data.dataset, c.data.data_dir, c.data.random_crop = "npz", clips, False
  c.data.num_frames, c.data.height, c.data.width = 4, 32, 32
  c.image = ml_collections.ConfigDict(dict(encoder=encoder_path, cache=cache, preprocess="wan"))
  c.model.overrides.image_dim = D  # the DiT's image branch takes the stand-in CLIP's 32-wide features
  return c


class _Counting:
  """Wraps an encoder, counting the frames it encodes."""

  def __init__(self, encoder):
    self.encoder, self.frames = encoder, 0
    self.source, self.preprocess, self.num_tokens, self.dim = (encoder.source, encoder.preprocess, encoder.num_tokens,
                                                               encoder.dim)

  def encode(self, frames):
    self.frames += len(frames)
    return self.encoder.encode(frames)


@pytest.fixture(scope="module")
def cache(clips, standin, encoder, tmp_path_factory):
  """The float32 image cache of the train and validation splits."""
  out = str(tmp_path_factory.mktemp("image"))
  done = encode_image.encode_images(_config(clips, standin), out, ["train", "validation"], dtype="float32",
                                    encoder=encoder, progress=False)
  assert done == {"train": {"encoded": 3, "skipped": 0}, "validation": {"encoded": 2, "skipped": 0}}
  return out


def test_cache_files_metadata_and_resume(clips, standin, encoder, cache, tmp_path):
  with open(os.path.join(cache, feature_cache.IMAGE_JSON)) as fh:
    assert json.load(fh) == {"encoder": standin, "preprocess": "wan", "num_tokens": N, "width": D, "dtype": "float32",
                             "frame_size": [32, 32], "frame": 0}
  assert feature_cache.image_shape(cache) == (N, D)
  config = _config(clips, standin)
  record = sources.data_source(config.data, "train")[1]
  features = np.load(feature_cache.record_path(cache, "train", 1))
  assert features.shape == (V, N, D) and features.dtype == np.float32
  # Row v holds view v's first frame as the pipeline's centred 32×32 crop of the 32×48 clip shows it.
  pcfg = sources.pipeline_config(config.data, 1, train=False)
  for v in range(V):
    example, _ = pipeline.window_example(record, pcfg, views=(v, (v + 1) % V), start=0)
    np.testing.assert_allclose(features[v], encoder.encode(example["reference_video"][:1])[0], atol=1e-6)
  assert not np.allclose(features[0], features[1], atol=1e-3)

  # Resume (float16 in a new folder): a missing record and a killed run's temporary; only that record is redone.
  out = str(tmp_path / "image16")
  counting = _Counting(encoder)
  assert encode_image.encode_images(config, out, ["train"], encoder=counting, progress=False) == {
      "train": {"encoded": 3, "skipped": 0}}
  first = np.load(feature_cache.record_path(out, "train", 2))
  assert first.dtype == np.float16 and first.shape == (V, N, D)
  os.remove(feature_cache.record_path(out, "train", 2))
  with open(os.path.join(out, "train", ".tmp-killed.npy"), "wb") as fh:
    fh.write(b"half")
  counting.frames = 0
  assert encode_image.encode_images(config, out, ["train"], encoder=counting, progress=False) == {
      "train": {"encoded": 1, "skipped": 2}}
  assert counting.frames == V
  np.testing.assert_array_equal(np.load(feature_cache.record_path(out, "train", 2)), first)
  # Other settings cannot extend the cache.
  with pytest.raises(ValueError, match=r"other settings \(\['dtype'\]\)"):
    encode_image.encode_images(config, out, ["train"], dtype="float32", encoder=encoder, progress=False)
  config.data.height = 24
  with pytest.raises(ValueError, match=r"other settings \(\['frame_size'\]\)"):
    encode_image.encode_images(config, out, ["train"], encoder=encoder, progress=False)
  config.image.preprocess = "clip"
  with pytest.raises(ValueError, match="the encoder preprocesses with 'wan', config.image.preprocess is 'clip'"):
    encode_image.encode_images(config, out, ["train"], encoder=encoder, progress=False)


def test_batches_carry_the_reference_views_features(clips, standin, encoder, cache):
  config = _config(clips, standin, cache)
  spec = tasks.batch_spec(config, 2)
  assert spec["image_context"].shape == (2, N, D) and spec["image_context"].dtype == np.float32
  batches = tasks.make_iterator(config, "train", 2, seed=0)
  refs = set()
  for _ in range(3):
    batch = next(batches)
    assert batch["image_context"].shape == (2, N, D) and batch["image_context"].dtype == np.float32
    for b in range(2):
      # The window is the whole clip with a centred crop, so frame 0 of the reference video is the encoded frame.
      expected = encoder.encode(batch["reference_video"][b, :1])[0]
      np.testing.assert_allclose(batch["image_context"][b], expected, atol=1e-5)
      assert not np.allclose(batch["image_context"][b], encoder.encode(batch["target_video"][b, :1])[0], atol=1e-3)
      refs.add(batch["reference_video"][b, 0].tobytes())
  assert len(refs) > 2  # several reference views were drawn
  # The view index mapping, concretely: the example of views (2, 0) carries row 2 of its record's file.
  source = feature_cache.CachedFeatureSource(sources.data_source(config.data, "validation"), cache, "validation",
                                             feature_cache.IMAGE_JSON, expect={"num_tokens": N, "width": D})
  pcfg = pipeline.PipelineConfig(batch_size=1, num_frames=4, height=32, width=32, num_query_points=0,
                                 image_shape=(N, D))
  example, _ = pipeline.window_example(source[1], pcfg, views=(2, 0), start=0)
  np.testing.assert_array_equal(example["image_context"], np.load(feature_cache.record_path(cache, "validation", 1))[2])
  # Evaluation batches carry them too.
  assert next(tasks.make_iterator(config, "eval", 2, seed=0))["image_context"].shape == (2, N, D)


def test_mixtures_and_cache_mismatches(clips, standin, cache):
  config = _config(clips, standin, cache)
  config.data.mixture = {"extra": {"dataset": "npz", "data_dir": clips}}
  config = run_config.complete(config)  # the entry's fields filled in, as an entry point does
  with pytest.raises(ValueError, match=r"config.data.mixture.extra: no image_cache, but config.image.cache is set.*"
                                       r"no null image.*encode_image --source extra"):
    tasks.make_iterator(config, "train", 2, seed=0)
  config.data.mixture.extra.image_cache = cache
  batch = next(tasks.make_iterator(config, "train", 2, seed=0))
  assert batch["image_context"].shape == (2, N, D) and "source_id" in batch
  config.data.mixture.extra.weight = 0.0  # an unused entry needs no cache
  config.data.mixture.extra.image_cache = ""
  assert next(tasks.make_iterator(config, "train", 2, seed=0))["image_context"].shape == (2, N, D)
  # A mixture entry's cache without the primary's.
  config.data.mixture.extra.weight, config.data.mixture.extra.image_cache, config.image.cache = 1.0, cache, ""
  with pytest.raises(ValueError, match=r"mixture.extra.image_cache is set but config.image.cache .* is empty"):
    tasks.make_iterator(config, "train", 2, seed=0)
  # A cache made for another run, or none at all.
  config = _config(clips, standin, cache)
  config.data.height, config.data.width = 24, 24
  with pytest.raises(ValueError, match=r"frame_size = \[32, 32\], but this run needs \[24, 24\]"):
    tasks.make_iterator(config, "train", 2, seed=0)
  config = _config(clips, standin, cache)
  config.image.preprocess = "clip"
  with pytest.raises(ValueError, match="preprocess = 'wan', but this run needs 'clip'"):
    tasks.make_iterator(config, "train", 2, seed=0)
  config = _config(clips, standin, cache)
  config.model.overrides.image_dim = 0
  with pytest.raises(ValueError, match="image features of width 32, but the DiT takes image_dim=0"):
    tasks.make_iterator(config, "train", 2, seed=0)
  config = _config(clips, standin, clips)
  with pytest.raises(FileNotFoundError, match=r"not a image_context cache \(no image.json\).*encode_image"):
    tasks.make_iterator(config, "train", 2, seed=0)


def test_record_image_context_schema_and_pipeline_errors():
  rec = tiny_record(num_views=2, num_frames=4)
  cfg = pipeline.PipelineConfig(batch_size=1, num_frames=2, height=16, width=16, num_query_points=0, image_shape=(5, 4))
  with pytest.raises(schema.RecordError, match="image_context.*missing.*encode_image"):
    pipeline.window_example(rec, cfg, views=(0, 1), start=0)
  for bad, match in [(np.zeros((5, 4)), r"expected \(V=2, N, D\)"), (np.zeros((3, 5, 4)), r"expected \(V=2, N, D\)"),
                     (np.full((2, 5, 4), np.inf), "non-finite"), (np.zeros((2, 5, 4), np.int32), "dtype")]:
    with pytest.raises(schema.RecordError, match=match):
      schema.validate_record(dict(rec, image_context=bad), source="clip.npz")
    with pytest.raises(schema.RecordError, match=match):
      pipeline.window_example(dict(rec, image_context=bad), cfg, views=(0, 1), start=0)
  with pytest.raises(schema.RecordError, match="6 tokens of width 4; the run takes 5 tokens of width 4"):
    pipeline.window_example(dict(rec, image_context=np.ones((2, 6, 4), np.float16)), cfg, views=(0, 1), start=0)
  features = np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float16)
  example, _ = pipeline.window_example(dict(rec, image_context=features), cfg, views=(1, 0), start=0)
  assert example["image_context"].dtype == np.float32
  np.testing.assert_array_equal(example["image_context"], features[1].astype(np.float32))
  # Without image_shape a record's features are ignored.
  plain = pipeline.PipelineConfig(batch_size=1, num_frames=2, height=16, width=16, num_query_points=0)
  assert "image_context" not in pipeline.window_example(dict(rec, image_context=features), plain, views=(0, 1),
                                                        start=0)[0]
  assert pipeline.output_spec(cfg)["image_context"] == ((1, 5, 4), np.dtype(np.float32))
  with pytest.raises(ValueError, match="image_shape"):
    pipeline.PipelineConfig(image_shape=(0, 4))


def _config_file(tmp_path, clips):
  path = tmp_path / "image_config.py"
  path.write_text(
      "import ml_collections\n\n\ndef get_config():\n"
      f"  return ml_collections.ConfigDict(dict(\n"
      f"      data=dict(dataset='npz', data_dir={clips!r}, synthetic=None, train_split='train', "
      "eval_split='validation', num_frames=4, height=32, width=32, num_query_points=0),\n"
      "      image=dict(encoder='', cache='', preprocess='wan')))\n")
  return str(path)


def test_command_checks_inputs_first_and_reports(clips, standin, tmp_path, capsys):
  config = _config_file(tmp_path, clips)
  out = tmp_path / "out"
  with pytest.raises(ValueError, match="--config.image.encoder is empty"):
    run_cli(encode_image, f"--config={config}", f"--out={out}")
  with pytest.raises(FileNotFoundError, match=r"--config.image.encoder '.*missing': not a folder"):
    run_cli(encode_image, f"--config={config}", f"--config.image.encoder={tmp_path / 'missing'}", f"--out={out}")
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(NotADirectoryError, match=r"--out .*a_file: is a file, not a folder"):
    run_cli(encode_image, f"--config={config}", f"--config.image.encoder={standin}", f"--out={tmp_path / 'a_file'}")
  with pytest.raises(FileNotFoundError, match=r"--config.image.encoder '.*': no config.json"):
    run_cli(encode_image, f"--config={config}", f"--config.image.encoder={tmp_path}", f"--out={out}")
  assert not out.exists()
  run_cli(encode_image, f"--config={config}", f"--config.image.encoder={os.path.join(standin, 'image_encoder')}",
          f"--out={out}", "--splits=train", "--noprogress")
  line = capsys.readouterr().out.strip().splitlines()[-1]
  assert line == f"image cache {out}: train: 3 records encoded, 0 already there ((V, {N}, {D}) float16 per record)"
  assert np.load(feature_cache.record_path(str(out), "train", 0)).shape == (V, N, D)


def test_standins_command_checks_out_first(tmp_path):
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(NotADirectoryError, match=r"--out .*a_file/w: .*a_file is a file"):
    run_cli(standins, f"--out={tmp_path / 'a_file' / 'w'}")
