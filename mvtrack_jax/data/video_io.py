"""Reading and writing RGB videos as mp4 files.

Videos are ``(T, H, W, 3)`` uint8 arrays (channels-last, docs/design.md §3). Encoding uses imageio's
``ffmpeg`` plugin with the ffmpeg binary that the ``imageio-ffmpeg`` wheel ships, so nothing has
to be installed system-wide. Files are H.264 (``libx264``) with ``yuv420p`` chroma subsampling,
the pixel format every player and the ReCamMaster / MultiCamVideo files use.

``yuv420p`` needs even frame sizes: odd heights/widths are padded by one row/column replicating
the edge pixels (never resized, so pixel coordinates of the original frames stay valid in the
file). imageio-ffmpeg's default rounding of sizes up to a multiple of 16 (``macro_block_size``),
which would *rescale* the frames, is switched off.

Writes are atomic: the video is encoded into a temporary file in the destination directory and
moved over the destination with ``os.replace``, so a crash never leaves a truncated mp4 behind.
A missing, empty or undecodable file raises ``VideoError`` naming the file.

H.264 is lossy: a round trip changes pixel values by a few levels (more on sharp edges and
saturated colours because of the 4:2:0 chroma subsampling).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from typing import Iterator

import imageio.v2 as imageio
import numpy as np

# ffmpeg runs in a child started by subprocess (fork + exec): the child never runs JAX, so JAX's
# "os.fork() was called ... deadlock" warning does not apply to these forks; only they are silenced.
warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning, module="subprocess")


class _RequestedSizeNotice(logging.Filter):
  """Drops imageio-ffmpeg's warning that a reader's frame size differs from the file's: ``read_video(size=...)``
  asks ffmpeg for exactly that."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("The frame size for reading")


logging.getLogger("imageio_ffmpeg").addFilter(_RequestedSizeNotice())

DEFAULT_FPS = 15.0
_CODEC = "libx264"
# Permission bits of newly created files (tempfile.mkstemp makes 0600 files; give the final file
# the mode an ordinary open() would). Read once at import: os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
_PIXEL_FORMAT = "yuv420p"


class VideoError(OSError):
  """A video file is missing, unreadable, corrupt, or a video array is malformed."""


def _check_video_array(video: np.ndarray, name: str = "video") -> np.ndarray:
  video = np.asarray(video)
  if video.ndim != 4 or video.shape[-1] != 3:
    raise VideoError(f"{name}: shape {video.shape}, expected (T, H, W, 3)")
  if video.dtype != np.uint8:
    raise VideoError(f"{name}: dtype {video.dtype}, expected uint8")
  if min(video.shape[:3]) < 1:
    raise VideoError(f"{name}: empty video of shape {video.shape}")
  return video


def _brief(error: Exception, max_lines: int = 4) -> str:
  """The informative lines of an imageio/ffmpeg error (drops ffmpeg's version/configuration banner)."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  banner = ("ffmpeg version", "built with", "configuration:", "lib", "=== stderr")
  kept = [line for line in lines if not line.startswith(banner)]
  if len(kept) > max_lines:
    kept = kept[:1] + kept[-(max_lines - 1):]
  return " | ".join(kept) or type(error).__name__


def pad_to_even(video: np.ndarray) -> np.ndarray:
  """Pads ``(T, H, W, C)`` frames to even ``H`` and ``W`` by replicating the last row/column.

  Padding is added at the bottom/right only, so pixel coordinates (corner origin) are unchanged.
  Returns the input itself when both sizes are already even.
  """
  _, h, w, _ = video.shape
  pad_h, pad_w = h % 2, w % 2
  if not (pad_h or pad_w):
    return video
  return np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[str]:
  """Yields a temporary path next to ``path`` that is moved onto ``path`` on success.

  The temporary file keeps ``path``'s suffix (ffmpeg and numpy pick the format from it) and lives
  in the same directory so ``os.replace`` is an atomic rename. On any exception the temporary file
  is removed and ``path`` is left untouched. The destination directory is created if needed.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  base = os.path.basename(path)
  _, suffix = os.path.splitext(base)
  fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{suffix}", dir=directory)
  os.close(fd)
  try:
    yield tmp
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def check_output_dir(path: str | os.PathLike[str], flag: str = "--out") -> str:
  """Checks, before any work and without writing anything, that a command can write its output folder.

  The folder must be a folder if it exists; it (or, when missing, its nearest existing ancestor, where
  it will be created) must accept a new file (checked by creating and removing a temporary file).

  Returns:
    The absolute path.

  Raises:
    NotADirectoryError: ``path`` or a parent of it is a file. PermissionError: not writable.
  """
  path = os.path.abspath(os.fspath(path))
  _check_writable_ancestor(path, path, flag)
  return path


def _check_writable_ancestor(path: str, start: str, flag: str) -> None:
  """The nearest existing folder at or above ``start`` must accept a new file (``path`` names the output).

  Raises:
    NotADirectoryError: that nearest existing path is a file. PermissionError: the folder is not writable.
  """
  probe = start
  while not os.path.exists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise NotADirectoryError(f"{flag} {path}: " + ("is a file, not a folder" if probe == path else
                                                   f"{probe} is a file, so the folder cannot be made"))
  try:
    with tempfile.TemporaryFile(dir=probe):
      pass
  except OSError as e:
    raise PermissionError(f"{flag} {path}: cannot write in {probe} ({e.strerror})") from e


def check_output_file(path: str | os.PathLike[str], flag: str = "--out") -> str:
  """Checks, before any work and without writing anything, that a command can write its output file.

  The path must not be a folder (an existing file is fine: it is replaced); its folder (or, when missing,
  that folder's nearest existing ancestor, where it will be created) must accept a new file (checked by
  creating and removing a temporary file).

  Returns:
    The absolute path.

  Raises:
    IsADirectoryError: ``path`` is a folder. NotADirectoryError: a parent of it is a file.
    PermissionError: not writable.
  """
  path = os.path.abspath(os.fspath(path))
  if os.path.isdir(path):
    raise IsADirectoryError(f"{flag} {path}: is a folder, not a file")
  _check_writable_ancestor(path, os.path.dirname(path), flag)
  return path


def ensure_input_file(path: str | os.PathLike[str], flag: str) -> str:
  """``path`` if it is an existing, readable file; else ``FileNotFoundError`` naming ``flag``."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{flag} {path}: no such file")
  if not os.access(path, os.R_OK):
    raise PermissionError(f"{flag} {path}: not readable")
  return path


def write_video(path: str | os.PathLike[str], video: np.ndarray, *, fps: float = DEFAULT_FPS,
                quality: float | None = 8.0) -> None:
  """Writes an RGB video to an H.264 / yuv420p mp4 file atomically.

  Args:
    path: destination file (``.mp4``); parent directories are created.
    video: ``(T, H, W, 3)`` uint8 RGB frames. Odd ``H``/``W`` are padded to even by edge replication
      (bottom/right), so the file holds ``(T, H + H % 2, W + W % 2, 3)``.
    fps: frame rate in frames per second (MultiCamVideo uses 15).
    quality: imageio-ffmpeg quality on a 0–10 scale (10 = best, largest files); ``None`` leaves the
      encoder's default rate control.

  Raises:
    VideoError: ``video`` is not a non-empty ``(T, H, W, 3)`` uint8 array, ``fps`` is not positive,
      or ffmpeg fails to encode (the message names ``path``).
  """
  path = os.fspath(path)
  video = pad_to_even(_check_video_array(video, name=f"write_video({path!r})"))
  if not fps > 0:
    raise VideoError(f"write_video({path!r}): fps must be positive, got {fps}")
  try:
    with atomic_output(path) as tmp:
      writer = imageio.get_writer(
          tmp, format="FFMPEG", mode="I", fps=fps, codec=_CODEC, pixelformat=_PIXEL_FORMAT,
          quality=quality, macro_block_size=1, ffmpeg_log_level="error")
      try:
        for frame in video:
          writer.append_data(frame)
      finally:
        writer.close()
  except VideoError:
    raise
  except Exception as e:  # imageio/ffmpeg raise a variety of types.
    raise VideoError(f"{path}: failed to encode video of shape {video.shape}: {_brief(e)}") from e


def read_video(path: str | os.PathLike[str], *, num_frames: int | None = None,
               frame_stride: int = 1, size: tuple[int, int] | None = None) -> np.ndarray:
  """Reads an mp4 (or any ffmpeg-readable video) into RGB frames.

  Args:
    path: video file.
    num_frames: read at most this many frames (after striding); ``None`` reads all of them. ffmpeg is
      told to stop after the last source frame needed.
    frame_stride: keep every ``frame_stride``-th frame, starting with frame 0.
    size: ``(height, width)`` that ffmpeg scales each frame to while decoding (area averaging), so a
      large video never reaches Python at full size; ``None`` keeps the file's size.

  Returns:
    ``(T, H, W, 3)`` uint8 frames.

  Raises:
    VideoError: the file does not exist, is empty, cannot be decoded, or has fewer than one frame,
      or ``num_frames`` / ``frame_stride`` are not positive. The message names the file.
  """
  return np.stack(list(iter_video(path, num_frames=num_frames, frame_stride=frame_stride, size=size)))


def iter_video(path: str | os.PathLike[str], *, num_frames: int | None = None,
               frame_stride: int = 1, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
  """Yields ``(H, W, 3)`` uint8 frames of a video one at a time (see ``read_video``).

  Decoding stops as soon as ``num_frames`` frames were produced, so reading a prefix of a long
  video costs only that prefix. Raises ``VideoError`` (naming the file) as ``read_video`` does.
  """
  path = os.fspath(path)
  if num_frames is not None and num_frames < 1:
    raise VideoError(f"{path}: num_frames must be >= 1 or None, got {num_frames}")
  if frame_stride < 1:
    raise VideoError(f"{path}: frame_stride must be >= 1, got {frame_stride}")
  if size is not None and (len(size) != 2 or min(size) < 1):
    raise VideoError(f"{path}: size must be (height, width) >= 1, got {size}")
  output_params, input_params = [], []
  if num_frames is not None:  # ffmpeg stops by itself (closing it early means killing it, with a warning)
    output_params += ["-frames:v", str((num_frames - 1) * frame_stride + 1)]
  if size is not None:
    output_params += ["-sws_flags", "area"]
    # One decoding thread: frame threading keeps a full-size frame per thread (an 8K clip: 620 MB in ffmpeg
    # with the default threads, 430 MB with one; 2-core CPU, 2026-12-07). Shrunk reads are of a few frames.
    input_params += ["-threads", "1"]
  if not os.path.isfile(path):
    raise VideoError(f"{path}: video file not found")
  if os.path.getsize(path) == 0:
    raise VideoError(f"{path}: video file is empty (0 bytes)")
  try:
    reader = imageio.get_reader(path, format="FFMPEG", mode="I", output_params=output_params, input_params=input_params,
                                size=None if size is None else (int(size[1]), int(size[0])))
  except Exception as e:
    raise VideoError(f"{path}: cannot open video (corrupt or not a video file): {_brief(e)}") from e
  produced = 0
  try:
    index = 0
    while num_frames is None or produced < num_frames:
      try:
        frame = reader.get_next_data()
      except IndexError:
        break
      except Exception as e:
        raise VideoError(f"{path}: failed to decode frame {index} (corrupt video?): {_brief(e)}") from e
      if index % frame_stride == 0:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
          raise VideoError(f"{path}: frame {index} has shape {frame.shape} dtype {frame.dtype}, "
                           "expected (H, W, 3) uint8 RGB")
        produced += 1
        yield frame
      index += 1
  finally:
    reader.close()
  if produced == 0:
    raise VideoError(f"{path}: no decodable frames (corrupt or empty video)")


def frame_size(path: str | os.PathLike[str]) -> tuple[int, int]:
  """``(height, width)`` of a video's frames from its metadata, without decoding; ``VideoError`` if unreadable."""
  width, height = _metadata(path)["size"]
  return int(height), int(width)


def _metadata(path: str | os.PathLike[str]) -> dict:
  """The ffmpeg reader's metadata of a video file; ``VideoError`` naming the file if unreadable."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise VideoError(f"{path}: video file not found")
  try:
    # ffmpeg starts decoding as the reader opens: one thread and one frame keep that cheap for large videos.
    reader = imageio.get_reader(path, format="FFMPEG", mode="I", input_params=["-threads", "1"],
                                output_params=["-frames:v", "1"])
  except Exception as e:
    raise VideoError(f"{path}: cannot open video (corrupt or not a video file): {_brief(e)}") from e
  try:
    return reader.get_meta_data()
  finally:
    reader.close()


def video_fps(path: str | os.PathLike[str]) -> float:
  """Frame rate stored in a video file's metadata (frames per second); ``VideoError`` if unreadable."""
  return float(_metadata(path)["fps"])
