"""Builds the built-in synthetic dataset ahead of training (it is otherwise built on first use).

Command line::

  python -m mvtrack_jax.data.build_synthetic --config=configs/synthetic_data.py          # 200/20/20 scenes
  python -m mvtrack_jax.data.build_synthetic --config=configs/synthetic_data.py:tiny     # seconds
  python -m mvtrack_jax.data.build_synthetic --config=configs/synthetic_data.py:paper --num_workers=16

``--num_workers=K`` sets the rendering processes (default ``os.cpu_count()``); the build is resumable
(``data.synthetic_dataset.prepare``: rendered scenes are kept, a rerun renders the rest) and prints the
size and folder of every split. The dataset lands in ``config.data_dir`` or ``$MVTRACK_DATA_DIR``
(``~/.cache/mvtrack_jax/datasets`` by default).
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from mvtrack_jax import cli
from mvtrack_jax.data import synthetic_dataset


def define_flags():
  """``(config, num_workers)`` flag holders (only when run as a program)."""
  config = config_flags.DEFINE_config_file("config", None, "configs/synthetic_data.py", lock_config=True)
  workers = flags.DEFINE_integer("num_workers", None, "Rendering processes (default: os.cpu_count()).")
  return config, workers


def main(argv, config_flag, workers_flag) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  cfg = config_flag.value
  if cfg is None:
    raise app.UsageError("--config=configs/synthetic_data.py is required")
  logging.set_verbosity(logging.INFO)
  builder = synthetic_dataset.prepare(cfg, data_dir=cfg.data_dir or None, num_workers=workers_flag.value)
  for split in synthetic_dataset.SPLITS:
    if synthetic_dataset.resolve_config(cfg).split_size(split):
      print(f"{split}: {len(builder.as_data_source(split))} scenes in {builder.data_path}")


if __name__ == "__main__":
  _config, _workers = define_flags()
  cli.run(lambda argv: main(argv, _config, _workers))
