"""The MVTrack4Gen training task built from a config: data sources, pipeline, model, objective.

``build_task(config)`` joins the pieces other packages own into the trainer's ``Task``:

- data (``config.data``): a random-access source — the built-in synthetic dataset
  (``data.synthetic_dataset.load_split``, built on first use into ``$MVTRACK_DATA_DIR``), a
  directory of ``.npz`` clips (``data.readers.NpzClipSource``) or a MultiCamVideo tree
  (``data.readers.MultiCamVideoSource``) — fed through the grain pipeline
  (``data.pipeline.make_iterator``), one shard per JAX process;
- model + objective (``config.model``, ``config.head``, ``config.objective``): see
  ``_model_and_objective``.

``random_batch`` makes a valid random batch with a task's batch spec (benchmarks, abstract tests).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np

from mvtrack_jax.diffusion.flow_matching import FlowMatchingSchedule
from mvtrack_jax.training.task import Task

DATASETS = ("synthetic", "npz", "multicamvideo")


def pipeline_config(data: ml_collections.ConfigDict, per_process_batch: int, *, train: bool):
  """``data.pipeline.PipelineConfig`` from the ``config.data`` block."""
  from mvtrack_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.PipelineConfig(
      batch_size=int(per_process_batch), num_frames=int(data.num_frames),
      frame_stride=int(data.get("frame_stride", 1)), height=int(data.height),
      width=int(data.width), num_query_points=int(data.num_query_points),
      random_crop=bool(data.get("random_crop", True)) and train,
      shuffle=bool(data.get("shuffle", True)), read_threads=int(data.get("read_threads", 2)),
      prefetch_buffer_size=int(data.get("prefetch_buffer_size", 4)),
      worker_count=int(data.get("worker_count", 0)) if train else 0)


@functools.lru_cache(maxsize=8)
def _source(dataset: str, split: str, location: str, synthetic_json: str):
  if dataset == "synthetic":
    import json  # pylint: disable=g-import-not-at-top
    from mvtrack_jax.data import synthetic_dataset  # pylint: disable=g-import-not-at-top
    synthetic = json.loads(synthetic_json)
    cfg = synthetic if isinstance(synthetic, str) or synthetic is None else (
        ml_collections.ConfigDict(synthetic))
    return synthetic_dataset.load_split(split, data_dir=location or None, config=cfg)
  from mvtrack_jax.data import readers  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  root = os.path.join(location, split) if os.path.isdir(os.path.join(location, split)) else location
  if dataset == "npz":
    return readers.NpzClipSource(root)
  return readers.MultiCamVideoSource(root)


def data_source(data: ml_collections.ConfigDict, split: str):
  """The random-access record source of ``split`` ("train"/"validation"/"test").

  ``config.data.dataset``: ``"synthetic"`` (``data.synthetic`` = None/"default"/"tiny" or a
  ``configs/synthetic_data.py``-style dict; ``data.data_dir`` overrides ``$MVTRACK_DATA_DIR``),
  ``"npz"`` or ``"multicamvideo"`` (``data.data_dir`` = root; a ``<root>/<split>`` subdirectory is
  used when it exists).

  Raises:
    ValueError: unknown ``dataset``, or a non-synthetic dataset without ``data_dir``.
  """
  import json  # pylint: disable=g-import-not-at-top
  dataset = data.dataset
  if dataset not in DATASETS:
    raise ValueError(f"config.data.dataset={dataset!r}; expected one of {DATASETS}")
  location = str(data.get("data_dir", "") or "")
  if dataset != "synthetic" and not location:
    raise ValueError(f"config.data.dataset={dataset!r} needs config.data.data_dir")
  synthetic = data.get("synthetic", None)
  if isinstance(synthetic, ml_collections.ConfigDict):
    synthetic = synthetic.to_dict()
  return _source(dataset, split, location, json.dumps(synthetic, sort_keys=True))


def make_iterator(config: ml_collections.ConfigDict, split: str, per_process_batch: int,
                  seed: int):
  """Grain iterator of per-process numpy batches (``data.pipeline`` output layout).

  Training (``split == config.data.train_split``) shuffles, repeats and random-crops; other splits
  make one pass in order with centred crops.
  """
  from mvtrack_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  data = config.data
  name = data.get("train_split", "train") if split == "train" else data.get(
      "eval_split", "validation")
  train = split == "train"
  return pipeline.make_iterator(
      data_source(data, name), pipeline_config(data, per_process_batch, train=train),
      seed=seed, train=train)


def batch_spec(config: ml_collections.ConfigDict, global_batch: int
               ) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes/dtypes of one global batch (``data.pipeline.output_spec``)."""
  from mvtrack_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  spec = pipeline.output_spec(pipeline_config(config.data, global_batch, train=True))
  return {k: jax.ShapeDtypeStruct(shape, dtype) for k, (shape, dtype) in spec.items()}


def random_batch(spec: Mapping[str, jax.ShapeDtypeStruct], per_process_batch: int,
                 config: ml_collections.ConfigDict, *, seed: int = 0) -> dict[str, np.ndarray]:
  """A random but valid per-process batch in the pipeline layout (for benchmarks).

  Videos are uniform noise, intrinsics a 60° pinhole, the reference camera fixed at the origin and
  the target camera orbiting by up to 0.3 rad around a point 4 m ahead, query points and tracks
  uniform in the image, all points visible and real.
  """
  from mvtrack_jax.geometry import cameras as geometry  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  b = per_process_batch
  t, h, w = (spec["reference_video"].shape[i] for i in (1, 2, 3))
  n = spec["query_points"].shape[1]
  k = np.broadcast_to(geometry.intrinsics_from_fov(h, w, 60.0), (b, t, 3, 3)).astype(np.float32)
  angles = np.linspace(0.0, 0.3, t)[None] * rng.uniform(0.5, 1.0, (b, 1))
  eye = np.stack([4 * np.sin(angles), np.zeros_like(angles), 4 - 4 * np.cos(angles)], -1)
  target_c2w = geometry.invert_rigid(
      geometry.look_at(eye, np.broadcast_to([0.0, 0.0, 4.0], eye.shape))).astype(np.float32)
  out = {
      "reference_video": rng.integers(0, 256, (b, t, h, w, 3), dtype=np.uint8),
      "target_video": rng.integers(0, 256, (b, t, h, w, 3), dtype=np.uint8),
      "reference_intrinsics": k, "target_intrinsics": k.copy(),
      "reference_cam_to_world": np.broadcast_to(np.eye(4, dtype=np.float32), (b, t, 4, 4)).copy(),
      "target_cam_to_world": target_c2w.astype(np.float32),
      "query_points": np.stack([rng.integers(0, t, (b, n)).astype(np.float32),
                                rng.uniform(0, w, (b, n)), rng.uniform(0, h, (b, n))],
                               -1).astype(np.float32),
      "tracks": np.stack([rng.uniform(0, w, (b, 2, t, n)), rng.uniform(0, h, (b, 2, t, n))],
                         -1).astype(np.float32),
      "visible": np.ones((b, 2, t, n), bool),
      "track_mask": np.ones((b, n), bool),
  }
  missing = set(spec) - set(out)
  if missing:
    raise ValueError(f"random_batch: no generator for batch keys {sorted(missing)}")
  return {key: out[key] for key in spec}


class LatentShapeAutoencoder:
  """Parameter-free stand-in with the Wan VAE's *shapes*: ``(B, T, H, W, 3) → (B, 1+(T−1)/4, H/8,
  W/8, 16)``.

  The Wan2.1 VAE (causal 4× temporal, 8× spatial, 16 channels) is not ported yet; this keeps the
  paper configuration's token layout (2×21 latent frames at 60×104 for 81 frames at 480×832)
  buildable, lowerable and benchmarkable. Encoding: the first frame is repeated 3× in front (the
  causal first latent frame sees frame 0 only), frames are grouped 4 at a time, each 8×8 pixel
  block of a group (4·8·8·3 = 768 values in ``[−1, 1]``) is projected onto 16 fixed orthonormal
  directions (seeded QR). It is *not* a substitute for the VAE's quality: train real models on
  VAE latents once the VAE lands.
  """

  temporal_factor = 4
  spatial_factor = 8
  latent_channels = 16

  def __init__(self, seed: int = 0):
    t, s = self.temporal_factor, self.spatial_factor
    m = np.random.default_rng(seed).standard_normal((t * s * s * 3, self.latent_channels))
    self._projection = np.linalg.qr(m)[0].astype(np.float32)  # orthonormal columns

  def latent_shape(self, video_shape):
    if len(video_shape) != 5 or video_shape[-1] != 3:
      raise ValueError(f"LatentShapeAutoencoder: video must be (B, T, H, W, 3), got {tuple(video_shape)}")
    b, t, h, w, _ = video_shape
    s, k = self.spatial_factor, self.temporal_factor
    if (t - 1) % k or h % s or w % s:
      raise ValueError(f"LatentShapeAutoencoder: need T = 1 + 4·n and H, W divisible by 8, got {tuple(video_shape)}")
    return (b, 1 + (t - 1) // k, h // s, w // s, self.latent_channels)

  def encode(self, video):
    """``(B, T, H, W, 3)`` uint8 → ``(B, 1+(T−1)/4, H/8, W/8, 16)`` float32 (see class doc)."""
    import einops  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    self.latent_shape(video.shape)
    x = jnp.asarray(video).astype(jnp.float32) / 127.5 - 1.0
    x = jnp.concatenate([jnp.repeat(x[:, :1], self.temporal_factor - 1, axis=1), x], axis=1)
    s, k = self.spatial_factor, self.temporal_factor
    x = einops.rearrange(x, "b (f k) (h p1) (w p2) c -> b f h w (k p1 p2 c)", k=k, p1=s, p2=s)
    return x @ jnp.asarray(self._projection)


def make_autoencoder(config: ml_collections.ConfigDict):
  """``config.autoencoder``: ``{"kind": "pixel", "patch": p}`` or ``{"kind": "latent_shape"}``."""
  kind = config.autoencoder.kind
  if kind == "pixel":
    from mvtrack_jax.models import autoencoder as ae_lib  # pylint: disable=g-import-not-at-top
    return ae_lib.PixelAutoencoder(patch=int(config.autoencoder.patch))
  if kind == "latent_shape":
    return LatentShapeAutoencoder()
  raise ValueError(f"config.autoencoder.kind={kind!r}; expected 'pixel' or 'latent_shape'")


def make_models(config: ml_collections.ConfigDict):
  """``(dit, head_or_None, autoencoder, objective_config)`` from the config blocks."""
  from mvtrack_jax.losses import correspondence  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.losses import objective as objective_lib  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.losses import tracking  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.models import tracking_head as head_lib  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.models import wan  # pylint: disable=g-import-not-at-top
  m = config.model
  overrides = {k: (tuple(v) if isinstance(v, list) else v)
               for k, v in m.get("overrides", ml_collections.ConfigDict()).items()}
  dit = wan.WanDiT(wan.get_config(m.preset, **overrides))
  o = config.objective
  corr_cfg = correspondence.CorrespondenceConfig(**{
      "layers": tuple(o.corr_layers), **dict(o.get("corr", {}))})
  obj_cfg = objective_lib.ObjectiveConfig(
      lambda_diff=float(o.lambda_diff), lambda_track=float(o.lambda_track),
      lambda_corr=float(o.lambda_corr), head_layers=tuple(o.head_layers), corr=corr_cfg,
      tracking=tracking.TrackingLossConfig(**dict(o.get("tracking", {}))),
      schedule=FlowMatchingSchedule(**dict(o.get("schedule", {}))),
      context_length=int(o.context_length))
  head = None
  if obj_cfg.lambda_track > 0:
    h = config.head
    kwargs = dict(h.get("overrides", {}))
    head_cfg = (head_lib.TrackingHeadConfig.tiny(**kwargs) if h.preset == "tiny"
                else head_lib.TrackingHeadConfig(**kwargs))
    head = head_lib.MVTAPHead(head_cfg)
  return dit, head, make_autoencoder(config), obj_cfg


# Objective metric names → the names logged in metrics.jsonl (issue 5 / README).
_RENAME = {"diff_loss": "loss_diff", "track_loss": "loss_track", "corr_loss": "loss_corr"}


def build_task(config: ml_collections.ConfigDict) -> Task:
  """The MVTrack4Gen ``Task`` for ``config`` (see module docstring).

  Metrics: the objective's, with ``diff_loss/track_loss/corr_loss`` renamed
  ``loss_diff/loss_track/loss_corr``; a term that is off (λ = 0) is logged as 0.
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.losses import objective as objective_lib  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.models import wan  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.training import flops as flops_lib  # pylint: disable=g-import-not-at-top
  dit, head, autoencoder, obj_cfg = make_models(config)
  objective = objective_lib.make_objective(dit, head, autoencoder, obj_cfg)

  def loss_fn(params, batch, rng):
    loss, metrics = objective(params, batch, rng)
    out = {_RENAME.get(k, k): v for k, v in metrics.items()}
    for name in _RENAME.values():
      out.setdefault(name, jnp.zeros((), jnp.float32))
    return loss, out

  spec1 = batch_spec(config, 1)

  def init_params(rng):
    zeros = {k: jnp.zeros(v.shape, v.dtype) for k, v in spec1.items()}
    return objective_lib.init_params(rng, dit, head, autoencoder, zeros, obj_cfg)

  latent = autoencoder.latent_shape(spec1["target_video"].shape)
  grid = wan.token_grid(dit.config, latent)
  tokens_per_view = grid[0] * grid[1] * grid[2]
  dit_fwd = flops_lib.dit_forward_flops(dit.config, tokens_per_view,
                                        text_len=obj_cfg.context_length)
  head_fwd = 0.0
  if head is not None:
    head_fwd = flops_lib.head_forward_flops(
        head.config, grid=grid, in_channels=len(obj_cfg.head_layers) * dit.config.dim,
        num_points=spec1["query_points"].shape[1])
  return Task(
      name=config.get("name", "mvtrack4gen"), init_params=init_params, loss_fn=loss_fn,
      logical_axis_rules=tuple(wan.LOGICAL_AXIS_RULES),
      make_iterator=lambda split, b, seed: make_iterator(config, split, b, seed),
      batch_spec=lambda global_batch: batch_spec(config, global_batch),
      flops_per_example=flops_lib.train_flops_per_example(dit_fwd, head_fwd),
      tokens_per_example=2 * tokens_per_view)
