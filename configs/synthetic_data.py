"""Build settings of the built-in synthetic multi-view tracking dataset (mvtrack_synthetic).

Builds (or verifies) the dataset into ``$MVTRACK_DATA_DIR`` (default ``~/.cache/mvtrack_jax/datasets``)::

  .venv/bin/python -m mvtrack_jax.data.build_synthetic --config=configs/synthetic_data.py
  .venv/bin/python -m mvtrack_jax.data.build_synthetic --config=configs/synthetic_data.py:tiny
  .venv/bin/python -m mvtrack_jax.data.build_synthetic --config=configs/synthetic_data.py:paper --num_workers=16

Override any field from the command line, e.g. ``--config.num_train=1000 --config.height=96``.
In Python: ``synthetic_dataset.load_split("train", config=get_config())``. The default (V=4, T=16,
64×64, N=256, 200/20/20 scenes) is the registered ``default`` TFDS config, ``:tiny`` the ``tiny``
one and ``:paper`` the ``paper`` one (the paper's 81-frame 480×832 videos: V=2, N=1024, 64/8/8
scenes, ``"paper"`` render style; 272 MB per scene on disk and about 65 CPU-seconds to render
each, see ``benchmarks/synthetic_bench.py``); other sizes get their own config named after the sizes
(``SyntheticConfig.from_config_dict``), e.g. ``:paper --config.num_train=1000``. Builds render in
``--num_workers`` processes (default ``os.cpu_count()``) and resume where a killed build stopped
(``mvtrack_jax/data/synthetic_dataset.py``).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: ``None``/``"default"`` for the default dataset, ``"tiny"`` for a seconds-long smoke build,
  ``"paper"`` for the paper-resolution dataset (hours of CPU: build it with many workers)."""
  cfg = ml_collections.ConfigDict()
  cfg.num_views = 4  # V synchronised cameras per scene.
  cfg.num_frames = 16  # T frames per clip.
  cfg.height = 64  # H pixels.
  cfg.width = 64  # W pixels.
  cfg.num_tracks = 256  # N ground-truth tracked points (half on moving objects).
  cfg.num_train = 200
  cfg.num_validation = 20
  cfg.num_test = 20
  cfg.style = "default"  # render style (synthetic.STYLES): "default" or "paper" (textures for 480x832).
  cfg.data_dir = ""  # "" = $MVTRACK_DATA_DIR or ~/.cache/mvtrack_jax/datasets.
  if arg == "tiny":
    cfg.num_views, cfg.num_frames, cfg.height, cfg.width, cfg.num_tracks = 2, 4, 32, 48, 32
    cfg.num_train, cfg.num_validation, cfg.num_test = 3, 2, 2
  elif arg == "paper":
    cfg.num_views, cfg.num_frames, cfg.height, cfg.width, cfg.num_tracks = 2, 81, 480, 832, 1024
    cfg.num_train, cfg.num_validation, cfg.num_test = 64, 8, 8
    cfg.style = "paper"
  elif arg not in (None, "", "default"):
    raise ValueError(f"configs/synthetic_data.py: unknown arg {arg!r}; expected 'default', 'tiny' or 'paper'")
  return cfg
