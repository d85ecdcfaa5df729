"""Reading PyTorch checkpoints as ``{name: np.ndarray}``: safetensors files (single or sharded), diffusers model
folders (with their ``config.json``) and torch pickles, for the transformer and the VAE alike.

``.safetensors`` files are read with the ``safetensors`` NumPy API, no torch; BF16 tensors (which NumPy lacks) are
decoded to float32 through ``ml_dtypes``. Torch pickles need torch (an optional dependency).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np

from mvtrack_jax.convert.wan_names import is_camera_name

def _read_safetensors_file(path: str) -> dict[str, np.ndarray]:
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  out: dict[str, np.ndarray] = {}
  with open(path, "rb") as fh:
    header_len = int.from_bytes(fh.read(8), "little")
    header = json.loads(fh.read(header_len))
  bf16 = {k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "BF16"}
  with safe_open(path, framework="np") as f:
    for key in f.keys():
      if key not in bf16:
        out[key] = f.get_tensor(key)
  if bf16:  # NumPy has no bfloat16: decode the raw bytes with ml_dtypes.
    import ml_dtypes  # pylint: disable=g-import-not-at-top
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
    for key in bf16:
      start, end = header[key]["data_offsets"]
      arr = np.frombuffer(raw[start:end].tobytes(), dtype=ml_dtypes.bfloat16).reshape(header[key]["shape"])
      out[key] = arr.astype(np.float32)
  return out


# Written by ``python -m mvtrack_jax.export --format=diffusers`` beside the transformer's weights: the camera
# modules diffusers' WanTransformer3DModel has no place for (and the tracking head, null context).
MODULES_FILE = "mvtrack_modules.safetensors"


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads ``{name: np.ndarray}`` from a ``.safetensors`` file, a sharded ``*.safetensors.index.json``
  (its ``weight_map`` names the shard files beside it), or a directory holding one of these (besides
  an export's ``MODULES_FILE``, which is not the transformer's).

  BF16 tensors come back as float32. No torch needed.

  Raises:
    FileNotFoundError: when the path (or a shard it names) does not exist.
    ValueError: for a directory with no / several candidate files.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    index = sorted(f for f in os.listdir(path) if f.endswith(".safetensors.index.json"))
    files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors") and f != MODULES_FILE)
    if len(index) == 1:
      path = os.path.join(path, index[0])
    elif len(files) == 1:
      path = os.path.join(path, files[0])
    else:
      raise ValueError(f"load_safetensors: {path} must hold one *.safetensors.index.json or one *.safetensors "
                       f"file; found index files {index} and files {files}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"load_safetensors: no such file {path}")
  if path.endswith(".json"):
    with open(path) as fh:
      weight_map = json.load(fh)["weight_map"]
    out: dict[str, np.ndarray] = {}
    for shard in sorted(set(weight_map.values())):
      shard_path = os.path.join(os.path.dirname(path), shard)
      if not os.path.exists(shard_path):
        raise FileNotFoundError(f"load_safetensors: shard {shard_path} named in {path} does not exist")
      out.update(_read_safetensors_file(shard_path))
    missing = sorted(set(weight_map) - set(out))
    if missing:
      raise ValueError(f"load_safetensors: tensors {missing} listed in {path} are not in their shards")
    return out
  return _read_safetensors_file(path)


def read_torch_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """``{name: float32 array}`` from a torch pickle (``.ckpt``/``.pth``/``.pt``/``.bin``), loaded with
  ``weights_only=True`` (no code runs) and memory-mapped; a ``state_dict`` / ``module`` wrapper is
  unwrapped and bf16/fp16 tensors become float32.

  Raises:
    ImportError: torch is not installed; the message says how to convert the file without it.
    ValueError: the file holds no tensors.
  """
  path = os.fspath(path)
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f"{path}: reading a torch pickle needs torch (pip install torch==2.13.0 --index-url "
        "https://download.pytorch.org/whl/cpu), or convert it once elsewhere with "
        "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')") from e
  obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
  for key in ("state_dict", "module"):
    if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
      obj = obj[key]
  tensors = {k: v.float().numpy() for k, v in obj.items() if hasattr(v, "float")} if isinstance(obj, Mapping) else {}
  if not tensors:
    raise ValueError(f"{path}: no tensors found (a {type(obj).__name__}); expected a state dict")
  return tensors


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
  """Reads PyTorch weights and, for a diffusers folder, its ``config.json`` (transformer or VAE).

  ``path``: a diffusers model folder (``config.json`` + one or sharded safetensors; the camera modules
  of a folder written by ``export --format=diffusers`` are read from its ``MODULES_FILE``), a
  ``.safetensors`` file or ``*.safetensors.index.json``, or a torch pickle (original Wan /
  DiffSynth / ReCamMaster checkpoints, ``Wan2.1_VAE.pth``). Returns ``(state_dict, diffusers_config
  or None)``.

  Raises:
    FileNotFoundError, ImportError, ValueError: as the readers.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"weights: no such file or folder {path}")
  if os.path.isdir(path):
    config = None
    if os.path.exists(os.path.join(path, "config.json")):
      with open(os.path.join(path, "config.json")) as fh:
        config = json.load(fh)
    state_dict = load_safetensors(path)
    modules = os.path.join(path, MODULES_FILE)
    if os.path.exists(modules):  # the tracking head and null context are not the transformer's
      state_dict.update({k: v for k, v in load_safetensors(modules).items() if is_camera_name(k)})
    return state_dict, config
  if path.endswith((".safetensors", ".json")):
    return load_safetensors(path), None
  return read_torch_pickle(path), None
