"""MVTrack4Gen: one object owning the DiT, the tracking head and the autoencoder, for training and inference.

The training objective (``losses.objective``), the trainer (``training.tasks``), ``generate``,
``probe`` and ``evaluate`` all go through it, so the glue between a batch and the networks exists
once (maxdiffusion's pipeline object plays the same role):

- :meth:`MVTrack4Gen.prepare` — a batch in the pipeline layout → everything the networks take:
  both views' latents (from the batch, else encoded), the four camera arrays with poses relative
  to the reference camera at frame 0 (the one place they are made relative), the same at
  latent-frame rate for the head, tracks/visibility at latent-frame rate, query points at latent
  frames, the valid-point mask, and the text context (the batch's, zero-padded to
  ``context_length`` as Wan pads prompts, else the null context);
- :meth:`MVTrack4Gen.velocity` — one ``WanDiT`` forward on ``noisy target ⊕ clean reference``
  (optionally returning probe-layer q/k);
- :meth:`MVTrack4Gen.track` — the head on those probes;
- :meth:`MVTrack4Gen.init` — initial parameters ``{"dit", "head", "text"}``;
- built from a run config by ``mvtrack_jax.builders.build_model`` (which also reads weights the
  config names, so that no model module loads files).

**Text.** A model trained with umT5 caption embeddings (``with_text``: ``config.text.cache`` set)
keeps the **null context** — the umT5 embedding of the empty prompt, zero-padded to
``(context_length, text_dim)`` — in its params as ``params["text"]["null_context"]``: a frozen
buffer (never trainable, checked by ``training.tasks``), initialised from the text cache's
``null.npy`` on a new run and carried by checkpoints and exports, so inference needs no text
encoder for it. It is the context of a batch without captions and of caption dropout; at sampling the
negative branch of guidance is Wan's standard negative prompt by default and this embedding when
``negative_prompt=""`` (``inference.novel_view``). A model without text has no ``"text"`` params and its null context is all zeros.
**Image context.** A DiT with an image branch (``image_dim > 0``: the ReDirector / Wan2.1-Fun
backbone) reads the batch's ``image_context`` ``(B, N, image_dim)`` — CLIP features of the reference
view's first frame, from the image cache (``data.encode_image``) or computed by ``generate`` — in
both branches of classifier-free guidance (as ReDirector does; only the text is dropped). A batch
without it runs with the image branch off.

Latent-frame rate: with temporal factor ``k`` latent frame ``f`` is video frame ``f·k``
(``models.autoencoder``). The object is a frozen, hashable dataclass, so jitted functions can take
it as a static argument.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from mvtrack_jax import geometry
from mvtrack_jax.models import autoencoder as ae_lib
from mvtrack_jax.models import frame_conditioning as conditioning_lib
from mvtrack_jax.models import refiner as refiner_lib
from mvtrack_jax.models import tracking_head as head_lib
from mvtrack_jax.models import wan as wan_lib

Array = Any

CAMERA_KEYS = ("reference_intrinsics", "target_intrinsics", "reference_cam_to_world", "target_cam_to_world")


def token_views(tokens: Array, grid: tuple[int, int, int]) -> Array:
  """DiT tokens ``(B, 2·F·h·w, D)`` (target view first, the DiT's order) → ``(B, 2, F, h, w, D)`` with view 0 =
  reference and 1 = target (the tracks' order)."""
  return tokens.reshape(tokens.shape[0], 2, *grid, tokens.shape[-1])[:, ::-1]


@dataclasses.dataclass(frozen=True)
class MVTrack4Gen:
  """The networks of one model (see the module docstring).

  Attributes:
    dit: the camera-conditioned ``WanDiT``.
    head: the ``MVTAPHead``, or None (diffusion-only model).
    autoencoder: ``PixelAutoencoder`` or ``WanVAEAutoencoder`` (its factors must match the DiT's).
    head_layers: 0-based DiT layers whose q/k (concatenated) feed the head.
    head_probe_rope: ``"after"`` (the attention's q/k, after RoPE and RoCE) or ``"before"`` (the same q/k before
      them) as the head's input; the DiT returns both for the head layers then (``WanDiT`` ``pre_rope_layers``).
    context_length: text tokens ``L`` every context is zero-padded to (Wan: 512).
    with_text: params carry ``text/null_context`` (module docstring).
    refiner: Track4Gen's ``FeatureRefiner`` on the residual stream after block ``feat_layer``, or None. Its
      parameters (``params["refiner"]``: ``{"refiner", "zeta"}``) sit outside the DiT's; the refined features,
      gradients detached, return through the zero projection ``ζ`` when ``feat_inject``
      (:meth:`velocity`).
    feat_layer: the 0-based block the refiner reads (``WanDiT`` ``feature_hook``).
    feat_inject: add ``ζ(stop_gradient(refined))`` to the stream (Track4Gen); False leaves the refiner a pure
      training head (an ablation).
    given_frames: leading target latent frames given clean (``models.frame_conditioning``; 1 = image-to-video, 0 =
      off). Their clean latents come from the target when :meth:`prepare` has one (training), else from the
      reference's first frames (sampling: the target trajectory starts at the reference camera); the marker is
      ``params["conditioning"]``.
  """

  dit: wan_lib.WanDiT
  head: head_lib.MVTAPHead | None
  autoencoder: Any
  head_layers: tuple[int, ...] = ()
  head_probe_rope: str = "after"
  context_length: int = 512
  with_text: bool = False
  refiner: refiner_lib.FeatureRefiner | None = None
  feat_layer: int = -1
  feat_inject: bool = True
  given_frames: int = 0

  def __post_init__(self):
    cfg = self.dit.config
    if cfg.vae_stride != self.autoencoder.spatial_factor or cfg.frames_per_latent != self.autoencoder.temporal_factor:
      raise ValueError(f"MVTrack4Gen: DiT vae_stride/frames_per_latent = {cfg.vae_stride}/{cfg.frames_per_latent} "
                       f"but the autoencoder has {self.autoencoder.spatial_factor}/{self.autoencoder.temporal_factor}")
    if cfg.patch_size[1] != cfg.patch_size[2]:
      raise ValueError(f"MVTrack4Gen: non-square token patches {cfg.patch_size} are not supported")
    bad = [l for l in self.head_layers if not 0 <= l < cfg.num_layers]
    if bad:
      raise ValueError(f"MVTrack4Gen: head layers {bad} out of range for a {cfg.num_layers}-layer DiT")
    if self.head is not None and not self.head_layers:
      raise ValueError("MVTrack4Gen: a tracking head needs head_layers")
    if self.head_probe_rope not in ("before", "after"):
      raise ValueError(f"MVTrack4Gen: head_probe_rope={self.head_probe_rope!r}, expected 'before' or 'after'")
    if self.given_frames < 0 or (self.given_frames and cfg.patch_size[0] != 1):
      raise ValueError(f"MVTrack4Gen: given_frames={self.given_frames} needs >= 0 and a temporal patch of 1 "
                       f"(patch_size {cfg.patch_size})")
    if self.refiner is not None and not 0 <= self.feat_layer < cfg.num_layers:
      raise ValueError(f"MVTrack4Gen: feat_layer {self.feat_layer} out of range for a {cfg.num_layers}-layer DiT")

  @property
  def token_stride(self) -> int:
    """Video pixels per DiT token along each axis (``vae_stride · patch``)."""
    return self.dit.config.vae_stride * self.dit.config.patch_size[1]

  @property
  def temporal_factor(self) -> int:
    return self.autoencoder.temporal_factor

  def latents(self, batch: Mapping[str, Array], view: str) -> jax.Array:
    """``batch[f"{view}_latents"]`` when the input side provides them (latent cache, or encoded by
    the iterator for a frozen Wan VAE), else ``autoencoder.encode(batch[f"{view}_video"])``."""
    key = f"{view}_latents"
    if key in batch:
      return jnp.asarray(batch[key], jnp.float32)
    return self.autoencoder.encode(batch[f"{view}_video"])

  def null_context(self, params: Mapping[str, Any] | None, batch_size: int) -> jax.Array:
    """``(B, context_length, text_dim)`` float32: ``params["text"]["null_context"]`` for a model with
    text, else zeros (module docstring).

    Raises:
      ValueError: a model with text whose ``params`` lack ``text/null_context``.
    """
    shape = (batch_size, self.context_length, self.dit.config.text_dim)
    if not self.with_text:
      return jnp.zeros(shape, jnp.float32)
    if params is None or "text" not in params:
      raise ValueError("MVTrack4Gen.null_context: this model was trained with text (config.text.cache) but the "
                       f"params have no text/null_context (top-level keys: {sorted(params or {})})")
    return jnp.broadcast_to(jnp.asarray(params["text"]["null_context"], jnp.float32), shape)

  def pad_context(self, context: Array) -> jax.Array:
    """``(B, L, text_dim)`` text embeddings zero-padded to ``(B, context_length, text_dim)`` float32.

    Raises:
      ValueError: wrong rank or width, or ``L > context_length``.
    """
    context = jnp.asarray(context, jnp.float32)
    if context.ndim != 3 or context.shape[2] != self.dit.config.text_dim or context.shape[1] > self.context_length:
      raise ValueError(f"context: expected (B, L <= {self.context_length}, {self.dit.config.text_dim}) text "
                       f"embeddings, got {tuple(context.shape)}")
    return jnp.pad(context, ((0, 0), (0, self.context_length - context.shape[1]), (0, 0)))

  def prepare(self, batch: Mapping[str, Array], params: Mapping[str, Any] | None = None, *,
              target: Array | None = None) -> dict[str, Any]:
    """Everything the networks need from a batch in the pipeline layout (module docstring).

    Args:
      batch: ``reference_latents`` (or ``reference_video``, encoded here), the four camera arrays
        ``(B, T, …)``; optionally ``target_latents`` / ``target_video``, ``context``
        ``(B, L, text_dim)``, ``image_context`` ``(B, N, image_dim)``, and for tracking
        ``query_points``, ``tracks``, ``visible``, ``track_mask``.
      params: the model's params; only their null context is read, for a batch without
        ``context`` (see :meth:`null_context`).
      target: target latents to use instead of the batch's (e.g. a generated video's).

    Returns:
      dict with ``reference`` (and, when known, ``target``) latents ``(B, F, h, w, C)``,
      ``cameras`` (video rate, relative to the reference camera at frame 0), ``head_cameras``
      (latent rate), ``context``, ``grid`` ``(F, h, w)`` and ``image_size`` ``(H, W)`` (Python
      ints); ``image_context`` float32 when the batch has it; with query points also ``query``
      ``(B, N, 3)`` at latent frames (with tracks, moved to their ground-truth position at the
      latent frame: ``autoencoder.queries_at_latent_frames``) and
      ``point_mask`` ``(B, N)`` (padding, points outside the frame and points visible at no latent
      frame are False); with tracks also ``tracks``
      ``(B, 2, F, N, 2)`` and ``visible`` ``(B, 2, F, N)`` at latent-frame rate.
    """
    reference = self.latents(batch, "reference")
    if target is None and ("target_latents" in batch or "target_video" in batch):
      target = self.latents(batch, "target")
    b = reference.shape[0]
    s = self.autoencoder.spatial_factor
    height, width = reference.shape[2] * s, reference.shape[3] * s
    cameras = relative_cameras(batch)
    idx = ae_lib.latent_frame_indices(cameras["reference_cam_to_world"].shape[1], self.temporal_factor)
    grid = wan_lib.token_grid(self.dit.config, reference.shape)
    context = batch.get("context")
    out = {"reference": reference, "cameras": cameras, "head_cameras": {k: v[:, idx] for k, v in cameras.items()},
           "context": self.null_context(params, b) if context is None else self.pad_context(context),
           "grid": grid, "image_size": (int(height), int(width))}
    if target is not None:
      out["target"] = jnp.asarray(target, jnp.float32)
    if self.given_frames:
      if params is None or "conditioning" not in params:
        raise ValueError("MVTrack4Gen.prepare: a model with given_frames needs params['conditioning'] (the marker)")
      given = conditioning_lib.leading_frames(b, grid[0], self.given_frames)
      out["given"] = given
      out["given_latents"] = out["target"] if target is not None else reference
      out["frame_offsets"] = conditioning_lib.FrameMarker(self.dit.config.dim).apply(
          {"params": params["conditioning"]}, given)
    if "image_context" in batch:
      out["image_context"] = jnp.asarray(batch["image_context"], jnp.float32)
    if "query_points" in batch:
      query = jnp.asarray(batch["query_points"], jnp.float32)
      qx, qy = query[..., 1], query[..., 2]
      mask = (qx >= 0) & (qx < width) & (qy >= 0) & (qy < height)
      if "track_mask" in batch:
        mask = mask & jnp.asarray(batch["track_mask"], bool)
      if "tracks" in batch:  # training / evaluation: the GT position at the query's latent frame
        out["query"], ok = ae_lib.queries_at_latent_frames(
            query, jnp.asarray(batch["tracks"], jnp.float32)[:, 0], jnp.asarray(batch["visible"], bool)[:, 0],
            self.temporal_factor, grid[0])
        mask = mask & ok
      else:
        out["query"] = ae_lib.query_frames_to_latent(query, self.temporal_factor, grid[0])
      out["point_mask"] = mask
    if "tracks" in batch:
      out["tracks"], out["visible"] = ae_lib.tracks_to_latent_rate(
          jnp.asarray(batch["tracks"], jnp.float32), jnp.asarray(batch["visible"], bool), self.temporal_factor)
    return out

  def velocity(self, dit_params: Any, noisy: Array, timestep: Array, prepared: Mapping[str, Any],
               probe_layers: tuple[int, ...] = (), context: Array | None = None, refiner_params: Any = None,
               with_refined: bool = False, feature_layers: tuple[int, ...] = ()):
    """One DiT forward on ``noisy ⊕ prepared["reference"]`` at ``timestep`` ``(B,)`` in [0, 1000].

    Returns ``velocity`` ``(B, F, h, w, C)``, or ``(velocity, probes)`` with ``probe_layers`` (head layers among
    them carry the unrotated ``q_pre``/``k_pre`` too when ``head_probe_rope="before"``) or ``with_refined``.
    ``context`` overrides ``prepared["context"]`` (e.g. the null branch of guidance); the image
    context, when prepared, is used either way. A model with a ``refiner`` needs ``refiner_params``
    (``params["refiner"]``, whichever output is asked for); ``probes[feat_layer]["refined"]`` ``(B, 2, F, h, w,
    D)`` are the refined features of both views (view 0 = reference, 1 = target, as ``prepared["tracks"]``), and
    ``ζ(stop_gradient(refined))`` is added to the stream after that block,
    so ``L_diff`` never trains the refiner and a loss on the refined features reaches the blocks up to
    ``feat_layer`` only. ``feature_layers`` add ``probes[l]["features"]`` ``(B, 2, F, h, w, dim)``: the residual
    stream after block ``l`` (before the refiner's ζ is added at ``feat_layer``), in the same view layout.
    With ``given_frames``, the given frames of ``noisy`` are replaced by ``prepared["given_latents"]``'s and marked
    (``models.frame_conditioning``); the velocity of those frames is the network's and means nothing.
    """
    cfg = self.dit.config
    cameras = None if cfg.camera_mode == "none" else prepared["cameras"]
    hook = None
    if self.refiner is not None:
      if refiner_params is None:
        raise ValueError("MVTrack4Gen.velocity: this model has a refiner; pass refiner_params (params['refiner'])")
      hook = (self.feat_layer, functools.partial(self._refine, refiner_params, prepared["grid"]))
    if "given" in prepared:
      noisy = conditioning_lib.impose(jnp.asarray(noisy), prepared["given_latents"], prepared["given"])
    out = self.dit.apply({"params": dit_params}, jnp.asarray(noisy).astype(cfg.dtype), timestep,
                         prepared["context"] if context is None else context,
                         reference_latents=prepared["reference"].astype(cfg.dtype), cameras=cameras,
                         probe_layers=probe_layers, image_context=prepared.get("image_context"),
                         pre_rope_layers=tuple(l for l in probe_layers if l in self.head_layers)
                         if self.head_probe_rope == "before" else (), feature_hook=hook,
                         feature_layers=feature_layers, frame_offsets=prepared.get("frame_offsets"))
    if hook is None and not feature_layers:
      return out
    velocity, probes = out
    if not (probe_layers or with_refined or feature_layers):
      return velocity
    probes = {layer: dict(p) for layer, p in probes.items()}
    for layer in feature_layers:
      probes[layer]["features"] = token_views(probes[layer].pop("x"), prepared["grid"])
    if hook is not None:
      probes[self.feat_layer]["refined"] = token_views(probes[self.feat_layer].pop("hook"), prepared["grid"])
    return velocity, probes

  def _refine(self, params: Mapping[str, Any], grid: tuple[int, int, int], x: jax.Array):
    """``WanDiT``'s feature hook: ``(ζ(stop_gradient(R(x))), R(x))`` on ``x`` ``(B, S, D)``, the refiner run on each
    view's token grid (never across the two views)."""
    b, _, d = x.shape
    views = x.reshape(b * 2, *grid, d)
    refined = self.refiner.apply({"params": params["refiner"]}, views).reshape(x.shape)
    delta = refiner_lib.ZeroProjection(dtype=self.refiner.config.dtype).apply(
        {"params": params["zeta"]}, jax.lax.stop_gradient(refined))
    return (delta if self.feat_inject else jnp.zeros_like(delta)), refined

  def track(self, head_params: Any, probes: Mapping[int, Any], prepared: Mapping[str, Any]) -> dict[str, jax.Array]:
    """The head on the probes of :meth:`velocity` (``MVTAPHead`` outputs, every iteration)."""
    if self.head is None:
      raise ValueError("MVTrack4Gen.track: this model has no tracking head (diffusion-only)")
    q_feat, k_feat = head_lib.features_from_probes(probes, self.head_layers, pre_rope=self.head_probe_rope == "before")
    return self.head.apply({"params": head_params}, q_feat, k_feat, prepared["query"], grid=prepared["grid"],
                           token_stride=self.token_stride, cameras=prepared["head_cameras"],
                           point_mask=prepared["point_mask"])

  def init(self, rng: jax.Array, batch: Mapping[str, Array]) -> dict[str, Any]:
    """Initial ``{"dit": ..., "head": ..., "text": ..., "refiner": ..., "conditioning": ...}`` params for batches shaped like ``batch``
    (jit-able; the parts the model has). The refiner's are ``{"refiner", "zeta"}``, identity and zero at the start.

    The head is initialised on zero probe features of the right shape (no DiT forward needed); the
    null context of a model with text starts as zeros (the trainer overlays the text cache's).
    """
    rng_d, rng_h = jax.random.split(rng)
    cfg = self.dit.config
    text = {"null_context": jnp.zeros((self.context_length, cfg.text_dim), jnp.float32)}
    marker = conditioning_lib.FrameMarker(cfg.dim)
    conditioning = marker.init(rng, jnp.zeros((1, 1), bool))["params"] if self.given_frames else None
    p = self.prepare(batch, {"text": text, "conditioning": conditioning})
    b = p["reference"].shape[0]
    cameras = None if cfg.camera_mode == "none" else p["cameras"]
    params = {"dit": self.dit.init(rng_d, p["reference"], jnp.zeros((b,), jnp.float32), p["context"],
                                   reference_latents=p["reference"], cameras=cameras)["params"]}
    if self.with_text:
      params["text"] = text
    if conditioning is not None:
      params["conditioning"] = conditioning
    if self.head is not None:
      grid = p["grid"]
      feats = jnp.zeros((b, 2 * grid[0] * grid[1] * grid[2], len(self.head_layers) * cfg.dim), jnp.float32)
      params["head"] = self.head.init(rng_h, feats, feats, p["query"], grid=grid, token_stride=self.token_stride,
                                      cameras=p["head_cameras"])["params"]
    if self.refiner is not None:
      rng_r, rng_z = jax.random.split(jax.random.fold_in(rng, 2))
      views = jnp.zeros((2 * b, *p["grid"], cfg.dim), jnp.float32)
      zeta = refiner_lib.ZeroProjection(dtype=self.refiner.config.dtype)
      params["refiner"] = {"refiner": self.refiner.init(rng_r, views)["params"],
                           "zeta": zeta.init(rng_z, views)["params"]}
    return params


def relative_cameras(batch: Mapping[str, Array]) -> dict[str, jax.Array]:
  """The four camera arrays as float32, poses relative to ``reference_cam_to_world[:, 0]``.

  Idempotent: pipeline batches are already relative (their reference pose at frame 0 is the identity).
  """
  ref0 = jnp.asarray(batch["reference_cam_to_world"], jnp.float32)[:, :1]
  out = {}
  for key in CAMERA_KEYS:
    value = jnp.asarray(batch[key], jnp.float32)
    out[key] = geometry.relative_to_reference(value, ref0) if key.endswith("cam_to_world") else value
  return out
