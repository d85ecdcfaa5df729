"""The run config's schema: every field of a training/inference run config, once, with its type, default and meaning.

A run config is written as an ``ml_collections.ConfigDict`` (big_vision's ``get_config()`` files, overridden with
``--config.a.b=x``); this module is the one place that says what each field is. ``parse`` turns a ConfigDict (or
the ``config.json`` a run stored) into a frozen, typed :class:`RunConfig`; ``complete`` gives back a ConfigDict
with every field present (the defaults below filled in), which is what the trainer and the stored ``config.json``
hold; ``default_config`` is the tree of defaults that config files start from and change (``configs/default.py``).

What is rejected, all problems of a config in one ``errors.ConfigError``, before any model is built:

- a field that does not exist, naming the nearest valid one (``data.heigth`` → "did you mean height?");
- a value of the wrong type (an int where a bool is expected, a string where a number is: no coercion) or out of
  range (a NaN or non-positive learning rate, ``keep_checkpoints = 0``, which would delete every checkpoint);
- fields that must agree: mesh ``shape``/``axes`` lengths, probe layers inside the DiT's depth, a ``model`` /
  ``head`` / ``objective`` sub-block that its owner (``WanConfig``, ``TrackingHeadConfig``, the loss configs)
  rejects, an unknown preset, synthetic dataset sizes, an invalid trainable-parameter regex.

Blocks owned by a library dataclass (``model.overrides`` → ``models.wan.WanConfig``, ``head.overrides`` →
``models.tracking_head.TrackingHeadConfig``, ``objective.schedule`` → ``diffusion.flow_matching
.FlowMatchingSchedule``, ``objective.corr`` → ``losses.correspondence.CorrespondenceConfig``, ``objective.tracking``
→ ``losses.tracking.TrackingLossConfig``, ``autoencoder.vae`` → ``models.wan_vae.WanVAEConfig``) keep their
defaults and docs in that dataclass; here they are checked by building it.

Fields marked ``resume_fixed`` define what a checkpoint holds (architecture, objective, trainable set): changing
one when resuming a run is an error (``training.trainer.check_resumed_config``). ``SCHEMA_VERSION`` is stored in
every ``config.json``; ``upgrade`` brings an older stored config to this schema.

The defaults are the embedded demo's (``make demo``: the paper's experiment on CPU, a fine-tune of the project's
base model — its pixel-space 64×64 DiT, ``configs/base.py`` — on the built-in synthetic data). Two demo fields
are not defaults, since every config built from the schema would inherit them: ``init.transformer``, the shipped
weights' path in this checkout, and ``optimizer.learning_rate_multipliers`` (the demo's fresh tracking head learns
10× faster than the pretrained DiT; the papers use one learning rate). ``configs/default.py`` sets both.
docs/training.md explains the settings and the paper configs.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Annotated, Any, Literal, Mapping

import ml_collections
import pydantic

from mvtrack_jax.data import synthetic_dataset
from mvtrack_jax.diffusion import flow_matching
from mvtrack_jax.errors import ConfigError
from mvtrack_jax.losses import correspondence
from mvtrack_jax.losses import feature_tracking
from mvtrack_jax.losses import objective as objective_lib
from mvtrack_jax.losses import tracking
from mvtrack_jax.models import tracking_head
from mvtrack_jax.models import wan
from mvtrack_jax.models import wan_vae

SCHEMA_VERSION = 1
_FIXED = {"resume_fixed": True}

# Numbers: ints are ints (a bool is not one), reals accept ints, NaN/inf are rejected unless stated.
PositiveInt = Annotated[int, pydantic.Field(ge=1)]
NonNegativeInt = Annotated[int, pydantic.Field(ge=0)]
Real = Annotated[float, pydantic.Field(allow_inf_nan=False)]
NonNegativeReal = Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, pydantic.Field(ge=0, lt=1)]  # [0, 1)


def _plain(value: Any) -> Any:
  """A ConfigDict / mapping / list tree as plain dicts and tuples (JSON lists become tuples)."""
  if isinstance(value, ml_collections.ConfigDict):
    value = value.to_dict()
  if isinstance(value, Mapping):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return tuple(_plain(v) for v in value)
  return value


def _tuples(mapping: Mapping[str, Any]) -> dict[str, Any]:
  return {k: tuple(v) if isinstance(v, list) else v for k, v in mapping.items()}


def _suggestion(key: str, valid) -> str:
  close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1, cutoff=0.6)
  return f" (did you mean {close[0]!r}?)" if close else ""


class _Block(pydantic.BaseModel):
  model_config = pydantic.ConfigDict(extra="forbid", frozen=True, strict=True)


def _check_dataclass_fields(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
  """``values`` (lists as tuples) after rejecting keys that are not fields of the dataclass ``cls`` (which owns
  their defaults and meaning)."""
  names = [f.name for f in dataclasses.fields(cls)]
  for key in values:
    if key not in names:
      raise ValueError(f"{cls.__name__} has no field {key!r}{_suggestion(key, names)}")
  return _tuples(values)


class Mesh(_Block):
  """Device mesh: ``shape`` devices per axis (-1 = all remaining devices), ``axes`` their names."""
  shape: tuple[int, ...] = (-1, 1, 1)
  axes: tuple[str, ...] = ("data", "fsdp", "tensor")

  @pydantic.model_validator(mode="after")
  def _same_length(self):
    if len(self.shape) != len(self.axes):
      raise ValueError(f"shape {self.shape} and axes {self.axes} differ in length")
    return self


class Optimizer(_Block):
  """AdamW with linear warm-up then cosine decay (or constant), global-norm clipping (``training.optimizer``)."""
  learning_rate: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False)] = 5e-4  # peak, after warm-up
  warmup_steps: NonNegativeInt = 20
  schedule: Literal["cosine", "constant"] = "cosine"
  end_lr_factor: NonNegativeReal = 0.1  # cosine: final learning rate = factor × peak
  b1: Fraction = 0.9
  b2: Fraction = 0.99
  eps: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False)] = 1e-8
  weight_decay: NonNegativeReal = 1e-4  # decoupled, on ≥ 2-D leaves only
  grad_clip_norm: Real = 1.0  # ≤ 0: no clipping
  # Regexes (re.search) on '/'-joined parameter paths ("dit/blocks_0/attn1/to_q/kernel", "head/..."): what trains.
  trainable_patterns: Annotated[tuple[str, ...], pydantic.Field(json_schema_extra=_FIXED)] = (r"^(dit|head)/",)
  # (regex on the same paths, learning-rate factor) pairs; unmatched parameters get 1, a parameter two regexes match
  # is an error. Empty: one learning rate, as both papers. The demo sets (("^head/", 10.0),): its tracking head starts
  # from random weights inside a 100-step fine-tune. (Pairs, not a dict: ConfigDict keys cannot hold a ".".)
  learning_rate_multipliers: tuple[tuple[str, Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False)]], ...] = ()

  @pydantic.field_validator("trainable_patterns")
  @classmethod
  def _regexes(cls, patterns):
    for p in patterns:
      try:
        re.compile(p)
      except re.error as e:
        raise ValueError(f"{p!r} is not a regular expression ({e})") from None
    return patterns

  @pydantic.field_validator("learning_rate_multipliers")
  @classmethod
  def _multiplier_regexes(cls, pairs):
    cls._regexes([p for p, _ in pairs])
    return pairs


class Init(_Block):
  """Pretrained weights for a new run (a checkpoint in the workdir wins). ``transformer``: a diffusers
  ``transformer/`` folder or export, a ``.safetensors`` file or shard index, or an original Wan / DiffSynth /
  ReCamMaster checkpoint; its architecture must equal ``model``'s. ``overlay``: a partial state dict applied over
  it (e.g. ReDirector's ``step20000.safetensors`` over Wan2.1-Fun)."""
  transformer: str = ""
  overlay: str = ""


class Model(_Block):
  """The DiT: a ``models.wan.PRESETS`` name and ``WanConfig`` fields replacing the preset's."""
  model_config = pydantic.ConfigDict(json_schema_extra=_FIXED)
  preset: str = "small-pixel"
  overrides: dict[str, Any] = pydantic.Field(default_factory=lambda: dict(
      camera_mode="plucker", rope_mode="distinct", dtype="float32", attention_backend="einsum",
      scan_layers=False, remat_policy="none"))

  @pydantic.field_validator("preset")
  @classmethod
  def _known(cls, preset):
    if preset not in wan.PRESETS:
      raise ValueError(f"unknown preset{_suggestion(preset, wan.PRESETS)}; expected one of {sorted(wan.PRESETS)}")
    return preset

  @pydantic.field_validator("overrides")
  @classmethod
  def _fields(cls, overrides):
    return _check_dataclass_fields(wan.WanConfig, overrides)

  @pydantic.model_validator(mode="after")
  def _buildable(self):
    wan.get_config(self.preset, **_tuples(self.overrides))
    return self

  def wan_config(self) -> wan.WanConfig:
    return wan.get_config(self.preset, **_tuples(self.overrides))


class Head(_Block):
  """The MV-TAP tracking head (built when ``objective.lambda_track > 0``): ``"tiny"`` (CPU) or ``"default"``
  (MV-TAP's sizes), and ``TrackingHeadConfig`` fields replacing the preset's."""
  model_config = pydantic.ConfigDict(json_schema_extra=_FIXED)
  preset: Literal["tiny", "default"] = "tiny"
  overrides: dict[str, Any] = pydantic.Field(default_factory=dict)

  @pydantic.field_validator("overrides")
  @classmethod
  def _fields(cls, overrides):
    return _check_dataclass_fields(tracking_head.TrackingHeadConfig, overrides)


class Autoencoder(_Block):
  """Pixels ↔ latents. ``"pixel"``: a ``patch``×``patch`` space-to-depth stand-in (CPU). ``"wan"``: the Wan2.1 VAE
  with weights from ``path`` (a diffusers ``vae/`` folder or ``Wan2.1_VAE.pth``; ``"random"``: seeded random
  weights for tests), ``vae`` overriding ``WanVAEConfig`` fields, ``tiling`` empty or ``(min_height, min_width,
  stride_height, stride_width)`` pixels."""
  model_config = pydantic.ConfigDict(json_schema_extra=_FIXED)
  kind: Literal["pixel", "wan"] = "pixel"
  patch: PositiveInt = 4
  path: str = ""
  seed: int = 0
  vae: dict[str, Any] = pydantic.Field(default_factory=dict)
  tiling: tuple[int, ...] = ()

  @pydantic.field_validator("vae")
  @classmethod
  def _fields(cls, vae):
    return _check_dataclass_fields(wan_vae.WanVAEConfig, vae)

  @pydantic.field_validator("tiling")
  @classmethod
  def _four(cls, tiling):
    if tiling and len(tiling) != 4:
      raise ValueError("expected () or (min_height, min_width, stride_height, stride_width)")
    return tiling


class Refiner(_Block):
  """Track4Gen's feature refiner (``models.refiner``) on the residual stream after block ``layer`` (-1: none), its
  detached output returned through a zero projection when ``inject``; ``channels``/``depth``/``kernel`` its
  ``RefinerConfig``. ``L_feat`` (``objective.lambda_feat``) trains it."""
  model_config = pydantic.ConfigDict(json_schema_extra=_FIXED)
  layer: int = -1
  channels: PositiveInt = 32
  depth: PositiveInt = 8
  kernel: Literal["2d", "3d"] = "2d"
  inject: bool = True


class Conditioning(_Block):
  """Given frames (``models.frame_conditioning``): the first ``given_frames`` latent frames of the target are shown
  to the DiT clean with a learned marker, left out of ``L_diff`` and imposed at every sampling step (1 =
  image-to-video, Track4Gen's setting; 0 = off). At sampling they come from the reference's first frames."""
  model_config = pydantic.ConfigDict(json_schema_extra=_FIXED)
  given_frames: NonNegativeInt = 0


class Objective(_Block):
  """``L = λ_diff·L_diff + λ_track·L_track + λ_corr·L_corr + λ_feat·L_feat`` (``losses.objective``). Probe layers
  are 0-based DiT blocks: ``head_layers`` feed the tracking head, ``corr_layers`` have their attention supervised;
  ``L_feat`` (Track4Gen; ``feat``: ``FeatureTrackingConfig`` fields) reads the refiner of the ``refiner`` block."""
  model_config = pydantic.ConfigDict(json_schema_extra=_FIXED)
  lambda_diff: NonNegativeReal = 1.0
  lambda_track: NonNegativeReal = 0.01
  lambda_corr: NonNegativeReal = 0.01
  lambda_feat: NonNegativeReal = 0.0
  feat: dict[str, Any] = pydantic.Field(default_factory=dict)
  head_layers: tuple[NonNegativeInt, ...] = (1,)
  corr_layers: tuple[NonNegativeInt, ...] = (1,)
  # The head's q/k: "after" RoPE (and RoCE), the attention's own, as DiffTrack matches; "before": unrotated, so the
  # head's local correlations do not depend on absolute (or camera-dependent) phases. L_corr always uses the
  # attention's own q/k.
  head_probe_rope: Literal["before", "after"] = "after"
  schedule: dict[str, Any] = pydantic.Field(default_factory=lambda: dict(shift=5.0, weighting="uniform"))
  corr: dict[str, Any] = pydantic.Field(default_factory=lambda: dict(
      domain="reference_frame", target="bilinear", head_reduction="per_head"))
  # The demo's 48 px (in 384×512 pixels) is 6–8 px at 64×64, under one 8-px token (3.4 px at 32×32, under one 4-px
  # token); MV-TAP's 12 px is finer than a few-hundred-step head gets, so it called nearly every point occluded
  # (docs/training.md, "The demo's settings").
  tracking: dict[str, Any] = pydantic.Field(default_factory=lambda: dict(confidence_threshold_px=48.0))

  @pydantic.field_validator("schedule")
  @classmethod
  def _schedule(cls, schedule):
    flow_matching.FlowMatchingSchedule(**_check_dataclass_fields(flow_matching.FlowMatchingSchedule, schedule))
    return schedule

  @pydantic.field_validator("feat")
  @classmethod
  def _feat(cls, feat):
    feature_tracking.FeatureTrackingConfig(**_check_dataclass_fields(feature_tracking.FeatureTrackingConfig, feat))
    return feat

  @pydantic.field_validator("corr")
  @classmethod
  def _corr(cls, corr):
    if "layers" in corr:
      raise ValueError("set objective.corr_layers, not objective.corr.layers")
    correspondence.CorrespondenceConfig(**_check_dataclass_fields(correspondence.CorrespondenceConfig, corr))
    return corr

  @pydantic.field_validator("tracking")
  @classmethod
  def _tracking(cls, options):
    tracking.TrackingLossConfig(**_check_dataclass_fields(tracking.TrackingLossConfig, options))
    return options


class Text(_Block):
  """Caption embeddings (umT5). ``cache``: a text cache (``python -m mvtrack_jax.data.encode_text``); empty: no
  text, the DiT sees the zero null context. ``encoder``: a diffusers Wan2.1 folder (``text_encoder/`` +
  ``tokenizer/``) for ``encode_text`` / ``generate --prompt``. ``caption_dropout``: probability an example's
  context is replaced by the null context."""
  encoder: str = ""
  cache: str = ""
  context_length: Annotated[PositiveInt, pydantic.Field(json_schema_extra=_FIXED)] = 8
  caption_dropout: Annotated[float, pydantic.Field(ge=0, le=1)] = 0.1


class Image(_Block):
  """CLIP features of the reference's first frame, for a DiT with an image branch (``image_dim > 0``: the
  ReDirector / Wan2.1-Fun backbone). ``cache`` from ``python -m mvtrack_jax.data.encode_image``; ``encoder`` a CLIP
  vision folder; ``preprocess`` ``"wan"`` (whole frame resized to 224², Wan/DiffSynth) or ``"clip"``
  (``CLIPImageProcessor``)."""
  encoder: str = ""
  cache: str = ""
  preprocess: Literal["wan", "clip"] = "wan"


class MultiCamVideo(_Block):
  """ReCamMaster's MultiCamVideo layout (``data.readers``): ``cameras`` to use (empty: all), ``size`` ``(H, W)`` to
  resize to (empty: native), ``num_frames`` to read (0: all), ``focal_length_mm`` (0: the dataset's)."""
  cameras: tuple[str, ...] = ()
  size: tuple[PositiveInt, ...] = ()
  num_frames: NonNegativeInt = 0
  focal_length_mm: NonNegativeReal = 0.0

  @pydantic.field_validator("size")
  @classmethod
  def _pair(cls, size):
    if size and len(size) != 2:
      raise ValueError(f"size {size}: expected () or (height, width)")
    return size


class SyntheticSizes(_Block):
  """Sizes of the built-in synthetic dataset (``configs/synthetic_data.py``); missing fields take its defaults."""
  num_views: PositiveInt | None = None
  num_frames: PositiveInt | None = None
  height: PositiveInt | None = None
  width: PositiveInt | None = None
  num_tracks: NonNegativeInt | None = None
  num_train: NonNegativeInt | None = None
  num_validation: NonNegativeInt | None = None
  num_test: NonNegativeInt | None = None
  style: str | None = None
  data_dir: str | None = None  # configs/synthetic_data.py's build folder; a run reads the source's data_dir

  @pydantic.model_validator(mode="after")
  def _resolves(self):
    synthetic_dataset.resolve_config(self.model_dump(exclude_none=True, exclude={"data_dir"}))
    return self


def _check_synthetic(value):
  if isinstance(value, str):
    synthetic_dataset.resolve_config(value)
  return value


Synthetic = Annotated[str | SyntheticSizes | None, pydantic.AfterValidator(_check_synthetic)]


class Source(_Block):
  """A record source (``data.sources``): the primary one is ``data`` itself, others are ``data.mixture`` entries
  whose examples are interleaved in proportion to ``weight``. ``dataset``: ``"synthetic"`` (built on first use into
  ``data_dir`` or ``$MVTRACK_DATA_DIR``), ``"npz"`` or ``"multicamvideo"`` (``data_dir`` required).
  ``latents_dir``: its Wan-VAE latent cache (``python -m mvtrack_jax.data.encode_latents``). ``diffusion_weight``:
  multiplies L_diff on this source's examples in mixed training batches (L_diff is then the weighted mean over the
  batch's examples; 0: a tracked-only source that feeds L_track / L_corr and never the diffusion loss, so
  procedural renders do not shift what the generator makes)."""
  dataset: Literal["synthetic", "npz", "multicamvideo"] = "synthetic"
  data_dir: str = ""
  synthetic: Synthetic = None
  multicamvideo: MultiCamVideo = MultiCamVideo()
  latents_dir: str = ""
  weight: NonNegativeReal = 1.0
  diffusion_weight: NonNegativeReal = 1.0


class MixtureEntry(Source):
  """A ``data.mixture`` source, with its own text and image caches (the primary's are ``text.cache`` and
  ``image.cache``)."""
  text_cache: str = ""
  image_cache: str = ""


class Data(Source):
  """The input pipeline (``data.pipeline``): windows of ``num_frames`` frames every ``frame_stride``-th frame,
  ``height``×``width`` pixels, ``num_query_points`` query points; the primary source's fields (``Source``) and the
  mixture."""
  synthetic: Synthetic = SyntheticSizes(num_views=2, num_train=200, style="paper")
  mixture: dict[str, MixtureEntry] = pydantic.Field(default_factory=dict)
  eval_source: str = ""  # the source periodic evaluation reads (empty: the primary)
  train_split: str = "train"
  eval_split: str = "validation"
  num_frames: PositiveInt = 4
  frame_stride: PositiveInt = 5
  height: PositiveInt = 64
  width: PositiveInt = 64
  num_query_points: NonNegativeInt = 64  # 0: no query points (generation, cache encoding)
  random_crop: bool = True
  shuffle: bool = True
  read_threads: PositiveInt = 2
  prefetch_buffer_size: PositiveInt = 4
  worker_count: NonNegativeInt = 0  # grain worker processes (0: in the main process)

  @pydantic.model_validator(mode="after")
  def _sources(self):
    if self.dataset in self.mixture:
      raise ValueError(f"mixture entry {self.dataset!r} is named like the primary source; rename the entry")
    names = [self.dataset, *self.mixture]
    if self.eval_source and self.eval_source not in names:
      raise ValueError(f"eval_source {self.eval_source!r} names no source{_suggestion(self.eval_source, names)}; "
                       f"the sources are {names}")
    if not self.weight + sum(m.weight for m in self.mixture.values()) > 0:
      raise ValueError("every source has weight 0")
    if not self.mixture and self.diffusion_weight != 1.0:
      raise ValueError(f"diffusion_weight={self.diffusion_weight} weighs one source against the others of a mixture; "
                       "this run has one source: set objective.lambda_diff instead")
    return self


class RunConfig(_Block):
  """A run: the loop, devices, optimizer, model, objective, conditioning and data (module docstring)."""
  schema_version: int = SCHEMA_VERSION
  # What is trained: "novel_view" (a target view from a reference video and target cameras, MVTrack4Gen). The
  # trainer builds the task through training.tasks.TASK_BUILDERS; a new kind of run adds a name here and a builder.
  task: Annotated[Literal["novel_view"], pydantic.Field(json_schema_extra=_FIXED)] = "novel_view"
  name: str = "default"
  seed: int = 0
  # Loop.
  num_train_steps: PositiveInt = 100
  log_every_steps: PositiveInt = 10
  eval_every_steps: NonNegativeInt = 100  # 0: no evaluation
  eval_steps: PositiveInt = 4  # validation batches per evaluation
  eval_at_start: bool = True  # also evaluate the initial parameters (step 0)
  checkpoint_every_steps: NonNegativeInt = 50  # 0: only at the end
  keep_checkpoints: Annotated[int, pydantic.Field(ge=1, description="0 would delete every checkpoint")] = 2
  async_checkpointing: bool = True
  stop_after_steps: int = -1  # > 0: stop (and checkpoint) at this step, as if pre-empted
  max_consecutive_nonfinite: NonNegativeInt = 5  # stop after this many skipped NaN/inf steps in a row (0: never)
  tensorboard: bool = True
  progress_bar: bool = True
  # Devices and batch.
  mesh: Mesh = Mesh()
  batch_size: int = pydantic.Field(4, description="global examples per step; -1: one per device")
  # Optimisation.
  optimizer: Optimizer = Optimizer()
  ema_decay: Fraction = 0.0  # > 0: keep an EMA of the parameters (exportable with --use_ema)
  init: Init = Init()
  # Model and objective.
  model: Model = Model()
  head: Head = Head()
  refiner: Refiner = Refiner()
  conditioning: Conditioning = Conditioning()
  autoencoder: Autoencoder = Autoencoder()
  objective: Objective = Objective()
  # Conditioning and data.
  text: Text = Text()
  image: Image = Image()
  data: Data = Data()

  @pydantic.field_validator("batch_size")
  @classmethod
  def _batch(cls, v):
    if v < 1 and v != -1:
      raise ValueError("expected an integer >= 1, or -1")
    return v

  @pydantic.model_validator(mode="after")
  def _layers_in_depth(self):
    depth = self.model.wan_config().num_layers
    for name in ("head_layers", "corr_layers"):
      bad = [l for l in getattr(self.objective, name) if l >= depth]
      if bad:
        raise ValueError(f"objective.{name} {bad} out of range for the {depth}-block DiT of model.preset "
                         f"{self.model.preset!r} (layers are 0-based: 0..{depth - 1})")
    if not -1 <= self.refiner.layer < depth:
      raise ValueError(f"refiner.layer {self.refiner.layer} out of range for the {depth}-block DiT of model.preset "
                       f"{self.model.preset!r} (-1: no refiner, else 0..{depth - 1})")
    if self.objective.lambda_feat > 0 and self.refiner.layer < 0:
      raise ValueError("objective.lambda_feat > 0 needs a refiner: set refiner.layer (the block it reads)")
    if self.refiner.layer >= 0 and not any(re.search(p, "refiner/refiner/proj_in/kernel")
                                           for p in self.optimizer.trainable_patterns):
      raise ValueError(f"refiner.layer {self.refiner.layer} adds a refiner that optimizer.trainable_patterns "
                       f"{self.optimizer.trainable_patterns} leave frozen (its parameters are 'refiner/...'): add "
                       "a pattern such as '^refiner/'")
    if self.conditioning.given_frames and not any(re.search(p, "conditioning/embedding")
                                                  for p in self.optimizer.trainable_patterns):
      raise ValueError(f"conditioning.given_frames {self.conditioning.given_frames} adds a marker that "
                       f"optimizer.trainable_patterns {self.optimizer.trainable_patterns} leave frozen (its parameter is "
                       "'conditioning/embedding'): add a pattern such as '^conditioning/'")
    return self

  def objective_config(self) -> objective_lib.ObjectiveConfig:
    """The loss's ``losses.objective.ObjectiveConfig``: the ``objective`` block and ``text.caption_dropout``."""
    o = self.objective
    return objective_lib.ObjectiveConfig(
        lambda_diff=o.lambda_diff, lambda_track=o.lambda_track, lambda_corr=o.lambda_corr,
        lambda_feat=o.lambda_feat, feat=feature_tracking.FeatureTrackingConfig(**_tuples(o.feat)),
        caption_dropout=self.text.caption_dropout,
        corr=correspondence.CorrespondenceConfig(layers=tuple(o.corr_layers), **_tuples(o.corr)),
        tracking=tracking.TrackingLossConfig(**_tuples(o.tracking)),
        schedule=flow_matching.FlowMatchingSchedule(**_tuples(o.schedule)))


# ----------------------------------------------------------------------------------------------- public API


def _block_of(annotation: Any) -> tuple[type[pydantic.BaseModel] | None, bool]:
  """The schema block an annotation holds, and whether it is a ``dict[str, block]`` (keys are names)."""
  if getattr(annotation, "__origin__", None) is dict:
    block, _ = _block_of(annotation.__args__[1])
    return block, True
  for t in getattr(annotation, "__args__", ()) or (annotation,):
    if isinstance(t, type) and issubclass(t, pydantic.BaseModel):
      return t, False
  return None, False


def _model_at(loc: tuple) -> type[pydantic.BaseModel] | None:
  """The schema block at ``loc`` (to name the valid fields beside an unknown key), or None."""
  block: Any = RunConfig
  parts = list(loc)
  while parts and block is not None:
    part = parts.pop(0)
    if part not in block.model_fields:
      return None
    block, keyed = _block_of(block.model_fields[part].annotation)
    if keyed and parts:
      parts.pop(0)  # a mixture entry's name
  return block


def _describe(error: Mapping[str, Any]) -> str:
  loc = tuple(p for p in error["loc"] if not _is_union_tag(p))
  where = ".".join(str(p) for p in loc)
  if error["type"] == "extra_forbidden":
    parent = _model_at(loc[:-1])
    valid = sorted(parent.model_fields) if parent is not None else []
    hint = _suggestion(loc[-1], valid)
    return f"--config.{where}: no such field{hint}" + ("" if hint else f"; {'.'.join(map(str, loc[:-1])) or 'the config'}"
                                                          f" has {valid}")
  message = error["msg"].removeprefix("Value error, ")
  message = message.removeprefix("Input ")  # pydantic's "Input should be ..." → "should be ..."
  parent = _model_at(loc[:-1])
  field = parent.model_fields.get(str(loc[-1])) if parent is not None and loc else None
  if field is not None and field.description:
    message += f" ({field.description})"
  got = error.get("input")
  if isinstance(got, Mapping):
    return f"--config.{where}: {message}"
  return f"--config.{where}: got {got!r}; {message}"


def _is_union_tag(part: Any) -> bool:
  """Whether a pydantic error-location part names a union member (``str``, ``SyntheticSizes``,
  ``function-after[...]``) rather than a config key."""
  return isinstance(part, str) and (part in ("str", "none") or "[" in part or part == SyntheticSizes.__name__)


def parse(config: ml_collections.ConfigDict | Mapping[str, Any]) -> RunConfig:
  """A run config (a ConfigDict or a stored ``config.json`` mapping) as a validated, frozen :class:`RunConfig`.

  Missing fields take the defaults; a stored config of an older ``schema_version`` is upgraded first.

  Raises:
    ConfigError: every problem in one message, one ``--config.FIELD: ...`` clause each (module docstring).
  """
  tree = upgrade(_plain(config))
  try:
    return RunConfig.model_validate(tree)
  except pydantic.ValidationError as e:
    errors = e.errors(include_url=False)
    # A union field (data.synthetic: a name or sizes) that fails inside its sizes also fails "should be a valid
    # string": that branch's error says nothing then.
    deeper = {tuple(p for p in err["loc"] if not _is_union_tag(p))[:-1] for err in errors}
    errors = [err for err in errors if not (err["type"] == "string_type" and
                                            tuple(p for p in err["loc"] if not _is_union_tag(p)) in deeper)]
    problems, seen = [], set()
    for error in errors:
      text = _describe(error)
      if text not in seen:
        seen.add(text)
        problems.append(text)
    raise ConfigError("invalid config: " + "; ".join(problems)) from None


def check_trainable(config: ml_collections.ConfigDict | Mapping[str, Any]) -> None:
  """Checks what only training needs of a valid config, before any work.

  A Wan VAE without weights (``autoencoder.kind="wan"``, ``autoencoder.path`` empty) is fine for lowering,
  benchmarks and evaluation from caches, but training encodes the videos of every source without a latent cache
  (``latents_dir``), and would fail only after the model is built, on a shape mismatch or at the first encode.

  Raises:
    ConfigError: naming the sources without a cache and the fix (including the stand-ins of a ``:smoke`` config).
  """
  run = parse(config)
  if run.autoencoder.kind != "wan" or run.autoencoder.path:
    return
  uncached = [name for name, source in [(run.data.dataset, run.data), *run.data.mixture.items()]
              if not source.latents_dir and source.weight > 0]
  if uncached:
    raise ConfigError(
        f"--config.autoencoder.path is empty but source(s) {uncached} have no latent cache (latents_dir): training "
        "could not encode their videos. Set --config.autoencoder.path to a diffusers vae/ folder or a Wan2.1_VAE.pth, "
        "or encode the caches first (python -m mvtrack_jax.data.encode_latents); for a :smoke config, write the CPU "
        "stand-ins with `python -m mvtrack_jax.convert.standins --out W` and pass --config.autoencoder.path=W/vae "
        "(docs/training.md lists the whole sequence)")


def upgrade(tree: dict[str, Any]) -> dict[str, Any]:
  """A stored config tree in this schema (``SCHEMA_VERSION``). Configs before version 1 had no version field;
  the oldest kept ``objective.context_length`` (now ``text.context_length``) and had no ``text``/``image`` blocks,
  which fill with defaults (no text, no caption dropout, no image features)."""
  tree = dict(tree)
  version = tree.pop("schema_version", 0)
  if version > SCHEMA_VERSION:
    raise ConfigError(f"config schema_version {version} is newer than this mvtrack_jax's ({SCHEMA_VERSION}); "
                      "upgrade mvtrack_jax to read it")
  if version < 1 and "objective" in tree and "text" not in tree:
    objective = dict(tree["objective"])
    length = objective.pop("context_length", 512)
    tree["objective"] = objective
    tree["text"] = dict(encoder="", cache="", context_length=int(length), caption_dropout=0.0)
  tree["schema_version"] = SCHEMA_VERSION
  return tree


def to_config_dict(run: RunConfig) -> ml_collections.ConfigDict:
  """``run`` as a ConfigDict with every field present (dict-valued blocks as ConfigDicts)."""
  return ml_collections.ConfigDict(_drop_none_sizes(run.model_dump()))


def _drop_none_sizes(tree: dict[str, Any]) -> dict[str, Any]:
  data = tree["data"]
  for source in [data, *data["mixture"].values()]:
    if isinstance(source["synthetic"], dict):
      source["synthetic"] = {k: v for k, v in source["synthetic"].items() if v is not None}
  return tree


def complete(config: ml_collections.ConfigDict | Mapping[str, Any]) -> ml_collections.ConfigDict:
  """``config`` validated, with every missing field set to its default (``parse`` then ``to_config_dict``).

  Raises:
    ConfigError: as ``parse``.
  """
  return to_config_dict(parse(config))


def default_config() -> ml_collections.ConfigDict:
  """Every field at its default: the tree config files start from."""
  return to_config_dict(RunConfig())


def resume_fixed_fields() -> tuple[str, ...]:
  """Dotted names of the fields and blocks marked ``resume_fixed`` (a change on resume is an error)."""
  found = []

  def walk(cls, prefix):
    for name, field in cls.model_fields.items():
      path = prefix + name
      annotation = field.annotation
      extra = field.json_schema_extra or {}
      if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        if (annotation.model_config.get("json_schema_extra") or {}).get("resume_fixed"):
          found.append(path)
        else:
          walk(annotation, path + ".")
      elif isinstance(extra, dict) and extra.get("resume_fixed"):
        found.append(path)

  walk(RunConfig, "")
  return tuple(found)
