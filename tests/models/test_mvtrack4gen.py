"""MVTrack4Gen.prepare at a 4-frame latent stride (the Wan VAE's): cameras, tracks and queries at latent rate."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax import run_config
from mvtrack_jax.builders import build_model
from mvtrack_jax.errors import ConfigError
from mvtrack_jax.losses import feature_tracking
from mvtrack_jax.models import refiner as refiner_lib
from mvtrack_jax.models import tracking_head
from tests.helpers import load_config


def test_prepare_places_queries_at_their_latent_frame_ground_truth():
  config = load_config("mvtrack4gen_recammaster.py", "smoke")   # Wan VAE factors (8 px, 4 frames), no weights
  model = build_model(run_config.parse(config))
  assert model.temporal_factor == 4
  b, t, n = 1, 9, 2
  latents = np.zeros((b, 3, 4, 4, 4), np.float32)               # 9 frames of 32 × 32 → 3 × 4 × 4
  eye = np.broadcast_to(np.eye(4, dtype=np.float32), (b, t, 4, 4))
  k = np.broadcast_to(np.array([[20.0, 0, 16], [0, 20.0, 16], [0, 0, 1]], np.float32), (b, t, 3, 3))
  x = 4.0 + 2.0 * np.arange(t, dtype=np.float32)                # 2 px per video frame
  tracks = np.zeros((b, 2, t, n, 2), np.float32)
  tracks[..., 0] = x[None, None, :, None]
  tracks[..., 1] = 16.0
  batch = {"reference_latents": latents, "target_latents": latents, "reference_intrinsics": k,
           "target_intrinsics": k, "reference_cam_to_world": eye, "target_cam_to_world": eye,
           "query_points": np.array([[[3.0, x[3], 16.0], [6.0, x[6], 16.0]]], np.float32), "tracks": tracks,
           "visible": np.ones((b, 2, t, n), bool), "track_mask": np.ones((b, n), bool)}
  p = model.prepare(batch)
  # Query at video frame 3 → latent frame 1 = video frame 4, where the point is at x[4] (not x[3]);
  # video frame 6 is equidistant from 4 and 8: the earlier one.
  np.testing.assert_allclose(p["query"][0], [[1.0, x[4], 16.0], [1.0, x[4], 16.0]])
  np.testing.assert_allclose(p["tracks"][0, 0, :, 0, 0], x[[0, 4, 8]])
  assert p["head_cameras"]["target_cam_to_world"].shape == (b, 3, 4, 4) and bool(p["point_mask"].all())
  # Without tracks (inference) the query keeps its (x, y) at the nearest latent frame.
  no_gt = {key: v for key, v in batch.items() if key not in ("tracks", "visible")}
  np.testing.assert_allclose(model.prepare(no_gt)["query"][0, 0], [1.0, x[3], 16.0])


def test_the_rope_reference_offset_is_the_training_clip_length():
  """builders.dit_config: the paper config's 81 frames → 21 latent frames → reference at 21.. on any shorter clip."""
  config = load_config("mvtrack4gen_recammaster.py", "")
  model = build_model(run_config.parse(config))
  assert model.dit.config.rope_mode == "distinct" and model.dit.config.rope_reference_offset == 21
  config.model.overrides.rope_reference_offset = 30   # an explicit value wins
  assert build_model(run_config.parse(config)).dit.config.rope_reference_offset == 30
  shared = build_model(run_config.parse(load_config("mvtrack4gen_redirector.py", "smoke")))
  assert shared.dit.config.rope_mode == "shared" and shared.dit.config.rope_reference_offset == 0


def test_the_head_can_read_q_and_k_before_rope():
  """F14 / design §4.4: objective.head_probe_rope="before" feeds the head the unrotated q/k of its layers (the DiT
  returns them beside the rotated ones, which L_corr keeps using); "after" (the default) is the attention's own."""
  config = load_config("mvtrack4gen_recammaster.py", "smoke")
  assert run_config.parse(config).objective.head_probe_rope == "after"
  config.objective.head_probe_rope = "before"
  model = build_model(run_config.parse(config))
  assert model.head_probe_rope == "before" and model.head_layers == (1,)
  calls = []

  class RecordingDiT:  # stands in for WanDiT.apply: what velocity asks of the DiT
    config = model.dit.config

    def apply(self, variables, *args, **kwargs):
      calls.append(kwargs)

  prepared = {"context": np.zeros((1, 1, 1)), "reference": np.zeros((1,)), "cameras": {}}
  dataclasses.replace(model, dit=RecordingDiT()).velocity({}, np.zeros((1,)), np.zeros((1,)), prepared,
                                                           probe_layers=(0, 1))
  assert calls[-1]["probe_layers"] == (0, 1) and calls[-1]["pre_rope_layers"] == (1,)  # layer 0: L_corr only
  probes = {1: {"q": np.zeros((1, 4, 2, 3)), "k": np.zeros((1, 4, 2, 3)),
                "q_pre": np.ones((1, 4, 2, 3)), "k_pre": 2 * np.ones((1, 4, 2, 3))}}
  q, k = tracking_head.features_from_probes(probes, (1,), pre_rope=True)
  assert q.shape == (1, 4, 6) and float(q.min()) == 1.0 and float(k.min()) == 2.0
  assert float(tracking_head.features_from_probes(probes, (1,))[0].max()) == 0.0
  dataclasses.replace(build_model(run_config.parse(load_config("mvtrack4gen_recammaster.py", "smoke"))),
                      dit=RecordingDiT()).velocity({}, np.zeros((1,)), np.zeros((1,)), prepared, probe_layers=(1,))
  assert calls[-1]["pre_rope_layers"] == ()
  config.objective.head_probe_rope = "sideways"
  with pytest.raises(ConfigError, match="head_probe_rope"):
    run_config.parse(config)


def test_refiner_starts_as_the_identity_and_each_loss_trains_only_its_side():
  """Track4Gen's gradient routing (#26): at initialisation the model with a refiner is the model without one;
  L_diff never reaches the refiner (its output returns detached), a loss on the refined features never reaches
  the zero projection nor the blocks above the tap, and does reach the blocks up to it."""
  model = build_model(run_config.parse(load_config("default.py", "test")))   # tiny-pixel, 4 blocks, unscanned
  layer = 1
  model = dataclasses.replace(model, refiner=refiner_lib.FeatureRefiner(refiner_lib.RefinerConfig(channels=8, depth=2)),
                              feat_layer=layer)
  rng = np.random.default_rng(0)
  b, t, n, size = 1, 4, 5, 32
  eye = np.broadcast_to(np.eye(4, dtype=np.float32), (b, t, 4, 4)).copy()
  eye[:, :, 0, 3] = np.linspace(0, 0.2, t)
  k = np.broadcast_to(np.array([[30.0, 0, 16], [0, 30.0, 16], [0, 0, 1]], np.float32), (b, t, 3, 3))
  batch = {"reference_video": rng.integers(0, 255, (b, t, size, size, 3), dtype=np.uint8),
           "target_video": rng.integers(0, 255, (b, t, size, size, 3), dtype=np.uint8),
           "reference_intrinsics": k, "target_intrinsics": k, "reference_cam_to_world": eye,
           "target_cam_to_world": eye, "tracks": rng.uniform(2, size - 2, (b, 2, t, n, 2)).astype(np.float32),
           "visible": np.ones((b, 2, t, n), bool), "track_mask": np.ones((b, n), bool),
           "query_points": np.zeros((b, n, 3), np.float32)}
  params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), batch))
  assert sorted(params["refiner"]) == ["refiner", "zeta"]
  prepared = model.prepare(batch, params)
  noisy = jnp.asarray(rng.standard_normal(prepared["reference"].shape), jnp.float32)
  timestep = jnp.full((b,), 500.0)

  def losses(p):
    v, pr = model.velocity(p["dit"], noisy, timestep, prepared, refiner_params=p["refiner"], with_refined=True)
    feat, _ = feature_tracking.feature_tracking_loss(pr[layer]["refined"][:, 1], prepared["tracks"][:, 1],
                                                     prepared["visible"][:, 1], batch["track_mask"],
                                                     token_stride=model.token_stride)
    return jnp.mean(v ** 2), feat

  def largest(tree):
    return max(float(jnp.abs(g).max()) for g in jax.tree.leaves(tree))

  def everything(p, trained):
    plain = dataclasses.replace(model, refiner=None).velocity(p["dit"], noisy, timestep, prepared)
    velocity, probes = model.velocity(p["dit"], noisy, timestep, prepared, refiner_params=p["refiner"],
                                      with_refined=True)
    grads = jax.grad(lambda q: losses(q)[0])(trained), jax.grad(lambda q: losses(q)[1])(trained)
    return plain, velocity, probes[layer]["refined"].shape, grads

  trained = jax.tree.map(jnp.asarray, params)  # ζ no longer zero: the refined features now change the stream
  trained["refiner"]["zeta"]["proj"]["kernel"] = 0.1 * jnp.ones_like(trained["refiner"]["zeta"]["proj"]["kernel"])
  plain, velocity, refined_shape, (g_diff, g_feat) = jax.jit(everything, static_argnums=())(params, trained)
  np.testing.assert_allclose(velocity, plain, atol=1e-5, rtol=0)
  assert refined_shape == (b, 2, *prepared["grid"], model.dit.config.dim)
  assert largest(g_diff["refiner"]["refiner"]) == 0.0 and largest(g_diff["refiner"]["zeta"]) > 0
  assert largest(g_feat["refiner"]["zeta"]) == 0.0 and largest(g_feat["refiner"]["refiner"]) > 0
  for block in range(model.dit.config.num_layers):
    reach = largest(g_feat["dit"][f"blocks_{block}"])
    assert (reach > 0) if block <= layer else (reach == 0.0), (block, reach)
  assert largest(g_feat["dit"]["proj_out"]) == 0.0
  with pytest.raises(ValueError, match="pass refiner_params"):
    model.velocity(params["dit"], noisy, timestep, prepared)
