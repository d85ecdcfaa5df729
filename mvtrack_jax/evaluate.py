r"""Evaluates novel-view generation: every test scene under several trajectories, one metrics table.

Examples::

  python -m mvtrack_jax.evaluate --checkpoint out/demo --split test --out out/demo/evaluate
  # MVTrack4Gen vs the diffusion-only baseline trained with the same budget, side by side.
  python -m mvtrack_jax.evaluate --checkpoint out/mvtrack --checkpoint out/baseline \
      --names mvtrack4gen,diffusion_only --split test --out out/compare --steps 50

For each scene ``i`` of ``--split`` (the dataset of the first checkpoint's config), view 0 over
frames ``0 … T−1`` (the model's ``config.data`` frames/resolution, centre crop) is the reference,
and for each ``--trajectories`` entry a ground-truth target view is built:

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
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags
import numpy as np

from mvtrack_jax.geometry import trajectories

RECORDED = "recorded"
DEFAULT_TRAJECTORIES = (RECORDED, "pan_right", "zoom_in", "arc_left", "translate_up")
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
        raise ValueError(f"--trajectories {name}: preset trajectories need ground truth rendered from the scene, "
                         f"which only the synthetic dataset has (config.data.dataset={data.dataset!r}); "
                         f"use '{RECORDED}'")
      from mvtrack_jax.data import synthetic_dataset  # pylint: disable=g-import-not-at-top
      sizes = synthetic_dataset.record_sizes(data.get("synthetic"))
      clip_record = _preset_target_record(record, synthetic_dataset.scene_seed(split, index), sizes, name, frames)
    else:
      raise ValueError(f"--trajectories: unknown {name!r}; expected '{RECORDED}' or one of "
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
  from mvtrack_jax.evaluation import epipolar, tapvid  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.geometry import cameras as geometry  # pylint: disable=g-import-not-at-top
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
  w2c = lambda key: geometry.invert_rigid(np.asarray(example[key], np.float64)[frames])
  epi = epipolar.epipolar_consistency(
      pred_tracks[0], pred_tracks[1], pred_vis[0] & pred_vis[1], np.asarray(example["reference_intrinsics"])[frames],
      w2c("reference_cam_to_world"), np.asarray(example["target_intrinsics"])[frames], w2c("target_cam_to_world"))
  out["epipolar_sampson_px"] = float(epi["mean_sampson_px"])
  out["epipolar_below_2px"] = float(epi["frac_below_2px"])
  return out


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
  from mvtrack_jax.data import video_io  # pylint: disable=g-import-not-at-top
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
  from mvtrack_jax.data import preview, video_io  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.inference import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.inference import novel_view  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.models import autoencoder as ae_lib  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.data import sources  # pylint: disable=g-import-not-at-top
  if not checkpoints:
    raise ValueError("evaluate: give at least one --checkpoint")
  started = time.time()
  models = [checkpoint_lib.load_model(c) for c in checkpoints]
  labels = list(names) if names else [m.name for m in models]
  if len(labels) != len(models) or len(set(labels)) != len(labels):
    raise ValueError(f"--names {labels}: need {len(models)} distinct names, one per --checkpoint")
  reserved = [label for label in labels if label in RESERVED_NAMES]
  if reserved:
    raise ValueError(f"--names {labels}: {reserved} reserved for the baseline / ground-truth columns "
                     f"({', '.join(RESERVED_NAMES)}); choose other names")
  data0 = models[0].config.data
  for model in models[1:]:
    for key in ("dataset", "synthetic", "data_dir", "num_frames", "frame_stride", "height", "width"):
      if model.config.data.get(key) != data0.get(key):
        raise ValueError(f"evaluate: {model.source} has data.{key}={model.config.data.get(key)!r} but "
                         f"{models[0].source} has {data0.get(key)!r}; compare models trained on the same data")
  trajectory_names = list(trajectory_names)
  num_scenes = len(sources.data_source(data0, split))
  if max_scenes is not None:
    num_scenes = min(num_scenes, max_scenes)
  generators = [novel_view.NovelViewGenerator(m) for m in models]
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
      "checkpoints": {label: {"source": m.source, "step": m.step} for label, m in zip(labels, models)},
      "baselines": [c for c in BASELINES if c in columns],
      "zero_motion_frames": [int(f) for f in track_frames] if ZERO_MOTION in columns else None,
      "split": split, "num_scenes": num_scenes, "trajectories": trajectory_names, "steps": steps,
      "guidance_scale": cfg, "seed": seed, "pose_method": pose_method,
      "resolution": [int(data0.num_frames), int(data0.height), int(data0.width)],
      "seconds": round(time.time() - started, 1), "summary": summary, "rows": rows}
  os.makedirs(out, exist_ok=True)
  _write_text(os.path.join(out, "metrics.json"), json.dumps(record, indent=2, allow_nan=True))
  header = (f"# Novel-view evaluation: split `{split}`, {num_scenes} scenes × {len(trajectory_names)} trajectories\n\n"
            f"{steps} Euler steps, CFG {cfg}, seed {seed}, poses from `{pose_method}` tracks; models: "
            + ", ".join(f"`{label}` = {m.source} (step {m.step})" for label, m in zip(labels, models))
            + (f"; baselines without a model: `{COPY_REFERENCE}` = the reference video as the prediction, "
               f"`{MEAN_COLOUR}` = its mean colour everywhere, `{ZERO_MOTION}` = query points that never move "
               f"(track frames {[int(f) for f in track_frames]})" if baselines else "")
            + f"; `{GT_VIDEO}` = the pose estimator on the ground-truth target video.")
  _write_text(os.path.join(out, "metrics.md"), markdown_tables(summary, columns, trajectory_names, header))
  keys = sorted({k for row in rows for k in row["metrics"]})
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(["model", "scene", "trajectory"] + keys)
  for row in rows:
    writer.writerow([row["model"], row["scene"], row["trajectory"]] + [row["metrics"].get(k, "") for k in keys])
  _write_text(os.path.join(out, "per_clip.csv"), buffer.getvalue())
  return record


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_multi_string("checkpoint", None, "Export dir or training workdir; repeat to compare.")
  flags.DEFINE_list("names", None, "Column names of the checkpoints (default: config name@step).")
  flags.DEFINE_string("split", "test", "Dataset split.")
  flags.DEFINE_string("out", None, "Output directory.")
  flags.DEFINE_list("trajectories", list(DEFAULT_TRAJECTORIES),
                    f"'{RECORDED}' and/or presets: {', '.join(trajectories.TRAJECTORY_NAMES)}.")
  flags.DEFINE_integer("max_scenes", None, "Evaluate the first N scenes only.")
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
  record = run(FLAGS.checkpoint, FLAGS.out, names=FLAGS.names, split=FLAGS.split,
               trajectory_names=FLAGS.trajectories, max_scenes=FLAGS.max_scenes, steps=FLAGS.steps,
               cfg=FLAGS.cfg, seed=FLAGS.seed, pose_method=FLAGS.pose_method, save_videos=FLAGS.save_videos,
               baselines=FLAGS.baselines)
  with open(os.path.join(FLAGS.out, "metrics.md")) as f:
    print(f.read())
  print(f"wrote {FLAGS.out}/metrics.json, metrics.md, per_clip.csv in {record['seconds']} s")


if __name__ == "__main__":
  define_flags()
  app.run(main)
