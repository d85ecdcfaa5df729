r"""Diffusion-only baseline of the CPU default (λ_track = λ_corr = 0), for ablations.

Run::

  python -m mvtrack_jax.train --config=configs/default_diffusion_only.py --workdir=out/demo_diffusion_only

Same tiny Plücker DiT, data and schedule as ``configs/default.py``, without the tracking head and
the attention-correspondence loss (``L = L_diff``).
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: as ``default.get_config`` ("" or "test")."""
  c = default.get_config(arg)
  c.name = "default_diffusion_only"
  c.objective.lambda_track = 0.0
  c.objective.lambda_corr = 0.0
  return c
