"""Analytic model FLOPs of one MVTrack4Gen training example (for MFU accounting).

Counts multiply–adds as 2 FLOPs, matrix products only (element-wise work, norms and softmax are
ignored, as in MaxText's MFU). Training FLOPs = 3 × forward (backward = 2 × forward) for the DiT
and the head — the model FLOPs convention; recomputation under remat is *not* counted (it is
hardware work, not model work). With frozen parameters the true backward is cheaper (no weight
gradients for them), so MFU computed with 3× slightly overstates work for partially frozen runs;
``train_flops_per_example`` therefore also reports the exact frozen-aware figure.

DiT (Wan2.1 block, docs/design.md §4.1) with ``S`` tokens (target + reference), width ``D``, FFN ``F``,
``L`` text tokens, per layer:

- self-attention projections ``q, k, v, o``: ``4 · 2 S D²``; scores and values (the S² terms):
  ``2 · 2 S² D``;
- cross-attention ``q, o``: ``2 · 2 S D²``; ``k, v`` of the text: ``2 · 2 L D²``; scores/values
  ``2 · 2 S L D``;
- FFN: ``2 · 2 S D F``;
- camera: Plücker ``camera_proj`` ``2 S D²``; ReCamMaster ``cam_encoder`` ``2 S·12·D`` + ``projector``
  ``2 S D²``.

Plus patch embedding, text embedding and the output head. The tracking head (MV-TAP design) is
counted from its config: the token upsampler MLPs, the local 4D correlations
``(2r+1)²·(2r+1)²·C`` and the correlation MLP per level, view, frame, point and iteration, and the
refiner transformer over ``2·F·N`` tokens.
"""

from __future__ import annotations

import math
from typing import Any


def dit_forward_flops(cfg: Any, tokens_per_view: int, *, text_len: int, num_views: int = 2
                      ) -> dict[str, float]:
  """Forward FLOPs of one ``WanDiT`` call for one example, by component.

  Args:
    cfg: a ``models.wan.WanConfig``.
    tokens_per_view: DiT tokens of one view (``f·h·w``).
    text_len: text-context tokens ``L``.
    num_views: 2 for the novel-view layout (target + reference), 1 for plain T2V.

  Returns:
    ``{component: FLOPs}`` with keys ``attn_proj``, ``attn_scores``, ``cross_attn``, ``ffn``,
    ``camera``, ``embed_head``.
  """
  s, d, f, n = tokens_per_view * num_views, cfg.dim, cfg.ffn_dim, cfg.num_layers
  patch = math.prod(cfg.patch_size)
  camera = 0.0
  if cfg.camera_mode == "plucker":
    camera = 2.0 * s * d * d
  elif cfg.camera_mode == "recammaster":
    camera = 2.0 * s * 12 * d + 2.0 * s * d * d
  out = {
      "attn_proj": n * 4 * 2.0 * s * d * d,
      "attn_scores": n * 2 * 2.0 * s * s * d,
      "cross_attn": n * (2 * 2.0 * s * d * d + 2 * 2.0 * text_len * d * d
                         + 2 * 2.0 * s * text_len * d),
      "ffn": n * 2 * 2.0 * s * d * f,
      "camera": n * camera,
      "embed_head": (2.0 * s * cfg.in_channels * patch * d
                     + 2.0 * text_len * (cfg.text_dim * d + d * d)
                     + 2.0 * tokens_per_view * d * cfg.out_channels * patch),
  }
  if cfg.camera_mode == "plucker":  # PluckerPatchEncoder: ~ one Dense from the packed rays.
    out["embed_head"] += 2.0 * s * 6 * cfg.frames_per_latent * cfg.vae_stride ** 2 * patch * d
  return out


def head_forward_flops(head_cfg: Any, *, grid: tuple[int, int, int], in_channels: int,
                       num_points: int) -> float:
  """Forward FLOPs of the MV-TAP tracking head for one example.

  Args:
    head_cfg: a ``models.tracking_head.TrackingHeadConfig``.
    grid: ``(F, h, w)`` latent frames and tokens per frame of one view.
    in_channels: channels of the probe features fed to the head (q or k, all probe layers).
    num_points: query points ``N``.
  """
  frames, h, w = grid
  c, u = head_cfg.feature_dim, head_cfg.upsample_factor
  tokens = frames * h * w
  # q upsampler on the reference view, k upsampler on both views.
  upsample = 3 * tokens * 2.0 * (in_channels * head_cfg.upsample_hidden
                                 + head_cfg.upsample_hidden * u * u * c)
  p = (2 * head_cfg.radius + 1) ** 2
  views_frames_points = 2 * frames * num_points
  per_iter_corr = head_cfg.num_levels * views_frames_points * (
      2.0 * p * p * c + 2.0 * (p * p * head_cfg.corr_hidden
                               + head_cfg.corr_hidden * head_cfg.corr_dim))
  dh = head_cfg.hidden_dim
  in_dim = 2 + head_cfg.num_levels * head_cfg.corr_dim + 4 * (2 * head_cfg.posenc_degrees + 1)
  per_token = 2.0 * in_dim * dh + 2.0 * 6 * dh + 2.0 * dh * 4
  # Per refiner block: time, view and virtual-track attention (projections + scores) and an MLP.
  attn_proj = 3 * 4 * 2.0 * dh * dh
  mlp = 2 * 2.0 * dh * dh * head_cfg.mlp_ratio
  scores = 2 * 2.0 * dh * (frames + 2 + 2 * head_cfg.num_virtual_tracks)
  per_token += head_cfg.num_blocks * (attn_proj + mlp + scores)
  return upsample + head_cfg.num_iterations * (per_iter_corr + views_frames_points * per_token)


def train_flops_per_example(dit_fwd: dict[str, float], head_fwd: float = 0.0) -> float:
  """Model FLOPs of one training example: ``3 × (DiT forward + head forward)``."""
  return 3.0 * (sum(dit_fwd.values()) + head_fwd)


# Dense bf16 peak FLOP/s per device (vendor figures, no sparsity).
PEAK_BF16_FLOPS: dict[str, float] = {
    "H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "L40S": 362e12,
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
    "TPU v5": 459e12, "TPU v6 lite": 918e12, "TPU v6e": 918e12,
}


def peak_flops(device_kind: str) -> float | None:
  """bf16 dense peak FLOP/s of a device kind string (``jax.devices()[0].device_kind``), or None."""
  best = None
  for name, value in PEAK_BF16_FLOPS.items():
    if name.lower() in device_kind.lower() and (best is None or len(name) > len(best[0])):
      best = (name, value)
  return None if best is None else best[1]
