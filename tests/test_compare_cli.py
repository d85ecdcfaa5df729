"""python -m mvtrack_jax.compare: supervised layers, the cross-view table and the summary read from the records."""

import csv
import io
import json
import math

import numpy as np
import pytest

from mvtrack_jax import compare
from mvtrack_jax.evaluation import comparison
from mvtrack_jax.evaluation import probe as probe_lib
from mvtrack_jax.evaluation import report
from tests.helpers import load_config

TIMESTEPS = [1000.0, 800.0, 300.0]


def _objective(config):
  return {"lambda_corr": config.objective.lambda_corr, "corr_layers": config.objective.corr_layers}


def _probe_record(seed, layers=(0, 1, 2)):
  """A probe.json record as probe.run_probe writes it, from random sums (one timestep without valid entries)."""
  rng = np.random.default_rng(seed)
  sums = np.zeros((len(layers), len(TIMESTEPS), len(probe_lib.KINDS), len(probe_lib.SUM_FIELDS)))
  count = rng.integers(5, 20, sums.shape[:3]).astype(np.float64)
  sums[..., 0] = count
  sums[..., 1] = np.floor(count * rng.uniform(0, 1, count.shape))
  sums[..., 2] = count * rng.uniform(0, 1, count.shape)
  sums[..., 3] = count * rng.uniform(0, 1, count.shape)
  sums[1, 2, probe_lib.KINDS.index("cross_view")] = 0.0  # layer 1, last timestep: no valid point → None
  tables = probe_lib.metric_tables(sums, probe_lib.KINDS, list(layers))
  record = {"checkpoint": {"name": "x", "step": 0, "source": "/x"},
            "settings": {"split": "test", "layers": list(layers), "timesteps": TIMESTEPS,
                         "sigmas": [t / 1000 for t in TIMESTEPS], "pck_threshold": 8.0},
            "kinds": list(probe_lib.KINDS), "tables": probe_lib.tables_to_json(tables)}
  return json.loads(json.dumps(record, allow_nan=False))  # as read back from probe.json


def _eval_record():
  """A metrics.json record as evaluate.run writes it (rows → report.summarize), read back from JSON."""
  rng = np.random.default_rng(0)
  rows = []
  for scene in range(2):
    for trajectory in ("recorded", "pan_right"):
      for model in ("mvtrack4gen", "diffusion_only", "copy_reference", "mean_colour"):
        rows.append({"model": model, "scene": scene, "trajectory": trajectory,
                     "metrics": {"psnr": float(rng.uniform(5, 30)), "ssim": float(rng.uniform(0, 1))}})
      rows[-4]["metrics"].update(aj_reference=float(rng.uniform(0, 1)), aj_target=float(rng.uniform(0, 1)))
      rows.append({"model": "zero_motion", "scene": scene, "trajectory": trajectory,
                   "metrics": {"aj_reference": float(rng.uniform(0, 1)), "aj_target": 0.0}})
  rows[0]["metrics"]["psnr"] = math.inf  # an exact video: left out of the mean (n = 3)
  checkpoints = {"mvtrack4gen": {"source": "/a", "step": 200}, "diffusion_only": {"source": "/b", "step": 200}}
  record = {"checkpoints": checkpoints,
            "baselines": ["copy_reference", "mean_colour", "zero_motion"], "split": "test", "num_scenes": 2,
            "trajectories": ["recorded", "pan_right"], "steps": 50, "summary": report.summarize(rows), "rows": rows}
  return json.loads(json.dumps(record, allow_nan=True))


def test_supervised_layers_of_the_real_configs():
  full, only = load_config("default.py", "test"), load_config("default_diffusion_only.py", "test")
  assert full.objective.lambda_corr > 0 and only.objective.lambda_corr == 0
  sup = comparison.supervised_layers({"mvtrack4gen": _objective(full), "diffusion_only": _objective(only)})
  assert sup["mvtrack4gen"] == {"layers": list(full.objective.corr_layers), "lambda_corr": full.objective.lambda_corr,
                                "layers_from": "mvtrack4gen"}
  assert sup["diffusion_only"]["layers"] == sup["mvtrack4gen"]["layers"]
  assert sup["diffusion_only"]["layers_from"] == "mvtrack4gen" and sup["diffusion_only"]["lambda_corr"] == 0.0
  # The model without L_corr first: it still borrows the layers of the first model with L_corr.
  sup = comparison.supervised_layers({"base": {"lambda_corr": 0.0, "corr_layers": (7,)},
                                   "a": {"lambda_corr": 0.1, "corr_layers": (1, 2)}})
  assert sup["base"]["layers"] == [1, 2] and sup["base"]["layers_from"] == "a"
  # Nobody trained with L_corr: everyone uses the first model's corr_layers.
  sup = comparison.supervised_layers({"p": {"lambda_corr": 0.0, "corr_layers": (2,)},
                                   "q": {"lambda_corr": 0.0, "corr_layers": (0,)}})
  assert sup["q"]["layers"] == [2] and sup["q"]["layers_from"] == "p"
  with pytest.raises(ValueError, match="corr_layers"):
    comparison.supervised_layers({"a": {"lambda_corr": 0.1, "corr_layers": ()}})


def test_summary_numbers_are_the_records_numbers(tmp_path):
  eval_record = _eval_record()
  probes = {"mvtrack4gen": _probe_record(1), "diffusion_only": _probe_record(2)}
  sup = comparison.supervised_layers({"mvtrack4gen": {"lambda_corr": 0.01, "corr_layers": (1,)},
                                   "diffusion_only": {"lambda_corr": 0.0, "corr_layers": (1,)}})
  table = comparison.cross_view_table(probes, sup)
  assert [(r["model"], r["layer"]) for r in table["rows"]] == [("mvtrack4gen", 1), ("diffusion_only", 1)]
  assert "`diffusion_only` uses the corr_layers of `mvtrack4gen`" in table["note"]
  expected_mean = {}
  for row in table["rows"]:
    accuracy = probes[row["model"]]["tables"]["cross_view"]["accuracy"][1]  # layer 1 = index 1 of [0, 1, 2]
    assert accuracy[2] is None and row["pck"] == accuracy
    expected_mean[row["model"]] = float(np.mean(accuracy[:2]))
    assert row["mean"] == pytest.approx(expected_mean[row["model"]], rel=1e-12)

  summary = comparison.summarize(eval_record, table, {"evaluation": {"record": "/o/evaluate/metrics.json"}})
  stored = eval_record["summary"]
  assert list(summary["psnr"]) == ["mvtrack4gen", "diffusion_only", "copy_reference", "mean_colour"]
  for name, entry in summary["psnr"].items():
    assert entry == stored[name]["all"]["psnr"]
  assert summary["psnr"]["mvtrack4gen"]["n"] == 3  # the +inf clip is not in the mean
  assert list(summary["aj_reference"]) == ["mvtrack4gen", "zero_motion"]  # head models, then zero_motion
  for name, entry in summary["aj_reference"].items():
    assert entry == stored[name]["all"]["aj_reference"]
  for model in ("mvtrack4gen", "diffusion_only"):
    assert summary["cross_view_pck"][model][0]["mean"] == expected_mean[model]
  (diff,) = summary["pck_difference"]
  assert diff["with_corr"] == "mvtrack4gen" and diff["without_corr"] == "diffusion_only" and diff["layer"] == 1
  assert diff["difference"] == expected_mean["mvtrack4gen"] - expected_mean["diffusion_only"]
  assert json.loads(json.dumps(summary, allow_nan=False)) == summary

  text = comparison.format_summary(summary)
  for name, entry in summary["psnr"].items():
    assert f"{name:<14}  {entry['mean']:.2f} (n={entry['n']})" in text
  for name, entry in summary["aj_reference"].items():
    assert f"{name:<14}  {entry['mean']:.3f} (n={entry['n']})" in text
  assert f"{expected_mean['mvtrack4gen']:.2f}  layer 1, with L_corr" in text
  assert f"{expected_mean['diffusion_only']:.2f}  layer 1 (the layer of mvtrack4gen), without L_corr" in text
  assert f"at layer 1: {diff['difference']:+.2f} points" in text
  assert "evaluation record: /o/evaluate/metrics.json" in text

  rows = list(csv.DictReader(io.StringIO(comparison.cross_view_csv(table))))
  assert [r["model"] for r in rows] == ["mvtrack4gen", "diffusion_only"]
  assert float(rows[0]["pck_t1000"]) == table["rows"][0]["pck"][0] and rows[0]["pck_t300"] == ""
  assert float(rows[1]["pck_mean"]) == table["rows"][1]["mean"]
  markdown = comparison.cross_view_markdown(table)
  assert "| model | layer | λ_corr | t=1000 | t=800 | t=300 | mean |" in markdown
  assert f"| diffusion_only | 1 | 0 | {table['rows'][1]['pck'][0]:.2f} |" in markdown


def test_cross_view_table_rejects_an_unprobed_layer():
  sup = comparison.supervised_layers({"a": {"lambda_corr": 0.01, "corr_layers": (5,)}})
  with pytest.raises(ValueError, match="supervised layer 5"):
    comparison.cross_view_table({"a": _probe_record(0)}, sup)
  with pytest.raises(ValueError, match="no probe record"):
    comparison.cross_view_table({}, sup)


def test_compare_end_to_end(tiny_checkpoint, tiny_baseline_checkpoint, tiny_track4gen_checkpoint, tmp_path):
  """MVTrack4Gen, diffusion-only and Track4Gen side by side (the three arms of ``make demo-track4gen``)."""
  out = tmp_path / "compare"
  summary = compare.run([tiny_checkpoint, tiny_baseline_checkpoint, tiny_track4gen_checkpoint], str(out),
                        names=["mvtrack4gen", "diffusion_only", "track4gen"], trajectory_names=["recorded"],
                        max_scenes=1, steps=1, probe_batches=1, probe_layers=[1], progress=False)
  for path in ("evaluate/metrics.json", "evaluate/metrics.md", "probe_mvtrack4gen/probe.json",
               "probe_diffusion_only/probe.json", "probe_cross_view.md", "probe_cross_view.csv", "summary.json",
               "summary.md"):
    assert (out / path).is_file(), path
  assert json.loads((out / "summary.json").read_text()) == summary
  stored = json.loads((out / "evaluate" / "metrics.json").read_text())["summary"]
  assert set(summary["psnr"]) == {"mvtrack4gen", "diffusion_only", "track4gen", "copy_reference", "mean_colour"}
  for name, entry in summary["psnr"].items():
    assert entry["n"] == stored[name]["all"]["psnr"]["n"]
    assert entry["mean"] == comparison._finite(stored[name]["all"]["psnr"]["mean"])
  assert set(summary["aj_reference"]) <= {"mvtrack4gen", "zero_motion"} and "mvtrack4gen" in summary["aj_reference"]
  rows = list(csv.DictReader(io.StringIO((out / "probe_cross_view.csv").read_text())))
  assert [(r["model"], r["layer"], r["layers_from"]) for r in rows] == [("mvtrack4gen", "1", "mvtrack4gen"),
                                                                      ("diffusion_only", "1", "mvtrack4gen"),
                                                                      ("track4gen", "1", "mvtrack4gen")]
  for row in rows:
    probe = json.loads((out / f"probe_{row['model']}" / "probe.json").read_text())
    assert probe["settings"]["layers"] == [1]
    accuracy = probe["tables"]["cross_view"]["accuracy"][0]
    assert [float(row[f"pck_t{t:g}"]) if row[f"pck_t{t:g}"] else None for t in probe["settings"]["timesteps"]] \
        == accuracy
    assert summary["cross_view_pck"][row["model"]][0]["pck"] == accuracy
  assert comparison.format_summary(summary) in (out / "summary.md").read_text()
  # Track4Gen's measure at its tap (layer 1), for every model; refined features for the one with a refiner only.
  assert [(r["model"], r["layer"], r["refined"] is None) for r in summary["feature_tracking"]] == [
      ("mvtrack4gen", 1, True), ("diffusion_only", 1, True), ("track4gen", 1, False)]
  for row in summary["feature_tracking"]:
    record = json.loads((out / f"feature_probe_{row['model']}" / "feature_probe.json").read_text())
    assert row["features"] == pytest.approx(np.mean(record["delta_avg"]["features"][0]), rel=1e-12)
  assert "Feature tracking at the Track4Gen tap (layer 1" in (out / "summary.md").read_text()
