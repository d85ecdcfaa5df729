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
(``configs/synthetic_data.py``'s values) and ``tiny``, or any custom one made with
``SyntheticConfig.from_config_dict(cfg)``; its name encodes the sizes, so different sizes live in
different directories ``<data_dir>/mvtrack_synthetic/<config name>/<version>/``.

``load_split`` builds the dataset on first use into ``$MVTRACK_DATA_DIR`` (default
``$XDG_CACHE_HOME/mvtrack_jax/datasets``, i.e. ``~/.cache/mvtrack_jax/datasets``). Interrupted builds:
TFDS writes into a sibling ``incomplete.XXXXXX_<version>`` directory and renames it to
``<version>`` only after every split and ``dataset_info.json`` are written; an exception removes the
temporary directory, a killed process leaves it behind but never at the final path, so the next
``load_split`` sees the dataset as not prepared and rebuilds it. ``load_split`` holds a file lock
while building (concurrent callers wait instead of building twice) and, under that lock, deletes
such leftovers of killed builds.

Command line (builds the dataset of a config file, see ``configs/synthetic_data.py``)::

  python -m mvtrack_jax.data.synthetic_dataset --config=configs/synthetic_data.py
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from mvtrack_jax.data import synthetic

SPLITS = ("train", "validation", "test")
SPLIT_SEED_OFFSETS = {"train": 0, "validation": 1_000_000, "test": 2_000_000}
MAX_SPLIT_SIZE = 1_000_000
_INCOMPLETE_PREFIX = "incomplete."
RECORD_SIZE_FIELDS = ("num_views", "num_frames", "height", "width", "num_tracks")
_SIZE_FIELDS = RECORD_SIZE_FIELDS + ("num_train", "num_validation", "num_test")


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
  """Sizes of the synthetic dataset (see ``synthetic.render_scene`` for V/T/H/W/N).

  Attributes:
    num_views, num_frames, height, width, num_tracks: record sizes (V, T, H, W, N).
    num_train, num_validation, num_test: scenes per split (each < 10⁶).
  """
  num_views: int = 4
  num_frames: int = 16
  height: int = 64
  width: int = 64
  num_tracks: int = 256
  num_train: int = 200
  num_validation: int = 20
  num_test: int = 20

  def split_size(self, split: str) -> int:
    return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}[split]

  def record_sizes(self) -> dict[str, int]:
    """``{num_views, num_frames, height, width, num_tracks}``: the ``synthetic.render_scene`` keywords."""
    return {f: int(getattr(self, f)) for f in RECORD_SIZE_FIELDS}

  @classmethod
  def from_config_dict(cls, cfg: Any) -> "SyntheticConfig":
    """A config from a mapping / ``ml_collections.ConfigDict`` with the attribute names above.

    Missing keys take the defaults; the name encodes every size, e.g.
    ``v4_t16_64x64_n256_s200-20-20`` (other keys, like ``data_dir``, are ignored).

    Raises:
      ValueError: a size is not a positive int (``num_tracks`` may be 0; split sizes must be in
        ``[0, 10⁶)`` with at least one scene overall).
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
    v = {k: int(x) for k, x in values.items()}
    name = (f"v{v['num_views']}_t{v['num_frames']}_{v['height']}x{v['width']}_n{v['num_tracks']}"
            f"_s{v['num_train']}-{v['num_validation']}-{v['num_test']}")
    return cls(name=name, description=f"synthetic scenes {name}", **v)


DEFAULT_CONFIG = SyntheticConfig(name="default", description="V=4, T=16, 64x64, N=256; 200/20/20 scenes")
TINY_CONFIG = SyntheticConfig(
    name="tiny", description="V=2, T=4, 32x48, N=32; 3/2/2 scenes (tests, smoke runs)", num_views=2,
    num_frames=4, height=32, width=48, num_tracks=32, num_train=3, num_validation=2, num_test=2)


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


# Under ``python -m`` this file also runs as ``__main__``; that copy must not register the dataset
# name a second time (the CLI uses the class of the real module, whose package TFDS can resolve).
class MvtrackSynthetic(tfds.core.GeneratorBasedBuilder, skip_registration=__name__ == "__main__"):
  """TFDS builder of procedurally rendered multi-view dynamic scenes with exact point tracks."""

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
  BUILDER_CONFIGS = [DEFAULT_CONFIG, TINY_CONFIG]
  DEFAULT_CONFIG_NAME = "default"

  def __init__(self, **kwargs):
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)

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
    return {split: self._generate_examples(split) for split in SPLITS if cfg.split_size(split) > 0}

  def _generate_examples(self, split: str) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    cfg = self.builder_config
    for i in range(cfg.split_size(split)):
      seed = scene_seed(split, i, cfg)
      yield seed, synthetic.render_scene(seed, **cfg.record_sizes())


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


def record_sizes(config: Any = None) -> dict[str, int]:
  """Record sizes of a dataset config (``None``, ``"default"``, ``"tiny"``, a mapping, …; ``resolve_config``).

  Returns:
    ``{"num_views", "num_frames", "height", "width", "num_tracks"}`` ints, the keyword arguments of
    ``synthetic.render_scene`` / ``render_scene_views`` for that config's scenes.

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
  """``None`` → default; a registered config name (``"default"``, ``"tiny"``); a ``SyntheticConfig``;
  or a mapping / ``ConfigDict`` (``SyntheticConfig.from_config_dict``; sizes equal to a registered
  config's resolve to that config, so ``configs/synthetic_data.py``'s default is ``"default"``).

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
    if all(getattr(registered, f) == getattr(custom, f) for f in _SIZE_FIELDS):
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


def prepare(config: Any = None, *, data_dir: str | None = None) -> MvtrackSynthetic:
  """Returns the builder for ``config`` after making sure its dataset is fully built.

  Args:
    config: see ``resolve_config``.
    data_dir: dataset root; default ``default_data_dir()``.

  Returns:
    A prepared ``MvtrackSynthetic`` builder (``builder.as_data_source(split)`` reads a split).
  """
  cfg = resolve_config(config)
  data_dir = os.path.expanduser(data_dir) if data_dir else default_data_dir()
  # Registered configs are passed by name: TFDS refuses to unpickle a builder whose custom config
  # object shares a registered name, and grain worker processes pickle the data source.
  registered = any(cfg is c for c in MvtrackSynthetic.BUILDER_CONFIGS)
  builder_config = cfg.name if registered else cfg
  builder = MvtrackSynthetic(config=builder_config, data_dir=data_dir)
  if builder.is_prepared():
    return builder
  config_dir = os.path.dirname(os.fspath(builder.data_path))
  with _build_lock(os.path.join(config_dir, ".build.lock")):
    builder = MvtrackSynthetic(config=builder_config, data_dir=data_dir)  # Another process may have built it.
    if not builder.is_prepared():
      _remove_stale_incomplete(config_dir)
      builder.download_and_prepare()
  return builder


def load_split(split: str, *, data_dir: str | None = None, config: Any = None):
  """Random-access source of one split, building the dataset on first use.

  Args:
    split: ``"train"``, ``"validation"`` or ``"test"``.
    data_dir: dataset root; default ``$MVTRACK_DATA_DIR`` or ``~/.cache/mvtrack_jax/datasets``
      (respecting ``$XDG_CACHE_HOME``).
    config: ``None`` (default sizes), ``"tiny"``, a ``SyntheticConfig``, or a ``ConfigDict`` /
      mapping such as ``configs/synthetic_data.py``'s ``get_config()``.

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
  builder = prepare(cfg, data_dir=data_dir)
  return builder.as_data_source(split)


def _run_cli() -> None:
  """``python -m mvtrack_jax.data.synthetic_dataset --config=configs/synthetic_data.py[:tiny]``."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flag = config_flags.DEFINE_config_file("config", None, "configs/synthetic_data.py", lock_config=True)

  def main(argv) -> None:
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments {argv[1:]}")
    cfg = config_flag.value
    if cfg is None:
      raise app.UsageError("--config=configs/synthetic_data.py is required")
    builder = prepare(cfg, data_dir=cfg.get("data_dir") or None)
    for split in SPLITS:
      if resolve_config(cfg).split_size(split):
        print(f"{split}: {len(builder.as_data_source(split))} scenes in {builder.data_path}")

  app.run(main)


if __name__ == "__main__":
  from mvtrack_jax.data import synthetic_dataset as _module  # pylint: disable=g-import-not-at-top
  _module._run_cli()  # pylint: disable=protected-access
