"""Novel-view generation and tracking with a trained MVTrack4Gen model.

:class:`NovelViewGenerator` wraps a :class:`~mvtrack_jax.inference.checkpoint.LoadedModel`:

- :meth:`~NovelViewGenerator.generate`: the reference video is encoded (clean), the target
  latents start from Gaussian noise at ``σ = 1`` and are integrated to ``σ = 0`` with the Euler
  sampler on the shifted inference grid (``diffusion.sampler``; 50 steps, the model's training shift:
  5 for Wan / ReCamMaster), the DiT seeing
  ``target_noisy ⊕ reference`` and both views' cameras at every step, exactly as in training
  (``MVTrack4Gen.prepare`` / ``velocity``, as ``losses.objective``). Classifier-free guidance with
  scale ``g`` combines the velocity under the conditioning text context with the velocity under the
  negative context: ``v̂ = v_neg + g·(v_cond − v_neg)``; both branches run as one batch of ``2B``.
  Either context defaults to the model's **null context** (``MVTrack4Gen.null_context``: the umT5
  embedding of the empty prompt stored with a model trained with text, zeros otherwise), as Wan's
  pipelines default the negative prompt to ``""``. When neither is given both branches are the
  null context, guidance is the identity and the second branch is skipped (one DiT call per step).
  A DiT with an image branch (ReDirector / Wan2.1-Fun) also takes ``image_context``, the CLIP
  features of each clip's reference first frame (computed by the generator's ``image_encoder``,
  :func:`image_encoder_for`), in both branches.
- :meth:`~NovelViewGenerator.track`: the tracking head predicts where reference-view query points
  are in both views. It reads the probe q/k of one extra DiT forward on the generated target latents
  noised to ``track_sigma`` (default: the smallest σ of the training grid, 0.005 for shift 5, so the
  features are in the training distribution and nearly clean — DiffTrack finds correspondence
  sharpest at low noise). Tracks are at latent-frame rate (video frames ``0, k, 2k, …``).

Inputs are batches in the pipeline layout (``data.pipeline``): ``reference_video`` ``(B, T, H, W,
3)`` uint8, ``reference_intrinsics``/``target_intrinsics`` ``(B, T, 3, 3)`` pixels,
``reference_cam_to_world``/``target_cam_to_world`` ``(B, T, 4, 4)`` OpenCV, metres (made
relative to the reference camera at frame 0 by ``MVTrack4Gen.prepare``), ``query_points`` ``(B, N, 3)`` ``(t, x, y)``
(video frame, pixels, corner origin). The model's own frame count / resolution is
``config.data``; other sizes work when the autoencoder and token grid divide them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from mvtrack_jax.diffusion.flow_matching import FlowMatchingSchedule, add_noise
from mvtrack_jax.diffusion.sampler import euler_sample, guided_velocity
from mvtrack_jax.geometry import cameras as geometry
from mvtrack_jax.inference.checkpoint import LoadedModel
from mvtrack_jax.models import autoencoder as ae_lib
from mvtrack_jax.models.mvtrack4gen import CAMERA_KEYS, MVTrack4Gen

Array = Any

CLIP_KEYS = ("reference_video",) + CAMERA_KEYS


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """Sampler settings (ReCamMaster / ReDirector inference: 50 steps, shift 5, CFG 5, seed 0).

  Attributes:
    num_steps: Euler steps.
    guidance_scale: classifier-free guidance scale ``g`` (1 = no guidance).
    seed: PRNG seed of the initial noise (and of the tracking noise).
    shift: timestep shift of the inference grid; None = the shift the model was trained with
      (``objective.schedule.shift``: 5 for Wan / ReCamMaster, lower for small pixel-space models).
    track_sigma: noise level of the tracking forward; None = smallest σ of the training grid.
    visibility_threshold: a point is predicted visible when ``σ(vis)·σ(conf) >`` this (MV-TAP: 0.6).
  """

  num_steps: int = 50
  guidance_scale: float = 5.0
  seed: int = 0
  shift: float | None = None
  track_sigma: float | None = None
  visibility_threshold: float = 0.6

  def __post_init__(self):
    if self.num_steps < 1:
      raise ValueError(f"SamplingConfig: num_steps must be >= 1, got {self.num_steps}")
    if not np.isfinite(self.guidance_scale):
      raise ValueError(f"SamplingConfig: guidance_scale must be finite, got {self.guidance_scale}")
    if self.track_sigma is not None and not 0.0 <= self.track_sigma <= 1.0:
      raise ValueError(f"SamplingConfig: track_sigma must be in [0, 1], got {self.track_sigma}")

  def schedule(self, trained: FlowMatchingSchedule) -> FlowMatchingSchedule:
    """The inference schedule: ``shift`` (or the model's ``trained`` shift when None), ``num_steps``."""
    shift = trained.shift if self.shift is None else self.shift
    return dataclasses.replace(trained, shift=shift, num_inference_steps=self.num_steps)


# Module-level jits with the (hashable) model static: every generator of the same model shares one
# compiled executable per input shape.
@functools.partial(jax.jit, static_argnames=("model", "guided"))
def _velocity(model: MVTrack4Gen, params, x, sigma, inputs, negative, guidance_scale, guided):
  """The (guided) velocity at ``sigma``; cond and negative branches as one batch of 2B."""
  p = model.prepare(inputs, params)
  b = x.shape[0]
  timestep = jnp.full((b,), 1000.0, jnp.float32) * sigma
  if not guided:
    return model.velocity(params["dit"], x, timestep, p)
  negative = model.null_context(params, b) if negative is None else model.pad_context(negative)
  both = lambda a: jnp.concatenate([a, a], axis=0)
  doubled = {"reference": both(p["reference"]), "cameras": jax.tree.map(both, p["cameras"]),
             "context": jnp.concatenate([p["context"], negative], axis=0)}
  if "image_context" in p:  # the same image in both branches: guidance is on the text only
    doubled["image_context"] = both(p["image_context"])
  v_cond, v_neg = jnp.split(model.velocity(params["dit"], both(x), both(timestep), doubled), 2, axis=0)
  return guided_velocity(v_cond, v_neg, guidance_scale)


@functools.partial(jax.jit, static_argnames=("model",))
def _track(model: MVTrack4Gen, params, inputs, target_latents, noise, sigma):
  """Head predictions (last iteration) from the probe q/k of the DiT on noised target latents."""
  p = model.prepare(inputs, params, target=target_latents)
  b = target_latents.shape[0]
  noisy = add_noise(p["target"], noise, jnp.full((b,), sigma))
  timestep = jnp.full((b,), 1000.0, jnp.float32) * sigma
  _, probes = model.velocity(params["dit"], noisy, timestep, p, probe_layers=model.head_layers)
  pred = model.track(params["head"], probes, p)
  return pred["tracks"][-1], pred["visibility"][-1], pred["confidence"][-1], p["point_mask"]


def image_encoder_for(model: LoadedModel, path: str | None = None):
  """The CLIP image encoder a loaded model's image branch needs, or None.

  Args:
    model: the loaded model; its config's ``image`` block names the encoder and preprocessing.
    path: an encoder folder overriding ``config.image.encoder`` (e.g. ``generate --image_encoder``).

  Returns:
    ``models.image_encoder.CLIPImageEncoder`` (torch, loaded now), or None for a DiT without an image
    branch, or one trained with it off (``image.cache`` empty) when no encoder is named.

  Raises:
    ValueError: the model was trained with image features (``image.cache`` set) and no encoder is named.
  """
  image_cfg = model.config.image
  path = path or str(image_cfg.encoder)
  if not model.dit.config.image_dim or not (path or image_cfg.cache):
    return None
  if not path:
    raise ValueError(f"{model.source} was trained with CLIP image features (image.cache) but its config names no "
                     "image.encoder: pass one (generate --image_encoder; a CLIP vision folder, e.g. a Wan2.1-I2V "
                     "diffusers image_encoder/)")
  from mvtrack_jax.models import image_encoder as image_lib  # pylint: disable=g-import-not-at-top (torch)
  return image_lib.CLIPImageEncoder(path, preprocess=str(image_cfg.preprocess))


class NovelViewGenerator:
  """Generates target views and tracks query points with one loaded model (module docstring).

  Args:
    model: a :class:`LoadedModel`.
    context: optional ``(L, text_dim)`` or ``(B, L, text_dim)`` conditioning text embeddings (umT5
      features of a caption, e.g. ``UMT5TextEncoder.encode``; ``L ≤ context_length``, zero-padded
      here); None = the null context.
    negative_context: the same for the negative branch of guidance; None = the null context.
    image_encoder: for a DiT with an image branch, an encoder of frames ``(B, H, W, 3)`` uint8 →
      ``(B, N, image_dim)`` features (``models.image_encoder.CLIPImageEncoder``; see
      :func:`image_encoder_for`), applied to every clip's reference first frame; None = the image
      branch off.

  Raises:
    ValueError: the autoencoder cannot decode latents, a context has the wrong shape or values, or
      an image encoder is given for a DiT without an image branch.
  """

  def __init__(self, model: LoadedModel, *, context: Array | None = None, negative_context: Array | None = None,
               image_encoder: Any = None):
    self.model = model
    if not hasattr(model.autoencoder, "decode"):
      raise ValueError(f"{model.source}: the autoencoder {type(model.autoencoder).__name__} cannot decode latents "
                       "to pixels; generation needs a decoder")
    self.context = self._checked(context, "context")
    self.negative_context = self._checked(negative_context, "negative_context")
    if image_encoder is not None and not model.dit.config.image_dim:
      raise ValueError(f"{model.source}: an image encoder was given but the DiT has no image branch (image_dim 0)")
    self.image_encoder = image_encoder
    # On the device once: the host copy would otherwise be transferred at every denoising step.
    self.params = jax.device_put(model.params)

  def _checked(self, context: Array | None, name: str) -> np.ndarray | None:
    """``(B, L, text_dim)`` float32 (a 2-D context gains a batch axis of 1), or None."""
    if context is None:
      return None
    context = np.asarray(context, np.float32)
    text_dim, length = self.model.dit.config.text_dim, self.model.model.context_length
    if context.ndim not in (2, 3) or context.shape[-1] != text_dim or context.shape[-2] > length:
      raise ValueError(f"{name}: expected (L, {text_dim}) or (B, L, {text_dim}) text embeddings with L <= {length}, "
                       f"got {context.shape}")
    if not np.isfinite(context).all():
      raise ValueError(f"{name}: non-finite values in the text embeddings")
    return context if context.ndim == 3 else context[None]

  def _batched(self, context: np.ndarray | None, b: int, name: str) -> jax.Array | None:
    if context is None:
      return None
    if context.shape[0] not in (1, b):
      raise ValueError(f"{name}: batch {context.shape[0]} does not match the clip batch {b}")
    return jnp.broadcast_to(jnp.asarray(context), (b,) + context.shape[1:])

  def _inputs(self, clip: Mapping[str, Array]):
    missing = [key for key in CLIP_KEYS if key not in clip]
    if missing:
      raise ValueError(f"NovelViewGenerator: clip lacks {missing}; expected keys {list(CLIP_KEYS)}")
    video = np.asarray(clip["reference_video"])
    if video.ndim != 5 or video.shape[-1] != 3 or video.dtype != np.uint8:
      raise ValueError(f"reference_video: expected (B, T, H, W, 3) uint8, got {video.shape} {video.dtype}")
    b, t = video.shape[:2]
    for key in CAMERA_KEYS:
      tail = (3, 3) if key.endswith("intrinsics") else (4, 4)
      if tuple(np.shape(clip[key])) != (b, t) + tail:
        raise ValueError(f"{key}: expected {(b, t) + tail}, got {tuple(np.shape(clip[key]))}")
      (geometry.check_intrinsics if key.endswith("intrinsics") else geometry.check_rigid)(clip[key], key)
    inputs = {key: jnp.asarray(clip[key], jnp.float32) for key in CAMERA_KEYS}
    inputs["reference_latents"] = self.model.autoencoder.encode(video)
    if self.context is not None:
      inputs["context"] = self._batched(self.context, b, "context")
    if self.image_encoder is not None:
      inputs["image_context"] = jnp.asarray(self.image_encoder.encode(video[:, 0]), jnp.float32)
    return inputs

  def generate(self, clip: Mapping[str, Array], sampling: SamplingConfig = SamplingConfig(), *,
               progress: bool = False) -> dict[str, np.ndarray]:
    """Samples the target-view video of ``clip`` (module docstring).

    Args:
      clip: batch with :data:`CLIP_KEYS` (pipeline layout; ``target_video`` is ignored).
      sampling: :class:`SamplingConfig`.
      progress: tqdm bar over the denoising steps.

    Returns:
      dict with ``target_video`` ``(B, T, H, W, 3)`` uint8 and ``target_latents`` (float32 latents
      of the autoencoder).

    Raises:
      ValueError: missing keys or wrong shapes (naming the key).
    """
    inputs = self._inputs(clip)
    guided = (self.context is not None or self.negative_context is not None) and sampling.guidance_scale != 1.0
    noise = jax.random.normal(jax.random.key(sampling.seed), inputs["reference_latents"].shape, jnp.float32)
    negative = self._batched(self.negative_context, noise.shape[0], "negative_context")
    scale = jnp.float32(sampling.guidance_scale)

    def velocity(x, sigma):
      return _velocity(self.model.model, self.params, x, jnp.float32(sigma), inputs, negative, scale, guided=guided)

    latents = euler_sample(velocity, noise, sampling.schedule(self.model.objective.schedule).inference_sigmas(sampling.num_steps),
                           progress=progress, description="denoising")
    video = self.model.autoencoder.decode(latents)
    return {"target_video": np.asarray(video), "target_latents": np.asarray(latents, np.float32)}

  def track(self, clip: Mapping[str, Array], target_video: Array,
            sampling: SamplingConfig = SamplingConfig()) -> dict[str, np.ndarray]:
    """Tracks ``clip["query_points"]`` through the reference and a (generated) target video.

    Args:
      clip: batch with :data:`CLIP_KEYS` and ``query_points`` ``(B, N, 3)`` ``(t, x, y)`` in video
        frames and pixels of the reference view; points outside the image are masked.
      target_video: ``(B, T, H, W, 3)`` uint8, e.g. ``generate(...)["target_video"]``.
      sampling: uses ``seed``, ``track_sigma`` and ``visibility_threshold``.

    Returns:
      dict of numpy arrays: ``tracks`` ``(B, 2, F, N, 2)`` float32 pixels ``(x, y)``, ``visible``
      ``(B, 2, F, N)`` bool, ``visibility``/``confidence`` ``(B, 2, F, N)`` probabilities,
      ``frames`` ``(F,)`` int32 video frame of each latent frame; view 0 = reference, 1 = target.

    Raises:
      ValueError: the model has no tracking head (diffusion-only), or shapes disagree.
    """
    if self.model.head is None:
      raise ValueError(f"{self.model.source}: this model has no tracking head (trained with lambda_track = 0)")
    inputs = self._inputs(clip)
    target_video = np.asarray(target_video)
    if target_video.shape != np.shape(clip["reference_video"]):
      raise ValueError(f"target_video: expected {np.shape(clip['reference_video'])} (the reference's shape), "
                       f"got {target_video.shape}")
    query = np.asarray(clip["query_points"], np.float32)
    b, t = target_video.shape[:2]
    if query.ndim != 3 or query.shape[0] != b or query.shape[-1] != 3:
      raise ValueError(f"query_points: expected ({b}, N, 3) (t, x, y), got {query.shape}")
    inputs["query_points"] = jnp.asarray(query)
    target = self.model.autoencoder.encode(target_video)
    sigma = sampling.track_sigma
    if sigma is None:
      sigma = float(sampling.schedule(self.model.objective.schedule).training_sigmas()[-1])
    noise = jax.random.normal(jax.random.fold_in(jax.random.key(sampling.seed), 1), target.shape, jnp.float32)
    tracks, vis, conf, point_mask = _track(self.model.model, self.params, inputs, target, noise, jnp.float32(sigma))
    vis_p, conf_p = jax.nn.sigmoid(vis), jax.nn.sigmoid(conf)
    return {"tracks": np.asarray(tracks, np.float32),
            "visible": np.asarray(vis_p * conf_p > sampling.visibility_threshold) & np.asarray(point_mask)[:, None, None, :],
            "visibility": np.asarray(vis_p, np.float32), "confidence": np.asarray(conf_p, np.float32),
            "frames": ae_lib.latent_frame_indices(t, self.model.model.temporal_factor)}
