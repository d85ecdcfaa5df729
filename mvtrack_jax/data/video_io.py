"""Reading and writing RGB videos as mp4 files.

Videos are ``(T, H, W, 3)`` uint8 arrays (channels-last, docs/design.md §3). Encoding and decoding run
in this process through PyAV (FFmpeg's libraries, bundled in the ``av`` wheel, so nothing has to be
installed system-wide). No ffmpeg child process is started: a fork of a process with many threads
(JAX, grain, TensorBoard) that then runs Python code before ``exec`` — what imageio-ffmpeg's
``preexec_fn=os.setpgrp`` did — could deadlock on a lock held by another thread (seen once: a
training run that had finished never exited). Files are H.264 (``libx264``) with ``yuv420p`` chroma
subsampling, the pixel format every player and the ReCamMaster / MultiCamVideo files use.

``yuv420p`` needs even frame sizes: odd heights/widths are padded by one row/column replicating
the edge pixels (never resized, so pixel coordinates of the original frames stay valid in the
file).

Writes are atomic: the video is encoded into a temporary file in the destination directory and
moved over the destination with ``os.replace``, so a crash never leaves a truncated mp4 behind.
A missing, empty or undecodable file raises ``VideoError`` naming the file.

H.264 is lossy: a round trip changes pixel values by a few levels (more on sharp edges and
saturated colours because of the 4:2:0 chroma subsampling).
"""

from __future__ import annotations

import contextlib
import fractions
import os
import tempfile
from typing import Iterator

import av
import numpy as np

from mvtrack_jax import errors

DEFAULT_FPS = 15.0
_CODEC = "libx264"
# Permission bits of newly created files (tempfile.mkstemp makes 0600 files; give the final file
# the mode an ordinary open() would). Read once at import: os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
_PIXEL_FORMAT = "yuv420p"


class VideoError(errors.InputFileError):
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
    fps: frame rate in frames per second (MultiCamVideo uses 15); stored as a fraction (25/3 stays
      exact, 29.97 becomes 30000/1001).
    quality: 0–10 (10 = best, largest files), x264's constant rate factor ``crf = int((1 - quality / 10) · 51)``
      (the scale imageio-ffmpeg uses, so files match the ones earlier versions wrote); ``None`` leaves x264's
      default rate control.

  Raises:
    VideoError: ``video`` is not a non-empty ``(T, H, W, 3)`` uint8 array, ``fps`` is not positive,
      ``quality`` is outside 0–10, or encoding fails (the message names ``path``).
  """
  path = os.fspath(path)
  video = pad_to_even(_check_video_array(video, name=f"write_video({path!r})"))
  if not (np.isfinite(fps) and fps > 0):
    raise VideoError(f"write_video({path!r}): fps must be positive, got {fps}")
  if quality is not None and not 0 <= quality <= 10:
    raise VideoError(f"write_video({path!r}): quality must be in [0, 10] or None, got {quality}")
  options = {} if quality is None else {"crf": str(int((1 - quality / 10) * 51))}
  try:
    with atomic_output(path) as tmp:
      with av.open(tmp, mode="w", format="mp4") as container:
        stream = container.add_stream(_CODEC, rate=fractions.Fraction(fps).limit_denominator(1001), options=options)
        stream.height, stream.width = video.shape[1:3]
        stream.pix_fmt = _PIXEL_FORMAT
        for frame in video:
          container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))  # flush the encoder's delayed frames
  except (av.FFmpegError, ValueError, OSError) as e:
    raise VideoError(f"{path}: failed to encode video of shape {video.shape}: {e}") from e


def read_video(path: str | os.PathLike[str], *, num_frames: int | None = None,
               frame_stride: int = 1, size: tuple[int, int] | None = None) -> np.ndarray:
  """Reads an mp4 (or any video FFmpeg decodes) into RGB frames.

  Args:
    path: video file.
    num_frames: read at most this many frames (after striding); ``None`` reads all of them. Decoding
      stops at the last source frame needed.
    frame_stride: keep every ``frame_stride``-th frame, starting with frame 0.
    size: ``(height, width)`` each kept frame is scaled to as it is converted from the decoder
      (libswscale's area averaging), so a large video never reaches numpy at full size; ``None`` keeps
      the file's size.

  Returns:
    ``(T, H, W, 3)`` uint8 frames.

  Raises:
    VideoError: the file does not exist, is empty, cannot be decoded, or has fewer than one frame,
      or ``num_frames`` / ``frame_stride`` / ``size`` are not positive. The message names the file.
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
  produced = 0
  with _open(path) as container:
    stream = container.streams.video[0]
    if size is not None:
      # One decoding thread: frame threading keeps a full-size frame per thread, and shrunk reads are of
      # a few frames of a large video.
      stream.thread_count = 1
    try:
      for index, frame in enumerate(container.decode(stream)):
        if num_frames is not None and produced == num_frames:
          break
        if index % frame_stride:
          continue
        if size is None:
          array = frame.to_ndarray(format="rgb24")
        else:
          array = frame.to_ndarray(height=int(size[0]), width=int(size[1]), format="rgb24", interpolation="AREA")
        produced += 1
        yield array
    except (av.FFmpegError, ValueError) as e:
      raise VideoError(f"{path}: failed to decode frame {produced * frame_stride} (corrupt video?): {e}") from e
  if produced == 0:
    raise VideoError(f"{path}: no decodable frames (corrupt or empty video)")


@contextlib.contextmanager
def _open(path: str) -> Iterator[av.container.InputContainer]:
  """The file opened for decoding, with a video stream; ``VideoError`` naming the file otherwise."""
  if not os.path.isfile(path):
    raise VideoError(f"{path}: video file not found")
  if os.path.getsize(path) == 0:
    raise VideoError(f"{path}: video file is empty (0 bytes)")
  try:
    container = av.open(path, mode="r")
  except (av.FFmpegError, ValueError, OSError) as e:
    raise VideoError(f"{path}: cannot open video (corrupt or not a video file): {e}") from e
  try:
    if not container.streams.video:
      raise VideoError(f"{path}: holds no video stream")
    yield container
  finally:
    container.close()


def frame_size(path: str | os.PathLike[str]) -> tuple[int, int]:
  """``(height, width)`` of a video's frames from its stream header, without decoding; ``VideoError`` if unreadable."""
  path = os.fspath(path)
  with _open(path) as container:
    codec = container.streams.video[0].codec_context
    if not (codec.height > 0 and codec.width > 0):
      raise VideoError(f"{path}: the video stream declares no frame size")
    return int(codec.height), int(codec.width)


def video_fps(path: str | os.PathLike[str]) -> float:
  """Frame rate stored in a video file's stream header (frames per second); ``VideoError`` if unreadable
  or when the file declares none."""
  path = os.fspath(path)
  with _open(path) as container:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    if not rate or rate <= 0:
      raise VideoError(f"{path}: the video stream declares no frame rate")
    return float(rate)
