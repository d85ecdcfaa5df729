"""MVTAPHead: shapes, layout, defined results for bad inputs, and learning on affine-warped photographs."""

import functools

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import skimage.data

from mvtrack_jax import tapvid
from mvtrack_jax.losses import tracking
from mvtrack_jax.models import tracking_head as th

# --- Synthetic multi-view pairs from a real photograph under known affine motion -------------------------

SIZE = 64            # video H = W
PATCH = 4            # token stride of the frozen patch embedding (16×16 tokens)
FRAMES = 4
HEADS, HEAD_DIM = 2, 24


@functools.lru_cache(maxsize=1)
def _photo():
  img = skimage.data.astronaut()                                   # (512, 512, 3) uint8, real photo
  return cv2.resize(img, (160, 160), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _affine(rng, scale_jitter, rot_deg, shift):
  ang = np.deg2rad(rng.uniform(-rot_deg, rot_deg))
  sc = 1.0 + rng.uniform(-scale_jitter, scale_jitter)
  a = sc * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
  return a, rng.uniform(-shift, shift, size=2)


def make_pair_batch(rng, batch, num_points):
  """Reference/target views of a photo, each frame an affine warp; exact GT tracks in both views.

  Maps are in corner-origin continuous pixels: ``p_view = A·p_photo + t``. Returns the batch dict in
  the pipeline layout (tracks ``(B, 2, T, N, 2)``, visible ``(B, 2, T, N)``, query ``(B, N, 3)``).
  """
  photo = _photo()
  video = np.zeros((batch, 2, FRAMES, SIZE, SIZE, 3), np.float32)
  tracks = np.zeros((batch, 2, FRAMES, num_points, 2), np.float32)
  query = np.zeros((batch, num_points, 3), np.float32)
  for b in range(batch):
    centre = rng.uniform(60, 100, size=2)                                # photo point at the video centre
    velocity = rng.uniform(-2.5, 2.5, size=2)
    a_tgt, t_tgt = _affine(rng, 0.08, 8.0, 5.0)
    maps = []
    for v in range(2):
      for t in range(FRAMES):
        base = -centre + velocity * t + SIZE / 2                        # reference: translation over time
        a, off = np.eye(2), base
        if v == 1:                                                       # target: extra affine about the centre
          a, off = a_tgt, a_tgt @ (base - SIZE / 2) + SIZE / 2 + t_tgt
        maps.append((a, off))
        # cv2 uses integer pixel centres: p_c = p - 0.5.
        m = np.concatenate([a, (off + 0.5 - a @ np.full(2, 0.5))[:, None]], axis=1)
        video[b, v, t] = cv2.warpAffine(photo, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REFLECT)
    tq = rng.integers(0, FRAMES, size=num_points)
    q_xy = rng.uniform(4, SIZE - 4, size=(num_points, 2))
    query[b] = np.concatenate([tq[:, None], q_xy], axis=1)
    for n in range(num_points):
      a0, o0 = maps[tq[n]]
      src = np.linalg.solve(a0, q_xy[n] - o0)
      for v in range(2):
        for t in range(FRAMES):
          a, o = maps[v * FRAMES + t]
          tracks[b, v, t, n] = a @ src + o
  visible = np.all((tracks >= 0) & (tracks < SIZE), axis=-1)
  return {"video": video, "tracks": tracks, "visible": visible, "query_points": query,
          "track_mask": np.ones((batch, num_points), bool)}


def frozen_features(video, seed=0):
  """A fixed (untrained) patch embedding shaped like probe q/k: (B, S, heads·head_dim), target first."""
  b = video.shape[0]
  patches = video.reshape(b, 2, FRAMES, SIZE // PATCH, PATCH, SIZE // PATCH, PATCH, 3)
  patches = patches.transpose(0, 1, 2, 3, 5, 4, 6, 7).reshape(b, 2, FRAMES, -1, PATCH * PATCH * 3)
  patches = patches - patches.mean(-1, keepdims=True)
  proj = np.random.default_rng(seed).normal(size=(PATCH * PATCH * 3, HEADS * HEAD_DIM)) / np.sqrt(PATCH * PATCH * 3)
  feats = patches @ proj
  feats = feats[:, ::-1].reshape(b, -1, HEADS * HEAD_DIM)           # tokens: target view first
  return jnp.asarray(feats, jnp.float32)


def _cameras(batch):
  k = np.array([[SIZE, 0, SIZE / 2], [0, SIZE, SIZE / 2], [0, 0, 1]], np.float32)
  intr = np.broadcast_to(k, (batch, FRAMES, 3, 3))
  eye = np.broadcast_to(np.eye(4, dtype=np.float32), (batch, FRAMES, 4, 4))
  return {"reference_intrinsics": intr, "target_intrinsics": intr, "reference_cam_to_world": eye,
          "target_cam_to_world": eye}


GRID = (FRAMES, SIZE // PATCH, SIZE // PATCH)
CFG = th.TrackingHeadConfig.tiny(num_levels=3, radius=1, hidden_dim=48, num_heads=4, feature_dim=24, corr_dim=24,
                                 corr_hidden=48, upsample_hidden=48)


def _average_jaccard(query, tracks_pred, vis_pred, gt_tracks, gt_visible):
  """AJ over both views flattened along time (MV-TAP); query frame excluded in the reference view."""
  b, v, t, n, _ = gt_tracks.shape
  cat = lambda x: np.concatenate([x[:, 0], x[:, 1]], axis=1)       # (B, 2T, N, ...)
  q, gt_occ, gt_xy = tapvid.to_tapvid_format(query, cat(gt_tracks), cat(gt_visible), image_size=(SIZE, SIZE))
  _, pred_occ, pred_xy = tapvid.to_tapvid_format(query, cat(tracks_pred), cat(vis_pred), image_size=(SIZE, SIZE))
  m = tapvid.compute_tapvid_metrics(q, gt_occ, gt_xy, pred_occ, pred_xy, "strided")
  return float(np.nanmean(m["average_jaccard"]))


# The head is trained alone with the MV-TAP loss; at 64×64 the pixel thresholds are kept at their
# 384×512 values (reference_size = the video size) and positions weigh as much as the BCE terms so a
# few hundred CPU steps suffice.
HEAD_ONLY_LOSS = tracking.TrackingLossConfig(reference_size=(SIZE, SIZE), position_weight=1.0)


def _train_and_eval(steps, seed=0, batch=4, num_points=24, pool_size=16, lr=3e-3):
  """Trains the head on frozen features of affine pairs; returns (AJ, zero-motion AJ, mean errors)."""
  head = th.MVTAPHead(CFG)
  data_rng = np.random.default_rng(seed)
  pool = [make_pair_batch(data_rng, batch, num_points) for _ in range(pool_size)]
  feats = [frozen_features(d["video"]) for d in pool]
  test = make_pair_batch(np.random.default_rng(1000 + seed), 8, 32)
  cams = _cameras(batch)
  params = jax.jit(lambda r, f, q: head.init(r, f, f, q, grid=GRID, token_stride=PATCH, cameras=cams))(
      jax.random.key(seed), feats[0], jnp.asarray(pool[0]["query_points"]))
  opt = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, lr, 20, steps), weight_decay=1e-4)
  opt_state = opt.init(params)

  @jax.jit
  def step(params, opt_state, f, query, gt, vis, mask):
    def loss_fn(p):
      out = head.apply(p, f, f, query, grid=GRID, token_stride=PATCH, cameras=cams)
      return tracking.tracking_loss(out["tracks"], out["visibility"], out["confidence"], gt, vis, mask,
                                    image_size=(SIZE, SIZE), config=HEAD_ONLY_LOSS)[0]
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  for i in range(steps):
    d = pool[i % pool_size]
    params, opt_state, _ = step(params, opt_state, feats[i % pool_size], jnp.asarray(d["query_points"]),
                                d["tracks"], d["visible"], d["track_mask"])
  out = jax.jit(lambda p, f, q: head.apply(p, f, f, q, grid=GRID, token_stride=PATCH, cameras=_cameras(8)))(
      params, frozen_features(test["video"]), jnp.asarray(test["query_points"]))
  pred = np.asarray(out["tracks"][-1])
  pred_vis = np.asarray(th.predicted_visible(out["visibility"][-1], out["confidence"][-1]))
  aj = _average_jaccard(test["query_points"], pred, pred_vis, test["tracks"], test["visible"])
  zero = np.broadcast_to(test["query_points"][:, None, None, :, 1:], test["tracks"].shape)
  aj_zero = _average_jaccard(test["query_points"], zero, np.ones_like(test["visible"]), test["tracks"],
                             test["visible"])
  err = np.linalg.norm(pred - test["tracks"], axis=-1)[test["visible"]].mean()
  err_zero = np.linalg.norm(zero - test["tracks"], axis=-1)[test["visible"]].mean()
  return aj, aj_zero, err, err_zero


def test_head_learns_affine_motion_fast():
  """100 steps of 2 pairs, evaluated on held-out pairs: better than predicting no motion (weaker than the slow test).
  Measured 2026-12-07: AJ 0.19 vs 0.10, 2.75 px vs 3.61 px (4 pairs per step: AJ 0.18, 2.76 px, at twice the time)."""
  aj, aj_zero, err, err_zero = _train_and_eval(100, batch=2)
  print(f"fast: AJ {aj:.3f} (zero motion {aj_zero:.3f}), error {err:.2f} px (zero motion {err_zero:.2f} px)")
  assert err < 0.85 * err_zero, (err, err_zero)
  assert aj > aj_zero + 0.03, (aj, aj_zero)


@pytest.mark.slow
def test_head_learns_affine_motion():
  """400 steps: TAP-Vid AJ well above the zero-motion baseline (measured: AJ 0.44 vs 0.10, 1.1 px vs 3.6 px)."""
  aj, aj_zero, err, err_zero = _train_and_eval(400, pool_size=32)
  print(f"slow: AJ {aj:.3f} (zero motion {aj_zero:.3f}), error {err:.2f} px (zero motion {err_zero:.2f} px)")
  assert aj > max(2.5 * aj_zero, aj_zero + 0.2), (aj, aj_zero)
  assert err < 0.5 * err_zero, (err, err_zero)


# --- Unit tests -----------------------------------------------------------------------------------------

SMALL = th.TrackingHeadConfig.tiny(num_levels=2, radius=1)
SMALL_GRID = (3, 4, 6)          # F, h, w tokens
SMALL_STRIDE = 8                # video 32 × 48 px


def _small_inputs(b=2, n=5, seed=0):
  rng = np.random.default_rng(seed)
  s = 2 * 3 * 4 * 6
  q = jnp.asarray(rng.normal(size=(b, s, 12)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(b, s, 12)), jnp.float32)
  pts = np.stack([rng.integers(0, 3, (b, n)), rng.uniform(0, 48, (b, n)), rng.uniform(0, 32, (b, n))], -1)
  intr = np.broadcast_to(np.array([[40.0, 0, 24], [0, 40.0, 16], [0, 0, 1]], np.float32), (b, 3, 3, 3))
  c2w = np.broadcast_to(np.eye(4, dtype=np.float32), (b, 3, 4, 4))
  cams = {"reference_intrinsics": intr, "target_intrinsics": intr, "reference_cam_to_world": c2w,
          "target_cam_to_world": c2w}
  return q, k, jnp.asarray(pts, jnp.float32), cams


@functools.lru_cache(maxsize=None)
def _small_head():
  head = th.MVTAPHead(SMALL)
  q, k, pts, cams = _small_inputs()
  params = jax.jit(lambda r: head.init(r, q, k, pts, grid=SMALL_GRID, token_stride=SMALL_STRIDE, cameras=cams))(
      jax.random.key(0))
  fn = jax.jit(lambda p, q, k, pts, cams, mask: head.apply(p, q, k, pts, grid=SMALL_GRID, token_stride=SMALL_STRIDE,
                                                           cameras=cams, point_mask=mask))
  return params, fn


def test_output_shapes_start_at_query_and_points_are_exchangeable():
  params, fn = _small_head()
  q, k, pts, cams = _small_inputs()
  mask = jnp.ones(pts.shape[:2], bool)
  out = fn(params, q, k, pts, cams, mask)
  K = SMALL.num_iterations
  assert out["tracks"].shape == (K, 2, 2, 3, 5, 2)
  assert out["visibility"].shape == out["confidence"].shape == (K, 2, 2, 3, 5)
  assert all(np.isfinite(np.asarray(v)).all() for v in out.values())
  # The output layer starts near zero, so the first estimate stays within a pixel of the query.
  np.testing.assert_allclose(out["tracks"][0], np.broadcast_to(pts[:, None, None, :, 1:], (2, 2, 3, 5, 2)), atol=1.0)
  # Permuting the points permutes the predictions (attention across points is order-free).
  perm = np.array([3, 0, 4, 1, 2])
  out_p = fn(params, q, k, pts[:, perm], cams, mask)
  np.testing.assert_allclose(out_p["tracks"], out["tracks"][:, :, :, :, perm], atol=1e-4)
  # Padded points (mask False) do not influence the others.
  far = pts.at[:, 0, 1:].set(jnp.asarray([3.0, 30.0]))
  m2 = mask.at[:, 0].set(False)
  a = fn(params, q, k, pts, cams, m2)["tracks"][:, :, :, :, 1:]
  b = fn(params, q, k, far, cams, m2)["tracks"][:, :, :, :, 1:]
  np.testing.assert_allclose(a, b, atol=1e-5)


def test_views_follow_the_token_layout():
  """Swapping the two halves of the token sequence changes the reference (view 0) predictions."""
  params, fn = _small_head()
  q, k, pts, cams = _small_inputs()
  mask = jnp.ones(pts.shape[:2], bool)
  half = q.shape[1] // 2
  out = fn(params, q, k, pts, cams, mask)
  # Changing the *target* half of the keys (first half of the sequence) leaves view 0's correlations unchanged
  # up to the cross-view attention; changing the reference half of the queries changes everything.
  k_t = k.at[:, :half].set(0.0)
  out_t = fn(params, q, k_t, pts, cams, mask)
  assert not np.allclose(out_t["tracks"][:, :, 1], out["tracks"][:, :, 1])
  q_t = q.at[:, :half].set(0.0)                            # queries of the target half are not used
  np.testing.assert_array_equal(fn(params, q_t, k, pts, cams, mask)["tracks"], out["tracks"])


def test_bad_and_degenerate_inputs():
  params, fn = _small_head()
  q, k, pts, cams = _small_inputs()
  mask = jnp.ones(pts.shape[:2], bool)
  outside = pts.at[:, :, 1].add(500.0).at[:, :, 0].set(10.0)   # outside the frame, query frame beyond F
  out = fn(params, q, k, outside, cams, mask)
  assert all(np.isfinite(np.asarray(v)).all() for v in out.values())
  head = th.MVTAPHead(SMALL)
  kw = dict(grid=SMALL_GRID, token_stride=SMALL_STRIDE, cameras=cams)
  with pytest.raises(ValueError, match="implies"):
    head.apply(params, q[:, :-1], k[:, :-1], pts, **kw)
  with pytest.raises(ValueError, match="query_points"):
    head.apply(params, q, k, pts[..., :2], **kw)
  with pytest.raises(ValueError, match="cameras are required"):
    head.apply(params, q, k, pts, grid=SMALL_GRID, token_stride=SMALL_STRIDE)
  with pytest.raises(ValueError, match="too small"):
    th.MVTAPHead(th.TrackingHeadConfig.tiny(num_levels=5)).init(jax.random.key(0), q, k, pts, **kw)
  with pytest.raises(ValueError, match="divisible"):
    th.TrackingHeadConfig(hidden_dim=30, num_heads=4)
  # N = 0: empty predictions of the right shape.
  out0 = jax.jit(lambda p, pts: head.apply(p, q, k, pts, **kw))(params, pts[:, :0])
  assert out0["tracks"].shape == (SMALL.num_iterations, 2, 2, 3, 0, 2)


def test_bilinear_sample_matches_map_coordinates():
  rng = np.random.default_rng(0)
  fmap = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
  xy = rng.uniform(-1.5, 7.5, size=(40, 2)).astype(np.float32)
  frame = rng.integers(0, 2, size=40)
  got = np.asarray(th.bilinear_sample(jnp.asarray(fmap), jnp.asarray(frame), jnp.asarray(xy)))
  for c in range(3):
    ref = jax.scipy.ndimage.map_coordinates(jnp.asarray(fmap[..., c]), [frame, xy[:, 1], xy[:, 0]], order=1,
                                            mode="constant", cval=0.0)
    np.testing.assert_allclose(got[:, c], np.asarray(ref), atol=1e-5)


def test_displacements_enter_as_fractions_of_the_video_size():
  """F12: MV-TAP encodes Δpx / video size (Δx/512, Δy/384 at its 384×512), not Δpx / token stride, whose top octaves
  alias for any motion over a pixel."""
  est = jnp.asarray([[[[0.0, 0.0]], [[256.0, 96.0]], [[768.0, 96.0]]]])  # (1, F=3, N=1, 2): moves 256, then 512 px
  enc = np.asarray(th.displacement_encoding(est, 512.0, 384.0, degrees=2))
  assert enc.shape == (1, 3, 1, 4 + 8 * 2)
  np.testing.assert_allclose(enc[0, :, 0, :4], [[0, 0, -0.5, -0.25], [0.5, 0.25, -1.0, 0.0], [1.0, 0.0, 0, 0]])
  np.testing.assert_allclose(enc[0, 1, 0, 4:8], np.sin([0.5, 0.25, -1.0, 0.0]), atol=1e-6)  # octave 0 sines
