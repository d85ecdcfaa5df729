"""Structure-from-motion poses (``evaluation.sfm``: pycolmap's COLMAP features and matching + GLOMAP global mapping,
CamI2V's protocol) and the choice of pose estimator in ``evaluation.clip_metrics``."""

import numpy as np
import pytest

from mvtrack_jax import errors
from mvtrack_jax.data import synthetic
from mvtrack_jax.evaluation import camera
from mvtrack_jax.evaluation import clip_metrics
from mvtrack_jax.evaluation import sfm
from mvtrack_jax.geometry import invert_rigid


@pytest.fixture(scope="module")
def clip():
  """10 frames of 120×160 of a rendered scene (mip-mapped textures), its exact cameras."""
  record = synthetic.render_scene(3, num_views=1, num_frames=10, height=120, width=160, num_tracks=0, style="paper")
  return record["video"][0], record["intrinsics"][0], invert_rigid(record["world_to_camera"][0].astype(np.float64))


def test_sfm_recovers_the_rendered_cameras(clip):
  """Every frame registered; the trajectory within 0.3° (the two-view SIFT estimator on the same frames:
  about 1.1°), the camera centres within 5 % of the path's extent."""
  video, intrinsics, gt = clip
  trials = sfm.estimate_poses(video, intrinsics, trials=1, num_threads=1)  # reproducible
  assert len(trials) == 1 and trials[0].registered.all() and trials[0].num_points > 50
  np.testing.assert_allclose(trials[0].cam_to_world[0], np.eye(4), atol=1e-9)  # relative to frame 0
  scores = sfm.trial_errors(gt, trials)
  assert scores["pose_valid"] == 1.0 and scores["sfm_trials_complete"] == 1.0
  assert scores["m_rot_err_deg"] < 0.3 and scores["redirector_rot_err_deg"] < 0.3  # 0.17°, 0.14° on 2026-12-07
  assert scores["redirector_trans_err"] < 0.05  # 0.029


def test_incomplete_reconstructions_are_not_scored(clip):
  _, _, gt = clip
  full = sfm.SfmTrial(np.linalg.inv(gt[0]) @ gt, np.ones(10, bool), 100)
  half = sfm.SfmTrial(np.tile(np.eye(4), (10, 1, 1)), np.arange(10) < 5, 10)
  scores = sfm.trial_errors(gt, [full, half])
  assert scores["sfm_trials_complete"] == 1.0 and scores["pose_valid"] == 0.75
  assert scores["m_rot_err_deg"] < 0.01  # arccos near 1: float rounding
  assert np.isnan(sfm.trial_errors(gt, [half])["m_rot_err_deg"])


def test_small_frames_and_unknown_methods_are_refused_with_the_way_out():
  with pytest.raises(ValueError, match=r"64x64 pixels.*--pose_method flow"):
    sfm.estimate_poses(np.zeros((4, 64, 64, 3), np.uint8), np.eye(3))
  with pytest.raises(errors.UserError, match=r"--pose_method colmap: the model's 64x64 frames are too small"):
    clip_metrics.check_pose_method("colmap", 64, 64)
  with pytest.raises(errors.UserError, match="--pose_method 'glomap'"):
    clip_metrics.check_pose_method("glomap", 480, 832)
  clip_metrics.check_pose_method("colmap", 480, 832)


def test_poses_estimated_elsewhere(clip, tmp_path):
  """--poses: a camera file per generated video, scored as the estimators' poses are."""
  video, intrinsics, gt = clip
  example = {"target_cam_to_world": np.linalg.inv(gt[0]) @ gt, "target_intrinsics": intrinsics}
  path = tmp_path / "m" / "scene0_pan.npz"
  path.parent.mkdir()
  np.savez(path, intrinsics=intrinsics, cam_to_world=gt)  # any world frame
  scores = clip_metrics.pose_file_metrics(str(path), example)
  assert scores["pose_valid"] == 1.0 and scores["m_rot_err_deg"] < 0.01 and scores["redirector_trans_err"] < 1e-6
  np.savez(path, intrinsics=intrinsics[:4], cam_to_world=gt[:4])
  with pytest.raises(errors.UserError, match="4 poses for a 10-frame video"):
    clip_metrics.pose_file_metrics(str(path), example)
  with pytest.raises(errors.UserError, match="no camera file .*scene1_pan.npz"):
    clip_metrics.pose_file_metrics(str(tmp_path / "m" / "scene1_pan.npz"), example)
  # The two-view estimator's columns carry ReDirector's errors too.
  two_view = clip_metrics.camera_metrics(video, example, "sift")
  assert set(camera.ERROR_KEYS) <= set(two_view) and np.isfinite(two_view["redirector_rot_err_deg"])
