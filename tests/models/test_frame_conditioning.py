"""Given-frame (image-to-video) conditioning: clean, marked, out of L_diff, imposed at sampling."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax import run_config
from mvtrack_jax.builders import build_model
from mvtrack_jax.diffusion.flow_matching import add_noise
from mvtrack_jax.errors import ConfigError
from mvtrack_jax.inference import novel_view
from mvtrack_jax.losses import diffusion
from mvtrack_jax.losses import objective as objective_lib
from mvtrack_jax.models import frame_conditioning as fc
from tests.helpers import load_config


def _batch(b=2, t=4, size=32, seed=0):
  rng = np.random.default_rng(seed)
  eye = np.broadcast_to(np.eye(4, dtype=np.float32), (b, t, 4, 4)).copy()
  k = np.broadcast_to(np.array([[30.0, 0, 16], [0, 30.0, 16], [0, 0, 1]], np.float32), (b, t, 3, 3))
  return {"reference_video": rng.integers(0, 255, (b, t, size, size, 3), dtype=np.uint8),
          "target_video": rng.integers(0, 255, (b, t, size, size, 3), dtype=np.uint8),
          "reference_intrinsics": k, "target_intrinsics": k, "reference_cam_to_world": eye,
          "target_cam_to_world": eye}


def _model(given_frames=1):
  config = load_config("default_diffusion_only.py", "test")  # tiny-pixel, from random weights, no head
  config.conditioning.given_frames = given_frames
  config.optimizer.trainable_patterns = (r"^(dit|head|conditioning)/",)
  return build_model(run_config.parse(config))


def test_a_fresh_marker_leaves_the_dit_unchanged_and_the_given_frames_noise_is_never_seen():
  model = _model()
  batch = _batch()
  params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), batch))
  assert params["conditioning"]["embedding"].shape == (model.dit.config.dim,)
  assert not np.any(params["conditioning"]["embedding"])
  prepared = model.prepare(batch, params)
  np.testing.assert_array_equal(prepared["given"], [[True, False, False, False]] * 2)
  noisy = jax.random.normal(jax.random.key(1), prepared["target"].shape)
  timestep = jnp.full((2,), 700.0)
  plain = dataclasses.replace(model, given_frames=0)
  marked = dict(params, conditioning={"embedding": jnp.ones_like(params["conditioning"]["embedding"])})

  @jax.jit
  def velocities(params, marked, noisy):
    prepared = model.prepare(batch, params)
    return (model.velocity(params["dit"], noisy, timestep, prepared),
            # the plain DiT (no given frames) on the same input with frame 0 replaced by the clean target
            plain.velocity(params["dit"], noisy.at[:, 0].set(prepared["target"][:, 0]), timestep, prepared),
            # other noise in frame 0
            model.velocity(params["dit"], noisy.at[:, 0].set(123.0), timestep, prepared),
            # a trained marker
            model.velocity(params["dit"], noisy, timestep, model.prepare(batch, marked)))

  velocity, plain_velocity, other_noise, with_marker = velocities(params, marked, noisy)
  np.testing.assert_array_equal(velocity, plain_velocity)  # a fresh marker changes nothing, bit for bit
  np.testing.assert_array_equal(velocity, other_noise)     # whatever noise frame 0 carries, the model sees it clean
  assert not np.allclose(with_marker, velocity)            # the marker is added to frame 0's tokens
  # Without a target (sampling) the given frames come from the reference.
  sampling = model.prepare({k: v for k, v in batch.items() if k != "target_video"}, params)
  np.testing.assert_array_equal(sampling["given_latents"], prepared["reference"])


def test_l_diff_leaves_out_the_given_frames():
  rng = np.random.default_rng(2)
  pred, target = rng.normal(size=(2, 2, 3, 4, 5, 6)).astype(np.float32)
  weight = np.array([1.0, 2.0], np.float32)
  mask = np.array([[False, True, True], [False, False, True]])
  brute = np.mean([weight[b] * np.mean((pred[b][mask[b]] - target[b][mask[b]]) ** 2) for b in range(2)])
  np.testing.assert_allclose(diffusion.flow_matching_loss(pred, target, weight, frame_mask=mask), brute, rtol=1e-6)
  with pytest.raises(ValueError, match="frame_mask must be"):
    diffusion.flow_matching_loss(pred, target, weight, frame_mask=mask[:, :2])

  # The objective's L_diff is that masked loss of the model's velocity (the same σ and noise draws).
  model = _model()
  batch = _batch()
  params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), batch))
  cfg = objective_lib.ObjectiveConfig(lambda_track=0.0, lambda_corr=0.0)
  rng = jax.random.key(3)

  @jax.jit
  def both(params):
    loss = objective_lib.make_objective(model, cfg)(params, batch, rng)[1]["diff_loss"]
    p = model.prepare(batch, params)
    rng_t, rng_n, _ = objective_lib.training_keys(rng)
    sample = cfg.schedule.sample_training(rng_t, 2)
    noise = jax.random.normal(rng_n, p["target"].shape, jnp.float32)
    velocity = model.velocity(params["dit"], add_noise(p["target"], noise, sample["sigma"]), sample["timestep"], p)
    return loss, diffusion.flow_matching_loss(velocity, noise - p["target"], sample["weight"],
                                              frame_mask=~p["given"])

  loss, brute = both(params)
  np.testing.assert_allclose(float(loss), float(brute), rtol=1e-6)


def test_helpers_and_config_errors():
  given = fc.leading_frames(2, 5, 2)
  np.testing.assert_array_equal(given, [[True, True, False, False, False]] * 2)
  with pytest.raises(ValueError, match="expected 1 <= count < 5"):
    fc.leading_frames(2, 5, 5)
  with pytest.raises(ValueError, match="impose"):
    fc.impose(jnp.zeros((1, 2, 3, 3, 4)), jnp.zeros((1, 2, 3, 3, 4)), jnp.zeros((1, 3), bool))
  config = load_config("default.py", "test")
  config.conditioning.given_frames = 1
  with pytest.raises(ConfigError, match="conditioning/embedding"):
    run_config.parse(config)


def test_sampling_returns_the_given_frames_clean_with_and_without_guidance():
  config = load_config("default_diffusion_only.py", "test")
  config.conditioning.given_frames = 1
  config.optimizer.trainable_patterns = (r"^(dit|conditioning)/",)
  model = build_model(run_config.parse(config))
  batch = _batch(b=1)
  params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), batch))
  params["conditioning"]["embedding"] = jnp.full_like(params["conditioning"]["embedding"], 0.5)
  pipeline = novel_view.NovelViewPipeline(config, params, step=0, source="test")
  clip = {k: v for k, v in batch.items() if k != "target_video"}
  reference = pipeline.autoencoder.encode(batch["reference_video"])
  context = np.ones((pipeline.model.context_length, pipeline.dit.config.text_dim), np.float32)
  for scale in (1.0, 3.0):  # guided: a text context against the null one, the given frame in both branches
    out = pipeline(clip, novel_view.SamplingConfig(num_steps=2, guidance_scale=scale),
                   context=context if scale > 1 else None)
    np.testing.assert_array_equal(out["target_latents"][:, 0], reference[:, 0])
    assert not np.allclose(out["target_latents"][:, 1:], reference[:, 1:])
