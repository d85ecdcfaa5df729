"""Builders: a run config → the model objects it describes, with the weights it names read from disk.

The one place where a config becomes objects *and* files are read (the layering rule keeps weight loading
out of ``models/``): :func:`build_model` (the ``MVTrack4Gen`` of a config: DiT, tracking head or None,
autoencoder, text settings) and :func:`make_autoencoder` (the autoencoder of ``config.autoencoder``, whose
Wan VAE weights come through ``convert.wan_vae``). Training (``training.tasks``), inference
(``inference.novel_view``) and the latent-cache encoder build through these two functions. Pretrained DiT
weights (``config.init``) are an initialisation policy of training, applied by ``training.tasks``.
"""

from __future__ import annotations

import functools
import json

import ml_collections

from mvtrack_jax.convert import wan_vae as convert_vae
from mvtrack_jax.models import autoencoder as ae_lib
from mvtrack_jax.models import tracking_head as head_lib
from mvtrack_jax.models import wan as wan_lib
from mvtrack_jax.models import wan_vae
from mvtrack_jax.models.mvtrack4gen import MVTrack4Gen, dit_config


def build_model(config: ml_collections.ConfigDict, *, with_head: bool | None = None) -> MVTrack4Gen:
  """The ``MVTrack4Gen`` of a run config (``model``, ``head``, ``autoencoder``, ``objective.head_layers``,
  ``text``). The head exists when ``objective.lambda_track > 0`` (or ``with_head``).

  Raises:
    ValueError: unknown presets or autoencoder kind, inconsistent factors.
  """
  dit = wan_lib.WanDiT(dit_config(config))
  o = config.objective
  if with_head is None:
    with_head = float(o.lambda_track) > 0
  head = None
  if with_head:
    kwargs = dict(config.head.overrides)
    head_cfg = (head_lib.TrackingHeadConfig.tiny(**kwargs) if config.head.preset == "tiny"
                else head_lib.TrackingHeadConfig(**kwargs))
    head = head_lib.MVTAPHead(head_cfg)
  return MVTrack4Gen(dit=dit, head=head, autoencoder=make_autoencoder(config), head_layers=tuple(o.head_layers),
                     context_length=int(config.text.context_length), with_text=bool(config.text.cache))


def make_autoencoder(config: ml_collections.ConfigDict):
  """The autoencoder of ``config.autoencoder``.

  - ``{"kind": "pixel", "patch": p}``: ``models.autoencoder.PixelAutoencoder`` (CPU stand-in);
  - ``{"kind": "wan", "path": P, "seed": s, "vae": {...}, "tiling": ()}``: the Wan2.1 VAE
    (``models.wan_vae.WanVAEAutoencoder``) with weights from ``P`` (a diffusers ``vae/`` folder or an
    original ``Wan2.1_VAE.pth`` / ``.safetensors``), or randomly initialised from ``seed`` when
    ``P == "random"`` (tests). ``vae`` overrides ``WanVAEConfig`` fields; ``tiling`` is empty or
    ``(min_height, min_width, stride_height, stride_width)`` pixels. Weights are read on first use
    (shapes and factors need none, so benchmarks of the DiT run with ``P`` empty; encoding or
    decoding then raises) and shared by every caller with the same settings.

  Raises:
    ValueError: unknown kind; FileNotFoundError: a missing ``path``.
  """
  ae = config.autoencoder
  if ae.kind == "pixel":
    return ae_lib.PixelAutoencoder(patch=int(ae.patch))
  if ae.kind == "wan":
    vae = ae.vae.to_dict() if isinstance(ae.vae, ml_collections.ConfigDict) else dict(ae.vae)
    return _wan_autoencoder(str(ae.path), int(ae.seed), json.dumps(vae, sort_keys=True),
                            tuple(int(v) for v in ae.tiling))
  raise ValueError(f"config.autoencoder.kind={ae.kind!r}; expected 'pixel' or 'wan'")


@functools.lru_cache(maxsize=4)
def _wan_autoencoder(path: str, seed: int, vae_json: str, tiling: tuple[int, ...]):
  overrides = {k: (tuple(v) if isinstance(v, list) else v) for k, v in json.loads(vae_json).items()}
  if tiling and len(tiling) != 4:
    raise ValueError(f"config.autoencoder.tiling={tiling}: expected () or (min_height, min_width, stride_height, "
                     "stride_width)")
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
