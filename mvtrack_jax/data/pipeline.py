"""The grain input pipeline: records → fixed-shape training batches of (reference, target) pairs.

Stages (grain 0.2.18 dataset API, docs/design.md §2):

1. ``grain.MapDataset.source(source)``: any random-access source — an object with ``len`` and
   ``__getitem__`` returning schema records (the TFDS data source of
   ``synthetic_dataset.load_split``, ``readers.NpzClipSource``, ``readers.MultiCamVideoSource``, a
   plain list of records).
2. Per-process shard: record ``i`` goes to process ``i mod shard_count`` (grain ``ShardOptions``;
   default ``grain.sharding.ShardByJaxProcess(drop_remainder=True)``, which is process 0 of 1 when
   ``jax.distributed`` is not initialised). With ``drop_remainder`` every shard has the same length
   ``⌊len / shard_count⌋`` so all processes step in lockstep.
3. Training: seeded ``shuffle`` and endless ``repeat`` (a new permutation each epoch); evaluation:
   one pass in source order.
4. Per example (``sample_example``, a plain function): an ordered pair of distinct views
   (reference, target), a window of ``num_frames`` frames ``start, start + stride, …``, resize to
   cover ``(height, width)`` (cv2 ``INTER_AREA`` when shrinking, ``INTER_LINEAR`` when enlarging)
   and crop (random offset in training, centred in evaluation) with intrinsics and tracks updated
   by ``geometry.scale_intrinsics`` / ``crop_intrinsics`` and ``xy · s − offset``; points leaving
   the crop become invisible. Cameras are returned as camera-to-world poses relative to the
   reference camera at frame 0 of the window (``geometry.relative_to_reference``). The part of
   the record an example uses (two views × the window; ``depth`` is not used) is checked with
   ``schema.validate_record`` first, so bad data fails with an error naming the source index.
   Everything after drawing the view pair and window start is ``window_example`` (deterministic for
   given views/start; evaluation calls it directly).
5. Query points: sampled **uniformly over the (t, n) entries visible in the reference view**, with
   distinct points preferred: a uniformly random permutation of all visible entries is taken and
   the first occurrence of each point comes first (so each point appears at most once while
   enough distinct points exist, and points visible in more frames are proportionally more likely
   to be picked); repeated points at other frames fill up next; the rest is padding with
   ``track_mask = False`` (records with fewer visible entries than ``num_query_points``, and
   records without tracks, ``N = 0``, e.g. MultiCamVideo).
6. ``batch`` into fixed shapes; ``to_iter_dataset`` with thread prefetch; optional multiprocess
   prefetch (``config.worker_count > 0``; needs parsed absl flags and a ``__main__`` guard).

**Mixtures** (``make_mixture_dataset``, training): stages 2–4 run per source with its own seed
stream, ``grain.MapDataset.mix`` interleaves the example streams by weight, then stage 6 batches
them, so a batch may hold examples of trackless sources (all-false ``track_mask``) next to tracked
ones; each example carries ``source_id``.

Determinism: every random choice of an example comes from
``np.random.SeedSequence([seed, shard_index, example_index])`` where ``example_index`` is the
position in this process's (shuffled, repeated) stream, so a restored iterator
(``get_state``/``set_state``; the state is a small JSON-serialisable dict, checkpointable with
``grain.checkpoint`` inside Orbax) produces exactly the batches it would have produced.

Output batch (``B`` = per-process batch size, ``T`` = num_frames, ``N`` = num_query_points,
``H × W`` = output size; cameras OpenCV axes in metres):

=========================== ================= ================================================
key                         shape / dtype     meaning
=========================== ================= ================================================
reference_video             (B,T,H,W,3) uint8 reference view frames
target_video                (B,T,H,W,3) uint8 target view frames
reference_intrinsics        (B,T,3,3) f32     K in pixels of the output H × W
target_intrinsics           (B,T,3,3) f32
reference_cam_to_world      (B,T,4,4) f32     relative to reference camera at window frame 0
target_cam_to_world         (B,T,4,4) f32     (so reference_cam_to_world[:, 0] is identity)
query_points                (B,N,3) f32       (t, x, y): frame in the window, reference pixels
tracks                      (B,2,T,N,2) f32   (x, y) output pixels; view 0 reference, 1 target
visible                     (B,2,T,N) bool
track_mask                  (B,N) bool        True for real query points, False for padding
reference_latents (cache)   (B,F,h,w,z) f32   cached VAE latents of the window (``latent_shape``)
target_latents (cache)      (B,F,h,w,z) f32
context (text)              (B,L,D) f32       caption embeddings, zero-padded (``context_shape``)
image_context (image)       (B,N,D) f32       CLIP features of the reference view (``image_shape``)
=========================== ================= ================================================

**Text** (``config.context_shape = (L, D)`` set; ``data.feature_cache``): each record carries
``context``, umT5 embeddings of its caption ``(L_rec, D)`` or of each view's ``(V, L_rec, D)``; an
example takes the **reference view's** caption (at inference the reference is the only video there
is to caption) and zero-pads it to ``L`` rows as Wan does. Caption dropout is not applied here: the
objective replaces whole contexts by the model's null context (``losses.objective``).

**Image** (``config.image_shape = (N, D)`` set; ``data.feature_cache``): each record carries
``image_context`` ``(V, N, D)``, the CLIP features of the first frame of every view (encoded once at
the output size with the centred crop); an example takes the **reference view's** ``(N, D)``, as
ReDirector conditions on the reference video's first frame. They are record frame 0's: the window's
first frame when it starts at 0 (the ReCamMaster/ReDirector setting, 81-frame records and windows),
a nearby frame of the same view otherwise, and the centred crop's even when training crops at random.

**Cached latents** (``config.latent_shape`` set; ``data.feature_cache``): each record carries
``latents`` ``(V, F_rec, h, w, z)``, the normalised VAE latents of every view of the whole record,
encoded once at the output size with the centred crop. A window then starts at a multiple of the
VAE's temporal factor ``k`` (the latent stride), uses every frame (``frame_stride`` 1), is centred
(no random crop) and takes latent frames ``start/k … start/k + F − 1``. Tracks and cameras stay at
video frame rate. For ``start > 0`` the window's first latent frame is a 4-frame chunk of the
record's latent sequence, not the single-frame latent a fresh encode of the window would give
(the ReCamMaster setting, 81-frame records and windows, always has ``start = 0``).

Pixel coordinates have the origin at the top-left corner of the top-left pixel and pixel centres
at +0.5 (TAP-Vid convention, docs/design.md §3).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import cv2
import grain
import numpy as np

from mvtrack_jax.data import schema
from mvtrack_jax.geometry import cameras as geometry

Example = dict[str, np.ndarray]

OUTPUT_KEYS = (
    "reference_video", "target_video", "reference_intrinsics", "target_intrinsics",
    "reference_cam_to_world", "target_cam_to_world", "query_points", "tracks", "visible", "track_mask")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Settings of the input pipeline.

  Attributes:
    batch_size: examples per batch *per process*.
    num_frames: frames ``T`` of each window.
    frame_stride: step between consecutive window frames in the source record.
    height, width: output frame size in pixels.
    num_query_points: query points ``N`` per example (padded with ``track_mask = False``).
    random_crop: random crop offset in training (evaluation always crops at the centre).
    shuffle: shuffle records in training (seeded).
    num_epochs: training passes over the data; ``None`` repeats forever. Evaluation makes one pass.
    drop_remainder: drop the last incomplete batch (evaluation; training repeats forever).
    read_threads: grain threads that produce examples in parallel (``grain.ReadOptions``).
    prefetch_buffer_size: batches buffered ahead by those threads.
    worker_count: grain worker processes (``mp_prefetch``); 0 = in-process (tests, notebooks).
    worker_buffer_size: batches buffered per worker process.
    latent_shape: ``(F, h, w, z)`` of one view's cached latents per example, or None (no cache);
      records must then carry ``latents`` (see the module docstring).
    frames_per_latent: the VAE's temporal factor ``k`` (window starts are multiples of it).
    latent_frame_queries: sample query points only at latent frames ``0, k, 2k, …`` (evaluation: the head
      tracks at latent-frame rate, so a query at frame ``t`` between them would be used at ``round(t/k)`` with
      the position of frame ``t``).
    context_shape: ``(L, D)`` of the text embeddings each example carries, or None (no text);
      records must then carry ``context`` (see the module docstring).
    image_shape: ``(N, D)`` of the CLIP image features each example carries, or None (no image
      features); records must then carry ``image_context`` ``(V, N, D)`` (see the module docstring).
    mixture: names of the sources of a mixture (:func:`make_mixture_dataset`); non-empty adds
      ``source_id`` ``(B,)`` int32 to every batch, the index of the example's source.
  """

  batch_size: int = 2
  num_frames: int = 8
  frame_stride: int = 1
  height: int = 32
  width: int = 32
  num_query_points: int = 256
  random_crop: bool = True
  shuffle: bool = True
  num_epochs: int | None = None
  drop_remainder: bool = True
  read_threads: int = 2
  prefetch_buffer_size: int = 8
  worker_count: int = 0
  worker_buffer_size: int = 2
  latent_shape: tuple[int, int, int, int] | None = None
  frames_per_latent: int = 4
  latent_frame_queries: bool = False
  context_shape: tuple[int, int] | None = None
  image_shape: tuple[int, int] | None = None
  mixture: tuple[str, ...] = ()

  def __post_init__(self):
    for name in ("batch_size", "num_frames", "frame_stride", "height", "width", "read_threads"):
      value = getattr(self, name)
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"PipelineConfig.{name} must be an integer >= 1, got {value!r}")
    for name in ("num_query_points", "worker_count", "prefetch_buffer_size", "worker_buffer_size"):
      value = getattr(self, name)
      if not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"PipelineConfig.{name} must be an integer >= 0, got {value!r}")
    if self.num_epochs is not None and self.num_epochs < 1:
      raise ValueError(f"PipelineConfig.num_epochs must be >= 1 or None, got {self.num_epochs}")
    object.__setattr__(self, "mixture", tuple(str(m) for m in self.mixture))
    if self.context_shape is not None:
      object.__setattr__(self, "context_shape", tuple(int(v) for v in self.context_shape))
      if len(self.context_shape) != 2 or min(self.context_shape) < 1:
        raise ValueError(f"PipelineConfig.context_shape={self.context_shape}: expected (L, D) with L, D >= 1")
    if self.image_shape is not None:
      object.__setattr__(self, "image_shape", tuple(int(v) for v in self.image_shape))
      if len(self.image_shape) != 2 or min(self.image_shape) < 1:
        raise ValueError(f"PipelineConfig.image_shape={self.image_shape}: expected (N, D) with N, D >= 1")
    if self.latent_shape is not None:
      object.__setattr__(self, "latent_shape", tuple(int(v) for v in self.latent_shape))
      k = self.frames_per_latent
      expected = 1 + (self.num_frames - 1) // k
      if len(self.latent_shape) != 4 or self.latent_shape[0] != expected or (self.num_frames - 1) % k:
        raise ValueError(f"PipelineConfig.latent_shape={self.latent_shape}: expected (F, h, w, z) with "
                         f"num_frames = 1 + {k}(F − 1); num_frames={self.num_frames} gives F={expected}")
      if self.frame_stride != 1 or self.random_crop:
        raise ValueError(f"PipelineConfig: cached latents need frame_stride=1 and random_crop=False (latents are "
                         f"encoded once, centred, at every frame); got frame_stride={self.frame_stride}, "
                         f"random_crop={self.random_crop}")

  @property
  def window_span(self) -> int:
    """Source frames covered by one window: ``(num_frames − 1) · frame_stride + 1``."""
    return (self.num_frames - 1) * self.frame_stride + 1


def output_spec(config: PipelineConfig) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """``{key: (shape, dtype)}`` of one batch (per process) for ``config``; see the module table."""
  b, t, h, w, n = config.batch_size, config.num_frames, config.height, config.width, config.num_query_points
  u8, f32, b8 = np.dtype(np.uint8), np.dtype(np.float32), np.dtype(bool)
  latents = {} if config.latent_shape is None else {
      "reference_latents": ((b,) + config.latent_shape, f32), "target_latents": ((b,) + config.latent_shape, f32)}
  if config.context_shape is not None:
    latents["context"] = ((b,) + config.context_shape, f32)
  if config.image_shape is not None:
    latents["image_context"] = ((b,) + config.image_shape, f32)
  if config.mixture:
    latents["source_id"] = ((b,), np.dtype(np.int32))
  return latents | {
      "reference_video": ((b, t, h, w, 3), u8),
      "target_video": ((b, t, h, w, 3), u8),
      "reference_intrinsics": ((b, t, 3, 3), f32),
      "target_intrinsics": ((b, t, 3, 3), f32),
      "reference_cam_to_world": ((b, t, 4, 4), f32),
      "target_cam_to_world": ((b, t, 4, 4), f32),
      "query_points": ((b, n, 3), f32),
      "tracks": ((b, 2, t, n, 2), f32),
      "visible": ((b, 2, t, n), b8),
      "track_mask": ((b, n), b8),
  }


def _resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
  """Resizes ``(..., h, w, 3)`` uint8 frames to ``(..., height, width, 3)`` with OpenCV.

  cv2 maps pixel centres onto pixel centres, i.e. the continuous corner-origin coordinate ``x``
  becomes ``x · width / w`` — the same map ``geometry.scale_intrinsics`` applies to ``K``.
  """
  lead = frames.shape[:-3]
  h, w = frames.shape[-3:-1]
  if (h, w) == (height, width):
    return frames
  interp = cv2.INTER_AREA if (height <= h and width <= w) else cv2.INTER_LINEAR
  flat = frames.reshape((-1, h, w, 3))
  out = np.empty((flat.shape[0], height, width, 3), np.uint8)
  for i, frame in enumerate(flat):
    out[i] = cv2.resize(frame, (width, height), interpolation=interp)
  return out.reshape(lead + (height, width, 3))


def _resize_plan(h: int, w: int, config: PipelineConfig, rng: np.random.Generator,
                 train: bool) -> tuple[int, int, int, int]:
  """``(new_h, new_w, x0, y0)``: resize ``h × w`` to cover the output, then crop at ``(x0, y0)``."""
  scale = max(config.height / h, config.width / w)
  new_h = max(config.height, int(round(h * scale)))
  new_w = max(config.width, int(round(w * scale)))
  if train and config.random_crop:
    x0 = int(rng.integers(0, new_w - config.width + 1))
    y0 = int(rng.integers(0, new_h - config.height + 1))
  else:
    x0 = (new_w - config.width) // 2
    y0 = (new_h - config.height) // 2
  return new_h, new_w, x0, y0


def sample_query_points(visible_reference: np.ndarray, num_points: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Chooses query entries ``(t, n)`` among the visible ones, distinct points first.

  Args:
    visible_reference: ``(T, N)`` bool visibility of the points in the reference view.
    num_points: how many queries to return at most.
    rng: random generator.

  Returns:
    ``(frames, points)``: int arrays of equal length ``k = min(num_points, #visible entries)``;
    query ``i`` is point ``points[i]`` at frame ``frames[i]``. A uniformly random permutation of the
    visible entries is taken; each point's first entry in it comes first (in permutation order),
    the remaining entries after, so points repeat only when fewer than ``num_points`` distinct
    points are visible.
  """
  t_idx, n_idx = np.nonzero(visible_reference)
  if t_idx.size == 0 or num_points == 0:
    return np.zeros((0,), np.int64), np.zeros((0,), np.int64)
  perm = rng.permutation(t_idx.size)
  t_idx, n_idx = t_idx[perm], n_idx[perm]
  _, first = np.unique(n_idx, return_index=True)
  is_first = np.zeros(t_idx.size, bool)
  is_first[first] = True
  order = np.concatenate([np.flatnonzero(is_first), np.flatnonzero(~is_first)])[:num_points]
  return t_idx[order], n_idx[order]


def sample_example(record: Mapping[str, np.ndarray], config: PipelineConfig, rng: np.random.Generator, *,
                   train: bool = True, source: str = "<record>") -> Example:
  """Turns one record into one training example (the per-example transform of the pipeline).

  Same as ``sample_example_with_metadata(...)[0]``; see there.
  """
  return sample_example_with_metadata(record, config, rng, train=train, source=source)[0]


def sample_example_with_metadata(
    record: Mapping[str, np.ndarray], config: PipelineConfig, rng: np.random.Generator, *,
    train: bool = True, source: str = "<record>") -> tuple[Example, dict[str, np.ndarray]]:
  """Turns one record into one training example and says which parts of the record it used.

  Draws an ordered pair of distinct views and a window start from ``rng``, then hands the rest to
  ``window_example`` with the same ``rng`` (crop offset, query points).

  Args:
    record: a schema record (``video`` ``(V, T, H, W, 3)`` with ``V ≥ 2``, ``T ≥ window_span``).
    config: output sizes and sampling settings.
    rng: the example's random generator (view pair, window start, crop offset, query points).
    train: random crop when ``config.random_crop``; ``False`` crops at the centre.
    source: name of the record for error messages.

  Returns:
    ``(example, metadata)``: the example is the batch table of the module docstring without the
    leading ``B`` axis; metadata holds ``views`` ``(2,)`` (reference, target view indices),
    ``frames`` ``(T,)`` record frame indices, ``points`` ``(N,)`` record point index of each query
    (−1 for padding), ``scale`` ``(2,)`` resize factors ``(sx, sy)`` and ``crop`` ``(2,)`` offset
    ``(x0, y0)`` in resized pixels, so output pixel ``x = sx · x_record − x0``.

  Raises:
    schema.RecordError: the record has fewer than 2 views or fewer frames than the window needs, or
      the part of it the example uses (the two views over the window; ``depth`` is ignored)
      violates the schema.
  """
  v, t = _video_views_and_frames(record, config, source)
  if v < 2:
    raise schema.RecordError(source, "video", f"{v} view(s); a (reference, target) pair needs >= 2")
  ref = int(rng.integers(v))
  tgt = int(rng.integers(v - 1))
  tgt += tgt >= ref
  k = config.frames_per_latent if config.latent_shape is not None else 1
  start = k * int(rng.integers((t - config.window_span) // k + 1))
  return window_example(record, config, views=(ref, tgt), start=start, rng=rng, train=train, source=source)


def _video_views_and_frames(record: Mapping[str, np.ndarray], config: PipelineConfig, source: str) -> tuple[int, int]:
  """``(V, T)`` of the record's video, checking that it is 5-D and long enough for one window."""
  if "video" not in record or np.ndim(record["video"]) != 5:
    schema.validate_record(record, source=source)  # raises the schema's error for a bad video field
  v, t = np.shape(record["video"])[:2]
  span = config.window_span
  if t < span:
    raise schema.RecordError(
        source, "video", f"{t} frames; a window of num_frames={config.num_frames} with "
        f"frame_stride={config.frame_stride} needs {span}")
  return v, t


def window_example(
    record: Mapping[str, np.ndarray], config: PipelineConfig, *, views: Sequence[int], start: int,
    rng: np.random.Generator | None = None, train: bool = False, source: str = "<record>",
    query_points: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[Example, dict[str, np.ndarray]]:
  """The example of a given view pair and window: ``sample_example_with_metadata`` after its draws.

  Deterministic for fixed arguments: validates the used part of the record, resizes and crops
  (random offset from ``rng`` only when ``train`` and ``config.random_crop``, else centred), updates
  intrinsics and tracks, makes the cameras relative to the reference camera at the window's first
  frame and samples the query points. ``sample_example_with_metadata`` is this function after
  drawing ``views`` and ``start``, so with the views/start it drew (its ``metadata``) and a
  generator in the same state, the outputs are identical. Evaluation uses it to window a
  reference view and a ground-truth target view (e.g. ``synthetic.render_scene_views``) together.

  Args:
    record: a schema record with ``T ≥ start + window_span`` frames.
    config: output sizes and sampling settings (``batch_size`` is ignored).
    views: ``(reference, target)`` view indices in ``[0, V)`` (they may coincide).
    start: first record frame of the window (frames ``start, start + frame_stride, …``), in
      ``[0, T − window_span]``.
    rng: generator of the crop offset (training only) and the query points; ``None`` means a fresh
      ``np.random.default_rng(0)``.
    train: random crop when ``config.random_crop``; ``False`` (default) crops at the centre.
    source: name of the record for error messages.
    query_points: optional ``(frames, points)`` int arrays of equal length ``k ≤ num_query_points``
      (window frame, record point index), used instead of sampling (``rng`` then only crops); each
      must be visible in the reference view at its frame after the crop. ``sample_query_points``
      returns this form; a previous example's queries are
      ``(example["query_points"][mask, 0].astype(int), metadata["points"][mask])`` with
      ``mask = example["track_mask"]``.

  Returns:
    ``(example, metadata)`` as ``sample_example_with_metadata`` returns them.

  Raises:
    ValueError: ``views``, ``start`` or ``query_points`` out of range or malformed.
    schema.RecordError: the record is too short for the window, or the part of it the example uses
      violates the schema.
  """
  v, t = _video_views_and_frames(record, config, source)
  views = np.asarray(views)
  if views.shape != (2,) or not np.issubdtype(views.dtype, np.integer) or np.any((views < 0) | (views >= v)):
    raise ValueError(f"window_example: views must be 2 view indices in [0, {v}), got {views.tolist()}")
  views = views.astype(np.int64)
  span = config.window_span
  if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start <= t - span:
    raise ValueError(f"window_example: start must be an int in [0, {t - span}] ({t} frames, window span {span}), "
                     f"got {start!r}")
  start = int(start)
  if rng is None:
    rng = np.random.default_rng(0)
  example = {}
  if config.latent_shape is not None:
    example["reference_latents"], example["target_latents"] = _cached_latents(record, config, views, start, source)
  if config.context_shape is not None:
    example["context"] = _reference_context(record, config, int(views[0]), v, source)
  if config.image_shape is not None:
    example["image_context"] = _reference_image_context(record, config, int(views[0]), v, source)
  record = {k: v for k, v in record.items() if k not in ("latents", "context", "image_context")}
  h, w = np.shape(record["video"])[2:4]
  frames = start + config.frame_stride * np.arange(config.num_frames)
  record = _validated_window(record, views, frames, source)  # now (2, T, ...) fields

  new_h, new_w, x0, y0 = _resize_plan(h, w, config, rng, train)
  sx, sy = new_w / w, new_h / h
  video = record["video"]  # (2, T, h, w, 3)
  video = _resize_frames(video, new_h, new_w)[:, :, y0:y0 + config.height, x0:x0 + config.width]
  video = np.ascontiguousarray(video)
  intr = record["intrinsics"].astype(np.float64)
  intr = geometry.crop_intrinsics(geometry.scale_intrinsics(intr, sx, sy), float(x0), float(y0))

  w2c = record["world_to_camera"].astype(np.float64)
  c2w = geometry.invert_rigid(w2c)
  c2w_rel = geometry.relative_to_reference(c2w, c2w[0, 0])

  tracks = record["tracks"].astype(np.float64)  # (2, T, N_rec, 2)
  tracks = tracks * np.array([sx, sy]) - np.array([x0, y0], np.float64)
  inside = ((tracks[..., 0] >= 0) & (tracks[..., 0] <= config.width) &
            (tracks[..., 1] >= 0) & (tracks[..., 1] <= config.height))
  visible = record["visible"] & inside  # (2, T, N_rec)

  n_out = config.num_query_points
  if query_points is None:
    candidates = visible[0]
    if config.latent_frame_queries:
      candidates = candidates & (np.arange(config.num_frames) % config.frames_per_latent == 0)[:, None]
    q_frames, q_points = sample_query_points(candidates, n_out, rng)
  else:
    q_frames, q_points = _given_query_points(query_points, visible[0], n_out)
  k = q_frames.size
  out_tracks = np.zeros((2, config.num_frames, n_out, 2), np.float32)
  out_visible = np.zeros((2, config.num_frames, n_out), bool)
  query = np.zeros((n_out, 3), np.float32)
  mask = np.zeros((n_out,), bool)
  if k:
    out_tracks[:, :, :k] = tracks[:, :, q_points]
    out_visible[:, :, :k] = visible[:, :, q_points]
    query[:k, 0] = q_frames
    query[:k, 1:] = tracks[0, q_frames, q_points]
    mask[:k] = True
  points = np.full((n_out,), -1, np.int64)
  points[:k] = q_points
  metadata = {"views": views, "frames": frames, "points": points, "scale": np.array([sx, sy]),
              "crop": np.array([x0, y0])}
  return example | {
      "reference_video": video[0],
      "target_video": video[1],
      "reference_intrinsics": intr[0].astype(np.float32),
      "target_intrinsics": intr[1].astype(np.float32),
      "reference_cam_to_world": c2w_rel[0].astype(np.float32),
      "target_cam_to_world": c2w_rel[1].astype(np.float32),
      "query_points": query,
      "tracks": out_tracks,
      "visible": out_visible,
      "track_mask": mask,
  }, metadata


def _cached_latents(record, config: PipelineConfig, views: np.ndarray, start: int, source: str) -> np.ndarray:
  """The window's ``(2, F, h, w, z)`` float32 latents of a record with cached ``latents``."""
  if "latents" not in record:
    raise schema.RecordError(source, "latents", "missing: config.data.latents_dir is set but this record has no "
                             "cached latents (run python -m mvtrack_jax.data.encode_latents)")
  k = config.frames_per_latent
  if start % k:
    raise ValueError(f"window_example: with cached latents start must be a multiple of {k}, got {start}")
  f = config.latent_shape[0]
  cached = record["latents"]
  if cached.ndim != 5 or tuple(cached.shape[2:]) != config.latent_shape[1:] or cached.shape[1] < start // k + f:
    raise schema.RecordError(source, "latents", f"cached shape {tuple(cached.shape)} does not fit a window of "
                             f"latent shape {config.latent_shape} at frame {start} (re-encode the cache at this size)")
  return np.asarray(cached[views, start // k:start // k + f], np.float32)


def _reference_context(record, config: PipelineConfig, view: int, num_views: int, source: str) -> np.ndarray:
  """The ``context_shape`` float32 caption embedding of ``view`` (zero-padded) of a record with ``context``."""
  if "context" not in record:
    raise schema.RecordError(source, "context", "missing: config.text.cache is set but this record has no text "
                             "embeddings (run python -m mvtrack_jax.data.encode_text)")
  context = np.asarray(record["context"])
  if context.ndim == 3 and context.shape[0] == num_views:
    context = context[view]  # check only the caption this example uses (the loader's hot path)
  context = schema.validate_context(context, num_views, source)
  length, dim = config.context_shape
  if context.shape[1] != dim or context.shape[0] > length:
    raise schema.RecordError(source, "context", f"{context.shape[0]} tokens of width {context.shape[1]}; the model "
                             f"takes at most {length} tokens of width {dim} (re-encode the text cache for this model)")
  out = np.zeros((length, dim), np.float32)
  out[:context.shape[0]] = context
  return out


def _reference_image_context(record, config: PipelineConfig, view: int, num_views: int, source: str) -> np.ndarray:
  """The ``image_shape`` float32 CLIP features of ``view`` of a record with ``image_context`` ``(V, N, D)``."""
  if "image_context" not in record:
    raise schema.RecordError(source, "image_context", "missing: config.image.cache is set but this record has no "
                             "image features (run python -m mvtrack_jax.data.encode_image)")
  features = record["image_context"]
  if np.ndim(features) != 3 or np.shape(features)[0] != num_views:
    schema.validate_image_context(features, num_views, source)  # raises the schema's shape error
  # Check only the view this example uses (the loader's hot path).
  features = schema.validate_image_context(np.asarray(features)[view:view + 1], 1, source)[0]
  if features.shape != config.image_shape:
    n, d = config.image_shape
    raise schema.RecordError(source, "image_context", f"{features.shape[0]} tokens of width {features.shape[1]}; the "
                             f"run takes {n} tokens of width {d} (re-encode the image cache with the run's encoder)")
  return features.astype(np.float32)


def resized_video(video: np.ndarray, config: PipelineConfig) -> np.ndarray:
  """``(..., h, w, 3)`` frames resized to cover ``(height, width)`` and centre-cropped, as the
  pipeline's evaluation crop (what the latent cache encodes)."""
  h, w = video.shape[-3:-1]
  new_h, new_w, x0, y0 = _resize_plan(h, w, config, None, False)
  return np.ascontiguousarray(_resize_frames(video, new_h, new_w)[..., y0:y0 + config.height, x0:x0 + config.width, :])


def _given_query_points(query_points, visible_reference: np.ndarray, num_points: int) -> tuple[np.ndarray, np.ndarray]:
  """Checks caller-given ``(frames, points)`` queries against the window's reference visibility."""
  try:
    q_frames, q_points = (np.asarray(a) for a in query_points)
  except (TypeError, ValueError) as e:
    raise ValueError(f"window_example: query_points must be a (frames, points) pair of int arrays ({e})") from e
  t, n = visible_reference.shape
  ints = all(np.issubdtype(a.dtype, np.integer) for a in (q_frames, q_points))
  if q_frames.ndim != 1 or q_frames.shape != q_points.shape or q_frames.size > num_points or \
     (q_frames.size and not ints):
    raise ValueError(f"window_example: query_points must be two int arrays of equal length <= num_query_points="
                     f"{num_points}, got shapes {q_frames.shape} / {q_points.shape}")
  q_frames, q_points = q_frames.astype(np.int64), q_points.astype(np.int64)
  if np.any((q_frames < 0) | (q_frames >= t) | (q_points < 0) | (q_points >= n)):
    raise ValueError(f"window_example: query frames must be in [0, {t}) and points in [0, {n})")
  hidden = ~visible_reference[q_frames, q_points]
  if hidden.any():
    i = int(np.argmax(hidden))
    raise ValueError(f"window_example: {int(hidden.sum())} query point(s) not visible in the reference view at "
                     f"their frame, first (frame {q_frames[i]}, point {q_points[i]})")
  return q_frames, q_points


def _validated_window(record: Mapping[str, np.ndarray], views: np.ndarray, frames: np.ndarray,
                      source: str) -> dict[str, np.ndarray]:
  """The (views × frames) part of a record that an example uses, validated with the schema.

  Only the used part is checked (and ``depth``, which the pipeline does not use, is dropped), which
  costs a fraction of validating the whole record; errors name ``source``, the views and frames. A
  lazy ``video`` (``readers.LazyVideo``) is decoded for these views and frames only.
  """
  fields = [k for k in record if k != "depth"]
  try:
    window = {}
    for key in fields:
      if hasattr(record[key], "read_window"):  # readers.LazyVideo: decode only these views and frames
        window[key] = record[key].read_window(views, frames)
        continue
      value = np.asarray(record[key])
      if key == "points_3d":
        window[key] = value[frames]
      elif key in schema.FIELDS:
        window[key] = value[views][:, frames]
      else:
        window[key] = value
  except (IndexError, TypeError, ValueError):
    schema.validate_record(record, source=source)  # names the inconsistent field
    raise
  name = f"{source} (views {views.tolist()}, frames {frames[0]}..{frames[-1]})"
  return schema.validate_record(window, source=name)


def example_rng(seed: int, shard_index: int, example_index: int) -> np.random.Generator:
  """The random generator of one example: ``SeedSequence([seed, shard_index, example_index])``."""
  return np.random.default_rng(np.random.SeedSequence([int(seed), int(shard_index), int(example_index)]))


def _shard_range(length: int, shard: grain.sharding.ShardOptions) -> tuple[int, int, int]:
  if not 0 <= shard.shard_index < shard.shard_count:
    raise ValueError(f"shard_index {shard.shard_index} not in [0, {shard.shard_count})")
  stop = length - length % shard.shard_count if shard.drop_remainder else length
  if shard.shard_index >= stop:
    raise ValueError(
        f"source has {length} records: too few for shard {shard.shard_index} of {shard.shard_count} "
        f"(drop_remainder={shard.drop_remainder})")
  return shard.shard_index, stop, shard.shard_count


class _Transform:
  """Picklable per-example transform (grain worker processes pickle the pipeline).

  ``stream`` is the source's position in a mixture (None for a single source): it enters the
  example's seed, and with ``config.mixture`` the example gains ``source_id``.
  """

  def __init__(self, config: PipelineConfig, seed: int, shard_index: int, train: bool, stream: int | None = None):
    self.config, self.seed, self.shard_index, self.train, self.stream = config, seed, shard_index, train, stream

  def __call__(self, example_index: int, indexed: tuple[int, Mapping[str, np.ndarray]]) -> Example:
    source_index, record = indexed
    if self.stream is None:
      rng = example_rng(self.seed, self.shard_index, example_index)
      name = f"source[{source_index}]"
    else:
      rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.shard_index, self.stream, example_index]))
      name = f"{self.config.mixture[self.stream]}[{source_index}]"
    example = sample_example(record, self.config, rng, train=self.train, source=name)
    if self.config.mixture:
      example["source_id"] = np.int32(self.stream or 0)
    return example


class _WithSourceIndex:
  """Attaches the global source index to each record (for error messages)."""

  def __init__(self, start: int, step: int):
    self.start, self.step = start, step

  def __call__(self, index: int, record: Mapping[str, np.ndarray]) -> tuple[int, Mapping[str, np.ndarray]]:
    return self.start + index * self.step, record


def make_dataset(source: Sequence[Mapping[str, np.ndarray]] | Any, config: PipelineConfig, *, seed: int,
                 train: bool = True, shard_options: grain.sharding.ShardOptions | None = None,
                 batch_transform: Any = None, stream: int | None = None) -> grain.IterDataset:
  """Builds the grain pipeline (module docstring) over a random-access source of records.

  Args:
    source: object with ``__len__`` and ``__getitem__`` returning schema records.
    config: pipeline settings.
    seed: seed of the shuffle and of every per-example random choice.
    train: shuffle + repeat + random crops; ``False``: one pass in order with centred crops.
    shard_options: which part of the source this process reads; default
      ``grain.sharding.ShardByJaxProcess(drop_remainder=True)``.
    batch_transform: optional ``batch → batch`` function applied last, in this process (e.g. adding
      latents from a frozen VAE on the accelerator); it is part of the checkpointable iterator.
    stream: this source's index in ``config.mixture`` (evaluating one source of a mixture: its
      ``source_id``); None for a run of one source.

  Returns:
    A ``grain.IterDataset`` of batches (dicts of NumPy arrays, ``output_spec(config)``); iterate it
    with ``iter(...)`` (see ``make_iterator``).

  Raises:
    ValueError: empty source, or fewer records than processes.
  """
  if shard_options is None:
    shard_options = grain.sharding.ShardByJaxProcess(drop_remainder=True)
  ds = _examples(source, config, seed, train, shard_options, stream)
  return _batched(ds, config, train, batch_transform)


def make_mixture_dataset(sources: Sequence[Any], weights: Sequence[float], config: PipelineConfig, *, seed: int,
                         shard_options: grain.sharding.ShardOptions | None = None,
                         batch_transform: Any = None) -> grain.IterDataset:
  """The training pipeline over a weighted mixture of sources (``config.mixture`` names them).

  Each source is sharded, shuffled and repeated on its own (its own seed stream), then
  ``grain.MapDataset.mix`` interleaves the example streams deterministically in the proportions of
  ``weights`` (exact over every window of ``Σw/min w`` examples), and the mixed stream is batched:
  batches of fixed shape mix tracked and trackless examples. Every example carries ``source_id``
  (its index in ``sources``). The iterator state is a position, checkpointable as for one source.

  Raises:
    ValueError: lengths of ``sources``, ``weights`` and ``config.mixture`` differ, or a weight is < 0
      or all are 0; the errors of :func:`make_dataset` for each source.
  """
  if not len(sources) == len(weights) == len(config.mixture) or not sources:
    raise ValueError(f"make_mixture_dataset: {len(sources)} sources, {len(weights)} weights and mixture names "
                     f"{config.mixture} must have one entry per source")
  if min(weights) < 0 or not sum(weights) > 0:
    raise ValueError(f"make_mixture_dataset: weights must be >= 0 and not all 0, got {list(weights)}")
  if shard_options is None:
    shard_options = grain.sharding.ShardByJaxProcess(drop_remainder=True)
  kept = [i for i, w in enumerate(weights) if w > 0]
  streams = [_examples(sources[i], config, seed, True, shard_options, i) for i in kept]
  ds = streams[0] if len(streams) == 1 else grain.MapDataset.mix(streams, [float(weights[i]) for i in kept])
  return _batched(ds, config, True, batch_transform)


def _examples(source: Any, config: PipelineConfig, seed: int, train: bool, shard_options: grain.sharding.ShardOptions,
              stream: int | None) -> grain.MapDataset:
  """This process's shard of ``source`` (shuffled and repeated in training) mapped to examples."""
  length = len(source)
  if length == 0:
    raise ValueError("make_dataset: the source is empty")
  start, stop, step = _shard_range(length, shard_options)
  ds = grain.MapDataset.source(source)
  ds = ds[start:stop:step]
  ds = ds.map_with_index(_WithSourceIndex(start, step))
  if train:
    if config.shuffle:
      ds = ds.shuffle(seed=seed if stream is None else int(np.random.SeedSequence([seed, stream]).generate_state(1)[0]))
    ds = ds.repeat(config.num_epochs)
  return ds.map_with_index(_Transform(config, seed, shard_options.shard_index, train, stream))


def _batched(ds: grain.MapDataset, config: PipelineConfig, train: bool, batch_transform: Any) -> grain.IterDataset:
  ds = ds.batch(config.batch_size, drop_remainder=config.drop_remainder or train)
  read = grain.ReadOptions(num_threads=config.read_threads, prefetch_buffer_size=config.prefetch_buffer_size)
  it = ds.to_iter_dataset(read)
  if config.worker_count > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=config.worker_count, per_worker_buffer_size=config.worker_buffer_size))
  if batch_transform is not None:
    it = it.map(batch_transform)
  return it


def make_iterator(source: Sequence[Mapping[str, np.ndarray]] | Any, config: PipelineConfig, *, seed: int,
                  train: bool = True, shard_options: grain.sharding.ShardOptions | None = None,
                  state: Mapping[str, Any] | None = None, batch_transform: Any = None,
                  weights: Sequence[float] | None = None, stream: int | None = None) -> grain.DatasetIterator:
  """``iter(make_dataset(...))`` — or, with ``weights``, ``iter(make_mixture_dataset(source, weights, ...))``
  (training only; ``source`` is then a sequence of sources) — optionally restored to a saved
  ``iterator.get_state()``.

  The state is a small JSON-serialisable dict; ``iterator.set_state(state)`` on a fresh iterator
  of the same pipeline (same sources, config, seed, sharding) continues with exactly the next batch.
  """
  if weights is not None:
    if not train:
      raise ValueError("make_iterator: a mixture (weights) is for training; evaluate one source")
    ds = make_mixture_dataset(source, weights, config, seed=seed, shard_options=shard_options,
                              batch_transform=batch_transform)
  else:
    ds = make_dataset(source, config, seed=seed, train=train, shard_options=shard_options,
                      batch_transform=batch_transform, stream=stream)
  iterator = iter(ds)
  if state is not None:
    iterator.set_state(dict(state))
  return iterator
