"""python -m mvtrack_jax.replicate: per-family means of each seed, mean ± 95 % t-interval over seeds, paired difference."""

import json
import math
import os

import numpy as np
import pytest

from mvtrack_jax import errors
from mvtrack_jax import replicate
from mvtrack_jax.evaluation import replication

MODELS = ("mvtrack4gen", "diffusion_only")
T_975_DF2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (printed tables: 4.303)


def _records(seed, steps=10):
  """One seed's (metrics.json, summary.json) as evaluate / compare write them, read back from JSON."""
  rng = np.random.default_rng(seed)
  rows = []
  for scene in range(2):
    for trajectory in ("recorded", "pan_right", "zoom_in"):
      for model in MODELS + ("copy_reference", "mean_colour"):
        metrics = {"psnr": float(rng.uniform(10, 25)), "ssim": float(rng.uniform(0, 1)),
                   "m_rot_err_deg": float(rng.uniform(0, 20))}
        if model == "mvtrack4gen":
          metrics.update(aj_reference=float(rng.uniform(0, 1)), epipolar_sampson_px=float(rng.uniform(0, 5)))
        rows.append({"model": model, "scene": scene, "trajectory": trajectory, "metrics": metrics})
      rows.append({"model": "zero_motion", "scene": scene, "trajectory": trajectory,
                   "metrics": {"aj_reference": float(rng.uniform(0, 1)), "epipolar_sampson_px": 0.0}})
  rows[0]["metrics"]["psnr"] = math.inf  # an exact video: left out of every mean
  evaluation = {"checkpoints": {m: {"source": f"/runs/{seed}/{m}", "step": 150} for m in MODELS},
                "baselines": ["copy_reference", "mean_colour", "zero_motion"], "split": "test", "num_scenes": 2,
                "trajectories": ["recorded", "pan_right", "zoom_in"], "steps": steps, "pose_method": "flow",
                "resolution": [4, 64, 64], "seed": seed, "rows": rows}
  summary = {"cross_view_pck": {"mvtrack4gen": [{"layer": 1, "lambda_corr": 0.01, "mean": 90.0 + seed}],
                                "diffusion_only": [{"layer": 1, "lambda_corr": 0.0, "mean": 50.0 - seed}]}}
  return json.loads(json.dumps(evaluation)), summary


def _mean(rows, model, trajectories, key):
  values = [r["metrics"][key] for r in rows if r["model"] == model and r["trajectory"] in trajectories]
  return float(np.mean([v for v in values if math.isfinite(v)]))


def test_seed_means_split_the_recorded_view_from_the_preset_trajectories():
  evaluation, summary = _records(0)
  means = replication.seed_means(evaluation, summary)
  rows = evaluation["rows"]
  for model in MODELS + ("copy_reference",):
    assert means[model]["recorded"]["psnr"] == pytest.approx(_mean(rows, model, {"recorded"}, "psnr"))
    assert means[model]["presets"]["ssim"] == pytest.approx(_mean(rows, model, {"pan_right", "zoom_in"}, "ssim"))
    assert means[model]["all"]["m_rot_err_deg"] == pytest.approx(
        _mean(rows, model, {"recorded", "pan_right", "zoom_in"}, "m_rot_err_deg"))
  assert "aj_reference" in means["mvtrack4gen"]["presets"] and "aj_reference" not in means["diffusion_only"]["all"]
  assert means["diffusion_only"]["recorded"]["cross_view_pck"] == 50.0
  with pytest.raises(ValueError, match="rows"):
    replication.seed_means({"summary": {}}, summary)


def test_interval_is_the_student_t_interval_of_the_seed_values():
  got = replication.interval([18.0, 19.0, 20.5])
  s = np.std([18.0, 19.0, 20.5], ddof=1)
  assert got["mean"] == pytest.approx(19.1666666667) and got["n"] == 3
  assert got["half_width"] == pytest.approx(T_975_DF2 * s / math.sqrt(3), rel=1e-9)
  assert replication.interval([1.0, math.nan, 3.0])["n"] == 2  # NaN dropped
  assert replication.interval([2.0])["half_width"] is None
  assert replication.interval([math.nan])["mean"] is None


def test_aggregate_pairs_the_difference_by_seed():
  seeds = [0, 1, 2]
  per_seed = [replication.seed_means(*_records(s)) for s in seeds]
  record = replication.aggregate(per_seed, MODELS, seeds)
  assert record["columns"] == list(MODELS) + ["copy_reference", "mean_colour", "zero_motion"]
  psnr = record["cells"]["presets"]["psnr"]
  diffs = [m["mvtrack4gen"]["presets"]["psnr"] - m["diffusion_only"]["presets"]["psnr"] for m in per_seed]
  assert psnr["difference"]["mean"] == pytest.approx(np.mean(diffs))
  assert psnr["difference"]["half_width"] == pytest.approx(T_975_DF2 * np.std(diffs, ddof=1) / math.sqrt(3))
  pck = record["cells"]["all"]["cross_view_pck"]
  assert pck["mvtrack4gen"]["mean"] == 91.0 and pck["difference"]["mean"] == 91.0 - 49.0
  assert "copy_reference" not in pck  # baselines have no attention
  aj = record["cells"]["all"]["aj_reference"]
  assert "difference" not in aj and set(aj) == {"mvtrack4gen", "zero_motion"}  # only one model has a head
  assert record["cells"]["recorded"]["epipolar_sampson_px"]["zero_motion"]["mean"] == 0.0
  with pytest.raises(ValueError, match="distinct seed"):
    replication.aggregate(per_seed, MODELS, [0, 0, 2])


def _write(folder, seed, **changes):
  evaluation, summary = _records(seed)
  evaluation.update(changes)
  os.makedirs(folder / "evaluate")
  (folder / "evaluate" / "metrics.json").write_text(json.dumps(evaluation))
  (folder / "summary.json").write_text(json.dumps(summary))
  return str(folder)


def test_replicate_writes_the_table_and_refuses_what_is_not_a_replication(tmp_path):
  dirs = [_write(tmp_path / f"seed{s}", s) for s in (0, 1, 2)]
  record = replicate.run(dirs, str(tmp_path / "out"))
  stored = json.loads((tmp_path / "out" / "replication.json").read_text())
  assert stored["seeds"] == [0, 1, 2] and stored["cells"] == json.loads(json.dumps(record["cells"]))
  table = (tmp_path / "out" / "replication.md").read_text()
  cell = record["cells"]["recorded"]["psnr"]["mvtrack4gen"]
  assert f"| recorded | PSNR, dB ↑ | {cell['mean']:.2f} ± {cell['half_width']:.2f} |" in table
  assert "mvtrack4gen − diffusion_only" in table

  repeat = _write(tmp_path / "again", 1)
  with pytest.raises(errors.UserError, match=r"seeds \[0, 1, 1\] repeat"):
    replicate.run(dirs[:2] + [repeat], str(tmp_path / "o2"))
  other = _write(tmp_path / "other", 3, steps=50)
  with pytest.raises(errors.UserError, match=r"not a repeat of .*\['steps'\] differ"):
    replicate.run(dirs[:2] + [other], str(tmp_path / "o3"))
  with pytest.raises(errors.InputFileError, match="does not exist"):
    replicate.run([dirs[0], str(tmp_path / "missing")], str(tmp_path / "o4"))
  with pytest.raises(errors.UserError, match="at least 2 seeds"):
    replicate.run(dirs[:1], str(tmp_path / "o5"))
  assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()
