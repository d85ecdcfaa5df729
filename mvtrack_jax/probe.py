r"""Correspondence probes of a trained model: DiffTrack's attention probe (default) and Track4Gen's feature probe.

``--probe=features`` runs Track4Gen's layer study instead (``evaluation.feature_probe``; same batches, noise and
timesteps as below): cosine nearest-neighbour tracking δ_avg of each layer's residual stream (``--feature_kinds``:
also its attention ``q``/``k``, and a Track4Gen model's ``refined`` features at its tap), written as
``feature_probe.json``, ``feature_probe_table.csv`` and ``feature_probe.png``; it prints δ_avg per layer.

The attention probe:

``python -m mvtrack_jax.probe --checkpoint DIR --split test --out DIR2 [--layers 0,1,...]
[--timesteps 999,...] [--grid_steps 0,10,...] [--num_batches N] [--batch_size B] [--pck_threshold 8]``

For every batch of one deterministic pass over ``--split`` (centre crops, ``data.pipeline``) and
every probed timestep: both videos → latents; the **target** latents are noised to ``σ`` with a
fixed-seed noise (the same noise at every timestep of a batch), the reference latents stay clean;
one ``WanDiT`` forward with the model's null text context (``MVTrack4Gen.null_context``) and
both views' cameras — exactly as the training objective calls it (``MVTrack4Gen.prepare`` /
``velocity``) — returns the
q/k of every probed layer, scored by ``evaluation.probe`` (reference-temporal, target-temporal and
cross-view correspondence). Only the small per-layer sums leave the device; they are pooled over
all valid (point, pair) entries of all batches.

Timesteps: ``--timesteps`` in DiT units ``1000·σ``; by default the points ``--grid_steps``
(0, 10, 20, 30, 40, 49) of the model's ``--num_inference_steps``-step (50) inference grid
``objective.schedule.inference_sigmas`` (shifted grid), i.e. from pure noise (σ = 1, timestep
1000) to the last denoising step.

Writes to ``--out`` (atomically, file by file): ``probe_table.csv`` (one row per kind × layer ×
timestep), ``probe.json`` (tables, top-3 layers per kind by mean harmonic mean over timesteps,
settings, checkpoint name/step) and ``heatmap_<kind>.png``; prints the top layers per kind.

A last partial batch is padded with copies of its first example whose ``track_mask`` is False, so
every batch has one shape (one compile) and no example is dropped.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
import numpy as np

from mvtrack_jax import cli
from mvtrack_jax.evaluation import probe as probe_lib
from mvtrack_jax.evaluation import probe_run


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_enum("probe", "attention", ["attention", "features"],
                    "attention: DiffTrack's attention probe; features: Track4Gen's feature probe.")
  flags.DEFINE_list("feature_kinds", [], "--probe=features: among features,q,k,refined (default: features, and "
                    "refined for a model with a refiner).")
  flags.DEFINE_integer("query_frame", 0, "--probe=features: latent frame of the query points.")
  flags.DEFINE_integer("upsample", 4, "--probe=features: bilinear upsampling of the feature maps before matching.")
  flags.DEFINE_string("out", None, "Output directory.")
  flags.DEFINE_string("checkpoint", None, "Export directory or training workdir.")
  flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Data split (one pass, centre crops).")
  flags.DEFINE_list("layers", [], "0-based DiT layers to probe (default: all).")
  flags.DEFINE_list("timesteps", [], "DiT timesteps 1000·σ (default: --grid_steps of the inference grid).")
  flags.DEFINE_list("grid_steps", [str(s) for s in probe_run.DEFAULT_GRID_STEPS],
                    "Steps of the inference grid probed when --timesteps is empty.")
  flags.DEFINE_integer("num_inference_steps", 50, "Size of the inference grid.")
  flags.DEFINE_integer("num_batches", None, "Batches to probe (default: the whole split).")
  flags.DEFINE_integer("batch_size", 1, "Examples per batch.")
  flags.DEFINE_float("pck_threshold", probe_lib.DEFAULT_PCK_THRESHOLD, "PCK threshold in video pixels (strict <).")
  flags.DEFINE_integer("top_k", 3, "Top layers reported per kind.")
  flags.DEFINE_integer("seed", 0, "Noise seed.")
  flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
  """Entry point under ``absl.app.run`` (after :func:`define_flags`)."""
  f = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not f.checkpoint or not f.out:
    raise app.UsageError("--checkpoint and --out are required")
  try:
    layers = [int(l) for l in f.layers]
    timesteps = [float(t) for t in f.timesteps]
    grid_steps = [int(s) for s in f.grid_steps]
  except ValueError as e:
    raise app.UsageError(f"--layers/--grid_steps must be integers and --timesteps numbers: {e}") from e
  common = dict(split=f.split, layers=layers, timesteps=timesteps, grid_steps=grid_steps,
                num_inference_steps=f.num_inference_steps, num_batches=f.num_batches, batch_size=f.batch_size,
                seed=f.seed, progress=f.progress)
  if f.probe == "features":
    record = probe_run.run_feature_probe(f.checkpoint, f.out, kinds=f.feature_kinds, query_frame=f.query_frame,
                                         upsample=f.upsample,
                                         **common)
    print(f"  δ_avg (zero_motion baseline): {record['zero_motion']:.3f}")
    for kind, table in record["delta_avg"].items():
      if kind == "zero_motion":
        continue
      means = {layer: np.nanmean([np.nan if v is None else v for v in row])
               for layer, row in zip(record["settings"]["layers"], table) if any(v is not None for v in row)}
      print(f"  δ_avg ({kind}, mean over timesteps): " + ", ".join(f"layer {l}: {v:.3f}" for l, v in means.items()))
  else:
    record = probe_run.run_probe(f.checkpoint, f.out, pck_threshold=f.pck_threshold, top_k=f.top_k, **common)
    for kind, top in record["top_layers"].items():
      print(f"  top-{len(top)} layers ({kind}): {top}")
  print(f"probe of {record['checkpoint']['name']} on {f.split} ({record['settings']['num_examples']} examples, "
        f"{record['seconds']} s): wrote {os.path.abspath(f.out)}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
