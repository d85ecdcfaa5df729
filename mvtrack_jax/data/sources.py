"""Record sources and pipeline settings of a run config's ``data`` block (shared by training and inference).

- :func:`data_source`: the random-access record source of a split — the built-in synthetic dataset
  (``data.synthetic_dataset.load_split``, built on first use into ``$MVTRACK_DATA_DIR``), a directory
  of ``.npz`` clips (``data.readers.NpzClipSource``) or a MultiCamVideo tree
  (``data.readers.MultiCamVideoSource``);
- :func:`pipeline_config`: the ``data.pipeline.PipelineConfig`` of the block.
"""

from __future__ import annotations

import functools
import json
import os

import ml_collections

from mvtrack_jax.data import pipeline
from mvtrack_jax.data import readers
from mvtrack_jax.data import synthetic_dataset

DATASETS = ("synthetic", "npz", "multicamvideo")


def pipeline_config(data: ml_collections.ConfigDict, per_process_batch: int, *, train: bool):
  """``data.pipeline.PipelineConfig`` from the ``config.data`` block."""
  return pipeline.PipelineConfig(
      batch_size=int(per_process_batch), num_frames=int(data.num_frames),
      frame_stride=int(data.get("frame_stride", 1)), height=int(data.height),
      width=int(data.width), num_query_points=int(data.num_query_points),
      random_crop=bool(data.get("random_crop", True)) and train,
      shuffle=bool(data.get("shuffle", True)), read_threads=int(data.get("read_threads", 2)),
      prefetch_buffer_size=int(data.get("prefetch_buffer_size", 4)),
      worker_count=int(data.get("worker_count", 0)) if train else 0)


@functools.lru_cache(maxsize=8)
def _source(dataset: str, split: str, location: str, synthetic_json: str):
  if dataset == "synthetic":
    synthetic = json.loads(synthetic_json)
    cfg = synthetic if isinstance(synthetic, str) or synthetic is None else (
        ml_collections.ConfigDict(synthetic))
    return synthetic_dataset.load_split(split, data_dir=location or None, config=cfg)
  root = os.path.join(location, split) if os.path.isdir(os.path.join(location, split)) else location
  if dataset == "npz":
    return readers.NpzClipSource(root)
  return readers.MultiCamVideoSource(root)


def data_source(data: ml_collections.ConfigDict, split: str):
  """The random-access record source of ``split`` ("train"/"validation"/"test").

  ``config.data.dataset``: ``"synthetic"`` (``data.synthetic`` = None/"default"/"tiny" or a
  ``configs/synthetic_data.py``-style dict; ``data.data_dir`` overrides ``$MVTRACK_DATA_DIR``),
  ``"npz"`` or ``"multicamvideo"`` (``data.data_dir`` = root; a ``<root>/<split>`` subdirectory is
  used when it exists).

  Raises:
    ValueError: unknown ``dataset``, or a non-synthetic dataset without ``data_dir``.
  """
  dataset = data.dataset
  if dataset not in DATASETS:
    raise ValueError(f"config.data.dataset={dataset!r}; expected one of {DATASETS}")
  location = str(data.get("data_dir", "") or "")
  if dataset != "synthetic" and not location:
    raise ValueError(f"config.data.dataset={dataset!r} needs config.data.data_dir")
  synthetic = data.get("synthetic", None)
  if isinstance(synthetic, ml_collections.ConfigDict):
    synthetic = synthetic.to_dict()
  return _source(dataset, split, location, json.dumps(synthetic, sort_keys=True))
