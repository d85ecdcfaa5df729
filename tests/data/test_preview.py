"""Tests of the dataset preview (side-by-side mp4 + track grid png) and its command line."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mvtrack_jax import drawing
from mvtrack_jax.data import preview
from mvtrack_jax.data import readers
from mvtrack_jax.data import schema
from mvtrack_jax.data import video_io
from tests.helpers import tiny_record
from tests.helpers import write_multicam_scene
from tests.helpers import run_cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _two_track_record():
  """Black frames, 2 views, 2 tracks: track 0 visible everywhere, track 1 occluded in view 0 frame 0."""
  rec = tiny_record(seed=0, num_views=2, num_frames=3, height=32, width=32, num_tracks=2)
  rec = dict(rec, video=np.zeros_like(rec["video"]))
  tracks = np.zeros((2, 3, 2, 2), np.float32)
  tracks[:, :, 0] = [10.5, 12.5]
  tracks[1, :, 0] = [25.25, 6.75]
  tracks[:, :, 1] = [22.5, 24.5]
  visible = np.ones((2, 3, 2), bool)
  visible[0, 0, 1] = False
  rec.update(tracks=tracks, visible=visible)
  return rec


def test_track_grid_draws_solid_visible_and_hollow_occluded_points_in_consistent_colours():
  rec = _two_track_record()
  grid, layout = preview.track_grid(rec, grid_frames=3, max_tracks=10, min_side=128)
  scale = int(layout["scale"])
  assert scale == 4
  np.testing.assert_array_equal(layout["frames"], [0, 1, 2])
  colors = drawing.track_colors(2)
  assert not np.array_equal(colors[0], colors[1])

  def pixel(view, col, xy):
    x0, y0 = layout["cell_origin"][view, col]
    return grid[y0 + int(scale * xy[1]), x0 + int(scale * xy[0])]

  # Visible track 0: solid dot of its colour in both views (different positions).
  np.testing.assert_array_equal(pixel(0, 0, (10.5, 12.5)), colors[0])
  np.testing.assert_array_equal(pixel(1, 2, (25.25, 6.75)), colors[0])
  # Track 1: occluded in view 0 frame 0 → hollow (centre stays black, ring has its colour).
  np.testing.assert_array_equal(pixel(0, 0, (22.5, 24.5)), [0, 0, 0])
  x0, y0 = layout["cell_origin"][0, 0]
  cx, cy = x0 + 4 * 22.5, y0 + 4 * 24.5
  ring = grid[int(cy) - 8:int(cy) + 8, int(cx) - 8:int(cx) + 8].reshape(-1, 3)
  assert np.any(np.all(np.abs(ring.astype(int) - colors[1]) < 40, axis=-1))
  # ... and visible (solid) in view 0 frame 1.
  np.testing.assert_array_equal(pixel(0, 1, (22.5, 24.5)), colors[1])


def test_write_preview_outputs(tmp_path):
  rec = tiny_record(seed=1, num_views=3, num_frames=5, height=17, width=20, num_tracks=16)
  paths = preview.write_preview(rec, tmp_path, min_side=64)
  video = video_io.read_video(paths["video"])
  scale = 4  # ceil(64 / 17)
  width = 3 * 20 * scale + 2 * 2
  assert video.shape == (5, 68, width, 3)
  # The middle view's panel holds view 1, enlarged.
  expect = np.repeat(np.repeat(rec["video"][1, 2], scale, 0), scale, 1)
  panel = video[2, :, 20 * scale + 2:2 * 20 * scale + 2]
  assert np.abs(panel.astype(int) - expect).mean() < 8
  png = cv2.imread(paths["tracks"])
  assert png is not None and png.shape[0] > 3 * 68 and png.shape[1] > 5 * 80
  assert sorted(os.listdir(tmp_path)) == ["preview.mp4", "tracks.png"]


def test_record_without_tracks(tmp_path):
  rec = tiny_record(seed=2, num_views=2, num_frames=2, height=16, width=16, num_tracks=0)
  assert rec["tracks"].shape[2] == 0
  grid, layout = preview.track_grid(rec, min_side=32)
  assert layout["tracks"].size == 0 and grid.dtype == np.uint8
  preview.write_preview(rec, tmp_path)
  assert (tmp_path / "tracks.png").exists()


def test_cli_on_npz_clip(tmp_path):
  clip = tmp_path / "clip.npz"
  readers.write_npz_clip(clip, tiny_record(seed=3, num_views=2, num_frames=4, height=32, width=32, num_tracks=8))
  out = tmp_path / "out"
  result = subprocess.run(
      [sys.executable, "-m", "mvtrack_jax.data.preview", "--npz", str(clip), "--out", str(out),
       "--num_frames", "3"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr
  assert "V=2 T=3 H=32 W=32 N=8" in result.stdout
  assert video_io.read_video(out / "preview.mp4").shape == (3, 128, 2 * 128 + 2, 3)
  assert (out / "tracks.png").stat().st_size > 0
  bad = subprocess.run(
      [sys.executable, "-m", "mvtrack_jax.data.preview", "--npz", str(tmp_path / "nope.npz"), "--out", str(out)],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert bad.returncode != 0 and "nope.npz" in bad.stderr


def test_load_record_errors(tmp_path):
  with pytest.raises(ValueError, match="at most one"):
    preview.load_record(npz="a.npz", multicam="scene")
  with pytest.raises(schema.RecordError, match="missing.npz"):
    preview.load_record(npz=str(tmp_path / "missing.npz"))


def test_multicam_scene_preview_is_decoded_at_max_side(tmp_path):
  rec = tiny_record(seed=4, num_views=2, num_frames=3, height=32, width=32, num_tracks=4)
  scene = tmp_path / "f35_aperture2.4" / "scene1"
  write_multicam_scene(str(scene), rec["world_to_camera"].astype(np.float64), rec["video"])
  record, name = preview.load_record(multicam=str(scene), max_side=16, num_frames=2)
  assert name == str(scene)
  assert record["video"].shape == (2, 2, 16, 16, 3) and record["tracks"].shape == (2, 2, 0, 2)
  np.testing.assert_allclose(record["intrinsics"][0, 0, 0, 0], 16 * 35 / 23.76, rtol=1e-5)
  paths = preview.write_preview(record, tmp_path / "out", min_side=32)
  assert video_io.read_video(paths["video"]).shape == (2, 32, 2 * 32 + 2, 3)


@pytest.fixture
def no_record(monkeypatch):
  """Reading (or building) the record fails the test: every check must come before it."""
  def read(**_):
    raise AssertionError("a record was read before the paths were checked")
  monkeypatch.setattr(preview, "load_record", read)


def test_cli_out_that_is_a_file_is_named_before_the_record_is_read(tmp_path, no_record):
  clip = tmp_path / "clip.npz"
  clip.write_bytes(b"not read")
  for out in (clip, clip / "below"):
    with pytest.raises(NotADirectoryError, match=f"--out {out}: .*is a file"):
      run_cli(preview, "--npz", str(clip), "--out", str(out))


def test_cli_read_only_parent_of_out_is_named(no_record, locked_dir):
  with pytest.raises(PermissionError, match=f"--out {locked_dir / 'out'}: cannot write in {locked_dir}"):
    run_cli(preview, "--out", str(locked_dir / "out"))


def test_cli_missing_inputs_are_named_before_the_record_is_read(tmp_path, no_record):
  out = tmp_path / "out"
  with pytest.raises(FileNotFoundError, match=f"--npz {tmp_path / 'missing.npz'}: no such file"):
    run_cli(preview, "--npz", str(tmp_path / "missing.npz"), "--out", str(out))
  with pytest.raises(FileNotFoundError, match=f"--multicam {tmp_path / 'scene9'}: no such folder"):
    run_cli(preview, "--multicam", str(tmp_path / "scene9"), "--out", str(out))
  assert not out.exists()
