r"""MVTrack4Gen next to the diffusion-only baseline (and Track4Gen): evaluation, probes and one summary.

Example::

  python -m mvtrack_jax.compare --checkpoint out/demo --checkpoint out/demo_diffusion_only \
      --names mvtrack4gen,diffusion_only --split test --out out/demo/compare \
      [--max_scenes N --steps S --probe_batches N]

Steps (any number of checkpoints trained on the same data; typically a model trained with
``L_corr``/``L_track`` and its diffusion-only twin, ``configs/default_diffusion_only.py``):

1. ``evaluation.runner.run`` on all checkpoints at once, with the model-free baselines (``copy_reference``,
   ``mean_colour``, ``zero_motion``), into ``<out>/evaluate/`` (``metrics.json``, ``metrics.md``,
   ``per_clip.csv``).
2. ``evaluation.probe_run.run_probe`` of each checkpoint into ``<out>/probe_<name>/`` (``probe.json``,
   ``probe_table.csv``, heatmaps): all DiT layers unless ``--probe_layers`` is given (the supervised
   layers are always added), the default timesteps of the probe (points of the 50-step inference
   grid), ``--probe_batches`` batches of ``--probe_batch_size``.
3. ``<out>/probe_cross_view.md`` and ``.csv``: cross-view PCK (the probe's ``accuracy``: % of valid
   points whose attention argmax in the reference frame lies within the probe's threshold, 8 px by
   default, of the ground truth) at the **supervised layer** of each model, one column per probed
   timestep (DiT units ``1000·σ``) and the mean over timesteps (NaN-skipping). The supervised
   layers of a model are its ``objective.corr_layers`` (0-based; one row per layer). A model trained
   without ``L_corr`` (``lambda_corr == 0``) has no supervised layer: it is scored at the
   ``corr_layers`` of the first model with ``lambda_corr > 0`` (the same layer in both rows, said in
   the table's header); when no model has ``L_corr`` every model uses the first model's.
4. when a model has a Track4Gen refiner: ``evaluation.probe_run.run_feature_probe`` of every checkpoint at the
   tap layer of the first such model (the probe's timesteps, batches as step 2) into
   ``<out>/feature_probe_<name>/``: the cosine nearest-neighbour δ_avg of the raw residual stream there, and of
   the refined features for the model(s) with a refiner at that layer;
5. ``<out>/summary.json`` and ``<out>/summary.md``, printed too: where every output is, mean PSNR over
   all trajectories of each model and of the ``copy_reference`` / ``mean_colour`` baselines, head AJ
   on the reference view of each head model and of ``zero_motion``, the mean cross-view PCK at the
   supervised layer of each model and the difference (first model with ``L_corr`` minus first model
   without, per shared layer), and step 4's δ_avg. Every number is read from the written records (``metrics.json``'s
   ``summary``, the ``probe.json`` tables via the cross-view table), never recomputed.

Non-finite numbers (a metric no clip produced) are ``null`` in ``summary.json`` and ``–`` in text.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from absl import app
from absl import flags

from mvtrack_jax import cli
from mvtrack_jax import errors
from mvtrack_jax.data import video_io
from mvtrack_jax.evaluation import clip_metrics
from mvtrack_jax.evaluation import comparison
from mvtrack_jax.evaluation import probe_run
from mvtrack_jax.evaluation import runner
from mvtrack_jax.inference import novel_view

FLAGS = flags.FLAGS


# ------------------------------------------------------------------------------------------------
# The run.


def run(checkpoints: Sequence[str], out: str, *, names: Sequence[str] | None = None, split: str = "test",
        trajectory_names: Sequence[str] = runner.DEFAULT_TRAJECTORIES, max_scenes: int | None = None,
        steps: int = 50, cfg: float | None = None, seed: int = 0, pose_method: str = "flow",
        probe_batches: int | None = None, probe_batch_size: int = 1, probe_layers: Sequence[int] | None = None,
        progress: bool = True) -> dict[str, Any]:
  """The command (module docstring); returns the ``summary.json`` dict.

  Args:
    checkpoints: export directories or training workdirs, at least one.
    out: output directory (created).
    names: one distinct label per checkpoint (default ``config name@step``); no ``/``, not a name
      reserved by ``evaluate`` (``runner.RESERVED_NAMES``).
    split, trajectory_names, max_scenes, steps, cfg, seed, pose_method: as ``evaluation.runner.run``.
    probe_batches: batches per probe (None: the whole split); probe_batch_size: examples per batch.
    probe_layers: DiT layers to probe besides the supervised ones (None / empty: all layers).
    progress: progress bars.

  Raises:
    ValueError: no checkpoint, bad names, or anything ``runner.run`` / ``probe_run.run_probe`` reject.
  """
  if not checkpoints:
    raise ValueError("compare: give at least one --checkpoint")
  video_io.check_output_dir(out)  # before any model is loaded
  models = [novel_view.NovelViewPipeline.from_checkpoint(c) for c in checkpoints]
  labels = list(names) if names else [m.name for m in models]
  if len(labels) != len(models) or len(set(labels)) != len(labels):
    raise errors.UserError(f"--names {labels}: need {len(models)} distinct names, one per --checkpoint")
  bad = [label for label in labels if not label or "/" in label or os.sep in label]
  if bad:
    raise errors.UserError(f"--names {labels}: {bad} cannot name an output directory (empty or with a path separator)")
  supervision = comparison.supervised_layers({label: {"lambda_corr": m.objective.lambda_corr,
                                           "corr_layers": m.objective.corr.layers} for label, m in zip(labels, models)})

  eval_dir = os.path.join(out, "evaluate")
  runner.run(models, eval_dir, names=labels, split=split, trajectory_names=trajectory_names,
               max_scenes=max_scenes, steps=steps, cfg=cfg, seed=seed, pose_method=pose_method, baselines=True,
               progress=progress)
  probe_dirs = {}
  for label, model in zip(labels, models):
    layers = None
    if probe_layers:
      layers = sorted({int(l) for l in probe_layers} | set(supervision[label]["layers"]))
    probe_dirs[label] = os.path.join(out, f"probe_{label}")
    probe_run.run_probe(model, probe_dirs[label], split=split, layers=layers, num_batches=probe_batches,
                        batch_size=probe_batch_size, seed=seed, progress=progress)

  # Track4Gen's measure: every model's features at the tap of the first model with a refiner.
  tap = next((m.model.feat_layer for m in models if m.model.refiner is not None), None)
  feature_dirs = {}
  if tap is not None:
    for label, model in zip(labels, models):
      feature_dirs[label] = os.path.join(out, f"feature_probe_{label}")
      kinds = ["features"] + (["refined"] if model.model.refiner is not None and model.model.feat_layer == tap else [])
      probe_run.run_feature_probe(model, feature_dirs[label], split=split, layers=[tap], kinds=kinds,
                                  num_batches=probe_batches, batch_size=probe_batch_size, seed=seed,
                                  progress=progress)

  # Everything below reads the records back from disk: the summary shows what the files say.
  with open(os.path.join(eval_dir, "metrics.json")) as f:
    eval_record = json.load(f)
  probe_records = {}
  for label, path in probe_dirs.items():
    with open(os.path.join(path, "probe.json")) as f:
      probe_records[label] = json.load(f)
  table = comparison.cross_view_table(probe_records, supervision)
  feature_records = {}
  for label, path in feature_dirs.items():
    with open(os.path.join(path, "feature_probe.json")) as f:
      feature_records[label] = json.load(f)
  paths = {
      "evaluation": {"table": os.path.join(eval_dir, "metrics.md"), "record": os.path.join(eval_dir, "metrics.json"),
                     "per clip": os.path.join(eval_dir, "per_clip.csv")},
      "probe": {label: os.path.join(path, "probe.json") for label, path in probe_dirs.items()},
      "cross-view PCK": {"table": os.path.join(out, "probe_cross_view.md"),
                         "csv": os.path.join(out, "probe_cross_view.csv")},
      "summary": {"json": os.path.join(out, "summary.json"), "markdown": os.path.join(out, "summary.md")},
  }
  if feature_dirs:
    paths["feature probe"] = {label: os.path.join(path, "feature_probe.json") for label, path in feature_dirs.items()}
  summary = comparison.summarize(eval_record, table, paths,
                                 comparison.feature_tracking_rows(feature_records) if feature_records else None)
  writes = ((paths["cross-view PCK"]["table"], comparison.cross_view_markdown(table)),
            (paths["cross-view PCK"]["csv"], comparison.cross_view_csv(table)),
            (paths["summary"]["json"], json.dumps(summary, indent=2, allow_nan=False) + "\n"),
            (paths["summary"]["markdown"],
             "# MVTrack4Gen comparison\n\n```text\n" + comparison.format_summary(summary) + "```\n"))
  for path, text in writes:
    with video_io.atomic_output(path) as tmp:
      with open(tmp, "w") as f:
        f.write(text)
  return summary


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_multi_string("checkpoint", None, "Export dir or training workdir; repeat (e.g. MVTrack4Gen, baseline).")
  flags.DEFINE_list("names", None, "Names of the checkpoints (default: config name@step).")
  flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Dataset split.")
  flags.DEFINE_string("out", None, "Output directory.")
  flags.DEFINE_list("trajectories", list(runner.DEFAULT_TRAJECTORIES), "Evaluation trajectories (see evaluate).")
  flags.DEFINE_integer("max_scenes", None, "Evaluate the first N scenes only.")
  flags.DEFINE_integer("steps", 50, "Euler steps of the evaluation's generation.")
  flags.DEFINE_float("cfg", None, "Classifier-free guidance scale (default: 5 where a model's two branches differ, "
                     "else 1; evaluation.runner).")
  flags.DEFINE_integer("seed", 0, "Sampling and probe noise seed.")
  flags.DEFINE_enum("pose_method", "flow", list(clip_metrics.POSE_METHODS),
                    "Camera columns' pose estimator (as evaluate --pose_method).")
  flags.DEFINE_integer("probe_batches", None, "Batches per probe (default: the whole split).")
  flags.DEFINE_integer("probe_batch_size", 1, "Examples per probe batch.")
  flags.DEFINE_list("probe_layers", [], "DiT layers to probe besides the supervised ones (default: all).")
  flags.DEFINE_bool("progress", True, "Show progress bars.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.checkpoint or not FLAGS.out:
    raise app.UsageError("--checkpoint and --out are required")
  try:
    probe_layers = [int(l) for l in FLAGS.probe_layers]
  except ValueError as e:
    raise app.UsageError(f"--probe_layers must be integers: {e}") from e
  summary = run(FLAGS.checkpoint, FLAGS.out, names=FLAGS.names, split=FLAGS.split,
                trajectory_names=FLAGS.trajectories, max_scenes=FLAGS.max_scenes, steps=FLAGS.steps, cfg=FLAGS.cfg,
                seed=FLAGS.seed, pose_method=FLAGS.pose_method, probe_batches=FLAGS.probe_batches,
                probe_batch_size=FLAGS.probe_batch_size, probe_layers=probe_layers, progress=FLAGS.progress)
  print(comparison.format_summary(summary), end="")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
