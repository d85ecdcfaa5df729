"""NovelViewPipeline on the tiny untrained checkpoint: loading, CFG algebra, determinism, tracking outputs."""

import numpy as np
import pytest

from mvtrack_jax.diffusion.flow_matching import FlowMatchingSchedule
from mvtrack_jax import errors
from mvtrack_jax.data import feature_cache
from mvtrack_jax.inference import novel_view
from mvtrack_jax.training import tasks
from tests.helpers import with_text


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
  return novel_view.NovelViewPipeline.from_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="module")
def clip(model):
  spec = tasks.batch_spec(model.config, 1)
  return tasks.random_batch(spec, 1, model.config, seed=3)


def test_from_checkpoint_rebuilds_the_config_modules(model, tiny_checkpoint):
  assert model.head is not None and model.step == 0 and model.source == tiny_checkpoint
  assert model.token_stride == 4 and set(model.params) == {"dit", "head"}  # 4-px cells, one per token
  assert model.image_encoder is None  # no image branch
  with pytest.raises(FileNotFoundError, match="export directory"):
    novel_view.NovelViewPipeline.from_checkpoint(tiny_checkpoint + "/params")
  with pytest.raises(ValueError, match="export directory"):
    novel_view.NovelViewPipeline.from_checkpoint(tiny_checkpoint, step=3)
  # The tiny checkpoint is an export: from_pretrained reads it; a workdir-like folder is refused.
  assert novel_view.NovelViewPipeline.from_pretrained(tiny_checkpoint).name == model.name
  with pytest.raises(FileNotFoundError, match="not an export directory"):
    novel_view.NovelViewPipeline.from_pretrained(tiny_checkpoint + "/params")
  with pytest.raises(errors.UserError, match="--text_encoder"):
    model.encode_prompts(["a red cube"])  # the tiny config names no umT5 encoder


def test_guidance_zero_is_the_null_context_and_seeds_are_deterministic(model, clip):
  sampling = novel_view.SamplingConfig(num_steps=2, guidance_scale=0.0, seed=1)
  null = model(clip, novel_view.SamplingConfig(num_steps=2, seed=1))  # no text: g defaults to 1, one branch
  text = np.random.default_rng(0).normal(size=(model.model.context_length, model.dit.config.text_dim))
  # g = 0 keeps only the null branch of the 2B batch: exactly the null-context sample.
  np.testing.assert_allclose(model(clip, sampling, context=text)["target_latents"], null["target_latents"], atol=1e-5)
  # g = 2 must differ (the text context changes the velocity), and the same seed reproduces it.
  g2 = novel_view.SamplingConfig(num_steps=2, guidance_scale=2.0, seed=1)
  a = model(clip, g2, context=text)["target_latents"]
  assert not np.allclose(a, null["target_latents"], atol=1e-4)
  np.testing.assert_array_equal(a, model(clip, g2, context=text)["target_latents"])
  # A negative context alone also activates guidance (the conditional branch is the null context); g = 1
  # is the conditional sample whatever the negative.
  assert not np.allclose(model(clip, g2, negative_context=text[:3])["target_latents"], null["target_latents"], atol=1e-4)
  g1 = novel_view.SamplingConfig(num_steps=2, guidance_scale=1.0, seed=1)
  np.testing.assert_allclose(model(clip, g1, negative_context=text[:3])["target_latents"], null["target_latents"], atol=1e-5)
  other = model(clip, novel_view.SamplingConfig(num_steps=2, seed=2))
  assert not np.array_equal(other["target_video"], null["target_video"])
  assert null["target_video"].shape == clip["reference_video"].shape and null["target_video"].dtype == np.uint8


def test_guidance_branches_scale_and_negative_prompt(model, tmp_path):
  """The two branches and g as the reference inference scripts set them (module docstring)."""
  d = model.dit.config.text_dim
  # A model without text: both branches are zeros, so g defaults to 1 and asking for another g is refused.
  plain = model.guidance(novel_view.SamplingConfig())
  assert (plain.scale, plain.active, plain.negative) == (1.0, False, "unused")
  with pytest.raises(errors.UserError, match=r"--cfg 5: both guidance branches would be the null context"):
    model.guidance(novel_view.SamplingConfig(guidance_scale=5.0))
  assert model.guidance(novel_view.SamplingConfig(guidance_scale=1.0)).scale == 1.0
  given = model.guidance(novel_view.SamplingConfig(), context=np.ones((2, d)))
  assert (given.scale, given.negative, given.context.shape) == (5.0, "none", (1, 2, d))
  # A model trained with text: the negative branch is Wan's negative prompt, read from its text cache.
  negative = np.random.default_rng(1).normal(size=(3, d)).astype(np.float32)
  np.save(tmp_path / feature_cache.NEGATIVE_NPY, negative)
  texted = with_text(model, tmp_path)
  wan = texted.guidance(novel_view.SamplingConfig())
  assert (wan.scale, wan.negative, wan.record()["guidance_active"]) == (5.0, "wan", True) and wan.context is None
  np.testing.assert_array_equal(wan.negative_context[0], negative)
  # "" is the empty prompt, i.e. the null context: with no caption both branches are equal again.
  empty = texted.guidance(novel_view.SamplingConfig(), negative_prompt="")
  assert (empty.scale, empty.negative_context) == (1.0, None)
  with pytest.raises(errors.UserError, match="the empty prompt"):
    texted.guidance(novel_view.SamplingConfig(guidance_scale=3.0), negative_prompt="")
  # A cache without negative.npy and no umT5 encoder: the message says what to pass.
  with pytest.raises(errors.UserError, match="--text_encoder.*--negative_prompt ''"):
    with_text(model, tmp_path / "elsewhere").guidance(novel_view.SamplingConfig())


def test_sampling_shift_defaults_to_the_models_training_shift():
  trained = FlowMatchingSchedule(shift=3.0, weighting="uniform")
  np.testing.assert_allclose(novel_view.SamplingConfig(num_steps=7).schedule(trained).inference_sigmas(7),
                             FlowMatchingSchedule(shift=3.0).inference_sigmas(7))
  explicit = novel_view.SamplingConfig(num_steps=7, shift=5.0).schedule(trained)
  assert (explicit.shift, explicit.num_inference_steps) == (5.0, 7)
  with pytest.raises(ValueError, match="shift"):
    novel_view.SamplingConfig(shift=0.0).schedule(trained)


def test_track_shapes_and_out_of_frame_queries(model, clip):
  clip = dict(clip)
  query = clip["query_points"].copy()
  query[0, 0, 1] = -5.0  # outside the image: masked, never visible
  clip["query_points"] = query
  out = model.track(clip, clip["target_video"])
  b, t, h, w, _ = clip["target_video"].shape
  n = query.shape[1]
  assert out["tracks"].shape == (b, 2, t, n, 2) and out["visible"].shape == (b, 2, t, n)
  assert np.all(np.isfinite(out["tracks"])) and not out["visible"][0, :, :, 0].any()
  assert np.all((out["confidence"] >= 0) & (out["confidence"] <= 1))
  np.testing.assert_array_equal(out["frames"], np.arange(t))


def test_bad_inputs_are_named(model, clip):
  with pytest.raises(ValueError, match="target_cam_to_world"):
    model({k: v for k, v in clip.items() if k != "target_cam_to_world"})
  with pytest.raises(ValueError, match="context"):
    model(clip, context=np.zeros((4, 3)))
  too_long = np.zeros((model.model.context_length + 1, model.dit.config.text_dim))
  with pytest.raises(ValueError, match="negative_context: expected"):
    model(clip, negative_context=too_long)
  with pytest.raises(ValueError, match="non-finite"):
    model(clip, context=np.full((2, model.dit.config.text_dim), np.nan))
  with pytest.raises(errors.UserError, match="both a prompt and embeddings"):
    model(clip, prompt="a cube", context=np.zeros((2, model.dit.config.text_dim)))
  with pytest.raises(ValueError, match="num_steps"):
    novel_view.SamplingConfig(num_steps=0)


def test_an_export_whose_config_does_not_match_its_params_is_named(tiny_checkpoint, tmp_path):
  import json
  import shutil
  copy = tmp_path / "export"
  shutil.copytree(tiny_checkpoint, copy)
  config = json.loads((copy / "config.json").read_text())
  config["model"]["overrides"]["ffn_dim"] = 128          # another DiT than the one the params hold
  (copy / "config.json").write_text(json.dumps(config))
  with pytest.raises(ValueError, match=r"the params do not match the model of its config .*first: "):
    novel_view.NovelViewPipeline.from_checkpoint(str(copy))
