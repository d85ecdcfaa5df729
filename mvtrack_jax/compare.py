r"""MVTrack4Gen next to the diffusion-only baseline: evaluation, attention probe and one summary.

Example::

  python -m mvtrack_jax.compare --checkpoint out/demo --checkpoint out/demo_diffusion_only \
      --names mvtrack4gen,diffusion_only --split test --out out/demo/compare \
      [--max_scenes N --steps S --probe_batches N]

Steps (any number of checkpoints trained on the same data; typically a model trained with
``L_corr``/``L_track`` and its diffusion-only twin, ``configs/default_diffusion_only.py``):

1. ``evaluate.run`` on all checkpoints at once, with the model-free baselines (``copy_reference``,
   ``mean_colour``, ``zero_motion``), into ``<out>/evaluate/`` (``metrics.json``, ``metrics.md``,
   ``per_clip.csv``).
2. ``probe.run_probe`` of each checkpoint into ``<out>/probe_<name>/`` (``probe.json``,
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
4. ``<out>/summary.json`` and ``<out>/summary.md``, printed too: where every output is, mean PSNR over
   all trajectories of each model and of the ``copy_reference`` / ``mean_colour`` baselines, head AJ
   on the reference view of each head model and of ``zero_motion``, the mean cross-view PCK at the
   supervised layer of each model and the difference (first model with ``L_corr`` minus first model
   without, per shared layer). Every number is read from the written records (``metrics.json``'s
   ``summary``, the ``probe.json`` tables via the cross-view table), never recomputed.

Non-finite numbers (a metric no clip produced) are ``null`` in ``summary.json`` and ``–`` in text.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags
import numpy as np

from mvtrack_jax import cli
from mvtrack_jax import errors
from mvtrack_jax import evaluate
from mvtrack_jax.evaluation import baselines as baselines_lib

CROSS_VIEW = "cross_view"
FLAGS = flags.FLAGS


def _finite(value: Any) -> float | None:
  """``float(value)``, or None for None / NaN / ±inf."""
  if value is None:
    return None
  value = float(value)
  return value if math.isfinite(value) else None


def _fmt(value: float | None, digits: int = 2) -> str:
  return "–" if value is None else f"{value:.{digits}f}"


# ------------------------------------------------------------------------------------------------
# Supervised layers and the cross-view table.


def supervised_layers(objectives: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
  """The layers at which each model's cross-view PCK is compared (module docstring, step 3).

  Args:
    objectives: ``{model: {"lambda_corr": float, "corr_layers": [int, ...]}}`` in column order
      (``LoadedModel.objective.lambda_corr`` / ``.corr.layers``, 0-based DiT layers).

  Returns:
    ``{model: {"layers": [int, ...], "lambda_corr": float, "layers_from": str}}``: ``layers_from``
    is the model whose ``corr_layers`` are used (the model itself when it has ``lambda_corr > 0``).

  Raises:
    ValueError: no model, a negative ``lambda_corr``, or an empty / negative layer list where one
      is needed.
  """
  if not objectives:
    raise ValueError("supervised_layers: objectives is empty, expected one entry per model")
  for name, obj in objectives.items():
    if not float(obj["lambda_corr"]) >= 0:
      raise ValueError(f"supervised_layers: {name} has lambda_corr={obj['lambda_corr']}, expected >= 0")
  names = list(objectives)
  source = next((n for n in names if float(objectives[n]["lambda_corr"]) > 0), names[0])
  out = {}
  for name in names:
    own = float(objectives[name]["lambda_corr"]) > 0
    layers_from = name if own else source
    layers = [int(l) for l in objectives[layers_from]["corr_layers"]]
    if not layers or any(l < 0 for l in layers):
      raise ValueError(f"supervised_layers: {layers_from} has corr_layers={layers}, expected a non-empty list of "
                       "0-based DiT layers")
    out[name] = {"layers": layers, "lambda_corr": float(objectives[name]["lambda_corr"]), "layers_from": layers_from}
  return out


def cross_view_table(probe_records: Mapping[str, Mapping[str, Any]],
                     supervision: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """Cross-view PCK at the supervised layers, read from the probe records.

  Args:
    probe_records: ``{model: probe.json record}`` (``probe.run_probe``): ``settings.layers``,
      ``settings.timesteps``, ``settings.pck_threshold`` and ``tables.cross_view.accuracy``
      (``layers × timesteps`` lists, None where no point was valid).
    supervision: :func:`supervised_layers` output with the same models.

  Returns:
    ``{"timesteps": [float, ...] (DiT 1000·σ, the first model's), "pck_threshold": float, "rows":
    [{"model", "layer", "lambda_corr", "layers_from", "pck": [float | None per timestep] (%),
    "mean": float | None (NaN-skipping mean over timesteps)}, ...], "note": str}``, one row per
    (model, supervised layer), models in ``supervision`` order.

  Raises:
    ValueError: a model without a probe record, a supervised layer the probe did not cover, or
      records probed at different numbers of timesteps.
  """
  missing = [m for m in supervision if m not in probe_records]
  if missing:
    raise ValueError(f"cross_view_table: no probe record for {missing}; have {sorted(probe_records)}")
  first = probe_records[next(iter(supervision))]["settings"]
  timesteps = [float(t) for t in first["timesteps"]]
  rows = []
  for model, sup in supervision.items():
    settings = probe_records[model]["settings"]
    if len(settings["timesteps"]) != len(timesteps):
      raise ValueError(f"cross_view_table: {model} was probed at {len(settings['timesteps'])} timesteps, the first "
                       f"model at {len(timesteps)}; probe every model with the same settings")
    accuracy = probe_records[model]["tables"][CROSS_VIEW]["accuracy"]
    for layer in sup["layers"]:
      if layer not in settings["layers"]:
        raise ValueError(f"cross_view_table: {model} was probed at layers {settings['layers']}, not at its supervised "
                         f"layer {layer}")
      pck = [_finite(v) for v in accuracy[settings["layers"].index(layer)]]
      values = [v for v in pck if v is not None]
      rows.append({"model": model, "layer": layer, "lambda_corr": sup["lambda_corr"], "layers_from": sup["layers_from"],
                   "pck": pck, "mean": float(np.mean(values)) if values else None})
  borrowed = [f"`{m}` uses the corr_layers of `{s['layers_from']}`" for m, s in supervision.items()
              if s["layers_from"] != m]
  note = ("supervised layer = objective.corr_layers (0-based) of each model with lambda_corr > 0"
          + (f"; models trained without L_corr are read at the same layer: {'; '.join(borrowed)}" if borrowed else ""))
  if all(s["lambda_corr"] == 0 for s in supervision.values()):
    note = (f"no model was trained with L_corr (lambda_corr = 0): every model is read at the corr_layers of "
            f"`{next(iter(supervision))}`")
  return {"timesteps": timesteps, "pck_threshold": float(first.get("pck_threshold", math.nan)), "rows": rows,
          "note": note}


def cross_view_markdown(table: Mapping[str, Any]) -> str:
  """The Markdown table of :func:`cross_view_table` (rows = models × supervised layers)."""
  ts = [f"t={t:.0f}" for t in table["timesteps"]]
  lines = [f"# Cross-view PCK (%, threshold {table['pck_threshold']:g} px) at the supervised layer", "",
           table["note"] + ". Columns: DiT timesteps 1000·σ (noisiest first as probed), then the mean over them.",
           "", "| model | layer | λ_corr | " + " | ".join(ts) + " | mean |", "|---|---|---|" + "---|" * (len(ts) + 1)]
  for row in table["rows"]:
    lines.append(f"| {row['model']} | {row['layer']} | {row['lambda_corr']:g} | "
                 + " | ".join(_fmt(v) for v in row["pck"]) + f" | {_fmt(row['mean'])} |")
  return "\n".join(lines) + "\n"


def cross_view_csv(table: Mapping[str, Any]) -> str:
  """CSV text of :func:`cross_view_table`: ``model, layer, lambda_corr, layers_from, pck_t<t>…, pck_mean``."""
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(["model", "layer", "lambda_corr", "layers_from"] + [f"pck_t{t:g}" for t in table["timesteps"]]
                  + ["pck_mean"])
  for row in table["rows"]:
    writer.writerow([row["model"], row["layer"], row["lambda_corr"], row["layers_from"]]
                    + ["" if v is None else repr(v) for v in row["pck"]]
                    + ["" if row["mean"] is None else repr(row["mean"])])
  return buffer.getvalue()


# ------------------------------------------------------------------------------------------------
# Summary.


def summarize(eval_record: Mapping[str, Any], cross_view: Mapping[str, Any],
              paths: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """The headline numbers, read from the written records (module docstring, step 4).

  Args:
    eval_record: ``evaluate.run``'s ``metrics.json`` record (``checkpoints``, ``baselines``,
      ``summary[name]["all"][metric] = {"mean", "n"}``, ``split``, ``num_scenes``, ``trajectories``,
      ``steps``).
    cross_view: :func:`cross_view_table` output.
    paths: ``{label: path or {label: path}}`` of the outputs, copied into the summary.

  Returns:
    JSON-able ``{"settings", "paths", "psnr": {name: {"mean", "n"}}, "aj_reference": {name: {"mean",
    "n"}}, "cross_view_pck": {model: [{"layer", "lambda_corr", "layers_from", "mean", "pck"}]},
    "pck_threshold", "timesteps", "pck_difference": [{"layer", "with_corr", "without_corr",
    "with_corr_pck", "without_corr_pck", "difference"}], "note"}``; means are None where not finite.
    ``psnr`` lists the models then ``copy_reference`` / ``mean_colour``; ``aj_reference`` the models
    with a tracking head (those with the metric) then ``zero_motion``.

  Raises:
    ValueError: ``eval_record`` has no ``summary`` or ``checkpoints``.
  """
  for key in ("summary", "checkpoints"):
    if key not in eval_record:
      raise ValueError(f"summarize: eval_record lacks {key!r} (keys {sorted(eval_record)}); expected evaluate.run's "
                       "metrics.json record")
  summary = eval_record["summary"]
  models = list(eval_record["checkpoints"])
  baselines = list(eval_record.get("baselines", []))

  def entry(name, metric):
    cell = summary.get(name, {}).get("all", {}).get(metric)
    return None if cell is None else {"mean": _finite(cell["mean"]), "n": int(cell["n"])}

  psnr = {n: entry(n, "psnr") for n in models + [b for b in baselines if b in baselines_lib.VIDEO_BASELINES]}
  aj = {n: entry(n, "aj_reference") for n in models + [b for b in baselines if b == baselines_lib.ZERO_MOTION]}
  pck: dict[str, list[dict[str, Any]]] = {}
  for row in cross_view["rows"]:
    pck.setdefault(row["model"], []).append({k: row[k] for k in ("layer", "lambda_corr", "layers_from", "mean",
                                                                 "pck")})
  with_corr = next((r for r in cross_view["rows"] if r["lambda_corr"] > 0), None)
  without = next((r for r in cross_view["rows"] if r["lambda_corr"] == 0), None)
  differences = []
  if with_corr is not None and without is not None:
    for a in pck[with_corr["model"]]:
      for b in pck[without["model"]]:
        if a["layer"] == b["layer"]:
          diff = None if a["mean"] is None or b["mean"] is None else a["mean"] - b["mean"]
          differences.append({"layer": a["layer"], "with_corr": with_corr["model"], "without_corr": without["model"],
                              "with_corr_pck": a["mean"], "without_corr_pck": b["mean"], "difference": diff})
  return {
      "settings": {k: eval_record.get(k) for k in ("split", "num_scenes", "trajectories", "steps")},
      "paths": dict(paths or {}),
      "psnr": {k: v for k, v in psnr.items() if v is not None},
      "aj_reference": {k: v for k, v in aj.items() if v is not None},
      "cross_view_pck": pck, "pck_threshold": cross_view["pck_threshold"], "timesteps": cross_view["timesteps"],
      "pck_difference": differences, "note": cross_view["note"],
  }


def format_summary(summary: Mapping[str, Any]) -> str:
  """The terminal / ``summary.md`` text of :func:`summarize`'s dict (numbers with 2 decimals, AJ 3)."""
  s = summary["settings"]
  lines = [f"Comparison on split {s['split']!r}: {s['num_scenes']} scenes × {len(s['trajectories'] or [])} "
           f"trajectories, {s['steps']} Euler steps", "", "Outputs:"]
  for label, path in summary["paths"].items():
    if isinstance(path, Mapping):
      lines += [f"  {label} {k}: {v}" for k, v in path.items()]
    else:
      lines.append(f"  {label}: {path}")
  width = max([len(n) for n in list(summary["psnr"]) + list(summary["aj_reference"]) + list(summary["cross_view_pck"])]
              + [8])
  lines += ["", "Mean PSNR, all trajectories (dB; n = clips):"]
  lines += [f"  {n:<{width}}  {_fmt(e['mean'])} (n={e['n']})" for n, e in summary["psnr"].items()]
  lines += ["", "Head AJ, reference view (n = clips):"]
  if summary["aj_reference"]:
    lines += [f"  {n:<{width}}  {_fmt(e['mean'], 3)} (n={e['n']})" for n, e in summary["aj_reference"].items()]
  else:
    lines.append("  (no model with a tracking head, no zero_motion baseline)")
  lines += ["", f"Cross-view PCK (%, < {summary['pck_threshold']:g} px) at the supervised layer, mean over "
                f"{len(summary['timesteps'])} timesteps:"]
  for model, rows in summary["cross_view_pck"].items():
    for row in rows:
      how = "with L_corr" if row["lambda_corr"] > 0 else "without L_corr"
      where = "" if row["layers_from"] == model else f" (the layer of {row['layers_from']})"
      lines.append(f"  {model:<{width}}  {_fmt(row['mean'])}  layer {row['layer']}{where}, {how}")
  for d in summary["pck_difference"]:
    sign = "" if d["difference"] is None else ("+" if d["difference"] >= 0 else "")
    lines.append(f"  difference {d['with_corr']} − {d['without_corr']} at layer {d['layer']}: "
                 f"{sign}{_fmt(d['difference'])} points")
  if not summary["pck_difference"]:
    lines.append("  (no pair of models with and without L_corr: no difference)")
  return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# The run.


def run(checkpoints: Sequence[str], out: str, *, names: Sequence[str] | None = None, split: str = "test",
        trajectory_names: Sequence[str] = evaluate.DEFAULT_TRAJECTORIES, max_scenes: int | None = None,
        steps: int = 50, cfg: float = 5.0, seed: int = 0, pose_method: str = "flow",
        probe_batches: int | None = None, probe_batch_size: int = 1, probe_layers: Sequence[int] | None = None,
        progress: bool = True) -> dict[str, Any]:
  """The command (module docstring); returns the ``summary.json`` dict.

  Args:
    checkpoints: export directories or training workdirs, at least one.
    out: output directory (created).
    names: one distinct label per checkpoint (default ``config name@step``); no ``/``, not a name
      reserved by ``evaluate`` (``evaluate.RESERVED_NAMES``).
    split, trajectory_names, max_scenes, steps, cfg, seed, pose_method: as ``evaluate.run``.
    probe_batches: batches per probe (None: the whole split); probe_batch_size: examples per batch.
    probe_layers: DiT layers to probe besides the supervised ones (None / empty: all layers).
    progress: progress bars.

  Raises:
    ValueError: no checkpoint, bad names, or anything ``evaluate.run`` / ``probe.run_probe`` reject.
  """
  from mvtrack_jax import probe as probe_cli  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.data import video_io  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.inference import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  if not checkpoints:
    raise ValueError("compare: give at least one --checkpoint")
  video_io.check_output_dir(out)  # before any model is loaded
  models = [checkpoint_lib.load_model(c) for c in checkpoints]
  labels = list(names) if names else [m.name for m in models]
  if len(labels) != len(models) or len(set(labels)) != len(labels):
    raise errors.UserError(f"--names {labels}: need {len(models)} distinct names, one per --checkpoint")
  bad = [label for label in labels if not label or "/" in label or os.sep in label]
  if bad:
    raise errors.UserError(f"--names {labels}: {bad} cannot name an output directory (empty or with a path separator)")
  supervision = supervised_layers({label: {"lambda_corr": m.objective.lambda_corr,
                                           "corr_layers": m.objective.corr.layers} for label, m in zip(labels, models)})
  del models  # evaluate / probe load their own copies

  eval_dir = os.path.join(out, "evaluate")
  evaluate.run(checkpoints, eval_dir, names=labels, split=split, trajectory_names=trajectory_names,
               max_scenes=max_scenes, steps=steps, cfg=cfg, seed=seed, pose_method=pose_method, baselines=True,
               progress=progress)
  probe_dirs = {}
  for label, checkpoint in zip(labels, checkpoints):
    layers = None
    if probe_layers:
      layers = sorted({int(l) for l in probe_layers} | set(supervision[label]["layers"]))
    probe_dirs[label] = os.path.join(out, f"probe_{label}")
    probe_cli.run_probe(checkpoint, probe_dirs[label], split=split, layers=layers, num_batches=probe_batches,
                        batch_size=probe_batch_size, seed=seed, progress=progress)

  # Everything below reads the records back from disk: the summary shows what the files say.
  with open(os.path.join(eval_dir, "metrics.json")) as f:
    eval_record = json.load(f)
  probe_records = {}
  for label, path in probe_dirs.items():
    with open(os.path.join(path, "probe.json")) as f:
      probe_records[label] = json.load(f)
  table = cross_view_table(probe_records, supervision)
  paths = {
      "evaluation": {"table": os.path.join(eval_dir, "metrics.md"), "record": os.path.join(eval_dir, "metrics.json"),
                     "per clip": os.path.join(eval_dir, "per_clip.csv")},
      "probe": {label: os.path.join(path, "probe.json") for label, path in probe_dirs.items()},
      "cross-view PCK": {"table": os.path.join(out, "probe_cross_view.md"),
                         "csv": os.path.join(out, "probe_cross_view.csv")},
      "summary": {"json": os.path.join(out, "summary.json"), "markdown": os.path.join(out, "summary.md")},
  }
  summary = summarize(eval_record, table, paths)
  writes = ((paths["cross-view PCK"]["table"], cross_view_markdown(table)),
            (paths["cross-view PCK"]["csv"], cross_view_csv(table)),
            (paths["summary"]["json"], json.dumps(summary, indent=2, allow_nan=False) + "\n"),
            (paths["summary"]["markdown"], "# MVTrack4Gen comparison\n\n```text\n" + format_summary(summary) + "```\n"))
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
  flags.DEFINE_list("trajectories", list(evaluate.DEFAULT_TRAJECTORIES), "Evaluation trajectories (see evaluate).")
  flags.DEFINE_integer("max_scenes", None, "Evaluate the first N scenes only.")
  flags.DEFINE_integer("steps", 50, "Euler steps of the evaluation's generation.")
  flags.DEFINE_float("cfg", 5.0, "Classifier-free guidance scale.")
  flags.DEFINE_integer("seed", 0, "Sampling and probe noise seed.")
  flags.DEFINE_enum("pose_method", "flow", ["flow", "sift", "orb"], "Pose estimator correspondences.")
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
  print(format_summary(summary), end="")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
