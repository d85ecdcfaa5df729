"""The model-free baselines every evaluation table carries beside the models (``python -m mvtrack_jax.evaluate``):
``copy_reference`` (the reference video as the prediction of the target view), ``mean_colour`` (its mean colour
everywhere) and ``zero_motion`` (query points that never move, for the head's tracking metrics). A model that does
not beat them has not learned the task.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from mvtrack_jax.evaluation import clip_metrics

COPY_REFERENCE = "copy_reference"
MEAN_COLOUR = "mean_colour"
ZERO_MOTION = "zero_motion"
VIDEO_BASELINES = (COPY_REFERENCE, MEAN_COLOUR)  # predictions of the target video
BASELINES = VIDEO_BASELINES + (ZERO_MOTION,)  # column order after the models
DESCRIPTIONS = {COPY_REFERENCE: "the reference video as the prediction", MEAN_COLOUR: "its mean colour everywhere",
                ZERO_MOTION: "query points that never move"}


def described(names: Sequence[str], track_frames: Sequence[int] | None = None) -> str:
  """The report header's words for the baselines ``names``: "`name` = what it predicts", comma-separated
  (``zero_motion`` with its ``track_frames``)."""
  parts = [f"`{name}` = {DESCRIPTIONS[name]}" for name in names]
  if ZERO_MOTION in names and track_frames is not None:
    parts[list(names).index(ZERO_MOTION)] += f" (track frames {[int(f) for f in track_frames]})"
  return ", ".join(parts)


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
      origin, of the reference view). ``track_mask`` is not applied here (``clip_metrics.tracking_metrics``
      scores only the real points).
    frames: ``(F,)`` increasing non-negative video frames of the track frames, the ``frames`` of a
      head model's ``NovelViewPipeline.track`` (``0, k, 2k, …``).

  Returns:
    ``{"tracks": (2, F, N, 2) float32, "visible": (2, F, N) bool, "frames": (F,) int32}``, view 0 =
    reference, 1 = target: the query's ``(x, y)`` at every frame of both views, all True — the
    layout ``clip_metrics.tracking_metrics`` takes.

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
    pose_method: as ``clip_metrics.prediction_metrics``.

  Returns:
    ``[{"model", "scene", "trajectory", "metrics"}, …]`` in :data:`BASELINES` order.
  """
  rows = [{"model": name, "scene": scene, "trajectory": trajectory,
           "metrics": clip_metrics.prediction_metrics(video, example, pose_method)}
          for name, video in baseline_videos(example).items()]
  if frames is not None and np.asarray(example["track_mask"], bool).any():
    rows.append({"model": ZERO_MOTION, "scene": scene, "trajectory": trajectory,
                 "metrics": clip_metrics.tracking_metrics(example, zero_motion_tracks(example, frames))})
  return rows
