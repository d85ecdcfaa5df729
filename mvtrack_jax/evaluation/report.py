"""The evaluation report: per-clip metric rows summarised into NaN-skipping means per model and trajectory, and the
Markdown tables ``python -m mvtrack_jax.evaluate`` writes (``metrics.md``) with ↑/↓ for each known metric.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

# Metric → True when higher is better (table arrows; unknown/learned metrics get no arrow).
HIGHER_IS_BETTER = {
    "psnr": True, "ssim": True, "m_rot_err_deg": False, "m_trans_err": False, "m_cam_mc": False, "pose_valid": True,
    "aj_reference": True, "aj_target": True, "delta_avg_target": True, "oa_target": True,
    "epipolar_sampson_px": False, "epipolar_below_2px": True,
    "epipolar_matched_sampson_px": False, "epipolar_matched_below_2px": True,
    "track_colour_drift": False, "flow_track_survival": True, "temporal_flickering": True,
    "redirector_rot_err_deg": False, "redirector_trans_err": False, "sfm_trials_complete": True,
}


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
  """``{model: {trajectory | "all": {metric: {"mean", "n"}}}}``, NaN-skipping means over clips."""
  out: dict[str, Any] = {}
  for row in rows:
    for group in (row["trajectory"], "all"):
      cell = out.setdefault(row["model"], {}).setdefault(group, {})
      for key, value in row["metrics"].items():
        acc = cell.setdefault(key, {"sum": 0.0, "n": 0})
        if value is not None and np.isfinite(value):
          acc["sum"] += float(value)
          acc["n"] += 1
  for model in out.values():
    for group in model.values():
      for key, acc in group.items():
        group[key] = {"mean": acc["sum"] / acc["n"] if acc["n"] else math.nan, "n": acc["n"]}
  return out


def _fmt(value: float) -> str:
  return "–" if value is None or not np.isfinite(value) else f"{value:.4g}"


def _arrow(metric: str) -> str:
  better = HIGHER_IS_BETTER.get(metric)
  return "" if better is None else (" ↑" if better else " ↓")


def markdown_tables(summary: Mapping[str, Any], models: Sequence[str], trajectory_names: Sequence[str],
                    header: str) -> str:
  """The Markdown report: an overall table and a per-trajectory table, models side by side."""
  metrics = []
  for model in models:
    for key in summary.get(model, {}).get("all", {}):
      if key not in metrics:
        metrics.append(key)
  order = {k: i for i, k in enumerate(HIGHER_IS_BETTER)}
  metrics.sort(key=lambda k: (order.get(k, len(order)), k))
  lines = [header, "", "## All trajectories", "", "| metric | " + " | ".join(models) + " |",
           "|---|" + "---|" * len(models)]

  def cell(model, group, metric):
    entry = summary.get(model, {}).get(group, {}).get(metric)
    return "–" if entry is None else f"{_fmt(entry['mean'])} (n={entry['n']})"

  for metric in metrics:
    lines.append(f"| {metric}{_arrow(metric)} | " + " | ".join(cell(m, "all", metric) for m in models) + " |")
  lines += ["", "## Per trajectory", "", "| trajectory | metric | " + " | ".join(models) + " |",
            "|---|---|" + "---|" * len(models)]
  for name in trajectory_names:
    for metric in metrics:
      if all(summary.get(m, {}).get(name, {}).get(metric) is None for m in models):
        continue
      lines.append(f"| {name} | {metric}{_arrow(metric)} | " + " | ".join(cell(m, name, metric) for m in models)
                   + " |")
  return "\n".join(lines) + "\n"
