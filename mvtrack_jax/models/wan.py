"""Camera-conditioned Wan2.1 diffusion transformer (DiT) in Flax linen, channels-last.

The network is numerically the diffusers ``WanTransformer3DModel`` (0.42.1) / original Wan2.1
``WanModel`` (docs/design.md §4.1; parity-tested in ``tests/convert/test_wan_parity.py``):

- patchify: Conv3d with kernel = stride = ``patch_size`` on ``(B, F, H, W, C)`` latents → tokens
  ``(B, f·h·w, dim)`` in ``(f, h, w)`` row-major order;
- timestep: sinusoid ``[cos | sin]`` of size ``freq_dim`` (frequencies ``exp(−ln(10⁴)·i/half)``),
  ``temb = Linear(SiLU(Linear(·)))``, ``tproj = Linear(SiLU(temb))`` → ``(B, 6, dim)``, float32;
- text: ``Linear → GELU(tanh) → Linear``;
- N blocks: adaLN modulation ``(table + tproj)`` = shift, scale, gate, c_shift, c_scale, c_gate in
  float32; self-attention on ``LN(x)(1+scale)+shift`` with q/k RMSNorm over the full width and
  interleaved 3D RoPE (``mvtrack_jax.models.rope``); cross-attention on an affine LayerNorm, no gate;
  GELU-tanh FFN gated by ``c_gate``;
- head: ``(shift, scale) = table(1, 2, dim) + temb``, ``Linear`` → unpatchify (output channel fastest).

Novel-view layout (ReCamMaster / ReDirector, docs/design.md §4.2): target and clean reference latents
are patchified by the same Conv and concatenated along the token axis, target first, so one 3D
self-attention covers both views; RoPE frame indices are ``distinct`` (0..2F'−1) or ``shared``
(0..F'−1 for both halves). The velocity is returned for the target half only. Both halves use the
same timestep (as in ReCamMaster training).

Camera conditioning (``camera_mode``; details in ``mvtrack_jax.models.camera``):

- ``"recammaster"``: per block ``cam_encoder`` = zero-initialised ``Linear(12→dim)`` of the target
  camera's relative 3×4 pose per latent frame, repeated over the frame's tokens and onto the
  reference half (as the released code does), added to the modulated self-attention input; the
  self-attention output goes through the identity-initialised ``projector`` ``Linear(dim→dim)``
  before the gate. Checkpoints of KwaiVGI/ReCamMaster import directly (``convert.wan``).
- ``"plucker"`` (default, MVTrack4Gen's improved encoding): both views' Plücker ray maps at the
  latent-grid resolution → a shared ``PluckerPatchEncoder`` (one ``dim`` vector per token, each view
  with its own cameras) → per block a zero-initialised ``camera_proj`` ``Dense(dim→dim)`` added to
  the modulated self-attention input, so a pretrained Wan starts out unchanged.
- ``"redirector"`` (ReDirector on Wan2.1-Fun-1.3B-Control-Camera, arXiv 2511.19827; docs/design.md
  §4.2b): full-resolution Plücker maps of both views → Fun's ``control_adapter``
  (``camera.ControlAdapter``) → ``cam_emb``, one ``dim`` vector per token, added to the patch embeddings. With ``roce=True`` every block's
  self-attention also turns its RoPE row/column pairs by camera phases
  ``φ_qk = Linear(SiLU(cam_emb))`` on q and k, and ``φ_vo`` on v (by −φ) and on the output after the
  output projection (by +φ); the phase layers (``rope_phase_qk``/``rope_phase_vo``, heads × P, no bias)
  start at zero, so RoCE starts as plain RoPE (``rope.apply_phase``).

Image context (``image_dim > 0``; Wan I2V / Fun, diffusers ``image_dim``/``added_kv_proj_dim``): CLIP
ViT-H/14 features ``(B, N, image_dim)`` (257 × 1280, the penultimate layer of the reference's first
frame) → ``LayerNorm → Linear → GELU (exact) → Linear → LayerNorm`` (eps 1e-5) → each block's
cross-attention adds a second attention of the same queries over them, with its own ``add_k_proj``
(+ full-width RMSNorm ``norm_added_k``) and ``add_v_proj``, summed before the output projection.
Without ``image_context`` that branch is off (the text attention alone), which is what a model
trained without image features learns; the parameters exist either way.

Condition channels (``condition_channels > 0``; Wan2.1-Fun's ``in_dim`` 32 = 16 latent + 16 control):
both views' latents get that many zero channels appended before patchify, as ReDirector feeds Fun
(``x = [noisy, 0]``, ``y = [reference, 0]``).

Token ↔ pixel map (``token_grid``): token ``(f, i, j)`` of a view covers latent frames
``[f·pt, (f+1)·pt)`` and video pixels ``x ∈ [j·s, (j+1)·s)``, ``y ∈ [i·s, (i+1)·s)`` with
``s = vae_stride · patch`` (16 px for Wan: 8 × 2); its centre is at ``((j+½)·s, (i+½)·s)``.

Probe outputs: ``probe_layers=(l, ...)`` (0-based) also returns each listed block's
self-attention q and k after RMSNorm and RoPE (compute dtype), ``(B, S, heads, head_dim)``; no
``S×S`` map is formed for them. Under ``nn.scan`` the scan carry holds one q and one k buffer per
requested layer; each step writes ``where(step == l, q, buffer)``, so memory is
``2·(len(probe_layers) + len(pre_rope_layers))`` q-sized arrays, never all layers stacked; the remat boundary is
the block itself, so the buffers are not saved per step either. Scanned and unscanned runs give identical
probes (tested). ``pre_rope_layers`` (a subset of ``probe_layers``) add ``q_pre``/``k_pre``: the same q/k after
RMSNorm but before RoPE and RoCE (the head's input under ``objective.head_probe_rope="before"``; the attention and
L_corr use the rotated ones). ``feature_layers`` add ``x``: the residual stream after that block, ``(B, S, dim)``
in the compute dtype, buffered in the scan carry the same way (Track4Gen's feature tap: the refiner and its
correspondence loss read the generator's block features; a q or k tap is the probe above). ``feature_hook=(l, fn)``
adds ``fn``'s ``delta`` to the stream after block ``l`` and returns its ``aux``: the path by which Track4Gen's
refined features (``models.refiner``, parameters outside the DiT's) return through the zero projection; under
``nn.scan`` it runs in the scan body under ``lax.cond``, so the stacked block parameters stay one tree.

Precision: params in ``param_dtype`` (float32), compute in ``dtype``; LayerNorms, RMSNorm
statistics, modulation, residual updates and softmax statistics in float32; velocity returned as
float32. Logical axis names on every parameter (``embed``, ``heads``, ``mlp``; ``layers`` on the
scan axis) and ``("batch", "length", "embed")`` constraints on the residual stream; shard with
``LOGICAL_AXIS_RULES`` on a mesh with ``axis_types=(AxisType.Auto,)*n`` (docs/design.md §5).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
from jax.ad_checkpoint import checkpoint_name
import jax.numpy as jnp
import numpy as np

from mvtrack_jax.models import camera as camera_lib
from mvtrack_jax.models import rope as rope_lib
from mvtrack_jax.models.attention import ATTENTION_RESIDUALS, BACKENDS, attention

CAMERA_MODES = ("none", "recammaster", "plucker", "redirector")

# Logical → mesh axis rules for ``nn.logical_axis_rules`` / ``nn.logical_to_mesh_sharding``. Mesh axes
# ("data", "fsdp", "tensor"). Flax assigns rules in order and skips a mesh axis already used by the
# array, so activations ``("batch", "length", "embed")`` shard batch over data×fsdp and leave embed
# whole, while parameters (no batch axis) shard ``embed`` over fsdp and heads/mlp over tensor.
LOGICAL_AXIS_RULES: list[tuple[str, Any]] = [
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("mlp", "tensor"),
    ("length", None),
    ("kv", None),
    ("layers", None),
]


def _remat_policies() -> dict[str, Any]:
  cp = jax.checkpoint_policies
  return {
      "full": None,  # save nothing: recompute the whole block in the backward pass
      "nothing_saveable": cp.nothing_saveable,
      "dots_saveable": cp.dots_saveable,
      "dots_with_no_batch_dims_saveable": cp.dots_with_no_batch_dims_saveable,
      "everything_saveable": cp.everything_saveable,
      "save_attention_out": cp.save_only_these_names("attention_out"),
      "save_qkv_attention_out": cp.save_only_these_names("query", "key", "value", "attention_out"),
      # Recompute the block but never the cuDNN attention forward: its residuals (q, k, v, output,
      # softmax statistics; models.attention.with_named_residuals) are kept on the device, or in
      # pinned host memory for offload_attention. Without cuDNN nothing carries the name: = "full".
      "save_attention": cp.save_only_these_names(ATTENTION_RESIDUALS),
      "offload_attention": cp.save_and_offload_only_these_names(
          names_which_can_be_saved=[], names_which_can_be_offloaded=[ATTENTION_RESIDUALS],
          offload_src="device", offload_dst="pinned_host"),
  }


REMAT_POLICIES = ("none",) + tuple(_remat_policies())


@dataclasses.dataclass(frozen=True)
class WanConfig:
  """Architecture and execution options of ``WanDiT`` (diffusers constructor fields + ours).

  Attributes:
    patch_size: ``(pt, ph, pw)`` latent cells per token.
    num_heads, head_dim: attention heads and channels per head; ``dim = num_heads · head_dim``.
    in_channels, out_channels: latent channels in and velocity channels out.
    text_dim: channels of the text-encoder embeddings (4096 for umT5-XXL).
    freq_dim: size of the sinusoidal timestep embedding.
    ffn_dim: hidden width of the FFN.
    num_layers: number of DiT blocks.
    cross_attn_norm: affine LayerNorm before cross-attention (Wan: True).
    eps: epsilon of every LayerNorm / RMSNorm.
    camera_mode: ``"none"`` (plain T2V Wan), ``"recammaster"``, ``"plucker"`` (default) or ``"redirector"``.
    image_dim: width of the image-context features (1280 for CLIP ViT-H/14); 0 = no image branch.
    condition_channels: zero channels appended to the latents before patchify (Fun: 16).
    roce: Rotary Camera Encoding in every self-attention (``camera_mode="redirector"`` only; needs a
      ``head_dim`` that ``rope.roce_phase_pairs`` accepts).
    rope_mode: ``"distinct"`` (ReCamMaster, reference frames F'..2F'−1) or ``"shared"``
      (ReDirector, both halves 0..F'−1).
    vae_stride: video pixels per latent cell (8 for the Wan VAE).
    frames_per_latent: video frames per latent frame for camera packing (4 Wan VAE, 1 pixel space).
    attention_backend: ``"einsum"``, ``"dot_product"`` or ``"splash"`` (``models.attention``).
    dtype: compute dtype (e.g. ``jnp.bfloat16`` on accelerators); a string is accepted.
    param_dtype: parameter dtype (float32).
    scan_layers: run the blocks with ``nn.scan`` (stacked params under ``blocks/block``, leading
      ``layers`` axis) instead of a Python loop (``blocks_0 … blocks_{N−1}``).
    remat_policy: ``"none"`` or a name in ``REMAT_POLICIES`` (``"full"`` = recompute everything).
    rope_theta: RoPE base.
    rope_reference_offset: ``"distinct"`` mode: the token frame where the reference view starts on a clip
      shorter than this (``rope.reference_start``): the training clip's token frames, which
      ``builders.build_model`` fills in from the run config's ``data`` block; 0: the clip's own frame count.

  Raises:
    ValueError: a field out of range, or a model narrower than its tokens (``dim < token_input_dim``, the
      capacity rule: the error names both numbers).
  """
  patch_size: tuple[int, int, int] = (1, 2, 2)
  num_heads: int = 12
  head_dim: int = 128
  in_channels: int = 16
  out_channels: int = 16
  text_dim: int = 4096
  freq_dim: int = 256
  ffn_dim: int = 8960
  num_layers: int = 30
  cross_attn_norm: bool = True
  eps: float = 1e-6
  camera_mode: str = "plucker"
  rope_mode: str = "distinct"
  vae_stride: int = 8
  frames_per_latent: int = 4
  attention_backend: str = "einsum"
  dtype: Any = "float32"
  param_dtype: Any = "float32"
  scan_layers: bool = False
  remat_policy: str = "none"
  rope_theta: float = 10000.0
  rope_reference_offset: int = 0
  image_dim: int = 0
  condition_channels: int = 0
  roce: bool = False

  def __post_init__(self):
    object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))
    object.__setattr__(self, "dtype", jnp.dtype(self.dtype))
    object.__setattr__(self, "param_dtype", jnp.dtype(self.param_dtype))
    checks = [
        (len(self.patch_size) == 3 and min(self.patch_size) >= 1, "patch_size", "3 positive ints"),
        (self.camera_mode in CAMERA_MODES, "camera_mode", f"one of {CAMERA_MODES}"),
        (self.rope_mode in rope_lib.ROPE_MODES, "rope_mode", f"one of {rope_lib.ROPE_MODES}"),
        (self.rope_reference_offset >= 0, "rope_reference_offset", "an int >= 0"),
        (self.attention_backend in BACKENDS, "attention_backend", f"one of {BACKENDS}"),
        (self.remat_policy in REMAT_POLICIES, "remat_policy", f"one of {REMAT_POLICIES}"),
        (self.head_dim > 0 and self.head_dim % 2 == 0, "head_dim", "a positive even int"),
        (self.num_heads > 0 and self.num_layers > 0, "num_heads/num_layers", "positive"),
        (self.freq_dim > 0 and self.freq_dim % 2 == 0, "freq_dim", "a positive even int"),
        (self.vae_stride > 0 and self.frames_per_latent > 0, "vae_stride/frames_per_latent", "positive"),
        (not (self.camera_mode in ("recammaster", "redirector") and self.patch_size[0] != 1), "patch_size",
         f"temporal patch 1 with camera_mode={self.camera_mode!r} (one camera input per latent frame)"),
        (self.image_dim >= 0 and self.condition_channels >= 0, "image_dim/condition_channels", "non-negative"),
        (not (self.roce and self.camera_mode != "redirector"), "roce",
         f"False unless camera_mode='redirector' (RoCE reads the control adapter's cam_emb; camera_mode is "
         f"{self.camera_mode!r})"),
    ]
    for ok, name, expected in checks:
      if not ok:
        raise ValueError(f"WanConfig: {name} must be {expected}; got {getattr(self, name.split('/')[0])!r}")
    if self.roce:
      try:
        rope_lib.roce_phase_pairs(self.head_dim)
      except ValueError as e:
        raise ValueError(f"WanConfig: roce=True with {e}") from None
    if self.dim < self.token_input_dim:
      pt, ph, pw = self.patch_size
      raise ValueError(
          f"WanConfig: the model width dim = num_heads·head_dim = {self.num_heads}·{self.head_dim} = {self.dim} is "
          f"narrower than its token input {self.token_input_dim} = patch volume {pt}·{ph}·{pw} × "
          f"max(in_channels, out_channels) = {max(self.in_channels, self.out_channels)}: a token could not even "
          f"represent the noise it must predict; widen the model (num_heads/head_dim) or use a smaller patch_size")

  @property
  def dim(self) -> int:
    """Model width ``num_heads · head_dim``."""
    return self.num_heads * self.head_dim

  @property
  def token_input_dim(self) -> int:
    """Numbers one token carries in (and must predict out): ``pt·ph·pw · max(in_channels, out_channels)``.

    The capacity rule: ``dim`` must be at least this, or the patch embedding is a projection that loses
    information and the output head cannot span the velocity of a patch (Wan2.1: 1·2·2·16 = 64 ≪ 1536).
    """
    pt, ph, pw = self.patch_size
    return pt * ph * pw * max(self.in_channels, self.out_channels)


_WAN_1_3B = dict(num_heads=12, head_dim=128, ffn_dim=8960, num_layers=30, text_dim=4096, freq_dim=256)
_WAN_14B = dict(num_heads=40, head_dim=128, ffn_dim=13824, num_layers=40, text_dim=4096, freq_dim=256)
# Wan2.1-Fun-V1.1-1.3B-Control-Camera as ReDirector uses it: image context, in_dim 32, camera adapter, RoCE,
# RoPE frames shared by both views.
_FUN_CAMERA = dict(image_dim=1280, condition_channels=16, camera_mode="redirector", rope_mode="shared", roce=True)

PRESETS: dict[str, WanConfig] = {
    # Exact Wan2.1 shapes (docs/design.md §4.1).
    "wan2.1-t2v-1.3b": WanConfig(**_WAN_1_3B),
    "wan2.1-t2v-14b": WanConfig(**_WAN_14B),
    "wan2.1-fun-1.3b-control-camera": WanConfig(**_WAN_1_3B, **_FUN_CAMERA),
    # CPU-sized Wan-VAE-latent model (16 channels, 8 px / cell, 4 frames / latent frame); width 128 is twice
    # its token input (1·2·2·16 = 64), see ``WanConfig.token_input_dim``.
    "tiny": WanConfig(num_heads=2, head_dim=64, ffn_dim=256, num_layers=2, text_dim=32, freq_dim=32),
    # CPU-sized ReDirector / Fun control-camera model: head_dim 32 (64 has no RoCE layout, rope.roce_phase_pairs),
    # a 32-wide image context (the tiny CLIP of convert.standins).
    "tiny-redirector": WanConfig(num_heads=4, head_dim=32, ffn_dim=256, num_layers=2, text_dim=32, freq_dim=32,
                                 image_dim=32, condition_channels=16, camera_mode="redirector", rope_mode="shared",
                                 roce=True),
    # CPU demo in pixel space: a 4×4 space-to-depth "autoencoder" gives 48 channels, 4 px / cell, one video
    # frame per latent frame; one cell per token (patch 1×1×1: 48 numbers in a 128-wide model).
    "tiny-pixel": WanConfig(num_heads=4, head_dim=32, ffn_dim=512, num_layers=4, text_dim=32, freq_dim=64,
                            patch_size=(1, 1, 1), in_channels=48, out_channels=48, vae_stride=4,
                            frames_per_latent=1),
    # The project's CPU base model (configs/base.py): the same 4×4 pixel cells, Wan's 1×2×2 token patch
    # (8×8-pixel tokens, 192 numbers in a 256-wide model), 4 blocks.
    "small-pixel": WanConfig(num_heads=4, head_dim=64, ffn_dim=1024, num_layers=4, text_dim=32, freq_dim=64,
                             patch_size=(1, 2, 2), in_channels=48, out_channels=48, vae_stride=4,
                             frames_per_latent=1),
}


def get_config(name: str, **overrides) -> WanConfig:
  """A preset from ``PRESETS`` with fields replaced by ``overrides``.

  Raises:
    ValueError: for an unknown preset name or an invalid field value.
  """
  if name not in PRESETS:
    raise ValueError(f"get_config: unknown preset {name!r}; expected one of {sorted(PRESETS)}")
  return dataclasses.replace(PRESETS[name], **overrides)


def token_grid(config: WanConfig, latent_shape: Sequence[int]) -> tuple[int, int, int]:
  """Token grid ``(f, h, w)`` of ONE view for latents of shape ``(B, F, H, W, C)`` or ``(F, H, W)``.

  ``f = F/pt, h = H/ph, w = W/pw``. Token ``(f, i, j)`` (sequence index ``(f·h + i)·w + j`` inside
  its view; reference tokens follow all target tokens) covers latent frames ``[f·pt, (f+1)·pt)``
  and video pixels ``x ∈ [j·s, (j+1)·s)``, ``y ∈ [i·s, (i+1)·s)`` with ``s = vae_stride·ph``
  (``ph = pw`` in Wan; use ``vae_stride·pw`` for x otherwise). Pixel coordinates: corner origin,
  centres at +0.5 (docs/design.md §3).

  Raises:
    ValueError: for a shape of another rank or not divisible by the patch size.
  """
  shape = tuple(int(s) for s in latent_shape)
  if len(shape) == 5:
    shape = shape[1:4]
  if len(shape) != 3:
    raise ValueError(f"token_grid: latent_shape must be (B, F, H, W, C) or (F, H, W), got {tuple(latent_shape)}")
  if any(s % p for s, p in zip(shape, config.patch_size)):
    raise ValueError(f"token_grid: latent (F, H, W) = {shape} not divisible by patch_size {config.patch_size}")
  return tuple(s // p for s, p in zip(shape, config.patch_size))


# ----------------------------------------------------------------------------------------------
# Modules.


def _dense(features: int, axes: tuple[Any, Any], name: str, dtype, param_dtype, *, kernel_init=None,
           bias_init=None, use_bias: bool = True) -> nn.Dense:
  kernel_init = kernel_init or nn.initializers.xavier_uniform()
  bias_init = bias_init or nn.initializers.zeros_init()
  return nn.Dense(features, dtype=dtype, param_dtype=param_dtype, name=name, use_bias=use_bias,
                  kernel_init=nn.with_logical_partitioning(kernel_init, axes),
                  bias_init=nn.with_logical_partitioning(bias_init, (axes[1],)))


def _layer_norm(x: jnp.ndarray, eps: float) -> jnp.ndarray:
  """LayerNorm without affine parameters, in float32 (torch ``FP32LayerNorm(affine=False)``)."""
  return nn.LayerNorm(epsilon=eps, use_bias=False, use_scale=False, use_fast_variance=False,
                      dtype=jnp.float32)(x.astype(jnp.float32))


def _identity_init(key, shape, dtype=jnp.float32):
  del key
  return jnp.eye(shape[0], shape[1], dtype=dtype)


class WanAttention(nn.Module):
  """Wan self-/cross-attention: q/k/v Linear, full-width RMSNorm on q and k, optional RoPE.

  Self-attention (``context`` None) takes ``rope`` tables and, with ``config.roce``, the per-token
  ``camera`` embedding ``(B, S, dim)`` that drives RoCE (module docstring). Cross-attention takes the
  text ``context`` ``(B, L, dim)`` and optionally the embedded ``image_context`` ``(B, N, dim)``
  (I2V branch: ``add_k_proj`` + ``norm_added_k``, ``add_v_proj``, its attention added to the text's).
  Returns ``(out (B, S, dim), q, k, q_pre, k_pre)`` with q/k ``(B, S|L, heads, head_dim)`` after norm, RoPE and
  RoCE, and q_pre/k_pre after the norm only.
  """
  config: WanConfig

  @nn.compact
  def __call__(self, x: jnp.ndarray, context: jnp.ndarray | None = None,
               rope: tuple[jnp.ndarray, jnp.ndarray] | None = None, camera: jnp.ndarray | None = None,
               image_context: jnp.ndarray | None = None):
    cfg = self.config
    dense = lambda name, axes: _dense(cfg.dim, axes, name, cfg.dtype, cfg.param_dtype)
    rms = lambda name: nn.RMSNorm(epsilon=cfg.eps, dtype=cfg.dtype, param_dtype=cfg.param_dtype, name=name,
                                  scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("heads",)))
    split = lambda t: t.reshape(t.shape[:2] + (cfg.num_heads, cfg.head_dim))
    source = x if context is None else context
    q = split(rms("norm_q")(dense("to_q", ("embed", "heads"))(x)))
    k = split(rms("norm_k")(dense("to_k", ("embed", "heads"))(source)))
    v = split(dense("to_v", ("embed", "heads"))(source))
    q_pre, k_pre = q, k
    if rope is not None:
      q = rope_lib.apply_rope(q, *rope)
      k = rope_lib.apply_rope(k, *rope)
    phase_vo = None
    if camera is not None:  # RoCE: camera phases on the row/column pairs.
      pairs = rope_lib.roce_phase_pairs(cfg.head_dim)
      phase = lambda name: _dense(cfg.num_heads * pairs, ("embed", "heads"), name, cfg.dtype, cfg.param_dtype,
                                  kernel_init=nn.initializers.zeros_init(), use_bias=False)(nn.silu(camera)).reshape(
                                      camera.shape[:2] + (cfg.num_heads, pairs))
      phase_qk, phase_vo = phase("rope_phase_qk"), phase("rope_phase_vo")
      q = rope_lib.apply_phase(q, phase_qk)
      k = rope_lib.apply_phase(k, phase_qk)
      v = rope_lib.apply_phase(v, -phase_vo.astype(jnp.float32))
    axes = ("batch", "length", "heads", "kv")
    q = nn.with_logical_constraint(checkpoint_name(q, "query"), axes)
    k = nn.with_logical_constraint(checkpoint_name(k, "key"), axes)
    v = nn.with_logical_constraint(checkpoint_name(v, "value"), axes)
    out = attention(q, k, v, backend=cfg.attention_backend)
    if image_context is not None:
      k_img = split(rms("norm_added_k")(dense("add_k_proj", ("embed", "heads"))(image_context)))
      v_img = split(dense("add_v_proj", ("embed", "heads"))(image_context))
      out = (out.astype(jnp.float32) + attention(q, k_img, v_img, backend=cfg.attention_backend)).astype(out.dtype)
    out = checkpoint_name(out, "attention_out")
    out = dense("to_out", ("heads", "embed"))(out.reshape(out.shape[:2] + (cfg.dim,)))
    if phase_vo is not None:
      out = rope_lib.apply_phase(split(out), phase_vo).reshape(out.shape)
    return out, q, k, q_pre, k_pre


class WanBlock(nn.Module):
  """One Wan2.1 DiT block with optional camera injection (module docstring).

  ``__call__(x (B,S,dim), context (B,L,dim), tproj (B,6,dim) f32, rope_cos, rope_sin (S, d/2),
  camera, image_context)`` → ``(x, q, k, q_pre, k_pre)`` (``WanAttention``'s probes); ``camera`` is
  ``(B, S, 12)`` pose features per token (``recammaster``), ``(B, S, dim)`` Plücker token embeddings
  (``plucker``), the adapter's ``cam_emb`` (``redirector``: RoCE input) or None; ``image_context`` the embedded image features
  ``(B, N, dim)`` or None.
  """
  config: WanConfig

  @nn.compact
  def __call__(self, x, context, tproj, rope_cos, rope_sin, camera, image_context):
    cfg = self.config
    f32 = jnp.float32
    table = self.param("scale_shift_table", nn.with_logical_partitioning(
        nn.initializers.normal(1.0 / math.sqrt(cfg.dim)), (None, None, "embed")), (1, 6, cfg.dim), cfg.param_dtype)
    mod = table.astype(f32) + tproj.astype(f32)
    shift, scale, gate, c_shift, c_scale, c_gate = (mod[:, i:i + 1] for i in range(6))
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))

    # 1. Self-attention on the modulated LayerNorm (+ camera embedding).
    h = _layer_norm(x, cfg.eps) * (1.0 + scale) + shift
    if cfg.camera_mode == "recammaster":
      h = h + _dense(cfg.dim, (None, "embed"), "cam_encoder", cfg.dtype, cfg.param_dtype,
                     kernel_init=nn.initializers.zeros_init())(camera).astype(f32)
    elif cfg.camera_mode == "plucker":
      h = h + _dense(cfg.dim, ("mlp", "embed"), "camera_proj", cfg.dtype, cfg.param_dtype,
                     kernel_init=nn.initializers.zeros_init())(camera).astype(f32)
    attn_out, q, k, q_pre, k_pre = WanAttention(cfg, name="attn1")(h.astype(cfg.dtype), rope=(rope_cos, rope_sin),
                                                                   camera=camera if cfg.roce else None)
    if cfg.camera_mode == "recammaster":
      attn_out = _dense(cfg.dim, ("heads", "embed"), "projector", cfg.dtype, cfg.param_dtype,
                        kernel_init=_identity_init)(attn_out)
    x = (x.astype(f32) + attn_out.astype(f32) * gate).astype(cfg.dtype)

    # 2. Cross-attention to the text, affine LayerNorm, no gate.
    if cfg.cross_attn_norm:
      h = nn.LayerNorm(epsilon=cfg.eps, use_fast_variance=False, dtype=f32, param_dtype=cfg.param_dtype,
                       scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
                       bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)),
                       name="norm2")(x.astype(f32)).astype(cfg.dtype)
    else:
      h = x
    x = x + WanAttention(cfg, name="attn2")(h, context=context, image_context=image_context)[0]

    # 3. Modulated GELU(tanh) FFN.
    h = (_layer_norm(x, cfg.eps) * (1.0 + c_scale) + c_shift).astype(cfg.dtype)
    h = _dense(cfg.ffn_dim, ("embed", "mlp"), "ffn_in", cfg.dtype, cfg.param_dtype)(h)
    h = _dense(cfg.dim, ("mlp", "embed"), "ffn_out", cfg.dtype, cfg.param_dtype)(nn.gelu(h, approximate=True))
    x = (x.astype(f32) + h.astype(f32) * c_gate).astype(cfg.dtype)
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
    return x, q, k, q_pre, k_pre


def _block_class(config: WanConfig):
  if config.remat_policy == "none":
    return WanBlock
  return nn.remat(WanBlock, policy=_remat_policies()[config.remat_policy], prevent_cse=not config.scan_layers)


class _ScanStep(nn.Module):
  """Scan body: one (rematerialised) block plus the per-probe buffers in the carry: q, k of every probe layer, then
  q_pre, k_pre of every pre-RoPE layer, then the block output x of every feature layer."""
  config: WanConfig
  probe_layers: tuple[int, ...]
  pre_rope_layers: tuple[int, ...] = ()
  feature_layers: tuple[int, ...] = ()
  hook_layer: int = -1
  hook_fn: Any = None  # (x) -> (delta, aux), applied after block hook_layer (WanDiT's feature_hook)

  @nn.compact
  def __call__(self, carry, context, tproj, rope_cos, rope_sin, camera, image_context):
    x, step, bufs, hook_buf = carry
    x, *qk = _block_class(self.config)(self.config, name="block")(x, context, tproj, rope_cos, rope_sin, camera,
                                                                  image_context)
    sources = [(layer, value) for layer in self.probe_layers for value in qk[:2]]
    sources += [(layer, value) for layer in self.pre_rope_layers for value in qk[2:]]
    sources += [(layer, x) for layer in self.feature_layers]
    bufs = tuple(jnp.where(step == layer, value, buf) for (layer, value), buf in zip(sources, bufs))
    if self.hook_fn is not None:
      x, aux = jax.lax.cond(step == self.hook_layer, lambda v, b: _apply_hook(self.hook_fn, v),
                            lambda v, b: (v, b), x, hook_buf[0])
      hook_buf = (aux,)
    return (x, step + 1, bufs, hook_buf), None


def _apply_hook(fn, x):
  """``(x + delta, aux)`` of a feature hook ``fn(x) → (delta, aux)``; the sum in float32, ``x``'s dtype kept."""
  delta, aux = fn(x)
  return (x.astype(jnp.float32) + delta.astype(jnp.float32)).astype(x.dtype), aux


def timestep_sinusoid(timestep: jnp.ndarray, dim: int) -> jnp.ndarray:
  """Wan's sinusoidal timestep embedding ``[cos | sin]``, ``(B,) → (B, dim)`` float32.

  Frequencies ``exp(−ln(10000)·i/(dim/2))``, ``i = 0..dim/2−1`` (diffusers ``Timesteps`` with
  ``flip_sin_to_cos=True, downscale_freq_shift=0``; Wan ``sinusoidal_embedding_1d``).
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / half)
  args = timestep.astype(jnp.float32)[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def _shape_error(argument: str, got: Any, expected: Any) -> ValueError:
  return ValueError(f"WanDiT: {argument} has shape {tuple(got)}, expected {expected}")


CAMERA_KEYS = {
    "recammaster": ("target_cam_to_world", "reference_cam_to_world"),
    "plucker": ("target_intrinsics", "target_cam_to_world", "reference_intrinsics", "reference_cam_to_world"),
    "redirector": ("target_intrinsics", "target_cam_to_world", "reference_intrinsics", "reference_cam_to_world"),
}


class WanDiT(nn.Module):
  """Camera-conditioned Wan2.1 DiT (module docstring). ``config``: a ``WanConfig``."""
  config: WanConfig

  def _validate(self, latents, timestep, context, reference_latents, cameras, probe_layers, image_context,
                pre_rope_layers=(), feature_layers=()):
    cfg = self.config
    if latents.ndim != 5 or latents.shape[-1] != cfg.in_channels:
      raise _shape_error("latents", latents.shape, f"(B, F, H, W, {cfg.in_channels})")
    b, f, h, w, _ = latents.shape
    if any(s % p for s, p in zip((f, h, w), cfg.patch_size)):
      raise _shape_error("latents", latents.shape,
                         f"(B, F, H, W, C) with (F, H, W) divisible by patch_size {cfg.patch_size}")
    if timestep.shape != (b,):
      raise _shape_error("timestep", timestep.shape, f"({b},)")
    if context.ndim != 3 or context.shape[0] != b or context.shape[2] != cfg.text_dim:
      raise _shape_error("context", context.shape, f"({b}, L, {cfg.text_dim})")
    if reference_latents is not None and reference_latents.shape != latents.shape:
      raise _shape_error("reference_latents", reference_latents.shape, f"{tuple(latents.shape)} (same as latents)")
    if image_context is not None:
      if not cfg.image_dim:
        raise ValueError(f"WanDiT: image_context {tuple(image_context.shape)} was given but config.image_dim is 0 "
                         "(this model has no image branch)")
      if image_context.ndim != 3 or image_context.shape[0] != b or image_context.shape[2] != cfg.image_dim:
        raise _shape_error("image_context", image_context.shape,
                           f"({b}, N, {cfg.image_dim}) image features (CLIP ViT-H/14: N = 257)")
    for name, layers in (("probe_layers", probe_layers), ("feature_layers", feature_layers)):
      for layer in layers:
        if not 0 <= int(layer) < cfg.num_layers:
          raise ValueError(f"WanDiT: {name} entry {layer} out of range, expected 0 <= layer < {cfg.num_layers}")
    if not set(pre_rope_layers) <= set(probe_layers):
      raise ValueError(f"WanDiT: pre_rope_layers {list(pre_rope_layers)} must be probe layers ({list(probe_layers)})")
    if cfg.camera_mode == "none":
      if cameras is not None:
        raise ValueError("WanDiT: cameras were given but config.camera_mode is 'none'")
      return
    if cameras is None:
      raise ValueError(f"WanDiT: cameras is None but config.camera_mode is {cfg.camera_mode!r}; expected a dict "
                       f"with keys {CAMERA_KEYS[cfg.camera_mode]}")
    frames = f * cfg.frames_per_latent
    keys = CAMERA_KEYS[cfg.camera_mode]
    if cfg.camera_mode in ("plucker", "redirector") and reference_latents is None:
      keys = tuple(k for k in keys if k != "reference_intrinsics")  # no reference tokens to condition
    for key in keys:
      if key not in cameras:
        raise ValueError(f"WanDiT: cameras lacks {key!r}; expected keys {keys}")
      trailing = (3, 3) if key.endswith("intrinsics") else (4, 4)
      expected = (b, frames) + trailing
      if tuple(cameras[key].shape) != expected:
        raise _shape_error(f"cameras[{key!r}]", cameras[key].shape,
                           f"{expected} (Tc = F·frames_per_latent = {f}·{cfg.frames_per_latent}, or the causal "
                           f"count {1 + cfg.frames_per_latent * (f - 1)})")

  @nn.compact
  def __call__(self, latents, timestep, context, *, reference_latents=None, cameras=None,
               probe_layers: Sequence[int] = (), image_context=None, pre_rope_layers: Sequence[int] = (),
               feature_layers: Sequence[int] = (), feature_hook: tuple[int, Any] | None = None, frame_offsets=None):
    """Predicts the flow-matching velocity of the target latents.

    Args:
      latents: ``(B, F, H, W, C_in)`` noisy target latents, channels-last.
      timestep: ``(B,)`` diffusion time ``1000·σ`` in ``[0, 1000]``.
      context: ``(B, L, text_dim)`` text embeddings (zero-padded to 512 tokens in Wan; no mask).
      reference_latents: ``(B, F, H, W, C_in)`` clean reference latents, or None (plain T2V).
      cameras: None (``camera_mode="none"``) or a dict of ``(B, Tc, 3, 3)`` pixel intrinsics
        ``target_intrinsics``/``reference_intrinsics`` (video of size ``(H·vae_stride, W·vae_stride)``)
        and ``(B, Tc, 4, 4)`` OpenCV ``target_cam_to_world``/``reference_cam_to_world`` (metres),
        ``Tc = F·frames_per_latent``, or the causal-VAE count ``1 + frames_per_latent·(F − 1)``
        (Wan: 81 frames for 21 latent frames), whose frame 0 is then repeated
        (``camera.pack_causal_camera_frames``). ``recammaster`` needs only the two poses, ``plucker``
        without reference latents needs no ``reference_intrinsics``. Poses are re-expressed
        relative to ``reference_cam_to_world[:, 0]`` here; ``redirector`` needs the same keys as
        ``plucker``.
      probe_layers: 0-based blocks whose self-attention q/k to return.
      pre_rope_layers: probe layers whose q/k are also returned before RoPE / RoCE (module docstring).
      feature_layers: 0-based blocks whose output, the residual stream after the block, to return (Track4Gen's
        feature tap; module docstring).
      feature_hook: ``(layer, fn)``: after block ``layer`` (and after its ``feature_layers`` tap), ``fn(x) →
        (delta, aux)`` is called on the residual stream ``x`` ``(B, S, dim)``, ``x + delta`` continues through the
        blocks above, and ``aux`` (one array) is returned as ``probes[layer]["hook"]``: Track4Gen's refiner and
        zero projection, which live outside the DiT's parameters (``fn`` closes over theirs). ``fn`` must be a
        pure function of arrays (it runs inside the scan, under ``lax.cond``, when ``scan_layers``).
      frame_offsets: ``(B, F, dim)`` added to every token of each target latent frame after the patch embedding
        (``models.frame_conditioning``: the given-frame marker; needs temporal patch 1), or None.
      image_context: ``(B, N, image_dim)`` image features (CLIP ViT-H/14 penultimate layer of the
        reference's first frame, ``N = 257``) for a model with ``image_dim > 0``, or None: the image
        branch is then off (its parameters are still created by ``init``).

    Returns:
      ``velocity`` ``(B, F, H, W, C_out)`` float32 for the target half; with ``probe_layers``
      ``(velocity, {layer: {"q": (B, S, heads, head_dim), "k": ...}})`` in the compute dtype (plus ``"q_pre"``,
      ``"k_pre"`` for ``pre_rope_layers``, ``"x"`` ``(B, S, dim)`` for ``feature_layers``, ``"hook"`` for the
      ``feature_hook`` layer), ``S`` = all tokens (target then reference).

    Raises:
      ValueError: naming the argument, the shape received and the shape expected, for wrong ranks
        or shapes, latents not divisible by the patch, camera frame counts other than
        ``F·frames_per_latent`` or ``1 + frames_per_latent·(F − 1)``, missing cameras, probe layers out of range,
        or image features of the wrong shape (or given to a model without an image branch).
    """
    cfg = self.config
    latents = jnp.asarray(latents)
    timestep = jnp.asarray(timestep)
    context = jnp.asarray(context)
    if reference_latents is not None:
      reference_latents = jnp.asarray(reference_latents)
    if image_context is not None:
      image_context = jnp.asarray(image_context)
    probe_layers = tuple(sorted({int(p) for p in probe_layers}))
    pre_rope_layers = tuple(sorted({int(p) for p in pre_rope_layers}))
    feature_layers = tuple(sorted({int(p) for p in feature_layers}))
    hook_layer, hook_fn = (-1, None) if feature_hook is None else (int(feature_hook[0]), feature_hook[1])
    if hook_fn is not None and not 0 <= hook_layer < cfg.num_layers:
      raise ValueError(f"WanDiT: feature_hook layer {hook_layer} out of range, expected 0 <= layer < "
                       f"{cfg.num_layers}")
    if cameras is not None and latents.ndim == 5:  # Causal-VAE frame counts (81 for 21 latents) → F·k.
      cameras = camera_lib.pack_causal_camera_frames(cameras, latents.shape[1], cfg.frames_per_latent)
    self._validate(latents, timestep, context, reference_latents, cameras, probe_layers, image_context,
                   pre_rope_layers, feature_layers)
    if image_context is None and cfg.image_dim and self.is_initializing():  # create the image-branch params
      image_context = jnp.zeros((latents.shape[0], 1, cfg.image_dim), jnp.float32)
    b, f_lat, h_lat, w_lat, _ = latents.shape
    gf, gh, gw = token_grid(cfg, latents.shape)
    n_view = gf * gh * gw
    dt, f32 = cfg.dtype, jnp.float32

    # Patchify both views with the same Conv3d; tokens [target | reference].
    patch = nn.Conv(cfg.dim, kernel_size=cfg.patch_size, strides=cfg.patch_size, padding="VALID", dtype=dt,
                    param_dtype=cfg.param_dtype, name="patch_embedding",
                    kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(),
                                                             (None, None, None, None, "embed")),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)))
    views = [latents] if reference_latents is None else [latents, reference_latents]
    if cfg.condition_channels:  # Fun's control channels, zero as ReDirector feeds them
      views = [jnp.pad(v, ((0, 0),) * 4 + ((0, cfg.condition_channels),)) for v in views]
    x = jnp.concatenate([patch(v.astype(dt)).reshape(b, n_view, cfg.dim) for v in views], axis=1)
    if frame_offsets is not None:
      if cfg.patch_size[0] != 1 or tuple(np.shape(frame_offsets)) != (b, f_lat, cfg.dim):
        raise _shape_error("frame_offsets", np.shape(frame_offsets),
                           f"({b}, {f_lat}, {cfg.dim}) with temporal patch 1 (patch_size {cfg.patch_size})")
      offsets = jnp.repeat(jnp.asarray(frame_offsets, f32), gh * gw, axis=1)               # (B, n_view, dim)
      x = x.at[:, :n_view].set((x[:, :n_view].astype(f32) + offsets).astype(dt))
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))

    cos, sin = rope_lib.rope_tables(gf, gh, gw, cfg.head_dim, with_reference=reference_latents is not None,
                                    rope_mode=cfg.rope_mode, reference_offset=cfg.rope_reference_offset or None,
                                    theta=cfg.rope_theta)

    # Time and text embeddings (time path in float32).
    dense32 = lambda n, name, axes: _dense(n, axes, name, f32, cfg.param_dtype)
    temb = dense32(cfg.dim, "time_embedding_0", (None, "embed"))(timestep_sinusoid(timestep, cfg.freq_dim))
    temb = dense32(cfg.dim, "time_embedding_2", ("mlp", "embed"))(nn.silu(temb))
    tproj = dense32(6 * cfg.dim, "time_projection", ("embed", "mlp"))(nn.silu(temb)).reshape(b, 6, cfg.dim)
    ctx = _dense(cfg.dim, (None, "embed"), "text_embedding_0", dt, cfg.param_dtype)(context.astype(dt))
    ctx = _dense(cfg.dim, ("mlp", "embed"), "text_embedding_2", dt, cfg.param_dtype)(nn.gelu(ctx, approximate=True))
    img = None
    if image_context is not None:  # diffusers WanImageEmbedding / Wan ``img_emb``: FP32 LayerNorms, exact GELU
      norm = lambda name: nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, dtype=f32, param_dtype=cfg.param_dtype,
                                       name=name)
      img = norm("image_embedder_norm1")(image_context.astype(f32)).astype(dt)
      img = _dense(cfg.image_dim, (None, "mlp"), "image_embedder_ff_0", dt, cfg.param_dtype)(img)
      img = _dense(cfg.dim, ("mlp", "embed"), "image_embedder_ff_2", dt, cfg.param_dtype)(
          nn.gelu(img, approximate=False))
      img = norm("image_embedder_norm2")(img.astype(f32)).astype(dt)

    # Camera conditioning → a per-token input of every block.
    cam = None
    if cfg.camera_mode == "recammaster":
      feats = camera_lib.recammaster_pose_features(cameras["target_cam_to_world"], cameras["reference_cam_to_world"],
                                                   cfg.frames_per_latent)  # (B, F, 12)
      frame_of_token = np.repeat(np.arange(gf), gh * gw)
      frame_of_token = np.tile(frame_of_token, len(views))  # target pose repeated onto the reference half
      cam = feats[:, frame_of_token].astype(dt)
    elif cfg.camera_mode == "plucker":
      encoder = camera_lib.PluckerPatchEncoder(cfg.dim, cfg.patch_size, dtype=dt, param_dtype=cfg.param_dtype,
                                               name="camera_encoder")
      prefixes = ["target"] if reference_latents is None else ["target", "reference"]
      cam = jnp.concatenate([
          encoder(camera_lib.plucker_latent_maps(
              cameras[f"{p}_intrinsics"], cameras[f"{p}_cam_to_world"], cameras["reference_cam_to_world"],
              h_lat, w_lat, cfg.vae_stride, cfg.frames_per_latent)) for p in prefixes], axis=1)
    elif cfg.camera_mode == "redirector":
      adapter = camera_lib.ControlAdapter(cfg.dim, cfg.patch_size[1:], cfg.vae_stride, dtype=dt,
                                          param_dtype=cfg.param_dtype, name="control_adapter")
      prefixes = ["target"] if reference_latents is None else ["target", "reference"]
      cam = jnp.concatenate([
          adapter(camera_lib.plucker_pixel_maps(
              cameras[f"{p}_intrinsics"], cameras[f"{p}_cam_to_world"], cameras["reference_cam_to_world"],
              h_lat * cfg.vae_stride, w_lat * cfg.vae_stride, cfg.frames_per_latent)) for p in prefixes], axis=1)
      cam = nn.with_logical_constraint(cam, ("batch", "length", "embed"))
      x = (x.astype(f32) + cam.astype(f32)).astype(dt)  # Fun adds cam_emb to the patch embeddings

    # Blocks.
    probes = {}
    if cfg.scan_layers:
      q_shape = (b, x.shape[1], cfg.num_heads, cfg.head_dim)
      bufs = tuple(nn.with_logical_constraint(jnp.zeros(q_shape, dt), ("batch", "length", "heads", "kv"))
                   for _ in range(2 * (len(probe_layers) + len(pre_rope_layers))))
      bufs += tuple(nn.with_logical_constraint(jnp.zeros_like(x), ("batch", "length", "embed"))
                    for _ in feature_layers)
      scan = nn.scan(_ScanStep, variable_axes={"params": 0}, split_rngs={"params": True},
                     in_axes=(nn.broadcast,) * 6, length=cfg.num_layers,
                     metadata_params={nn.PARTITION_NAME: "layers"})
      hook_buf = () if hook_fn is None else (
          jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(hook_fn, x)[1]),)
      (x, _, bufs, hook_buf), _ = scan(cfg, probe_layers, pre_rope_layers, feature_layers, hook_layer, hook_fn,
                                       name="blocks")((x, jnp.zeros((), jnp.int32), bufs, hook_buf), ctx, tproj,
                                                      cos, sin, cam, img)
      n = 2 * len(probe_layers)
      probes = {layer: {"q": bufs[2 * i], "k": bufs[2 * i + 1]} for i, layer in enumerate(probe_layers)}
      for i, layer in enumerate(pre_rope_layers):
        probes[layer].update(q_pre=bufs[n + 2 * i], k_pre=bufs[n + 2 * i + 1])
      n += 2 * len(pre_rope_layers)
      for i, layer in enumerate(feature_layers):
        probes.setdefault(layer, {})["x"] = bufs[n + i]
      if hook_fn is not None:
        probes.setdefault(hook_layer, {})["hook"] = hook_buf[0]
    else:
      block_cls = _block_class(cfg)
      for i in range(cfg.num_layers):
        x, q, k, q_pre, k_pre = block_cls(cfg, name=f"blocks_{i}")(x, ctx, tproj, cos, sin, cam, img)
        if i in probe_layers:
          probes[i] = {"q": q, "k": k}
        if i in pre_rope_layers:
          probes[i].update(q_pre=q_pre, k_pre=k_pre)
        if i in feature_layers:
          probes.setdefault(i, {})["x"] = x
        if i == hook_layer:
          x, aux = _apply_hook(hook_fn, x)
          probes.setdefault(i, {})["hook"] = aux

    # Output head on the target tokens, unpatchify.
    table = self.param("scale_shift_table", nn.with_logical_partitioning(
        nn.initializers.normal(1.0 / math.sqrt(cfg.dim)), (None, None, "embed")), (1, 2, cfg.dim), cfg.param_dtype)
    mod = table.astype(f32) + temb[:, None, :]
    shift, scale = mod[:, 0:1], mod[:, 1:2]
    y = (_layer_norm(x[:, :n_view], cfg.eps) * (1.0 + scale) + shift).astype(dt)
    pt, ph, pw = cfg.patch_size
    y = _dense(pt * ph * pw * cfg.out_channels, ("embed", None), "proj_out", dt, cfg.param_dtype)(y)
    y = y.reshape(b, gf, gh, gw, pt, ph, pw, cfg.out_channels)
    y = jnp.transpose(y, (0, 1, 4, 2, 5, 3, 6, 7)).reshape(b, f_lat, h_lat, w_lat, cfg.out_channels)
    velocity = y.astype(f32)
    if probe_layers or feature_layers or hook_fn is not None:
      return velocity, probes
    return velocity

