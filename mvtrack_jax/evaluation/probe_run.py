"""The attention-layer correspondence probe of a trained model over a data split (DiffTrack protocol).

:func:`run_probe` is what ``python -m mvtrack_jax.probe`` runs (its docstring describes the protocol and the
files) and what ``compare`` runs for every model: one deterministic pass over a split, each batch's target
latents noised to each probed σ, one DiT forward returning every probed layer's q/k, scored by
``evaluation.probe`` (the metric definitions) and pooled over the split.
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


def make_probe_fn(model, layers: Sequence[int], kinds: Sequence[str], pck_threshold: float):
  """Jitted ``fn(params, batch, noise, sigma) -> (L, K, 4)`` sums for one timestep.

  ``batch`` holds the pipeline keys the DiT and the metrics need; ``noise`` has the target latents'
  shape; ``sigma`` is a float32 scalar (traced, so all timesteps share one compile per shape).
  """
  net = model.model
  layers = tuple(int(l) for l in layers)

  @jax.jit
  def fn(params, batch, noise, sigma):
    p = net.prepare(batch, params)
    b = p["target"].shape[0]
    noisy = add_noise(p["target"], noise, jnp.full((b,), sigma, jnp.float32))
    timestep = jnp.full((b,), 1000.0, jnp.float32) * sigma
    _, probes = net.velocity(params["dit"], noisy, timestep, p, probe_layers=layers,
                             refiner_params=params.get("refiner"))
    return probe_lib.probe_sums(probes, p["tracks"], p["visible"], jnp.asarray(batch["track_mask"], bool),
                                grid=p["grid"], token_stride=net.token_stride, layers=layers, kinds=kinds,
                                pck_threshold=pck_threshold)

  return fn


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
  if batch_size < 1:
    raise ValueError(f"probe: batch_size must be >= 1, got {batch_size}")
  if num_batches is not None and num_batches < 1:
    raise ValueError(f"probe: num_batches must be >= 1 or None, got {num_batches}")
  if not pck_threshold > 0:
    raise ValueError(f"probe: pck_threshold must be > 0 pixels, got {pck_threshold}")
  if top_k < 1:
    raise ValueError(f"probe: top_k must be >= 1, got {top_k}")
  video_io.check_output_dir(out)  # fail before the model is loaded
  model = (checkpoint if isinstance(checkpoint, novel_view.NovelViewPipeline)
           else novel_view.NovelViewPipeline.from_checkpoint(checkpoint))
  num_layers = model.dit.config.num_layers
  layers = list(range(num_layers)) if not layers else sorted({int(l) for l in layers})
  if any(not 0 <= l < num_layers for l in layers):
    raise ValueError(f"probe: layers {layers} out of range, expected 0-based indices < {num_layers}")
  explicit = bool(timesteps)
  if explicit:
    timesteps = [float(t) for t in timesteps]
    if any(not 0.0 <= t <= 1000.0 for t in timesteps):
      raise ValueError(f"probe: timesteps {timesteps} must be DiT timesteps 1000·σ in [0, 1000]")
    sigmas = [t / 1000.0 for t in timesteps]
  else:
    timesteps, sigmas = probe_timesteps(model.objective.schedule, grid_steps, num_inference_steps)
  kinds = probe_lib.KINDS

  source = sources.data_source(model.config.data, split)
  config = sources.pipeline_config(model.config.data, batch_size, train=False)
  config = dataclasses.replace(config, drop_remainder=False)
  total = -(-len(source) // batch_size)
  if num_batches is not None:
    total = min(total, num_batches)
  iterator = pipeline.make_iterator(source, config, seed=0, train=False)

  image_encoder = model.image_encoder  # CLIP features of the reference, for an image branch
  fn = make_probe_fn(model, layers, kinds, pck_threshold)
  params = model.params
  sums = np.zeros((len(layers), len(timesteps), len(kinds), len(probe_lib.SUM_FIELDS)), np.float64)
  bar = None
  if progress:
    bar = tqdm.tqdm(total=total * len(timesteps), desc="probe", unit="fwd")
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
      sums[:, j] += np.asarray(jax.device_get(fn(params, arrays, noise, jnp.float32(sigma))), np.float64)
      if bar is not None:
        bar.update(1)
    num_done += 1
  if bar is not None:
    bar.close()
  if num_done == 0:
    raise ValueError(f"probe: split {split!r} gave no batch")

  tables = probe_lib.metric_tables(sums, kinds, layers, top_k)
  os.makedirs(out, exist_ok=True)
  probe_lib.write_csv(os.path.join(out, "probe_table.csv"), tables, layers, timesteps, sigmas)
  record = {
      "checkpoint": {"name": model.name, "step": model.step, "source": model.source},
      "settings": {"split": split, "layers": layers, "timesteps": timesteps, "sigmas": sigmas,
                   "grid_steps": None if explicit else [int(s) for s in grid_steps],
                   "num_inference_steps": num_inference_steps, "num_batches": num_done,
                   "num_examples": num_examples, "batch_size": batch_size, "pck_threshold": pck_threshold,
                   "top_k": top_k, "seed": seed, "token_stride": model.token_stride,
                   "context": ("null context (umT5 empty prompt)" if model.model.with_text
                               else f"zeros x {model.model.context_length}"),
                   "image_context": ("off" if image_encoder is None
                                     else f"CLIP features of the reference's first frame ({image_encoder.source})"),
                   "aggregation": "mean over all valid (point, pair) entries of a kind, pooled over batches",
                   "ranking": "layers by mean harmonic mean over timesteps"},
      "kinds": list(kinds),
      "top_layers": {kind: [int(l) for l in tables[kind]["top_layers"]] for kind in kinds},
      "tables": probe_lib.tables_to_json(tables),
      "seconds": round(time.time() - start, 3),
  }
  probe_lib.write_json(os.path.join(out, "probe.json"), record)
  for kind in kinds:
    probe_lib.write_heatmap(os.path.join(out, f"heatmap_{kind}.png"), kind, tables[kind], layers, timesteps)
  return record
