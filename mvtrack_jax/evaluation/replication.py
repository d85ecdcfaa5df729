"""The comparison repeated over seeds, summarised as mean ± 95 % interval per model, metric and trajectory family.

What ``python -m mvtrack_jax.replicate`` (``make replicate``) writes from the ``compare`` outputs of several seeds
(each a fine-tune of both arms with that seed, evaluated with that sampling seed): for every metric of
:data:`METRICS`, every trajectory family of :data:`FAMILIES` and every model or model-free baseline, the mean over
seeds of the per-seed means and its 95 % confidence interval (Student's t with ``n − 1`` degrees of freedom, the
interval of a mean from ``n`` independent runs; half-width ``t₀.₉₇₅,ₙ₋₁ · s / √n``, ``s`` the sample standard
deviation), plus the paired difference of the first two models (seed by seed, so the variation both arms share
cancels). With 3 seeds ``t₀.₉₇₅,₂ = 4.30``: an interval that contains 0 is no evidence either way, which is the
honest reading of a small replication.

A seed's numbers are read from the records ``compare`` wrote, never recomputed: ``evaluate/metrics.json``'s per-clip
``rows`` (grouped by family with the same NaN-skipping mean as every other table, ``report.summarize``) and
``summary.json``'s cross-view attention PCK at the supervised layer (mean over the probe's timesteps).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from mvtrack_jax.evaluation import baselines as baselines_lib
from mvtrack_jax.evaluation import protocol_clips
from mvtrack_jax.evaluation import report

# Trajectory families of the synthetic split: the dataset's own second view (its recorded cameras and frames) and
# the named preset trajectories, whose ground truth is re-rendered (evaluation.protocol_clips).
RECORDED, PRESETS = "recorded", "presets"
FAMILIES = (RECORDED, PRESETS, "all")
# The model-free columns: the two video predictions and, for the head's metrics, the still-point tracker.
BASELINES = baselines_lib.VIDEO_BASELINES + (baselines_lib.ZERO_MOTION,)
# (key in a clip's metrics, label, digits); cross-view PCK comes from the probe, not from clips.
CROSS_VIEW_PCK = "cross_view_pck"
METRICS = (
    ("psnr", "PSNR, dB ↑", 2),
    ("ssim", "SSIM ↑", 3),
    ("m_rot_err_deg", "mRotErr, ° ↓ (flow poses)", 2),
    ("m_trans_err", "mTransErr ↓ (flow poses)", 3),
    ("epipolar_sampson_px", "head tracks' epipolar Sampson, px ↓", 2),
    ("aj_reference", "head AJ, reference view ↑", 3),
    ("aj_target", "head AJ, target view ↑", 3),
    (CROSS_VIEW_PCK, "cross-view attention PCK, % ↑ (supervised layer)", 1),
)


def family(trajectory: str) -> str:
  """The family of a trajectory name: :data:`RECORDED` for the dataset's own target view, else :data:`PRESETS`."""
  return RECORDED if trajectory == protocol_clips.RECORDED else PRESETS


def seed_means(eval_record: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
  """One seed's means: ``{name: {family: {metric: mean}}}`` for the models and the model-free baselines.

  Args:
    eval_record: the seed's ``evaluate/metrics.json`` (``rows``: ``{"model", "trajectory", "metrics"}`` per clip).
    summary: the seed's ``summary.json`` (``compare``; ``cross_view_pck[model]`` rows with ``mean``), whose first
      supervised-layer row of each model gives its PCK, under every family (the probe has no trajectories).

  Raises:
    ValueError: a record lacks ``rows`` / ``cross_view_pck``.
  """
  if "rows" not in eval_record or CROSS_VIEW_PCK not in summary:
    raise ValueError("replication: need evaluate's metrics.json (with 'rows') and compare's summary.json (with "
                     f"'{CROSS_VIEW_PCK}'); got keys {sorted(eval_record)[:8]} and {sorted(summary)[:8]}")
  rows = list(eval_record["rows"])
  grouped = report.summarize([dict(r, trajectory=family(r["trajectory"])) for r in rows])
  every = report.summarize(rows)
  out: dict[str, dict[str, dict[str, float]]] = {}
  for name in grouped:
    out[name] = {}
    for fam in FAMILIES:
      cells = every[name]["all"] if fam == "all" else grouped[name].get(fam, {})
      out[name][fam] = {key: cells[key]["mean"] for key, _, _ in METRICS if key in cells}
  for name, pck_rows in summary[CROSS_VIEW_PCK].items():
    value = pck_rows[0]["mean"] if pck_rows and pck_rows[0]["mean"] is not None else math.nan
    for fam in FAMILIES:
      out.setdefault(name, {}).setdefault(fam, {})[CROSS_VIEW_PCK] = float(value)
  return out


def interval(values: Sequence[float]) -> dict[str, Any]:
  """Mean and 95 % t-interval half-width of independent per-seed values (NaNs dropped).

  Returns ``{"mean", "half_width", "n", "values"}``; ``half_width`` is None with fewer than 2 finite values,
  ``mean`` None with none.
  """
  finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
  n = int(finite.size)
  mean = float(finite.mean()) if n else None
  half = float(stats.t.ppf(0.975, n - 1) * finite.std(ddof=1) / math.sqrt(n)) if n >= 2 else None
  return {"mean": mean, "half_width": half, "n": n, "values": [float(v) for v in values]}


def aggregate(per_seed: Sequence[Mapping[str, Any]], models: Sequence[str],
              seeds: Sequence[int]) -> dict[str, Any]:
  """The replication record: ``{"seeds", "models", "columns", "difference", "cells"}``.

  Args:
    per_seed: :func:`seed_means` of each seed, in ``seeds`` order.
    models: the trained models' names (the compare's ``--names``), in order; the first two give the paired
      difference ``models[0] − models[1]``.
    seeds: the seeds, distinct.

  ``cells[family][metric][column]`` is an :func:`interval` for every column (the models, then the baselines
  of :data:`BASELINES` present in every seed) and ``"difference"``; metrics no column has are left out.

  Raises:
    ValueError: seeds repeat, lengths differ, or a model is missing from a seed.
  """
  if len(set(seeds)) != len(seeds) or len(per_seed) != len(seeds):
    raise ValueError(f"replication: need one record per distinct seed; got seeds {list(seeds)} for {len(per_seed)} "
                     "records")
  for seed, means in zip(seeds, per_seed):
    missing = [m for m in models if m not in means]
    if missing:
      raise ValueError(f"replication: seed {seed} has no results for {missing} (it has {sorted(means)})")
  baselines = [b for b in BASELINES if all(b in means for means in per_seed)]
  columns = list(models) + baselines
  cells: dict[str, dict[str, dict[str, Any]]] = {}
  for fam in FAMILIES:
    for key, _, _ in METRICS:
      row = {}
      for col in columns:
        values = [means[col][fam].get(key, math.nan) for means in per_seed]
        if any(math.isfinite(v) for v in values):
          row[col] = interval(values)
      if len(models) >= 2 and models[0] in row and models[1] in row:
        row["difference"] = interval([means[models[0]][fam].get(key, math.nan)
                                      - means[models[1]][fam].get(key, math.nan) for means in per_seed])
      if row:
        cells.setdefault(fam, {})[key] = row
  difference = f"{models[0]} − {models[1]}" if len(models) >= 2 else None
  return {"seeds": list(seeds), "models": list(models), "columns": columns, "difference": difference,
          "cells": cells}


def _cell(entry: Mapping[str, Any] | None, digits: int, signed: bool = False) -> str:
  if entry is None or entry["mean"] is None:
    return "–"
  sign = "+" if signed and entry["mean"] >= 0 else ""
  text = f"{sign}{entry['mean']:.{digits}f}"
  return text if entry["half_width"] is None else f"{text} ± {entry['half_width']:.{digits}f}"


def markdown(record: Mapping[str, Any]) -> str:
  """The replication table: one row per family and metric, one column per model / baseline and the difference."""
  columns = list(record["columns"]) + (["difference"] if record["difference"] else [])
  heads = [f"`{c}`" if c not in record["models"] else c for c in record["columns"]]
  if record["difference"]:
    heads.append(record["difference"])
  lines = [f"Mean ± 95 % interval over seeds {', '.join(map(str, record['seeds']))} (Student's t, "
           f"n = {len(record['seeds'])}); difference paired by seed.", "",
           "| family | metric | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(columns)]
  for fam, metrics in record["cells"].items():
    for key, label, digits in METRICS:
      if key not in metrics:
        continue
      row = metrics[key]
      cells = [_cell(row.get(c), digits, signed=c == "difference") for c in columns]
      lines.append(f"| {fam} | {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
