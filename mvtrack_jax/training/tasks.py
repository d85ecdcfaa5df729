"""The MVTrack4Gen training task built from a config: data sources, pipeline, model, objective.

``build_task(config)`` joins the pieces other packages own into the trainer's ``Task``:

- data (``config.data``): a random-access source — the built-in synthetic dataset
  (``data.synthetic_dataset.load_split``, built on first use into ``$MVTRACK_DATA_DIR``), a
  directory of ``.npz`` clips (``data.readers.NpzClipSource``) or a MultiCamVideo tree
  (``data.readers.MultiCamVideoSource``) — fed through the grain pipeline
  (``data.pipeline.make_iterator``), one shard per JAX process;
  (sources: ``data.sources``); cached features of frozen encoders ride along (``data.feature_cache``:
  VAE latents, umT5 captions, CLIP image features);
- model + objective (``config.model``, ``config.head``, ``config.autoencoder``,
  ``config.objective``): ``builders.build_model`` and the schema's
  ``run_config.RunConfig.objective_config``.

``random_batch`` makes a valid random batch with a task's batch spec (benchmarks, abstract tests).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mvtrack_jax import run_config
from mvtrack_jax.convert import pretrained as convert_pretrained
from mvtrack_jax.data import feature_cache, pipeline, sources
from mvtrack_jax.geometry import cameras as geometry
from mvtrack_jax.losses import objective as objective_lib
from mvtrack_jax.models import wan
from mvtrack_jax.builders import build_model, make_autoencoder
from mvtrack_jax.models.mvtrack4gen import MVTrack4Gen
from mvtrack_jax.training import flops as flops_lib
from mvtrack_jax.training.task import Task

def make_iterator(config: ml_collections.ConfigDict, split: str, per_process_batch: int,
                  seed: int):
  """Grain iterator of per-process numpy batches (``data.pipeline`` output layout).

  Training (``split == "train"``: ``config.data.train_split`` of every source) mixes the primary
  source and the ``config.data.mixture`` entries by weight (``data.sources``; one source: the plain
  pipeline), shuffles, repeats and random-crops; evaluation makes one pass in order over
  ``config.data.eval_split`` of ``config.data.eval_source`` with centred crops. With the Wan VAE
  (``autoencoder.kind = "wan"``) the batches also carry ``reference_latents`` / ``target_latents``:
  read from each source's latent cache (``latents_dir``; windows are then centred, every frame,
  starting on the 4-frame latent stride; ``data.pipeline``) when every source has one, else encoded
  by the frozen VAE as the last step of the iterator, so the train step never runs the encoder. With
  ``config.text.cache`` the batches carry ``context``: the reference view's caption embeddings from
  the primary's text cache (a mixture entry's ``text_cache``), zero-padded to
  ``text.context_length``; a source without a caption cache gets the null context (the text
  cache's empty prompt) for every example. With ``config.image.cache`` the batches carry
  ``image_context`` ``(B, N, D)``: the CLIP features of the reference view's first frame from the
  primary's image cache (a mixture entry's ``image_cache``; ``data.feature_cache``); every source of
  the run needs one, since there is no null image.

  Raises:
    ValueError: some but not all sources have a latent cache, a latent cache without the Wan VAE,
      a source without an image cache in a run with image features (naming the mixture entry), or
      an image cache made for another run (tokens, width, preprocess or frame size).
    FileNotFoundError: a cache folder that is not such a cache (the message says how to make one).
  """
  data = config.data
  train = split == "train"
  split_name = data.train_split if train else data.eval_split
  specs = sources.source_specs(data)
  names = list(specs) if train else [sources.eval_source_name(data)]
  if train:
    names = [n for n in names if float(specs[n]["weight"]) > 0]
  image_caches = _image_caches(config, specs, names)
  pcfg = _pipeline_config(config, per_process_batch, train)
  cached = [bool(specs[n]["latents_dir"]) for n in names]
  transform, ae = None, None
  if any(cached) or config.autoencoder.kind == "wan":
    ae = make_autoencoder(run_config.parse(config).autoencoder)
    if config.autoencoder.kind != "wan":
      raise ValueError(f"a latent cache (latents_dir) is set, but config.autoencoder.kind="
                       f"{config.autoencoder.kind!r}; cached latents are Wan-VAE latents (kind='wan')")
    if any(cached) and not all(cached):
      raise ValueError(f"sources {[n for n, c in zip(names, cached) if not c]} have no latents_dir but "
                       f"{[n for n, c in zip(names, cached) if c]} do: give every source of the run a latent cache "
                       "(python -m mvtrack_jax.data.encode_latents --source NAME) or none")
    if all(cached):
      latent = ae.latent_shape((1, pcfg.num_frames, pcfg.height, pcfg.width, 3))[1:]
      pcfg = dataclasses.replace(pcfg, latent_shape=latent, frames_per_latent=ae.temporal_factor, random_crop=False)
    else:
      transform = _EncodeLatents(ae)
  first = next(iter(specs))
  record_sources = []
  for name in names:
    source = sources.data_source(data, split_name, name)
    spec = specs[name]
    if spec["latents_dir"]:
      source = feature_cache.CachedFeatureSource(
          source, str(spec["latents_dir"]), split_name,
          expect=feature_cache.cache_metadata(pcfg.height, pcfg.width, ae))
    if pcfg.context_shape is not None:
      text_cache = str(config.text.cache) if name == first else str(spec["text_cache"])
      length, dim = pcfg.context_shape
      source = (feature_cache.CachedFeatureSource(source, text_cache, split_name, feature_cache.TEXT_JSON,
                                                  expect={"max_length": length, "dim": dim}) if text_cache
                else feature_cache.NullContextSource(source, str(config.text.cache)))
    if image_caches:
      source = feature_cache.CachedFeatureSource(
          source, image_caches[name], split_name, feature_cache.IMAGE_JSON,
          expect={"num_tokens": pcfg.image_shape[0], "width": pcfg.image_shape[1],
                  "preprocess": str(config.image.preprocess), "frame_size": [pcfg.height, pcfg.width]})
    record_sources.append(source)
  if train and pcfg.mixture:
    # One entry per name of pcfg.mixture (source_id indexes it); weight-0 entries are never read (None).
    by_name = dict(zip(names, record_sources))
    return pipeline.make_iterator([by_name.get(n) for n in specs], pcfg, seed=seed, batch_transform=transform,
                                  weights=[float(specs[n]["weight"]) if n in by_name else 0.0 for n in specs])
  stream = list(specs).index(names[0]) if pcfg.mixture else None
  return pipeline.make_iterator(record_sources[0], pcfg, seed=seed, train=train, batch_transform=transform,
                                stream=stream)


class _EncodeLatents:
  """Batch transform: adds the frozen VAE's latents of both views (``WanVAEAutoencoder.encode``)."""

  def __init__(self, autoencoder):
    self.autoencoder = autoencoder

  def __call__(self, batch):
    return batch | {f"{view}_latents": np.asarray(self.autoencoder.encode(batch[f"{view}_video"]))
                    for view in ("reference", "target")}


def _image_caches(config: ml_collections.ConfigDict, specs: Mapping[str, Mapping[str, Any]],
                  names: list[str]) -> dict[str, str]:
  """``{source name: image cache}`` of the sources ``names`` read by a run with ``config.image.cache``; ``{}``
  without (the primary's is ``config.image.cache``, a mixture entry's its ``image_cache``).

  Raises:
    ValueError: a mixture entry in ``names`` has no ``image_cache`` while ``config.image.cache`` is set (no
      null image exists to stand in), or has one while ``config.image.cache`` is empty.
  """
  primary, first = str(config.image.cache), next(iter(specs))
  if not primary:
    stray = [n for n in names if n != first and specs[n]["image_cache"]]
    if stray:
      raise ValueError(f"config.data.mixture.{stray[0]}.image_cache is set but config.image.cache (the primary "
                       "source's) is empty: set config.image.cache to train with image features, or clear the entry's")
    return {}
  caches = {n: primary if n == first else str(specs[n]["image_cache"]) for n in names}
  missing = [n for n, c in caches.items() if not c]
  if missing:
    entries = ", ".join(f"config.data.mixture.{n}" for n in missing)
    raise ValueError(f"{entries}: no image_cache, but config.image.cache is set: every source of a run with image "
                     "features needs the CLIP features of its records (there is no null image); make them with "
                     f"python -m mvtrack_jax.data.encode_image --source {missing[0]} --out DIR and set "
                     f"config.data.mixture.{missing[0]}.image_cache=DIR, or give the entry weight 0")
  return caches


def _pipeline_config(config: ml_collections.ConfigDict, per_process_batch: int, train: bool):
  """``sources.pipeline_config`` of ``config.data`` plus the text embeddings' ``context_shape``, the image
  features' ``image_shape`` (read from ``config.image.cache``) and, for a mixture, the names of its sources
  (batches then carry ``source_id``).

  Raises:
    FileNotFoundError: ``config.image.cache`` is not an image cache. ValueError: its feature width is not
      the DiT's ``image_dim``.
  """
  pcfg = sources.pipeline_config(config.data, per_process_batch, train=train)
  specs = sources.source_specs(config.data)
  if len(specs) > 1:
    pcfg = dataclasses.replace(pcfg, mixture=tuple(specs))
  image_cache = str(config.image.cache)
  dit = run_config.parse(config).model.wan_config()
  if config.text.cache:
    pcfg = dataclasses.replace(pcfg, context_shape=(int(config.text.context_length), dit.text_dim))
  if image_cache:
    shape = feature_cache.image_shape(image_cache)
    if dit.image_dim != shape[1]:
      raise ValueError(f"config.image.cache={image_cache}: image features of width {shape[1]}, but the DiT takes "
                       f"image_dim={dit.image_dim} (0: no image branch); use the model's image encoder or clear the cache")
    pcfg = dataclasses.replace(pcfg, image_shape=shape)
  return pcfg


def batch_spec(config: ml_collections.ConfigDict, global_batch: int
               ) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes/dtypes of one global batch (``data.pipeline.output_spec``, plus the latents of both
  views for the Wan VAE; see ``make_iterator``)."""
  spec = pipeline.output_spec(_pipeline_config(config, global_batch, True))
  if config.autoencoder.kind == "wan":
    latent = make_autoencoder(run_config.parse(config).autoencoder).latent_shape(spec["target_video"][0])
    spec |= {"reference_latents": (latent, np.dtype(np.float32)), "target_latents": (latent, np.dtype(np.float32))}
  return {k: jax.ShapeDtypeStruct(shape, dtype) for k, (shape, dtype) in spec.items()}


def random_batch(spec: Mapping[str, jax.ShapeDtypeStruct], per_process_batch: int,
                 config: ml_collections.ConfigDict, *, seed: int = 0) -> dict[str, np.ndarray]:
  """A random but valid per-process batch in the pipeline layout (for benchmarks).

  Videos are uniform noise, intrinsics a 60° pinhole, the reference camera fixed at the origin and
  the target camera orbiting by up to 0.3 rad around a point 4 m ahead, query points and tracks
  uniform in the image, all points visible and real.
  """
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
  for key in ("reference_latents", "target_latents", "context", "image_context"):
    if key in spec:
      out[key] = rng.standard_normal((b,) + tuple(spec[key].shape[1:])).astype(np.float32)
  if "source_id" in spec:
    out["source_id"] = np.zeros((b,), np.int32)
  missing = set(spec) - set(out)
  if missing:
    raise ValueError(f"random_batch: no generator for batch keys {sorted(missing)}")
  return {key: out[key] for key in spec}


def diffusion_weights(config: ml_collections.ConfigDict) -> np.ndarray | None:
  """``(S,)`` float32 L_diff weights of a mixture's sources in ``source_id`` order (``run_config.Source
  .diffusion_weight``), which the loss gives each training example as ``diffusion_weight``; None when the run has
  one source or every source weighs 1 (the objective's plain batch mean)."""
  names = _pipeline_config(config, 1, True).mixture or ()
  specs = sources.source_specs(config.data)
  weights = np.asarray([float(specs[name]["diffusion_weight"]) for name in names], np.float32)
  return weights if (weights != 1.0).any() else None


def _null_context(text_cache: str, model: MVTrack4Gen) -> np.ndarray:
  """The text cache's empty-prompt embedding zero-padded to ``(context_length, text_dim)``.

  Raises:
    FileNotFoundError: ``text_cache`` (``config.text.cache``) is not a text cache. ValueError: its embeddings do
      not fit the model.
  """
  root = text_cache
  null = feature_cache.read_null_context(root)
  try:
    return np.asarray(model.pad_context(null[None]))[0]
  except ValueError as e:
    raise ValueError(f"config.text.cache={root}: {feature_cache.NULL_NPY} does not fit the model: {e}") from e


def _check_null_context_frozen(trainable_patterns: tuple[str, ...]) -> None:
  """``text/null_context`` is a buffer: no trainable pattern may select it."""
  hits = [p for p in trainable_patterns if re.search(p, "text/null_context")]
  if hits:
    raise ValueError(f"config.optimizer.trainable_patterns {hits} select text/null_context, the stored umT5 "
                     "embedding of the empty prompt (the null branch of guidance); it must stay frozen: "
                     r"use patterns such as '^(dit|head)/' instead of '.*'")


# Objective metric names → the names logged in metrics.jsonl (docs/training.md, "What a run leaves in WORKDIR").
_RENAME = {"diff_loss": "loss_diff", "track_loss": "loss_track", "corr_loss": "loss_corr", "feat_loss": "loss_feat"}
# Logged as 0 when their term is off (the MVTrack4Gen terms every run has had; L_feat only when it is on).
_ALWAYS_LOGGED = ("loss_diff", "loss_track", "loss_corr")


def build_task(config: ml_collections.ConfigDict) -> Task:
  """The trainer's ``Task`` of ``config.task`` (:data:`TASK_BUILDERS`; the run-config schema lists the names)."""
  return TASK_BUILDERS[config.task](config)


def build_novel_view_task(config: ml_collections.ConfigDict) -> Task:
  """The MVTrack4Gen novel-view ``Task`` for ``config`` (``task = "novel_view"``; see module docstring).

  Metrics: the objective's, with ``diff_loss/track_loss/corr_loss/feat_loss`` renamed
  ``loss_diff/loss_track/loss_corr/loss_feat``; of the first three a term that is off (λ = 0) is logged as 0,
  ``loss_feat`` only appears with ``objective.lambda_feat > 0``.
  """
  run = run_config.parse(config)
  model = build_model(run)
  objective_config = run.objective_config()
  objective = objective_lib.make_objective(model, objective_config)
  dit, head = model.dit, model.head

  mixture = _pipeline_config(config, 1, True).mixture  # source names when several are mixed
  weights = diffusion_weights(config)

  def loss_fn(params, batch, rng, weighted=True):
    if weighted and weights is not None and "source_id" in batch:  # training batches of a mixture
      batch = dict(batch, diffusion_weight=jnp.asarray(weights)[batch["source_id"]])
    loss, metrics = objective(params, batch, rng)
    out = {_RENAME.get(k, k): v for k, v in metrics.items()}
    for name in _ALWAYS_LOGGED:
      out.setdefault(name, jnp.zeros((), jnp.float32))
    if "source_id" in batch:  # examples of each source in this (global) batch
      for i, name in enumerate(mixture):
        out[f"examples/{name}"] = jnp.sum(batch["source_id"] == i).astype(jnp.float32)
    return loss, out

  spec1 = batch_spec(config, 1)

  def init_params(rng):
    return model.init(rng, {k: jnp.zeros(v.shape, v.dtype) for k, v in spec1.items()})

  latent = model.autoencoder.latent_shape(spec1["target_video"].shape)
  grid = wan.token_grid(dit.config, latent)
  tokens_per_view = grid[0] * grid[1] * grid[2]
  image_len = spec1["image_context"].shape[1] if "image_context" in spec1 else 0
  dit_fwd = flops_lib.dit_forward_flops(dit.config, tokens_per_view, text_len=model.context_length,
                                        image_len=image_len)
  head_fwd = 0.0
  if head is not None:
    head_fwd = flops_lib.head_forward_flops(
        head.config, grid=grid, in_channels=len(model.head_layers) * dit.config.dim,
        num_points=spec1["query_points"].shape[1])
  if model.with_text:
    _check_null_context_frozen(run.optimizer.trainable_patterns)
  transformer_path = run.init.transformer
  if run.init.overlay and not transformer_path:
    raise ValueError(f"config.init.overlay={run.init.overlay!r} is a partial state dict applied over "
                     "config.init.transformer, which is empty; set both (e.g. the Fun base and ReDirector's step file)")

  def pretrained():
    values, report = {}, {"loaded": [], "fresh": [], "ignored": []}
    if transformer_path:
      values["dit"], report = convert_pretrained.pretrained_params(transformer_path, dit.config,
                                                                   overlay=run.init.overlay)
    if model.with_text:
      values["text"] = {"null_context": _null_context(run.text.cache, model)}
      report = dict(report, loaded=list(report["loaded"]) + ["text/null_context"])
    return values, report

  def eval_fn(params, batch, rng):
    """Validation reads one source (``data.eval_source``, often a tracked-only one): every example counts in L_diff."""
    loss, metrics = loss_fn(params, batch, rng, weighted=False)
    return {**{k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}, "loss": loss.astype(jnp.float32)}

  return Task(
      name=run.name, init_params=init_params, loss_fn=loss_fn, eval_fn=eval_fn if weights is not None else None,
      pretrained_params=pretrained if transformer_path or model.with_text else None,
      trunk_gradient_norms=(objective_lib.make_trunk_gradient_norms(objective, objective_config)
                            if objective_config.lambda_feat > 0 else None),
      logical_axis_rules=tuple(wan.LOGICAL_AXIS_RULES),
      make_iterator=lambda split, b, seed: make_iterator(config, split, b, seed),
      batch_spec=lambda global_batch: batch_spec(config, global_batch),
      flops_per_example=flops_lib.train_flops_per_example(dit_fwd, head_fwd),
      frozen_aware_flops_per_example=flops_lib.frozen_aware_train_flops(
          dit_fwd, head_fwd, lambda path: any(re.search(p, path) for p in run.optimizer.trainable_patterns)),
      tokens_per_example=2 * tokens_per_view)


# config.task → the builder of its Task. The schema's ``task`` field (run_config.RunConfig) names the same keys; a
# test checks that the two agree.
TASK_BUILDERS = {"novel_view": build_novel_view_task}
