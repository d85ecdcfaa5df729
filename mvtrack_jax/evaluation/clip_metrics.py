"""The metrics of one clip: what ``python -m mvtrack_jax.evaluate`` scores per predicted target video and per set of
head tracks (its module docstring defines the protocols and columns).

- :func:`prediction_metrics` (synthetic split): PSNR/SSIM against the ground truth (``evaluation.fidelity``), the
  CamI2V camera errors of the trajectory estimated from the video (:func:`camera_metrics`, ``evaluation.camera``),
  the weight-free drift metrics along the ground-truth tracks (``evaluation.drift``) and any registered learned
  metric (``evaluation.learned``).
- :func:`protocol_metrics` (``--videos`` / ``--dycheck``): the same where a ground truth exists, plus the
  model-independent epipolar proxy of matches between reference and target frames.
- :func:`tracking_metrics`: TAP-Vid AJ / δ_avg / OA of the head's tracks in both views (``tapvid``,
  strided query mode) and the Sampson distance of its reference↔target pairs (``evaluation.epipolar``).

Videos are ``(T, H, W, 3)`` uint8; pixels ``(x, y)`` with the corner origin; cameras OpenCV camera-to-world
``(T, 4, 4)`` relative to the reference camera at frame 0, intrinsics ``(T, 3, 3)`` in pixels.
"""

from __future__ import annotations

import math
import os
from typing import Mapping

import numpy as np

from mvtrack_jax import errors
from mvtrack_jax.data import readers
from mvtrack_jax.evaluation import camera
from mvtrack_jax.evaluation import drift
from mvtrack_jax.evaluation import epipolar
from mvtrack_jax.evaluation import fidelity
from mvtrack_jax.evaluation import learned
from mvtrack_jax.evaluation import sfm
from mvtrack_jax import tapvid
from mvtrack_jax.geometry import cameras as geometry
from mvtrack_jax.models import autoencoder as ae_lib


# Pose estimators of the camera columns: the two-view estimator of evaluation.camera on each matcher's
# correspondences with frame 0, and structure-from-motion (evaluation.sfm: COLMAP + GLOMAP, CamI2V's protocol).
POSE_METHODS = ("flow", "sift", "orb", "colmap")
_ESTIMATORS = {"flow": "the two-view estimator on Lucas–Kanade (`flow`) tracks",
               "sift": "the two-view estimator on SIFT (`sift`) matches",
               "orb": "the two-view estimator on ORB (`orb`) matches",
               "colmap": f"COLMAP SIFT + sequential matching + GLOMAP global mapping (`colmap`, CamI2V's protocol, "
                         f"{sfm.DEFAULT_TRIALS} trials averaged)"}


def pose_estimator(method: str, poses: str | None = None) -> str:
  """The table header's words for where the camera columns' poses come from (``poses``: ``--poses DIR``)."""
  line = f"poses from {_ESTIMATORS[method]}"
  if poses is not None:
    line = f"generated videos' poses from the camera files in `{poses}`, the other columns' {line}"
  return line


def check_pose_method(method: str, height: int, width: int) -> None:
  """Rejects an unknown ``--pose_method`` or ``colmap`` on frames too small for SfM, before anything runs.

  Raises:
    errors.UserError: naming the flag, the value and the way out.
  """
  if method not in POSE_METHODS:
    raise errors.UserError(f"--pose_method {method!r}: expected one of {', '.join(POSE_METHODS)}")
  if method == "colmap" and min(height, width) < sfm.min_frame_size():
    raise errors.UserError(f"--pose_method colmap: the model's {height}x{width} frames are too small for "
                           f"structure-from-motion (shorter side < {sfm.min_frame_size()} px); use the two-view "
                           "estimator (--pose_method flow) at this size")


def matcher(method: str) -> str:
  """The correspondences of the matched epipolar proxy: SfM's are SIFT."""
  return "sift" if method == "colmap" else method


def camera_metrics(video: np.ndarray, example: Mapping[str, np.ndarray], method: str,
                   pose_file: str | None = None) -> dict[str, float]:
  """CamI2V's and ReDirector's errors (``camera.trajectory_errors``) of the trajectory estimated from ``video`` by
  ``method`` (:data:`POSE_METHODS`) against the clip's target cameras, and ``pose_valid`` (the fraction of frames
  posed; ``colmap`` adds ``sfm_trials_complete``). With ``pose_file`` the trajectory is read from it instead
  (:func:`pose_file_metrics`) and ``method`` is not run. A video the estimator cannot pose at all (COLMAP failing,
  too few correspondences) gets NaN errors and ``pose_valid`` 0."""
  if pose_file is not None:
    return pose_file_metrics(pose_file, example)
  gt = example["target_cam_to_world"]
  try:
    if method == "colmap":
      return sfm.trial_errors(gt, sfm.estimate_poses(video, example["target_intrinsics"]))
    est = camera.estimate_poses_from_video(video, example["target_intrinsics"], method=method)
  except (ValueError, RuntimeError, np.linalg.LinAlgError):
    return dict({k: math.nan for k in camera.ERROR_KEYS}, pose_valid=0.0)
  return dict(camera.trajectory_errors(gt, est.cam_to_world), pose_valid=float(np.mean(est.valid)))


def pose_file_metrics(path: str, example: Mapping[str, np.ndarray]) -> dict[str, float]:
  """The camera columns from poses estimated elsewhere (``--poses DIR``): a camera file
  (``data.readers.read_camera_file``: ``cam_to_world`` ``(T, 4, 4)`` of the generated video's frames, e.g. a
  GLOMAP or ViPE run on the ``<stem>_<trajectory>.generated.mp4`` that ``--save_videos`` writes), scored as
  :func:`camera_metrics` scores its estimates.

  Raises:
    errors.UserError: a missing file or one whose frame count differs from the clip's (schema.RecordError: a bad
      file).
  """
  if not os.path.isfile(path):
    raise errors.UserError(f"--poses: no camera file {path} for this generated video (expected one per model, scene "
                           "and trajectory, named as --save_videos names the videos)")
  _, c2w = readers.read_camera_file(path)
  gt = np.asarray(example["target_cam_to_world"], np.float64)
  if len(c2w) != len(gt):
    raise errors.UserError(f"--poses {path}: {len(c2w)} poses for a {len(gt)}-frame video")
  return dict(camera.trajectory_errors(gt, c2w), pose_valid=1.0)


def tracking_metrics(example: Mapping[str, np.ndarray], tracked: Mapping[str, np.ndarray]) -> dict[str, float]:
  """TAP-Vid metrics per view and the epipolar proxy of the head's tracks (module docstring)."""
  frames = tracked["frames"]
  mask = np.asarray(example["track_mask"], bool)
  h, w = example["reference_video"].shape[1:3]
  k = int(frames[1] - frames[0]) if frames.size > 1 else 1  # video frames per latent frame
  query = ae_lib.query_frames_to_latent(np.asarray(example["query_points"], np.float32)[mask], k, frames.size)
  gt_tracks = np.asarray(example["tracks"])[:, frames][:, :, mask]
  gt_vis = np.asarray(example["visible"])[:, frames][:, :, mask]
  pred_tracks = tracked["tracks"][:, :, mask]
  pred_vis = tracked["visible"][:, :, mask]
  out = {}
  for view, label in ((0, "reference"), (1, "target")):
    q, gt_occ, gt_xy = tapvid.to_tapvid_format(query[None], gt_tracks[view][None], gt_vis[view][None], (h, w))
    _, pr_occ, pr_xy = tapvid.to_tapvid_format(query[None], pred_tracks[view][None], pred_vis[view][None], (h, w))
    m = tapvid.compute_tapvid_metrics(q, gt_occ, gt_xy, pr_occ, pr_xy, "strided")
    out[f"aj_{label}"] = float(m["average_jaccard"][0])
    if label == "target":
      out["delta_avg_target"] = float(m["average_pts_within_thresh"][0])
      out["oa_target"] = float(m["occlusion_accuracy"][0])
  out.update(epipolar_metrics(pred_tracks[0], pred_tracks[1], pred_vis[0] & pred_vis[1], example, frames))
  return out


def epipolar_metrics(points_ref: np.ndarray, points_tgt: np.ndarray, visible: np.ndarray | None,
                     example: Mapping[str, np.ndarray], frames: np.ndarray,
                     prefix: str = "epipolar") -> dict[str, float]:
  """Sampson distance of reference↔target correspondences under the clip's cameras (``evaluation.epipolar``).

  Args:
    points_ref, points_tgt: ``(M, N, 2)`` pixels ``(x, y)`` (corner origin) in the reference video and
      the (generated) target video.
    visible: ``(M, N)`` bool, which pairs to score (None: all).
    example: a clip with ``reference_intrinsics``/``target_intrinsics`` ``(T, 3, 3)`` and
      ``reference_cam_to_world``/``target_cam_to_world`` ``(T, 4, 4)`` (OpenCV, relative to the
      reference camera at frame 0).
    frames: ``(M,)`` int video frame of each row: row ``m`` is scored under the cameras of frame
      ``frames[m]``.
    prefix: column prefix.

  Returns:
    ``{f"{prefix}_sampson_px": mean Sampson distance (px), f"{prefix}_below_2px": fraction below 2 px}``;
    NaN when no pair is scored (none given, or all camera pairs without baseline).
  """
  frames = np.asarray(frames, np.int64)
  w2c = lambda key: geometry.invert_rigid(np.asarray(example[key], np.float64)[frames])
  epi = epipolar.epipolar_consistency(
      points_ref, points_tgt, visible, np.asarray(example["reference_intrinsics"], np.float64)[frames],
      w2c("reference_cam_to_world"), np.asarray(example["target_intrinsics"], np.float64)[frames],
      w2c("target_cam_to_world"))
  return {f"{prefix}_sampson_px": float(epi["mean_sampson_px"]), f"{prefix}_below_2px": float(epi["frac_below_2px"])}


def learned_metrics(generated: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
  """Every metric registered in ``evaluation.learned`` (none unless a user registered one); ``mask`` ``(T, H, W)``
  bool, where given (DyCheck's co-visibility), is passed on as ``mask=`` (DyCheck's mLPIPS averages the spatial
  LPIPS map over it)."""
  out = {}
  kwargs = {} if mask is None else {"mask": mask}
  for name in learned.available_learned_metrics():
    for key, value in learned.compute_learned_metric(name, generated, reference=target, **kwargs).items():
      out[f"{name}/{key}"] = float(value)
  return out


def prediction_metrics(video: np.ndarray, example: Mapping[str, np.ndarray], pose_method: str,
                       pose_file: str | None = None) -> dict[str, float]:
  """The metrics of one predicted target video (a model's or a baseline's): fidelity, camera, learned.

  Args:
    video: ``(T, H, W, 3)`` uint8 prediction of ``example["target_video"]``.
    example: one clip in the pipeline layout (``target_video``, ``target_intrinsics``,
      ``target_cam_to_world``).
    pose_method: the ``camera_metrics`` pose estimator (:data:`POSE_METHODS`).
    pose_file: poses estimated elsewhere for this video (:func:`camera_metrics`).

  Returns:
    ``psnr`` (dB, +inf when every frame is exact; ``fidelity.video_fidelity``), ``ssim``,
    ``m_rot_err_deg``, ``m_trans_err``, ``m_cam_mc``, ``pose_valid``, the drift metrics
    (``track_colour_drift``, ``flow_track_survival``, ``temporal_flickering``; ``evaluation.drift``) and the
    learned metrics.

  Raises:
    ValueError: ``video`` and the ground truth differ in shape or dtype (``fidelity``).
  """
  metrics = fidelity.video_fidelity(video, example["target_video"])
  metrics.update(camera_metrics(video, example, pose_method, pose_file))
  metrics.update(drift.drift_metrics(video, example))
  metrics.update(learned_metrics(video, example["target_video"]))
  return metrics


def matched_epipolar_metrics(video: np.ndarray, clip: Mapping[str, np.ndarray], frames: np.ndarray,
                             method: str) -> dict[str, float]:
  """The model-independent epipolar proxy: matches between reference frame ``t`` and ``video`` frame ``t``.

  Args:
    video: ``(T, H, W, 3)`` uint8 target video (generated, a baseline's or the ground truth).
    clip: a clip with ``reference_video`` and both views' cameras (:func:`epipolar_metrics`).
    frames: video frames to score (the head's track frames ``0, k, 2k, …``).
    method: ``flow`` (``evaluation.camera.optical_flow_tracks`` on the frame pair) or ``sift``/``orb``
      (``evaluation.camera.match_feature_tracks``).

  Returns:
    ``epipolar_matched_sampson_px`` / ``epipolar_matched_below_2px`` (NaN without scored matches).
  """
  reference = np.asarray(clip["reference_video"])
  points_ref, points_tgt, rows = [], [], []
  for f in np.asarray(frames, np.int64):
    pair = np.stack([reference[f], video[f]])
    if method == "flow":
      tracks, visible = camera.optical_flow_tracks(pair)
    else:
      tracks, visible = camera.match_feature_tracks(pair, method=matcher(method))
    points_ref.append(tracks[0, visible[1]])
    points_tgt.append(tracks[1, visible[1]])
    rows.append(np.full(int(visible[1].sum()), f))
  rows = np.concatenate(rows)
  if rows.size == 0:
    return {"epipolar_matched_sampson_px": math.nan, "epipolar_matched_below_2px": math.nan}
  return epipolar_metrics(np.concatenate(points_ref)[:, None], np.concatenate(points_tgt)[:, None], None, clip, rows,
                          prefix="epipolar_matched")


def protocol_metrics(video: np.ndarray, clip: Mapping[str, np.ndarray], pose_method: str,
                     frames: np.ndarray, pose_file: str | None = None) -> dict[str, float]:
  """The metrics of one predicted target video in the ``--videos`` / ``--dycheck`` protocols.

  Args:
    video: ``(T, H, W, 3)`` uint8 prediction (a model's or a baseline's).
    clip: a protocol clip (:func:`video_clips`, :func:`dycheck_clips`).
    pose_method: the pose estimator (:data:`POSE_METHODS`); its matcher (:func:`matcher`) feeds the matched proxy.
    frames: the matched proxy's frames.
    pose_file: poses estimated elsewhere for this video (:func:`camera_metrics`).

  Returns:
    With a ground truth (``target_video``, DyCheck): ``psnr`` (dB) / ``ssim`` as DyCheck scores them, per frame
    and averaged over the ``present`` frames, within the clip's ``covisible`` masks where it has them
    (``fidelity.frame_mean_fidelity``: mPSNR / mSSIM); always ``m_rot_err_deg``, ``m_trans_err``, ``m_cam_mc``,
    ``pose_valid`` (:func:`camera_metrics`), the matched epipolar proxy and the learned metrics (``reference`` =
    the ground truth's present frames with ``mask=`` the co-visibility, else the reference video).
  """
  metrics = {}
  target = clip.get("target_video")
  if target is not None:
    present = np.asarray(clip["present"], bool)
    mask = None if "covisible" not in clip else np.asarray(clip["covisible"], bool)[present]
    metrics.update(fidelity.frame_mean_fidelity(video[present], target[present], mask))
  metrics.update(camera_metrics(video, clip, pose_method, pose_file))
  metrics.update(matched_epipolar_metrics(video, clip, frames, pose_method))
  if target is None:
    metrics.update(learned_metrics(video, clip["reference_video"]))
  else:
    metrics.update(learned_metrics(video[present], target[present], mask))
  return metrics
