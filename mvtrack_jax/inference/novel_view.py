"""The inference pipeline: one trained MVTrack4Gen model with its encoders and sampler, as one object.

:class:`NovelViewPipeline` is this project's ``WanPipeline`` (diffusers, maxdiffusion): built once from
a checkpoint, it owns everything generation and tracking need — the ``MVTrack4Gen`` (DiT, tracking head
or None, autoencoder), its weights on the device, the training ``ObjectiveConfig`` (noise schedule,
supervised layers), the umT5 text encoder and the CLIP image encoder its config names (both loaded on
first use: they need torch) — and the entry points (``generate``, ``probe``, ``evaluate``, ``compare``)
are thin command lines on it.

Construction:

- :meth:`NovelViewPipeline.from_checkpoint`: an **export directory** written by
  ``python -m mvtrack_jax.export`` (``DIR/params/``, ``DIR/config.json``, ``DIR/export.json``; or the
  ``--format=diffusers|diffsynth`` layout, PyTorch safetensors + ``mvtrack_config.json``, read back through
  ``convert.pretrained.torch_export_params``, as the shipped ``weights/base/`` is) or a
  **training workdir** (``DIR/checkpoints/<step>/`` of ``mvtrack_jax.train``: only the ``params`` or
  ``ema_params`` subtree of the newest or given step is read, on the host, with no mesh; the config stored
  with that step is used). Stored configs of older schema versions are upgraded (``run_config.complete``)
  and the weights are checked against the model their config describes.
- :meth:`NovelViewPipeline.from_pretrained`: an export directory only.

Use:

- ``pipe(clip, sampling)`` (:meth:`~NovelViewPipeline.__call__`): the reference video is encoded (clean),
  the target latents start from Gaussian noise at ``σ = 1`` and are integrated to ``σ = 0`` with the Euler
  sampler on the shifted inference grid (``diffusion.sampler``; the model's training shift unless
  ``SamplingConfig.shift`` says otherwise), the DiT seeing ``target_noisy ⊕ reference`` and both views'
  cameras at every step, exactly as in training (``MVTrack4Gen.prepare`` / ``velocity``). Classifier-free
  guidance with scale ``g`` combines the velocity under the conditioning text context with the velocity
  under the negative context: ``v̂ = v_neg + g·(v_cond − v_neg)``; both branches run as one batch of
  ``2B``. The conditioning context (``prompt=`` text through the text encoder, or ``context=`` embeddings)
  defaults to the model's **null context** (``MVTrack4Gen.null_context``: the umT5 embedding of the empty
  prompt stored with a model trained with text, zeros otherwise). The negative branch of a model trained with
  text defaults to **Wan's standard negative prompt** (``models.text_encoder.WAN_NEGATIVE_PROMPT``, what
  ReCamMaster's and ReDirector's inference pass; read from the text cache's ``negative.npy`` or encoded),
  ``negative_prompt=""`` selects the empty prompt; a model without text has zeros in both. ``g`` defaults to 5
  (both references) when the branches differ and to 1 when both are the null context (:meth:`~NovelViewPipeline
  .guidance`; asking for another ``g`` then is an error, since guidance would change nothing); at ``g = 1`` the
  second branch is skipped (one DiT call per step). A DiT with an image branch (ReDirector / Wan2.1-Fun)
  also takes the CLIP features of each clip's reference first frame, in both branches.
- :meth:`~NovelViewPipeline.track`: the tracking head predicts where reference-view query points are in
  both views. It reads the probe q/k of one extra DiT forward on the generated target latents noised to
  ``track_sigma`` (default: the smallest σ of the training grid, 0.005 for shift 5, so the features are in
  the training distribution and nearly clean — DiffTrack finds correspondence sharpest at low noise).
  Tracks are at latent-frame rate (video frames ``0, k, 2k, …``).

Inputs are batches in the pipeline layout (``data.pipeline``): ``reference_video`` ``(B, T, H, W, 3)``
uint8, ``reference_intrinsics``/``target_intrinsics`` ``(B, T, 3, 3)`` pixels,
``reference_cam_to_world``/``target_cam_to_world`` ``(B, T, 4, 4)`` OpenCV, metres (made relative to the
reference camera at frame 0 by ``MVTrack4Gen.prepare``), ``query_points`` ``(B, N, 3)`` ``(t, x, y)``
(video frame, pixels, corner origin). The model's own frame count / resolution is ``config.data``; other
sizes work when the autoencoder and token grid divide them. The on-disk layouts and their host-side
readers are ``mvtrack_jax.checkpoint_format``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Mapping, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mvtrack_jax import builders
from mvtrack_jax import checkpoint_format
from mvtrack_jax import errors
from mvtrack_jax import run_config
from mvtrack_jax.convert import pretrained as convert_pretrained
from mvtrack_jax.data import feature_cache
from mvtrack_jax.data import pipeline as data_pipeline
from mvtrack_jax.data import sources
from mvtrack_jax.diffusion.flow_matching import FlowMatchingSchedule, add_noise
from mvtrack_jax.diffusion.sampler import euler_sample, guided_velocity
from mvtrack_jax.geometry import cameras as geometry
from mvtrack_jax.models import autoencoder as ae_lib
from mvtrack_jax.models import frame_conditioning
from mvtrack_jax.models import text_encoder as text_lib
from mvtrack_jax.models.mvtrack4gen import CAMERA_KEYS, MVTrack4Gen
from mvtrack_jax.models.tracking_head import MVTAPHead
from mvtrack_jax.models.wan import WanDiT

Array = Any

CLIP_KEYS = ("reference_video",) + CAMERA_KEYS
DEFAULT_GUIDANCE_SCALE = 5.0  # ReCamMaster's and ReDirector's inference scripts (cfg_scale 5)


@dataclasses.dataclass(frozen=True)
class Guidance:
  """The two text branches of classifier-free guidance, resolved (:meth:`NovelViewPipeline.guidance`).

  Attributes:
    context, negative_context: ``(B, L, text_dim)`` float32 embeddings, or None for the model's null context.
    scale: the guidance scale ``g`` used (1: one DiT call per step, the conditional branch alone).
    negative: what the negative branch is: ``"wan"`` (Wan's standard negative prompt), ``"empty"`` (the empty
      prompt: the null context), ``"given"`` (a negative prompt or embeddings passed in) or ``"none"`` (a model
      without text: zeros).
  """

  context: np.ndarray | None
  negative_context: np.ndarray | None
  scale: float
  negative: str

  @property
  def active(self) -> bool:
    return self.scale != 1.0

  def record(self) -> dict[str, Any]:
    """What ``metrics.json`` / ``generation.json`` record about guidance."""
    return {"guidance_active": self.active, "guidance_scale": self.scale, "negative": self.negative}


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """Sampler settings (ReCamMaster / ReDirector inference: 50 steps, shift 5, CFG 5, seed 0).

  Attributes:
    num_steps: Euler steps.
    guidance_scale: classifier-free guidance scale ``g`` (1 = no guidance); None: :data:`DEFAULT_GUIDANCE_SCALE`
      when the two branches differ, else 1 (:meth:`NovelViewPipeline.guidance`).
    seed: PRNG seed of the initial noise (and of the tracking noise).
    shift: timestep shift of the inference grid; None = the shift the model was trained with
      (``objective.schedule.shift``: 5 for Wan / ReCamMaster, lower for small pixel-space models).
    track_sigma: noise level of the tracking forward; None = smallest σ of the training grid.
    visibility_threshold: a point is predicted visible when ``σ(vis)·σ(conf) >`` this (MV-TAP: 0.6).
  """

  num_steps: int = 50
  guidance_scale: float | None = None
  seed: int = 0
  shift: float | None = None
  track_sigma: float | None = None
  visibility_threshold: float = 0.6

  def __post_init__(self):
    if self.num_steps < 1:
      raise ValueError(f"SamplingConfig: num_steps must be >= 1, got {self.num_steps}")
    if self.guidance_scale is not None and not np.isfinite(self.guidance_scale):
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
    return model.velocity(params["dit"], x, timestep, p, refiner_params=params.get("refiner"))
  negative = model.null_context(params, b) if negative is None else model.pad_context(negative)
  both = lambda a: jnp.concatenate([a, a], axis=0)
  doubled = {"reference": both(p["reference"]), "cameras": jax.tree.map(both, p["cameras"]),
             "context": jnp.concatenate([p["context"], negative], axis=0)}
  for key in ("given", "given_latents", "frame_offsets"):  # given frames: the same in both branches
    if key in p:
      doubled[key] = both(p[key])
  if "image_context" in p:  # the same image in both branches: guidance is on the text only
    doubled["image_context"] = both(p["image_context"])
  v_cond, v_neg = jnp.split(model.velocity(params["dit"], both(x), both(timestep), doubled,
                                           refiner_params=params.get("refiner")), 2, axis=0)
  return guided_velocity(v_cond, v_neg, guidance_scale)


@functools.partial(jax.jit, static_argnames=("model",))
def _track(model: MVTrack4Gen, params, inputs, target_latents, noise, sigma):
  """Head predictions (last iteration) from the probe q/k of the DiT on noised target latents."""
  p = model.prepare(inputs, params, target=target_latents)
  b = target_latents.shape[0]
  noisy = add_noise(p["target"], noise, jnp.full((b,), sigma))
  timestep = jnp.full((b,), 1000.0, jnp.float32) * sigma
  _, probes = model.velocity(params["dit"], noisy, timestep, p, probe_layers=model.head_layers,
                             refiner_params=params.get("refiner"))
  pred = model.track(params["head"], probes, p)
  return pred["tracks"][-1], pred["visibility"][-1], pred["confidence"][-1], p["point_mask"]


def check_params_match_config(params: Any, model: MVTrack4Gen, config: ml_collections.ConfigDict, source: str) -> None:
  """Checks that a checkpoint's params are those of the model its config describes (names and shapes).

  Raises:
    ValueError: naming the first differing parameters (missing, unexpected, or of another shape), e.g.
      an export whose ``config.json`` was edited or belongs to another run.
  """
  spec = data_pipeline.output_spec(sources.pipeline_config(config.data, 1, train=False))
  batch = {k: jax.ShapeDtypeStruct(shape, dtype) for k, (shape, dtype) in spec.items()}
  latent = jax.ShapeDtypeStruct(tuple(model.autoencoder.latent_shape(spec["target_video"][0])), np.float32)
  batch.update(reference_latents=latent, target_latents=latent)
  expected = flax.traverse_util.flatten_dict(nn.unbox(jax.eval_shape(model.init, jax.random.key(0), batch)), sep="/")
  got = flax.traverse_util.flatten_dict(dict(params), sep="/")
  problems = [f"missing {k} {tuple(v.shape)}" for k, v in expected.items() if k not in got]
  problems += [f"unexpected {k} {tuple(np.shape(v))}" for k, v in got.items() if k not in expected]
  problems += [f"{k}: {tuple(np.shape(got[k]))} in the checkpoint, {tuple(v.shape)} for its config"
               for k, v in expected.items() if k in got and tuple(np.shape(got[k])) != tuple(v.shape)]
  if problems:
    raise ValueError(f"{source}: the params do not match the model of its config ({len(problems)} differences; "
                     f"first: {'; '.join(problems[:5])})")


def _is_export(root: str) -> bool:
  return os.path.isdir(os.path.join(root, "params")) and os.path.isfile(os.path.join(root, "config.json"))


class NovelViewPipeline:
  """One trained model for generation and tracking (module docstring).

  Build with :meth:`from_checkpoint` or :meth:`from_pretrained`; the constructor takes loaded parts.

  Args:
    config: the training config (``ConfigDict``, completed to today's schema): ``model``, ``head``,
      ``autoencoder``, ``objective``, ``data`` (resolution and frame count the model was trained at),
      ``text``, ``image``.
    params: ``{"dit": ..., "head": ...}`` pytree (``"head"`` absent for diffusion-only); placed on the
      device once (a host copy would be transferred at every denoising step).
    step: training step of the weights.
    source: absolute path the weights were read from.
    image_encoder: a CLIP vision folder overriding the config's ``image.encoder`` (``--image_encoder``).
    text_encoder: a diffusers Wan2.1 folder overriding the config's ``text.encoder`` (``--text_encoder``).

  Attributes:
    config, params, step, source: as given; ``model``: the ``MVTrack4Gen``; ``objective``: its
    ``ObjectiveConfig`` (noise schedule, ``lambda_corr`` and ``corr.layers``).
  """

  def __init__(self, config: ml_collections.ConfigDict, params: Mapping[str, Any], *, step: int, source: str,
               image_encoder: str | None = None, text_encoder: str | None = None):
    run = run_config.parse(config)  # older stored configs are upgraded to today's schema
    self.config = run_config.to_config_dict(run)
    self.model = builders.build_model(run)
    check_params_match_config(params, self.model, self.config, source)
    self.objective = run.objective_config()
    self.step, self.source = int(step), source
    self.params = jax.device_put(dict(params))
    self._image_encoder_path = image_encoder or str(self.config.image.encoder)
    self._text_encoder_path = text_encoder or str(self.config.text.encoder)
    self._prompt_embeddings: dict[str, np.ndarray] = {}

  @classmethod
  def from_checkpoint(cls, path: str | os.PathLike[str], *, step: int | None = None, use_ema: bool = False,
                      **encoders: str | None) -> NovelViewPipeline:
    """Loads an export directory or a training workdir (module docstring).

    Args:
      path: ``--checkpoint`` directory.
      step: training step (workdirs only; default newest).
      use_ema: read ``ema_params`` (workdirs only; the run must have kept an EMA).
      **encoders: ``image_encoder`` / ``text_encoder`` folder overrides (constructor).

    Raises:
      FileNotFoundError: ``path`` is neither an export directory nor a workdir with checkpoints.
      ValueError: ``step``/``use_ema`` given for an export directory, or the params do not match the model
        of the stored config.
    """
    root = os.path.abspath(os.fspath(path))
    orbax_export, torch_export = _is_export(root), convert_pretrained.is_torch_export(root)
    if (orbax_export or torch_export) and (step is not None or use_ema):
      raise ValueError(f"--checkpoint {root} is an export directory; --step/--use_ema apply to training "
                       "workdirs only")
    if orbax_export:
      params, config, info = checkpoint_format.load_exported(root)
      step = int(info.get("step", -1))
    elif torch_export:
      with open(os.path.join(root, convert_pretrained.TORCH_EXPORT_CONFIG), encoding="utf-8") as f:
        config = ml_collections.ConfigDict(json.load(f))
      params, info = convert_pretrained.torch_export_params(
          root, run_config.parse(run_config.complete(config)).model.wan_config())
      step = int(info.get("step", -1))
    elif os.path.isdir(os.path.join(root, "checkpoints")):
      ckpt_dir = os.path.join(root, "checkpoints")
      key = "ema_params" if use_ema else "params"
      step, trees = checkpoint_format.read_params(ckpt_dir, step=step, keys=(key,))
      params = trees[key]
      config = ml_collections.ConfigDict(checkpoint_format.read_config(ckpt_dir, step))
    else:
      raise FileNotFoundError(
          f"--checkpoint {root}: expected an export directory (params/ + config.json, or the diffusers/DiffSynth "
          "layout with mvtrack_config.json, from mvtrack_jax.export) or a training workdir (checkpoints/, from "
          "mvtrack_jax.train)")
    return cls(config, params, step=step, source=root, **encoders)

  @classmethod
  def from_pretrained(cls, export_dir: str | os.PathLike[str], **encoders: str | None) -> NovelViewPipeline:
    """Loads an export directory (``mvtrack_jax.export``); raises FileNotFoundError for anything else."""
    root = os.path.abspath(os.fspath(export_dir))
    if not _is_export(root):
      raise FileNotFoundError(f"{root}: not an export directory (params/ + config.json, from mvtrack_jax.export)")
    return cls.from_checkpoint(root, **encoders)

  # ------------------------------------------------------------------------------------------------
  # The parts.

  @property
  def name(self) -> str:
    """A short label: the config name and step (``default@200``)."""
    return f"{self.config.name}@{self.step}"

  @property
  def dit(self) -> WanDiT:
    return self.model.dit

  @property
  def head(self) -> MVTAPHead | None:
    return self.model.head

  @property
  def autoencoder(self) -> Any:
    return self.model.autoencoder

  @property
  def token_stride(self) -> int:
    """Video pixels per DiT token along each axis (``vae_stride · patch``)."""
    return self.model.token_stride

  @functools.cached_property
  def image_encoder(self):
    """The CLIP image encoder of the DiT's image branch (loaded on first use), or None.

    None for a DiT without an image branch, or one trained with it off (``image.cache`` empty) when no
    encoder is named; otherwise ``models.image_encoder.CLIPImageEncoder`` of the named folder with the
    config's ``image.preprocess``.

    Raises:
      errors.UserError: the model was trained with image features (``image.cache`` set) and no encoder is
        named.
    """
    path, image_cfg = self._image_encoder_path, self.config.image
    if not self.dit.config.image_dim or not (path or image_cfg.cache):
      return None
    if not path:
      raise errors.UserError(
          f"{self.source} was trained with CLIP image features (image.cache) but its config names no image.encoder: "
          "pass one (--image_encoder; a CLIP vision folder, e.g. a Wan2.1-I2V diffusers image_encoder/)")
    from mvtrack_jax.models import image_encoder as image_lib  # pylint: disable=g-import-not-at-top (torch)
    return image_lib.CLIPImageEncoder(path, preprocess=str(image_cfg.preprocess))

  @functools.cached_property
  def text_encoder(self):
    """The umT5 text encoder of ``--text_encoder`` or the config's ``text.encoder`` (loaded on first use).

    Raises:
      errors.UserError: neither names one.
    """
    if not self._text_encoder_path:
      raise errors.UserError(f"a prompt needs a umT5 text encoder: pass --text_encoder (a diffusers Wan2.1 folder "
                             f"with text_encoder/ and tokenizer/); the config of {self.source} names none")
    return text_lib.UMT5TextEncoder(self._text_encoder_path, max_length=self.model.context_length)

  def encode_prompts(self, prompts: Sequence[str]) -> list[np.ndarray]:
    """umT5 embeddings ``(L, text_dim)`` float32 of each prompt (:attr:`text_encoder`; each distinct prompt is
    encoded once per pipeline: an evaluation reuses a caption and the negative prompt for many clips)."""
    todo = sorted({p for p in prompts if p not in self._prompt_embeddings})
    if todo:
      self._prompt_embeddings.update(zip(todo, self.text_encoder.encode(todo)))
    return [self._prompt_embeddings[p] for p in prompts]

  # ------------------------------------------------------------------------------------------------
  # Generation and tracking.

  def _context(self, context: Array | None, prompt: str | None, name: str) -> np.ndarray | None:
    """``(B, L, text_dim)`` float32 from embeddings or a prompt (a 2-D context gains a batch axis), or None."""
    if prompt is not None:
      if context is not None:
        raise errors.UserError(f"{name}: both a prompt and embeddings given; pass one of them")
      context = self.encode_prompts([prompt])[0]
    if context is None:
      return None
    context = np.asarray(context, np.float32)
    text_dim, length = self.dit.config.text_dim, self.model.context_length
    if context.ndim not in (2, 3) or context.shape[-1] != text_dim or context.shape[-2] > length:
      raise ValueError(f"{name}: expected (L, {text_dim}) or (B, L, {text_dim}) text embeddings with L <= {length}, "
                       f"got {context.shape}")
    if not np.isfinite(context).all():
      raise ValueError(f"{name}: non-finite values in the text embeddings")
    return context if context.ndim == 3 else context[None]

  @staticmethod
  def _batched(context: np.ndarray | None, b: int, name: str) -> jax.Array | None:
    if context is None:
      return None
    if context.shape[0] not in (1, b):
      raise ValueError(f"{name}: batch {context.shape[0]} does not match the clip batch {b}")
    return jnp.broadcast_to(jnp.asarray(context), (b,) + context.shape[1:])

  def _inputs(self, clip: Mapping[str, Array]) -> dict[str, jax.Array]:
    """The model inputs of a clip: cameras, clean reference latents and (image branch) CLIP features."""
    missing = [key for key in CLIP_KEYS if key not in clip]
    if missing:
      raise ValueError(f"NovelViewPipeline: clip lacks {missing}; expected keys {list(CLIP_KEYS)}")
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
    inputs["reference_latents"] = self.autoencoder.encode(video)
    if self.image_encoder is not None:
      inputs["image_context"] = jnp.asarray(self.image_encoder.encode(video[:, 0]), jnp.float32)
    return inputs

  @functools.cached_property
  def _wan_negative(self) -> np.ndarray:
    """Wan's standard negative prompt embedded ``(L, text_dim)`` float32: the text cache's ``negative.npy``
    (``config.text.cache``), else encoded with :attr:`text_encoder`; read once per pipeline (an evaluation asks
    for it for every scene and model)."""
    cached = feature_cache.read_negative_context(str(self.config.text.cache))
    if cached is not None:
      return cached
    if not self._text_encoder_path:
      raise errors.UserError(
          f"guidance of {self.source} needs its negative branch, Wan's standard negative prompt: its text cache "
          f"({self.config.text.cache or 'config.text.cache is empty'}) has no {feature_cache.NEGATIVE_NPY} (written "
          "by python -m mvtrack_jax.data.encode_text) and no umT5 encoder is named; pass --text_encoder, or "
          "--negative_prompt '' for the empty prompt, or --cfg 1 for no guidance")
    return self.encode_prompts([text_lib.WAN_NEGATIVE_PROMPT])[0]

  def guidance(self, sampling: SamplingConfig, *, context: Array | None = None, negative_context: Array | None = None,
               prompt: str | None = None, negative_prompt: str | None = None) -> Guidance:
    """Resolves the two branches of guidance and its scale.

    The conditional branch is ``context`` / ``prompt`` (default: the null context). The negative branch is
    ``negative_context`` / ``negative_prompt``; ``negative_prompt=""`` is the empty prompt, i.e. the null context;
    with neither, a model trained with text uses Wan's standard negative prompt (as both backbones' inference
    does) and a model without text the null context (zeros). ``sampling.guidance_scale=None`` is
    :data:`DEFAULT_GUIDANCE_SCALE` when the branches differ and 1 when both are the null context.

    Raises:
      errors.UserError: a scale other than 1 asked for while both branches are the null context (guidance would
        compare the conditioning with itself and change nothing: the message says what to pass); a prompt and
        embeddings for one branch; a prompt, or Wan's negative prompt, with no text encoder to embed it.
      ValueError: embeddings of the wrong shape or with non-finite values.
    """
    cond = self._context(context, prompt, "context")
    if negative_prompt == "" and negative_context is None:
      neg, which = None, "empty"
    elif negative_prompt is not None or negative_context is not None:
      neg, which = self._context(negative_context, negative_prompt, "negative_context"), "given"
    elif self.model.with_text and sampling.guidance_scale != 1.0:
      neg, which = self._context(self._wan_negative, None, "negative_context"), "wan"
    else:
      neg, which = None, "wan" if self.model.with_text else "none"
    same = cond is None and neg is None
    scale = sampling.guidance_scale
    if scale is None:
      scale = 1.0 if same else DEFAULT_GUIDANCE_SCALE
    elif same and scale != 1.0:
      raise errors.UserError(
          f"--cfg {scale:g}: both guidance branches would be the null context of {self.source} ("
          + ("the empty prompt: give a --prompt or --captions, or leave --negative_prompt at Wan's default"
             if self.model.with_text else "a model trained without text: give a --prompt/--context or a negative")
          + "), so guidance would change nothing; leave --cfg unset or set it to 1")
    return Guidance(cond, neg, float(scale), which if scale != 1.0 else "unused")

  def __call__(self, clip: Mapping[str, Array], sampling: SamplingConfig = SamplingConfig(), *,
               context: Array | None = None, negative_context: Array | None = None, prompt: str | None = None,
               negative_prompt: str | None = None, guidance: Guidance | None = None,
               progress: bool = False) -> dict[str, np.ndarray]:
    """Samples the target-view video of ``clip`` (module docstring).

    Args:
      clip: batch with :data:`CLIP_KEYS` (pipeline layout; ``target_video`` is ignored).
      sampling: :class:`SamplingConfig`.
      context, negative_context: ``(L, text_dim)`` or ``(B, L, text_dim)`` text embeddings of the
        conditional / negative branch (``L ≤ context_length``, zero-padded here); defaults: :meth:`guidance`.
      prompt, negative_prompt: text instead of embeddings, encoded with :attr:`text_encoder`.
      guidance: both branches already resolved by :meth:`guidance` (then the four above must be None).
      progress: tqdm bar over the denoising steps.

    Returns:
      dict with ``target_video`` ``(B, T, H, W, 3)`` uint8 and ``target_latents`` (float32 latents of
      the autoencoder).

    Raises:
      ValueError: missing keys or wrong shapes (naming the key), a context of the wrong shape or values.
      errors.UserError: as :meth:`guidance`; a model trained with image features and no image encoder.
    """
    if not hasattr(self.autoencoder, "decode"):
      raise ValueError(f"{self.source}: the autoencoder {type(self.autoencoder).__name__} cannot decode latents "
                       "to pixels; generation needs a decoder")
    texts = dict(context=context, negative_context=negative_context, prompt=prompt, negative_prompt=negative_prompt)
    if guidance is None:
      guidance = self.guidance(sampling, **texts)
    elif any(v is not None for v in texts.values()):
      raise ValueError("NovelViewPipeline: pass the text branches or a resolved guidance, not both")
    inputs = self._inputs(clip)
    b = inputs["reference_latents"].shape[0]
    if guidance.context is not None:
      inputs["context"] = self._batched(guidance.context, b, "context")
    noise = jax.random.normal(jax.random.key(sampling.seed), inputs["reference_latents"].shape, jnp.float32)
    negative = self._batched(guidance.negative_context, b, "negative_context")
    scale = jnp.float32(guidance.scale)

    def velocity(x, sigma):
      return _velocity(self.model, self.params, x, jnp.float32(sigma), inputs, negative, scale,
                       guided=guidance.active)

    sigmas = sampling.schedule(self.objective.schedule).inference_sigmas(sampling.num_steps)
    latents = euler_sample(velocity, noise, sigmas, progress=progress, description="denoising")
    if self.model.given_frames:  # the given frames are the clean ones (the velocity call imposed them each step)
      p = self.model.prepare(inputs, self.params)
      latents = frame_conditioning.impose(latents, p["given_latents"], p["given"])
    video = self.autoencoder.decode(latents)
    return {"target_video": np.asarray(video), "target_latents": np.asarray(latents, np.float32)}

  def track(self, clip: Mapping[str, Array], target_video: Array,
            sampling: SamplingConfig = SamplingConfig()) -> dict[str, np.ndarray]:
    """Tracks ``clip["query_points"]`` through the reference and a (generated) target video.

    Args:
      clip: batch with :data:`CLIP_KEYS` and ``query_points`` ``(B, N, 3)`` ``(t, x, y)`` in video
        frames and pixels of the reference view; points outside the image are masked.
      target_video: ``(B, T, H, W, 3)`` uint8, e.g. ``pipe(clip)["target_video"]``.
      sampling: uses ``seed``, ``track_sigma`` and ``visibility_threshold``.

    Returns:
      dict of numpy arrays: ``tracks`` ``(B, 2, F, N, 2)`` float32 pixels ``(x, y)``, ``visible``
      ``(B, 2, F, N)`` bool, ``visibility``/``confidence`` ``(B, 2, F, N)`` probabilities,
      ``frames`` ``(F,)`` int32 video frame of each latent frame; view 0 = reference, 1 = target.

    Raises:
      ValueError: the model has no tracking head (diffusion-only), or shapes disagree.
    """
    if self.head is None:
      raise ValueError(f"{self.source}: this model has no tracking head (trained with lambda_track = 0)")
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
    target = self.autoencoder.encode(target_video)
    sigma = sampling.track_sigma
    if sigma is None:
      sigma = float(sampling.schedule(self.objective.schedule).training_sigmas()[-1])
    noise = jax.random.normal(jax.random.fold_in(jax.random.key(sampling.seed), 1), target.shape, jnp.float32)
    tracks, vis, conf, point_mask = _track(self.model, self.params, inputs, target, noise, jnp.float32(sigma))
    vis_p, conf_p = jax.nn.sigmoid(vis), jax.nn.sigmoid(conf)
    return {"tracks": np.asarray(tracks, np.float32),
            "visible": np.asarray(vis_p * conf_p > sampling.visibility_threshold) & np.asarray(point_mask)[:, None, None, :],
            "visibility": np.asarray(vis_p, np.float32), "confidence": np.asarray(conf_p, np.float32),
            "frames": ae_lib.latent_frame_indices(t, self.model.temporal_factor)}
