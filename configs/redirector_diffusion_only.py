r"""Diffusion-only baseline on the ReDirector backbone (λ_track = λ_corr = 0), for ablations.

Run::

  python -m mvtrack_jax.train --config=configs/redirector_diffusion_only.py --workdir=out/redirector \
      --config.data.data_dir=/data/MultiCamVideo-Dataset

Identical to ``configs/mvtrack4gen_redirector.py`` (backbone, data, image context, starting point)
except that the tracking and correspondence terms are off: no tracking head, no probe q/k,
``L = L_diff`` — ReDirector's own fine-tune (every self-attention incl. RoCE trainable) that
MVTrack4Gen on this backbone is compared against.
"""

import ml_collections

from configs import mvtrack4gen_redirector


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: as ``mvtrack4gen_redirector.get_config``."""
  c = mvtrack4gen_redirector.get_config(arg)
  c.name = "redirector_diffusion_only"
  c.objective.lambda_track = 0.0
  c.objective.lambda_corr = 0.0
  c.optimizer.trainable_patterns = (r"^dit/.*attn1/",)
  return c
