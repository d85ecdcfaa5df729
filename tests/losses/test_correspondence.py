"""L_corr against a brute-force cross-entropy over the full S×S attention matrix."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax.losses import correspondence as corr

B, F, H, W, HEADS, D, N, STRIDE = 2, 3, 3, 4, 2, 8, 5, 8


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  s = 2 * F * H * W
  q = rng.normal(size=(B, s, HEADS, D)).astype(np.float32)
  k = rng.normal(size=(B, s, HEADS, D)).astype(np.float32)
  tracks = np.stack([rng.uniform(0, W * STRIDE, size=(B, 2, F, N)), rng.uniform(0, H * STRIDE, size=(B, 2, F, N))], -1)
  tracks = tracks.astype(np.float32)
  tracks[0, 0, 0, 0] = [1.0, 1.0]                       # near a corner: bilinear clamps to the border token
  tracks[0, 1, 1, 1] = [W * STRIDE + 3.0, 5.0]          # outside the target frame: row invalid
  visible = rng.uniform(size=(B, 2, F, N)) > 0.2
  mask = np.ones((B, N), bool)
  mask[1, -1] = False
  return q, k, tracks, visible, mask


def _brute_force(q, k, tracks, visible, mask, domain, target, head_reduction):
  """Dense S×S attention in float64; CE per (b, f, n) row by explicit loops."""
  s = q.shape[1]
  logits = np.einsum("bshd,bthd->bhst", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(D)
  hw = H * W
  total, count = 0.0, 0
  for b, f, n in itertools.product(range(B), range(F), range(N)):
    (xr, yr), (xt, yt) = tracks[b, 0, f, n].astype(np.float64), tracks[b, 1, f, n].astype(np.float64)
    inside = all(0 <= x < W * STRIDE for x in (xr, xt)) and all(0 <= y < H * STRIDE for y in (yr, yt))
    if not (mask[b, n] and visible[b, 0, f, n] and visible[b, 1, f, n] and inside):
      continue
    row = f * hw + int(yt // STRIDE) * W + int(xt // STRIDE)
    # Target distribution over all S columns.
    t = np.zeros(s)
    ref0 = F * hw + f * hw
    if target == "onehot":
      t[ref0 + int(yr // STRIDE) * W + int(xr // STRIDE)] = 1.0
    else:
      # Bilinear over token centres ((j+0.5)·s, (i+0.5)·s), clamped to the centre grid.
      u = min(max(xr / STRIDE - 0.5, 0), W - 1)
      v = min(max(yr / STRIDE - 0.5, 0), H - 1)
      for i in range(H):
        for j in range(W):
          t[ref0 + i * W + j] = max(0, 1 - abs(u - j)) * max(0, 1 - abs(v - i))
    assert abs(t.sum() - 1) < 1e-9
    cols = np.zeros(s, bool)
    if domain == "reference_frame":
      cols[ref0:ref0 + hw] = True
    elif domain == "reference_video":
      cols[F * hw:] = True
    else:
      cols[:] = True
    lg = np.where(cols[None], logits[b, :, row], -np.inf)             # (heads, S)
    logp = lg - np.log(np.sum(np.exp(lg - lg.max(-1, keepdims=True)), -1, keepdims=True)) - lg.max(-1, keepdims=True)
    p = np.exp(logp)
    sel = t > 0
    if head_reduction == "per_head":
      ce = -(t[sel][None] * logp[:, sel]).sum(-1).mean()
    else:
      ce = -(t[sel] * np.log(p.mean(0)[sel])).sum()
    total += ce
    count += 1
  return total / count, count


@pytest.mark.parametrize("domain,target,head_reduction", [
    ("reference_frame", "bilinear", "per_head"),
    ("reference_frame", "onehot", "mean_attention"),
    ("reference_video", "bilinear", "mean_attention"),
    ("all", "onehot", "per_head"),
    ("all", "bilinear", "per_head"),
])
def test_matches_brute_force(domain, target, head_reduction):
  q, k, tracks, visible, mask = _inputs()
  cfg = corr.CorrespondenceConfig(domain=domain, target=target, head_reduction=head_reduction)
  loss, aux = jax.jit(lambda *a: corr.attention_correspondence_loss(
      *a, grid=(F, H, W), token_stride=STRIDE, config=cfg))(q, k, tracks, visible, mask)
  expected, count = _brute_force(q, k, tracks, visible, mask, domain, target, head_reduction)
  assert int(aux["rows"]) == count > 10
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-5)


def test_bf16_inputs_computed_in_fp32_and_gradients_flow_to_q_and_k():
  q, k, tracks, visible, mask = _inputs(1)
  f = lambda q, k: corr.attention_correspondence_loss(q, k, tracks, visible, mask, grid=(F, H, W),
                                                        token_stride=STRIDE)[0]
  loss16 = f(jnp.asarray(q, jnp.bfloat16), jnp.asarray(k, jnp.bfloat16))
  assert loss16.dtype == jnp.float32
  np.testing.assert_allclose(float(loss16), float(f(q, k)), rtol=2e-2)
  gq, gk = jax.grad(f, argnums=(0, 1))(q, k)
  assert np.abs(np.asarray(gq)).sum() > 0 and np.abs(np.asarray(gk)).sum() > 0
  # Only the supervised target rows receive query gradients; reference-frame keys only get key gradients.
  rows_with_grad = np.abs(np.asarray(gq)).sum(axis=(2, 3)) > 0
  assert not rows_with_grad[:, F * H * W:].any()
  assert not (np.abs(np.asarray(gk)).sum(axis=(2, 3)) > 0)[:, :F * H * W].any()


def test_defined_results_for_degenerate_inputs():
  q, k, tracks, visible, mask = _inputs(2)
  kw = dict(grid=(F, H, W), token_stride=STRIDE)
  loss, aux = corr.attention_correspondence_loss(q, k, tracks, np.zeros_like(visible), mask, **kw)
  assert float(loss) == 0.0 and float(aux["rows"]) == 0.0
  loss, aux = corr.attention_correspondence_loss(q, k, tracks, visible, np.zeros_like(mask), **kw)
  assert float(loss) == 0.0
  loss, aux = corr.attention_correspondence_loss(q, k, tracks[:, :, :, :0], visible[:, :, :, :0], mask[:, :0], **kw)
  assert float(loss) == 0.0 and float(aux["rows"]) == 0.0
  # All points outside the frames: no rows, finite zero.
  loss, aux = corr.attention_correspondence_loss(q, k, tracks - 1000.0, visible, mask, **kw)
  assert float(loss) == 0.0 and float(aux["rows"]) == 0.0


def test_attention_peaked_at_target_gives_small_loss_and_full_accuracy():
  # Keys equal to a one-hot of each reference token's index, queries pointing at the GT token.
  hw = H * W
  s = 2 * F * hw
  tracks = np.zeros((1, 2, F, 1, 2), np.float32)
  tracks[0, 0, :, 0] = [(2 + 0.5) * STRIDE, (1 + 0.5) * STRIDE]   # reference: token (1, 2) centre
  tracks[0, 1, :, 0] = [(0 + 0.5) * STRIDE, (2 + 0.5) * STRIDE]   # target: token (2, 0)
  k = np.zeros((1, s, 1, hw), np.float32)
  for f in range(F):
    k[0, F * hw + f * hw + np.arange(hw), 0, np.arange(hw)] = 1.0
  q = np.zeros((1, s, 1, hw), np.float32)
  q[0, np.arange(F) * hw + 2 * W + 0, 0, 1 * W + 2] = 200.0
  loss, aux = corr.attention_correspondence_loss(q, k, tracks, np.ones((1, 2, F, 1), bool), np.ones((1, 1), bool),
                                                 grid=(F, H, W), token_stride=STRIDE)
  assert float(loss) < 1e-6 and float(aux["accuracy"]) == 1.0


def test_errors():
  q, k, tracks, visible, mask = _inputs()
  with pytest.raises(ValueError, match="2·F·h·w"):
    corr.attention_correspondence_loss(q, k, tracks, visible, mask, grid=(F, H, W + 1), token_stride=STRIDE)
  with pytest.raises(ValueError, match="domain"):
    corr.CorrespondenceConfig(domain="reference")
  with pytest.raises(ValueError, match="track_mask"):
    corr.attention_correspondence_loss(q, k, tracks, visible, mask[:, :2], grid=(F, H, W), token_stride=STRIDE)
  with pytest.raises(KeyError, match="layer 18"):
    corr.multi_layer_correspondence_loss({3: {"q": q, "k": k}}, tracks, visible, mask, grid=(F, H, W),
                                         token_stride=STRIDE)


def test_multi_layer_sums_layers():
  q, k, tracks, visible, mask = _inputs()
  cfg = corr.CorrespondenceConfig(layers=(1, 4))
  probes = {1: {"q": q, "k": k}, 4: {"q": k, "k": q}}
  total, m = corr.multi_layer_correspondence_loss(probes, tracks, visible, mask, grid=(F, H, W),
                                                  token_stride=STRIDE, config=cfg)
  np.testing.assert_allclose(float(total), float(m["corr_loss/layer_1"] + m["corr_loss/layer_4"]), rtol=1e-6)


def test_accuracy_is_the_argmax_of_head_averaged_attention_not_of_logits():
  """Head 0 puts all its attention on reference token 0 (the GT); head 1 spreads its attention but has
  a very negative logit there. Averaged attention picks token 0; averaged logits would pick token 1."""
  grid, stride = (1, 1, 4), 4                        # one frame of 1 × 4 tokens per view, 16 × 4 px
  heads, head_dim = 2, 4
  desired = np.array([[8.0, 0.0, 0.0, 0.0], [-20.0, 2.0, 0.0, 0.0]], np.float32)  # (heads, key tokens)
  q = np.zeros((1, 8, heads, head_dim), np.float32)
  q[:, :, :, :] = 2.0 * desired                       # every query token; logits = q·k / √head_dim
  k = np.zeros_like(q)
  for m in range(4):
    k[0, 4 + m, :, m] = 1.0                           # reference tokens (after the 4 target tokens): one-hot
  tracks = np.zeros((1, 2, 1, 1, 2), np.float32)
  tracks[0, 0, 0, 0] = (2.0, 2.0)                     # reference view: the centre of token 0
  tracks[0, 1, 0, 0] = (2.0, 2.0)                     # target view: query row = target token 0
  visible, mask = np.ones((1, 2, 1, 1), bool), np.ones((1, 1), bool)
  assert np.argmax(desired.mean(0)) == 1 and np.argmax(jax.nn.softmax(desired, -1).mean(0)) == 0
  _, aux = corr.attention_correspondence_loss(q, k, tracks, visible, mask, grid=grid, token_stride=stride,
                                              config=corr.CorrespondenceConfig(target="onehot"))
  assert float(aux["rows"]) == 1.0 and float(aux["accuracy"]) == 1.0
