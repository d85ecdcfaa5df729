"""Record sources and pipeline settings of a run config's ``data`` block (shared by training and inference).

A **source** is one dataset: the built-in synthetic dataset (``data.synthetic_dataset.load_split``,
built on first use into ``$MVTRACK_DATA_DIR``), a tree of ``.npz`` clips (``data.readers.NpzClipSource``)
or a MultiCamVideo tree (``data.readers.MultiCamVideoSource``, lazy: an example decodes only its two
views and window). Its fields (:data:`SOURCE_FIELDS`):

- ``dataset``: ``"synthetic"``, ``"npz"`` or ``"multicamvideo"``;
- ``data_dir``: the dataset root, holding one folder per split (``<data_dir>/<split>``; a missing
  split is an error, never a fallback to another split); for ``synthetic`` it overrides
  ``$MVTRACK_DATA_DIR`` and may be empty;
- ``synthetic``: the synthetic dataset's sizes (``"default"``, ``"tiny"``, ``"paper"`` or a
  ``configs/synthetic_data.py``-style dict);
- ``multicamvideo``: ``{cameras, size, num_frames, focal_length_mm}``: camera names to use (empty =
  all), ``(height, width)`` to decode to (empty = native; decode near the training size, e.g.
  ``(480, 832)``, it is far cheaper than resizing 1280² frames), frames per scene to use (0 = all)
  and the focal length of scenes without an ``f{mm}_aperture`` folder above them (0 = none; the
  validation layout ``val/10basic_trajectories`` needs it);
- ``latents_dir``: its Wan-VAE latent cache (``data.encode_latents``), or empty;
- ``weight``: its share of the training mixture;
- ``diffusion_weight``: the weight of its examples in L_diff (0: a tracked-only source; ``training.tasks``).

The **primary source** is the ``data`` block's own fields (``data.dataset``, ``data.data_dir``, …,
``data.weight``): what evaluation, ``generate``/``probe``/``evaluate`` (``dataset:SPLIT:INDEX``) and
the encoders read. ``data.mixture`` adds named sources, each a dict of the same fields (plus
``text_cache``: its caption cache, ``data.encode_text``, and ``image_cache``: its CLIP image-feature
cache, ``data.encode_image``; the primary's are ``config.text.cache`` and ``config.image.cache``), mixed
with the primary in training batches by weight (``pipeline.make_mixture_dataset``). The run-config schema
(``run_config.Source``) gives every field its default and rejects unknown ones. The primary is named after its dataset
(``"multicamvideo"``), a mixture entry by its key. ``data.eval_source`` names the source of periodic
evaluation (empty = the primary).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import ml_collections

from mvtrack_jax.data import pipeline
from mvtrack_jax.data import readers
from mvtrack_jax.data import synthetic_dataset

# The fields of a source: the primary's are read from the data block, a mixture entry has them all (plus its
# text_cache and image_cache). run_config.Source declares them (type, default, meaning); a test keeps the two equal.
SOURCE_FIELDS = ("dataset", "data_dir", "synthetic", "multicamvideo", "latents_dir", "weight", "diffusion_weight")


def pipeline_config(data: ml_collections.ConfigDict, per_process_batch: int, *, train: bool):
  """``data.pipeline.PipelineConfig`` from the ``config.data`` block."""
  return pipeline.PipelineConfig(
      batch_size=int(per_process_batch), num_frames=int(data.num_frames),
      frame_stride=int(data.frame_stride), height=int(data.height),
      width=int(data.width), num_query_points=int(data.num_query_points),
      random_crop=bool(data.random_crop) and train,
      shuffle=bool(data.shuffle), read_threads=int(data.read_threads),
      prefetch_buffer_size=int(data.prefetch_buffer_size),
      worker_count=int(data.worker_count) if train else 0)


def _plain(value: Any) -> Any:
  return value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value


def source_specs(data: ml_collections.ConfigDict) -> dict[str, dict[str, Any]]:
  """``{name: fields}`` of the primary source (first, named after its dataset) and the ``data.mixture`` entries.

  ``data`` is a complete, validated ``config.data`` block (``run_config.complete``: every field present, unknown
  fields, bad datasets, sizes and weights already rejected), as every entry point gives it.
  """
  specs = {str(data.dataset): {k: _plain(data[k]) for k in SOURCE_FIELDS}}
  specs.update({name: {k: _plain(v) for k, v in dict(fields).items()} for name, fields in dict(data.mixture).items()})
  return specs


def eval_source_name(data: ml_collections.ConfigDict) -> str:
  """The source of periodic evaluation: ``data.eval_source``, or the primary when empty (the schema checked that
  it names a source)."""
  return str(data.eval_source or data.dataset)


def splits_read(data: ml_collections.ConfigDict, name: str | None = None) -> list[str]:
  """The splits a run reads from source ``name`` (default the primary): the train split, and the
  eval split when it is the evaluation source (what the encoders cache by default)."""
  name = next(iter(source_specs(data))) if name is None else name
  return [data.train_split] + ([data.eval_split] if name == eval_source_name(data) else [])


@functools.lru_cache(maxsize=16)
def _source(spec_json: str, split: str):
  spec = json.loads(spec_json)
  dataset, location = spec["dataset"], spec["data_dir"]
  if dataset == "synthetic":
    synthetic = spec["synthetic"]
    cfg = synthetic if isinstance(synthetic, str) or synthetic is None else ml_collections.ConfigDict(synthetic)
    return synthetic_dataset.load_split(split, data_dir=location or None, config=cfg)
  root = os.path.join(location, split)
  if not os.path.isdir(root):
    present = sorted(d for d in os.listdir(location) if os.path.isdir(os.path.join(location, d))) \
        if os.path.isdir(location) else None
    raise FileNotFoundError(
        f"{dataset} split {split!r}: no folder {root}" + (f" (data_dir {location} does not exist)" if present is None
                                                           else f" (data_dir has {present})"))
  if dataset == "npz":
    return readers.NpzClipSource(root)
  mcv = spec["multicamvideo"]
  return readers.MultiCamVideoSource(
      root, cameras=list(mcv["cameras"]) or None, num_frames=int(mcv["num_frames"]) or None,
      size=tuple(mcv["size"]) or None, focal_length_mm=float(mcv["focal_length_mm"]) or None)


def data_source(data: ml_collections.ConfigDict, split: str, name: str | None = None):
  """The random-access record source of ``split`` of source ``name`` (default: the primary).

  Raises:
    ValueError: a bad source spec, an unknown ``name`` or no ``data_dir``; FileNotFoundError: no
      ``<data_dir>/<split>``.
  """
  specs = source_specs(data)
  primary = next(iter(specs))
  name = primary if name is None else name
  if name not in specs:
    raise ValueError(f"data_source: no source {name!r}; the sources are {list(specs)}")
  if specs[name]["dataset"] != "synthetic" and not specs[name]["data_dir"]:
    where = "config.data" if name == primary else f"config.data.mixture.{name}"
    raise ValueError(f"{where}: dataset {specs[name]['dataset']!r} needs a data_dir (the dataset root)")
  return _source(json.dumps(specs[name], sort_keys=True), split)


def check_data_dir(data, source: str | None = None) -> None:
  """Raises ``FileNotFoundError`` naming the flag when the data_dir of source ``source`` (default the primary) is
  set but is not a folder (the synthetic dataset's is a cache, created on first use, so it is not checked)."""
  specs = source_specs(data)
  primary = next(iter(specs))
  spec = specs.get(primary if source is None else source)
  if spec and spec["dataset"] != "synthetic" and spec["data_dir"] and not os.path.isdir(spec["data_dir"]):
    flag = "--config.data.data_dir" if source in (None, primary) else f"--config.data.mixture.{source}.data_dir"
    raise FileNotFoundError(f"{flag} {spec['data_dir']}: no such folder (the {spec['dataset']} dataset root)")
