"""Camera conditioning of the novel-view DiT: ReCamMaster pose features and Plücker patch tokens.

Both encodings first re-express every camera relative to the reference camera at frame 0
(``c2w_rel = inv(c2w_ref[0]) @ c2w``, docs/design.md §3), an idempotent step when the caller already
did it. Camera arrays are per *video* frame: ``Tc = F · frames_per_latent`` frames for ``F``
latent frames (for a Wan VAE the first RGB frame is repeated 3 times, 81 → 84 frames, so that
every latent frame covers 4 consecutive entries; docs/design.md §4.2 — ``pack_causal_camera_frames``
does this, and ``WanDiT`` applies it to the causal count ``1 + k·(F − 1)``).

- **ReCamMaster** (arXiv 2503.11647; ``train_recammaster.py`` / ``diffsynth/models/wan_video_dit.py``
  in KwaiVGI/ReCamMaster): one 12-vector per latent frame, the top 3×4 rows of the target
  camera's relative pose, flattened row-major. ReCamMaster samples RGB frames 0, 4, …, 80; in the
  84-frame packed layout these are the *last* entry of each group of ``frames_per_latent``
  (entry ``4k + 3`` holds RGB frame ``4k``), which is what ``recammaster_pose_features`` takes.
  Intrinsics are not used. Each block maps the 12-vector with its own zero-initialised
  ``Linear(12→dim)`` (``cam_encoder``); the wiring lives in ``mvtrack_jax.models.wan``.
- **Plücker** (MVTrack4Gen's improved encoding; ray maps as in CameraCtrl/ReDirector): per view,
  Plücker rays ``[o × d, d]`` sampled at the *latent-grid* resolution (intrinsics scaled by
  ``1/vae_stride``, so each sample sits at the centre of its latent cell), the
  ``frames_per_latent`` frames of one latent frame packed along channels (frame-major:
  channel ``6·j + c`` is ray channel ``c`` of the ``j``-th frame of the group), then
  ``PluckerPatchEncoder``: a Conv with kernel = stride = the DiT patch → ``dim``, plus a residual
  SiLU MLP → one ``dim`` vector per token. Reference tokens get the reference camera's rays,
  target tokens the target camera's.
- **ReDirector / Wan2.1-Fun control camera** (arXiv 2511.19827; ``byeongjun-park/ReDirector``,
  DiffSynth ``SimpleAdapter``; docs/design.md §4.2b): Plücker rays at the *full pixel* resolution
  (``plucker_pixel_maps``), packed ray-channel-major (channel ``fpl·c + j`` is ray channel ``c``
  of frame ``j`` of the group, einops ``b c (f k) h w -> b (c k) f h w``: 24 channels for Wan),
  then per video-latent frame ``ControlAdapter``: PixelUnshuffle(``vae_stride``) → Conv2d with
  kernel = stride = the DiT's spatial patch → one residual block (3×3 conv, ReLU, 3×3 conv,
  + skip). Its output ``cam_emb`` (one ``dim`` vector per token, each view with its own cameras) is
  added to the patch embeddings and drives RoCE in every block (``models.wan``).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from mvtrack_jax.geometry import plucker_rays, relative_to_reference, scale_intrinsics


def _check_cameras(name: str, array: Any, trailing: tuple[int, int], batch: int | None, frames: int | None):
  shape = tuple(array.shape)
  expected = (batch if batch is not None else "B", frames if frames is not None else "Tc") + trailing
  ok = len(shape) == 4 and shape[2:] == trailing
  ok = ok and (batch is None or shape[0] == batch) and (frames is None or shape[1] == frames)
  if not ok:
    raise ValueError(f"cameras[{name!r}]: expected shape {expected}, got {shape}")


def pack_causal_camera_frames(cameras: dict[str, Any], num_latent_frames: int,
                              frames_per_latent: int) -> dict[str, Any]:
  """Repeats frame 0 of per-video-frame cameras for a causal (Wan) VAE's packing.

  A causal video VAE maps ``T = 1 + k·(F − 1)`` frames to ``F`` latent frames (Wan: 81 → 21 with
  ``k = 4``): latent frame 0 holds RGB frame 0 alone. The camera encoders take ``F·k`` entries,
  so, as ReDirector does, frame 0 is repeated ``k − 1`` more times in front (81 → 84). Arrays that
  already have ``F·k`` frames (or any other count, which the DiT then rejects with a shape error)
  are returned unchanged; ``k = 1`` is a no-op.

  Args:
    cameras: ``{name: (B, T, …)}`` per-frame camera arrays.
    num_latent_frames: ``F``.
    frames_per_latent: ``k``.

  Returns:
    A new dict with ``(B, F·k, …)`` arrays where the input had ``T = 1 + k·(F − 1)``.
  """
  k = frames_per_latent
  causal = 1 + k * (num_latent_frames - 1)
  out = {}
  for name, value in cameras.items():
    if k > 1 and value.shape[1] == causal:
      value = jnp.concatenate([jnp.repeat(value[:, :1], k - 1, axis=1), value], axis=1)
    out[name] = value
  return out


def relative_cameras(cam_to_world: jnp.ndarray, reference_cam_to_world: jnp.ndarray) -> jnp.ndarray:
  """Poses ``(B, T, 4, 4)`` relative to the reference camera at frame 0 (``reference_cam_to_world[:, 0]``)."""
  return relative_to_reference(jnp.asarray(cam_to_world, jnp.float32),
                               jnp.asarray(reference_cam_to_world, jnp.float32)[:, :1])


def recammaster_pose_features(target_cam_to_world: jnp.ndarray, reference_cam_to_world: jnp.ndarray,
                              frames_per_latent: int) -> jnp.ndarray:
  """ReCamMaster's per-latent-frame camera input: relative target pose ``[R | t]`` flattened.

  Args:
    target_cam_to_world: ``(B, Tc, 4, 4)`` OpenCV camera-to-world poses of the target view
      (metres), ``Tc = F · frames_per_latent``.
    reference_cam_to_world: ``(B, Tc, 4, 4)`` reference-view poses; only frame 0 is used.
    frames_per_latent: video frames per latent frame (4 for the Wan VAE).

  Returns:
    ``(B, F, 12)`` float32: row-major top 3×4 of ``inv(c2w_ref[0]) @ c2w_tgt`` at the last video
    frame of every latent frame (RGB frames 0, 4, …, 80 in Wan's 81 → 84 packed layout).

  Raises:
    ValueError: when shapes are not ``(B, Tc, 4, 4)`` or ``Tc`` is not a multiple of
      ``frames_per_latent``.
  """
  _check_cameras("target_cam_to_world", target_cam_to_world, (4, 4), None, None)
  batch, frames = target_cam_to_world.shape[:2]
  _check_cameras("reference_cam_to_world", reference_cam_to_world, (4, 4), batch, None)
  if frames % frames_per_latent:
    raise ValueError(f"recammaster_pose_features: camera frame count {frames} is not a multiple of "
                     f"frames_per_latent={frames_per_latent}")
  rel = relative_cameras(target_cam_to_world, reference_cam_to_world)
  rel = rel[:, frames_per_latent - 1::frames_per_latent, :3, :]
  return rel.reshape(batch, frames // frames_per_latent, 12)


def plucker_latent_maps(intrinsics: jnp.ndarray, cam_to_world: jnp.ndarray, reference_cam_to_world: jnp.ndarray,
                        latent_height: int, latent_width: int, vae_stride: int,
                        frames_per_latent: int) -> jnp.ndarray:
  """Plücker ray maps of one view at the latent resolution, frames of a latent frame packed.

  Args:
    intrinsics: ``(B, Tc, 3, 3)`` pixel intrinsics of the video (size
      ``(latent_height·vae_stride, latent_width·vae_stride)``).
    cam_to_world: ``(B, Tc, 4, 4)`` OpenCV camera-to-world poses of this view (metres).
    reference_cam_to_world: ``(B, Tc', 4, 4)`` reference-view poses; frame 0 defines the frame.
    latent_height, latent_width: latent grid size ``(H, W)``.
    vae_stride: video pixels per latent cell.
    frames_per_latent: video frames per latent frame.

  Returns:
    ``(B, F, H, W, 6·frames_per_latent)`` float32, ``F = Tc / frames_per_latent``; channel
    ``6·j + c`` is Plücker channel ``c`` (``[o × d, d]``) of frame ``j`` of the group, rays through
    the centres of the latent cells, relative to the reference camera at frame 0.

  Raises:
    ValueError: on shape mismatches or when ``Tc`` is not a multiple of ``frames_per_latent``.
  """
  rays = _grouped_rays("plucker_latent_maps", scale_intrinsics(jnp.asarray(intrinsics, jnp.float32),
                                                                1.0 / vae_stride, 1.0 / vae_stride),
                       cam_to_world, reference_cam_to_world, latent_height, latent_width, frames_per_latent)
  b, f = rays.shape[:2]
  return jnp.transpose(rays, (0, 1, 3, 4, 2, 5)).reshape(b, f, latent_height, latent_width, 6 * frames_per_latent)


def _grouped_rays(caller: str, intrinsics, cam_to_world, reference_cam_to_world, height: int, width: int,
                  frames_per_latent: int) -> jnp.ndarray:
  """Validated per-frame Plücker rays relative to the reference camera at frame 0, grouped by latent
  frame: ``(B, F, frames_per_latent, height, width, 6)``."""
  _check_cameras("intrinsics", intrinsics, (3, 3), None, None)
  batch, frames = intrinsics.shape[:2]
  _check_cameras("cam_to_world", cam_to_world, (4, 4), batch, frames)
  _check_cameras("reference_cam_to_world", reference_cam_to_world, (4, 4), batch, None)
  if frames % frames_per_latent:
    raise ValueError(f"{caller}: camera frame count {frames} is not a multiple of "
                     f"frames_per_latent={frames_per_latent}")
  rays = plucker_rays(jnp.asarray(intrinsics, jnp.float32), relative_cameras(cam_to_world, reference_cam_to_world),
                      height, width)
  return rays.reshape(batch, frames // frames_per_latent, frames_per_latent, height, width, 6)


def plucker_pixel_maps(intrinsics: jnp.ndarray, cam_to_world: jnp.ndarray, reference_cam_to_world: jnp.ndarray,
                       height: int, width: int, frames_per_latent: int) -> jnp.ndarray:
  """Plücker ray maps of one view at the full pixel resolution, packed as Wan2.1-Fun/ReDirector do.

  Args:
    intrinsics: ``(B, Tc, 3, 3)`` pixel intrinsics of a ``height × width`` video.
    cam_to_world: ``(B, Tc, 4, 4)`` OpenCV camera-to-world poses of this view (metres).
    reference_cam_to_world: ``(B, Tc', 4, 4)`` reference-view poses; frame 0 defines the frame.
    height, width: video size in pixels.
    frames_per_latent: video frames per latent frame ``k``.

  Returns:
    ``(B, F, height, width, 6·k)`` float32, ``F = Tc / k``; channel ``k·c + j`` is Plücker channel
    ``c`` (``[o × d, d]``) of frame ``j`` of the group (ray-channel-major, unlike
    ``plucker_latent_maps``), rays through pixel centres, relative to the reference camera at frame 0.

  Raises:
    ValueError: on shape mismatches or when ``Tc`` is not a multiple of ``frames_per_latent``.
  """
  rays = _grouped_rays("plucker_pixel_maps", intrinsics, cam_to_world, reference_cam_to_world, height, width,
                       frames_per_latent)
  b, f = rays.shape[:2]
  return jnp.transpose(rays, (0, 1, 3, 4, 5, 2)).reshape(b, f, height, width, 6 * frames_per_latent)


def pixel_unshuffle(x: jnp.ndarray, factor: int) -> jnp.ndarray:
  """``torch.nn.PixelUnshuffle`` on channels-last maps: ``(N, H, W, C) → (N, H/r, W/r, C·r²)``.

  Output channel ``c·r² + i·r + j`` holds input channel ``c`` at offset ``(i, j)`` of its ``r × r``
  cell (torch's order, so converted convolution weights apply unchanged).

  Raises:
    ValueError: when ``H`` or ``W`` is not a multiple of ``factor``.
  """
  n, h, w, c = x.shape
  if h % factor or w % factor:
    raise ValueError(f"pixel_unshuffle: map size {(h, w)} is not a multiple of {factor}")
  x = x.reshape(n, h // factor, factor, w // factor, factor, c)
  return jnp.transpose(x, (0, 1, 3, 5, 2, 4)).reshape(n, h // factor, w // factor, c * factor * factor)


class ControlAdapter(nn.Module):
  """Wan2.1-Fun's camera ``SimpleAdapter``: pixel ray maps ``(B, F, H, W, C)`` → ``(B, F·h·w, dim)``.

  Per latent frame: ``pixel_unshuffle(vae_stride)``, ``Conv(dim, kernel = stride = patch)`` (the DiT's
  spatial patch, so output cell ``(i, j)`` is token ``(i, j)``), then ``x + conv2(ReLU(conv1(x)))``
  with 3×3 convolutions, padding 1. Parameter names follow DiffSynth's ``control_adapter.{conv,
  residual_blocks.0.conv1, residual_blocks.0.conv2}`` (``convert.wan_names`` maps them).
  """
  dim: int
  patch: tuple[int, int] = (2, 2)
  vae_stride: int = 8
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, maps: jnp.ndarray) -> jnp.ndarray:
    b, f, h, w, c = maps.shape
    x = pixel_unshuffle(maps.reshape(b * f, h, w, c).astype(self.dtype), self.vae_stride)
    x = _conv(self.dim, self.patch, "VALID", (None, "embed"), "conv", self.dtype, self.param_dtype)(x)
    x = _ResidualBlock(self.dim, self.dtype, self.param_dtype, name="residual_blocks_0")(x)
    return x.reshape(b, -1, self.dim)


def _conv(features, kernel, padding, axes, name, dtype, param_dtype) -> nn.Conv:
  """A 2D convolution (stride = kernel for ``"VALID"``, 1 otherwise) with logical axes ``(in, out)``."""
  return nn.Conv(features, kernel_size=kernel, strides=kernel if padding == "VALID" else (1, 1), padding=padding,
                 dtype=dtype, param_dtype=param_dtype, name=name,
                 kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), (None, None) + axes),
                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (axes[1],)))


class _ResidualBlock(nn.Module):
  """``x + conv2(ReLU(conv1(x)))``, 3×3 convolutions with padding 1 (DiffSynth ``ResidualBlock``)."""
  dim: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    pad = ((1, 1), (1, 1))
    h = nn.relu(_conv(self.dim, (3, 3), pad, ("embed", "mlp"), "conv1", self.dtype, self.param_dtype)(x))
    return x + _conv(self.dim, (3, 3), pad, ("mlp", "embed"), "conv2", self.dtype, self.param_dtype)(h)


class PluckerPatchEncoder(nn.Module):
  """Ray maps ``(B, F, H, W, 6·fpl)`` → one ``dim`` vector per DiT token ``(B, f·h·w, dim)``.

  Conv3d with kernel = stride = ``patch_size`` (the DiT's patchify grid, so token ``(f, i, j)``
  sees exactly the rays of its own latent cells), then ``x + Dense(SiLU(Dense(SiLU(x))))``.
  Parameters carry logical axis names (``embed``/``mlp``).
  """
  dim: int
  patch_size: tuple[int, int, int] = (1, 2, 2)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, maps: jnp.ndarray) -> jnp.ndarray:
    init = nn.initializers.xavier_uniform()
    zeros = nn.initializers.zeros_init()
    x = nn.Conv(self.dim, kernel_size=self.patch_size, strides=self.patch_size, padding="VALID",
                dtype=self.dtype, param_dtype=self.param_dtype,
                kernel_init=nn.with_logical_partitioning(init, (None, None, None, None, "embed")),
                bias_init=nn.with_logical_partitioning(zeros, ("embed",)), name="patch")(maps.astype(self.dtype))
    x = x.reshape(x.shape[0], -1, self.dim)
    h = nn.Dense(self.dim, dtype=self.dtype, param_dtype=self.param_dtype,
                 kernel_init=nn.with_logical_partitioning(init, ("embed", "mlp")),
                 bias_init=nn.with_logical_partitioning(zeros, ("mlp",)), name="fc1")(nn.silu(x))
    h = nn.Dense(self.dim, dtype=self.dtype, param_dtype=self.param_dtype,
                 kernel_init=nn.with_logical_partitioning(init, ("mlp", "embed")),
                 bias_init=nn.with_logical_partitioning(zeros, ("embed",)), name="fc2")(nn.silu(h))
    return x + h
