r"""The demo's other arm: the shipped base fine-tuned with the diffusion loss alone (λ_track = λ_corr = 0).

Run::

  python -m mvtrack_jax.train --config=configs/default_diffusion_only.py --workdir=out/demo/diffusion_only

The same start (``weights/base``), data, schedule, budget and seed as ``configs/default.py``, without the
tracking head and the attention-correspondence loss (``L = L_diff``): the paper's baseline, the backbone
fine-tuned on the same data without tracking supervision.
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
