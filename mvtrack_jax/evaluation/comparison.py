"""The comparison of models trained with and without tracking supervision, read from evaluation and probe records.

What ``python -m mvtrack_jax.compare`` writes after running ``evaluation.runner.run`` and
``evaluation.probe_run.run_probe`` (its docstring describes the steps and files): the layers each model's
``L_corr`` supervised (:func:`supervised_layers`), the cross-view PCK at those layers from the ``probe.json``
records (:func:`cross_view_table`, as Markdown and CSV) and the headline summary (:func:`summarize`,
:func:`format_summary`). Every number is read from the written records, never recomputed.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, Mapping

import numpy as np

from mvtrack_jax.evaluation import baselines as baselines_lib

CROSS_VIEW = "cross_view"


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
      (``NovelViewPipeline.objective.lambda_corr`` / ``.corr.layers``, 0-based DiT layers).

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
      rows.append({"model": model, "layer": layer, "lambda_corr": sup["lambda_corr"], "layers_from": sup["layers_from"],
                   "pck": pck, "mean": _mean(pck)})
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


def feature_tracking_rows(feature_records: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
  """Track4Gen's measure at its tap, read from the feature-probe records (``probe_run.run_feature_probe``).

  Args:
    feature_records: ``{model: feature_probe.json record}``, every model probed at the same single layer.

  Returns:
    ``[{"model", "layer", "features", "refined", "zero_motion"}]`` in record order: δ_avg of the raw residual
    stream and of the refiner's output (None for a model without a refiner), each the mean over the probed
    timesteps, and of the zero-motion baseline on the same points.

  Raises:
    ValueError: records probed at other layers than one shared layer.
  """
  rows = []
  for model, record in feature_records.items():
    layers = record["settings"]["layers"]
    if len(layers) != 1:
      raise ValueError(f"feature_tracking_rows: {model} was probed at layers {layers}, expected the tap alone")
    mean = lambda kind: (None if kind not in record["delta_avg"] else _mean([_finite(v) for v in
                                                                             record["delta_avg"][kind][0]]))
    rows.append({"model": model, "layer": int(layers[0]), "features": mean("features"), "refined": mean("refined"),
                 "zero_motion": _finite(record["zero_motion"])})
  if len({r["layer"] for r in rows}) > 1:
    raise ValueError(f"feature_tracking_rows: models probed at different layers {[r['layer'] for r in rows]}")
  return rows


def _mean(values: list[float | None]) -> float | None:
  """The mean of the values that are not None (None when there is none)."""
  values = [v for v in values if v is not None]
  return float(np.mean(values)) if values else None


# ------------------------------------------------------------------------------------------------
# Summary.


def summarize(eval_record: Mapping[str, Any], cross_view: Mapping[str, Any],
              paths: Mapping[str, Any] | None = None,
              feature_tracking: list[dict[str, Any]] | None = None) -> dict[str, Any]:
  """The headline numbers, read from the written records (``compare``'s docstring, step 5).

  Args:
    eval_record: ``evaluate.run``'s ``metrics.json`` record (``checkpoints``, ``baselines``,
      ``summary[name]["all"][metric] = {"mean", "n"}``, ``split``, ``num_scenes``, ``trajectories``,
      ``steps``).
    cross_view: :func:`cross_view_table` output.
    paths: ``{label: path or {label: path}}`` of the outputs, copied into the summary.
    feature_tracking: :func:`feature_tracking_rows` when a model has a Track4Gen refiner, copied into the summary
      (``[]`` when None).

  Returns:
    JSON-able ``{"settings", "paths", "psnr": {name: {"mean", "n"}}, "aj_reference": {name: {"mean",
    "n"}}, "cross_view_pck": {model: [{"layer", "lambda_corr", "layers_from", "mean", "pck"}]},
    "pck_threshold", "timesteps", "pck_difference": [{"layer", "with_corr", "without_corr",
    "with_corr_pck", "without_corr_pck", "difference"}], "note", "feature_tracking"}``; means are None where not
    finite.
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
      "feature_tracking": list(feature_tracking or []),
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
  if summary.get("feature_tracking"):
    rows = summary["feature_tracking"]
    lines += ["", f"Feature tracking at the Track4Gen tap (layer {rows[0]['layer']}; cosine nearest-neighbour δ_avg, "
                  "mean over timesteps):"]
    for row in rows:
      refined = "" if row["refined"] is None else f", refined {_fmt(row['refined'], 3)}"
      lines.append(f"  {row['model']:<{width}}  raw {_fmt(row['features'], 3)}{refined}")
    lines.append(f"  {'zero_motion':<{width}}  {_fmt(rows[0]['zero_motion'], 3)}")
  return "\n".join(lines) + "\n"
