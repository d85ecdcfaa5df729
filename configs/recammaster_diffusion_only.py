r"""Diffusion-only baseline of the paper configuration (λ_track = λ_corr = 0), for ablations.

Run::

  python -m mvtrack_jax.train --config=configs/recammaster_diffusion_only.py --workdir=out/recammaster \
      --config.data.data_dir=/data/MultiCamVideo-Dataset

Identical to ``configs/mvtrack4gen_recammaster.py`` (the same data mixture) except that the tracking and correspondence
terms are off: no tracking head, no probe q/k, ``L = L_diff`` — the ReCamMaster-style fine-tune
(trainable self-attention + camera modules) that MVTrack4Gen is compared against, and the
reference point of the benchmark's L_track + L_corr overhead::

  python -m mvtrack_jax.bench --config=configs/mvtrack4gen_recammaster.py \
      --baseline=configs/recammaster_diffusion_only.py
"""

import ml_collections

from configs import mvtrack4gen_recammaster


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: as ``mvtrack4gen_recammaster.get_config``."""
  c = mvtrack4gen_recammaster.get_config(arg)
  c.name = "recammaster_diffusion_only"
  c.objective.lambda_track = 0.0
  c.objective.lambda_corr = 0.0
  return c
