"""The MVTrack4Gen objective with the tiny pixel-space WanDiT: one jitted function, both camera modes."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax.losses import objective as obj
from mvtrack_jax.losses.correspondence import CorrespondenceConfig
from mvtrack_jax.models import autoencoder as ae
from mvtrack_jax.models import refiner as rf
from mvtrack_jax.models import tracking_head as th
from mvtrack_jax.models import wan
from mvtrack_jax.models.mvtrack4gen import MVTrack4Gen

T, H, W, N = 2, 32, 32, 6


def _batch(seed=0, batch=2):
  """A pipeline-layout batch: identity cameras, a translating target view with exact GT tracks."""
  rng = np.random.default_rng(seed)
  ref = rng.integers(0, 256, size=(batch, T, H, W, 3), dtype=np.uint8)
  tgt = np.roll(ref, shift=(3, 5), axis=(2, 3))                          # target = reference moved by (5, 3) px
  k = np.array([[30.0, 0, 16], [0, 30.0, 16], [0, 0, 1]], np.float32)
  intr = np.broadcast_to(k, (batch, T, 3, 3)).copy()
  c2w = np.broadcast_to(np.eye(4, dtype=np.float32), (batch, T, 4, 4)).copy()
  c2w_t = c2w.copy()
  c2w_t[..., 0, 3] = -0.2
  q = np.stack([rng.integers(0, T, (batch, N)), rng.uniform(2, W - 8, (batch, N)), rng.uniform(2, H - 6, (batch, N))],
               -1).astype(np.float32)
  tracks = np.broadcast_to(q[:, None, None, :, 1:], (batch, 2, T, N, 2)).copy()
  tracks[:, 1] += np.array([5.0, 3.0], np.float32)
  return {"reference_video": ref, "target_video": tgt, "reference_intrinsics": intr, "target_intrinsics": intr.copy(),
          "reference_cam_to_world": c2w, "target_cam_to_world": c2w_t, "query_points": q, "tracks": tracks,
          "visible": np.ones((batch, 2, T, N), bool), "track_mask": np.ones((batch, N), bool)}


AE = ae.PixelAutoencoder(4)
HEAD = th.MVTAPHead(th.TrackingHeadConfig.tiny(num_levels=2, radius=1))


def _model(camera_mode="plucker", head=HEAD):
  dit = wan.WanDiT(wan.get_config("tiny-pixel", camera_mode=camera_mode))
  return MVTrack4Gen(dit, head, AE, head_layers=(1,), context_length=4)


def _setup(camera_mode="plucker", **cfg_kw):
  cfg = obj.ObjectiveConfig(corr=CorrespondenceConfig(layers=(1,)), **cfg_kw)
  model = _model(camera_mode, HEAD if cfg.lambda_track > 0 else None)
  return model, model.head, cfg, obj.make_objective(model, cfg)


@functools.lru_cache(maxsize=None)
def _params(camera_mode):
  model = _model(camera_mode)
  return jax.jit(model.init)(jax.random.key(0), _batch())


@functools.lru_cache(maxsize=None)
def _full_fn(camera_mode):
  return jax.jit(_setup(camera_mode)[3])


@pytest.mark.parametrize("camera_mode", ["plucker", pytest.param("recammaster", marks=pytest.mark.slow)])
def test_full_objective_runs_jitted_with_all_terms(camera_mode):
  batch = _batch()
  obj.validate_batch(batch, AE)
  loss, m = _full_fn(camera_mode)(_params(camera_mode), batch, jax.random.key(1))
  for name in ("loss", "diff_loss", "track_loss", "track_pos", "track_vis", "track_conf", "corr_loss",
               "corr_loss/layer_1", "head_aj", "corr_rows"):
    assert np.isfinite(float(m[name])), name
  expected = m["diff_loss"] + 0.01 * m["track_loss"] + 0.01 * m["corr_loss"]
  np.testing.assert_allclose(float(loss), float(expected), rtol=1e-6)
  assert float(m["corr_rows"]) == 2 * T * N
  assert 0.0 <= float(m["head_aj"]) <= 1.0


def test_lambda_zero_skips_terms_and_tracks_do_not_matter():
  model, head, cfg, fn = _setup(lambda_track=0.0, lambda_corr=0.0)
  assert head is None and cfg.probe_layers(model.head_layers) == ()
  params = {"dit": _params("plucker")["dit"]}
  batch = _batch()
  loss, m = jax.jit(fn)(params, batch, jax.random.key(1))
  assert set(m) == {"loss", "diff_loss", "sigma"}
  batch2 = dict(batch, tracks=batch["tracks"] + 7.0, visible=~batch["visible"])
  np.testing.assert_allclose(float(jax.jit(fn)(params, batch2, jax.random.key(1))[0]), float(loss), rtol=0)
  # The diffusion term alone equals the full objective's diffusion term (same rng → same σ, noise).
  _, m_full = _full_fn("plucker")(_params("plucker"), batch, jax.random.key(1))
  np.testing.assert_allclose(float(m_full["diff_loss"]), float(loss), rtol=1e-6)


def test_samples_without_tracks_contribute_only_diffusion():
  params = _params("plucker")
  batch = _batch()
  batch["track_mask"][1] = False
  f = _full_fn("plucker")
  _, m = f(params, batch, jax.random.key(2))
  garbage = dict(batch, tracks=batch["tracks"].copy(), visible=batch["visible"].copy())
  garbage["tracks"][1] = -50.0
  garbage["visible"][1] = False
  _, m2 = f(params, garbage, jax.random.key(2))
  for name in ("track_loss", "corr_loss", "diff_loss"):
    np.testing.assert_allclose(float(m2[name]), float(m[name]), rtol=1e-6, atol=1e-7)
  assert float(m["corr_rows"]) == T * N
  # No tracks at all: the tracking terms are defined zeros / finite, loss = L_diff + λ·L_vis only.
  batch["track_mask"][:] = False
  loss, m3 = f(params, batch, jax.random.key(2))
  assert float(m3["corr_loss"]) == 0.0 and float(m3["track_pos"]) == 0.0 and np.isfinite(float(loss))


def test_gradient_of_corr_reaches_probe_layer_qk_and_not_blocks_above():
  _, _, cfg, fn = _setup(lambda_diff=0.0, lambda_track=0.0, lambda_corr=1.0)
  params = {"dit": _params("plucker")["dit"]}
  grads = jax.jit(jax.grad(lambda p, b, r: fn(p, b, r)[0]))(params, _batch(), jax.random.key(3))
  g = grads["dit"]
  norm = lambda t: float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(t)))
  attn = g["blocks_1"]["self_attn"] if "self_attn" in g["blocks_1"] else g["blocks_1"]["attn1"]
  assert norm(attn["to_q"]["kernel"]) > 0 and norm(attn["to_k"]["kernel"]) > 0
  assert norm(g["blocks_2"]) == 0.0                                      # block above the probe layer
  assert norm(g["blocks_0"]) > 0                                         # below: the signal flows back
  assert norm(g.get("proj_out", {})) == 0.0


def test_bad_inputs():
  with pytest.raises(ValueError, match="lambda_track > 0 needs a tracking head"):
    obj.make_objective(_model(head=None), obj.ObjectiveConfig())
  with pytest.raises(ValueError, match="out of range"):
    obj.make_objective(_model(), obj.ObjectiveConfig(corr=CorrespondenceConfig(layers=(18,))))
  with pytest.raises(ValueError, match="head layers \\[18\\] out of range"):
    MVTrack4Gen(wan.WanDiT(wan.get_config("tiny-pixel")), HEAD, AE, head_layers=(18,))
  with pytest.raises(ValueError, match="vae_stride"):
    MVTrack4Gen(wan.WanDiT(wan.get_config("tiny")), HEAD, AE, head_layers=(1,))
  batch = _batch()
  with pytest.raises(ValueError, match="track_mask"):
    obj.validate_batch(dict(batch, track_mask=batch["track_mask"][:, :2]), AE)
  with pytest.raises(ValueError, match="lacks"):
    obj.validate_batch({k: v for k, v in batch.items() if k != "tracks"}, AE)


def test_caption_dropout_swaps_in_the_stored_null_context():
  """dropout 1 == every context replaced by params' null context; dropout 0 == the batch's context."""
  dit = wan.WanDiT(wan.get_config("tiny-pixel"))
  model = MVTrack4Gen(dit, None, AE, context_length=4, with_text=True)
  batch = _batch()
  params = jax.jit(model.init)(jax.random.key(0), batch)
  assert params["text"]["null_context"].shape == (4, dit.config.text_dim)  # zeros until the trainer overlays it
  rng = np.random.default_rng(3)
  params["text"]["null_context"] = jnp.asarray(rng.normal(size=(4, dit.config.text_dim)), jnp.float32)
  caption = rng.normal(size=(2, 3, dit.config.text_dim)).astype(np.float32)  # 3 tokens, zero-padded to 4
  with_caption = dict(batch, context=caption)
  with_null = dict(batch, context=np.broadcast_to(params["text"]["null_context"], (2, 4, dit.config.text_dim)))
  key = jax.random.key(1)

  objectives = {d: jax.jit(obj.make_objective(model, obj.ObjectiveConfig(lambda_track=0.0, lambda_corr=0.0,
                                                                          caption_dropout=d)))
                for d in (0.0, 1.0)}  # one jitted objective per setting (a new one per call recompiled each time)

  def loss(dropout, b):
    return float(objectives[dropout](params, b, key)[0])

  assert loss(1.0, with_caption) == pytest.approx(loss(0.0, with_null), rel=1e-6)
  assert loss(0.0, with_caption) != pytest.approx(loss(0.0, with_null), rel=1e-4)
  # A batch without context sees the null context.
  assert loss(0.0, batch) == pytest.approx(loss(0.0, with_null), rel=1e-6)
  # Zero-padding is Wan's: a 3-token caption equals the same caption padded by hand.
  padded = dict(batch, context=np.concatenate([caption, np.zeros((2, 1, dit.config.text_dim), np.float32)], 1))
  assert loss(0.0, with_caption) == pytest.approx(loss(0.0, padded), rel=1e-6)
  # Without text the null context is zeros and dropout has nothing to drop.
  plain = MVTrack4Gen(dit, None, AE, context_length=4)
  np.testing.assert_array_equal(plain.null_context(None, 2), np.zeros((2, 4, dit.config.text_dim)))
  with pytest.raises(ValueError, match="text/null_context"):
    model.null_context({"dit": params["dit"]}, 2)
  with pytest.raises(ValueError, match="L <= 4"):
    model.pad_context(np.zeros((2, 5, dit.config.text_dim)))
  with pytest.raises(ValueError, match="caption_dropout"):
    obj.ObjectiveConfig(caption_dropout=1.5)


def test_diffusion_weights_make_l_diff_a_weighted_mean_over_the_examples():
  """``diffusion_weight`` (a mixture's per-source L_diff weights): an example of weight 0 adds nothing, the others
  keep their own weight (a mean over the examples that count, not a diluted batch mean)."""
  _, _, _, fn = _setup(lambda_track=0.0, lambda_corr=0.0)
  params, batch, key = {"dit": _params("plucker")["dit"]}, _batch(), jax.random.key(5)
  f = jax.jit(fn)
  full = float(f(params, batch, key)[1]["diff_loss"])
  first, second = (float(f(params, dict(batch, diffusion_weight=np.asarray(d, np.float32)), key)[1]["diff_loss"])
                   for d in ([1.0, 0.0], [0.0, 1.0]))
  assert first != second
  np.testing.assert_allclose((first + second) / 2, full, rtol=1e-5)
  assert float(f(params, dict(batch, diffusion_weight=np.zeros(2, np.float32)), key)[1]["diff_loss"]) == 0.0


def test_caption_dropout_has_a_key_of_its_own():
  """Its draw was keyed by fold_in(rng, 1) = the noise key, so dropping an example depended on its noise."""
  rng = jax.random.key(3)
  keys = [jax.random.key_data(k).tolist() for k in obj.training_keys(rng)]
  assert len({str(k) for k in keys}) == 3
  noise_keys = [jax.random.key_data(k).tolist() for k in jax.random.split(rng)]
  assert keys[2] not in noise_keys
  if jax.config.jax_threefry_partitionable:  # the σ and noise draws of earlier runs are unchanged
    assert keys[:2] == noise_keys


def test_trackless_examples_add_nothing_to_the_tracking_losses():
  """Mixed batches: example 1 without tracks (track_mask all False). Swapping it for another trackless
  example leaves L_track, L_corr and their row counts unchanged; L_diff changes."""
  batch = _batch(seed=0)
  other = _batch(seed=5)
  for b in (batch, other):
    b["track_mask"] = b["track_mask"].copy()
    b["track_mask"][1] = False
  swapped = {k: v.copy() for k, v in batch.items()}
  for key in ("reference_video", "target_video"):
    swapped[key][1] = other[key][1]
  fn = _full_fn("plucker")
  _, m1 = fn(_params("plucker"), batch, jax.random.key(2))
  _, m2 = fn(_params("plucker"), swapped, jax.random.key(2))
  for name in ("track_loss", "corr_loss", "corr_rows", "head_aj"):
    np.testing.assert_allclose(float(m1[name]), float(m2[name]), rtol=1e-5, err_msg=name)
  assert float(m1["corr_rows"]) == T * N                        # the tracked example's rows only
  assert abs(float(m1["diff_loss"]) - float(m2["diff_loss"])) > 1e-4


def test_l_feat_is_a_term_of_the_objective_and_trains_the_refiner():
  """Track4Gen's ``L_diff + 8·L_feat`` on a model with a refiner at layer 1 (no head, no L_corr): the loss is that
  sum, L_feat covers both views' tracks, and its gradient reaches the refiner."""
  refiner = rf.FeatureRefiner(rf.RefinerConfig(channels=8, depth=2))
  model = dataclasses.replace(_model(head=None), refiner=refiner, feat_layer=1)
  cfg = obj.ObjectiveConfig(lambda_track=0.0, lambda_corr=0.0, lambda_feat=8.0)
  fn = obj.make_objective(model, cfg)
  batch = _batch()
  params = jax.jit(model.init)(jax.random.key(0), batch)
  (loss, m), grads = jax.jit(jax.value_and_grad(fn, has_aux=True))(params, batch, jax.random.key(1))
  np.testing.assert_allclose(float(loss), float(m["diff_loss"] + 8.0 * m["feat_loss"]), rtol=1e-6)
  assert float(m["feat_pairs"]) == 2 * 2 * (T - 1) * N  # 2 examples × 2 views × the non-query frames × points
  assert float(m["feat_loss"]) > 0 and np.isfinite(float(m["feat_error_tokens"]))
  refiner_grads = jax.tree.leaves(grads["refiner"]["refiner"])
  assert max(float(jnp.abs(g).max()) for g in refiner_grads) > 0
  with pytest.raises(ValueError, match="lambda_feat > 0 needs a model with a refiner"):
    obj.make_objective(_model(head=None), cfg)


@pytest.mark.slow  # three backward passes of the refiner model compiled at once (~35 s); the trainer test covers the log
def test_trunk_gradient_norms_are_each_weighted_terms_gradient_on_the_dit():
  """``trunk_grad_norm/feat`` is the DiT-gradient norm of the objective with only ``8·L_feat`` on (brute force: the
  same objective built with λ_diff = 0), and the ratio is its quotient by ``L_diff``'s."""
  refiner = rf.FeatureRefiner(rf.RefinerConfig(channels=8, depth=2))
  model = dataclasses.replace(_model(head=None), refiner=refiner, feat_layer=1)
  cfg = obj.ObjectiveConfig(lambda_track=0.0, lambda_corr=0.0, lambda_feat=8.0)
  batch = _batch(batch=1)
  params = jax.jit(model.init)(jax.random.key(0), batch)
  rng = jax.random.key(1)

  @jax.jit
  def everything(params):
    norms = obj.make_trunk_gradient_norms(obj.make_objective(model, cfg), cfg)(params, batch, rng)

    def brute(**lambdas):
      fn = obj.make_objective(model, dataclasses.replace(cfg, **lambdas))
      grads = jax.grad(lambda p: fn(p, batch, rng)[0])(params)
      return jnp.sqrt(sum(jnp.sum(g.astype(jnp.float32) ** 2) for g in jax.tree.leaves(grads["dit"])))

    return norms, brute(lambda_diff=0.0)

  norms, feat = jax.tree.map(float, everything(params))
  assert sorted(norms) == ["trunk_grad_norm/diff", "trunk_grad_norm/feat", "trunk_grad_ratio/feat"]
  assert feat > 0 and norms["trunk_grad_norm/diff"] > 0
  np.testing.assert_allclose(norms["trunk_grad_norm/feat"], feat, rtol=1e-4)
  np.testing.assert_allclose(norms["trunk_grad_ratio/feat"], feat / norms["trunk_grad_norm/diff"], rtol=1e-5)
