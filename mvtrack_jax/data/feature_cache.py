"""Feature caches: what frozen encoders make of every record once, read back by the input pipeline.

ReCamMaster, ReDirector and maxdiffusion train Wan on features extracted once, not per step: the
VAE encoder costs about as much as a DiT forward at 81×480×832, and umT5-XXL is 5.7 B parameters.
Three caches share one layout and one reader (:class:`CachedFeatureSource`):

**Latent cache** (``python -m mvtrack_jax.data.encode_latents``; ``config.data.latents_dir``)::

  DIR/cache.json                  what was encoded: VAE source and config, frame size, factors
  DIR/<split>/<index:08d>.npy     float32 (V, F, h, w, z): normalised latents of record <index>

Each record's views are resized to cover the training size and centre-cropped exactly as the
pipeline's evaluation crop (``pipeline.resized_video``), trimmed to ``1 + k·⌊(T − 1)/k⌋`` frames
and encoded as one video per view. Records gain the field ``latents``.

**Text cache** (``python -m mvtrack_jax.data.encode_text``; ``config.text.cache``)::

  DIR/text.json                   the encoder, its width, max_length, dtype, the captions file
  DIR/null.npy                    float32 (L0, D): the empty prompt's embedding (L0 = 1, "</s>")
  DIR/<split>/<index:08d>.npy     float16/32 (L, D), or (V, L, D) when the views' captions differ

Record files hold umT5 caption embeddings zero-padded to the longest caption of the record (Wan pads
with zeros, so this loses nothing). Records gain the field ``context``; a record without a caption
holds the empty prompt's embedding. :class:`NullContextSource` gives every record of an uncaptioned
source (e.g. the synthetic set in a mixture) that empty-prompt embedding.

**Image cache** (``python -m mvtrack_jax.data.encode_image``; ``config.image.cache``)::

  DIR/image.json                  the encoder, preprocess, num_tokens, width, dtype, frame_size, frame
  DIR/<split>/<index:08d>.npy     float16/32 (V, N, D): CLIP features of frame 0 of each view

Record files hold ``models.image_encoder.CLIPImageEncoder`` features (Wan/ReDirector: ``N = 257``
tokens of width ``D = 1280``) of the first frame of every view, taken at ``frame_size`` (the run's
``data.height × data.width``) with the pipeline's centred crop (``pipeline.resized_video``), as the
reference video the DiT sees. Which view is the reference is drawn per example, so all are kept.
Records gain the field ``image_context``. There is no null image: in a run with image features every
source needs an image cache.

A file appears only complete (written to a temporary name in the same folder, then renamed), so a
killed encoding run resumes by skipping existing files; a cache's metadata file is checked against
the run that reads or extends it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from mvtrack_jax.data import video_io

CACHE_JSON = "cache.json"
TEXT_JSON = "text.json"
IMAGE_JSON = "image.json"
NULL_NPY = "null.npy"
NEGATIVE_NPY = "negative.npy"  # Wan's standard negative prompt (data.encode_text)
_MAKERS = {CACHE_JSON: ("latents", "python -m mvtrack_jax.data.encode_latents"),
           TEXT_JSON: ("context", "python -m mvtrack_jax.data.encode_text"),
           IMAGE_JSON: ("image_context", "python -m mvtrack_jax.data.encode_image")}


def cache_metadata(height: int, width: int, autoencoder: Any) -> dict[str, Any]:
  """``cache.json`` content: the encoding a training run must agree with (``WanVAEAutoencoder``)."""
  vae = dataclasses.asdict(autoencoder.config)
  vae.pop("dtype")
  return {"vae": autoencoder.source, "vae_config": vae, "height": int(height), "width": int(width),
          "frames_per_latent": autoencoder.temporal_factor, "spatial_factor": autoencoder.spatial_factor,
          "normalized": True}


def image_metadata(encoder: Any, height: int, width: int, dtype: str) -> dict[str, Any]:
  """``image.json`` content (``models.image_encoder.CLIPImageEncoder``): ``encoder`` (its path), ``preprocess``,
  ``num_tokens`` ``N`` and ``width`` ``D`` of the features, record file ``dtype``, ``frame_size`` ``[H, W]``
  of the encoded crop and ``frame`` (0: each view's first frame)."""
  return {"encoder": encoder.source, "preprocess": encoder.preprocess, "num_tokens": int(encoder.num_tokens),
          "width": int(encoder.dim), "dtype": dtype, "frame_size": [int(height), int(width)], "frame": 0}


def image_shape(root: str) -> tuple[int, int]:
  """``(num_tokens, width)`` of the features of the image cache ``root`` (from ``image.json``).

  Raises:
    FileNotFoundError: ``root`` is not an image cache (the message gives the command that makes one).
  """
  metadata = read_metadata(root, IMAGE_JSON)
  return int(metadata["num_tokens"]), int(metadata["width"])


RECORD_DTYPES = ("float16", "float32")
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def as_record_dtype(features: np.ndarray, dtype: str, name: str) -> np.ndarray:
  """``features`` cast to a record file's ``dtype`` (``"float16"`` halves the disk, ``"float32"``).

  Raises:
    ValueError: an unknown ``dtype``, or float16 with values beyond its range (naming ``name``, e.g. the
      record's path, and suggesting ``--dtype=float32``).
  """
  if dtype not in RECORD_DTYPES:
    raise ValueError(f"{name}: dtype={dtype!r}; expected one of {RECORD_DTYPES}")
  peak = float(np.abs(features).max()) if np.size(features) else 0.0
  if dtype == "float16" and peak > _FLOAT16_MAX:
    raise ValueError(f"{name}: features reach {peak:.3g}, beyond float16; use --dtype=float32")
  return np.asarray(features).astype(dtype)


def record_path(root: str, split: str, index: int) -> str:
  """``root/<split>/<index:08d>.npy``: the cached features of record ``index`` of ``split``."""
  return os.path.join(root, split, f"{int(index):08d}.npy")


def write_atomic(path: str, array: np.ndarray) -> None:
  """Writes ``array`` (dtype kept) as ``.npy`` to ``path`` all-or-nothing (``video_io.atomic_output``: a temporary
  file renamed onto ``path``, with the permissions of any other output)."""
  with video_io.atomic_output(path) as tmp:
    with open(tmp, "wb") as fh:
      np.save(fh, np.asarray(array))


def missing_records(root: str, split: str, num_records: int, *, process_index: int = 0,
                    process_count: int = 1) -> tuple[list[int], int]:
  """``(todo, owned)``: the records of ``split`` this process encodes (``index % process_count == process_index``)
  and has not written yet, and how many it owns. A rerun after a kill resumes with the missing ones."""
  owned = [i for i in range(num_records) if i % process_count == process_index]
  return [i for i in owned if not os.path.exists(record_path(root, split, i))], len(owned)


def encode_records(root: str, split: str, todo: Sequence[int], owned: int,
                   encode: Callable[[int, str], np.ndarray], *, desc: str, progress: bool = True) -> None:
  """The encoders' resumable loop: ``encode(index, path)`` → the array of record ``index``, written all-or-nothing
  to ``path`` (``record_path``), with a progress bar that starts at the records already cached."""
  for index in tqdm(todo, desc=desc, unit="record", disable=not progress, initial=owned - len(todo), total=owned):
    path = record_path(root, split, index)
    write_atomic(path, encode(index, path))


def _canonical(value: Any) -> Any:
  return json.loads(json.dumps(value))


def write_metadata(root: str, metadata: Mapping[str, Any], filename: str = CACHE_JSON) -> None:
  """Writes ``root/filename``; an existing one must describe the same encoding (else ``ValueError``)."""
  path = os.path.join(root, filename)
  new = _canonical(dict(metadata))
  if os.path.exists(path):
    old = read_metadata(root, filename)
    if old != new:
      diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
      raise ValueError(f"{path}: the cache was encoded with other settings ({diff}); use a new --out folder")
    return
  with video_io.atomic_output(path) as tmp:
    with open(tmp, "w", encoding="utf-8") as fh:
      json.dump(new, fh, indent=1, sort_keys=True)


def read_metadata(root: str, filename: str = CACHE_JSON) -> dict[str, Any]:
  """``root/filename`` as a dict.

  Raises:
    FileNotFoundError: ``root`` is not such a cache; the message gives the command that makes one.
  """
  path = os.path.join(root, filename)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{root}: not a {_MAKERS[filename][0]} cache (no {filename}); make one with "
                            f"{_MAKERS[filename][1]} --config=... --out {root}")
  with open(path) as fh:
    return json.load(fh)


class CachedFeatureSource:
  """A record source whose records also carry one cached field (``latents``, ``context`` or ``image_context``).

  Args:
    source: the random-access record source the cache was made from.
    root: the cache folder.
    split: the split's folder name.
    metadata_file: ``cache.json`` (latents), ``text.json`` (text embeddings) or ``image.json`` (CLIP
      image features).
    expect: metadata fields the reading run needs (e.g. ``height``, ``vae``); a different value
      raises ``ValueError`` naming the field, before any training step.

  Raises (on access): ``FileNotFoundError`` naming the missing file and the command that makes it.
  """

  def __init__(self, source, root: str, split: str, metadata_file: str = CACHE_JSON,
               expect: Mapping[str, Any] | None = None):
    self.source, self.root, self.split = source, root, split
    self.field, self._maker = _MAKERS[metadata_file]
    self.metadata = read_metadata(root, metadata_file)
    for key, value in (expect or {}).items():
      got = self.metadata.get(key)
      if _canonical(got) != _canonical(value):
        raise ValueError(f"{os.path.join(root, metadata_file)}: {key} = {got!r}, but this run needs {value!r}; "
                         "re-encode the cache with this config")

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    record = dict(self.source[index])
    path = record_path(self.root, self.split, index)
    if not os.path.exists(path):
      raise FileNotFoundError(f"{self.field} cache: {path} is missing (record {index} of split {self.split!r}); "
                              f"run {self._maker} --out {self.root} to finish it")
    record[self.field] = np.load(path)
    return record


def read_null_context(text_cache: str) -> np.ndarray:
  """The empty prompt's ``(L0, D)`` float32 embedding of a text cache (``null.npy``).

  Raises:
    FileNotFoundError: ``text_cache`` is not a text cache (the message says how to make one).
  """
  read_metadata(text_cache, TEXT_JSON)
  return np.load(os.path.join(text_cache, NULL_NPY)).astype(np.float32)


def read_negative_context(text_cache: str) -> np.ndarray | None:
  """Wan's negative prompt's ``(L, D)`` float32 embedding of a text cache (``negative.npy``), or None when the
  cache predates it (or ``text_cache`` is not a folder)."""
  path = os.path.join(text_cache, NEGATIVE_NPY)
  return np.load(path).astype(np.float32) if text_cache and os.path.isfile(path) else None


class NullContextSource:
  """A record source whose records all carry the text cache's empty-prompt embedding as ``context``
  (sources without captions in a run with text: they train the null branch, as caption dropout does).

  Raises:
    FileNotFoundError: ``text_cache`` is not a text cache (the message says how to make one).
  """

  def __init__(self, source, text_cache: str):
    self.source = source
    self.null = read_null_context(text_cache)

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return dict(self.source[index], context=self.null)
