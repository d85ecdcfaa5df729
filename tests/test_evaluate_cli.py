"""python -m mvtrack_jax.evaluate end to end on the tiny checkpoint (CPU, 2 Euler steps, 1 scene)."""

import json

import numpy as np
import pytest

from mvtrack_jax import evaluate


def test_two_checkpoints_side_by_side(tiny_checkpoint, tmp_path):
  out = tmp_path / "eval"
  record = evaluate.run([tiny_checkpoint, tiny_checkpoint], str(out), names=["a", "b"], max_scenes=1, steps=2,
                        trajectory_names=["recorded", "pan_right"], progress=False, save_videos=True)
  saved = json.loads((out / "metrics.json").read_text())
  assert saved["num_scenes"] == 1 and saved["trajectories"] == ["recorded", "pan_right"]
  summary = saved["summary"]
  assert set(summary) == {"a", "b", "gt_video"}
  overall = summary["a"]["all"]
  for key in ("psnr", "ssim", "m_rot_err_deg", "m_trans_err", "m_cam_mc", "aj_reference", "aj_target",
              "epipolar_sampson_px"):
    assert key in overall, key
  assert overall["psnr"]["n"] == 2 and np.isfinite(overall["psnr"]["mean"])
  # The same checkpoint twice gives the same numbers: generation and metrics are deterministic.
  for key, value in overall.items():
    other = summary["b"]["all"][key]
    assert other["n"] == value["n"]
    if np.isfinite(value["mean"]):
      assert other["mean"] == pytest.approx(value["mean"], rel=1e-6, abs=1e-9), key
  table = (out / "metrics.md").read_text()
  assert "| metric | a | b | gt_video |" in table and "| pan_right | psnr ↑ |" in table
  assert (out / "per_clip.csv").read_text().count("\n") == 1 + 3 * 2  # header + (a, b, gt) x 2 clips
  assert (out / "videos" / "a" / "scene0_pan_right.mp4").is_file()
  assert record["rows"][0]["model"] == "gt_video"


def test_head_model_vs_diffusion_only_baseline(tiny_checkpoint, tiny_baseline_checkpoint, tmp_path):
  out = tmp_path / "eval"
  evaluate.run([tiny_checkpoint, tiny_baseline_checkpoint], str(out), max_scenes=1, steps=1,
               trajectory_names=["zoom_in"], progress=False)
  summary = json.loads((out / "metrics.json").read_text())["summary"]
  assert set(summary) == {"default@0", "default_diffusion_only@0", "gt_video"}
  assert "aj_target" in summary["default@0"]["all"]
  baseline = summary["default_diffusion_only@0"]["all"]
  assert "aj_target" not in baseline and np.isfinite(baseline["psnr"]["mean"])  # no head: no tracking metrics
  assert "| aj_target ↑ | " in (out / "metrics.md").read_text()


def test_names_must_match_checkpoints(tiny_checkpoint, tmp_path):
  with pytest.raises(ValueError, match="distinct names"):
    evaluate.run([tiny_checkpoint], str(tmp_path), names=["a", "b"], max_scenes=1, steps=1, progress=False)
  with pytest.raises(ValueError, match="unknown 'sideways'"):
    evaluate.run([tiny_checkpoint], str(tmp_path), trajectory_names=["sideways"], max_scenes=1, steps=1,
                 progress=False)
