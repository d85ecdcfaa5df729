"""The latent cache: every view of every record encoded once by the frozen VAE, read back by the pipeline.

ReCamMaster, ReDirector and maxdiffusion train Wan on latents encoded once, not per step; the VAE
encoder costs about as much as a DiT forward at 81×480×832. Layout of a cache folder::

  DIR/cache.json                  what was encoded: VAE source and config, frame size, factors
  DIR/<split>/<index:08d>.npy     float32 (V, F, h, w, z): normalised latents of record <index>

Each record's views are resized to cover the training size and centre-cropped exactly as the
pipeline's evaluation crop (``pipeline.resized_video``), trimmed to ``1 + k·⌊(T − 1)/k⌋`` frames
and encoded as one video per view. A file appears only complete (written to a temporary name in the
same folder, then renamed), so a killed ``encode_latents`` run resumes by skipping existing files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any, Mapping

import numpy as np

CACHE_JSON = "cache.json"


def cache_metadata(height: int, width: int, autoencoder: Any) -> dict[str, Any]:
  """``cache.json`` content: the encoding a training run must agree with (``WanVAEAutoencoder``)."""
  vae = dataclasses.asdict(autoencoder.config)
  vae.pop("dtype")
  return {"vae": autoencoder.source, "vae_config": vae, "height": int(height), "width": int(width),
          "frames_per_latent": autoencoder.temporal_factor, "spatial_factor": autoencoder.spatial_factor,
          "normalized": True}


def record_path(root: str, split: str, index: int) -> str:
  """``root/<split>/<index:08d>.npy``: the cached ``(V, F, h, w, z)`` float32 latents of record ``index``."""
  return os.path.join(root, split, f"{int(index):08d}.npy")


def write_atomic(path: str, latents: np.ndarray) -> None:
  """Writes ``latents`` as ``.npy`` to ``path`` all-or-nothing (temporary file + rename)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=os.path.dirname(path))
  try:
    with os.fdopen(fd, "wb") as fh:
      np.save(fh, np.asarray(latents, np.float32))
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_metadata(root: str, metadata: Mapping[str, Any]) -> None:
  """Writes ``cache.json``; an existing one must describe the same encoding (else ``ValueError``)."""
  path = os.path.join(root, CACHE_JSON)
  if os.path.exists(path):
    old = read_metadata(root)
    if old != json.loads(json.dumps(metadata)):
      diff = sorted(k for k in set(old) | set(metadata) if old.get(k) != json.loads(json.dumps(metadata)).get(k))
      raise ValueError(f"{path}: the cache was encoded with other settings ({diff}); use a new --out folder")
    return
  os.makedirs(root, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=root)
  with os.fdopen(fd, "w") as fh:
    json.dump(dict(metadata), fh, indent=1, sort_keys=True)
  os.replace(tmp, path)


def read_metadata(root: str) -> dict[str, Any]:
  """``root/cache.json`` as a dict.

  Raises:
    FileNotFoundError: ``root`` is not a latent cache; the message gives the command that makes one.
  """
  path = os.path.join(root, CACHE_JSON)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{root}: not a latent cache (no {CACHE_JSON}); make one with "
                            "python -m mvtrack_jax.data.encode_latents --config=... --out " + root)
  with open(path) as fh:
    return json.load(fh)


class LatentCacheSource:
  """A record source whose records also carry their cached ``latents`` ``(V, F, h, w, z)`` float32.

  Args:
    source: the random-access record source the cache was made from.
    root: the cache folder.
    split: the split's folder name.
    expect: ``cache.json`` fields the training run needs (e.g. ``height``, ``width``, ``vae``); a
      different value raises ``ValueError`` naming the field, before any training step.

  Raises (on access): ``FileNotFoundError`` naming the missing file and the command that makes it.
  """

  def __init__(self, source, root: str, split: str, expect: Mapping[str, Any] | None = None):
    self.source, self.root, self.split = source, root, split
    self.metadata = read_metadata(root)
    for key, value in (expect or {}).items():
      got = self.metadata.get(key)
      if json.loads(json.dumps(got)) != json.loads(json.dumps(value)):
        raise ValueError(f"{os.path.join(root, CACHE_JSON)}: {key} = {got!r}, but this run needs {value!r}; "
                         "re-encode the cache with this config")

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    record = dict(self.source[index])
    path = record_path(self.root, self.split, index)
    if not os.path.exists(path):
      raise FileNotFoundError(f"latent cache: {path} is missing (record {index} of split {self.split!r}); "
                              f"run python -m mvtrack_jax.data.encode_latents --out {self.root} to finish it")
    record["latents"] = np.load(path)
    return record
