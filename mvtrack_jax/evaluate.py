r"""Evaluates novel-view generation: scenes under several target trajectories, one metrics table.

Examples::

  python -m mvtrack_jax.evaluate --checkpoint out/demo --split test --out out/demo/evaluate
  # MVTrack4Gen vs the diffusion-only baseline trained with the same budget, side by side.
  python -m mvtrack_jax.evaluate --checkpoint out/mvtrack --checkpoint out/baseline \
      --names mvtrack4gen,diffusion_only --split test --out out/compare --steps 50
  # The paper's benchmarks: DAVIS (a folder of mp4s) x the 10 ReCamMaster trajectories, DyCheck iPhone.
  python -m mvtrack_jax.evaluate --checkpoint out/export --videos data/davis_val --pose_method sift \
      --out out/davis
  python -m mvtrack_jax.evaluate --checkpoint out/export --dycheck data/iphone --pose_method sift \
      --out out/iphone

Three protocols: the model's own ``--split`` (default, below), ``--videos DIR`` and ``--dycheck DIR``
(sections after it). All write the same files and use the same metric functions.

Protocol ``--split`` (default). For each scene ``i`` of ``--split`` (the dataset of the first
checkpoint's config), view 0 over frames ``0 … T−1`` (the model's ``config.data`` frames/resolution,
centre crop) is the reference, and for each ``--trajectories`` entry a ground-truth target view is built:

- a preset name (``pan_right``, ``zoom_in``, ``arc_left``, …; ``geometry.trajectories``): the
  target camera starts at the reference camera's frame-0 pose and follows the preset (default
  magnitudes; translate/arc pivot on the optical axis at the median depth of the reference's first
  frame); the **same scene and tracked points are re-rendered** from it
  (``data.synthetic.render_scene_views``), so only the built-in synthetic dataset supports presets;
- ``recorded``: the record's view 1 (its own camera path), for any dataset.

Every model generates the target view (Euler + CFG, ``--steps``/``--cfg``/``--seed``; all
trajectories of a scene in one batch) and, if it has a tracking head, tracks the clip's query
points (sampled among the ground-truth points visible in the reference view). Metrics per clip
(docs/design.md §4.6; the table's arrows say which way is better):

- ``psnr`` ↑ / ``ssim`` ↑: against the ground-truth target view (``evaluation.fidelity``).
- ``m_rot_err_deg`` ↓, ``m_trans_err`` ↓, ``m_cam_mc`` ↓: CamI2V errors (per-frame means) of the
  trajectory estimated from the *generated* video (``evaluation.camera``, ``--pose_method``: ``flow``
  Lucas–Kanade lattice tracks by default, ``sift``/``orb`` matches for large videos; the same
  estimator for every model, so it does not favour a model with a head) against the ground truth;
  ``pose_valid`` the fraction of frames the estimator could solve. The column ``gt_video`` runs the
  same estimator on the ground-truth target video: the floor the estimator itself reaches.
- head models only: ``aj_reference`` / ``aj_target`` ↑, ``delta_avg_target`` ↑,
  ``oa_target`` ↑: TAP-Vid metrics of the head's tracks ('strided' mode, 256×256 raster, points of
  each view scored separately, target view scored in the generated video against the ground-truth
  view's tracks); ``epipolar_sampson_px`` ↓ / ``epipolar_below_2px`` ↑: Sampson error of the
  head's reference↔target correspondences under the ground-truth cameras (``evaluation.epipolar``).
- learned metrics registered with ``evaluation.learned`` (MEt3R, VBench, … with user weights):
  ``<name>/<key>`` columns.

Model-free baselines (``--baselines``, on by default; computed once per clip, scored by the same
functions as the models): a number in the table only means something next to what a prediction
that needs **no model** reaches, so a model must beat these columns to have learnt anything.

- ``copy_reference``: the target video predicted as the reference video itself: the PSNR/SSIM of
  ignoring the target camera, and camera errors of the reference's own motion taken for the
  target trajectory.
- ``mean_colour``: every pixel of every frame is the reference video's mean colour (per RGB
  channel, over all ``T·H·W`` pixels, rounded to uint8): the PSNR/SSIM of predicting no structure;
  its camera errors are those of a video the pose estimator cannot track (what a failed estimate
  scores against this trajectory).
- ``zero_motion`` (tracking): every query point stays at its reference-view ``(x, y)`` in both
  views at every track frame, always visible; scored by the same TAP-Vid / epipolar code as the
  head at the same track frames (video frames ``0, k, 2k, …`` of the first head model's
  autoencoder, ``k`` its frames per latent frame). Its ``aj_reference`` is what assuming that
  nothing moves scores: a head must beat it to show it tracks anything.

The column names ``copy_reference``, ``mean_colour``, ``zero_motion`` and ``gt_video`` are reserved
(``--names`` may not use them); columns are ordered models…, baselines, ``gt_video``.

Writes ``--out/metrics.json`` (settings, ``baselines`` and ``zero_motion_frames``, per-clip rows
with ``"model"`` a label or a baseline name, means per model × trajectory and overall),
``--out/metrics.md`` (the summary and per-trajectory tables, models side by side) and
``--out/per_clip.csv``; with ``--save_videos``, ``videos/<model>/scene<i>_<trajectory>.mp4``
(reference | generated | ground truth). Means skip NaN (a metric a clip could not produce); ``n``
counts the clips of each mean.

Protocol ``--videos DIR`` (DAVIS: MVTrack4Gen, arXiv 2606.26087, reports DAVIS × ReCamMaster's 10
trajectories, after ReDirector's 50 DAVIS videos × 10 trajectories = 500 cases). Every ``*.mp4`` of
``DIR`` (sorted by name, not recursive; ``--max_scenes`` keeps the first N) is a reference video,
evaluated under each ``--trajectories`` preset (default :data:`VIDEO_TRAJECTORIES`: ``pan_right,
pan_left, tilt_up, tilt_down, zoom_in, zoom_out, translate_up, translate_down, arc_left, arc_right``;
``static`` allowed, ``recorded`` is not: there is no second view). Decisions:

- Reading: ``inference.clips.reference_record`` (the ``--reference PATH.mp4`` path of ``generate``), so both
  commands see an mp4 identically: a pinhole camera of ``--fov`` degrees horizontal field of view
  (default 60°, ``geometry.intrinsics_from_fov``, principal point at the image centre) that is
  **static** (identity pose at every frame: a monocular video carries no poses, and this is the
  reference camera the model is conditioned on). The whole file is decoded (DAVIS clips are at most
  ~100 frames); trim long videos beforehand.
- Window: frames ``0, s, 2s, …`` (``s`` = the model's ``config.data.frame_stride``) of
  :func:`protocol_num_frames` length: the model's ``config.data.num_frames`` (81 for the paper config)
  truncated to what the video has, rounded down to ``1 + k·m`` (``k`` = frames per latent frame of the
  models' autoencoders, their least common multiple; 4 for the Wan VAE, so a 70-frame video gives 69
  frames), at least ``1 + k``; resized to cover the model's resolution and centre-cropped as in
  ``generate`` (``pipeline.window_example``).
- Target cameras: ``inference.clips.trajectory_cameras`` (``geometry.trajectories.preset_trajectory``, default
  magnitudes, relative to the reference camera at frame 0, the reference's intrinsics); without depth
  the translate/arc pivot is the presets' default point 4 m in front of the camera (``generate``
  without ``--look_at_depth``).
- No ground-truth target exists, so no PSNR/SSIM/TAP-Vid. Reported per clip: camera metrics
  (``m_rot_err_deg``, ``m_trans_err``, ``m_cam_mc``, ``pose_valid``: ``--pose_method`` poses of the
  generated video against the requested trajectory, exactly as in ``--split``; use ``sift`` at full
  resolution), the epipolar proxy and the learned-metric hook (below).

Protocol ``--dycheck DIR`` (DyCheck iPhone, Gao et al. 2022; MVTrack4Gen's second benchmark, evaluated
as in ReDirector-style work: the first 81 frames as input, the provided poses of a held-out camera as
the target trajectory, PSNR/SSIM against its frames). ``DIR`` is
one sequence folder (holding ``dataset.json``) or a folder of them (``data.dycheck`` reads the layout
and converts the cameras: see its docstring for the conventions and their sources). Per sequence:

- Reference video: the training camera's first frames (its sorted time ids ``0, s, 2s, …``), of
  :func:`protocol_num_frames` length (81 for the paper config), read from ``rgb/<--dycheck_scale>x``
  (default the highest resolution present: the model's resize then loses least).
- One clip per validation camera (trajectory name ``camera<id>``): its frames at the same times are
  the ground-truth target video, its cameras made relative to the reference camera at frame 0
  (``pipeline.window_example``: ``c2w_rel = inv(c2w_ref[0]) @ c2w_val``, docs/design.md §3) are the
  target trajectory, with the validation camera's own intrinsics; both views are resized and cropped
  as in ``--split``. DyCheck dropped unsynchronised validation frames: a missing frame is filled with
  the camera's nearest present frame (image and camera; exact cameras for DyCheck's static validation
  rigs) and left out of PSNR/SSIM; a camera without any frame in the window is skipped (listed under
  ``skipped`` in ``metrics.json``).
- Reported: ``psnr``/``ssim`` (``evaluation.fidelity`` on the present frames; full frames, DyCheck's
  co-visibility masks are not applied), the camera metrics against the validation trajectory, the
  epipolar proxy, the learned hook; ``gt_video`` runs the pose estimator and (on its present frames)
  the matched epipolar proxy on the real validation video: the floor of both, and its sub-pixel
  epipolar error on real frames checks the camera conversion.

Shared by ``--videos`` and ``--dycheck``:

- Generation: every model generates each clip with ``--steps``/``--cfg`` and the **same seed**
  ``--seed``; ``--batch_size`` clips of a scene per batch (default 1: every clip starts from the same
  initial noise, ``normal(key(seed))``; with a larger batch clip ``b`` of a batch gets slice ``b`` of
  the batch's noise, so numbers depend on ``--batch_size``).
- Epipolar proxy (Sampson distance, ``evaluation.epipolar``, under the cameras given to the model,
  scored at the head's track frames ``0, k, 2k, …``; a camera pair without baseline, e.g. every frame
  of a pan or tilt and frame 0 of every preset, has no epipolar geometry and is excluded):
  ``epipolar_sampson_px`` / ``epipolar_below_2px`` from the head's reference↔target tracks of a
  ``--grid``² lattice of frame-0 query points (head models only, as in ``--split``), and, for **every**
  column (models with or without a head, baselines, ``gt_video``),
  ``epipolar_matched_sampson_px`` / ``epipolar_matched_below_2px`` from correspondences between
  reference frame ``t`` and generated frame ``t`` found by the ``--pose_method`` matcher
  (``flow``: Lucas–Kanade lattice tracks with a forward–backward check; ``sift``/``orb``: Lowe-ratio
  matches). The matched proxy is model-independent (like the pose estimator, it does not favour a
  model with a head) and is what a diffusion-only model is scored with instead of NaN. It is a
  necessary, not sufficient, test: a copy of the reference satisfies the epipolar geometry of any
  pure translation (``zoom_in``/``zoom_out``) exactly, hence the ``copy_reference`` column. For
  ``--videos`` the reference camera is the assumed static one: the unknown own motion of a real
  video's camera biases the proxy.
- Learned metrics (``evaluation.learned``; the command line also registers
  ``$MVTRACK_LEARNED_METRICS``): called with the generated video and, as ``reference``, the
  ground-truth target video where there is one (``--dycheck``, as ``--split``), else the reference
  video (``--videos``: MEt3R compares reference and generated frames).
- Baselines (``--baselines``): ``copy_reference`` and ``mean_colour`` scored like a model;
  ``zero_motion`` needs ground-truth tracks and is not run.
- Scenes are named by the video's file stem / the sequence folder's name; ``metrics.json`` has
  ``protocol``, the per-scene window (``scenes``: source, frames, present frames of each validation
  camera) and the settings; with ``--save_videos``, ``videos/<model>/<scene>_<trajectory>.mp4``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags
import numpy as np

from mvtrack_jax import cli
from mvtrack_jax import errors
from mvtrack_jax.data import video_io
from mvtrack_jax.geometry import trajectories
from mvtrack_jax.inference import clips as clips_lib

RECORDED = "recorded"
EXIT_SKIPPED = 3  # finished, metrics written, but some --videos could not be used (listed on stderr)
DEFAULT_TRAJECTORIES = (RECORDED, "pan_right", "zoom_in", "arc_left", "translate_up")
# ReCamMaster's ten preset trajectories: the --videos (DAVIS) protocol's default.
VIDEO_TRAJECTORIES = tuple(name for name in trajectories.TRAJECTORY_NAMES if name != "static")
PROTOCOLS = ("split", "videos", "dycheck")
VIDEO_EXTENSION = ".mp4"
# Data settings two models must share to be compared on the same clips.
SPLIT_DATA_KEYS = ("dataset", "synthetic", "data_dir", "num_frames", "frame_stride", "height", "width")
PROTOCOL_DATA_KEYS = ("num_frames", "frame_stride", "height", "width")
GT_VIDEO = "gt_video"
COPY_REFERENCE = "copy_reference"
MEAN_COLOUR = "mean_colour"
ZERO_MOTION = "zero_motion"
VIDEO_BASELINES = (COPY_REFERENCE, MEAN_COLOUR)  # predictions of the target video
BASELINES = VIDEO_BASELINES + (ZERO_MOTION,)  # column order after the models
RESERVED_NAMES = BASELINES + (GT_VIDEO,)
# Metric → True when higher is better (table arrows; unknown/learned metrics get no arrow).
HIGHER_IS_BETTER = {
    "psnr": True, "ssim": True, "m_rot_err_deg": False, "m_trans_err": False, "m_cam_mc": False, "pose_valid": True,
    "aj_reference": True, "aj_target": True, "delta_avg_target": True, "oa_target": True,
    "epipolar_sampson_px": False, "epipolar_below_2px": True,
    "epipolar_matched_sampson_px": False, "epipolar_matched_below_2px": True,
}

FLAGS = flags.FLAGS


# ------------------------------------------------------------------------------------------------
# Ground-truth clips.


def _window_config(model_config):
  from mvtrack_jax.data import sources  # pylint: disable=g-import-not-at-top
  return sources.pipeline_config(model_config.data, 1, train=False)  # centre crops, the model's sizes


def _preset_target_record(record: Mapping[str, np.ndarray], seed: int, sizes: Mapping[str, int], name: str,
                          frames: np.ndarray) -> dict[str, np.ndarray]:
  """A 2-view record: view 0 = the reference (view 0), view 1 = the preset trajectory, re-rendered.

  The preset starts at the reference camera's pose at ``frames[0]`` (default magnitudes) and pivots
  on the optical axis at the median depth of that frame; ``data.synthetic.render_novel_view`` (shared
  with ``generate``) renders it from poses relative to that camera.
  """
  from mvtrack_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.geometry import cameras as geometry  # pylint: disable=g-import-not-at-top
  ref_c2w = geometry.invert_rigid(np.asarray(record["world_to_camera"][0], np.float64))  # (T_rec, 4, 4)
  depth = np.asarray(record["depth"][0, frames[0]], np.float64) if "depth" in record else None
  distance = float(np.median(depth[np.isfinite(depth) & (depth > 0)])) if depth is not None else None
  look_at = None if not distance else np.array([0.0, 0.0, distance])  # in the start camera's frame
  path = trajectories.preset_trajectory(name, frames.size, look_at_point=look_at)  # relative to the start camera
  return synthetic.render_novel_view(seed, record["intrinsics"][0], ref_c2w, frames, path, **sizes).record


def scene_clips(model_config, split: str, index: int, trajectory_names: Sequence[str]) -> list[dict[str, np.ndarray]]:
  """The evaluation clips of scene ``index``: one pipeline-layout example per trajectory (module doc).

  Raises:
    ValueError: a preset trajectory on a non-synthetic dataset, an unknown trajectory name, or a
      ``recorded`` trajectory on a single-view record.
  """
  from mvtrack_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.data import sources  # pylint: disable=g-import-not-at-top
  data = model_config.data
  source = sources.data_source(data, split)
  record = source[index]
  pcfg = _window_config(model_config)
  frames = np.arange(pcfg.num_frames) * pcfg.frame_stride
  clips = []
  for name in trajectory_names:
    rng = np.random.default_rng([index, 7])  # the same query points for every model
    if name == RECORDED:
      if np.shape(record["video"])[0] < 2:
        raise ValueError(f"scene {index} of split {split!r} has one view: no 'recorded' target view")
      clip_record = record
    elif name in trajectories.TRAJECTORY_NAMES:
      if data.dataset != "synthetic":
        raise errors.UserError(f"--trajectories {name}: preset trajectories need ground truth rendered from the scene, "
                               f"which only the synthetic dataset has (config.data.dataset={data.dataset!r}); "
                               f"use '{RECORDED}'")
      from mvtrack_jax.data import synthetic_dataset  # pylint: disable=g-import-not-at-top
      sizes = synthetic_dataset.record_sizes(data.synthetic)
      clip_record = _preset_target_record(record, synthetic_dataset.scene_seed(split, index), sizes, name, frames)
    else:
      raise errors.UserError(f"--trajectories: unknown {name!r}; expected '{RECORDED}' or one of "
                             f"{', '.join(trajectories.TRAJECTORY_NAMES)}")
    example, _ = pipeline.window_example(clip_record, pcfg, views=(0, 1), start=0, rng=rng, train=False,
                                         source=f"{split}[{index}]/{name}")
    clips.append(example)
  return clips


# ------------------------------------------------------------------------------------------------
# Metrics of one clip.


def camera_metrics(video: np.ndarray, example: Mapping[str, np.ndarray], method: str) -> dict[str, float]:
  """CamI2V errors of the trajectory estimated from ``video`` against the clip's target cameras."""
  from mvtrack_jax.evaluation import camera  # pylint: disable=g-import-not-at-top
  try:
    est = camera.estimate_poses_from_video(video, example["target_intrinsics"], method=method)
  except (ValueError, np.linalg.LinAlgError):
    return {"m_rot_err_deg": math.nan, "m_trans_err": math.nan, "m_cam_mc": math.nan, "pose_valid": 0.0}
  errors = camera.camera_errors(example["target_cam_to_world"], est.cam_to_world)
  return {"m_rot_err_deg": errors["m_rot_err_deg"], "m_trans_err": errors["m_trans_err"],
          "m_cam_mc": errors["m_cam_mc"], "pose_valid": float(np.mean(est.valid))}


def tracking_metrics(example: Mapping[str, np.ndarray], tracked: Mapping[str, np.ndarray]) -> dict[str, float]:
  """TAP-Vid metrics per view and the epipolar proxy of the head's tracks (module docstring)."""
  from mvtrack_jax.evaluation import tapvid  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.models import autoencoder as ae_lib  # pylint: disable=g-import-not-at-top
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
  from mvtrack_jax.evaluation import epipolar  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.geometry import cameras as geometry  # pylint: disable=g-import-not-at-top
  frames = np.asarray(frames, np.int64)
  w2c = lambda key: geometry.invert_rigid(np.asarray(example[key], np.float64)[frames])
  epi = epipolar.epipolar_consistency(
      points_ref, points_tgt, visible, np.asarray(example["reference_intrinsics"], np.float64)[frames],
      w2c("reference_cam_to_world"), np.asarray(example["target_intrinsics"], np.float64)[frames],
      w2c("target_cam_to_world"))
  return {f"{prefix}_sampson_px": float(epi["mean_sampson_px"]), f"{prefix}_below_2px": float(epi["frac_below_2px"])}


def learned_metrics(generated: np.ndarray, target: np.ndarray) -> dict[str, float]:
  """Every metric registered in ``evaluation.learned`` (none unless a user registered one)."""
  from mvtrack_jax.evaluation import learned  # pylint: disable=g-import-not-at-top
  out = {}
  for name in learned.available_learned_metrics():
    for key, value in learned.compute_learned_metric(name, generated, reference=target).items():
      out[f"{name}/{key}"] = float(value)
  return out


def prediction_metrics(video: np.ndarray, example: Mapping[str, np.ndarray], pose_method: str) -> dict[str, float]:
  """The metrics of one predicted target video (a model's or a baseline's): fidelity, camera, learned.

  Args:
    video: ``(T, H, W, 3)`` uint8 prediction of ``example["target_video"]``.
    example: one clip in the pipeline layout (``target_video``, ``target_intrinsics``,
      ``target_cam_to_world``).
    pose_method: the ``camera_metrics`` pose estimator (``flow``, ``sift`` or ``orb``).

  Returns:
    ``psnr`` (dB, +inf when every frame is exact; ``fidelity.video_fidelity``), ``ssim``,
    ``m_rot_err_deg``, ``m_trans_err``, ``m_cam_mc``, ``pose_valid`` and the learned metrics.

  Raises:
    ValueError: ``video`` and the ground truth differ in shape or dtype (``fidelity``).
  """
  from mvtrack_jax.evaluation import fidelity  # pylint: disable=g-import-not-at-top
  metrics = fidelity.video_fidelity(video, example["target_video"])
  metrics.update(camera_metrics(video, example, pose_method))
  metrics.update(learned_metrics(video, example["target_video"]))
  return metrics


# ------------------------------------------------------------------------------------------------
# Model-free baselines (module docstring).


def baseline_videos(clip: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The target-video predictions that need no model: ``{copy_reference, mean_colour}``.

  Args:
    clip: one clip with ``reference_video`` ``(T, H, W, 3)`` uint8.

  Returns:
    ``copy_reference``: the reference video (a copy); ``mean_colour``: ``(T, H, W, 3)`` uint8, every
    pixel the reference's mean colour (mean over all ``T·H·W`` pixels per RGB channel, rounded half
    to even as ``np.round`` does).

  Raises:
    ValueError: ``clip`` has no ``reference_video`` or it is not ``(T, H, W, 3)`` uint8.
  """
  if "reference_video" not in clip:
    raise ValueError(f"baseline_videos: clip lacks 'reference_video' (keys {sorted(clip)})")
  video = np.asarray(clip["reference_video"])
  if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8 or video.shape[0] == 0:
    raise ValueError(f"baseline_videos: reference_video is {video.shape} {video.dtype}, expected (T, H, W, 3) uint8 "
                     "with T >= 1")
  colour = np.round(video.reshape(-1, 3).mean(axis=0, dtype=np.float64)).astype(np.uint8)
  return {COPY_REFERENCE: video.copy(), MEAN_COLOUR: np.broadcast_to(colour, video.shape).copy()}


def zero_motion_tracks(example: Mapping[str, np.ndarray], frames: np.ndarray) -> dict[str, np.ndarray]:
  """The ``zero_motion`` tracking baseline: every query point stays put and is always visible.

  Args:
    example: one clip with ``query_points`` ``(N, 3)`` ``(t, x, y)`` (video frame; pixels, corner
      origin, of the reference view). ``track_mask`` is not applied here (``tracking_metrics``
      scores only the real points).
    frames: ``(F,)`` increasing non-negative video frames of the track frames, the ``frames`` of a
      head model's ``NovelViewGenerator.track`` (``0, k, 2k, …``).

  Returns:
    ``{"tracks": (2, F, N, 2) float32, "visible": (2, F, N) bool, "frames": (F,) int32}``, view 0 =
    reference, 1 = target: the query's ``(x, y)`` at every frame of both views, all True — the
    layout ``tracking_metrics`` takes.

  Raises:
    ValueError: ``query_points`` missing or not ``(N, 3)``, or ``frames`` not a non-empty
      increasing 1-D array of non-negative integers (below ``T`` when the clip has a
      ``reference_video``).
  """
  if "query_points" not in example:
    raise ValueError(f"zero_motion_tracks: example lacks 'query_points' (keys {sorted(example)})")
  query = np.asarray(example["query_points"], np.float32)
  if query.ndim != 2 or query.shape[-1] != 3:
    raise ValueError(f"zero_motion_tracks: query_points has shape {query.shape}, expected (N, 3) (t, x, y)")
  frames_in = np.asarray(frames)
  bad = (frames_in.ndim != 1 or frames_in.size == 0 or not np.all(np.mod(frames_in, 1) == 0)
         or np.any(frames_in < 0) or np.any(np.diff(frames_in) <= 0))
  num_frames = np.shape(example["reference_video"])[0] if "reference_video" in example else None
  if bad or (num_frames is not None and frames_in.max() >= num_frames):
    raise ValueError(f"zero_motion_tracks: frames={frames_in.tolist()}, expected a non-empty increasing 1-D array of "
                     f"video frames >= 0" + (f" and < {num_frames}" if num_frames is not None else ""))
  f, n = frames_in.size, query.shape[0]
  tracks = np.broadcast_to(query[:, 1:3], (2, f, n, 2)).copy()
  return {"tracks": tracks, "visible": np.ones((2, f, n), bool), "frames": frames_in.astype(np.int32)}


def baseline_rows(example: Mapping[str, np.ndarray], scene: int, trajectory: str, frames: np.ndarray | None,
                  pose_method: str) -> list[dict[str, Any]]:
  """The ``metrics.json`` rows of the three baselines on one clip (``zero_motion`` only with tracks).

  Args:
    example: one clip in the pipeline layout.
    scene, trajectory: row labels.
    frames: track frames for ``zero_motion`` (see :func:`zero_motion_tracks`); None skips it.
    pose_method: as :func:`prediction_metrics`.

  Returns:
    ``[{"model", "scene", "trajectory", "metrics"}, …]`` in :data:`BASELINES` order.
  """
  rows = [{"model": name, "scene": scene, "trajectory": trajectory,
           "metrics": prediction_metrics(video, example, pose_method)}
          for name, video in baseline_videos(example).items()]
  if frames is not None and np.asarray(example["track_mask"], bool).any():
    rows.append({"model": ZERO_MOTION, "scene": scene, "trajectory": trajectory,
                 "metrics": tracking_metrics(example, zero_motion_tracks(example, frames))})
  return rows


# ------------------------------------------------------------------------------------------------
# The --videos and --dycheck protocols (module docstring).


def protocol_num_frames(available: int, model_frames: int, frame_stride: int, frames_per_latent: int,
                        source: str = "<video>") -> int:
  """Window length ``T`` of a protocol clip: the model's frame count, truncated to the source, ``1 + k·m``.

  Args:
    available: frames (time steps) the source has.
    model_frames: the model's ``config.data.num_frames`` (81 for the paper config).
    frame_stride: source frames between consecutive window frames (``config.data.frame_stride``).
    frames_per_latent: ``k``, video frames per latent frame (4 for the Wan VAE, 1 for pixel models).
    source: named in the error.

  Returns:
    ``T = 1 + k·⌊(min(model_frames, ⌊(available − 1)/stride⌋ + 1) − 1)/k⌋`` (e.g. 81 → 81 for a
    100-frame video, 69 for a 70-frame one, with ``k = 4``).

  Raises:
    ValueError: ``T < 1 + k``: the source has too few frames for two latent frames.
  """
  k = int(frames_per_latent)
  fits = (int(available) - 1) // int(frame_stride) + 1 if available > 0 else 0
  t = min(int(model_frames), fits)
  t = 1 + k * ((t - 1) // k) if t >= 1 else 0
  if t < 1 + k:
    raise ValueError(f"{source}: {available} frame(s); a clip needs at least {1 + k} frames at stride {frame_stride} "
                     f"(1 + k with k = {k} frames per latent frame)")
  return t


def list_videos(directory: str) -> list[str]:
  """The ``*.mp4`` files of ``directory`` (not recursive), sorted by name.

  Raises:
    FileNotFoundError: ``directory`` is not a directory or holds no mp4 file.
  """
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"--videos {directory}: not a directory")
  paths = sorted(os.path.join(directory, n) for n in os.listdir(directory)
                 if n.lower().endswith(VIDEO_EXTENSION) and os.path.isfile(os.path.join(directory, n)))
  if not paths:
    raise FileNotFoundError(f"--videos {directory}: no {VIDEO_EXTENSION} files")
  return paths


def _protocol_clip(example: Mapping[str, np.ndarray], target_cam_to_world: np.ndarray, target_intrinsics: np.ndarray,
                   query_points: np.ndarray, target_video: np.ndarray | None = None,
                   present: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """A protocol clip: the reference view of ``example``, the target cameras, optional ground truth."""
  clip = {"reference_video": example["reference_video"],
          "reference_intrinsics": np.asarray(example["reference_intrinsics"], np.float32),
          "reference_cam_to_world": np.asarray(example["reference_cam_to_world"], np.float32),
          "target_intrinsics": np.asarray(target_intrinsics, np.float32),
          "target_cam_to_world": np.asarray(target_cam_to_world, np.float32),
          "query_points": np.asarray(query_points, np.float32)}
  if target_video is not None:
    clip["target_video"] = target_video
    clip["present"] = np.ones(target_video.shape[0], bool) if present is None else np.asarray(present, bool)
  return clip


def video_clips(path: str, model_config, trajectory_names: Sequence[str], *, frames_per_latent: int,
                fov: float = 60.0, grid: int = 8) -> tuple[list[dict[str, np.ndarray]], dict[str, Any]]:
  """The ``--videos`` clips of one mp4: one per preset trajectory (module docstring).

  Args:
    path: the mp4 file.
    model_config: the model's config (``data`` block: frames, stride, resolution).
    trajectory_names: presets of ``geometry.trajectories.TRAJECTORY_NAMES``.
    frames_per_latent: ``k`` of :func:`protocol_num_frames`.
    fov: horizontal field of view (degrees) of the assumed pinhole camera.
    grid: the head's query points: a ``grid × grid`` lattice at frame 0 (``inference.clips.grid_query_points``).

  Returns:
    ``(clips, info)``: per trajectory a clip with ``reference_video`` ``(T, H, W, 3)`` uint8,
    ``reference_intrinsics``/``target_intrinsics`` ``(T, 3, 3)`` float32 pixels of the model's
    resolution, ``reference_cam_to_world`` (identity: static) and ``target_cam_to_world`` ``(T, 4, 4)``
    float32 OpenCV poses relative to the reference camera at frame 0, ``query_points`` ``(grid², 3)``
    ``(t, x, y)``; no target video. ``info``: ``source``, ``available_frames``, ``num_frames``,
    ``frame_stride``, ``frames`` (video frame indices).

  Raises:
    ValueError: an unknown trajectory or a video too short (:func:`protocol_num_frames`);
    video_io.VideoError: an unreadable file.
  """
  from mvtrack_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  base = _window_config(model_config)
  record, *_ = clips_lib.reference_record(path, model_config, fov=fov, size=(base.height, base.width))
  available = int(record["video"].shape[1])
  t = protocol_num_frames(available, base.num_frames, base.frame_stride, frames_per_latent, path)
  pcfg = dataclasses.replace(base, num_frames=t, num_query_points=0)
  example, meta = pipeline.window_example(record, pcfg, views=(0, 1), start=0, train=False, source=path)
  queries = clips_lib.grid_query_points(pcfg.height, pcfg.width, grid)
  clips = []
  for name in trajectory_names:
    c2w, k, _ = clips_lib.trajectory_cameras(name, t, example["reference_intrinsics"])
    clips.append(_protocol_clip(example, c2w, k, queries))
  info = {"source": os.path.abspath(path), "available_frames": available, "num_frames": t,
          "frame_stride": pcfg.frame_stride, "frames": [int(f) for f in meta["frames"]]}
  return clips, info


def dycheck_clips(sequence, model_config, *, frames_per_latent: int, grid: int = 8
                  ) -> tuple[list[tuple[str, dict[str, np.ndarray]]], dict[str, Any]]:
  """The ``--dycheck`` clips of one sequence: one per validation camera with a frame in the window.

  Args:
    sequence: ``data.dycheck.open_sequence``'s index.
    model_config: the model's config (``data`` block).
    frames_per_latent: ``k`` of :func:`protocol_num_frames`.
    grid: the head's query points (as :func:`video_clips`).

  Returns:
    ``(clips, info)``: ``[("camera<id>", clip)]`` with :func:`video_clips`' keys plus the ground truth
    ``target_video`` ``(T, H, W, 3)`` uint8 and ``present`` ``(T,)`` bool (False: a frame DyCheck
    dropped, filled with the nearest one); the reference cameras are the training camera's, the target
    cameras the validation camera's, both relative to the reference camera at frame 0. ``info``:
    ``source``, ``scale``, ``available_frames``, ``num_frames``, ``frame_stride``, ``times`` (DyCheck
    time ids), ``reference_camera``, ``cameras`` (per clip: ``camera_id``, ``present_frames``,
    ``frame_names``) and ``skipped_cameras`` (no frame in the window).

  Raises:
    ValueError: a sequence too short (:func:`protocol_num_frames`) or without validation camera;
    schema.RecordError: bad files (``data.dycheck``).
  """
  from mvtrack_jax.data import dycheck as dycheck_lib  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  if not sequence.validation_cameras:
    raise errors.UserError(f"--dycheck {sequence.path}: dataset.json has no val_ids (no held-out camera, no ground "
                           "truth)")
  base = _window_config(model_config)
  available = int(sequence.reference_times.size)
  t = protocol_num_frames(available, base.num_frames, base.frame_stride, frames_per_latent, sequence.path)
  times = sequence.reference_times[np.arange(t) * base.frame_stride]
  cameras = [c for c in sequence.validation_cameras if sequence.present(c, times).any()]
  info = {"source": os.path.abspath(sequence.path), "scale": sequence.scale, "available_frames": available,
          "num_frames": t, "frame_stride": base.frame_stride, "times": [int(x) for x in times],
          "reference_camera": sequence.reference_camera, "cameras": {},
          "skipped_cameras": [c for c in sequence.validation_cameras if c not in cameras]}
  if not cameras:
    return [], info
  data = dycheck_lib.read_clip(sequence, times, cameras)
  pcfg = dataclasses.replace(base, num_frames=t, frame_stride=1, num_query_points=0)
  queries = clips_lib.grid_query_points(pcfg.height, pcfg.width, grid)
  clips = []
  for view, camera in enumerate(cameras, start=1):
    example, _ = pipeline.window_example(data.record, pcfg, views=(0, view), start=0, train=False,
                                         source=f"{sequence.path} (camera {camera})")
    name = f"camera{camera}"
    clips.append((name, _protocol_clip(example, example["target_cam_to_world"], example["target_intrinsics"], queries,
                                       target_video=example["target_video"], present=data.present[view])))
    info["cameras"][name] = {"camera_id": camera, "present_frames": int(data.present[view].sum()),
                             "frame_names": list(data.frame_names[view])}
  return clips, info


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
  from mvtrack_jax.evaluation import camera  # pylint: disable=g-import-not-at-top
  reference = np.asarray(clip["reference_video"])
  points_ref, points_tgt, rows = [], [], []
  for f in np.asarray(frames, np.int64):
    pair = np.stack([reference[f], video[f]])
    if method == "flow":
      tracks, visible = camera.optical_flow_tracks(pair)
    else:
      tracks, visible = camera.match_feature_tracks(pair, method=method)
    points_ref.append(tracks[0, visible[1]])
    points_tgt.append(tracks[1, visible[1]])
    rows.append(np.full(int(visible[1].sum()), f))
  rows = np.concatenate(rows)
  if rows.size == 0:
    return {"epipolar_matched_sampson_px": math.nan, "epipolar_matched_below_2px": math.nan}
  return epipolar_metrics(np.concatenate(points_ref)[:, None], np.concatenate(points_tgt)[:, None], None, clip, rows,
                          prefix="epipolar_matched")


def protocol_metrics(video: np.ndarray, clip: Mapping[str, np.ndarray], pose_method: str,
                     frames: np.ndarray) -> dict[str, float]:
  """The metrics of one predicted target video in the ``--videos`` / ``--dycheck`` protocols.

  Args:
    video: ``(T, H, W, 3)`` uint8 prediction (a model's or a baseline's).
    clip: a protocol clip (:func:`video_clips`, :func:`dycheck_clips`).
    pose_method: ``flow``, ``sift`` or ``orb``: the pose estimator's and the matched proxy's matcher.
    frames: the matched proxy's frames.

  Returns:
    With a ground truth (``target_video``): ``psnr`` (dB) / ``ssim`` over its ``present`` frames; always
    ``m_rot_err_deg``, ``m_trans_err``, ``m_cam_mc``, ``pose_valid`` (:func:`camera_metrics`), the
    matched epipolar proxy and the learned metrics (``reference`` = the ground truth, else the
    reference video).
  """
  from mvtrack_jax.evaluation import fidelity  # pylint: disable=g-import-not-at-top
  metrics = {}
  target = clip.get("target_video")
  if target is not None:
    present = np.asarray(clip["present"], bool)
    metrics.update(fidelity.video_fidelity(video[present], target[present]))
  metrics.update(camera_metrics(video, clip, pose_method))
  metrics.update(matched_epipolar_metrics(video, clip, frames, pose_method))
  metrics.update(learned_metrics(video, clip["reference_video"] if target is None else target))
  return metrics


def _load_models(out: str, checkpoints: Sequence[str], names: Sequence[str] | None, data_keys: Sequence[str]):
  """``(models, labels)``: the loaded checkpoints and their column names, checked (see :func:`run`),
  after checking that ``--out`` can be written (so a bad one fails before any model is loaded)."""
  from mvtrack_jax.inference import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  if not checkpoints:
    raise ValueError("evaluate: give at least one --checkpoint")
  video_io.check_output_dir(out)
  models = [checkpoint_lib.load_model(c) for c in checkpoints]
  labels = list(names) if names else [m.name for m in models]
  if len(labels) != len(models) or len(set(labels)) != len(labels):
    raise errors.UserError(f"--names {labels}: need {len(models)} distinct names, one per --checkpoint")
  reserved = [label for label in labels if label in RESERVED_NAMES]
  if reserved:
    raise errors.UserError(f"--names {labels}: {reserved} reserved for the baseline / ground-truth columns "
                           f"({', '.join(RESERVED_NAMES)}); choose other names")
  data0 = models[0].config.data
  for model in models[1:]:
    for key in data_keys:
      if model.config.data.get(key) != data0.get(key):
        raise ValueError(f"evaluate: {model.source} has data.{key}={model.config.data.get(key)!r} but "
                         f"{models[0].source} has {data0.get(key)!r}; compare models trained on the same data")
  return models, labels


def _protocol_scene_rows(scene: str, clips: Sequence[tuple[str, Mapping[str, np.ndarray]]], models, labels, generators,
                         sampling, *, pose_method: str, batch_size: int, frames_per_latent: int, baselines: bool,
                         save_videos: bool, out: str) -> list[dict[str, Any]]:
  """The ``metrics.json`` rows of one protocol scene: ground truth, baselines, then every model.

  ``gt_video`` (clips with a ``target_video``): the pose estimator on the ground truth and the matched
  epipolar proxy on its *present* track frames (a filled frame shows another instant than the
  reference frame it would be matched with). Models generate ``batch_size`` clips per batch; head
  models add the head's epipolar proxy (:func:`epipolar_metrics` of its reference↔target tracks).
  """
  from mvtrack_jax.data import preview  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.inference import novel_view  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.models import autoencoder as ae_lib  # pylint: disable=g-import-not-at-top
  num_frames = clips[0][1]["reference_video"].shape[0]
  frames = ae_lib.latent_frame_indices(num_frames, frames_per_latent)
  rows = []
  for name, clip in clips:
    if "target_video" in clip:
      metrics = camera_metrics(clip["target_video"], clip, pose_method)
      real = frames[np.asarray(clip["present"], bool)[frames]]
      metrics.update(matched_epipolar_metrics(clip["target_video"], clip, real, pose_method))
      rows.append({"model": GT_VIDEO, "scene": scene, "trajectory": name, "metrics": metrics})
    if baselines:
      rows.extend({"model": baseline, "scene": scene, "trajectory": name,
                   "metrics": protocol_metrics(video, clip, pose_method, frames)}
                  for baseline, video in baseline_videos(clip).items())
  keys = novel_view.CLIP_KEYS + ("query_points",)
  for label, model, generator in zip(labels, models, generators):
    for i in range(0, len(clips), batch_size):
      chunk = clips[i:i + batch_size]
      batch = {key: np.stack([clip[key] for _, clip in chunk]) for key in keys}
      generated = generator.generate(batch, sampling)["target_video"]
      tracked = generator.track(batch, generated, sampling) if model.head is not None else None
      for b, (name, clip) in enumerate(chunk):
        metrics = protocol_metrics(generated[b], clip, pose_method, frames)
        if tracked is not None:
          tracks, visible = tracked["tracks"][b], tracked["visible"][b]
          metrics.update(epipolar_metrics(tracks[0], tracks[1], visible[0] & visible[1], clip, tracked["frames"]))
        rows.append({"model": label, "scene": scene, "trajectory": name, "metrics": metrics})
        if save_videos:
          panels = [clip["reference_video"], generated[b]] + ([clip["target_video"]] if "target_video" in clip else [])
          scale = preview.upscale_factor(generated.shape[2], 128)
          video_io.write_video(os.path.join(out, "videos", label, f"{scene}_{name}.mp4"),
                               preview.side_by_side_video(np.stack(panels), scale))
  return rows


def _run_protocol(protocol: str, models, labels, out: str, scenes, num_scenes: int, settings: Mapping[str, Any], *,
                  steps: int, cfg: float, seed: int, pose_method: str, grid: int, batch_size: int,
                  frames_per_latent: int, save_videos: bool, baselines: bool, progress: bool,
                  started: float) -> dict[str, Any]:
  """Evaluates protocol scenes and writes ``metrics.json``, ``metrics.md`` and ``per_clip.csv`` into ``out``.

  Args:
    protocol: ``"videos"`` or ``"dycheck"`` (``metrics.json`` ``protocol``; the table header).
    models, labels: :func:`_load_models`' loaded models and column names.
    out: output directory.
    scenes: iterable of ``(scene name, [(trajectory name, clip)], info)``, consumed lazily (one scene's
      frames in memory at a time); ``info`` is stored under ``scenes`` in ``metrics.json``; a scene
      without clips (every DyCheck validation camera skipped) adds no row.
    num_scenes: for the progress bar.
    settings: protocol settings merged into ``metrics.json`` (``videos``/``fov``, ``dycheck``/``scales``).
    steps, cfg, seed: sampler settings; grid, batch_size, frames_per_latent, pose_method: as
      :func:`run_videos`; save_videos, baselines, progress: as :func:`run`; started: ``time.time()``
      at the start of the command.

  Returns:
    The ``metrics.json`` record.

  Raises:
    ValueError: two scenes with one name, or no clip at all.
  """
  from mvtrack_jax.inference import novel_view  # pylint: disable=g-import-not-at-top
  generators = [novel_view.NovelViewGenerator(m, image_encoder=novel_view.image_encoder_for(m)) for m in models]
  sampling = novel_view.SamplingConfig(num_steps=steps, guidance_scale=cfg, seed=seed)
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    scenes = tqdm(scenes, total=num_scenes, desc="scenes", unit="scene")
  rows, infos, order = [], {}, []
  for scene, clips, info in scenes:
    if scene in infos:
      raise ValueError(f"evaluate --{protocol}: two scenes are named {scene!r} ({infos[scene]['source']}, "
                       f"{info['source']}); rename one")
    infos[scene] = info
    if not clips:
      continue
    rows.extend(_protocol_scene_rows(scene, clips, models, labels, generators, sampling, pose_method=pose_method,
                                     batch_size=batch_size, frames_per_latent=frames_per_latent,
                                     baselines=baselines, save_videos=save_videos, out=out))
    order.extend(name for name, _ in clips if name not in order)
  if not rows:
    raise ValueError(f"evaluate --{protocol}: nothing to evaluate: no scene has a clip "
                     f"({ {k: v.get('skipped_cameras') for k, v in infos.items()} })")
  summary = summarize(rows)
  columns = labels + [c for c in VIDEO_BASELINES if c in summary] + ([GT_VIDEO] if GT_VIDEO in summary else [])
  data = models[0].config.data
  record = {
      "protocol": protocol,
      "checkpoints": {label: {"source": m.source, "step": m.step} for label, m in zip(labels, models)},
      "baselines": [c for c in VIDEO_BASELINES if c in summary], **settings,
      "num_scenes": len(infos), "scenes": infos, "trajectories": order,
      "skipped": {k: v["skipped_cameras"] for k, v in infos.items() if v.get("skipped_cameras")},
      "unreadable": {k: v["error"] for k, v in infos.items() if v.get("error")},
      "steps": steps, "guidance_scale": cfg, "seed": seed, "batch_size": batch_size, "pose_method": pose_method,
      "grid": grid, "frames_per_latent": frames_per_latent,
      "resolution": [int(data.num_frames), int(data.height), int(data.width)],
      "seconds": round(time.time() - started, 1), "summary": summary, "rows": rows}
  what = {"videos": f"`{settings.get('videos')}`: {len(infos)} videos × {len(order)} trajectories (static "
                    f"{settings.get('fov')}° pinhole reference camera)",
          "dycheck": f"DyCheck `{settings.get('dycheck')}`: {len(infos)} sequences, one clip per validation camera "
                     f"(rgb scale {settings.get('scales')})"}[protocol]
  header = (f"# Novel-view evaluation, {what}\n\n"
            f"{steps} Euler steps, CFG {cfg}, seed {seed} (batch {batch_size}), poses and matched epipolar proxy "
            f"from `{pose_method}` correspondences; models: "
            + ", ".join(f"`{label}` = {m.source} (step {m.step})" for label, m in zip(labels, models))
            + (f"; baselines without a model: `{COPY_REFERENCE}` = the reference video as the prediction, "
               f"`{MEAN_COLOUR}` = its mean colour everywhere" if baselines else "")
            + (f"; `{GT_VIDEO}` = the pose estimator and matched proxy on the ground-truth target video"
               if GT_VIDEO in columns else "") + ".")
  if record["unreadable"]:
    header += "\n\nSkipped, could not be used: " + "; ".join(f"`{k}` ({v})" for k, v in record["unreadable"].items())
  _write_outputs(out, record, columns, order, header)
  return record


def run_videos(checkpoints: Sequence[str], out: str, videos: str, *, names: Sequence[str] | None = None,
               trajectory_names: Sequence[str] = VIDEO_TRAJECTORIES, max_scenes: int | None = None, steps: int = 50,
               cfg: float = 5.0, seed: int = 0, pose_method: str = "flow", fov: float = 60.0, grid: int = 8,
               batch_size: int = 1, save_videos: bool = False, baselines: bool = True,
               progress: bool = True) -> dict[str, Any]:
  """The ``--videos DIR`` protocol (module docstring); returns the ``metrics.json`` record.

  A video that cannot be used (unreadable, corrupt, empty, shorter than one latent frame) is skipped, its
  cause recorded under ``unreadable`` in ``metrics.json`` and listed in ``metrics.md``; the others are
  evaluated as usual (the command then exits with ``EXIT_SKIPPED``).

  Raises:
    ValueError: a trajectory that is not a preset, bad ``--names``/checkpoints (:func:`run`), a
      non-positive ``batch_size``/``grid``, a video too short; FileNotFoundError: no mp4 in ``videos``.
  """
  started = time.time()
  trajectory_names = list(trajectory_names)
  bad = [n for n in trajectory_names if n not in trajectories.TRAJECTORY_NAMES]
  if bad or not trajectory_names:
    raise errors.UserError(f"--trajectories {trajectory_names}: --videos takes preset trajectories "
                           f"({', '.join(trajectories.TRAJECTORY_NAMES)}); {bad} are not presets"
                           + (f" ('{RECORDED}' needs a second recorded view)" if RECORDED in bad else ""))
  if batch_size < 1 or grid < 1:
    raise ValueError(f"evaluate: --batch_size and --grid must be >= 1, got {batch_size}, {grid}")
  paths = list_videos(videos)[:max_scenes]
  models, labels = _load_models(out, checkpoints, names, PROTOCOL_DATA_KEYS)
  k = math.lcm(*(m.autoencoder.temporal_factor for m in models))

  def scenes():
    for path in paths:
      name = os.path.splitext(os.path.basename(path))[0]
      try:
        clips, info = video_clips(path, models[0].config, trajectory_names, frames_per_latent=k, fov=fov, grid=grid)
      except (video_io.VideoError, ValueError) as e:  # corrupt, empty, too short: the others are still evaluated
        yield name, [], {"source": path, "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"}
        continue
      yield name, list(zip(trajectory_names, clips)), info

  settings = {"videos": os.path.abspath(videos), "fov": fov}
  return _run_protocol("videos", models, labels, out, scenes(), len(paths), settings, steps=steps, cfg=cfg, seed=seed,
                       pose_method=pose_method, grid=grid, batch_size=batch_size, frames_per_latent=k,
                       save_videos=save_videos, baselines=baselines, progress=progress, started=started)


def run_dycheck(checkpoints: Sequence[str], out: str, dycheck: str, *, names: Sequence[str] | None = None,
                scale: int | None = None, max_scenes: int | None = None, steps: int = 50, cfg: float = 5.0,
                seed: int = 0, pose_method: str = "flow", grid: int = 8, batch_size: int = 1,
                save_videos: bool = False, baselines: bool = True, progress: bool = True) -> dict[str, Any]:
  """The ``--dycheck DIR`` protocol (module docstring); returns the ``metrics.json`` record.

  Raises:
    ValueError: bad ``--names``/checkpoints (:func:`run`), a non-positive ``batch_size``/``grid``, a
      sequence too short or without validation camera, no clip at all; FileNotFoundError: no
      sequence under ``dycheck``; schema.RecordError: bad DyCheck files (naming file and field).
  """
  from mvtrack_jax.data import dycheck as dycheck_lib  # pylint: disable=g-import-not-at-top
  started = time.time()
  if batch_size < 1 or grid < 1:
    raise ValueError(f"evaluate: --batch_size and --grid must be >= 1, got {batch_size}, {grid}")
  sequences = [dycheck_lib.open_sequence(p, scale=scale) for p in dycheck_lib.find_sequences(dycheck)[:max_scenes]]
  models, labels = _load_models(out, checkpoints, names, PROTOCOL_DATA_KEYS)
  k = math.lcm(*(m.autoencoder.temporal_factor for m in models))

  def scenes():
    for sequence in sequences:
      clips, info = dycheck_clips(sequence, models[0].config, frames_per_latent=k, grid=grid)
      yield sequence.name, clips, info

  settings = {"dycheck": os.path.abspath(dycheck), "scales": sorted({s.scale for s in sequences})}
  return _run_protocol("dycheck", models, labels, out, scenes(), len(sequences), settings, steps=steps, cfg=cfg,
                       seed=seed, pose_method=pose_method, grid=grid, batch_size=batch_size, frames_per_latent=k,
                       save_videos=save_videos, baselines=baselines, progress=progress, started=started)


# ------------------------------------------------------------------------------------------------
# Tables.


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


def _write_text(path: str, text: str) -> None:
  with video_io.atomic_output(path) as tmp:
    with open(tmp, "w") as f:
      f.write(text)


# ------------------------------------------------------------------------------------------------
# The run.


def run(checkpoints: Sequence[str], out: str, *, names: Sequence[str] | None = None, split: str = "test",
        trajectory_names: Sequence[str] = DEFAULT_TRAJECTORIES, max_scenes: int | None = None, steps: int = 50,
        cfg: float = 5.0, seed: int = 0, pose_method: str = "flow", save_videos: bool = False,
        baselines: bool = True, progress: bool = True) -> dict[str, Any]:
  """The command (module docstring); returns the ``metrics.json`` record.

  ``baselines``: add the model-free columns ``copy_reference``, ``mean_colour`` and ``zero_motion``
  (rows with those ``"model"`` names in ``metrics.json``, entries in its ``summary``).

  Raises:
    ValueError: no checkpoint, names of the wrong length or reserved (:data:`RESERVED_NAMES`),
      models with different data settings, or bad trajectories.
  """
  from mvtrack_jax.data import preview  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.inference import novel_view  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.models import autoencoder as ae_lib  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.data import sources  # pylint: disable=g-import-not-at-top
  started = time.time()
  models, labels = _load_models(out, checkpoints, names, SPLIT_DATA_KEYS)
  data0 = models[0].config.data
  trajectory_names = list(trajectory_names)
  num_scenes = len(sources.data_source(data0, split))
  if max_scenes is not None:
    num_scenes = min(num_scenes, max_scenes)
  generators = [novel_view.NovelViewGenerator(m, image_encoder=novel_view.image_encoder_for(m)) for m in models]
  # zero_motion is scored at the track frames of a head model (NovelViewGenerator.track's "frames").
  track_model = next((m for m in models if m.head is not None), models[0])
  track_frames = ae_lib.latent_frame_indices(int(data0.num_frames), track_model.autoencoder.temporal_factor)
  sampling = novel_view.SamplingConfig(num_steps=steps, guidance_scale=cfg, seed=seed)
  rows = []
  scenes = range(num_scenes)
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    scenes = tqdm(scenes, desc="scenes", unit="scene")
  for index in scenes:
    clips = scene_clips(models[0].config, split, index, trajectory_names)
    batch = {key: np.stack([c[key] for c in clips]) for key in clips[0]}
    for name, clip in zip(trajectory_names, clips):
      rows.append({"model": GT_VIDEO, "scene": index, "trajectory": name,
                   "metrics": camera_metrics(clip["target_video"], clip, pose_method)})
      if baselines:
        rows.extend(baseline_rows(clip, index, name, track_frames, pose_method))
    for label, model, generator in zip(labels, models, generators):
      generated = generator.generate(batch, sampling)["target_video"]
      tracked = generator.track(batch, generated, sampling) if model.head is not None else None
      for b, (name, clip) in enumerate(zip(trajectory_names, clips)):
        metrics = prediction_metrics(generated[b], clip, pose_method)
        if tracked is not None and clip["track_mask"].any():
          metrics.update(tracking_metrics(clip, {k: v[b] if k != "frames" else v for k, v in tracked.items()}))
        rows.append({"model": label, "scene": index, "trajectory": name, "metrics": metrics})
        if save_videos:
          scale = preview.upscale_factor(generated.shape[2], 128)
          panels = preview.side_by_side_video(
              np.stack([clip["reference_video"], generated[b], clip["target_video"]]), scale)
          video_io.write_video(os.path.join(out, "videos", label, f"scene{index}_{name}.mp4"), panels)
  summary = summarize(rows)
  columns = labels + (list(BASELINES) if baselines else []) + [GT_VIDEO]
  columns = [c for c in columns if c != ZERO_MOTION or c in summary]  # zero_motion only where a clip had tracks
  record = {
      "protocol": "split",
      "checkpoints": {label: {"source": m.source, "step": m.step} for label, m in zip(labels, models)},
      "baselines": [c for c in BASELINES if c in columns],
      "zero_motion_frames": [int(f) for f in track_frames] if ZERO_MOTION in columns else None,
      "split": split, "num_scenes": num_scenes, "trajectories": trajectory_names, "steps": steps,
      "guidance_scale": cfg, "seed": seed, "pose_method": pose_method,
      "resolution": [int(data0.num_frames), int(data0.height), int(data0.width)],
      "seconds": round(time.time() - started, 1), "summary": summary, "rows": rows}
  header = (f"# Novel-view evaluation: split `{split}`, {num_scenes} scenes × {len(trajectory_names)} trajectories\n\n"
            f"{steps} Euler steps, CFG {cfg}, seed {seed}, poses from `{pose_method}` tracks; models: "
            + ", ".join(f"`{label}` = {m.source} (step {m.step})" for label, m in zip(labels, models))
            + (f"; baselines without a model: `{COPY_REFERENCE}` = the reference video as the prediction, "
               f"`{MEAN_COLOUR}` = its mean colour everywhere, `{ZERO_MOTION}` = query points that never move "
               f"(track frames {[int(f) for f in track_frames]})" if baselines else "")
            + f"; `{GT_VIDEO}` = the pose estimator on the ground-truth target video.")
  _write_outputs(out, record, columns, trajectory_names, header)
  return record


def _write_outputs(out: str, record: Mapping[str, Any], columns: Sequence[str], trajectory_names: Sequence[str],
                   header: str) -> None:
  """Writes ``metrics.json`` (``record``), ``metrics.md`` (tables of ``record["summary"]``) and ``per_clip.csv``."""
  os.makedirs(out, exist_ok=True)
  _write_text(os.path.join(out, "metrics.json"), json.dumps(record, indent=2, allow_nan=True))
  _write_text(os.path.join(out, "metrics.md"), markdown_tables(record["summary"], columns, trajectory_names, header))
  rows = record["rows"]
  keys = sorted({k for row in rows for k in row["metrics"]})
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(["model", "scene", "trajectory"] + keys)
  for row in rows:
    writer.writerow([row["model"], row["scene"], row["trajectory"]] + [row["metrics"].get(k, "") for k in keys])
  _write_text(os.path.join(out, "per_clip.csv"), buffer.getvalue())


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_multi_string("checkpoint", None, "Export dir or training workdir; repeat to compare.")
  flags.DEFINE_list("names", None, "Column names of the checkpoints (default: config name@step).")
  flags.DEFINE_string("split", "test", "Dataset split.")
  flags.DEFINE_string("out", None, "Output directory.")
  flags.DEFINE_list("trajectories", None,
                    f"'{RECORDED}' and/or presets: {', '.join(trajectories.TRAJECTORY_NAMES)} (default: "
                    f"{','.join(DEFAULT_TRAJECTORIES)} for --split, the ten presets for --videos; not with --dycheck).")
  flags.DEFINE_string("videos", None, "Protocol: a folder of mp4 reference videos (DAVIS) x preset trajectories.")
  flags.DEFINE_string("dycheck", None, "Protocol: a DyCheck iPhone sequence folder, or a folder of them.")
  flags.DEFINE_float("fov", 60.0, "--videos: horizontal field of view (degrees) of the mp4s' pinhole camera.")
  flags.DEFINE_integer("dycheck_scale", None, "--dycheck: read rgb/<s>x (default: the highest resolution present).")
  flags.DEFINE_integer("grid", 8, "--videos/--dycheck: the head's query points, a grid x grid lattice at frame 0.")
  flags.DEFINE_integer("batch_size", 1,
                       "--videos/--dycheck: clips per generation batch (1: the same noise for every clip).")
  flags.DEFINE_integer("max_scenes", None, "Evaluate the first N scenes (videos, sequences) only.")
  flags.DEFINE_integer("steps", 50, "Euler steps.")
  flags.DEFINE_float("cfg", 5.0, "Classifier-free guidance scale (needs a text context to matter).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_enum("pose_method", "flow", ["flow", "sift", "orb"], "Pose estimator correspondences.")
  flags.DEFINE_bool("save_videos", False, "Write reference | generated | GT videos.")
  flags.DEFINE_bool("baselines", True, f"Add the model-free columns {', '.join(BASELINES)} (--nobaselines: off).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.checkpoint or not FLAGS.out:
    raise app.UsageError("--checkpoint and --out are required")
  if FLAGS.videos and FLAGS.dycheck:
    raise app.UsageError("--videos and --dycheck are two protocols; give one of them")
  if FLAGS.dycheck and FLAGS.trajectories:
    raise app.UsageError("--trajectories does not apply to --dycheck (the targets are its validation cameras)")
  from mvtrack_jax.evaluation import learned  # pylint: disable=g-import-not-at-top
  learned.register_from_env()
  common = dict(names=FLAGS.names, max_scenes=FLAGS.max_scenes, steps=FLAGS.steps, cfg=FLAGS.cfg, seed=FLAGS.seed,
                pose_method=FLAGS.pose_method, save_videos=FLAGS.save_videos, baselines=FLAGS.baselines)
  if FLAGS.videos:
    record = run_videos(FLAGS.checkpoint, FLAGS.out, FLAGS.videos, trajectory_names=FLAGS.trajectories or
                        VIDEO_TRAJECTORIES, fov=FLAGS.fov, grid=FLAGS.grid, batch_size=FLAGS.batch_size, **common)
  elif FLAGS.dycheck:
    record = run_dycheck(FLAGS.checkpoint, FLAGS.out, FLAGS.dycheck, scale=FLAGS.dycheck_scale, grid=FLAGS.grid,
                         batch_size=FLAGS.batch_size, **common)
  else:
    record = run(FLAGS.checkpoint, FLAGS.out, split=FLAGS.split,
                 trajectory_names=FLAGS.trajectories or DEFAULT_TRAJECTORIES, **common)
  with open(os.path.join(FLAGS.out, "metrics.md")) as f:
    print(f.read())
  print(f"wrote {FLAGS.out}/metrics.json, metrics.md, per_clip.csv in {record['seconds']} s")
  if record.get("unreadable"):
    print(f"skipped {len(record['unreadable'])} video(s) that could not be used: "
          + "; ".join(f"{k}: {v}" for k, v in record["unreadable"].items()), file=sys.stderr)
    sys.exit(EXIT_SKIPPED)


if __name__ == "__main__":
  define_flags()
  cli.run(main)
