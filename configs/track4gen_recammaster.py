r"""Track4Gen's supervision on the ReCamMaster novel-view backbone (the third arm of the paper-scale comparison).

Run (the same data, caches and backbone export as ``configs/mvtrack4gen_recammaster.py``, whose docstring lists the
preparation steps)::

  python -m mvtrack_jax.train --config=configs/track4gen_recammaster.py --workdir=out/track4gen \
      --config.autoencoder.path=$W/vae --config.data.data_dir=$D --config.text.encoder=$W \
      --config.data.latents_dir=/data/latents --config.data.mixture.synthetic.latents_dir=/data/latents_synthetic \
      --config.text.cache=/data/text --config.init.transformer=out/backbone_export

Identical to ``configs/mvtrack4gen_recammaster.py`` (model, data mixture, optimiser, budget) except the supervision:
no tracking head and no ``L_corr``; instead Track4Gen's refiner (8 conv layers with 2D kernels, 256 channels,
identity at initialisation) reads the residual stream after block 18 (0-based; 24 for ``:14b``, 1 for ``:smoke``) —
the layer the MVTrack4Gen arm supervises, until the feature probe (``python -m mvtrack_jax.probe --probe=features``
on the backbone export) has picked one on a GPU — and ``L = L_diff + 8·L_feat`` (Track4Gen's weight) trains it with
the blocks up to the tap. The tracked synthetic source feeds ``L_feat`` only (``diffusion_weight`` 0), as it feeds
``L_track``/``L_corr`` in the MVTrack4Gen arm. The trainable set swaps the head for the refiner: self-attention,
camera modules and ``refiner/``. The first logged step records what λ = 8 means on this backbone
(``trunk_grad_ratio/feat``: ``L_feat``'s gradient norm on the DiT over ``L_diff``'s).

``compare`` with this run, ``out/mvtrack4gen`` and ``out/recammaster`` sets the three supervisions side by side.
Variants as ``configs/mvtrack4gen_recammaster.py`` (``small``, ``14b``, ``smoke``; ``backbone`` is that file's).
"""

import ml_collections

from configs import mvtrack4gen_recammaster

TAP = {"": 18, "small": 18, "14b": 24, "smoke": 1}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: "" (paper setting), "small", "14b" or "smoke" (as ``mvtrack4gen_recammaster.get_config``)."""
  if (arg or "") not in TAP:
    raise ValueError(f"configs/track4gen_recammaster.py: unknown arg {arg!r}; expected one of {sorted(TAP)}")
  c = mvtrack4gen_recammaster.get_config(arg)
  c.name = "track4gen_recammaster"
  c.objective.lambda_track = 0.0
  c.objective.lambda_corr = 0.0
  c.objective.lambda_feat = 8.0
  c.refiner.layer = TAP[arg or ""]
  c.refiner.channels = 32 if arg == "smoke" else 256
  c.optimizer.trainable_patterns = tuple(p for p in c.optimizer.trainable_patterns if p != r"^head/") + (
      r"^refiner/",)
  return c
