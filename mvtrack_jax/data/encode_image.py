r"""Encodes the first frame of every view of a dataset once with the config's CLIP image encoder (the image cache).

Run::

  python -m mvtrack_jax.data.encode_image --config=configs/mvtrack4gen_redirector.py \
      --config.image.encoder=/ckpt/Wan2.1-I2V-14B-480P-Diffusers --config.data.data_dir=$D --out /data/image
  # then train with the cache (the trainer never runs the image encoder):
  python -m mvtrack_jax.train --config=configs/mvtrack4gen_redirector.py --config.image.cache=/data/image ...

**Encoder**: ``config.image.encoder``, a local folder that ``models.image_encoder.CLIPImageEncoder``
reads (a diffusers Wan2.1 image-to-video folder with ``image_encoder/`` and ``image_processor/``, or a
transformers CLIP vision model folder), with ``config.image.preprocess`` (``"wan"``: Wan's bicubic
squash to 224², the default; ``"clip"``: the folder's ``CLIPImageProcessor``). Features are the
penultimate block's hidden states, ``(257, 1280)`` per frame for ViT-H/14.

**Which records**: the config's primary source (``data.dataset``, ``data_dir``; ``data.sources``), or the
mixture entry ``--source NAME`` (then set that entry's ``image_cache`` to the cache for training), for
the splits ``--splits`` (default: the config's train split, and its evaluation split for the evaluation
source). **Which pixels**: frame 0 of each view, resized to cover ``data.height × data.width`` and
centre-cropped exactly as the pipeline's evaluation crop (``pipeline.resized_video``), i.e. the first
frame of the reference video the DiT sees; only that frame is decoded.

**Output**: ``data.feature_cache`` (layout, atomic writes, resuming): ``image.json`` and one file per
record, ``(V, N, D)`` in ``--dtype`` float16 (half the disk; values beyond float16's range are an
error) or float32. A killed run resumes by skipping the records already written; a cache made with
other settings (encoder, preprocess, frame size, dtype) is refused. ``--out`` and the encoder folder
are checked before the encoder is loaded.
"""

from __future__ import annotations

from typing import Any, Sequence

from absl import app
from absl import flags
import numpy as np

from mvtrack_jax import cli
from mvtrack_jax import errors
from mvtrack_jax import run_config
from mvtrack_jax.data import feature_cache
from mvtrack_jax.data import pipeline
from mvtrack_jax.data import sources
from mvtrack_jax.data import video_io
from mvtrack_jax.models import image_encoder as image_lib

def first_frames(record: Any) -> np.ndarray:
  """``(V, H, W, 3)`` uint8: frame 0 of every view of a record (a lazy video decodes only that frame)."""
  video = record["video"]
  if hasattr(video, "read_window"):  # readers.LazyVideo
    return video.read_window(range(video.shape[0]), [0])[:, 0]
  video = np.asarray(video)
  if video.ndim != 5 or video.shape[-1] != 3:
    raise ValueError(f"encode_image: a record's video has shape {video.shape}; expected (V, T, H, W, 3)")
  return video[:, 0]


def check_encoder(config, flag: str = "--config.image.encoder") -> str:
  """The encoder folder of ``config.image`` after checking its layout (no torch import, nothing loaded).

  Raises:
    ValueError: ``image.encoder`` is empty. FileNotFoundError: the folder is not a
      CLIP checkpoint layout (``models.image_encoder.resolve_folders``), naming ``flag``.
  """
  image = config.image
  path = str(image.encoder)
  if not path:
    raise errors.UserError(f"{flag} is empty; set it to a diffusers Wan2.1 image-to-video folder (with "
                           "image_encoder/ and image_processor/) or a transformers CLIP vision model folder")
  image_lib.resolve_folders(path, str(image.preprocess), flag=flag)
  return path


def encode_images(config, out: str, splits: Sequence[str], *, dtype: str = "float16",
                  encoder: image_lib.CLIPImageEncoder | None = None, progress: bool = True,
                  source: str | None = None) -> dict[str, dict[str, int]]:
  """Encodes frame 0 of every view of ``splits`` of ``config``'s dataset into the image cache ``out``.

  Args:
    config: a run config (``image.encoder``, ``image.preprocess``, the ``data`` block).
    out: cache folder (created; an existing one is resumed).
    splits: split names.
    dtype: ``"float16"`` or ``"float32"`` record files.
    encoder: an already built encoder (default: ``CLIPImageEncoder(config.image.encoder,
      preprocess=config.image.preprocess)``); its ``preprocess`` must be the config's.
    progress: tqdm bars.
    source: a ``data.mixture`` entry's name (its ``image_cache`` is then ``out``); default the primary
      source (``config.image.cache``).

  Returns:
    ``{split: {"encoded": records encoded now, "skipped": records already in the cache}}``.

  Raises:
    ValueError: bad ``dtype``, an empty ``image.encoder``, an encoder whose
      preprocess differs from the config's, a cache made with other settings, or float16 overflow.
    FileNotFoundError: the encoder folder, the data_dir or a split of the dataset is missing.
  """
  if dtype not in feature_cache.RECORD_DTYPES:
    raise ValueError(f"encode_image: dtype={dtype!r}; expected one of {feature_cache.RECORD_DTYPES}")
  image = config.image
  preprocess = str(image.preprocess)
  # Fail fast: the encoder folder's layout and the data_dir, before any record is read or the encoder loaded.
  path = check_encoder(config) if encoder is None else None
  sources.check_data_dir(config.data, source)
  pcfg = sources.pipeline_config(config.data, 1, train=False)
  plan = {}
  for split in splits:
    records = sources.data_source(config.data, split, source)
    plan[split] = (records, *feature_cache.missing_records(out, split, len(records)))
  if encoder is None:
    encoder = image_lib.CLIPImageEncoder(path, preprocess=preprocess)
  if encoder.preprocess != preprocess:
    raise ValueError(f"encode_image: the encoder preprocesses with {encoder.preprocess!r}, config.image.preprocess is "
                     f"{preprocess!r}")
  feature_cache.write_metadata(out, feature_cache.image_metadata(encoder, pcfg.height, pcfg.width, dtype),
                               feature_cache.IMAGE_JSON)
  done = {}
  for split, (records, todo, owned) in plan.items():

    def encode(index: int, path: str, records=records) -> np.ndarray:
      frames = pipeline.resized_video(first_frames(records[index]), pcfg)   # (V, height, width, 3)
      return feature_cache.as_record_dtype(encoder.encode(frames), dtype, path)  # (V, N, D)

    feature_cache.encode_records(out, split, todo, owned, encode, desc=f"encode images {split}", progress=progress)
    done[split] = {"encoded": len(todo), "skipped": len(records) - len(todo)}
  return done


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  cli.define_cache_flags("image.encoder set")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = run_config.complete(cli.loaded_config(flags.FLAGS["config"]))  # validated, every field present
  f = flags.FLAGS
  if f.config is None or not f.out:
    raise app.UsageError("--config and --out are required")
  out = video_io.check_output_dir(f.out)   # before anything is loaded
  splits = f.splits or sources.splits_read(config.data, f.source)
  done = encode_images(config, out, splits, dtype=f.dtype, progress=f.progress, source=f.source)
  meta = feature_cache.read_metadata(out, feature_cache.IMAGE_JSON)
  print(f"image cache {out}: " + "; ".join(f"{s}: {d['encoded']} records encoded, {d['skipped']} already there"
                                           for s, d in done.items())
        + f" ((V, {meta['num_tokens']}, {meta['width']}) {meta['dtype']} per record)")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
