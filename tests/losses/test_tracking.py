"""L_track (MV-TAP recipe) and L_diff."""

import jax
import numpy as np
import pytest

from mvtrack_jax.losses import diffusion, tracking

K, B, V, F, N = 3, 2, 2, 4, 6
SIZE = (384, 512)   # the reference resolution: thresholds are exactly 6 px / 12 px


def _data(seed=0):
  rng = np.random.default_rng(seed)
  gt = rng.uniform(0, 300, size=(B, V, F, N, 2)).astype(np.float32)
  pred = (gt[None] + rng.normal(0, 10, size=(K, B, V, F, N, 2))).astype(np.float32)
  vis = rng.normal(size=(K, B, V, F, N)).astype(np.float32)
  conf = rng.normal(size=(K, B, V, F, N)).astype(np.float32)
  gt_vis = rng.uniform(size=(B, V, F, N)) > 0.3
  mask = np.ones((B, N), bool)
  return pred, vis, conf, gt, gt_vis, mask


def _loss(*args, **kw):
  return tracking.tracking_loss(*args, image_size=kw.pop("image_size", SIZE), **kw)


def test_matches_direct_formula():
  pred, vis, conf, gt, gt_vis, mask = _data()
  total, terms = _loss(pred, vis, conf, gt, gt_vis, mask)
  w = np.array([0.8 ** 2, 0.8, 1.0])
  m = gt_vis.astype(np.float64)
  d = pred.astype(np.float64) - gt[None]
  ad = np.abs(d)
  hub = np.where(ad <= 6, 0.5 * d ** 2, 6 * (ad - 3)).mean(-1)
  pos = sum(w[k] * (hub[k] * m).sum() / m.sum() for k in range(K)) / K
  sig = lambda x: 1 / (1 + np.exp(-x))
  bce = lambda x, t: -(t * np.log(sig(x)) + (1 - t) * np.log(1 - sig(x)))
  lvis = np.mean([bce(vis[k], m).mean() for k in range(K)])
  tgt = (np.linalg.norm(d, axis=-1) < 12).astype(np.float64)
  lconf = np.mean([(bce(conf[k], tgt[k]) * m).sum() / m.sum() for k in range(K)])
  np.testing.assert_allclose(float(terms["track_pos"]), pos, rtol=1e-5)
  np.testing.assert_allclose(float(terms["track_vis"]), lvis, rtol=1e-5)
  np.testing.assert_allclose(float(terms["track_conf"]), lconf, rtol=1e-5)
  np.testing.assert_allclose(float(total), 0.05 * pos + lvis + lconf, rtol=1e-5)


def test_ignores_invisible_points_and_padding():
  pred, vis, conf, gt, gt_vis, mask = _data(1)
  mask[1, 2:] = False
  total, terms = _loss(pred, vis, conf, gt, gt_vis, mask)
  # Move predictions/confidences at GT-invisible points and everything at padded points far away.
  ignored = ~gt_vis | ~mask[:, None, None, :]
  pred2 = np.where(ignored[None, ..., None], pred + 1e4, pred)
  conf2 = np.where(ignored[None], conf - 50, conf)
  gt2 = np.where(ignored[..., None], np.nan, gt)             # even NaN GT there is harmless
  vis2 = np.where(~mask[None, :, None, None, :], vis + 30, vis)
  total2, terms2 = _loss(pred2, vis2, conf2, gt2, gt_vis, mask)
  for name in terms:
    np.testing.assert_allclose(float(terms2[name]), float(terms[name]), rtol=1e-6)
  # Gradients at ignored points are exactly zero for positions and confidences.
  g = jax.grad(lambda p, c: _loss(p, vis, c, gt, gt_vis, mask)[0], argnums=(0, 1))(pred, conf)
  assert np.all(np.asarray(g[0])[np.broadcast_to(ignored[None, ..., None], pred.shape)] == 0)
  assert np.all(np.asarray(g[1])[np.broadcast_to(ignored[None], conf.shape)] == 0)
  # The confidence target is built from detached predictions.
  assert np.any(np.asarray(g[0]) != 0)


def test_no_visible_points_and_no_points():
  pred, vis, conf, gt, gt_vis, mask = _data(2)
  total, terms = _loss(pred, vis, conf, gt, np.zeros_like(gt_vis), mask)
  assert float(terms["track_pos"]) == 0.0 and float(terms["track_conf"]) == 0.0
  assert np.isfinite(float(total)) and float(terms["track_vis"]) > 0
  total, terms = _loss(pred[..., :0, :], vis[..., :0], conf[..., :0], gt[..., :0, :], gt_vis[..., :0], mask[:, :0])
  assert float(total) == 0.0


def test_loss_is_independent_of_video_size():
  cfg = tracking.TrackingLossConfig()
  assert cfg.pixel_scale((384, 512)) == pytest.approx(1.0)
  assert cfg.pixel_scale((768, 1024)) == pytest.approx(2.0)
  pred, vis, conf, gt, gt_vis, mask = _data(3)
  # The same tracks at 1/8 and 2× the reference resolution: errors are measured in reference pixels,
  # so every term is unchanged (a δ-only scaling made L_pos grow as the square of the size).
  terms = _loss(pred, vis, conf, gt, gt_vis, mask)[1]
  for f in (0.125, 2.0):
    size = (int(384 * f), int(512 * f))
    scaled = _loss(f * pred, vis, conf, f * gt, gt_vis, mask, image_size=size)[1]
    for name in terms:
      np.testing.assert_allclose(float(scaled[name]), float(terms[name]), rtol=1e-4, err_msg=f"{name} at {size}")
  # At 32×32 a 1.5-px error is 21 reference pixels: the linear Huber regime, 6·(21.2 − 3) per coordinate.
  one = np.ones((1, 1, 1, 1, 1), bool)
  pos = _loss(np.full((1, 1, 1, 1, 1, 2), 1.5, np.float32), np.zeros((1, 1, 1, 1, 1), np.float32),
              np.zeros((1, 1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1, 2), np.float32), one[0],
              one[0, 0, 0], image_size=(32, 32))[1]["track_pos"]
  e = 1.5 / (np.hypot(32, 32) / 640.0)
  np.testing.assert_allclose(float(pos), 6 * (e - 3), rtol=1e-5)


def test_shape_errors():
  pred, vis, conf, gt, gt_vis, mask = _data()
  with pytest.raises(ValueError, match="pred_visibility"):
    _loss(pred, vis[:, :1], conf, gt, gt_vis, mask)
  with pytest.raises(ValueError, match="track_mask"):
    _loss(pred, vis, conf, gt, gt_vis, mask[:, :2])


def test_flow_matching_loss():
  rng = np.random.default_rng(0)
  p = rng.normal(size=(2, 3, 2, 2, 4)).astype(np.float32)
  t = rng.normal(size=p.shape).astype(np.float32)
  w = np.array([0.5, 2.0], np.float32)
  expected = np.mean(w * ((p - t) ** 2).reshape(2, -1).mean(-1))
  np.testing.assert_allclose(float(diffusion.flow_matching_loss(p, t, w)), expected, rtol=1e-6)
  # Batch 1 with weight 0 is a defined 0, not NaN (no in-batch normalisation).
  assert float(diffusion.flow_matching_loss(p[:1], t[:1], np.zeros(1, np.float32))) == 0.0
  with pytest.raises(ValueError, match="weight"):
    diffusion.flow_matching_loss(p, t, w[:1])
