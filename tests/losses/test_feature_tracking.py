"""L_feat (losses.feature_tracking) against a NumPy brute force of its definition, every mode."""

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from mvtrack_jax.losses import feature_tracking as ft

S = 8.0  # video pixels per token


def _case(seed=0, b=2, f=3, h=4, w=5, d=6, n=7):
  rng = np.random.default_rng(seed)
  features = rng.standard_normal((b, f, h, w, d)).astype(np.float32)
  tracks = rng.uniform(-4, [w * S + 4, h * S + 4], (b, f, n, 2)).astype(np.float32)  # some outside the frame
  visible = rng.uniform(size=(b, f, n)) > 0.2
  mask = rng.uniform(size=(b, n)) > 0.1
  return features, tracks, visible, mask


def _corners(x, y, h, w):
  u, v = np.clip(x / S - 0.5, 0, w - 1), np.clip(y / S - 0.5, 0, h - 1)
  j0, i0 = int(min(np.floor(u), w - 2)), int(min(np.floor(v), h - 2))
  a, c = u - j0, v - i0
  return [((i0, j0), (1 - a) * (1 - c)), ((i0, j0 + 1), a * (1 - c)), ((i0 + 1, j0), (1 - a) * c),
          ((i0 + 1, j0 + 1), a * c)]


def _brute(features, tracks, visible, mask, config):
  b, f, h, w, _ = features.shape
  unit = features / np.linalg.norm(features, axis=-1, keepdims=True)
  centres = np.array([[(j + 0.5) * S, (i + 0.5) * S] for i in range(h) for j in range(w)])
  fq, total, count = config.query_frame, 0.0, 0
  for bi in range(b):
    for ni in range(tracks.shape[2]):
      def ok(t):
        x, y = tracks[bi, t, ni]
        return visible[bi, t, ni] and 0 <= x < w * S and 0 <= y < h * S
      if not (mask[bi, ni] and ok(fq)):
        continue
      query = sum(wt * unit[bi, fq, i, j] for (i, j), wt in _corners(*tracks[bi, fq, ni], h, w))
      query /= np.linalg.norm(query)
      for t in range(f):
        if t == fq or not ok(t):
          continue
        cost = unit[bi, t].reshape(h * w, -1) @ query / config.temperature
        if config.mode == "ce":
          log_p = cost - np.log(np.sum(np.exp(cost - cost.max()))) - cost.max()
          loss = -sum(wt * log_p[i * w + j] for (i, j), wt in _corners(*tracks[bi, t, ni], h, w))
        else:
          if config.mode == "local":
            bi_, bj_ = divmod(int(np.argmax(cost)), w)
            keep = [abs(k // w - bi_) <= config.local_radius and abs(k % w - bj_) <= config.local_radius
                    for k in range(h * w)]
            cost = np.where(keep, cost, -np.inf)
          p = np.exp(cost - cost.max())
          p /= p.sum()
          err = np.linalg.norm(p @ centres - tracks[bi, t, ni]) / S
          delta = config.huber_delta
          loss = 0.5 * err ** 2 if err <= delta else delta * (err - 0.5 * delta)
        total += loss
        count += 1
  return total / max(count, 1), count


@pytest.mark.parametrize("mode", ft.MODES)
@pytest.mark.parametrize("query_frame", [0, 2])
def test_loss_is_the_brute_force_of_its_definition(mode, query_frame):
  features, tracks, visible, mask = _case()
  config = ft.FeatureTrackingConfig(mode=mode, query_frame=query_frame, local_radius=1)
  loss, metrics = jax.jit(lambda *a: ft.feature_tracking_loss(*a, token_stride=S, config=config))(
      features, tracks, visible, mask)
  expected, count = _brute(features, tracks, visible, mask, config)
  assert count > 5 and metrics["feat_pairs"] == count
  np.testing.assert_allclose(loss, expected, rtol=2e-5)


def test_one_hot_features_track_exactly_and_gradients_are_finite():
  """Features that name their token (h = e_{i,j}): the cost volume peaks at the ground-truth token, so at a low
  temperature the soft-argmax lands on its centre; a point exactly there gives a finite gradient."""
  h, w, f, n = 4, 5, 3, 6
  rng = np.random.default_rng(1)
  eye = np.eye(h * w, dtype=np.float32).reshape(h, w, h * w)
  features = np.broadcast_to(eye, (1, f, h, w, h * w)).copy()
  cells = rng.integers(0, [h, w], (n, 2))
  tracks = np.broadcast_to(np.stack([(cells[:, 1] + 0.5) * S, (cells[:, 0] + 0.5) * S], -1), (1, f, n, 2))
  visible, mask = np.ones((1, f, n), bool), np.ones((1, n), bool)
  config = ft.FeatureTrackingConfig(temperature=0.01)
  loss, metrics = ft.feature_tracking_loss(features, tracks, visible, mask, token_stride=S, config=config)
  assert float(metrics["feat_error_tokens"]) < 1e-3 and float(loss) < 1e-6
  grad = jax.grad(lambda x: ft.feature_tracking_loss(x, tracks, visible, mask, token_stride=S, config=config)[0])(
      jnp.asarray(features))
  assert bool(jnp.all(jnp.isfinite(grad)))


def test_no_valid_pair_gives_zero_and_bad_input_is_named():
  features, tracks, visible, mask = _case()
  loss, metrics = ft.feature_tracking_loss(features, tracks, np.zeros_like(visible), mask, token_stride=S)
  assert float(loss) == 0.0 and float(metrics["feat_pairs"]) == 0.0
  with pytest.raises(ValueError, match=r"tracks must be \(2, 3, N, 2\)"):
    ft.feature_tracking_loss(features, tracks[:, :2], visible, mask, token_stride=S)
  with pytest.raises(ValueError, match="query_frame 3 outside the 3 latent frames"):
    ft.feature_tracking_loss(features, tracks, visible, mask, token_stride=S,
                             config=ft.FeatureTrackingConfig(query_frame=3))
  with pytest.raises(ValueError, match="mode='cosine'"):
    ft.FeatureTrackingConfig(mode="cosine")
