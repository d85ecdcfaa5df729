"""Given-frame conditioning: latent frames of the target shown to the DiT clean, marked, and never denoised.

Stable Video Diffusion, Track4Gen's backbone, is image-to-video; Wan2.1-T2V is not. This module gives the DiT image
(or, generally, frame) conditioning the way Wan2.2-TI2V does it, by latent replacement: the given latent frames of
the noisy target are replaced by their clean latents before every DiT call (with Wan's causal VAE, latent frame 0
encodes video frame 0 alone, so one given frame is exactly an input image), and a learned marker vector, zero at
initialisation (so a pretrained model is unchanged until it learns to use it), is added to the tokens of every given
frame so the network can tell clean frames from noisy ones at the same σ. The given frames are excluded from
``L_diff`` (``losses.diffusion.flow_matching_loss``'s ``frame_mask``), and at sampling the clean frames are imposed
on the input of every Euler step and on the result. 4Real-Video's grid conditioning (the first row and column of the
grid given) is the same operation on another mask.

Shapes: ``given`` ``(B, F)`` bool over latent frames; latents ``(B, F, h, w, C)``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = Any


class FrameMarker(nn.Module):
  """The marker: ``(B, F)`` given-frame mask → ``(B, F, dim)`` float32 offsets (``embedding`` on given frames, 0
  elsewhere) that ``WanDiT(frame_offsets=...)`` adds to every token of the frame. ``embedding`` starts at zero."""
  dim: int

  @nn.compact
  def __call__(self, given: Array) -> jax.Array:
    embedding = self.param("embedding", nn.initializers.zeros_init(), (self.dim,), jnp.float32)
    return jnp.asarray(given, jnp.float32)[..., None] * embedding


def leading_frames(batch_size: int, num_frames: int, count: int) -> jax.Array:
  """``(B, F)`` bool: the first ``count`` latent frames given (image-to-video: ``count = 1``).

  Raises:
    ValueError: ``count`` outside ``[1, num_frames)`` (at least one frame must be generated).
  """
  if not 1 <= count < num_frames:
    raise ValueError(f"leading_frames: {count} given frames of {num_frames} latent frames; expected 1 <= count < "
                     f"{num_frames}")
  return jnp.broadcast_to(jnp.arange(num_frames) < count, (batch_size, num_frames))


def impose(latents: Array, clean: Array, given: Array) -> jax.Array:
  """``latents`` with the given frames replaced by ``clean``'s (same ``(B, F, h, w, C)`` shape; ``given`` ``(B, F)``).

  Raises:
    ValueError: shapes that do not match.
  """
  if latents.shape != clean.shape or given.shape != latents.shape[:2]:
    raise ValueError(f"impose: latents {latents.shape}, clean {clean.shape} and given {given.shape} must be "
                     "(B, F, h, w, C), (B, F, h, w, C) and (B, F)")
  return jnp.where(jnp.asarray(given, bool)[:, :, None, None, None], jnp.asarray(clean, latents.dtype), latents)
