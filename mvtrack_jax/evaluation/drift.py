"""Weight-free appearance-drift metrics of a video (Track4Gen's claim: tracking supervision reduces drift).

Track4Gen (Jeong et al., CVPR 2025) reports that generators trained to track points drift less in appearance; its
own measures need learned models. These three need none, and each is computed the same way on the ground-truth
video, so a model's value is read next to the ground truth's own (``evaluate`` scores the ``gt_video`` row too):

- :func:`track_colour_drift`: along **ground-truth** tracks, the mean RGB distance (0–255 units, Euclidean over the
  three channels) between a point's colour in frame ``t`` and in the first frame, over every (point, frame ``t > 0``)
  with the point visible in both. Colours are sampled bilinearly at the continuous track position (corner-origin
  pixels; ``scipy.ndimage.map_coordinates``, order 1, at ``position − ½`` since pixel centres sit at ``+½``). The
  ground truth drifts only by shading and occlusion boundaries, so a generated video's excess over it is drift;
- :func:`flow_track_survival`: the fraction of the first frame's pyramidal Lucas–Kanade grid tracks
  (``evaluation.camera.optical_flow_tracks``: forward–backward checked, dropped once lost) that survive to the last
  frame — content that keeps its identity can be followed;
- :func:`temporal_flickering`: VBench's temporal-flickering score (Huang et al., CVPR 2024; VBench
  ``temporal_flickering.py``): ``(255 − mean_t MAE(frame_t, frame_{t+1})) / 255`` with MAE the mean absolute
  difference over pixels and channels of uint8 frames, in ``[0, 1]``, higher = steadier. VBench applies it to
  static-scene prompts; a camera-moving clip also changes by its motion, so compare it across models on the same
  clips only.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
from scipy import ndimage

from mvtrack_jax.evaluation import camera


def _check_video(video: np.ndarray, fn: str) -> np.ndarray:
  video = np.asarray(video)
  if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
    raise ValueError(f"{fn}: video must be (T, H, W, 3) uint8, got {video.shape} {video.dtype}")
  return video


def track_colour_drift(video: np.ndarray, tracks: np.ndarray, visible: np.ndarray) -> float:
  """Mean colour distance along ground-truth tracks to the first frame (module docstring).

  Args:
    video: ``(T, H, W, 3)`` uint8.
    tracks: ``(T, N, 2)`` float ``(x, y)`` pixels, corner origin.
    visible: ``(T, N)`` bool.

  Returns:
    The mean in RGB units (0–255 scale); NaN when no (point, frame) pair is scored.

  Raises:
    ValueError: shapes that do not fit the video.
  """
  video = _check_video(video, "track_colour_drift")
  t, h, w, _ = video.shape
  tracks = np.asarray(tracks, np.float64)
  visible = np.asarray(visible, bool)
  if tracks.ndim != 3 or tracks.shape[0] != t or tracks.shape[-1] != 2 or visible.shape != tracks.shape[:2]:
    raise ValueError(f"track_colour_drift: tracks must be ({t}, N, 2) and visible ({t}, N) for a {t}-frame video, "
                     f"got {tracks.shape} and {visible.shape}")
  inside = (tracks[..., 0] >= 0) & (tracks[..., 0] < w) & (tracks[..., 1] >= 0) & (tracks[..., 1] < h)
  ok = visible & inside
  scored = ok[1:] & ok[:1]
  if not scored.any():
    return math.nan
  frames = np.broadcast_to(np.arange(t)[:, None], tracks.shape[:2])
  colours = np.stack([ndimage.map_coordinates(video[..., c].astype(np.float64),
                                              [frames.ravel(), tracks[..., 1].ravel() - 0.5,
                                               tracks[..., 0].ravel() - 0.5], order=1, mode="nearest")
                      for c in range(3)], -1).reshape(t, -1, 3)
  distance = np.linalg.norm(colours[1:] - colours[:1], axis=-1)
  return float(distance[scored].mean())


def flow_track_survival(video: np.ndarray) -> float:
  """Fraction of the first frame's Lucas–Kanade grid tracks still followed in the last frame (NaN when the first
  frame gives none)."""
  video = _check_video(video, "flow_track_survival")
  _, visible = camera.optical_flow_tracks(video)
  start = int(visible[0].sum())
  return float(visible[-1].sum() / start) if start else math.nan


def temporal_flickering(video: np.ndarray) -> float:
  """VBench's temporal-flickering score in ``[0, 1]`` (module docstring); NaN for a single frame."""
  video = _check_video(video, "temporal_flickering")
  if len(video) < 2:
    return math.nan
  mae = [np.abs(video[t + 1].astype(np.int16) - video[t]).mean() for t in range(len(video) - 1)]
  return float((255.0 - np.mean(mae)) / 255.0)


def drift_metrics(video: np.ndarray, example: Mapping[str, np.ndarray]) -> dict[str, float]:
  """The three metrics of a target-view video: ``track_colour_drift`` along the clip's target-view ground-truth
  tracks (``example["tracks"][1]``, ``example["visible"][1]`` of the real points, ``track_mask``),
  ``flow_track_survival`` and ``temporal_flickering``."""
  mask = np.asarray(example["track_mask"], bool)
  return {"track_colour_drift": track_colour_drift(video, np.asarray(example["tracks"])[1][:, mask],
                                                   np.asarray(example["visible"])[1][:, mask]),
          "flow_track_survival": flow_track_survival(video),
          "temporal_flickering": temporal_flickering(video)}
