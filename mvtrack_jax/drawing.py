"""Drawing helpers for videos and tracks: panels side by side, integer upscaling, track dots (OpenCV).

A leaf the data preview tool (``data.preview``), the inference visualisations (``inference.visualize``) and
the evaluation's saved videos all draw with. Pixel coordinates follow the project convention (corner origin,
pixel centres at +0.5), so a track at ``(x, y)`` is drawn at ``(s·x, s·y)`` in a panel enlarged ``s`` times.
"""

from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

GAP = 2  # pixels between panels
_SHIFT = 4  # OpenCV sub-pixel bits for drawing


def track_colors(num_tracks: int) -> np.ndarray:
  """``(N, 3)`` uint8 RGB colours, distinct hues (golden-ratio steps), one per track index."""
  hues = (np.arange(num_tracks) * 0.618033988749895) % 1.0
  return np.array([[round(255 * c) for c in colorsys.hsv_to_rgb(h, 0.9, 1.0)] for h in hues], np.uint8).reshape(-1, 3)


def upscale_factor(height: int, min_side: int) -> int:
  """Smallest integer factor ``s >= 1`` with ``s · height >= min_side``."""
  return max(1, math.ceil(min_side / max(height, 1)))


def side_by_side_video(video: np.ndarray, scale: int = 1) -> np.ndarray:
  """``(V, T, H, W, 3)`` → ``(T, s·H, V·s·W + (V−1)·gap, 3)`` uint8 panels, nearest-neighbour enlarged."""
  v, t, h, w, _ = video.shape
  big = np.repeat(np.repeat(video, scale, axis=2), scale, axis=3)
  out = np.zeros((t, h * scale, v * w * scale + (v - 1) * GAP, 3), np.uint8)
  for j in range(v):
    x0 = j * (w * scale + GAP)
    out[:, :, x0:x0 + w * scale] = big[j]
  return out


def select_tracks(visible: np.ndarray, max_tracks: int) -> np.ndarray:
  """Indices of at most ``max_tracks`` points visible somewhere, evenly spaced over the point index."""
  n = visible.shape[-1]
  candidates = np.flatnonzero(visible.reshape((-1, n)).any(axis=0)) if n else np.zeros((0,), np.int64)
  if candidates.size <= max_tracks:
    return candidates
  return candidates[np.linspace(0, candidates.size - 1, max_tracks).round().astype(int)]


def draw_tracks(frame: np.ndarray, tracks: np.ndarray, visible: np.ndarray, colors: np.ndarray,
                scale: int) -> np.ndarray:
  """Draws tracks on one ``scale``-times enlarged RGB frame (returns a new array).

  Args:
    frame: ``(s·H, s·W, 3)`` uint8.
    tracks: ``(K, 2)`` ``(x, y)`` in the *original* frame's pixels (corner origin).
    visible: ``(K,)`` bool: solid dot when true, hollow circle when false (only if inside the image).
    colors: ``(K, 3)`` uint8 RGB.
    scale: enlargement factor of ``frame``.
  """
  out = np.ascontiguousarray(frame.copy())
  h, w = out.shape[:2]
  radius = max(2, scale)
  for (x, y), vis, color in zip(tracks, visible, colors):
    px, py = scale * float(x), scale * float(y)
    if not (np.isfinite(px) and np.isfinite(py)) or not (0 <= px <= w and 0 <= py <= h):
      continue
    # OpenCV places pixel i's centre at i; the project's corner-origin coordinate of that centre is i + 0.5.
    center = (int(round((px - 0.5) * (1 << _SHIFT))), int(round((py - 0.5) * (1 << _SHIFT))))
    c = tuple(int(v) for v in color)
    if vis:
      cv2.circle(out, center, radius << _SHIFT, c, thickness=-1, lineType=cv2.LINE_AA, shift=_SHIFT)
    else:
      cv2.circle(out, center, (radius + 1) << _SHIFT, c, thickness=1, lineType=cv2.LINE_AA, shift=_SHIFT)
  return out
