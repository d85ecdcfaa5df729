"""The attention-layer correspondence probe of a trained model over a data split (DiffTrack protocol).

:func:`run_probe` is what ``python -m mvtrack_jax.probe`` runs (its docstring describes the protocol and the
files) and what ``compare`` runs for every model: one deterministic pass over a split, each batch's target
latents noised to each probed σ, one DiT forward returning every probed layer's q/k, scored by
``evaluation.probe`` (the metric definitions) and pooled over the split. :func:`run_feature_probe` is Track4Gen's
layer study over the same pass (``--probe=features``; definitions in ``evaluation.feature_probe``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from mvtrack_jax.data import pipeline
from mvtrack_jax.data import sources
from mvtrack_jax.data import video_io
from mvtrack_jax.diffusion.flow_matching import add_noise
from mvtrack_jax.evaluation import feature_probe
from mvtrack_jax.evaluation import probe as probe_lib
from mvtrack_jax.inference import novel_view
from mvtrack_jax.models.mvtrack4gen import CAMERA_KEYS

DEFAULT_GRID_STEPS = (0, 10, 20, 30, 40, 49)


def probe_timesteps(schedule, grid_steps: Sequence[int] = DEFAULT_GRID_STEPS,
                    num_inference_steps: int = 50) -> tuple[list[float], list[float]]:
  """``(timesteps, sigmas)`` of the given points of the inference grid (timestep = ``1000·σ``).

  Raises:
    ValueError: a grid step outside ``[0, num_inference_steps)``.
  """
  sigmas = schedule.inference_sigmas(num_inference_steps)
  bad = [s for s in grid_steps if not 0 <= int(s) < num_inference_steps]
  if bad or not grid_steps:
    raise ValueError(f"probe: grid_steps {list(grid_steps)} must be a non-empty list in [0, {num_inference_steps})")
  sig = [float(sigmas[int(s)]) for s in grid_steps]
  return [1000.0 * s for s in sig], sig


def _pad_batch(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
  """Pads a partial batch to ``size`` with copies of example 0 marked ``track_mask = False``."""
  b = batch["track_mask"].shape[0]
  if b == size:
    return batch
  out = {}
  for key, value in batch.items():
    pad = np.repeat(value[:1], size - b, axis=0)
    if key == "track_mask":
      pad = np.zeros_like(pad)
    out[key] = np.concatenate([value, pad], axis=0)
  return out


def _noised_probes(net, params, batch, noise, sigma, **probe_args) -> tuple[dict[str, Any], dict[int, Any]]:
  """``(prepared, probes)`` of one DiT forward on the batch's target latents noised to ``sigma`` (clean reference,
  the model's null or given context); ``probe_args`` are ``MVTrack4Gen.velocity``'s probe options."""
  p = net.prepare(batch, params)
  b = p["target"].shape[0]
  noisy = add_noise(p["target"], noise, jnp.full((b,), sigma, jnp.float32))
  timestep = jnp.full((b,), 1000.0, jnp.float32) * sigma
  _, probes = net.velocity(params["dit"], noisy, timestep, p, refiner_params=params.get("refiner"), **probe_args)
  return p, probes


def make_probe_fn(model, layers: Sequence[int], kinds: Sequence[str], pck_threshold: float):
  """Jitted ``fn(params, batch, noise, sigma) -> (L, K, 4)`` sums for one timestep.

  ``batch`` holds the pipeline keys the DiT and the metrics need; ``noise`` has the target latents'
  shape; ``sigma`` is a float32 scalar (traced, so all timesteps share one compile per shape).
  """
  net = model.model
  layers = tuple(int(l) for l in layers)

  @jax.jit
  def fn(params, batch, noise, sigma):
    p, probes = _noised_probes(net, params, batch, noise, sigma, probe_layers=layers)
    return probe_lib.probe_sums(probes, p["tracks"], p["visible"], jnp.asarray(batch["track_mask"], bool),
                                grid=p["grid"], token_stride=net.token_stride, layers=layers, kinds=kinds,
                                pck_threshold=pck_threshold)

  return fn


def _check_settings(batch_size: int, num_batches: int | None, top_k: int) -> None:
  if batch_size < 1:
    raise ValueError(f"probe: batch_size must be >= 1, got {batch_size}")
  if num_batches is not None and num_batches < 1:
    raise ValueError(f"probe: num_batches must be >= 1 or None, got {num_batches}")
  if top_k < 1:
    raise ValueError(f"probe: top_k must be >= 1, got {top_k}")


def _load(checkpoint: str | novel_view.NovelViewPipeline) -> novel_view.NovelViewPipeline:
  return (checkpoint if isinstance(checkpoint, novel_view.NovelViewPipeline)
          else novel_view.NovelViewPipeline.from_checkpoint(checkpoint))


def _layers(model: novel_view.NovelViewPipeline, layers: Sequence[int] | None) -> list[int]:
  """The probed 0-based layers, sorted (default all). Raises ValueError when one is out of range."""
  num_layers = model.dit.config.num_layers
  layers = list(range(num_layers)) if not layers else sorted({int(l) for l in layers})
  if any(not 0 <= l < num_layers for l in layers):
    raise ValueError(f"probe: layers {layers} out of range, expected 0-based indices < {num_layers}")
  return layers


def _timesteps(model: novel_view.NovelViewPipeline, timesteps: Sequence[float] | None, grid_steps: Sequence[int],
               num_inference_steps: int) -> tuple[list[float], list[float], bool]:
  """``(timesteps, sigmas, explicit)``: the given DiT timesteps, or the points of the inference grid."""
  if timesteps:
    timesteps = [float(t) for t in timesteps]
    if any(not 0.0 <= t <= 1000.0 for t in timesteps):
      raise ValueError(f"probe: timesteps {timesteps} must be DiT timesteps 1000·σ in [0, 1000]")
    return timesteps, [t / 1000.0 for t in timesteps], True
  timesteps, sigmas = probe_timesteps(model.objective.schedule, grid_steps, num_inference_steps)
  return timesteps, sigmas, False


def _probe_pass(model: novel_view.NovelViewPipeline, fn, shape: tuple[int, ...], *, split: str, batch_size: int,
                num_batches: int | None, sigmas: Sequence[float], seed: int, progress: bool
                ) -> tuple[np.ndarray, int, int, float]:
  """One deterministic pass over ``split``: each batch's latents, one fixed noise per batch, ``fn`` at every σ.

  ``fn(params, arrays, noise, sigma)`` returns sums of shape ``shape``; they are added up over batches per σ.

  Returns:
    ``(sums (shape[0], len(sigmas), *shape[1:]) float64, batches, examples, seconds)``.

  Raises:
    ValueError: a split without any example.
  """
  source = sources.data_source(model.config.data, split)
  config = dataclasses.replace(sources.pipeline_config(model.config.data, batch_size, train=False),
                               drop_remainder=False)
  total = -(-len(source) // batch_size)
  if num_batches is not None:
    total = min(total, num_batches)
  iterator = pipeline.make_iterator(source, config, seed=0, train=False)
  image_encoder = model.image_encoder  # CLIP features of the reference, for an image branch
  sums = np.zeros((shape[0], len(sigmas)) + tuple(shape[1:]), np.float64)
  bar = tqdm.tqdm(total=total * len(sigmas), desc="probe", unit="fwd") if progress else None
  start = time.time()
  num_done = num_examples = 0
  key = jax.random.key(seed)
  for batch in iterator:
    if num_done >= total:
      break
    num_examples += int(batch["track_mask"].shape[0])
    batch = _pad_batch(dict(batch), batch_size)
    # Latents are encoded here, eagerly (a Wan VAE never runs inside the jitted probe).
    arrays = {k: batch[k] for k in ("tracks", "visible", "track_mask") + CAMERA_KEYS}
    arrays |= {f"{v}_latents": model.autoencoder.encode(batch[f"{v}_video"]) for v in ("reference", "target")}
    if image_encoder is not None:
      arrays["image_context"] = image_encoder.encode(np.asarray(batch["reference_video"])[:, 0])
    noise = jax.random.normal(jax.random.fold_in(key, num_done), arrays["target_latents"].shape, jnp.float32)
    for j, sigma in enumerate(sigmas):
      sums[:, j] += np.asarray(jax.device_get(fn(model.params, arrays, noise, jnp.float32(sigma))), np.float64)
      if bar is not None:
        bar.update(1)
    num_done += 1
  if bar is not None:
    bar.close()
  if num_done == 0:
    raise ValueError(f"probe: split {split!r} gave no batch")
  return sums, num_done, num_examples, time.time() - start


def _checkpoint_record(model: novel_view.NovelViewPipeline) -> dict[str, Any]:
  return {"name": model.name, "step": model.step, "source": model.source}


def _settings(model: novel_view.NovelViewPipeline, **settings) -> dict[str, Any]:
  """The record's settings: the given ones and what the model's forward was fed."""
  image_encoder = model.image_encoder
  return dict(settings, token_stride=model.token_stride,
              context=("null context (umT5 empty prompt)" if model.model.with_text
                       else f"zeros x {model.model.context_length}"),
              image_context=("off" if image_encoder is None
                             else f"CLIP features of the reference's first frame ({image_encoder.source})"))


def run_probe(checkpoint: str | novel_view.NovelViewPipeline, out: str, *, split: str = "test",
              layers: Sequence[int] | None = None,
              timesteps: Sequence[float] | None = None, grid_steps: Sequence[int] = DEFAULT_GRID_STEPS,
              num_inference_steps: int = 50, num_batches: int | None = None, batch_size: int = 1,
              pck_threshold: float = probe_lib.DEFAULT_PCK_THRESHOLD, top_k: int = 3, seed: int = 0,
              progress: bool = True) -> dict[str, Any]:
  """Runs the probe and writes its outputs (module docstring).

  Args:
    checkpoint: export directory or training workdir (``NovelViewPipeline.from_checkpoint``), or a loaded
      pipeline.
    out: output directory (created).
    split: data split of the model's dataset ("train", "validation" or "test"); always one
      deterministic pass with centre crops.
    layers: 0-based DiT layers (default all).
    timesteps: DiT timesteps ``1000·σ`` in ``[0, 1000]``; default from ``grid_steps``.
    grid_steps: points of the ``num_inference_steps``-step inference grid used when ``timesteps``
      is None.
    num_inference_steps: size of that grid.
    num_batches: stop after this many batches (default: the whole split).
    batch_size: examples per batch.
    pck_threshold: PCK threshold in video pixels (strict ``<``).
    top_k: top layers reported per kind.
    seed: seed of the noise (batch ``i`` uses ``fold_in(key(seed), i)``).
    progress: show a tqdm bar over batches × timesteps.

  Returns:
    The ``probe.json`` record.

  Raises:
    ValueError: bad layers / timesteps / sizes, or a split without any example.
  """
  _check_settings(batch_size, num_batches, top_k)
  if not pck_threshold > 0:
    raise ValueError(f"probe: pck_threshold must be > 0 pixels, got {pck_threshold}")
  video_io.check_output_dir(out)  # fail before the model is loaded
  model = _load(checkpoint)
  layers = _layers(model, layers)
  timesteps, sigmas, explicit = _timesteps(model, timesteps, grid_steps, num_inference_steps)
  kinds = probe_lib.KINDS
  fn = make_probe_fn(model, layers, kinds, pck_threshold)
  sums, num_done, num_examples, seconds = _probe_pass(
      model, fn, (len(layers), len(kinds), len(probe_lib.SUM_FIELDS)), split=split, batch_size=batch_size,
      num_batches=num_batches, sigmas=sigmas, seed=seed, progress=progress)

  tables = probe_lib.metric_tables(sums, kinds, layers, top_k)
  os.makedirs(out, exist_ok=True)
  probe_lib.write_csv(os.path.join(out, "probe_table.csv"), tables, layers, timesteps, sigmas)
  record = {
      "checkpoint": _checkpoint_record(model),
      "settings": _settings(model, split=split, layers=layers, timesteps=timesteps, sigmas=sigmas,
                            grid_steps=None if explicit else [int(s) for s in grid_steps],
                            num_inference_steps=num_inference_steps, num_batches=num_done,
                            num_examples=num_examples, batch_size=batch_size, seed=seed,
                            pck_threshold=pck_threshold, top_k=top_k,
                            aggregation="mean over all valid (point, pair) entries of a kind, pooled over batches",
                            ranking="layers by mean harmonic mean over timesteps"),
      "kinds": list(kinds),
      "top_layers": {kind: [int(l) for l in tables[kind]["top_layers"]] for kind in kinds},
      "tables": probe_lib.tables_to_json(tables),
      "seconds": round(seconds, 3),
  }
  probe_lib.write_json(os.path.join(out, "probe.json"), record)
  for kind in kinds:
    probe_lib.write_heatmap(os.path.join(out, f"heatmap_{kind}.png"), kind, tables[kind], layers, timesteps)
  return record


def make_feature_probe_fn(model, layers: Sequence[int], kinds: Sequence[str], query_frame: int, upsample: int):
  """Jitted ``fn(params, batch, noise, sigma) -> (L, K, len(feature_probe.SUM_FIELDS))`` counts for one timestep
  (zeros for a kind a layer does not have: ``refined`` away from the refiner's tap)."""
  net = model.model
  layers = tuple(int(l) for l in layers)
  qk_layers = layers if {"q", "k"} & set(kinds) else ()
  with_refined = "refined" in kinds

  @jax.jit
  def fn(params, batch, noise, sigma):
    p, probes = _noised_probes(net, params, batch, noise, sigma, probe_layers=qk_layers, feature_layers=layers,
                               with_refined=with_refined)
    zeros = jnp.zeros((len(feature_probe.SUM_FIELDS),), jnp.float32)
    rows = []
    for layer in layers:
      row = []
      for kind in kinds:
        if kind == feature_probe.ZERO_MOTION:
          tracks = p["tracks"]
          row.append(sum(feature_probe.estimate_sums(
              jnp.broadcast_to(tracks[:, v, query_frame:query_frame + 1], tracks[:, v].shape), tracks[:, v],
              p["visible"][:, v], jnp.asarray(batch["track_mask"], bool), image_size=p["image_size"],
              query_frame=query_frame) for v in (0, 1)))
          continue
        if kind == "refined" and layer != net.feat_layer:
          row.append(zeros)
          continue
        feats = feature_probe.layer_features(probes, layer, kind, p["grid"])
        row.append(feature_probe.view_sums(feats, p["tracks"], p["visible"], jnp.asarray(batch["track_mask"], bool),
                                           token_stride=net.token_stride, image_size=p["image_size"],
                                           query_frame=query_frame, upsample=upsample))
      rows.append(jnp.stack(row))
    return jnp.stack(rows)

  return fn


def run_feature_probe(checkpoint: str | novel_view.NovelViewPipeline, out: str, *, split: str = "test",
                      layers: Sequence[int] | None = None, kinds: Sequence[str] | None = None,
                      timesteps: Sequence[float] | None = None, grid_steps: Sequence[int] = DEFAULT_GRID_STEPS,
                      num_inference_steps: int = 50, num_batches: int | None = None, batch_size: int = 1,
                      query_frame: int = 0, upsample: int = feature_probe.DEFAULT_UPSAMPLE, seed: int = 0,
                      progress: bool = True) -> dict[str, Any]:
  """Track4Gen's layer study (``evaluation.feature_probe``): cosine nearest-neighbour δ_avg of each feature kind at
  each layer and noise level, over one deterministic pass of ``split`` (noise, context and batches exactly as
  :func:`run_probe`).

  Args:
    checkpoint, split, layers, timesteps, grid_steps, num_inference_steps, num_batches, batch_size, seed, progress:
      as :func:`run_probe`.
    out: output directory: ``feature_probe.json``, ``feature_probe_table.csv``, ``feature_probe.png``.
    kinds: feature kinds (``feature_probe.FEATURE_KINDS``); default ``features``, plus ``refined`` for a model
      with a refiner (its tap layer is then always probed); the ``zero_motion`` baseline is always added.
    query_frame: latent frame of the queries.
    upsample: bilinear upsampling of the feature maps before matching (``feature_probe.tracking_sums``).

  Returns:
    The ``feature_probe.json`` record: settings, ``delta_avg`` ``{kind: [[per timestep] per layer]}`` (None where
    not scored), ``count`` likewise, ``best_layer`` per kind (highest mean δ_avg over timesteps), ``zero_motion``
    (the baseline's δ_avg) and, for a model
    with a refiner, ``tap`` ``{"layer", "features", "refined"}``: the two δ_avg at its tap averaged over timesteps.

  Raises:
    ValueError: bad layers / kinds / timesteps / sizes, ``refined`` asked of a model without a refiner, a query
      frame past the model's latent frames, or a split without any example.
  """
  _check_settings(batch_size, num_batches, 1)
  video_io.check_output_dir(out)
  model = _load(checkpoint)
  tap = model.model.feat_layer if model.model.refiner is not None else None
  kinds = list(kinds) if kinds else ["features"] + (["refined"] if tap is not None else [])
  allowed = feature_probe.FEATURE_KINDS + (feature_probe.ZERO_MOTION,)
  bad = [k for k in kinds if k not in allowed]
  if bad or len(set(kinds)) != len(kinds):
    raise ValueError(f"probe: feature kinds {kinds}, expected distinct names among {allowed}")
  if feature_probe.ZERO_MOTION not in kinds:
    kinds.append(feature_probe.ZERO_MOTION)
  if "refined" in kinds and tap is None:
    raise ValueError(f"probe: feature kind 'refined' needs a model with a refiner; {model.name} has none")
  layers = _layers(model, layers)
  if tap is not None and tap not in layers:
    layers = sorted(layers + [tap])
  if query_frame < 0 or upsample < 1:
    raise ValueError(f"probe: query_frame ({query_frame}) must be >= 0 and upsample ({upsample}) >= 1")
  timesteps, sigmas, explicit = _timesteps(model, timesteps, grid_steps, num_inference_steps)
  fn = make_feature_probe_fn(model, layers, kinds, query_frame, upsample)
  sums, num_done, num_examples, seconds = _probe_pass(
      model, fn, (len(layers), len(kinds), len(feature_probe.SUM_FIELDS)), split=split, batch_size=batch_size,
      num_batches=num_batches, sigmas=sigmas, seed=seed, progress=progress)
  table = feature_probe.delta_table(sums)                                       # (L, T, K)
  cells = lambda k: [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in table[:, :, k]]
  record = {
      "checkpoint": _checkpoint_record(model),
      "settings": _settings(model, split=split, layers=layers, timesteps=timesteps, sigmas=sigmas,
                            grid_steps=None if explicit else [int(s) for s in grid_steps],
                            num_inference_steps=num_inference_steps, num_batches=num_done,
                            num_examples=num_examples, batch_size=batch_size, seed=seed, query_frame=query_frame,
                            upsample=upsample,
                            aggregation="δ_avg over all scored (point, frame) entries of both views, pooled over "
                                        "batches"),
      "kinds": kinds,
      "delta_avg": {kind: cells(k) for k, kind in enumerate(kinds)},
      "count": {kind: sums[:, :, k, 0].astype(int).tolist() for k, kind in enumerate(kinds)},
      "best_layer": {k: v for k, v in feature_probe.best_layers(sums, kinds, layers).items()
                     if k != feature_probe.ZERO_MOTION},
      "zero_motion": float(np.nanmean(table[:, :, kinds.index(feature_probe.ZERO_MOTION)])),
      "seconds": round(seconds, 3),
  }
  if tap is not None:
    i = layers.index(tap)
    record["tap"] = {"layer": tap, **{kind: float(np.nanmean(table[i, :, kinds.index(kind)]))
                                      for kind in ("features", "refined") if kind in kinds}}
  os.makedirs(out, exist_ok=True)
  feature_probe.write_csv(os.path.join(out, "feature_probe_table.csv"), sums, kinds, layers, timesteps, sigmas)
  probe_lib.write_json(os.path.join(out, "feature_probe.json"), record)
  feature_probe.write_plot(os.path.join(out, "feature_probe.png"), sums, kinds, layers, timesteps)
  return record
