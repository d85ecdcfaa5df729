"""Builders: a run config → the model objects it describes, with the weights it names read from disk.

The one place where a config becomes objects *and* files are read (the layering rule keeps weight loading
out of ``models/``): :func:`build_model` (the ``MVTrack4Gen`` of a config: DiT, tracking head or None,
autoencoder, text settings) and :func:`make_autoencoder` (the autoencoder of the ``autoencoder`` block, whose
Wan VAE weights come through ``convert.wan_vae``). Both take the validated, typed blocks of
``run_config.parse(config)``, so no builder reads a field the schema does not define or falls back to a default
of its own. Training (``training.tasks``), inference
(``inference.novel_view``) and the latent-cache encoder build through these two functions. Pretrained DiT
weights (``config.init``) are an initialisation policy of training, applied by ``training.tasks``.
"""

from __future__ import annotations

import dataclasses
import functools
import json

import jax.numpy as jnp

from mvtrack_jax import run_config
from mvtrack_jax.convert import wan_vae as convert_vae
from mvtrack_jax.models import autoencoder as ae_lib
from mvtrack_jax.models import refiner as refiner_lib
from mvtrack_jax.models import tracking_head as head_lib
from mvtrack_jax.models import wan as wan_lib
from mvtrack_jax.models import wan_vae
from mvtrack_jax.models.mvtrack4gen import MVTrack4Gen


def build_model(run: run_config.RunConfig, *, with_head: bool | None = None) -> MVTrack4Gen:
  """The ``MVTrack4Gen`` of a run config (``run_config.parse``: its ``model``, ``head``, ``autoencoder``,
  ``objective.head_layers``, ``refiner``, ``conditioning`` and ``text`` blocks). The head exists when ``objective.lambda_track > 0``
  (or ``with_head``), the refiner when ``refiner.layer >= 0``.

  Raises:
    ValueError: inconsistent autoencoder factors.
  """
  head = None
  if (run.objective.lambda_track > 0) if with_head is None else with_head:
    preset = head_lib.TrackingHeadConfig.tiny if run.head.preset == "tiny" else head_lib.TrackingHeadConfig
    head = head_lib.MVTAPHead(preset(**run.head.overrides))
  autoencoder = make_autoencoder(run.autoencoder)
  dit = wan_lib.WanDiT(dit_config(run, autoencoder))
  refiner = None
  if run.refiner.layer >= 0:
    refiner = refiner_lib.FeatureRefiner(refiner_lib.RefinerConfig(
        channels=run.refiner.channels, depth=run.refiner.depth, kernel=run.refiner.kernel,
        dtype=jnp.dtype(dit.config.dtype).name))
  return MVTrack4Gen(dit=dit, head=head, autoencoder=autoencoder,
                     head_layers=tuple(run.objective.head_layers), head_probe_rope=run.objective.head_probe_rope,
                     context_length=run.text.context_length,
                     with_text=bool(run.text.cache), refiner=refiner, feat_layer=run.refiner.layer,
                     feat_inject=run.refiner.inject, given_frames=run.conditioning.given_frames)


def dit_config(run: run_config.RunConfig, autoencoder) -> wan_lib.WanConfig:
  """``run.model.wan_config()`` with, for ``rope_mode="distinct"``, ``rope_reference_offset`` set to the token
  frames of the run's training clips (``data.num_frames`` through ``autoencoder`` and the temporal patch) unless
  the config sets it: the reference half of a shorter clip (a DAVIS video at evaluation) then sits where it sat
  in training (``models.rope``). Clips of the training length are unaffected."""
  config = run.model.wan_config()
  if config.rope_mode != "distinct" or config.rope_reference_offset:
    return config
  latent = autoencoder.latent_shape((1, run.data.num_frames, run.data.height, run.data.width, 3))
  return dataclasses.replace(config, rope_reference_offset=int(latent[1]) // config.patch_size[0])


def make_autoencoder(block: run_config.Autoencoder):
  """The autoencoder of a run config's ``autoencoder`` block (``run_config.parse(config).autoencoder``).

  - ``kind="pixel"``: ``models.autoencoder.PixelAutoencoder(patch)`` (CPU stand-in);
  - ``kind="wan"``: the Wan2.1 VAE (``models.wan_vae.WanVAEAutoencoder``) with weights from ``path`` (a
    diffusers ``vae/`` folder or an original ``Wan2.1_VAE.pth`` / ``.safetensors``), or randomly initialised
    from ``seed`` when ``path == "random"`` (tests); ``vae`` overrides ``WanVAEConfig`` fields, ``tiling`` is
    empty or ``(min_height, min_width, stride_height, stride_width)`` pixels. Weights are read on first use
    (shapes and factors need none, so benchmarks of the DiT run with ``path`` empty; encoding or decoding then
    raises) and shared by every caller with the same settings.

  Raises:
    FileNotFoundError: a missing ``path``; ValueError: a VAE config its statistics do not fit.
  """
  if block.kind == "pixel":
    return ae_lib.PixelAutoencoder(patch=block.patch)
  return _wan_autoencoder(block.path, block.seed, json.dumps(block.vae, sort_keys=True), tuple(block.tiling))


@functools.lru_cache(maxsize=4)
def _wan_autoencoder(path: str, seed: int, vae_json: str, tiling: tuple[int, ...]):
  overrides = {k: (tuple(v) if isinstance(v, list) else v) for k, v in json.loads(vae_json).items()}
  tiles = wan_vae.Tiling(*tiling) if tiling else None
  if path and path != "random":
    cfg = convert_vae.read_config(path, **overrides)
    return wan_vae.WanVAEAutoencoder(cfg, lambda: convert_vae.load_vae(path, **overrides)[1], tiles, source=path)
  cfg = wan_vae.WanVAEConfig(**overrides)
  if path == "random":
    return wan_vae.WanVAEAutoencoder(cfg, lambda: convert_vae.random_params(cfg, seed), tiles,
                                     source=f"<random init, seed {seed}>")

  def no_weights():
    raise ValueError("config.autoencoder.path is empty: set it to a diffusers vae/ folder or a Wan2.1_VAE.pth "
                     "(or 'random' for a randomly initialised VAE, tests only) to encode or decode videos")
  return wan_vae.WanVAEAutoencoder(cfg, no_weights, tiles, source="<no weights>")
