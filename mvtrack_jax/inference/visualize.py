"""Side-by-side videos of a reference and a generated view with predicted tracks drawn on both.

Panels are enlarged by an integer factor (nearest neighbour) to at least ``min_side`` pixels and
drawn with ``data.preview.draw_tracks`` (solid dot = predicted visible, hollow circle = predicted
occluded; one colour per query point in both panels). Tracks predicted at latent-frame rate
(``frames = 0, k, 2k, …``) are linearly interpolated to every video frame for drawing; visibility
is taken from the nearest latent frame.
"""

from __future__ import annotations

import numpy as np

from mvtrack_jax.data import preview


def tracks_at_video_rate(tracks: np.ndarray, visible: np.ndarray, frames: np.ndarray,
                         num_frames: int) -> tuple[np.ndarray, np.ndarray]:
  """Interpolates ``(V, F, N, 2)`` tracks / ``(V, F, N)`` visibility at video frames ``frames`` to all frames.

  Args:
    tracks: ``(V, F, N, 2)`` pixels.
    visible: ``(V, F, N)`` bool.
    frames: ``(F,)`` increasing video frame index of each latent frame.
    num_frames: ``T``, video frames to produce.

  Returns:
    ``(tracks (V, T, N, 2), visible (V, T, N))``.

  Raises:
    ValueError: shapes disagree.
  """
  frames = np.asarray(frames)
  if tracks.ndim != 4 or tracks.shape[1] != frames.size or visible.shape != tracks.shape[:-1]:
    raise ValueError(f"tracks_at_video_rate: tracks (V, F={frames.size}, N, 2) and visible (V, F, N) expected, "
                     f"got {tracks.shape} and {visible.shape}")
  t = np.arange(num_frames)
  if frames.size == num_frames and np.array_equal(frames, t):
    return tracks, visible
  v, _, n, _ = tracks.shape
  flat = tracks.transpose(0, 2, 3, 1).reshape(-1, frames.size)
  out = np.stack([np.interp(t, frames, row) for row in flat]).reshape(v, n, 2, num_frames).transpose(0, 3, 1, 2)
  nearest = np.abs(t[:, None] - frames[None, :]).argmin(axis=1)
  return out.astype(np.float32), visible[:, nearest]


def side_by_side_with_tracks(reference: np.ndarray, generated: np.ndarray, tracks: np.ndarray,
                             visible: np.ndarray, frames: np.ndarray | None = None, *,
                             min_side: int = 256, max_tracks: int = 64) -> np.ndarray:
  """``(T, s·H, 2·s·W + gap, 3)`` uint8 frames: reference | generated, tracks drawn.

  Args:
    reference, generated: ``(T, H, W, 3)`` uint8.
    tracks: ``(2, F, N, 2)`` pixels ``(x, y)``; view 0 drawn on the reference, 1 on the generated.
    visible: ``(2, F, N)`` bool.
    frames: ``(F,)`` video frame per track frame (default ``0..T−1``).
    min_side: minimum panel height after enlargement.
    max_tracks: draw at most this many points (evenly spaced among the ones visible somewhere).

  Raises:
    ValueError: on shape mismatches.
  """
  if reference.shape != generated.shape or reference.ndim != 4:
    raise ValueError(f"side_by_side_with_tracks: reference {reference.shape} and generated {generated.shape} "
                     "must both be (T, H, W, 3)")
  t, h = reference.shape[:2]
  frames = np.arange(t) if frames is None else np.asarray(frames)
  tracks, visible = tracks_at_video_rate(np.asarray(tracks, np.float32), np.asarray(visible, bool), frames, t)
  scale = preview.upscale_factor(h, min_side)
  panels = preview.side_by_side_video(np.stack([reference, generated]), scale)
  chosen = preview.select_tracks(visible, max_tracks)
  if not chosen.size:
    return panels
  colors = preview.track_colors(tracks.shape[2])[chosen]
  panel_w = reference.shape[2] * scale
  offset = panel_w + (panels.shape[2] - 2 * panel_w)  # x of the second panel (panel + gap)
  out = panels.copy()
  for i in range(t):
    out[i, :, :panel_w] = preview.draw_tracks(panels[i, :, :panel_w], tracks[0, i, chosen], visible[0, i, chosen],
                                              colors, scale)
    out[i, :, offset:] = preview.draw_tracks(panels[i, :, offset:], tracks[1, i, chosen], visible[1, i, chosen],
                                             colors, scale)
  return out
