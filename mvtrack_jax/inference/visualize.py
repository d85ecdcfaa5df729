"""Pictures of a generation: reference and generated views (and the ground truth) with tracks drawn.

``side_by_side_with_tracks``: a video, reference | generated. ``comparison_strip``: one image, a
few frames as rows of reference | generated [| ground truth] panels (``generate``'s ``strip.png``).

Panels are enlarged by an integer factor (nearest neighbour) to at least ``min_side`` pixels and
drawn with ``drawing.draw_tracks`` (solid dot = predicted visible, hollow circle = predicted
occluded; one colour per query point in every panel). Tracks predicted at latent-frame rate
(``frames = 0, k, 2k, …``) are linearly interpolated to every video frame for drawing; visibility
is taken from the nearest latent frame. Pixels: continuous ``(x, y)``, origin at the top-left
corner of the top-left pixel, centres at +0.5.
"""

from __future__ import annotations

import cv2
import numpy as np

from mvtrack_jax import drawing



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
  scale = drawing.upscale_factor(h, min_side)
  panels = drawing.side_by_side_video(np.stack([reference, generated]), scale)
  chosen = drawing.select_tracks(visible, max_tracks)
  if not chosen.size:
    return panels
  colors = drawing.track_colors(tracks.shape[2])[chosen]
  panel_w = reference.shape[2] * scale
  offset = panel_w + (panels.shape[2] - 2 * panel_w)  # x of the second panel (panel + gap)
  out = panels.copy()
  for i in range(t):
    out[i, :, :panel_w] = drawing.draw_tracks(panels[i, :, :panel_w], tracks[0, i, chosen], visible[0, i, chosen],
                                              colors, scale)
    out[i, :, offset:] = drawing.draw_tracks(panels[i, :, offset:], tracks[1, i, chosen], visible[1, i, chosen],
                                             colors, scale)
  return out


_STRIP_GAP = 4  # pixels between panels and between rows
_STRIP_TITLE_H = 24  # column-title band
_STRIP_LABEL_W = 52  # frame-label column
_STRIP_FOOTER_H = 20  # legend band (only when tracks are drawn)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
STRIP_TITLES = ("reference", "generated", "ground truth")


def _put_text(image: np.ndarray, text: str, center_x: int, center_y: int, scale: float) -> None:
  (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
  cv2.putText(image, text, (int(center_x - tw / 2), int(center_y + th / 2)), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def comparison_strip(reference: np.ndarray, generated: np.ndarray, ground_truth: np.ndarray | None = None, *,
                     tracks: np.ndarray | None = None, visible: np.ndarray | None = None,
                     frames: np.ndarray | None = None, gt_tracks: np.ndarray | None = None,
                     gt_visible: np.ndarray | None = None, num_rows: int = 4, min_side: int = 160,
                     max_tracks: int = 64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """A still overview of a generation: rows = frames, columns = reference | generated [| ground truth].

  Rows are ``min(num_rows, T)`` video frames evenly spaced over the clip, always the first and the
  last. Each panel is the frame enlarged ``s = drawing.upscale_factor(H, min_side)`` times (nearest
  neighbour), with the column's title above the first row and ``t=<frame>`` left of each row. Tracks
  are drawn with ``drawing.draw_tracks``: solid dot = (predicted) visible, hollow circle = (predicted)
  occluded; every drawn point keeps one colour (``drawing.track_colors`` of its index) in all panels
  and rows. Points are **never** dropped for being occluded (a point predicted occluded at every
  frame is drawn hollow everywhere); only positions outside the panel or non-finite are not drawn.

  Args:
    reference, generated: ``(T, H, W, 3)`` uint8 RGB videos.
    ground_truth: optional ``(T, H, W, 3)`` uint8 ground-truth target view (third column).
    tracks: optional ``(2, F, N, 2)`` float pixels ``(x, y)`` of the ``H × W`` frames; view 0 drawn
      on the reference, view 1 on the generated panel.
    visible: ``(2, F, N)`` bool, with ``tracks``.
    frames: ``(F,)`` increasing video frame of each track frame (default ``0 … T−1``); other frames
      are interpolated (``tracks_at_video_rate``).
    gt_tracks: optional ``(T, N, 2)`` float pixels of the same ``N`` points in the ground-truth view
      at every video frame (NaN: unknown, not drawn); needs ``ground_truth``.
    gt_visible: ``(T, N)`` bool, with ``gt_tracks``.
    num_rows: ``>= 1`` frames to show.
    min_side: panel height after enlargement is at least this many pixels.
    max_tracks: draw at most this many points, evenly spaced over the point index.

  Returns:
    ``(image, layout)``: ``image`` ``(title + R·s·H + (R−1)·gap [+ legend], label + P·s·W + (P−1)·gap, 3)``
    uint8 RGB on white, ``P`` = 2 or 3 panels; ``layout``: ``frames`` ``(R,)`` video frame of each
    row, ``tracks`` ``(K,)`` drawn point indices, ``colors`` ``(K, 3)`` their uint8 RGB colours,
    ``scale`` the enlargement ``s``, ``panel_origin`` ``(R, P, 2)`` int top-left ``(x, y)`` of each
    panel in ``image`` (a track at ``(x, y)`` is drawn at ``panel_origin + s·(x, y)``).

  Raises:
    ValueError: videos of different or non-``(T, H, W, 3)`` uint8 shapes, tracks without visibility
      or with shapes that disagree with the videos / each other, ``gt_tracks`` without
      ``ground_truth``, or ``num_rows < 1``.
  """
  videos = [np.asarray(reference), np.asarray(generated)]
  if ground_truth is not None:
    videos.append(np.asarray(ground_truth))
  shape = videos[0].shape
  if len(shape) != 4 or shape[-1] != 3 or any(v.shape != shape or v.dtype != np.uint8 for v in videos):
    raise ValueError("comparison_strip: reference, generated and ground_truth must be (T, H, W, 3) uint8 of one "
                     f"shape, got {[(v.shape, str(v.dtype)) for v in videos]}")
  if isinstance(num_rows, bool) or not isinstance(num_rows, (int, np.integer)) or num_rows < 1:
    raise ValueError(f"comparison_strip: num_rows must be an int >= 1, got {num_rows!r}")
  t, h, w, _ = shape
  drawn: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(videos)  # per panel (T, N, 2), (T, N)
  n = None
  if (tracks is None) != (visible is None) or (gt_tracks is None) != (gt_visible is None):
    raise ValueError("comparison_strip: give tracks with visible and gt_tracks with gt_visible")
  if tracks is not None:
    frames = np.arange(t) if frames is None else np.asarray(frames)
    tr, vis = tracks_at_video_rate(np.asarray(tracks, np.float32), np.asarray(visible, bool), frames, t)
    if tr.shape[:2] != (2, t) or tr.shape[-1] != 2:
      raise ValueError(f"comparison_strip: tracks must be (2, F, N, 2), got {np.shape(tracks)}")
    drawn[0], drawn[1] = (tr[0], vis[0]), (tr[1], vis[1])
    n = tr.shape[2]
  if gt_tracks is not None:
    if ground_truth is None:
      raise ValueError("comparison_strip: gt_tracks need the ground_truth video")
    gt_tr, gt_vis = np.asarray(gt_tracks, np.float32), np.asarray(gt_visible, bool)
    if gt_tr.ndim != 3 or gt_tr.shape[0] != t or gt_tr.shape[-1] != 2 or gt_vis.shape != gt_tr.shape[:2] or \
       (n is not None and gt_tr.shape[1] != n):
      raise ValueError(f"comparison_strip: gt_tracks (T={t}, N, 2) and gt_visible (T, N) expected (N as in tracks: "
                       f"{n}), got {gt_tr.shape} and {gt_vis.shape}")
    drawn[2] = (gt_tr, gt_vis)
    n = gt_tr.shape[1]
  n = n or 0
  chosen = drawing.select_tracks(np.ones((1, n), bool), max_tracks)  # all points, occluded or not
  colors = drawing.track_colors(n)[chosen]
  rows = np.unique(np.linspace(0, t - 1, min(int(num_rows), t)).round().astype(int))
  scale = drawing.upscale_factor(h, min_side)
  ph, pw, p = h * scale, w * scale, len(videos)
  footer = _STRIP_FOOTER_H if chosen.size else 0
  image = np.full((_STRIP_TITLE_H + rows.size * ph + (rows.size - 1) * _STRIP_GAP + footer,
                   _STRIP_LABEL_W + p * pw + (p - 1) * _STRIP_GAP, 3), 255, np.uint8)
  origins = np.zeros((rows.size, p, 2), int)
  for c in range(p):
    _put_text(image, STRIP_TITLES[c], _STRIP_LABEL_W + c * (pw + _STRIP_GAP) + pw // 2, _STRIP_TITLE_H // 2, 0.5)
  for r, f in enumerate(rows):
    y0 = _STRIP_TITLE_H + r * (ph + _STRIP_GAP)
    _put_text(image, f"t={f}", _STRIP_LABEL_W // 2, y0 + ph // 2, 0.5)
    for c, video in enumerate(videos):
      x0 = _STRIP_LABEL_W + c * (pw + _STRIP_GAP)
      panel = np.repeat(np.repeat(video[f], scale, axis=0), scale, axis=1)
      if drawn[c] is not None and chosen.size:
        panel = drawing.draw_tracks(panel, drawn[c][0][f, chosen], drawn[c][1][f, chosen], colors, scale)
      image[y0:y0 + ph, x0:x0 + pw] = panel
      origins[r, c] = (x0, y0)
  if footer:
    _put_text(image, "dot: visible   ring: occluded", image.shape[1] // 2, image.shape[0] - footer // 2, 0.4)
  return image, {"frames": rows, "tracks": chosen, "colors": colors, "scale": np.array(scale),
                 "panel_origin": origins}
