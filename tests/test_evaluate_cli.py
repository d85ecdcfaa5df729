"""python -m mvtrack_jax.evaluate end to end on the tiny checkpoint (CPU, 2 Euler steps, 1 scene), and its baselines."""

import json

import numpy as np
import pytest

from mvtrack_jax.evaluation import baselines
from mvtrack_jax.evaluation import clip_metrics
from mvtrack_jax.evaluation import protocol_clips
from mvtrack_jax.evaluation import runner
from mvtrack_jax.inference import novel_view
from mvtrack_jax.models import autoencoder as ae_lib

BASELINES = {"copy_reference", "mean_colour", "zero_motion"}


def test_two_checkpoints_side_by_side(tiny_checkpoint, tmp_path):
  out = tmp_path / "eval"
  # One loaded model in both columns (the runner takes pipelines as well as paths): it compiles once.
  model = novel_view.NovelViewPipeline.from_checkpoint(tiny_checkpoint)
  record = runner.run([model, model], str(out), names=["a", "b"], max_scenes=1, steps=2,
                        trajectory_names=["recorded", "pan_right"], progress=False, save_videos=True)
  saved = json.loads((out / "metrics.json").read_text())
  assert saved["num_scenes"] == 1 and saved["trajectories"] == ["recorded", "pan_right"]
  summary = saved["summary"]
  assert set(summary) == {"a", "b", "gt_video"} | BASELINES
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
  assert "| metric | a | b | copy_reference | mean_colour | zero_motion | gt_video |" in table
  assert "| pan_right | psnr ↑ |" in table
  # header + (a, b, gt, copy_reference, mean_colour, zero_motion) x 2 clips: baselines once per clip, not per model
  assert (out / "per_clip.csv").read_text().count("\n") == 1 + 6 * 2
  assert (out / "videos" / "a" / "scene0_pan_right.mp4").is_file()
  assert record["rows"][0]["model"] == "gt_video"
  # Drift: every model and the ground truth's own; a constant video neither drifts nor flickers.
  for name in ("a", "gt_video", "copy_reference"):
    assert {"track_colour_drift", "flow_track_survival", "temporal_flickering"} <= set(summary[name]["all"]), name
  assert summary["mean_colour"]["all"]["temporal_flickering"]["mean"] == 1.0
  assert saved["baselines"] == ["copy_reference", "mean_colour", "zero_motion"]
  assert saved["zero_motion_frames"] == list(range(4))  # the pixel autoencoder: k = 1, every frame
  for name in ("copy_reference", "mean_colour"):
    assert "m_rot_err_deg" in summary[name]["all"] and "aj_reference" not in summary[name]["all"]
  assert summary["mean_colour"]["all"]["psnr"]["n"] == 2
  # A clip whose target frames all equal the reference's has PSNR +inf (fidelity.video_fidelity), which the
  # NaN/inf-skipping means leave out: the summary is the mean of the finite rows.
  copy_psnr = [r["metrics"]["psnr"] for r in saved["rows"] if r["model"] == "copy_reference"]
  finite = [p for p in copy_psnr if np.isfinite(p)]
  assert len(copy_psnr) == 2 and summary["copy_reference"]["all"]["psnr"]["n"] == len(finite)
  if finite:
    assert summary["copy_reference"]["all"]["psnr"]["mean"] == pytest.approx(np.mean(finite), rel=1e-12)
  assert summary["zero_motion"]["all"]["aj_reference"]["n"] == 2 and "psnr" not in summary["zero_motion"]["all"]
  # The baseline rows are the functions' rows on the evaluation clips (the same code path as the models).
  clips = protocol_clips.scene_clips(novel_view.NovelViewPipeline.from_checkpoint(tiny_checkpoint).config, "test", 0, ["recorded", "pan_right"])
  for clip, name in zip(clips, ["recorded", "pan_right"]):
    expected = baselines.baseline_rows(clip, 0, name, np.arange(4), "flow")
    got = [r for r in saved["rows"] if r["trajectory"] == name and r["model"] in BASELINES]
    assert [r["model"] for r in got] == [r["model"] for r in expected]
    for g, e in zip(got, expected):
      assert g["metrics"].keys() == e["metrics"].keys()
      np.testing.assert_allclose([g["metrics"][k] for k in e["metrics"]], [e["metrics"][k] for k in e["metrics"]],
                                 rtol=1e-12)


def test_head_model_vs_diffusion_only_baseline(tiny_checkpoint, tiny_baseline_checkpoint, tmp_path):
  out = tmp_path / "eval"
  runner.run([tiny_checkpoint, tiny_baseline_checkpoint], str(out), max_scenes=1, steps=1,
               trajectory_names=["zoom_in"], progress=False, baselines=False)
  saved = json.loads((out / "metrics.json").read_text())
  summary = saved["summary"]
  assert set(summary) == {"default@0", "default_diffusion_only@0", "gt_video"}  # --nobaselines
  assert saved["baselines"] == [] and saved["zero_motion_frames"] is None
  assert "aj_target" in summary["default@0"]["all"]
  baseline = summary["default_diffusion_only@0"]["all"]
  assert "aj_target" not in baseline and np.isfinite(baseline["psnr"]["mean"])  # no head: no tracking metrics
  assert "| aj_target ↑ | " in (out / "metrics.md").read_text()


def test_names_and_trajectories_are_checked_before_any_model_is_loaded(tmp_path):
  never_read = str(tmp_path / "no-such-checkpoint")  # loading it would raise FileNotFoundError instead
  with pytest.raises(ValueError, match="distinct names"):
    runner.run([never_read], str(tmp_path), names=["a", "b"], max_scenes=1, steps=1, progress=False)
  with pytest.raises(ValueError, match="unknown 'sideways'"):
    runner.run([never_read], str(tmp_path), trajectory_names=["sideways"], max_scenes=1, steps=1, progress=False)
  for reserved in ("copy_reference", "mean_colour", "zero_motion", "gt_video"):
    with pytest.raises(ValueError, match=f"reserved.*{reserved}"):
      runner.run([never_read], str(tmp_path), names=[reserved], max_scenes=1, steps=1, progress=False)


# ------------------------------------------------------------------------------------------------
# Baselines on constructed clips (no model).


def _clip(seed=0, t=4, h=32, w=32, n=5):
  """A pipeline-layout clip: random videos, static points in both views, target camera 1 m to the right."""
  rng = np.random.default_rng(seed)
  k = np.array([[30.0, 0, w / 2], [0, 30.0, h / 2], [0, 0, 1]])
  ref_c2w = np.tile(np.eye(4), (t, 1, 1))
  tgt_c2w = ref_c2w.copy()
  tgt_c2w[:, 0, 3] = 1.0
  xy = rng.uniform(4, w - 4, (n, 2)).astype(np.float32)
  query = np.concatenate([np.zeros((n, 1), np.float32), xy], axis=1)
  return {"reference_video": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
          "target_video": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
          "reference_intrinsics": np.tile(k, (t, 1, 1)), "target_intrinsics": np.tile(k, (t, 1, 1)),
          "reference_cam_to_world": ref_c2w, "target_cam_to_world": tgt_c2w,
          "query_points": query, "track_mask": np.ones(n, bool),
          "tracks": np.broadcast_to(xy, (2, t, n, 2)).copy(), "visible": np.ones((2, t, n), bool)}


def test_perfect_prediction_is_infinite_psnr_and_unit_ssim():
  clip = _clip()
  metrics = clip_metrics.prediction_metrics(clip["target_video"], clip, "flow")
  assert metrics["psnr"] == np.inf  # fidelity.video_fidelity: MSE 0 → +inf, reported, not clipped
  assert metrics["ssim"] == 1.0


def test_copy_reference_psnr_matches_numpy():
  clip = _clip()
  clip["target_video"][0] = clip["reference_video"][0]  # an exact frame (a preset's frame 0) keeps it finite
  rows = baselines.baseline_rows(clip, 3, "recorded", None, "flow")
  assert [r["model"] for r in rows] == ["copy_reference", "mean_colour"]  # frames=None: no zero_motion
  assert rows[0]["scene"] == 3 and rows[0]["trajectory"] == "recorded"
  diff = clip["reference_video"].astype(np.float64) - clip["target_video"].astype(np.float64)
  mse = np.mean(diff ** 2)  # fidelity.video_fidelity: MSE pooled over all frames, pixels and channels
  expected = float(10.0 * np.log10(255.0 ** 2 / mse))
  assert rows[0]["metrics"]["psnr"] == pytest.approx(expected, rel=1e-12)
  for key in ("ssim", "m_rot_err_deg", "m_trans_err", "m_cam_mc", "pose_valid"):
    assert key in rows[0]["metrics"] and key in rows[1]["metrics"]


def test_mean_colour_is_the_per_channel_mean():
  clip = _clip(seed=1)
  videos = baselines.baseline_videos(clip)
  np.testing.assert_array_equal(videos["copy_reference"], clip["reference_video"])
  mean = videos["mean_colour"]
  assert mean.shape == clip["reference_video"].shape and mean.dtype == np.uint8
  expected = np.round(clip["reference_video"].reshape(-1, 3).astype(np.float64).mean(axis=0)).astype(np.uint8)
  assert (mean == expected).all()
  assert len(np.unique(mean.reshape(-1, 3), axis=0)) == 1
  # Unbalanced channels: the means differ per channel.
  video = np.zeros((2, 12, 12, 3), np.uint8)
  video[..., 0], video[0, ..., 1], video[:, :6, :, 2] = 200, 100, 30
  np.testing.assert_array_equal(baselines.baseline_videos({"reference_video": video})["mean_colour"][1, 5, 5],
                                [200, 50, 15])
  with pytest.raises(ValueError, match="reference_video"):
    baselines.baseline_videos({"reference_video": video.astype(np.float32)})


def test_zero_motion_tracks_static_and_moving_points():
  clip = _clip()
  frames = ae_lib.latent_frame_indices(4, 1)
  tracked = baselines.zero_motion_tracks(clip, frames)
  assert tracked["tracks"].shape == (2, 4, 5, 2) and tracked["visible"].shape == (2, 4, 5)
  assert tracked["visible"].all()
  np.testing.assert_array_equal(tracked["tracks"][1, 3], clip["query_points"][:, 1:])
  static = clip_metrics.tracking_metrics(clip, tracked)
  assert static["aj_reference"] == 1.0 and static["aj_target"] == 1.0 and static["oa_target"] == 1.0
  moving = dict(clip, tracks=clip["tracks"] + np.arange(4, dtype=np.float32)[None, :, None, None] * 6.0)
  scores = clip_metrics.tracking_metrics(moving, baselines.zero_motion_tracks(moving, frames))
  assert 0.0 <= scores["aj_reference"] < 1.0 and scores["aj_target"] < 1.0
  # A temporally compressing autoencoder (k = 2): the head's track frames 0, 2, 4 of a 5-frame video.
  frames2 = ae_lib.latent_frame_indices(5, 2)
  np.testing.assert_array_equal(frames2, [0, 2, 4])
  clip5 = _clip(t=5)
  tracked5 = baselines.zero_motion_tracks(clip5, frames2)
  assert tracked5["tracks"].shape == (2, 3, 5, 2) and tracked5["frames"].tolist() == [0, 2, 4]
  assert clip_metrics.tracking_metrics(clip5, tracked5)["aj_reference"] == 1.0
  with pytest.raises(ValueError, match="frames"):
    baselines.zero_motion_tracks(clip, np.array([0, 4]))  # frame 4 of a 4-frame clip
  with pytest.raises(ValueError, match="query_points"):
    baselines.zero_motion_tracks({"query_points": np.zeros((5, 2))}, frames)
