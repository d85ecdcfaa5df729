"""Analytic model FLOPs of one MVTrack4Gen training example (for MFU accounting).

Counts multiply–adds as 2 FLOPs, matrix products only (element-wise work, norms and softmax are
ignored, as in MaxText's MFU). Training FLOPs = 3 × forward (backward = 2 × forward) for the DiT
and the head — the model FLOPs convention; recomputation under remat is *not* counted (it is
hardware work, not model work). With frozen parameters the true backward is cheaper, so
:func:`frozen_aware_train_flops` counts it exactly: a matmul ``Y = X·W`` costs one forward-sized
product for ``dX`` when anything below it is trained and one for ``dW`` when ``W`` is trainable;
the attention products (no weights) need gradients for both operands in self-attention, for the
query side only in cross-attention (the text is not trained). For ReCamMaster's trainable set
(self-attention + camera modules + head) the frozen-aware count of Wan2.1-1.3B at 65,520 tokens is
95.4 % of 3× forward: the S² attention products (~80 % of the forward) need both gradients whatever
is frozen. The bench prints both.

DiT (Wan2.1 block, docs/design.md §4.1) with ``S`` tokens (target + reference), width ``D``, FFN ``F``,
``L`` text tokens, per layer:

- self-attention projections ``q, k, v, o``: ``4 · 2 S D²``; scores and values (the S² terms):
  ``2 · 2 S² D``;
- cross-attention ``q, o``: ``2 · 2 S D²``; ``k, v`` of the text: ``2 · 2 L D²``; scores/values
  ``2 · 2 S L D``;
- FFN: ``2 · 2 S D F``;
- camera: Plücker ``camera_proj`` ``2 S D²``; ReCamMaster ``cam_encoder`` ``2 S·12·D`` + ``projector``
  ``2 S D²``; ReDirector's RoCE phases ``2 · 2 S D·(heads·P)``;
- image context (``N`` CLIP tokens): ``k, v`` of the image ``2 · 2 N D²``, scores/values ``2 · 2 S N D``.

The camera embedding is the Plücker patch encoder or Fun's control adapter (its patchifying
convolution ``2 S·(6·k·s²·p)·D`` and the residual block's two 3×3 convolutions ``2 · 2 S·9·D²``); the
image embedding ``2 N (C_img² + C_img·D)``.

Plus patch embedding, text embedding and the output head. The tracking head (MV-TAP design) is
counted from its config: the token upsampler MLPs, the local 4D correlations
``(2r+1)²·(2r+1)²·C`` and the correlation MLP per level, view, frame, point and iteration, and the
refiner transformer over ``2·F·N`` tokens.
"""

from __future__ import annotations

import math
from typing import Any

from mvtrack_jax.models import rope as rope_lib


def dit_forward_flops(cfg: Any, tokens_per_view: int, *, text_len: int, num_views: int = 2, image_len: int = 0
                      ) -> dict[str, float]:
  """Forward FLOPs of one ``WanDiT`` call for one example, by component.

  Args:
    cfg: a ``models.wan.WanConfig``.
    tokens_per_view: DiT tokens of one view (``f·h·w``).
    text_len: text-context tokens ``L``.
    num_views: 2 for the novel-view layout (target + reference), 1 for plain T2V.
    image_len: image-context tokens ``N`` (257 for CLIP ViT-H/14; 0 = branch off or absent).

  Returns:
    ``{component: FLOPs}`` with keys ``attn_proj``, ``attn_scores``, ``cross_attn_proj`` (q, o),
    ``cross_attn_text`` (k, v of the text), ``cross_attn_scores``, ``cross_attn_image`` (k, v of the
    image), ``cross_attn_image_scores``, ``ffn``, ``camera`` (per-block camera modules), ``camera_embed``
    (the Plücker patch encoder or control adapter), ``patch_embed``, ``text_embed``, ``image_embed``,
    ``out_head``.
  """
  s, d, f, n = tokens_per_view * num_views, cfg.dim, cfg.ffn_dim, cfg.num_layers
  patch = math.prod(cfg.patch_size)
  camera = 0.0
  if cfg.camera_mode == "plucker":
    camera = 2.0 * s * d * d
  elif cfg.camera_mode == "recammaster":
    camera = 2.0 * s * 12 * d + 2.0 * s * d * d
  elif cfg.roce:
    camera = 2 * 2.0 * s * d * cfg.num_heads * rope_lib.roce_phase_pairs(cfg.head_dim)
  camera_embed = 0.0
  if cfg.camera_mode in ("plucker", "redirector"):  # ~ one Dense from the packed rays of a token
    camera_embed = 2.0 * s * 6 * cfg.frames_per_latent * cfg.vae_stride ** 2 * patch * d
  if cfg.camera_mode == "redirector":  # + the adapter's residual block
    camera_embed += 2 * 2.0 * s * 9 * d * d
  image_len = image_len if cfg.image_dim else 0
  return {
      "attn_proj": n * 4 * 2.0 * s * d * d,
      "attn_scores": n * 2 * 2.0 * s * s * d,
      "cross_attn_proj": n * 2 * 2.0 * s * d * d,
      "cross_attn_text": n * 2 * 2.0 * text_len * d * d,
      "cross_attn_scores": n * 2 * 2.0 * s * text_len * d,
      "cross_attn_image": n * 2 * 2.0 * image_len * d * d,
      "cross_attn_image_scores": n * 2 * 2.0 * s * image_len * d,
      "ffn": n * 2 * 2.0 * s * d * f,
      "camera": n * camera,
      "camera_embed": camera_embed,
      "patch_embed": 2.0 * s * (cfg.in_channels + cfg.condition_channels) * patch * d,
      "text_embed": 2.0 * text_len * (cfg.text_dim * d + d * d),
      "image_embed": 2.0 * image_len * (cfg.image_dim ** 2 + cfg.image_dim * d),
      "out_head": 2.0 * tokens_per_view * d * cfg.out_channels * patch,
  }


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


# A parameter path of each DiT component's weights (Flax names, scanned or not), for trainable checks.
_COMPONENT_PARAMS = {
    "attn_proj": ("dit/blocks_0/attn1/to_q/kernel", "dit/blocks/block/attn1/to_q/kernel"),
    "cross_attn_proj": ("dit/blocks_0/attn2/to_q/kernel", "dit/blocks/block/attn2/to_q/kernel"),
    "cross_attn_text": ("dit/blocks_0/attn2/to_k/kernel", "dit/blocks/block/attn2/to_k/kernel"),
    "cross_attn_image": ("dit/blocks_0/attn2/add_k_proj/kernel", "dit/blocks/block/attn2/add_k_proj/kernel"),
    "ffn": ("dit/blocks_0/ffn_in/kernel", "dit/blocks/block/ffn_in/kernel"),
    "camera": ("dit/blocks_0/camera_proj/kernel", "dit/blocks/block/camera_proj/kernel",
               "dit/blocks_0/cam_encoder/kernel", "dit/blocks/block/cam_encoder/kernel",
               "dit/blocks_0/attn1/rope_phase_qk/kernel", "dit/blocks/block/attn1/rope_phase_qk/kernel"),
    "camera_embed": ("dit/camera_encoder/patch/kernel", "dit/control_adapter/conv/kernel"),
    "patch_embed": ("dit/patch_embedding/kernel",),
    "text_embed": ("dit/text_embedding_0/kernel",),
    "image_embed": ("dit/image_embedder_ff_0/kernel",),
    "out_head": ("dit/proj_out/kernel",),
}


def frozen_aware_train_flops(dit_fwd: dict[str, float], head_fwd: float, trainable: Any) -> float:
  """Training FLOPs of one example counting only the gradients a partially frozen run computes.

  Args:
    dit_fwd: :func:`dit_forward_flops`.
    head_fwd: :func:`head_forward_flops` (the head is trained whole: 3×).
    trainable: ``path -> bool`` on ``/``-joined parameter paths (the optimizer's
      ``trainable_patterns``, e.g. ``lambda p: any(re.search(x, p) for x in patterns)``).

  Returns:
    forward + backward FLOPs (module docstring). Activation gradients flow through every block when
    any block weight is trainable; the patch and text embeddings then need none (their inputs are
    data), the output head does.
  """
  train = {name: any(trainable(p) for p in paths) for name, paths in _COMPONENT_PARAMS.items()}
  blocks_trained = any(train[c] for c in ("attn_proj", "cross_attn_proj", "cross_attn_text", "cross_attn_image", "ffn",
                                          "camera"))
  flows = blocks_trained or train["patch_embed"] or train["camera_embed"]  # dX needed inside the blocks
  backward = {
      "attn_scores": 2.0 if flows else 0.0,         # grads of both operands of q·kᵀ and p·v
      "cross_attn_scores": 1.0 if flows else 0.0,   # the query side only
      "cross_attn_image_scores": 1.0 if flows else 0.0,
      "cross_attn_text": float(train["cross_attn_text"]),
      "cross_attn_image": float(train["cross_attn_image"]),
      "image_embed": float(train["image_embed"]),
      "patch_embed": float(train["patch_embed"]),
      "camera_embed": float(train["camera_embed"]),
      "text_embed": float(train["text_embed"]),
      "out_head": 1.0 + float(train["out_head"]),   # dX always (the blocks below), dW when trained
  }
  for name in ("attn_proj", "cross_attn_proj", "ffn", "camera"):
    backward[name] = float(flows) + float(train[name])
  total = sum(dit_fwd.values()) + sum(backward[k] * v for k, v in dit_fwd.items())
  return total + 3.0 * head_fwd


# Dense bf16 peak FLOP/s per device (vendor figures, no sparsity), matched as substrings of
# ``device_kind`` (the longest match wins, so "H100 PCIe" beats "H100"). Sources: NVIDIA H100 datasheet
# (SXM 989 TF/s, PCIe 756 TF/s, NVL 835 TF/s), H200 datasheet (SXM 989, NVL 835), A100 datasheet (312,
# SXM and PCIe), L40S datasheet (362); Google Cloud TPU system architecture pages (v4 275, v5e 197,
# v5p 459, v6e "Trillium" 918 TF/s per chip). JAX reports e.g. "NVIDIA H100 80GB HBM3" (SXM),
# "NVIDIA H100 PCIe", "TPU v5 lite" (v5e), "TPU v6 lite" (v6e).
PEAK_BF16_FLOPS: dict[str, float] = {
    "H100": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12, "H200": 989e12, "H200 NVL": 835e12,
    "H800": 989e12, "A100": 312e12, "L40S": 362e12,
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
