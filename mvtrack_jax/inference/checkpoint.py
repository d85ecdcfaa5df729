"""Loads a trained MVTrack4Gen model (weights + the modules of its config) for inference.

``--checkpoint DIR`` of the entry points accepts either

- an **export directory** written by ``python -m mvtrack_jax.export`` (``DIR/params/``,
  ``DIR/config.json``, ``DIR/export.json``), or
- a **training workdir** (``DIR/checkpoints/<step>/``, as written by ``mvtrack_jax.train``): only
  the ``params`` (or ``ema_params``) subtree of the newest (or given) step is read, on the host,
  with no mesh, and the config stored with that checkpoint is used.

The model (``models.mvtrack4gen.MVTrack4Gen``: DiT, head or None for a diffusion-only model,
autoencoder) and the ``ObjectiveConfig`` (noise schedule, supervised layers) are rebuilt from the
config exactly as the trainer built them.

The on-disk layouts and their host-side readers (:func:`checkpoint_format.read_params`, ``read_config``,
``load_exported``) are ``mvtrack_jax.checkpoint_format``, a leaf that training and inference both use.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import flax
import flax.linen as nn
import jax
import ml_collections
import numpy as np

from mvtrack_jax import checkpoint_format
from mvtrack_jax import run_config
from mvtrack_jax.losses.objective import ObjectiveConfig
from mvtrack_jax.models.mvtrack4gen import MVTrack4Gen
from mvtrack_jax.models.tracking_head import MVTAPHead
from mvtrack_jax.models.wan import WanDiT


def check_params_match_config(params: Any, model: MVTrack4Gen, config: ml_collections.ConfigDict, source: str) -> None:
  """Checks that a checkpoint's params are those of the model its config describes (names and shapes).

  Raises:
    ValueError: naming the first differing parameters (missing, unexpected, or of another shape), e.g.
      an export whose ``config.json`` was edited or belongs to another run.
  """
  from mvtrack_jax.data import pipeline, sources  # pylint: disable=g-import-not-at-top
  spec = pipeline.output_spec(sources.pipeline_config(config.data, 1, train=False))
  batch = {k: jax.ShapeDtypeStruct(shape, dtype) for k, (shape, dtype) in spec.items()}
  latent = jax.ShapeDtypeStruct(tuple(model.autoencoder.latent_shape(spec["target_video"][0])), np.float32)
  batch.update(reference_latents=latent, target_latents=latent)
  expected = flax.traverse_util.flatten_dict(nn.unbox(jax.eval_shape(model.init, jax.random.key(0), batch)), sep="/")
  got = flax.traverse_util.flatten_dict(dict(params), sep="/")
  problems = [f"missing {k} {tuple(v.shape)}" for k, v in expected.items() if k not in got]
  problems += [f"unexpected {k} {tuple(np.shape(v))}" for k, v in got.items() if k not in expected]
  problems += [f"{k}: {tuple(np.shape(got[k]))} in the checkpoint, {tuple(v.shape)} for its config"
               for k, v in expected.items() if k in got and tuple(np.shape(got[k])) != tuple(v.shape)]
  if problems:
    raise ValueError(f"{source}: the params do not match the model of its config ({len(problems)} differences; "
                     f"first: {'; '.join(problems[:5])})")


@dataclasses.dataclass
class LoadedModel:
  """A trained model ready for inference.

  Attributes:
    config: the training config (``ConfigDict``): ``model``, ``head``, ``autoencoder``,
      ``objective``, ``data`` (resolution and frame count the model was trained at).
    params: ``{"dit": ..., "head": ...}`` host numpy pytree (``"head"`` absent for diffusion-only).
    model: the ``MVTrack4Gen`` (``dit``, ``head`` or None, ``autoencoder``, ``head_layers``).
    objective: the ``ObjectiveConfig`` (noise schedule, ``lambda_corr`` and ``corr.layers``).
    step: training step of the weights.
    source: absolute path it was loaded from.
  """

  config: ml_collections.ConfigDict
  params: dict[str, Any]
  model: MVTrack4Gen
  objective: ObjectiveConfig
  step: int
  source: str

  @property
  def name(self) -> str:
    """A short label: the config name and step (``default@200``)."""
    return f"{self.config.name}@{self.step}"

  @property
  def dit(self) -> WanDiT:
    return self.model.dit

  @property
  def head(self) -> MVTAPHead | None:
    return self.model.head

  @property
  def autoencoder(self) -> Any:
    return self.model.autoencoder

  @property
  def token_stride(self) -> int:
    """Video pixels per DiT token along each axis (``vae_stride · patch``)."""
    return self.model.token_stride


def load_model(path: str | os.PathLike[str], *, step: int | None = None, use_ema: bool = False) -> LoadedModel:
  """Loads an export directory or a training workdir (module docstring).

  Args:
    path: ``--checkpoint`` directory.
    step: training step (workdirs only; default newest).
    use_ema: read ``ema_params`` (workdirs only; the run must have kept an EMA).

  Returns:
    A :class:`LoadedModel`.

  Raises:
    FileNotFoundError: ``path`` is neither an export directory nor a workdir with checkpoints.
    ValueError: ``step``/``use_ema`` given for an export directory, or the checkpoint's params do
      not contain the head its config asks for.
  """
  root = os.path.abspath(os.fspath(path))
  if os.path.isdir(os.path.join(root, "params")) and os.path.isfile(os.path.join(root, "config.json")):
    if step is not None or use_ema:
      raise ValueError(f"load_model: {root} is an export directory; step/use_ema apply to training workdirs only")
    params, config, info = checkpoint_format.load_exported(root)
    step = int(info.get("step", -1))
  elif os.path.isdir(os.path.join(root, "checkpoints")):
    ckpt_dir = os.path.join(root, "checkpoints")
    key = "ema_params" if use_ema else "params"
    step, trees = checkpoint_format.read_params(ckpt_dir, step=step, keys=(key,))
    params = trees[key]
    config = ml_collections.ConfigDict(checkpoint_format.read_config(ckpt_dir, step))
  else:
    raise FileNotFoundError(
        f"--checkpoint {root}: expected an export directory (params/ + config.json, from mvtrack_jax.export) or a "
        f"training workdir (checkpoints/, from mvtrack_jax.train)")
  config = run_config.complete(config)  # older stored configs are upgraded to today's schema
  model = MVTrack4Gen.from_config(config)
  check_params_match_config(params, model, config, root)
  return LoadedModel(config=config, params=dict(params), model=model, objective=ObjectiveConfig.from_config(config),
                     step=int(step), source=root)
