"""inference.visualize.comparison_strip: layout, one colour per point, occluded points drawn hollow."""

import numpy as np
import pytest

from mvtrack_jax import drawing
from mvtrack_jax.inference import visualize


def _enlarged(frame: np.ndarray, s: int) -> np.ndarray:
  return np.repeat(np.repeat(frame, s, axis=0), s, axis=1)


def test_rows_are_evenly_spaced_frames_and_panels_the_enlarged_frames():
  rng = np.random.default_rng(0)
  ref, gen, gt = (rng.integers(0, 256, (7, 8, 10, 3), dtype=np.uint8) for _ in range(3))
  image, layout = visualize.comparison_strip(ref, gen, gt, num_rows=4, min_side=32)
  np.testing.assert_array_equal(layout["frames"], [0, 2, 4, 6])  # first and last always in
  s = int(layout["scale"])
  assert s == 4 and layout["panel_origin"].shape == (4, 3, 2) and layout["tracks"].size == 0
  for r, f in enumerate(layout["frames"]):
    for c, video in enumerate((ref, gen, gt)):
      x0, y0 = layout["panel_origin"][r, c]
      np.testing.assert_array_equal(image[y0:y0 + 8 * s, x0:x0 + 10 * s], _enlarged(video[f], s))
  origins = layout["panel_origin"]
  assert np.all(np.diff(origins[:, 0, 1]) >= 8 * s) and np.all(np.diff(origins[0, :, 0]) >= 10 * s)  # no overlap
  two, layout2 = visualize.comparison_strip(ref, gen, min_side=32)  # no ground truth: two panels
  assert layout2["panel_origin"].shape == (4, 2, 2) and two.shape[0] == image.shape[0]
  assert two.shape[1] == image.shape[1] - (origins[0, 2, 0] - origins[0, 1, 0])
  _, short = visualize.comparison_strip(ref[:2], gen[:2], num_rows=4)
  np.testing.assert_array_equal(short["frames"], [0, 1])


def test_point_predicted_occluded_everywhere_is_drawn_hollow_with_one_colour_per_point():
  t = 5
  grey = np.full((t, 16, 16, 3), 128, np.uint8)
  tracks = np.zeros((2, t, 3, 2), np.float32)
  tracks[:, :, 0] = (4.5, 4.5)  # visible everywhere
  tracks[:, :, 1] = (11.5, 11.5)  # predicted occluded at every frame in both views
  tracks[:, :, 2] = (4.5, 11.5)
  visible = np.ones((2, t, 3), bool)
  visible[:, :, 1] = False
  image, layout = visualize.comparison_strip(grey, grey, grey, tracks=tracks, visible=visible, gt_tracks=tracks[1],
                                             gt_visible=visible[1], min_side=64)
  plain, _ = visualize.comparison_strip(grey, grey, grey, min_side=64)
  colors = drawing.track_colors(3)
  np.testing.assert_array_equal(layout["tracks"], [0, 1, 2])
  np.testing.assert_array_equal(layout["colors"], colors)
  s = int(layout["scale"])
  for r in range(layout["frames"].size):
    for c in range(3):
      x0, y0 = layout["panel_origin"][r, c]
      for point in (0, 2):  # solid dots in their own colour, the same in every panel and row
        x, y = tracks[0, 0, point]
        np.testing.assert_array_equal(image[int(y0 + s * y), int(x0 + s * x)], colors[point])
      cx, cy = int(x0 + s * 11.5), int(y0 + s * 11.5)
      np.testing.assert_array_equal(image[cy, cx], plain[cy, cx])  # hollow: the centre is untouched ...
      ring = image[cy - s - 3:cy + s + 4, cx - s - 3:cx + s + 4].astype(int)
      changed = np.any(ring != plain[cy - s - 3:cy + s + 4, cx - s - 3:cx + s + 4], axis=-1)
      assert changed.sum() >= 4 * s  # ... but a ring around it is drawn
      strongest = ring.reshape(-1, 3)[np.abs(ring - 128).sum(-1).argmax()]
      assert np.abs(colors.astype(int) - strongest).sum(-1).argmin() == 1  # in the point's colour


def test_bad_inputs_are_named():
  video = np.zeros((3, 8, 8, 3), np.uint8)
  with pytest.raises(ValueError, match="one shape"):
    visualize.comparison_strip(video, video[:, :4])
  with pytest.raises(ValueError, match="ground_truth"):
    visualize.comparison_strip(video, video, gt_tracks=np.zeros((3, 1, 2)), gt_visible=np.ones((3, 1), bool))
  with pytest.raises(ValueError, match="visible"):
    visualize.comparison_strip(video, video, tracks=np.zeros((2, 3, 1, 2)))
  with pytest.raises(ValueError, match="num_rows"):
    visualize.comparison_strip(video, video, num_rows=0)
