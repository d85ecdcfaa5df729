"""Build settings of the built-in synthetic multi-view tracking dataset (mvtrack_synthetic).

Builds (or verifies) the dataset into ``$MVTRACK_DATA_DIR`` (default ``~/.cache/mvtrack_jax/datasets``)::

  .venv/bin/python -m mvtrack_jax.data.synthetic_dataset --config=configs/synthetic_data.py
  .venv/bin/python -m mvtrack_jax.data.synthetic_dataset --config=configs/synthetic_data.py:tiny

Override any field from the command line, e.g. ``--config.num_train=1000 --config.height=96``.
In Python: ``synthetic_dataset.load_split("train", config=get_config())``. The default (V=4, T=16,
64×64, N=256, 200/20/20 scenes) is the registered ``default`` TFDS config; other sizes get their own
config named after the sizes (``SyntheticConfig.from_config_dict``).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: ``None``/``"default"`` for the default dataset, ``"tiny"`` for a seconds-long smoke build."""
  cfg = ml_collections.ConfigDict()
  cfg.num_views = 4  # V synchronised cameras per scene.
  cfg.num_frames = 16  # T frames per clip.
  cfg.height = 64  # H pixels.
  cfg.width = 64  # W pixels.
  cfg.num_tracks = 256  # N ground-truth tracked points (half on moving objects).
  cfg.num_train = 200
  cfg.num_validation = 20
  cfg.num_test = 20
  cfg.data_dir = ""  # "" = $MVTRACK_DATA_DIR or ~/.cache/mvtrack_jax/datasets.
  if arg == "tiny":
    cfg.num_views, cfg.num_frames, cfg.height, cfg.width, cfg.num_tracks = 2, 4, 32, 48, 32
    cfg.num_train, cfg.num_validation, cfg.num_test = 3, 2, 2
  elif arg not in (None, "", "default"):
    raise ValueError(f"configs/synthetic_data.py: unknown arg {arg!r}; expected 'default' or 'tiny'")
  return cfg
