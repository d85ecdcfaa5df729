"""The Wan2.1 video VAE in Flax: diffusers' ``AutoencoderKLWan`` in channels-last layout.

Wan2.1 (arXiv 2503.20314) compresses a video ``(B, T, H, W, 3)`` in ``[−1, 1]`` with ``T = 1 + 4k``
into latents ``(B, 1 + k, H/8, W/8, 16)``: the first frame alone, then every 4 frames, by causal 3D
convolutions (a frame only sees itself and earlier frames). The reference implementation is
diffusers 0.42.1 ``models/autoencoders/autoencoder_kl_wan.py`` (Wan 2.1 settings: ``is_residual``
False, no patchify, no attention outside the middle blocks); this module computes the same
functions, checked to ≤ 1e-4 of the output's scale on random instances (``tests/models/test_wan_vae.py``).

**Chunked time with a feature cache.** As in the reference, the encoder runs on the first frame,
then on chunks of 4 frames, and the decoder on one latent frame at a time; every causal 3×3×3
convolution keeps the last 2 frames of its input as a cache for the next chunk (zeros before the
first chunk, which is exactly the causal zero padding of the whole video), the temporal
downsamplers keep 1 frame, the temporal upsamplers 2. The chunks after the first go through
``nn.scan`` with the cache as carry, so one chunk's activations are alive at a time and the peak
memory does not grow with ``T`` (``benchmarks/vae_bench.py`` reads it from ``memory_analysis``).
Two first-chunk rules of the reference are kept: a temporal downsampler passes the first frame
through (``1 + 4k → 1 + 2k → 1 + k`` frames), and a temporal upsampler passes the first latent
frame through and starts its time convolution on the second one with zero context
(``1 + k → 1 + 2k → 1 + 4k``).

**Spatial tiling** (:class:`Tiling`, optional): frames larger than a tile are processed as
overlapping tiles whose overlaps are blended linearly, as diffusers' ``tiled_encode`` /
``tiled_decode`` (same tile grid and blending, so the results are equal to diffusers' with tiling on).

**Latent normalisation** is a separate step (:func:`normalize_latents`): Wan's DiT works on
``(z − latents_mean) / latents_std`` with the 16 published per-channel statistics
(:data:`WAN21_LATENTS_MEAN`, :data:`WAN21_LATENTS_STD`, as in diffusers' ``WanPipeline``).

Layout and names: params mirror diffusers' module tree (``encoder/down_blocks_3/conv1/kernel`` for
``encoder.down_blocks.3.conv1.weight``), so ``convert.wan_vae`` maps keys by rule. Convolution
kernels are ``(kt, kh, kw, in, out)`` (3D) or ``(kh, kw, in, out)`` (2D); RMS-norm scales ``gamma``
are ``(C,)``. Dropout is not applied: the VAE is used frozen, in inference mode.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = Any

# The per-channel statistics of Wan2.1 VAE latents (diffusers AutoencoderKLWan config defaults, the
# same values as the Wan2.1 repository's ``wan/modules/vae.py``).
WAN21_LATENTS_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                      0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
WAN21_LATENTS_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                     3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)

_CACHE_T = 2   # frames of context a causal 3×3×3 convolution needs


@dataclasses.dataclass(frozen=True)
class WanVAEConfig:
  """Architecture of the Wan2.1 VAE (diffusers ``AutoencoderKLWan`` constructor fields).

  Attributes:
    base_dim: channels of the first stage (96).
    z_dim: latent channels (16); the encoder outputs ``2·z_dim`` (mean and log-variance).
    dim_mult: channel multipliers per stage ((1, 2, 4, 4)); spatial factor ``2^(len − 1)``.
    num_res_blocks: residual blocks per encoder stage (the decoder has one more) (2).
    temperal_downsample: per stage transition, whether it also halves time ((False, True, True));
      the decoder mirrors it. Spelling as in diffusers.
    latents_mean, latents_std: per-channel latent statistics for :func:`normalize_latents`.
    dtype: compute dtype (parameters stay float32; norms are computed in float32).
  """

  base_dim: int = 96
  z_dim: int = 16
  dim_mult: tuple[int, ...] = (1, 2, 4, 4)
  num_res_blocks: int = 2
  temperal_downsample: tuple[bool, ...] = (False, True, True)
  latents_mean: tuple[float, ...] = WAN21_LATENTS_MEAN
  latents_std: tuple[float, ...] = WAN21_LATENTS_STD
  dtype: Any = jnp.float32

  def __post_init__(self):
    for name in ("base_dim", "z_dim", "num_res_blocks"):
      if not isinstance(getattr(self, name), (int, np.integer)) or getattr(self, name) < 1:
        raise ValueError(f"WanVAEConfig: {name} must be a positive int, got {getattr(self, name)!r}")
    object.__setattr__(self, "dim_mult", tuple(int(m) for m in self.dim_mult))
    object.__setattr__(self, "temperal_downsample", tuple(bool(t) for t in self.temperal_downsample))
    object.__setattr__(self, "latents_mean", tuple(float(m) for m in self.latents_mean))
    object.__setattr__(self, "latents_std", tuple(float(s) for s in self.latents_std))
    if len(self.dim_mult) < 1 or min(self.dim_mult) < 1:
      raise ValueError(f"WanVAEConfig: dim_mult must be positive ints, got {self.dim_mult}")
    if len(self.temperal_downsample) != len(self.dim_mult) - 1:
      raise ValueError(f"WanVAEConfig: temperal_downsample needs len(dim_mult) − 1 = {len(self.dim_mult) - 1} "
                       f"entries, got {self.temperal_downsample}")

  @property
  def spatial_factor(self) -> int:
    """Video pixels per latent cell along H and W (8)."""
    return 2 ** (len(self.dim_mult) - 1)

  @property
  def temporal_factor(self) -> int:
    """Video frames per latent frame after the first (4)."""
    return 2 ** sum(self.temperal_downsample)

  @classmethod
  def from_diffusers(cls, config: Mapping[str, Any], **overrides) -> "WanVAEConfig":
    """From diffusers' ``AutoencoderKLWan`` config (``vae/config.json`` or ``vae.config``).

    Raises:
      ValueError: a Wan 2.2 or otherwise unsupported setting (``is_residual``, ``patch_size``,
        ``decoder_base_dim`` ≠ ``base_dim``, ``attn_scales``, channels ≠ 3), naming the field.
    """
    supported = {"is_residual": False, "patch_size": None, "attn_scales": [], "in_channels": 3, "out_channels": 3}
    for key, ok in supported.items():
      if key in config and (list(config[key]) if isinstance(config[key], tuple) else config[key]) != ok:
        raise ValueError(f"WanVAEConfig.from_diffusers: {key}={config[key]!r} is not supported (Wan 2.1 VAE: {ok!r})")
    if config.get("decoder_base_dim") not in (None, config.get("base_dim", cls.base_dim)):
      raise ValueError(f"WanVAEConfig.from_diffusers: decoder_base_dim={config['decoder_base_dim']} differs from "
                       f"base_dim={config.get('base_dim', cls.base_dim)}; the Wan 2.1 VAE has one base_dim")
    fields = {f.name for f in dataclasses.fields(cls)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k in fields}
    kw.update(overrides)
    return cls(**kw)


@dataclasses.dataclass(frozen=True)
class Tiling:
  """Spatial tiling (diffusers ``enable_tiling`` semantics, in video pixels).

  A frame larger than ``min_height × min_width`` is cut into tiles of that size every
  ``stride_height`` / ``stride_width`` pixels; neighbouring tiles' overlaps are blended linearly.
  Defaults are diffusers' (256, 256, 192, 192). All four must be multiples of the spatial factor.
  """

  min_height: int = 256
  min_width: int = 256
  stride_height: int = 192
  stride_width: int = 192


def normalize_latents(latents: Array, config: WanVAEConfig) -> jax.Array:
  """``(z − latents_mean) / latents_std`` per channel (what Wan's DiT is trained on).

  Args:
    latents: ``(..., z_dim)`` VAE latents (the encoder's mean).
    config: supplies the statistics.

  Raises:
    ValueError: the statistics do not have ``z_dim`` entries or the last axis is not ``z_dim``.
  """
  mean, std = _latent_stats(latents, config)
  return (jnp.asarray(latents, jnp.float32) - mean) / std


def denormalize_latents(latents: Array, config: WanVAEConfig) -> jax.Array:
  """Inverse of :func:`normalize_latents`: ``z·latents_std + latents_mean``."""
  mean, std = _latent_stats(latents, config)
  return jnp.asarray(latents, jnp.float32) * std + mean


def _latent_stats(latents, config):
  if len(config.latents_mean) != config.z_dim or len(config.latents_std) != config.z_dim:
    raise ValueError(f"WanVAEConfig: latents_mean/latents_std have {len(config.latents_mean)}/"
                     f"{len(config.latents_std)} entries, z_dim is {config.z_dim}")
  if np.shape(latents)[-1] != config.z_dim:
    raise ValueError(f"latents: last axis must be z_dim={config.z_dim}, got shape {np.shape(latents)}")
  return jnp.asarray(config.latents_mean, jnp.float32), jnp.asarray(config.latents_std, jnp.float32)


# ----------------------------------------------------------------------------------------------- layers


class RMSNorm(nn.Module):
  """``x / max(‖x‖₂, 1e-12) · √C · γ`` over channels (diffusers ``WanRMS_norm``, no bias), in float32."""

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    gamma = self.param("gamma", nn.initializers.ones, (c,))
    xf = x.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(jnp.square(xf), axis=-1, keepdims=True))
    return (xf / jnp.maximum(norm, 1e-12) * (c ** 0.5) * gamma).astype(x.dtype)


def _conv(x, kernel, bias, strides, padding, dtype):
  nd = kernel.ndim - 2
  spec = ("NDHWC", "DHWIO", "NDHWC") if nd == 3 else ("NHWC", "HWIO", "NHWC")
  y = jax.lax.conv_general_dilated(x.astype(dtype), kernel.astype(dtype), strides, padding, dimension_numbers=spec)
  return y + bias.astype(dtype)


class CausalConv3d(nn.Module):
  """3D convolution, causal in time, spatial 'same' padding (diffusers ``WanCausalConv3d``).

  With ``causal`` and a temporal kernel ``kt > 1`` the input is prefixed with ``kt − 1`` cached
  frames (zeros for the first chunk) and the last ``kt − 1`` frames of that prefixed input are
  returned as the next cache. ``causal=False`` convolves the given frames only (valid in time),
  with temporal stride ``stride_t``. Input/output ``(B, T, H, W, C)``.
  """

  features: int
  kernel_size: tuple[int, int, int] = (3, 3, 3)
  stride_t: int = 1
  causal: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cache=None):
    kt, kh, kw = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (kt, kh, kw, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    new_cache = None
    if self.causal and kt > 1:
      if cache is None:
        cache = jnp.zeros(x.shape[:1] + (kt - 1,) + x.shape[2:], x.dtype)
      x = jnp.concatenate([cache.astype(x.dtype), x], axis=1)
      new_cache = x[:, -(kt - 1):]
    y = _conv(x, kernel, bias, (self.stride_t, 1, 1), ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)), self.dtype)
    return y, new_cache


class Conv2d(nn.Module):
  """Per-frame 2D convolution of ``(B, T, H, W, C)`` (diffusers ``nn.Conv2d`` inside the VAE)."""

  features: int
  kernel_size: int = 3
  stride: int = 1
  padding: Sequence[tuple[int, int]] = ((1, 1), (1, 1))
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    b, t = x.shape[:2]
    y = _conv(x.reshape((b * t,) + x.shape[2:]), kernel, bias, (self.stride,) * 2, tuple(self.padding), self.dtype)
    return y.reshape((b, t) + y.shape[1:])


class ResidualBlock(nn.Module):
  """RMSNorm → SiLU → causal conv → RMSNorm → SiLU → causal conv, plus a 1×1×1 shortcut if widths differ."""

  out_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cache=None):
    cache = cache or {}
    h = x
    if x.shape[-1] != self.out_dim:
      h, _ = CausalConv3d(self.out_dim, (1, 1, 1), dtype=self.dtype, name="conv_shortcut")(x)
    x = nn.silu(RMSNorm(name="norm1")(x))
    x, c1 = CausalConv3d(self.out_dim, dtype=self.dtype, name="conv1")(x, cache.get("conv1"))
    x = nn.silu(RMSNorm(name="norm2")(x))
    x, c2 = CausalConv3d(self.out_dim, dtype=self.dtype, name="conv2")(x, cache.get("conv2"))
    return x + h, {"conv1": c1, "conv2": c2}


class AttentionBlock(nn.Module):
  """Single-head spatial self-attention within each frame, residual (diffusers ``WanAttentionBlock``)."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, t, h, w, c = x.shape
    y = RMSNorm(name="norm")(x)
    qkv = Conv2d(3 * c, 1, padding=((0, 0), (0, 0)), dtype=self.dtype, name="to_qkv")(y)
    q, k, v = (a.reshape(b * t, h * w, 1, c) for a in jnp.split(qkv, 3, axis=-1))
    y = jax.nn.dot_product_attention(q, k, v).reshape(b, t, h, w, c)
    y = Conv2d(c, 1, padding=((0, 0), (0, 0)), dtype=self.dtype, name="proj")(y)
    return x + y


class Resample(nn.Module):
  """Spatial ×2 / ÷2 with an optional temporal ×2 / ÷2 (diffusers ``WanResample``).

  ``mode``: ``upsample2d`` / ``upsample3d`` (nearest ×2, 3×3 conv to ``out_dim``; 3d first doubles
  time with a causal (3, 1, 1) conv to ``2·dim`` channels, interleaved) or ``downsample2d`` /
  ``downsample3d`` (pad right/bottom by 1, 3×3 conv stride 2; 3d then halves time with a (3, 1, 1)
  stride-2 conv over [cached last frame, chunk]). ``cache=None`` marks the first chunk, whose
  first frame the temporal layer passes through.
  """

  mode: str
  out_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cache=None):
    dim = x.shape[-1]
    new_cache = None
    if self.mode == "upsample3d":
      time_conv = CausalConv3d(2 * dim, (3, 1, 1), dtype=self.dtype, name="time_conv")
      if cache is None:                     # first latent frame: passed through, zero context after it
        new_cache = jnp.zeros(x.shape[:1] + (_CACHE_T,) + x.shape[2:], x.dtype)
        if self.is_initializing():
          time_conv(x)
      else:
        y, new_cache = time_conv(x, cache)
        b, t = y.shape[:2]
        y = y.reshape(y.shape[:4] + (2, dim))                        # channel halves = frames 2i, 2i + 1
        x = jnp.moveaxis(y, 4, 2).reshape((b, 2 * t) + y.shape[2:4] + (dim,))
    if self.mode in ("upsample2d", "upsample3d"):
      x = jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)           # nearest-exact ×2
      return Conv2d(self.out_dim, 3, dtype=self.dtype, name="resample")(x), new_cache
    if self.mode not in ("downsample2d", "downsample3d"):
      raise ValueError(f"Resample: unknown mode {self.mode!r}")
    x = Conv2d(dim, 3, 2, ((0, 1), (0, 1)), self.dtype, name="resample")(x)
    if self.mode == "downsample3d":
      time_conv = CausalConv3d(dim, (3, 1, 1), stride_t=2, causal=False, dtype=self.dtype, name="time_conv")
      new_cache = x[:, -1:]
      if cache is None:                     # first frame: passed through
        if self.is_initializing():
          time_conv(jnp.concatenate([x[:, :1]] * 3, axis=1))
      else:
        x, _ = time_conv(jnp.concatenate([cache.astype(x.dtype), x], axis=1))
    return x, new_cache


class MidBlock(nn.Module):
  """Residual block, attention, residual block (diffusers ``WanMidBlock``)."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cache=None):
    cache = cache or {}
    dim = x.shape[-1]
    x, c0 = ResidualBlock(dim, self.dtype, name="resnets_0")(x, cache.get("resnets_0"))
    x = AttentionBlock(self.dtype, name="attentions_0")(x)
    x, c1 = ResidualBlock(dim, self.dtype, name="resnets_1")(x, cache.get("resnets_1"))
    return x, {"resnets_0": c0, "resnets_1": c1}


def _encoder_layout(config: WanVAEConfig) -> list[tuple[str, int]]:
  """diffusers ``WanEncoder3d.down_blocks`` as ``(kind, out_dim)``: ``res`` or a resample mode."""
  dims = [config.base_dim * m for m in (1,) + config.dim_mult]
  layout = []
  for i, out_dim in enumerate(dims[1:]):
    layout += [("res", out_dim)] * config.num_res_blocks
    if i != len(config.dim_mult) - 1:
      layout.append(("downsample3d" if config.temperal_downsample[i] else "downsample2d", out_dim))
  return layout


def _decoder_layout(config: WanVAEConfig) -> list[tuple[int, str | None]]:
  """diffusers ``WanDecoder3d.up_blocks`` as ``(out_dim, upsample mode or None)``."""
  mult = config.dim_mult
  dims = [config.base_dim * m for m in (mult[-1],) + mult[::-1]]
  up = config.temperal_downsample[::-1]
  return [(out_dim, None if i == len(mult) - 1 else ("upsample3d" if up[i] else "upsample2d"))
          for i, out_dim in enumerate(dims[1:])]


class Encoder3d(nn.Module):
  """diffusers ``WanEncoder3d``: one chunk of frames ``(B, t, H, W, 3)`` → ``(B, t', H/8, W/8, 2·z)``."""

  config: WanVAEConfig

  @nn.compact
  def __call__(self, x, cache=None):
    cfg, dt = self.config, self.config.dtype
    cache = cache or {}   # empty: the first chunk (zero context, first-frame rules of the resamplers)
    new = {}
    x, new["conv_in"] = CausalConv3d(cfg.base_dim, dtype=dt, name="conv_in")(x, cache.get("conv_in"))
    for i, (kind, out_dim) in enumerate(_encoder_layout(cfg)):
      name = f"down_blocks_{i}"
      if kind == "res":
        x, new[name] = ResidualBlock(out_dim, dt, name=name)(x, cache.get(name))
      else:
        x, new[name] = Resample(kind, out_dim, dt, name=name)(x, cache.get(name))
    x, new["mid_block"] = MidBlock(dt, name="mid_block")(x, cache.get("mid_block"))
    x = nn.silu(RMSNorm(name="norm_out")(x))
    x, new["conv_out"] = CausalConv3d(2 * cfg.z_dim, dtype=dt, name="conv_out")(x, cache.get("conv_out"))
    return x, new


class UpBlock(nn.Module):
  """diffusers ``WanUpBlock``: ``num_res_blocks + 1`` residual blocks, then an optional upsampler."""

  out_dim: int
  num_res_blocks: int
  upsample_mode: str | None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cache=None):
    cache = cache or {}
    new = {}
    for j in range(self.num_res_blocks + 1):
      x, new[f"resnets_{j}"] = ResidualBlock(self.out_dim, self.dtype, name=f"resnets_{j}")(x, cache.get(f"resnets_{j}"))
    if self.upsample_mode is not None:
      # Wan 2.1: the upsampler halves the channels (the next block's input is out_dim // 2).
      x, new["upsampler"] = Resample(self.upsample_mode, self.out_dim // 2, self.dtype, name="upsampler")(
          x, cache.get("upsampler"))
    return x, new


class Decoder3d(nn.Module):
  """diffusers ``WanDecoder3d``: one latent chunk ``(B, t, h, w, z)`` → video frames ``(B, t', 8h, 8w, 3)``."""

  config: WanVAEConfig

  @nn.compact
  def __call__(self, x, cache=None):
    cfg, dt = self.config, self.config.dtype
    cache = cache or {}   # empty: the first latent frame
    new = {}
    top = cfg.base_dim * cfg.dim_mult[-1]
    x, new["conv_in"] = CausalConv3d(top, dtype=dt, name="conv_in")(x, cache.get("conv_in"))
    x, new["mid_block"] = MidBlock(dt, name="mid_block")(x, cache.get("mid_block"))
    for i, (out_dim, mode) in enumerate(_decoder_layout(cfg)):
      name = f"up_blocks_{i}"
      x, new[name] = UpBlock(out_dim, cfg.num_res_blocks, mode, dt, name=name)(x, cache.get(name))
    x = nn.silu(RMSNorm(name="norm_out")(x))
    x, new["conv_out"] = CausalConv3d(3, dtype=dt, name="conv_out")(x, cache.get("conv_out"))
    return x, new


# ------------------------------------------------------------------------------------------- the model


def _scan_chunks(module_fn, module, cache, chunks):
  """Runs ``module_fn(module, chunk, cache) → (out, cache)`` over ``chunks`` ``(n, B, …)`` with ``nn.scan``."""
  def body(mdl, carry, chunk):
    out, carry = module_fn(mdl, chunk, carry)
    return carry, out
  scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0)
  _, outs = scan(module, cache, chunks)
  return outs


class WanVAE(nn.Module):
  """The Wan2.1 VAE (diffusers ``AutoencoderKLWan``, Wan 2.1 settings), channels-last.

  Methods (``module.apply({"params": params}, x, method=...)``):

  - ``encode(video, tiling=None) → (mean, logvar)``: video ``(B, T, H, W, 3)`` float in ``[−1, 1]``,
    ``T = 1 + 4k``, ``H`` and ``W`` multiples of 8 → two ``(B, 1 + k, H/8, W/8, z_dim)`` float32
    arrays; ``mean`` equals diffusers' ``encode(x).latent_dist.mean`` and ``logvar`` its
    ``latent_dist.logvar`` (clamped to ``[−30, 20]``).
  - ``decode(latents, tiling=None) → video``: ``(B, F, h, w, z_dim)`` → ``(B, 1 + 4(F − 1), 8h, 8w, 3)``
    float32 clamped to ``[−1, 1]`` (diffusers ``decode(z).sample``).
  - ``__call__(video)``: ``decode(encode(video).mean)`` (used to initialise every parameter).

  Raises ``ValueError`` for a wrong rank, channel count, frame count or frame size, naming the
  argument, the shape received and the shape expected, and, when called eagerly (concrete
  arrays, not under ``jit``), for non-finite values.
  """

  config: WanVAEConfig = WanVAEConfig()

  def setup(self):
    dt = self.config.dtype
    self.encoder = Encoder3d(self.config)
    self.decoder = Decoder3d(self.config)
    self.quant_conv = CausalConv3d(2 * self.config.z_dim, (1, 1, 1), dtype=dt)
    self.post_quant_conv = CausalConv3d(self.config.z_dim, (1, 1, 1), dtype=dt)

  def _check(self, x, name, channels, time_rule):
    cfg = self.config
    s = cfg.spatial_factor if name == "video" else 1
    if x.ndim != 5 or x.shape[-1] != channels:
      raise ValueError(f"WanVAE: {name} must be (B, T, H, W, {channels}), got shape {tuple(x.shape)}")
    if time_rule and (x.shape[1] - 1) % cfg.temporal_factor:
      t = x.shape[1]
      raise ValueError(f"WanVAE: {name} must have T = 1 + {cfg.temporal_factor}k frames, got T={t} "
                       f"(shape {tuple(x.shape)}; nearest valid: {1 + (t - 1) // cfg.temporal_factor * cfg.temporal_factor})")
    if x.shape[2] % s or x.shape[3] % s:
      raise ValueError(f"WanVAE: {name} height and width must be multiples of {s}, got {x.shape[2]}×{x.shape[3]} "
                       f"(shape {tuple(x.shape)})")
    if not isinstance(x, jax.core.Tracer):   # concrete input (eager apply): check the values too
      bad = int(np.size(x) - np.count_nonzero(np.isfinite(np.asarray(x))))
      if bad:
        raise ValueError(f"WanVAE: {name} has {bad} non-finite values (shape {tuple(x.shape)})")

  def __call__(self, video):
    mean, _ = self.encode(video)
    return self.decode(mean)

  # -- encoder

  def encode(self, video: Array, tiling: Tiling | None = None) -> tuple[jax.Array, jax.Array]:
    cfg = self.config
    self._check(video, "video", 3, True)
    h, w = video.shape[2:4]
    if tiling is not None and (h > tiling.min_height or w > tiling.min_width):
      moments = self._tiled(video, tiling, self._encode_moments, cfg.spatial_factor, downscale=True)
    else:
      moments = self._encode_moments(video)
    mean, logvar = jnp.split(moments.astype(jnp.float32), 2, axis=-1)
    return mean, jnp.clip(logvar, -30.0, 20.0)

  def _encode_moments(self, video):
    cfg = self.config
    x = jnp.asarray(video, cfg.dtype)
    out, cache = self.encoder(x[:, :1])
    outs = [out]
    k = (x.shape[1] - 1) // cfg.temporal_factor
    if k:
      chunks = jnp.moveaxis(x[:, 1:].reshape((x.shape[0], k, cfg.temporal_factor) + x.shape[2:]), 1, 0)
      ys = _scan_chunks(lambda m, c, cc: m.encoder(c, cc), self, cache, chunks)   # (k, B, 1, h, w, 2z)
      outs.append(jnp.moveaxis(ys, 0, 1).reshape((x.shape[0], -1) + ys.shape[3:]))
    moments, _ = self.quant_conv(jnp.concatenate(outs, axis=1))
    return moments

  # -- decoder

  def decode(self, latents: Array, tiling: Tiling | None = None) -> jax.Array:
    cfg = self.config
    self._check(latents, "latents", cfg.z_dim, False)
    h, w = latents.shape[2:4]
    s = cfg.spatial_factor
    if tiling is not None and (h > tiling.min_height // s or w > tiling.min_width // s):
      video = self._tiled(latents, tiling, self._decode_frames, s, downscale=False)
    else:
      video = self._decode_frames(latents)
    return jnp.clip(video.astype(jnp.float32), -1.0, 1.0)

  def _decode_frames(self, latents):
    z, _ = self.post_quant_conv(jnp.asarray(latents, self.config.dtype))
    out, cache = self.decoder(z[:, :1])
    outs = [out]
    if z.shape[1] > 1:
      ys = _scan_chunks(lambda m, c, cc: m.decoder(c, cc), self, cache, jnp.moveaxis(z[:, 1:, None], 1, 0))
      outs.append(jnp.moveaxis(ys, 0, 1).reshape((z.shape[0], -1) + ys.shape[3:]))
    return jnp.concatenate(outs, axis=1)

  # -- tiling (diffusers tiled_encode / tiled_decode)

  def _tiled(self, x, tiling: Tiling, fn, s: int, downscale: bool):
    """Applies ``fn`` to overlapping spatial tiles of ``x`` and blends them (diffusers' tile grid).

    ``downscale`` (encode): ``x`` is a video, tiles are in pixels and outputs in latent cells;
    otherwise (decode) ``x`` is latents, tiles are in latent cells and outputs in pixels.
    """
    for name in ("min_height", "min_width", "stride_height", "stride_width"):
      v = getattr(tiling, name)
      if v < s or v % s:
        raise ValueError(f"Tiling.{name}={v}: must be a positive multiple of the spatial factor {s}")
    if tiling.stride_height > tiling.min_height or tiling.stride_width > tiling.min_width:
      raise ValueError(f"Tiling: strides {tiling.stride_height}×{tiling.stride_width} exceed the tile "
                       f"{tiling.min_height}×{tiling.min_width}")
    h, w = x.shape[2:4]
    if downscale:   # input pixels → output cells
      in_tile, in_stride = (tiling.min_height, tiling.min_width), (tiling.stride_height, tiling.stride_width)
      out_stride = (tiling.stride_height // s, tiling.stride_width // s)
      blend = (tiling.min_height // s - out_stride[0], tiling.min_width // s - out_stride[1])
      out_size = (h // s, w // s)
    else:           # input cells → output pixels
      in_tile = (tiling.min_height // s, tiling.min_width // s)
      in_stride = (tiling.stride_height // s, tiling.stride_width // s)
      out_stride = (tiling.stride_height, tiling.stride_width)
      blend = (tiling.min_height - tiling.stride_height, tiling.min_width - tiling.stride_width)
      out_size = (h * s, w * s)
    rows = [[fn(x[:, :, i:i + in_tile[0], j:j + in_tile[1]]) for j in range(0, w, in_stride[1])]
            for i in range(0, h, in_stride[0])]
    result = []
    for i, row in enumerate(rows):
      line = []
      for j, tile in enumerate(row):
        if i > 0:
          tile = _blend(rows[i - 1][j], tile, blend[0], axis=2)
        if j > 0:
          tile = _blend(row[j - 1], tile, blend[1], axis=3)
        row[j] = tile   # diffusers blends in place: the next tile blends against the blended one
        line.append(tile[:, :, :out_stride[0], :out_stride[1]])
      result.append(jnp.concatenate(line, axis=3))
    return jnp.concatenate(result, axis=2)[:, :, :out_size[0], :out_size[1]]


def _blend(a, b, extent, axis):
  """Linear cross-fade of the first ``extent`` rows/cols of ``b`` with the last ones of ``a``."""
  extent = min(a.shape[axis], b.shape[axis], extent)
  if extent <= 0:
    return b
  ramp = jnp.arange(extent, dtype=jnp.float32) / extent
  shape = [1] * b.ndim
  shape[axis] = extent
  ramp = ramp.reshape(shape).astype(b.dtype)
  a_tail = jax.lax.slice_in_dim(a, a.shape[axis] - extent, a.shape[axis], axis=axis)
  b_head = jax.lax.slice_in_dim(b, 0, extent, axis=axis)
  mixed = a_tail * (1 - ramp) + b_head * ramp
  return jnp.concatenate([mixed, jax.lax.slice_in_dim(b, extent, b.shape[axis], axis=axis)], axis=axis)


class WanVAEAutoencoder:
  """The project's autoencoder interface over a frozen :class:`WanVAE` (like ``PixelAutoencoder``).

  ``encode``: uint8 video ``(B, T, H, W, 3)`` → normalised latents ``(B, 1 + (T − 1)/4, H/8, W/8,
  z_dim)`` float32 (the posterior mean, then :func:`normalize_latents`; what Wan's DiT trains on).
  ``decode``: normalised latents → uint8 video. Both run a jitted function that takes the VAE
  params as an argument, eagerly. They refuse to be traced inside another ``jit``: that would bake
  the weights (127 M parameters for Wan2.1) into the program as constants. A training step gets its
  latents in the batch instead (``{reference,target}_latents``, from the latent cache or encoded by
  the input iterator; ``training.tasks``).

  Args:
    config: the VAE architecture and latent statistics.
    load_params: returns the params when first needed (weights are read lazily, so shapes and
      factors are available without loading them).
    tiling: optional spatial tiling for large frames.
  """

  def __init__(self, config: WanVAEConfig, load_params, tiling: Tiling | None = None, source: str = "<random>"):
    if len(config.latents_mean) != config.z_dim or len(config.latents_std) != config.z_dim:
      raise ValueError(f"Wan VAE {source}: z_dim is {config.z_dim} but its config has {len(config.latents_mean)} "
                       f"latents_mean and {len(config.latents_std)} latents_std values; latent normalisation needs "
                       "z_dim of each (set them in the VAE's config.json or in config.autoencoder.vae)")
    self.config = config
    self.module = WanVAE(config)
    self.tiling = tiling
    self.source = source
    self._load_params = load_params
    self._params = None
    self._encode = jax.jit(lambda p, v: self.module.apply({"params": p}, v, self.tiling, method="encode")[0])
    self._decode = jax.jit(lambda p, z: self.module.apply({"params": p}, z, self.tiling, method="decode"))

  @property
  def params(self):
    if self._params is None:
      self._params = self._load_params()
    return self._params

  @property
  def temporal_factor(self) -> int:
    return self.config.temporal_factor

  @property
  def spatial_factor(self) -> int:
    return self.config.spatial_factor

  @property
  def latent_channels(self) -> int:
    return self.config.z_dim

  def latent_shape(self, video_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Latent shape of a ``(B, T, H, W, 3)`` video; raises ``ValueError`` as :meth:`encode` would."""
    k, s = self.temporal_factor, self.spatial_factor
    if len(video_shape) != 5 or video_shape[-1] != 3:
      raise ValueError(f"WanVAEAutoencoder: video must be (B, T, H, W, 3), got shape {tuple(video_shape)}")
    b, t, h, w, _ = video_shape
    if (t - 1) % k or h % s or w % s:
      raise ValueError(f"WanVAEAutoencoder: video needs T = 1 + {k}k frames and H, W multiples of {s}, "
                       f"got shape {tuple(video_shape)}")
    return (b, 1 + (t - 1) // k, h // s, w // s, self.config.z_dim)

  def _refuse_tracing(self, x, what):
    if isinstance(x, jax.core.Tracer):
      raise ValueError(f"WanVAEAutoencoder.{what} called inside a traced (jitted) function: the VAE weights would "
                       "become constants of that program. Pass reference_latents / target_latents in the batch.")

  def encode(self, video: Array) -> jax.Array:
    """uint8 video → normalised latents (see the class doc). Raises ``ValueError`` on bad shape/dtype."""
    self._refuse_tracing(video, "encode")
    self.latent_shape(np.shape(video))
    if np.dtype(video.dtype) != np.uint8:
      raise ValueError(f"WanVAEAutoencoder.encode: video must be uint8, got dtype {video.dtype}")
    x = jnp.asarray(video, jnp.float32) / 127.5 - 1.0
    return normalize_latents(self._encode(self.params, x), self.config)

  def decode(self, latents: Array) -> jax.Array:
    """Normalised latents ``(B, F, h, w, z_dim)`` → uint8 video ``(B, 1 + 4(F − 1), 8h, 8w, 3)``.

    Raises:
      ValueError: wrong shape, or non-finite latents (naming how many).
    """
    self._refuse_tracing(latents, "decode")
    if np.ndim(latents) != 5 or np.shape(latents)[-1] != self.config.z_dim:
      raise ValueError(f"WanVAEAutoencoder.decode: latents must be (B, F, h, w, {self.config.z_dim}), "
                       f"got shape {np.shape(latents)}")
    bad = int(np.size(latents) - np.isfinite(np.asarray(latents)).sum())
    if bad:
      raise ValueError(f"WanVAEAutoencoder.decode: latents have {bad} non-finite values")
    video = self._decode(self.params, denormalize_latents(latents, self.config))
    return jnp.round((video + 1.0) * 127.5).astype(jnp.uint8)
