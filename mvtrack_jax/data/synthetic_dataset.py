"""The built-in synthetic multi-view tracking dataset as a TFDS (array_record) dataset.

Every example is one ``synthetic.render_scene`` record (fields of ``data.schema``: video,
intrinsics, world_to_camera, depth, tracks, visible, points_3d), stored with plain
``tfds.features.Tensor`` features (raw-bytes encoding: exact and cheap to write; the default int64/float
lists made the default build take 134 s instead of 86 s of CPU) in ``array_record`` files, so it is
random-access and needs no TensorFlow (Image/Video features and the ``tfds build`` CLI need
TensorFlow, which the project does not install). Splits draw disjoint seeds (``scene_seed(split, index)``):
train ``[0, n)``, validation ``[10⁶, 10⁶ + n)``, test ``[2·10⁶, 2·10⁶ + n)``, so a larger train split never
overlaps the evaluation scenes. Record ``i`` of a split is
``synthetic.render_scene(scene_seed(split, i), **record_sizes(config))``; ``synthetic.render_scene_views``
with the same arguments re-renders its scene and tracked points from other cameras (novel-view ground truth).

Sizes come from a ``SyntheticConfig`` (a TFDS ``BuilderConfig``): the registered ``default``
(``configs/synthetic_data.py``'s values), ``tiny`` and ``paper``, or any custom one made with
``SyntheticConfig.from_config_dict(cfg)``; its name encodes the sizes (and a non-default render
style), so different sizes live in different directories
``<data_dir>/mvtrack_synthetic/<config name>/<version>/``.

``paper`` is the paper's training resolution (MVTrack4Gen on Wan2.1 / ReCamMaster: 81-frame videos
at 480×832): V=2 views (a ReCamMaster reference/target pair starting at the same camera; ask for 4
with ``num_views=4`` to add wide-baseline pairs), T=81, H×W=480×832, N=1024 tracks, 64/8/8 scenes
by default (override the split sizes, e.g. ``--config.num_train=1000``), rendered in the renderer's
``"paper"`` style (``synthetic.STYLES``: native-resolution textures sampled through mip-maps, so
832-pixel frames are neither blocky nor aliased; geometry, cameras and tracks as in the default
style). One record holds 453 MB (video 194 MB + float32 depth 259 MB), 272 MB on disk once packed
(array_record's zstd); rendering one takes about 65 CPU-seconds and 2.8 GB of memory per worker
process, packing it about 8 s of the one packing process (measured 2026-11-27 on a shared 2-core
CPU; ``benchmarks/synthetic_bench.py``).

Building (``prepare``, used by ``load_split`` on first use and by the command line) renders in two
stages so that a build of hours survives being killed:

1. **Staging, in parallel and resumable.** Every scene is rendered by ``synthetic.render_scene`` in
   a ``concurrent.futures.ProcessPoolExecutor`` of ``num_workers`` processes (default
   ``os.cpu_count()``; ``spawn`` start method, so it is safe under JAX; a worker exits when its
   parent dies) and written to ``<config dir>/.staging_<version>/<split>/<index:06d>.npz``
   (uncompressed ``np.savez``; a temporary file, fsync, then ``os.replace``, so a file at its final
   name is always a whole scene). Scenes whose file exists are skipped, so rerunning a killed or
   failed build renders only the missing scenes. When ``num_workers`` is not given, a build of
   fewer than ``POOL_MIN_PIXELS`` (10⁸, about two CPU-minutes; ``default`` has 6.3·10⁷, ``tiny``
   8.6·10⁴, ``paper`` 5.2·10⁹) pixels to render renders in the calling process, as before staging
   existed: starting workers (each imports NumPy, scikit-image, TFDS and the caller's main module,
   and loads the textures) costs seconds, and ``spawn`` needs the caller's script to guard its entry
   point with ``if __name__ == "__main__":``, which every script that builds with workers must do.
   ``stage_scenes`` runs this stage alone (e.g. part of the scenes on each of several machines
   sharing the data directory).
2. **Packing, all-or-nothing.** TFDS's ``download_and_prepare`` reads the staged scenes in seed order
   into the array_record shards (``_generate_examples``; a missing or unreadable staged scene is
   rendered in-process). TFDS writes into a sibling ``incomplete.XXXXXX_<version>`` directory and
   renames it to ``<version>`` only after every split and ``dataset_info.json`` are written; an
   exception removes the temporary directory, a killed process leaves it behind but never at the
   final path, so the next ``load_split`` sees the dataset as not prepared and builds it again, from
   the staged scenes. Once the dataset is complete the staging directory is deleted. TFDS buffers a
   split's serialized examples in memory while packing (its on-disk spill needs TensorFlow;
   ``_split_packed_in_memory``), so packing needs about the largest split's raw size in memory
   (``packed_split_bytes``: 1 MB per default-size scene, 1 GB for 1,000 scenes; 272 MB per paper
   scene, so the 64-scene paper train split needs about 17 GB). Disk: the staged scenes (uncompressed) and the shards coexist during packing.

Records do not depend on how they were built: the parallel, the in-process and a resumed build
hold the same arrays (those of ``default`` and ``tiny`` are the ones the serial builds before staging
held; shard files differ byte-wise between any two builds because TFDS serializes an example's
features in no fixed order). ``prepare`` holds a file lock while building (concurrent callers wait instead of
building twice) and, under that lock, deletes leftovers of killed builds (``incomplete.*``
directories, staging temporary files).

Command line (builds the dataset of a config file, see ``configs/synthetic_data.py``)::

  python -m mvtrack_jax.data.build_synthetic --config=configs/synthetic_data.py
  python -m mvtrack_jax.data.build_synthetic --config=configs/synthetic_data.py:paper --num_workers=16

The rendering cost is measured by ``benchmarks/synthetic_bench.py`` (CPU-hours per 1,000 scenes).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import logging as std_logging
import multiprocessing
import os
import resource
import shutil
import tempfile
import threading
import time
from typing import Any, Iterable, Iterator
import warnings
import zipfile

from absl import logging
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import shuffle as tfds_shuffle

from mvtrack_jax.data import synthetic

SPLITS = ("train", "validation", "test")
SPLIT_SEED_OFFSETS = {"train": 0, "validation": 1_000_000, "test": 2_000_000}
MAX_SPLIT_SIZE = 1_000_000
_INCOMPLETE_PREFIX = "incomplete."
_STAGING_PREFIX = ".staging_"
_TMP_SUFFIX = ".tmp"
RECORD_SIZE_FIELDS = ("num_views", "num_frames", "height", "width", "num_tracks")
_SIZE_FIELDS = RECORD_SIZE_FIELDS + ("num_train", "num_validation", "num_test")
# Builds with fewer pixels than this in all render in the calling process unless ``num_workers`` is given.
POOL_MIN_PIXELS = 100_000_000


class _KnownTfdsNotices(std_logging.Filter):
  """Drops the two TFDS warnings that every normal use of this builder triggers and that ask nothing of the user.

  - ``Using custom data configuration: …`` (``DatasetBuilder._create_builder_config``): every config made
    from a ``ConfigDict`` with other sizes than a registered one (the demo's 2-view, 400-scene dataset)
    is custom by design, its name encodes the sizes; TFDS warns on each builder construction, including
    each unpickling of a data source in a grain worker.
  - ``Variant folder … has no dataset_info.json`` (``is_prepared``): the answer "not built yet" to the
    question ``prepare`` asks before building.

  Only records of exactly these templates from TFDS's own modules are dropped; every other TFDS
  warning still shows.
  """

  def filter(self, record: std_logging.LogRecord) -> bool:
    if "tensorflow_datasets" not in record.pathname:
      return True
    args = record.args if isinstance(record.args, tuple) else ()
    custom_config = record.msg == "Using custom data configuration: %s"
    not_built_yet = record.msg == "Variant folder %s has no %s" and args[-1:] == ("dataset_info.json",)
    return not (custom_config or not_built_yet)


@contextlib.contextmanager
def _without_known_tfds_notices() -> Iterator[None]:
  """``_KnownTfdsNotices`` on absl's logger (TFDS logs through absl) while inside."""
  absl_logger = logging.get_absl_logger()
  notices = _KnownTfdsNotices()
  absl_logger.addFilter(notices)
  try:
    yield
  finally:
    absl_logger.removeFilter(notices)


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
  """Sizes of the synthetic dataset (see ``synthetic.render_scene`` for V/T/H/W/N).

  Attributes:
    num_views, num_frames, height, width, num_tracks: record sizes (V, T, H, W, N).
    num_train, num_validation, num_test: scenes per split (each < 10⁶).
    style: the scenes' render style, a ``synthetic.STYLES`` name (``"default"`` or ``"paper"``).
  """
  num_views: int = 4
  num_frames: int = 16
  height: int = 64
  width: int = 64
  num_tracks: int = 256
  num_train: int = 200
  num_validation: int = 20
  num_test: int = 20
  style: str = "default"

  def split_size(self, split: str) -> int:
    return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}[split]

  def record_sizes(self) -> dict[str, Any]:
    """The ``synthetic.render_scene`` keywords of this config's scenes.

    ``{num_views, num_frames, height, width, num_tracks}`` ints, plus ``style`` when it is not
    ``"default"`` (so default-style configs give exactly the five sizes).
    """
    sizes: dict[str, Any] = {f: int(getattr(self, f)) for f in RECORD_SIZE_FIELDS}
    if self.style != "default":
      sizes["style"] = self.style
    return sizes

  def num_pixels(self) -> int:
    """Rendered pixels of all scenes: ``V·T·H·W ×`` (train + validation + test)."""
    per_scene = self.num_views * self.num_frames * self.height * self.width
    return per_scene * (self.num_train + self.num_validation + self.num_test)

  @classmethod
  def from_config_dict(cls, cfg: Any) -> "SyntheticConfig":
    """A config from a mapping / ``ml_collections.ConfigDict`` with the attribute names above.

    Missing keys take the defaults; the name encodes every size, e.g.
    ``v4_t16_64x64_n256_s200-20-20``, and a style other than ``"default"`` as a suffix, e.g.
    ``v2_t81_480x832_n1024_s1000-8-8_paper`` (other keys, like ``data_dir``, are ignored).

    Raises:
      ValueError: a size is not a positive int (``num_tracks`` may be 0; split sizes must be in
        ``[0, 10⁶)`` with at least one scene overall), or an unknown ``style``.
    """
    fields = _SIZE_FIELDS
    getter = cfg.get if hasattr(cfg, "get") else (lambda k, d: getattr(cfg, k, d))
    defaults = cls(name="_defaults")
    values = {f: getter(f, getattr(defaults, f)) for f in fields}
    for key, value in values.items():
      minimum = 0 if key in ("num_tracks", "num_train", "num_validation", "num_test") else 1
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"SyntheticConfig: {key} must be an int >= {minimum}, got {value!r}")
      if key.startswith("num_") and key[4:] in ("train", "validation", "test") and value >= MAX_SPLIT_SIZE:
        raise ValueError(f"SyntheticConfig: {key} must be < {MAX_SPLIT_SIZE} (split seeds are disjoint "
                         f"ranges of that size), got {value}")
    if values["num_train"] + values["num_validation"] + values["num_test"] == 0:
      raise ValueError("SyntheticConfig: all split sizes are 0")
    style = getter("style", defaults.style)
    if not isinstance(style, str) or style not in synthetic.STYLES:
      raise ValueError(f"SyntheticConfig: style must be one of {sorted(synthetic.STYLES)}, got {style!r}")
    v = {k: int(x) for k, x in values.items()}
    name = (f"v{v['num_views']}_t{v['num_frames']}_{v['height']}x{v['width']}_n{v['num_tracks']}"
            f"_s{v['num_train']}-{v['num_validation']}-{v['num_test']}")
    if style != "default":
      name += f"_{style}"
    return cls(name=name, description=f"synthetic scenes {name}", style=style, **v)


DEFAULT_CONFIG = SyntheticConfig(name="default", description="V=4, T=16, 64x64, N=256; 200/20/20 scenes")
TINY_CONFIG = SyntheticConfig(
    name="tiny", description="V=2, T=4, 32x48, N=32; 3/2/2 scenes (tests, smoke runs)", num_views=2,
    num_frames=4, height=32, width=48, num_tracks=32, num_train=3, num_validation=2, num_test=2)
PAPER_CONFIG = SyntheticConfig(
    name="paper", description="V=2, T=81, 480x832, N=1024, paper render style; 64/8/8 scenes (the paper's "
    "training resolution)", num_views=2, num_frames=81, height=480, width=832, num_tracks=1024, num_train=64,
    num_validation=8, num_test=8, style="paper")


def _feature_spec(cfg: SyntheticConfig) -> dict[str, tuple[tuple[int, ...], Any]]:
  v, t, h, w, n = cfg.num_views, cfg.num_frames, cfg.height, cfg.width, cfg.num_tracks
  return {
      "video": ((v, t, h, w, 3), np.uint8),
      "intrinsics": ((v, t, 3, 3), np.float32),
      "world_to_camera": ((v, t, 4, 4), np.float32),
      "depth": ((v, t, h, w), np.float32),
      "tracks": ((v, t, n, 2), np.float32),
      "visible": ((v, t, n), np.bool_),
      "points_3d": ((t, n, 3), np.float32),
  }


# Under ``python -m`` this file also runs as ``__main__`` (and, in the ``spawn`` workers of its
# build, as ``__mp_main__``); those copies must not register the dataset name a second time (the
# CLI uses the class of the real module, whose package TFDS can resolve).
class MvtrackSynthetic(tfds.core.GeneratorBasedBuilder, skip_registration=__name__ in ("__main__", "__mp_main__")):
  """TFDS builder of procedurally rendered multi-view dynamic scenes with exact point tracks.

  Args (besides TFDS's ``config``, ``data_dir``, …):
    num_workers: rendering processes of a build (``stage_scenes``); ``None``: ``os.cpu_count()``
      (in-process for builds under ``POOL_MIN_PIXELS``). Not part of the dataset's identity.
  """

  VERSION = tfds.core.Version("1.3.0")
  RELEASE_NOTES = {
      "1.0.0": "Ray-cast rooms with moving textured objects; exact tracks and depth.",
      "1.1.0": "Tensors stored as raw bytes (not readable by 1.0.0 code, hence the new version).",
      "1.2.0": "Scenes rendered from the stored float32 cameras (depth changes in the last bits, rare "
               "pixels and possibly the sampled points), so synthetic.render_scene_views re-renders a "
               "record's scene exactly; a 1.1.0 build would not match it.",
      "1.3.0": "Views in pairs that start at the same camera (the target path of ReCamMaster's novel-view task "
               "begins at the reference camera); every scene differs from 1.2.0.",
  }
  BUILDER_CONFIGS = [DEFAULT_CONFIG, TINY_CONFIG, PAPER_CONFIG]
  DEFAULT_CONFIG_NAME = "default"

  def __init__(self, *, num_workers: int | None = None, **kwargs):
    kwargs.setdefault("file_format", "array_record")
    with _without_known_tfds_notices():  # also when a data source is unpickled in a grain worker
      super().__init__(**kwargs)
    self._num_workers = num_workers
    # Fixed here: during ``download_and_prepare`` TFDS points ``data_path`` at its temporary directory.
    self.staging_dir = os.path.join(os.path.dirname(os.fspath(self.data_path)), _STAGING_PREFIX + str(self.VERSION))

  def is_prepared(self) -> bool:
    """TFDS's answer, without its warning that an unbuilt dataset's folder has no ``dataset_info.json``."""
    with _without_known_tfds_notices():
      return super().is_prepared()

  def _info(self) -> tfds.core.DatasetInfo:
    features = tfds.features.FeaturesDict({
        name: tfds.features.Tensor(shape=shape, dtype=dtype, encoding=tfds.features.Encoding.BYTES)
        for name, (shape, dtype) in _feature_spec(self.builder_config).items()
    })
    return self.dataset_info_from_configs(
        description=__doc__.split("\n\n")[0],
        features=features,
        homepage="https://arxiv.org/abs/2606.26087",
        disable_shuffling=True,  # Keep records in seed order: index i of a split = its i-th seed.
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: scenes are rendered.
    cfg = self.builder_config
    splits = [split for split in SPLITS if cfg.split_size(split) > 0]
    _stage(cfg, self.staging_dir, [(split, i) for split in splits for i in range(cfg.split_size(split))],
           self._num_workers)
    return {split: self._generate_examples(split) for split in splits}

  def _generate_examples(self, split: str) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Records of ``split`` in seed order: the staged scene, else ``render_scene`` in this process."""
    cfg = self.builder_config
    for i in range(cfg.split_size(split)):
      seed = scene_seed(split, i, cfg)
      record = _load_staged(_staged_file(self.staging_dir, split, i), cfg)
      yield seed, record if record is not None else synthetic.render_scene(seed, **cfg.record_sizes())


def scene_seed(split: str, index: int, config: Any = None) -> int:
  """The ``synthetic.render_scene`` seed of scene ``index`` of ``split``: ``SPLIT_SEED_OFFSETS[split] + index``.

  Record ``index`` of a built split is ``render_scene(scene_seed(split, index), **record_sizes(config))``,
  and ``synthetic.render_scene_views`` re-renders it from other cameras with the same arguments.

  Args:
    split: ``"train"``, ``"validation"`` or ``"test"``.
    index: position in the split, ``0 <= index < MAX_SPLIT_SIZE``; when ``config`` is given (anything
      ``resolve_config`` takes), ``0 <= index <`` that config's split size.
    config: optional dataset config to check ``index`` against.

  Raises:
    ValueError: an unknown split, an index that is not an int or is out of range, or a bad config.
  """
  if split not in SPLITS:
    raise ValueError(f"scene_seed: unknown split {split!r}; expected one of {SPLITS}")
  if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
    raise ValueError(f"scene_seed: index must be an int, got {type(index).__name__} {index!r}")
  if config is None:
    size, where = MAX_SPLIT_SIZE, "the split seed range"
  else:
    cfg = resolve_config(config)
    size, where = cfg.split_size(split), f"split {split!r} of config {cfg.name!r}"
  if not 0 <= index < size:
    raise ValueError(f"scene_seed: index {index} out of range: {where} has {size} scene(s)")
  return SPLIT_SEED_OFFSETS[split] + int(index)


def record_sizes(config: Any = None) -> dict[str, Any]:
  """Record sizes of a dataset config (``None``, ``"default"``, ``"tiny"``, ``"paper"``, a mapping, …).

  ``config`` is anything ``resolve_config`` takes.

  Returns:
    ``{"num_views", "num_frames", "height", "width", "num_tracks"}`` ints, plus ``"style"`` for a
    config not in the default render style (``"paper"``): the keyword arguments of
    ``synthetic.render_scene`` / ``render_scene_views`` / ``render_novel_view`` for its scenes.

  Raises:
    ValueError: an unknown config name or invalid sizes.
  """
  return resolve_config(config).record_sizes()


def default_data_dir() -> str:
  """``$MVTRACK_DATA_DIR``, else ``$XDG_CACHE_HOME/mvtrack_jax/datasets`` (``~/.cache`` default)."""
  if os.environ.get("MVTRACK_DATA_DIR"):
    return os.path.expanduser(os.environ["MVTRACK_DATA_DIR"])
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(cache, "mvtrack_jax", "datasets")


def resolve_config(config: Any = None) -> SyntheticConfig:
  """``None`` → default; a registered config name (``"default"``, ``"tiny"``, ``"paper"``); a
  ``SyntheticConfig``; or a mapping / ``ConfigDict`` (``SyntheticConfig.from_config_dict``; sizes and
  style equal to a registered config's resolve to that config, so ``configs/synthetic_data.py``'s
  default is ``"default"`` and its ``:paper`` is ``"paper"``).

  Raises:
    ValueError: an unknown config name or invalid sizes.
  """
  if config is None:
    return DEFAULT_CONFIG
  if isinstance(config, SyntheticConfig):
    return config
  if isinstance(config, str):
    known = {c.name: c for c in MvtrackSynthetic.BUILDER_CONFIGS}
    if config not in known:
      raise ValueError(f"unknown synthetic dataset config {config!r}; known: {sorted(known)} "
                       "(or pass a ConfigDict/SyntheticConfig)")
    return known[config]
  custom = SyntheticConfig.from_config_dict(config)
  for registered in MvtrackSynthetic.BUILDER_CONFIGS:  # Same sizes → same directory as the named one.
    if all(getattr(registered, f) == getattr(custom, f) for f in _SIZE_FIELDS + ("style",)):
      return registered
  return custom


@contextlib.contextmanager
def _build_lock(path: str):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_incomplete(config_dir: str) -> list[str]:
  """Deletes ``incomplete.*`` leftovers of killed builds in a config directory (call under lock)."""
  removed = []
  if os.path.isdir(config_dir):
    for entry in sorted(os.listdir(config_dir)):
      if entry.startswith(_INCOMPLETE_PREFIX):
        shutil.rmtree(os.path.join(config_dir, entry), ignore_errors=True)
        removed.append(entry)
  return removed


# --------------------------------------------------------------------------------------------------
# Staging: scenes rendered in parallel into one atomically written file each (module docstring).


def _staged_file(staging: str, split: str, index: int) -> str:
  return os.path.join(staging, split, f"{index:06d}.npz")


def _write_atomic(path: str, record: dict[str, np.ndarray]) -> None:
  """Writes ``record`` as an uncompressed ``.npz`` at ``path``: temporary file, fsync, ``os.replace``."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=_TMP_SUFFIX, dir=os.path.dirname(path))
  try:
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide staged scenes from other users of a shared data_dir.
    with os.fdopen(fd, "wb") as handle:
      np.savez(handle, **record)
      handle.flush()
      os.fsync(handle.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def _load_staged(path: str, cfg: SyntheticConfig) -> dict[str, np.ndarray] | None:
  """The staged record at ``path``, or ``None`` when it is missing, unreadable or of other shapes/dtypes."""
  if not os.path.exists(path):
    return None
  spec = _feature_spec(cfg)
  try:
    with np.load(path, allow_pickle=False) as data:
      record = {key: data[key] for key in data.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
    warnings.warn(f"staged scene {path} is unreadable ({error}); rendering it again")
    return None
  if set(record) != set(spec) or any(record[k].shape != spec[k][0] or record[k].dtype != spec[k][1] for k in spec):
    warnings.warn(f"staged scene {path} does not match config {cfg.name!r}; rendering it again")
    return None
  return record


def _render_to_staging(path: str, seed: int, render_kwargs: dict[str, Any]) -> tuple[float, float, int]:
  """Worker task: ``render_scene(seed, **render_kwargs)`` written atomically to ``path``.

  Returns:
    ``(cpu_seconds, wall_seconds, peak_rss_bytes)``: CPU time (user + system of this process) and
    wall time of rendering and writing, and the process's peak resident memory so far.
  """
  cpu, wall = time.process_time(), time.perf_counter()
  record = synthetic.render_scene(seed, **render_kwargs)
  _write_atomic(path, record)
  peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
  return time.process_time() - cpu, time.perf_counter() - wall, peak_rss


def _exit_with_parent(parent_pid: int) -> None:
  """Worker initializer: exit as soon as the building process is gone (killed builds leave no orphans)."""
  def watch():
    while os.getppid() == parent_pid:
      time.sleep(1.0)
    os._exit(1)  # pylint: disable=protected-access
  threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@dataclasses.dataclass
class StageReport:
  """What ``stage_scenes`` did.

  Attributes:
    staging_dir: the staging directory.
    num_scenes: scenes asked for; num_skipped: those already staged (not rendered again).
    num_workers: processes that rendered (1: the calling process).
    cpu_seconds, wall_seconds: per rendered scene, in completion order (render + write, one process).
    peak_rss_bytes: largest peak resident memory of a rendering process.
    elapsed_seconds: wall time of the whole stage.
  """
  staging_dir: str
  num_scenes: int
  num_skipped: int
  num_workers: int
  cpu_seconds: list[float] = dataclasses.field(default_factory=list)
  wall_seconds: list[float] = dataclasses.field(default_factory=list)
  peak_rss_bytes: int = 0
  elapsed_seconds: float = 0.0

  def cpu_hours_per_1000_scenes(self) -> float:
    """Mean CPU seconds per rendered scene × 1000 / 3600 (NaN when nothing was rendered)."""
    return float(np.mean(self.cpu_seconds)) * 1000.0 / 3600.0 if self.cpu_seconds else float("nan")


def _resolve_workers(num_workers: int | None, pending_pixels: int, pending: int) -> int:
  if num_workers is None:
    return 1 if pending_pixels < POOL_MIN_PIXELS else max(1, min(os.cpu_count() or 1, pending))
  if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 1:
    raise ValueError(f"num_workers must be an int >= 1 or None, got {num_workers!r}")
  return max(1, min(int(num_workers), pending))


def _stage(cfg: SyntheticConfig, staging: str, scenes: Iterable[tuple[str, int]],
           num_workers: int | None) -> StageReport:
  """Renders the scenes of ``scenes`` (``(split, index)``) not yet staged in ``staging``; see ``stage_scenes``."""
  scenes = list(scenes)
  for split, index in scenes:
    scene_seed(split, index, cfg)  # validates split and index
  pending = [(split, index) for split, index in scenes if not os.path.exists(_staged_file(staging, split, index))]
  per_scene = cfg.num_views * cfg.num_frames * cfg.height * cfg.width
  workers = _resolve_workers(num_workers, per_scene * len(pending), max(1, len(pending)))
  report = StageReport(staging, len(scenes), len(scenes) - len(pending), workers)
  if not pending:
    return report
  kwargs = cfg.record_sizes()
  jobs = {(split, index): (_staged_file(staging, split, index), scene_seed(split, index, cfg))
          for split, index in pending}
  start = time.perf_counter()
  logging.info("mvtrack_synthetic/%s: rendering %d scene(s) (%d already staged) with %d process(es) into %s",
               cfg.name, len(pending), report.num_skipped, workers, staging)

  def done(scene, result):
    cpu, wall, rss = result
    report.cpu_seconds.append(cpu)
    report.wall_seconds.append(wall)
    report.peak_rss_bytes = max(report.peak_rss_bytes, rss)
    left = len(pending) - len(report.cpu_seconds)
    eta = (time.perf_counter() - start) / len(report.cpu_seconds) * left
    logging.info("mvtrack_synthetic/%s: staged %s[%d] (%.1f s CPU, %.1f s wall); %d left, ETA %.0f s",
                 cfg.name, scene[0], scene[1], cpu, wall, left, eta)

  if workers == 1:
    for scene, (path, seed) in jobs.items():
      done(scene, _render_to_staging(path, seed, kwargs))
  else:
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_exit_with_parent,
        initargs=(os.getpid(),))
    try:
      futures = {pool.submit(_render_to_staging, path, seed, kwargs): scene for scene, (path, seed) in jobs.items()}
      for future in concurrent.futures.as_completed(futures):
        done(futures[future], future.result())
    finally:
      # On an error, scenes being rendered still finish (and stay staged); queued ones are dropped.
      pool.shutdown(wait=True, cancel_futures=True)
  report.elapsed_seconds = time.perf_counter() - start
  logging.info("mvtrack_synthetic/%s: rendered %d scene(s) in %.0f s: %.1f s CPU per scene (%.2f CPU-hours per "
               "1,000 scenes), peak %.2f GB per process", cfg.name, len(report.cpu_seconds),
               report.elapsed_seconds, float(np.mean(report.cpu_seconds)), report.cpu_hours_per_1000_scenes(),
               report.peak_rss_bytes / 1e9)
  return report


def _remove_stale_tmp(staging: str) -> None:
  """Deletes temporary files of scenes whose writer was killed (call under the build lock)."""
  for split in SPLITS:
    directory = os.path.join(staging, split)
    if os.path.isdir(directory):
      for entry in os.listdir(directory):
        if entry.endswith(_TMP_SUFFIX):
          with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(directory, entry))


def _builder(cfg: SyntheticConfig, data_dir: str | None, num_workers: int | None = None) -> MvtrackSynthetic:
  data_dir = os.path.expanduser(data_dir) if data_dir else default_data_dir()
  # Registered configs are passed by name: TFDS refuses to unpickle a builder whose custom config
  # object shares a registered name, and grain worker processes pickle the data source.
  registered = any(cfg is c for c in MvtrackSynthetic.BUILDER_CONFIGS)
  return MvtrackSynthetic(config=cfg.name if registered else cfg, data_dir=data_dir, num_workers=num_workers)


def staging_dir(config: Any = None, *, data_dir: str | None = None) -> str:
  """Where ``config``'s scenes are staged while it is built.

  ``<data_dir>/mvtrack_synthetic/<config name>/.staging_<version>`` (``data_dir`` default
  ``default_data_dir()``).

  Raises:
    ValueError: an unknown config name or invalid sizes.
  """
  return _builder(resolve_config(config), data_dir).staging_dir


def stage_scenes(config: Any = None, *, data_dir: str | None = None, num_workers: int | None = None,
                 scenes: Iterable[tuple[str, int]] | None = None) -> StageReport:
  """Renders scenes of a config into its staging directory (the first, resumable stage of a build).

  Scenes already staged are skipped. ``prepare`` / ``load_split`` then pack every staged scene
  without rendering it again; running this on several machines over disjoint ``scenes`` with a shared
  ``data_dir`` splits a build between them.

  Args:
    config: see ``resolve_config``.
    data_dir: dataset root; default ``default_data_dir()``.
    num_workers: rendering processes; ``None``: ``os.cpu_count()``, or the calling process when the
      scenes to render have fewer than ``POOL_MIN_PIXELS`` pixels in all; ``1``: the calling process.
    scenes: ``(split, index)`` pairs; default every scene of the config.

  Returns:
    A ``StageReport`` (scenes rendered and skipped, CPU and wall seconds per rendered scene).

  Raises:
    ValueError: a bad config, split, index or ``num_workers``.
    Exception: whatever rendering raised (in a worker: re-raised here); scenes finished before it
      stay staged.
  """
  cfg = resolve_config(config)
  if scenes is None:
    scenes = [(split, i) for split in SPLITS for i in range(cfg.split_size(split))]
  return _stage(cfg, _builder(cfg, data_dir).staging_dir, scenes, num_workers)


def packed_split_bytes(cfg: SyntheticConfig) -> int:
  """Bytes of the largest split's records as TFDS buffers them while packing (the arrays' raw size)."""
  record = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in _feature_spec(cfg).values())
  return record * max(cfg.split_size(split) for split in SPLITS)


@contextlib.contextmanager
def _split_packed_in_memory(cfg: SyntheticConfig) -> Iterator[None]:
  """Lets TFDS keep a whole split in memory while packing it (module docstring, "Packing").

  TFDS's writer buffers a split's serialized examples and, past ``tensorflow_datasets.core.shuffle.
  MAX_MEM_BUFFER_SIZE`` (1 GB), spills them to bucket files through ``tf.io.gfile``: TensorFlow, which
  the project does not install, so a split of more than about 1,000 default-size scenes failed with
  ``No module named 'tensorflow'`` after rendering. The records are already in order (shuffling is
  disabled), so the buffer is only ever written out in order: the limit is raised to the largest
  split's size for the build and restored after.
  """
  previous = tfds_shuffle.MAX_MEM_BUFFER_SIZE
  tfds_shuffle.MAX_MEM_BUFFER_SIZE = max(previous, int(packed_split_bytes(cfg) * 1.25))
  try:
    yield
  finally:
    tfds_shuffle.MAX_MEM_BUFFER_SIZE = previous


def prepare(config: Any = None, *, data_dir: str | None = None, num_workers: int | None = None) -> MvtrackSynthetic:
  """Returns the builder for ``config`` after making sure its dataset is fully built.

  A build stages the missing scenes (``stage_scenes``; finished scenes of an interrupted build are
  kept and skipped), packs them into the TFDS dataset, then deletes the staging directory.

  Args:
    config: see ``resolve_config``.
    data_dir: dataset root; default ``default_data_dir()``.
    num_workers: rendering processes of a build (``stage_scenes``); ignored when already built.

  Returns:
    A prepared ``MvtrackSynthetic`` builder (``builder.as_data_source(split)`` reads a split).

  Raises:
    ValueError: a bad config or ``num_workers``.
    Exception: whatever rendering raised; the staged scenes are kept for the next call.
  """
  cfg = resolve_config(config)
  builder = _builder(cfg, data_dir, num_workers)
  config_dir = os.path.dirname(os.fspath(builder.data_path))
  if builder.is_prepared() and not os.path.isdir(builder.staging_dir):
    return builder
  with _build_lock(os.path.join(config_dir, ".build.lock")):
    builder = _builder(cfg, data_dir, num_workers)  # Another process may have built it.
    if not builder.is_prepared():
      _remove_stale_incomplete(config_dir)
      _remove_stale_tmp(builder.staging_dir)
      with _split_packed_in_memory(cfg):
        builder.download_and_prepare()
    shutil.rmtree(builder.staging_dir, ignore_errors=True)  # also a leftover of a build killed after packing
  return builder


def load_split(split: str, *, data_dir: str | None = None, config: Any = None, num_workers: int | None = None):
  """Random-access source of one split, building the dataset on first use.

  Args:
    split: ``"train"``, ``"validation"`` or ``"test"``.
    data_dir: dataset root; default ``$MVTRACK_DATA_DIR`` or ``~/.cache/mvtrack_jax/datasets``
      (respecting ``$XDG_CACHE_HOME``).
    config: ``None`` (default sizes), ``"tiny"``, ``"paper"``, a ``SyntheticConfig``, or a
      ``ConfigDict`` / mapping such as ``configs/synthetic_data.py``'s ``get_config()``.
    num_workers: rendering processes if the dataset must be built (``stage_scenes``).

  Returns:
    A TFDS array_record data source: ``len(source)`` scenes and ``source[i]`` a record dict of
    NumPy arrays (fields and dtypes of ``data.schema``; passes ``validate_record``). Records are
    ordered by seed.

  Raises:
    ValueError: an unknown split (or one of size 0 in this config), or a bad config.
  """
  if split not in SPLITS:
    raise ValueError(f"load_split: unknown split {split!r}; expected one of {SPLITS}")
  cfg = resolve_config(config)
  if cfg.split_size(split) == 0:
    raise ValueError(f"load_split: split {split!r} has 0 scenes in config {cfg.name!r}")
  builder = prepare(cfg, data_dir=data_dir, num_workers=num_workers)
  return builder.as_data_source(split)
