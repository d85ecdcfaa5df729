"""Pixel-patch autoencoder: the parameter-free stand-in for the Wan VAE, and latent-rate helpers.

The Wan2.1 VAE maps a video ``(B, T, H, W, 3)`` to latents ``(B, 1 + (T − 1)/4, H/8, W/8, 16)``
(temporal factor 4 with a causal first frame, spatial factor 8). Its weights cannot be downloaded
here, so the CPU default uses :class:`PixelAutoencoder`: a lossless (up to uint8 rounding)
space-to-depth of the pixels scaled to ``[−1, 1]``,

  ``(B, T, H, W, 3) uint8 → (B, T, H/p, W/p, 3·p²) float``  (temporal factor 1, spatial factor p),

channel order ``(p_row, p_col, rgb)`` (einops ``b t (h p1) (w p2) c -> b t h w (p1 p2 c)``).

Tracks run at latent-frame rate. With ``frames_per_latent = k`` latent frame ``f`` corresponds to
video frame ``f·k`` (Wan VAE: 81 frames → 0, 4, …, 80; pixel space: ``k = 1``);
:func:`latent_frame_indices`, :func:`tracks_to_latent_rate` and :func:`query_frames_to_latent`
own that mapping.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import einops
import jax.numpy as jnp
import numpy as np

Array = Any


@dataclasses.dataclass(frozen=True)
class PixelAutoencoder:
  """Identity/pixel-patch autoencoder (no parameters): the Wan-VAE stand-in for CPU runs.

  Attributes:
    patch: spatial factor ``p``; latent channels are ``3·p²``.
  """

  patch: int = 1

  def __post_init__(self):
    if not isinstance(self.patch, int) or self.patch < 1:
      raise ValueError(f"PixelAutoencoder: patch must be a positive int, got {self.patch!r}")

  @property
  def temporal_factor(self) -> int:
    """Video frames per latent frame (``frames_per_latent``): 1."""
    return 1

  @property
  def spatial_factor(self) -> int:
    """Video pixels per latent cell along each axis (``vae_stride``): ``patch``."""
    return self.patch

  @property
  def latent_channels(self) -> int:
    return 3 * self.patch * self.patch

  def latent_shape(self, video_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Latent shape for a ``(B, T, H, W, 3)`` video shape; raises ``ValueError`` like :meth:`encode`."""
    self._check_video_shape(video_shape, "video")
    b, t, h, w, _ = video_shape
    p = self.patch
    return (b, t, h // p, w // p, 3 * p * p)

  def _check_video_shape(self, shape, name):
    if len(shape) != 5 or shape[-1] != 3:
      raise ValueError(f"PixelAutoencoder: {name} must be (B, T, H, W, 3), got shape {tuple(shape)}")
    h, w = shape[2], shape[3]
    if h % self.patch or w % self.patch:
      raise ValueError(
          f"PixelAutoencoder: {name} height and width must be divisible by patch={self.patch}, "
          f"got H={h}, W={w}")

  def encode(self, video: Array) -> jnp.ndarray:
    """Space-to-depth of a uint8 video into ``[−1, 1]`` latents.

    Args:
      video: ``(B, T, H, W, 3)`` uint8 RGB (NumPy or JAX), ``H, W`` divisible by ``patch``.

    Returns:
      ``(B, T, H/p, W/p, 3·p²)`` float32 latents ``pixel/127.5 − 1``.

    Raises:
      ValueError: wrong rank/channels, ``H`` or ``W`` not divisible by ``patch``, or dtype not uint8.
    """
    self._check_video_shape(video.shape, "video")
    if np.dtype(video.dtype) != np.uint8:
      raise ValueError(f"PixelAutoencoder.encode: video must be uint8, got dtype {video.dtype}")
    x = jnp.asarray(video).astype(jnp.float32) / 127.5 - 1.0
    p = self.patch
    return einops.rearrange(x, "b t (h p1) (w p2) c -> b t h w (p1 p2 c)", p1=p, p2=p)

  def decode(self, latents: Array) -> jnp.ndarray:
    """Inverse of :meth:`encode`: latents → uint8 video (values clipped to ``[−1, 1]``, rounded).

    Args:
      latents: ``(B, T, h, w, 3·p²)`` float.

    Returns:
      ``(B, T, h·p, w·p, 3)`` uint8.

    Raises:
      ValueError: when the rank or channel count does not match ``3·p²``.
    """
    if latents.ndim != 5 or latents.shape[-1] != self.latent_channels:
      raise ValueError(
          f"PixelAutoencoder.decode: latents must be (B, T, h, w, {self.latent_channels}), got {latents.shape}")
    p = self.patch
    x = einops.rearrange(jnp.asarray(latents, jnp.float32), "b t h w (p1 p2 c) -> b t (h p1) (w p2) c", p1=p, p2=p)
    return jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(jnp.uint8)


def latent_frame_indices(num_frames: int, frames_per_latent: int) -> np.ndarray:
  """Video frame index (int32) of each latent frame: ``f·k`` for ``f = 0 … ⌈T/k⌉ − 1``.

  For a causal Wan VAE ``T = 1 + k·(F − 1)`` (81 → 0, 4, …, 80); for ``k = 1`` all frames.

  Raises:
    ValueError: when ``num_frames < 1`` or ``frames_per_latent < 1``.
  """
  if num_frames < 1 or frames_per_latent < 1:
    raise ValueError(
        f"latent_frame_indices: need num_frames >= 1 and frames_per_latent >= 1, got {num_frames}, {frames_per_latent}")
  return np.arange(0, num_frames, frames_per_latent, dtype=np.int32)


def tracks_to_latent_rate(tracks: Array, visible: Array, frames_per_latent: int) -> tuple[Array, Array]:
  """Subsamples tracks to latent-frame rate (video frames ``0, k, 2k, …``).

  Args:
    tracks: ``(B, V, T, N, 2)`` pixel ``(x, y)``.
    visible: ``(B, V, T, N)`` bool.
    frames_per_latent: ``k``.

  Returns:
    ``(tracks, visible)`` with ``T`` replaced by ``F = ⌈T/k⌉``.
  """
  if tracks.ndim != 5 or visible.shape != tracks.shape[:-1]:
    raise ValueError(
        f"tracks_to_latent_rate: tracks must be (B, V, T, N, 2) and visible (B, V, T, N); got {tracks.shape}, "
        f"{visible.shape}")
  idx = latent_frame_indices(tracks.shape[2], frames_per_latent)
  return tracks[:, :, idx], visible[:, :, idx]


def queries_at_latent_frames(query_points: Array, tracks: Array, visible: Array, frames_per_latent: int,
                             num_latent_frames: int) -> tuple[Array, Array]:
  """Places query points on latent frames with their ground-truth positions there (training).

  A query ``(t, x, y)`` at video frame ``t`` moves to the latent frame ``f`` whose representative
  video frame ``f·k`` is nearest to ``t`` among those where the point is visible in the reference
  view, and takes the ground-truth ``(x, y)`` at frame ``f·k``: the head samples features where the
  point is in that latent frame, not where it was up to ``k/2`` video frames away
  (:func:`query_frames_to_latent` keeps ``(x, y)``). Ties go to the earlier frame. With ``k = 1``
  and a query at a visible entry this is the identity.

  Args:
    query_points: ``(B, N, 3)`` ``(t, x, y)``, ``t`` in video frames.
    tracks: ``(B, T, N, 2)`` reference-view ground truth ``(x, y)`` at video rate.
    visible: ``(B, T, N)`` bool.
    frames_per_latent: ``k``.
    num_latent_frames: ``F`` (``= ⌈T/k⌉``).

  Returns:
    ``(queries, ok)``: ``(B, N, 3)`` float32 ``(f, x, y)`` and ``(B, N)`` bool, False for a point
    visible at no representative frame (its query is :func:`query_frames_to_latent`'s).

  Raises:
    ValueError: shapes disagree, or ``F ≠ ⌈T/k⌉``.
  """
  b, t_frames, n = visible.shape
  if tracks.shape != (b, t_frames, n, 2) or query_points.shape != (b, n, 3):
    raise ValueError(f"queries_at_latent_frames: query_points {query_points.shape}, tracks {tracks.shape} and "
                     f"visible {visible.shape} must be (B, N, 3), (B, T, N, 2) and (B, T, N)")
  idx = latent_frame_indices(t_frames, frames_per_latent)
  if len(idx) != num_latent_frames:
    raise ValueError(f"queries_at_latent_frames: {t_frames} video frames give {len(idx)} latent frames at k = "
                     f"{frames_per_latent}, not {num_latent_frames}")
  vis = jnp.moveaxis(jnp.asarray(visible)[:, idx], 1, 2)                  # (B, N, F)
  distance = jnp.abs(jnp.asarray(idx, jnp.float32) - jnp.asarray(query_points)[..., :1])
  best = jnp.argmin(jnp.where(vis, distance, jnp.inf), axis=-1)           # (B, N)
  ok = vis.any(axis=-1)
  xy = jnp.take_along_axis(jnp.moveaxis(jnp.asarray(tracks)[:, idx], 1, 2), best[..., None, None], axis=2)[:, :, 0]
  fallback = query_frames_to_latent(jnp.asarray(query_points), frames_per_latent, num_latent_frames)
  snapped = jnp.concatenate([best[..., None].astype(jnp.float32), xy.astype(jnp.float32)], axis=-1)
  return jnp.where(ok[..., None], snapped, fallback), ok


def query_frames_to_latent(query_points: Array, frames_per_latent: int, num_latent_frames: int) -> Array:
  """Maps query points ``(t, x, y)`` in video frames to latent frames: ``t → round(t / k)``.

  The query's ``(x, y)`` is kept: for ``k > 1`` and a query frame between two subsampled frames it
  is used at the nearest subsampled frame (an approximation of at most ``k/2`` video frames). Used
  when there is no ground truth (inference); training uses :func:`queries_at_latent_frames`.

  Args:
    query_points: ``(B, N, 3)`` ``(t, x, y)``, ``t`` in video frames.
    frames_per_latent: ``k``.
    num_latent_frames: ``F``; latent query frames are clipped to ``[0, F − 1]``.

  Returns:
    ``(B, N, 3)`` float32 ``(f, x, y)`` with integral ``f``.
  """
  xp = jnp if not isinstance(query_points, np.ndarray) else np
  t = xp.clip(xp.round(query_points[..., 0] / frames_per_latent), 0, num_latent_frames - 1)
  return xp.concatenate([t[..., None], query_points[..., 1:]], axis=-1).astype(xp.float32)
