r"""Encodes the captions of a dataset once with the config's umT5 text encoder (the text cache).

Run::

  python -m mvtrack_jax.data.encode_text --config=configs/mvtrack4gen_recammaster.py \
      --config.text.encoder=/ckpt/Wan2.1-T2V-1.3B-Diffusers --config.data.data_dir=$D \
      --captions=$D/metadata.csv --out /data/text
  # then train with the cache (the trainer never runs the text encoder):
  python -m mvtrack_jax.train --config=configs/mvtrack4gen_recammaster.py --config.text.cache=/data/text ...

**Captions file**: ReCamMaster's ``metadata.csv`` layout (``data.captions``: columns ``file_name`` and
``text``; a row's ``file_name`` names the end of a view's path, by whole components). Views are named:

- MultiCamVideo: each view's ``…/sceneK/videos/camXX.mp4``; a row naming a folder (``…/sceneK``)
  captions every view below it that has no row of its own;
- ``.npz`` clips: the clip file, one caption for all its views;
- sources without files (the built-in synthetic dataset): ``<split>/<index>``, e.g. ``train/0``.

A view without a caption gets the empty prompt (so it trains the null branch, as caption dropout
does) and is counted in the summary; a captions file that matches no record at all is an error.

**Output**: ``data.feature_cache`` (layout, atomic writes, resuming): ``text.json``, ``null.npy``
(the empty prompt's embedding: the model's null context), ``negative.npy`` (Wan's standard negative
prompt ``models.text_encoder.WAN_NEGATIVE_PROMPT``: the negative branch of guidance at inference) and
one file per record, ``(L, D)`` when all its views share a caption, else ``(V, L, D)``, zero-padded to
the record's longest caption,
``--dtype`` float16 (half the disk; values beyond float16's range are an error) or float32.
``max_length`` is ``config.text.context_length`` (Wan: 512). ``text.json`` records the captions
file's SHA-256: extending a cache with changed captions is refused.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Sequence

from absl import app
from absl import flags
import numpy as np

from mvtrack_jax import cli
from mvtrack_jax import errors
from mvtrack_jax import run_config
from mvtrack_jax.data import feature_cache
from mvtrack_jax.data.captions import caption_for, read_captions
from mvtrack_jax.data import sources
from mvtrack_jax.data import video_io
from mvtrack_jax.models import text_encoder as text_lib



def caption_keys(source: Any, split: str, index: int) -> list[str]:
  """Names of the views of record ``index`` (one name = one caption for all views; module docstring)."""
  if hasattr(source, "caption_keys"):
    return source.caption_keys(index)
  return [f"{split}/{int(index)}"]


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as fh:
    for chunk in iter(lambda: fh.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _record_array(embeddings: Sequence[np.ndarray], dtype: str, name: str) -> np.ndarray:
  """``(L, D)`` when all views share one embedding, else ``(V, L_max, D)`` zero-padded; cast to ``dtype``."""
  if all(e is embeddings[0] for e in embeddings):
    out = embeddings[0]
  else:
    out = np.zeros((len(embeddings), max(e.shape[0] for e in embeddings), embeddings[0].shape[1]), np.float32)
    for v, e in enumerate(embeddings):
      out[v, :e.shape[0]] = e
  return feature_cache.as_record_dtype(out, dtype, name)


def encode_captions(config, captions_path: str, out: str, splits: Sequence[str], *, dtype: str = "float16",
                    encoder: text_lib.UMT5TextEncoder | None = None, progress: bool = True,
                    source: str | None = None) -> dict[str, dict[str, int]]:
  """Encodes the captions of ``splits`` of ``config``'s dataset into the text cache ``out``.

  Args:
    config: a run config (``text.encoder``, ``text.context_length``, the ``data`` block).
    captions_path: the captions CSV (module docstring).
    out: cache folder (created; an existing one is resumed).
    splits: split names.
    dtype: ``"float16"`` or ``"float32"`` record files.
    encoder: an already built encoder (default: ``UMT5TextEncoder(config.text.encoder)``).
    progress: tqdm bars.
    source: a ``data.mixture`` entry's name (its ``text_cache`` is then ``out``); default the primary
      source (``config.text.cache``).

  Returns:
    ``{split: {"encoded": records encoded now, "uncaptioned": their views without a caption}}``.

  Raises:
    ValueError: bad ``dtype``, ``config.text.encoder`` empty, a cache made with other settings, or
      captions that name no view of the records still to encode (checked before anything is written).
    NotADirectoryError / PermissionError: ``out`` is a file or not writable; FileNotFoundError: no captions
      file, data_dir or encoder folder (these checked before the encoder is built, naming the flag).
  """
  if dtype not in feature_cache.RECORD_DTYPES:
    raise ValueError(f"encode_text: dtype={dtype!r}; expected one of {feature_cache.RECORD_DTYPES}")
  # Fail fast: the output folder and every input (captions, dataset, encoder) before the encoder is built.
  video_io.check_output_dir(out)
  video_io.ensure_input_file(captions_path, "--captions")
  sources.check_data_dir(config.data, source)
  if encoder is None:
    if not config.text.encoder:
      raise ValueError("encode_text: config.text.encoder is empty; set it to a diffusers Wan2.1 folder (with "
                       "text_encoder/ and tokenizer/) or a UMT5 model folder")
    if not os.path.isdir(config.text.encoder):
      raise FileNotFoundError(f"--config.text.encoder {config.text.encoder}: no such folder (expected a diffusers "
                              "Wan2.1 folder with text_encoder/ and tokenizer/, or a UMT5 model folder)")
  captions = read_captions(captions_path)
  plan = {}
  for split in splits:
    records = sources.data_source(config.data, split, source)
    todo, owned = feature_cache.missing_records(out, split, len(records))
    plan[split] = (owned, {i: (names, [caption_for(captions, n) for n in names])
                           for i in todo for names in [caption_keys(records, split, i)]})
  views = [(names[0], t) for _, todo in plan.values() for names, texts in todo.values() for t in texts]
  if views and all(t is None for _, t in views):
    raise errors.UserError(f"--captions {captions_path}: none of its {len(captions)} rows names a view of "
                           f"{', '.join(splits)} (view names look like {views[0][0]!r}); nothing was written")
  if encoder is None:
    encoder = text_lib.UMT5TextEncoder(config.text.encoder, max_length=int(config.text.context_length))
  feature_cache.write_metadata(out, {"encoder": encoder.source, "dim": encoder.dim, "max_length": encoder.max_length,
                                     "dtype": dtype, "captions_sha256": _sha256(captions_path)},
                               feature_cache.TEXT_JSON)
  null, negative = encoder.encode(["", text_lib.WAN_NEGATIVE_PROMPT])
  feature_cache.write_atomic(os.path.join(out, feature_cache.NULL_NPY), null.astype(np.float32))
  feature_cache.write_atomic(os.path.join(out, feature_cache.NEGATIVE_NPY), negative.astype(np.float32))
  done = {}
  for split, (owned, todo) in plan.items():

    def encode(index: int, path: str, todo=todo) -> np.ndarray:
      texts = todo[index][1]
      unique = sorted({t for t in texts if t is not None})
      embedded = dict(zip(unique, encoder.encode(unique))) | {None: null}
      return _record_array([embedded[t] for t in texts], dtype, path)

    feature_cache.encode_records(out, split, list(todo), owned, encode, desc=f"encode text {split}", progress=progress)
    done[split] = {"encoded": len(todo), "uncaptioned": sum(t is None for _, texts in todo.values() for t in texts)}
  return done


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  cli.define_cache_flags("text.encoder set")
  flags.DEFINE_string("captions", None, "Captions CSV (ReCamMaster's metadata.csv: file_name,text).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = run_config.complete(cli.loaded_config(flags.FLAGS["config"]))  # validated, every field present
  f = flags.FLAGS
  if f.config is None or not f.out or not f.captions:
    raise app.UsageError("--config, --captions and --out are required")
  splits = f.splits or sources.splits_read(config.data, f.source)
  done = encode_captions(config, f.captions, f.out, splits, dtype=f.dtype, progress=f.progress, source=f.source)
  print(f"text cache {f.out}: " + "; ".join(
      f"{s}: {d['encoded']} records encoded, {d['uncaptioned']} views without a caption (empty prompt)"
      for s, d in done.items()))


if __name__ == "__main__":
  define_flags()
  cli.run(main)
