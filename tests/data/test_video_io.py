"""Tests of mp4 reading/writing (PyAV, in this process)."""

import concurrent.futures
import logging
import os
import subprocess
import threading

import numpy as np
import pytest

from mvtrack_jax.data import video_io


def _gradient_video(t=4, h=24, w=32):
  """Smooth frames (H.264 keeps them within a few levels) that differ per frame."""
  ys, xs = np.mgrid[0:h, 0:w]
  frames = []
  for i in range(t):
    r = (xs * 255 / max(w - 1, 1))
    g = (ys * 255 / max(h - 1, 1))
    b = np.full_like(r, 40 * i + 20)
    frames.append(np.stack([r, g, b], -1))
  return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def test_round_trip_shape_values_and_fps(tmp_path):
  video = _gradient_video()
  path = tmp_path / "sub" / "clip.mp4"
  video_io.write_video(path, video, fps=15)
  back = video_io.read_video(path)
  assert back.shape == video.shape and back.dtype == np.uint8
  assert np.abs(back.astype(int) - video).mean() < 6.0
  # Frames stay in order: the blue channel encodes the frame index.
  np.testing.assert_allclose(back[..., 2].mean(axis=(1, 2)), 40 * np.arange(4) + 20, atol=4)
  assert video_io.video_fps(path) == pytest.approx(15.0)


def test_odd_sizes_are_padded_not_resized(tmp_path):
  video = _gradient_video(t=3, h=17, w=23)
  path = tmp_path / "odd.mp4"
  video_io.write_video(path, video)
  back = video_io.read_video(path)
  assert back.shape == (3, 18, 24, 3)
  # The original pixels keep their coordinates (no rescale): compare the original region.
  assert np.abs(back[:, :17, :23].astype(int) - video).mean() < 6.0
  # Padding replicates the edge.
  assert np.abs(back[:, 17].astype(int) - back[:, 16]).mean() < 6.0


def test_num_frames_and_stride(tmp_path):
  video = _gradient_video(t=6)
  path = tmp_path / "clip.mp4"
  video_io.write_video(path, video)
  part = video_io.read_video(path, num_frames=2, frame_stride=2)
  assert part.shape == (2,) + video.shape[1:]
  np.testing.assert_allclose(part[..., 2].mean(axis=(1, 2)), [20, 100], atol=4)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
  path = tmp_path / "clip.mp4"
  video_io.write_video(path, _gradient_video(t=2))
  before = path.read_bytes()
  with pytest.raises(video_io.VideoError, match="uint8"):
    video_io.write_video(path, np.zeros((2, 8, 8, 3), np.float32))
  with pytest.raises(video_io.VideoError, match=r"\(T, H, W, 3\)"):
    video_io.write_video(path, np.zeros((8, 8, 3), np.uint8))
  assert path.read_bytes() == before
  assert os.listdir(tmp_path) == ["clip.mp4"]  # no temporary files left behind


def test_missing_empty_and_corrupt_files_name_the_file(tmp_path):
  missing = tmp_path / "missing.mp4"
  with pytest.raises(video_io.VideoError, match="missing.mp4.*not found"):
    video_io.read_video(missing)
  empty = tmp_path / "empty.mp4"
  empty.write_bytes(b"")
  with pytest.raises(video_io.VideoError, match="empty.mp4.*empty"):
    video_io.read_video(empty)
  garbage = tmp_path / "garbage.mp4"
  garbage.write_bytes(b"not a video" * 50)
  with pytest.raises(video_io.VideoError, match="garbage.mp4"):
    video_io.read_video(garbage)
  good = tmp_path / "good.mp4"
  video_io.write_video(good, _gradient_video(t=4))
  truncated = tmp_path / "truncated.mp4"
  data = good.read_bytes()
  truncated.write_bytes(data[: len(data) // 2])
  with pytest.raises(video_io.VideoError, match="truncated.mp4"):
    video_io.read_video(truncated)


def test_bad_arguments(tmp_path):
  path = tmp_path / "clip.mp4"
  video_io.write_video(path, _gradient_video(t=2))
  with pytest.raises(video_io.VideoError, match="num_frames"):
    video_io.read_video(path, num_frames=0)
  with pytest.raises(video_io.VideoError, match="frame_stride"):
    video_io.read_video(path, frame_stride=0)
  with pytest.raises(video_io.VideoError, match="fps"):
    video_io.write_video(path, _gradient_video(t=2), fps=0)


def test_check_output_file(tmp_path):
  (tmp_path / "a_file").write_text("x")
  assert video_io.check_output_file(tmp_path / "a_file", "--out") == str(tmp_path / "a_file")  # replaced later
  assert video_io.check_output_file(tmp_path / "new" / "deeper" / "clip.npz") == str(tmp_path / "new/deeper/clip.npz")
  assert not (tmp_path / "new").exists() and sorted(os.listdir(tmp_path)) == ["a_file"]  # nothing was written
  with pytest.raises(IsADirectoryError, match=f"--npz_out {tmp_path}: is a folder, not a file"):
    video_io.check_output_file(tmp_path, "--npz_out")
  with pytest.raises(NotADirectoryError, match=r"--out .*a_file/below/clip.npz: .*a_file is a file"):
    video_io.check_output_file(tmp_path / "a_file" / "below" / "clip.npz")


def test_check_output_file_in_a_read_only_folder(locked_dir):
  with pytest.raises(PermissionError, match=r"--out .*locked/sub/clip.npz: cannot write in .*locked"):
    video_io.check_output_file(locked_dir / "sub" / "clip.npz")


def test_read_video_shrinks_while_decoding_and_stops_at_the_last_frame_needed(tmp_path):
  path = tmp_path / "clip.mp4"
  video = _gradient_video(t=9, h=48, w=64)
  video_io.write_video(path, video)
  small = video_io.read_video(path, num_frames=3, frame_stride=4, size=(12, 16))
  assert small.shape == (3, 12, 16, 3)
  # Area averaging: each pixel is about the mean of its 4x4 block (within H.264 4:2:0 error at the edges).
  expected = video[[0, 4, 8]].reshape(3, 12, 4, 16, 4, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(small.astype(float), expected, atol=12)
  with pytest.raises(video_io.VideoError, match="size"):
    video_io.read_video(path, size=(0, 16))


def test_no_child_process_is_started(tmp_path, monkeypatch):
  """Encoding, decoding and header reads run in this process: a forked child that runs Python before exec (as
  imageio-ffmpeg's preexec_fn did) could deadlock a process with many threads (a finished run that never exited)."""
  def refuse(*args, **kwargs):
    raise AssertionError("video_io started a child process")
  monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
  monkeypatch.setattr(os, "fork", refuse)
  monkeypatch.setattr(os, "posix_spawn", refuse)
  path = tmp_path / "clip.mp4"
  video_io.write_video(path, _gradient_video(t=3))
  assert video_io.read_video(path, size=(12, 16)).shape == (3, 12, 16, 3)
  assert video_io.frame_size(path) == (24, 32) and video_io.video_fps(path) == pytest.approx(15.0)


def test_many_concurrent_decodes_and_encodes_finish(tmp_path):
  """A stress test: 8 threads encode and decode 40 clips while 4 more keep taking a lock and logging (the shape of
  the hang: many busy threads when a decoder starts); every call must finish within the timeout."""
  source = tmp_path / "source.mp4"
  video = _gradient_video(t=5)
  video_io.write_video(source, video)
  stop, lock = threading.Event(), threading.Lock()

  def busy():
    while not stop.is_set():
      with lock:
        logging.getLogger("busy").debug("working")

  def job(i):
    video_io.write_video(tmp_path / f"out{i}.mp4", video[:, :, ::-1] if i % 2 else video, fps=10 + i)
    return video_io.read_video(tmp_path / f"out{i}.mp4", num_frames=3, size=(12, 16)).shape, \
        video_io.read_video(source, frame_stride=2).shape

  workers = [threading.Thread(target=busy, daemon=True) for _ in range(4)]
  for w in workers:
    w.start()
  try:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
      futures = [pool.submit(job, i) for i in range(40)]
      done, not_done = concurrent.futures.wait(futures, timeout=120)
      assert not not_done, f"{len(not_done)} of 40 video calls still running after 120 s"
      assert {f.result() for f in done} == {((3, 12, 16, 3), (3, 24, 32, 3))}
  finally:
    stop.set()
