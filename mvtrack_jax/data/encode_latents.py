r"""Encodes every view of every record of a dataset once with the config's Wan VAE (the latent cache).

Run::

  python -m mvtrack_jax.data.encode_latents --config=configs/mvtrack4gen_recammaster.py \
      --config.autoencoder.path=/ckpt/Wan2.1-T2V-1.3B-Diffusers/vae --out /data/latents
  # then train on the cache (the trainer does not run the encoder):
  python -m mvtrack_jax.train --config=configs/mvtrack4gen_recammaster.py \
      --config.autoencoder.path=... --config.data.latents_dir=/data/latents --workdir=...

Which records: the config's primary source (``data.dataset``, ``data_dir``; ``data.sources``), or the
mixture entry ``--source NAME`` (then set that entry's ``latents_dir`` to the cache for training), for
the splits ``--splits`` (default: the config's train and evaluation splits). At which size: ``data.height × data.width``
with the pipeline's centred crop (``pipeline.resized_video``). Layout, atomic writes and resuming:
``data.feature_cache``. Work is split across processes (record ``i`` goes to process
``i mod process_count``) and each record's views are encoded as one batch, sharded over this
process's local devices (padded to a multiple of their count).
"""

from __future__ import annotations

import functools
import os

from absl import app
from absl import flags
import jax
import numpy as np

from mvtrack_jax import cli
from mvtrack_jax import errors
from mvtrack_jax import run_config
from mvtrack_jax.data import feature_cache
from mvtrack_jax.data import pipeline
from mvtrack_jax.data import sources
from mvtrack_jax.data import video_io
from mvtrack_jax import builders
from mvtrack_jax.training import distributed


def encode_dataset(config, out: str, splits, progress: bool = True, source: str | None = None) -> dict[str, int]:
  """Encodes ``splits`` of one of ``config``'s sources (``source``: a ``data.mixture`` entry's name; default
  the primary, ``data.sources``) into ``out``; returns ``{split: records encoded now}``.

  Raises:
    errors.UserError: ``config.autoencoder.kind`` is not ``"wan"`` (naming the field); ValueError: ``out`` holds
      a cache made with other settings. NotADirectoryError / PermissionError: ``out`` is a file or not writable;
      FileNotFoundError: no data_dir or VAE weights (checked before the VAE is built, naming the flag).
  """
  # Fail fast: the output folder and every input (config, dataset, VAE weights) before the VAE is built.
  video_io.check_output_dir(out)
  if config.autoencoder.kind != "wan":
    raise errors.UserError(f"--config.autoencoder.kind: got {config.autoencoder.kind!r}; the latent cache is for the "
                           "Wan VAE (expected 'wan')")
  sources.check_data_dir(config.data, source)
  vae_path = str(config.autoencoder.path)
  if vae_path and vae_path != "random" and not os.path.exists(vae_path):
    raise FileNotFoundError(f"--config.autoencoder.path {vae_path}: no such file or folder (expected a diffusers vae/ "
                            "folder or a Wan2.1_VAE.pth / .safetensors)")
  records = {split: sources.data_source(config.data, split, source) for split in splits}
  ae = builders.make_autoencoder(run_config.parse(config).autoencoder)
  pcfg = sources.pipeline_config(config.data, 1, train=False)
  feature_cache.write_metadata(out, feature_cache.cache_metadata(int(config.data.height), int(config.data.width), ae))
  k = ae.temporal_factor
  devices = jax.local_devices()
  mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))

  def encode(split: str, index: int, _) -> np.ndarray:
    video = np.asarray(records[split][index]["video"])  # (V, T, H, W, 3)
    t = 1 + (video.shape[1] - 1) // k * k
    views = pipeline.resized_video(video[:, :t], pcfg)
    pad = (-views.shape[0]) % len(devices)
    batch = np.concatenate([views, np.repeat(views[-1:], pad, axis=0)]) if pad else views
    return np.asarray(ae.encode(jax.device_put(batch, sharding)), np.float32)[:views.shape[0]]

  done = {}
  for split in splits:
    todo, owned = feature_cache.missing_records(out, split, len(records[split]), process_index=jax.process_index(),
                                                process_count=jax.process_count())
    feature_cache.encode_records(out, split, todo, owned, functools.partial(encode, split), desc=f"encode {split}",
                                 progress=progress)
    done[split] = len(todo)
  return done


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  cli.define_cache_flags("autoencoder.kind='wan'", dtype=False)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if flags.FLAGS.config is None or not flags.FLAGS.out:
    raise app.UsageError("--config and --out are required")
  distributed.initialize(None, None, None, None)
  config, out = run_config.complete(cli.loaded_config(flags.FLAGS["config"])), flags.FLAGS.out
  splits = flags.FLAGS.splits or sources.splits_read(config.data, flags.FLAGS.source)
  done = encode_dataset(config, out, splits, progress=flags.FLAGS.progress, source=flags.FLAGS.source)
  print(f"latent cache {out}: " + ", ".join(f"{s}: {n} records encoded" for s, n in done.items()))


if __name__ == "__main__":
  define_flags()
  cli.run(main)
