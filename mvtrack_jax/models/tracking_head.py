"""MVTAP tracking head: multi-view point tracking from the DiT's attention query/key features.

MVTrack4Gen routes the query/key features of selected DiT self-attention layers into a multi-view
tracking head (project page: "features from selected DiT layers are upsampled by a lightweight MLP
and correlated into cross-view cost volumes"; "a transformer head over multi-scale local 4D
correlation volumes predicts multi-view point tracks, visibility, and confidence"). The head
follows MV-TAP (arXiv 2512.02006) / CoTracker3 (docs/design.md §4.5); what the paper leaves open is a
:class:`TrackingHeadConfig` field. Forward pass, at latent-frame rate, for both views
(view 0 = reference, 1 = target):

1. **Features.** The probe q/k tokens ``(B, S, C_in)`` (``S = 2·F·h·w``, target frames first;
   several layers concatenated along channels) are split into per-view token grids. A
   lightweight MLP per stream (``Dense → GELU → Dense(u²·C)``) maps each token to ``u×u`` sub-tokens
   (pixel shuffle, factor ``upsample_factor``), giving stride ``s/u`` feature maps; maps are
   L2-normalised and pooled into a ``num_levels`` pyramid (2× average pooling). Query-side
   features come from the **q** maps of the reference view, correlation targets from the **k**
   maps of both views (the attention's own pairing ``q·k``).
2. **Queries.** Each query ``(f, x, y)`` (latent frame, reference-view video pixels) gets a
   ``(2r+1)²`` support patch sampled bilinearly from the reference q map of frame ``f`` at every
   level (the same support is correlated against both views: intra-video temporal correlation in
   the reference view, inter-video cross-view correlation in the target view).
3. **Iterations** (``num_iterations``, shared weights). Around the current (detached) estimate in
   every view and frame a ``(2r+1)²`` patch is sampled from the k pyramid; the local 4D
   correlation is all ``(2r+1)² × (2r+1)²`` dot products with the support patch (2401 values for
   r = 3), per level, embedded by a shared MLP (2401 → 384 → 256). Tokens = [visibility logit,
   confidence logit, correlation embeddings, NeRF-style encodings of the forward/backward
   displacements divided by the video width and height, as MV-TAP's] → Dense(hidden) + 1D sin-cos time embedding + a Plücker embedding of the ray of
   the view's camera through the current estimate (``geometry.plucker_rays`` on the token grid,
   sampled bilinearly; Linear → L2-normalise → LayerNorm, as in MV-TAP). A transformer alternates
   attention across time (per point), across views (per point and frame) and across points via
   ``num_virtual_tracks`` learned virtual tracks, and predicts ``Δx, Δy`` (in feature-map cells),
   ``Δ`` visibility and ``Δ`` confidence logits.

Outputs are returned for every iteration: tracks ``(K, B, 2, F, N, 2)`` in input-video pixels
(corner origin, centres at +0.5), visibility and confidence logits ``(K, B, 2, F, N)``. The
evaluation decision is ``σ(vis)·σ(conf) > 0.6`` (MV-TAP).

Everything is vectorised over batch, views, frames and points (bilinear sampling by gathers);
only the ``K`` refinement iterations are a Python loop.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mvtrack_jax import geometry

Array = Any


@dataclasses.dataclass(frozen=True)
class TrackingHeadConfig:
  """Hyper-parameters of :class:`MVTAPHead` (defaults: MV-TAP / CoTracker3, docs/design.md §4.5).

  Attributes:
    hidden_dim: transformer width (384).
    num_heads: attention heads (8).
    num_blocks: rounds of {time, view, virtual-track space} attention (3, as CoTracker3's depth).
    mlp_ratio: transformer MLP expansion (4).
    num_iterations: refinement iterations K (4).
    num_levels: correlation pyramid levels (4).
    radius: correlation radius r; patches are (2r+1)² (3 → 7×7).
    num_virtual_tracks: learned virtual tracks for cross-point attention (64).
    corr_hidden, corr_dim: correlation MLP ``(2r+1)⁴ → corr_hidden → corr_dim`` (384, 256).
    upsample_factor: pixel-shuffle factor u of the token upsampler (4: stride 16 → 4 px maps).
    upsample_hidden: hidden width of the upsampling MLP (256).
    share_upsampler: one upsampling MLP ``φ`` for q and k (default), so the correlation
      ``φ(q)·φ(k)`` starts out as a similarity of the attention's own q/k pairing; False gives
      each stream its own MLP.
    feature_dim: channels C of the upsampled feature maps (128).
    posenc_degrees: frequencies of the displacement encoding (10 → 84 dims).
    use_camera_embedding: add the Plücker embedding of each view's camera (MV-TAP ``use_cam_embed``).
    dtype: compute dtype of Dense/attention layers (params stay fp32; norms and softmax in fp32).
  """

  hidden_dim: int = 384
  num_heads: int = 8
  num_blocks: int = 3
  mlp_ratio: float = 4.0
  num_iterations: int = 4
  num_levels: int = 4
  radius: int = 3
  num_virtual_tracks: int = 64
  corr_hidden: int = 384
  corr_dim: int = 256
  upsample_factor: int = 4
  upsample_hidden: int = 256
  share_upsampler: bool = True
  feature_dim: int = 128
  posenc_degrees: int = 10
  use_camera_embedding: bool = True
  dtype: Any = jnp.float32

  def __post_init__(self):
    for name in ("hidden_dim", "num_heads", "num_blocks", "num_iterations", "num_levels", "num_virtual_tracks",
                 "corr_hidden", "corr_dim", "upsample_factor", "upsample_hidden", "feature_dim"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"TrackingHeadConfig: {name} must be >= 1, got {getattr(self, name)}")
    if self.radius < 0:
      raise ValueError(f"TrackingHeadConfig: radius must be >= 0, got {self.radius}")
    if self.hidden_dim % self.num_heads:
      raise ValueError(f"TrackingHeadConfig: hidden_dim={self.hidden_dim} not divisible by num_heads={self.num_heads}")

  @classmethod
  def tiny(cls, **overrides) -> "TrackingHeadConfig":
    """A CPU-sized head for tests and the tiny DiT preset."""
    kw = dict(hidden_dim=32, num_heads=2, num_blocks=1, num_iterations=2, num_levels=2, radius=2,
              num_virtual_tracks=4, corr_hidden=32, corr_dim=16, upsample_factor=2, upsample_hidden=32,
              feature_dim=16, posenc_degrees=4)
    kw.update(overrides)
    return cls(**kw)


def features_from_probes(probes: Mapping[int, Mapping[str, Array]], layers: Sequence[int], *,
                         pre_rope: bool = False) -> tuple[Array, Array]:
  """Concatenates the probe layers' q and k into head inputs.

  Args:
    probes: ``{layer: {"q": (B, S, heads, head_dim), "k": ...}}`` (``WanDiT`` probe output).
    layers: the layers to use, in order.
    pre_rope: use ``"q_pre"``/``"k_pre"`` (before RoPE / RoCE) instead.

  Returns:
    ``(q, k)``, each ``(B, S, len(layers)·heads·head_dim)``.

  Raises:
    KeyError: a layer is missing from ``probes``.
  """
  missing = [l for l in layers if l not in probes]
  if missing or not layers:
    raise KeyError(f"features_from_probes: layers {list(layers)} requested, probes have {sorted(probes)}")
  qn, kn = ("q_pre", "k_pre") if pre_rope else ("q", "k")
  q = jnp.concatenate([probes[l][qn].reshape(probes[l][qn].shape[:2] + (-1,)) for l in layers], axis=-1)
  k = jnp.concatenate([probes[l][kn].reshape(probes[l][kn].shape[:2] + (-1,)) for l in layers], axis=-1)
  return q, k


def bilinear_sample(fmap: Array, frame: Array, xy: Array) -> jax.Array:
  """Bilinear sampling of a stack of feature maps by gathers, zeros outside.

  Args:
    fmap: ``(T, H, W, C)`` maps.
    frame: ``(...)`` int map index in ``[0, T)`` (clipped).
    xy: ``(..., 2)`` continuous ``(x, y)`` *cell-index* coordinates: cell ``(i, j)`` has its centre
      at ``(j, i)`` (pixel coordinates map as ``x_pix / stride − 0.5``).

  Returns:
    ``(..., C)`` samples in ``fmap.dtype``.
  """
  t, h, w, c = fmap.shape
  flat = fmap.reshape(t * h * w, c)
  frame = jnp.clip(frame, 0, t - 1).astype(jnp.int32)[..., None]
  x0, y0 = jnp.floor(xy[..., :1]), jnp.floor(xy[..., 1:])
  wx, wy = xy[..., :1] - x0, xy[..., 1:] - y0
  # The four corners as one gather (one gather and one scatter-add in the gradient compile markedly faster on CPU
  # than four of each; same values). Corner order (dx, dy): (0, 0), (1, 0), (0, 1), (1, 1).
  dx, dy = jnp.array([0.0, 1.0, 0.0, 1.0]), jnp.array([0.0, 0.0, 1.0, 1.0])
  xi, yi = x0 + dx, y0 + dy                                                        # (..., 4)
  inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
  idx = frame * (h * w) + jnp.clip(yi, 0, h - 1).astype(jnp.int32) * w + jnp.clip(xi, 0, w - 1).astype(jnp.int32)
  weight = jnp.where(dx > 0, wx, 1.0 - wx) * jnp.where(dy > 0, wy, 1.0 - wy) * inside
  corners = jnp.take(flat, idx, axis=0).astype(jnp.float32)                       # (..., 4, C)
  return jnp.einsum("...k,...kc->...c", weight, corners).astype(fmap.dtype)


def _patch_offsets(radius: int) -> jnp.ndarray:
  """``((2r+1)², 2)`` integer ``(dx, dy)`` offsets, row-major (dy outer)."""
  r = np.arange(-radius, radius + 1, dtype=np.float32)
  dy, dx = np.meshgrid(r, r, indexing="ij")
  return jnp.asarray(np.stack([dx.ravel(), dy.ravel()], axis=-1))


def _posenc(x: jax.Array, degrees: int) -> jax.Array:
  """NeRF encoding ``[x, sin(2^i x), cos(2^i x)]_{i<degrees}`` along the last axis."""
  freqs = 2.0 ** jnp.arange(degrees, dtype=jnp.float32)
  xb = x[..., None, :] * freqs[:, None]
  xb = xb.reshape(x.shape[:-1] + (degrees * x.shape[-1],))
  return jnp.concatenate([x, jnp.sin(xb), jnp.cos(xb)], axis=-1)


def displacement_encoding(est: jax.Array, width: float, height: float, degrees: int) -> jax.Array:
  """The head's motion input: forward and backward frame-to-frame displacements of the current estimate, as
  fractions of the video width / height, NeRF-encoded (:func:`_posenc`).

  MV-TAP (``models/mvtap.py``) divides its displacements in stride-4 cells by the model resolution over the stride,
  i.e. pixels by the video size (Δx/512, Δy/384 at its 384×512), so the encoding's input stays in ``[−1, 1]`` for
  any motion inside the frame; divided by a 16-px token stride instead, its top octaves alias for any motion over a
  pixel.

  Args:
    est: ``(..., F, N, 2)`` pixel positions ``(x, y)`` over ``F`` frames.
    width, height: the video size in pixels.
    degrees: octaves of the encoding.

  Returns:
    ``(..., F, N, 4 + 8·degrees)``: ``[fwd_x, fwd_y, bwd_x, bwd_y]`` (zero at the clip's ends) and their sines and
    cosines.
  """
  fwd = jnp.concatenate([jnp.zeros_like(est[..., :1, :, :]), est[..., 1:, :, :] - est[..., :-1, :, :]], axis=-3)
  bwd = jnp.concatenate([est[..., :-1, :, :] - est[..., 1:, :, :], jnp.zeros_like(est[..., :1, :, :])], axis=-3)
  size = jnp.asarray([width, height, width, height], jnp.float32)
  return _posenc(jnp.concatenate([fwd, bwd], axis=-1) / size, degrees)


def _l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """``x / ‖x‖`` along the last axis with a finite value and gradient at ``x = 0``."""
  return x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + eps)


def _sincos_1d(length: int, dim: int) -> jnp.ndarray:
  """Fixed 1D sin-cos position embedding ``(length, dim)`` (transformer / CoTracker time embedding)."""
  half = dim // 2
  omega = 1.0 / 10000 ** (np.arange(half, dtype=np.float64) / max(half, 1))
  pos = np.arange(length, dtype=np.float64)[:, None] * omega[None]
  emb = np.concatenate([np.sin(pos), np.cos(pos)], axis=-1)
  if emb.shape[1] < dim:
    emb = np.pad(emb, ((0, 0), (0, dim - emb.shape[1])))
  return jnp.asarray(emb, jnp.float32)


class _Mlp(nn.Module):
  hidden: int
  out: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = nn.Dense(self.hidden, dtype=self.dtype)(x)
    x = nn.gelu(x, approximate=True)
    return nn.Dense(self.out, dtype=self.dtype)(x)


class _AttentionBlock(nn.Module):
  """Pre-LN transformer block; self-attention when ``context`` is None, else cross-attention."""

  num_heads: int
  mlp_ratio: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, context=None, mask=None):
    d = x.shape[-1]
    h = nn.LayerNorm(dtype=jnp.float32, name="norm_q")(x)
    kv = h if context is None else nn.LayerNorm(dtype=jnp.float32, name="norm_kv")(context)
    attn = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dtype=self.dtype, name="attn")
    x = x + attn(h, kv, mask=mask).astype(x.dtype)
    h = nn.LayerNorm(dtype=jnp.float32, name="norm_mlp")(x)
    return x + _Mlp(int(d * self.mlp_ratio), d, self.dtype, name="mlp")(h).astype(x.dtype)


class _Refiner(nn.Module):
  """Time / view / virtual-track space attention over tokens ``(B, V, F, N, D)``."""

  config: TrackingHeadConfig

  @nn.compact
  def __call__(self, x, point_mask):
    cfg = self.config
    b, v, f, n, d = x.shape
    virtual = self.param("virtual_tracks", nn.initializers.normal(0.02), (cfg.num_virtual_tracks, d))
    virtual = jnp.broadcast_to(virtual.astype(x.dtype), (b, v, f, cfg.num_virtual_tracks, d))
    tokens = jnp.concatenate([x, virtual], axis=3)                        # (B, V, F, N+M, D)
    # virtual ← points mask: (B, V, F, heads, M, N) broadcast.
    mask = point_mask[:, None, None, None, None, :]
    for i in range(cfg.num_blocks):
      blk = lambda name: _AttentionBlock(cfg.num_heads, cfg.mlp_ratio, cfg.dtype, name=f"{name}_{i}")
      t = einops.rearrange(tokens, "b v f n d -> b v n f d")
      t = blk("time")(t)
      t = einops.rearrange(t, "b v n f d -> b f n v d")
      t = blk("view")(t)
      tokens = einops.rearrange(t, "b f n v d -> b v f n d")
      points, virt = tokens[:, :, :, :n], tokens[:, :, :, n:]
      virt = blk("virtual_from_points")(virt, points, mask=mask)
      virt = blk("virtual_self")(virt)
      points = blk("points_from_virtual")(points, virt)
      tokens = jnp.concatenate([points, virt], axis=3)
    return nn.LayerNorm(dtype=jnp.float32, name="norm_out")(tokens[:, :, :, :n])


class MVTAPHead(nn.Module):
  """The multi-view tracking head (see the module docstring for the method).

  Attributes:
    config: :class:`TrackingHeadConfig`.
  """

  config: TrackingHeadConfig = TrackingHeadConfig()

  @nn.compact
  def __call__(self, query_features: Array, key_features: Array, query_points: Array, *, grid: Sequence[int],
               token_stride: int, cameras: Mapping[str, Array] | None = None,
               point_mask: Array | None = None) -> dict[str, jax.Array]:
    """Tracks reference-view query points in both views.

    Args:
      query_features: ``(B, S, C_in)`` probe q features (``features_from_probes``), ``S = 2·F·h·w``
        ordered target frames then reference frames, each frame row-major ``(h, w)``.
      key_features: ``(B, S, C_in)`` probe k features, same layout.
      query_points: ``(B, N, 3)`` ``(f, x, y)``: latent frame index (rounded, clipped to
        ``[0, F−1]``) and reference-view video pixels. Points outside the frame are defined: their
        support features are zero-padded samples.
      grid: ``(F, h, w)`` latent frames and tokens per frame.
      token_stride: video pixels per DiT token ``s`` (``vae_stride · patch``); the video is
        ``(h·s) × (w·s)`` pixels.
      cameras: optional dict with ``reference_intrinsics``/``target_intrinsics`` ``(B, F, 3, 3)``
        (video pixels) and ``reference_cam_to_world``/``target_cam_to_world`` ``(B, F, 4, 4)``
        (relative to the reference camera at frame 0), at latent-frame rate. Required when
        ``config.use_camera_embedding``.
      point_mask: optional ``(B, N)`` bool; False points are not attended to by the virtual tracks.

    Returns:
      dict with ``tracks`` ``(K, B, 2, F, N, 2)`` float32 video-pixel ``(x, y)``, ``visibility``
      and ``confidence`` ``(K, B, 2, F, N)`` float32 logits; view 0 = reference, 1 = target.

    Raises:
      ValueError: inconsistent shapes, ``h·u`` or ``w·u`` too small for the pyramid, or missing
        cameras when the camera embedding is enabled.
    """
    cfg = self.config
    num_frames, h, w = (int(g) for g in grid)
    if query_features.ndim != 3 or query_features.shape != key_features.shape:
      raise ValueError(f"MVTAPHead: query_features {query_features.shape} and key_features {key_features.shape} "
                       "must both be (B, S, C_in)")
    b, s_tokens, _ = query_features.shape
    if s_tokens != 2 * num_frames * h * w:
      raise ValueError(f"MVTAPHead: S={s_tokens} tokens, but grid {tuple(grid)} implies {2 * num_frames * h * w}")
    if query_points.ndim != 3 or query_points.shape[0] != b or query_points.shape[-1] != 3:
      raise ValueError(f"MVTAPHead: query_points must be ({b}, N, 3) (f, x, y), got {query_points.shape}")
    hf, wf = h * cfg.upsample_factor, w * cfg.upsample_factor
    if min(hf, wf) < 2 ** (cfg.num_levels - 1):
      raise ValueError(f"MVTAPHead: feature map {hf}×{wf} too small for num_levels={cfg.num_levels}")
    if cfg.use_camera_embedding and cameras is None:
      raise ValueError("MVTAPHead: cameras are required when config.use_camera_embedding is True")
    n = query_points.shape[1]
    v = 2
    u = cfg.upsample_factor
    feat_stride = token_stride / u
    point_mask = jnp.ones((b, n), bool) if point_mask is None else jnp.asarray(point_mask, bool)

    # 1. Upsampled, L2-normalised feature maps; view 0 = reference (second half of the tokens).
    mlp = lambda name: _Mlp(cfg.upsample_hidden, u * u * cfg.feature_dim, cfg.dtype, name=name)
    q_mlp, k_mlp = (mlp("upsampler"),) * 2 if cfg.share_upsampler else (mlp("q_upsampler"), mlp("k_upsampler"))

    def upsample(grids, module):
      x = module(grids)
      x = einops.rearrange(x, "... h w (u1 u2 c) -> ... (h u1) (w u2) c", u1=u, u2=u).astype(jnp.float32)
      return _l2_normalize(x)

    half = num_frames * h * w
    q_ref = einops.rearrange(query_features[:, half:], "b (f h w) c -> b f h w c", f=num_frames, h=h, w=w)
    q_maps = upsample(q_ref, q_mlp)                              # (B, F, Hf, Wf, C) reference only
    k_grid = einops.rearrange(key_features, "b (v f h w) c -> b v f h w c", v=2, f=num_frames, h=h, w=w)
    k_maps = upsample(k_grid[:, ::-1], k_mlp)                    # (B, 2, F, Hf, Wf, C), 0 = reference

    def pyramid(maps):
      levels = [maps]
      for _ in range(cfg.num_levels - 1):
        lead = levels[-1].shape[:-3]
        x = levels[-1].reshape((-1,) + levels[-1].shape[-3:])
        x = nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")
        levels.append(x.reshape(lead + x.shape[-3:]))
      return levels

    q_pyr = pyramid(q_maps)                                              # [(B, F, Hl, Wl, C)]
    k_pyr = [x.reshape((b, v * num_frames) + x.shape[-3:]) for x in pyramid(k_maps)]

    offsets = _patch_offsets(cfg.radius)                                # (P, 2)
    qf = jnp.clip(jnp.round(query_points[..., 0]), 0, num_frames - 1).astype(jnp.int32)   # (B, N)
    qxy = jnp.asarray(query_points[..., 1:], jnp.float32)               # (B, N, 2) pixels

    def to_cells(xy_pix, level):
      return xy_pix / (feat_stride * 2 ** level) - 0.5

    # 2. Support patches from the reference q map at the query frame.
    support = []
    for level, fmap in enumerate(q_pyr):
      pos = to_cells(qxy, level)[:, :, None, :] + offsets               # (B, N, P, 2)
      frame = jnp.broadcast_to(qf[:, :, None], pos.shape[:-1])
      support.append(jax.vmap(bilinear_sample)(fmap, frame, pos).astype(cfg.dtype))  # (B, N, P, C)

    # Camera rays on the token grid (scaled intrinsics), sampled at the estimate each iteration.
    if cfg.use_camera_embedding:
      intr = jnp.stack([cameras["reference_intrinsics"], cameras["target_intrinsics"]], axis=1)
      c2w = jnp.stack([cameras["reference_cam_to_world"], cameras["target_cam_to_world"]], axis=1)
      if intr.shape != (b, v, num_frames, 3, 3) or c2w.shape != (b, v, num_frames, 4, 4):
        raise ValueError(f"MVTAPHead: cameras must be (B, F={num_frames}, 3, 3) intrinsics and (B, F, 4, 4) "
                         f"cam_to_world at latent-frame rate, got {intr.shape[2:]} and {c2w.shape[2:]} per view")
      intr = geometry.scale_intrinsics(jnp.asarray(intr, jnp.float32), 1.0 / token_stride, 1.0 / token_stride)
      rays = geometry.plucker_rays(intr, jnp.asarray(c2w, jnp.float32), h, w)   # (B, V, F, h, w, 6)
      rays = rays.reshape((b, v * num_frames, h, w, 6))
    else:
      rays = jnp.zeros((b, 1, 1, 1, 6), jnp.float32)

    frame_idx = (jnp.arange(v)[:, None] * num_frames + jnp.arange(num_frames)[None, :])  # (V, F)
    frame_idx = jnp.broadcast_to(frame_idx[None, :, :, None], (b, v, num_frames, n))
    carry = (jnp.broadcast_to(qxy[:, None, None], (b, v, num_frames, n, 2)),
             jnp.zeros((b, v, num_frames, n), jnp.float32), jnp.zeros((b, v, num_frames, n), jnp.float32))
    # One set of weights, scanned over the K iterations (compiles the body once).
    iterate = nn.scan(_Iteration, variable_broadcast="params", split_rngs={"params": False},
                      in_axes=(nn.broadcast,) * 5, length=cfg.num_iterations)
    _, (tracks, vis, conf) = iterate(cfg, grid=(num_frames, h, w), token_stride=float(token_stride),
                                     name="iteration")(carry, k_pyr, support, rays, frame_idx, point_mask)
    return {"tracks": tracks, "visibility": vis, "confidence": conf}


class _Iteration(nn.Module):
  """One refinement iteration: local 4D correlation → tokens → transformer → Δ (see module doc)."""

  config: TrackingHeadConfig
  grid: tuple[int, int, int]
  token_stride: float

  @nn.compact
  def __call__(self, carry, k_pyr, support, rays, frame_idx, point_mask):
    cfg = self.config
    num_frames, h, w = self.grid
    s = self.token_stride
    feat_stride = s / cfg.upsample_factor
    offsets = _patch_offsets(cfg.radius)
    coords, vis, conf = carry
    est = jax.lax.stop_gradient(coords)                                   # (B, V, F, N, 2) pixels
    corr_mlp = _Mlp(cfg.corr_hidden, cfg.corr_dim, cfg.dtype, name="corr_mlp")
    corr_embs = []
    for level, fmap in enumerate(k_pyr):
      pos = (est / (feat_stride * 2 ** level) - 0.5)[..., None, :] + offsets   # (B, V, F, N, P, 2)
      frame = jnp.broadcast_to(frame_idx[..., None], pos.shape[:-1])
      patch = jax.vmap(bilinear_sample)(fmap, frame, pos).astype(cfg.dtype)   # (B, V, F, N, P, C)
      corr = jnp.einsum("bvfnpc,bnqc->bvfnpq", patch, support[level])
      corr_embs.append(corr_mlp(corr.reshape(corr.shape[:4] + (offsets.shape[0] ** 2,))).astype(jnp.float32))
    disp = displacement_encoding(est, w * s, h * s, cfg.posenc_degrees)
    feats = jnp.concatenate([jax.lax.stop_gradient(vis)[..., None], jax.lax.stop_gradient(conf)[..., None]]
                            + corr_embs + [disp], axis=-1)
    x = nn.Dense(cfg.hidden_dim, dtype=cfg.dtype, name="input_proj")(feats.astype(cfg.dtype)).astype(jnp.float32)
    x = x + _sincos_1d(num_frames, cfg.hidden_dim)[None, None, :, None, :]
    if cfg.use_camera_embedding:
      cell = jnp.stack([jnp.clip(est[..., 0] / s - 0.5, 0, w - 1), jnp.clip(est[..., 1] / s - 0.5, 0, h - 1)], -1)
      ray = jax.vmap(bilinear_sample)(rays, frame_idx, cell)              # (B, V, F, N, 6)
      ce = nn.Dense(cfg.hidden_dim, dtype=cfg.dtype, name="camera_embed")(ray.astype(cfg.dtype)).astype(jnp.float32)
      ce = _l2_normalize(ce)
      x = x + nn.LayerNorm(dtype=jnp.float32, name="camera_norm")(ce)
    y = _Refiner(cfg, name="refiner")(x.astype(cfg.dtype), point_mask)
    delta = nn.Dense(4, dtype=jnp.float32, kernel_init=nn.initializers.normal(1e-3), name="delta")(
        y.astype(jnp.float32))
    coords = coords + delta[..., :2] * feat_stride
    vis = vis + delta[..., 2]
    conf = conf + delta[..., 3]
    return (coords, vis, conf), (coords, vis, conf)


def predicted_visible(visibility: Array, confidence: Array, threshold: float = 0.6) -> jax.Array:
  """MV-TAP evaluation decision ``σ(vis)·σ(conf) > threshold`` (bool, same shape as the logits)."""
  return jax.nn.sigmoid(visibility) * jax.nn.sigmoid(confidence) > threshold
