r"""The demo's third arm: Track4Gen's supervision on the same backbone, ``L = L_diff + 8·L_feat``.

Run::

  python -m mvtrack_jax.train --config=configs/default_track4gen.py --workdir=out/demo/track4gen

Track4Gen (Jeong et al., CVPR 2025) teaches a video generator to track points through its own block features:
a refiner (8 conv layers, identity at initialisation) reads the residual stream after one block, a cosine cost
volume between query-point features and every other frame gives ``L_feat``, weighted 8 against ``L_diff``, and
the refined features return to the stream through a zero-initialised projection. This config puts that on the
demo's setting: the same start (``weights/base``), data, schedule, budget and seed as ``configs/default.py`` and
``configs/default_diffusion_only.py``, no tracking head and no ``L_corr``, so ``compare`` can set MVTrack4Gen,
Track4Gen and diffusion-only side by side (``make demo-track4gen``).

Choices (docs/track4gen.md):

- ``refiner.layer = 1``, the second of the base's four blocks: the block the MVTrack4Gen arm supervises, so the two
  signals act at the same depth. Track4Gen picks its layer by probing the pretrained generator's raw features; the
  same probe on the base (``python -m mvtrack_jax.probe --probe=features --checkpoint weights/base``, table in
  docs/track4gen.md) ranks block 0's residual stream first (δ_avg 0.093 against 0.056 at block 1), i.e. the
  stream closest to the pixels, so on this pixel-space model the probe's pick would supervise colour matching
  through one block only;
- the refiner at the schema's CPU size (32 channels, 8 layers, 2D kernels) and, being freshly initialised like
  the MVTrack4Gen arm's head, at 10× the DiT's learning rate;
- ``L_feat`` in the default soft-argmax form on both views, queries at latent frame 0 (Track4Gen's first-frame
  queries), at Track4Gen's weight 8. On this backbone that makes ``L_feat``'s gradient on the DiT 56× ``L_diff``'s
  at the first step (``trunk_grad_ratio/feat``); smaller weights (``--config.objective.lambda_feat``) hurt
  ``L_diff`` less but, under Adam, none tried (down to 0.01) left it untouched: docs/track4gen.md has the sweep.

``get_config("test")`` is the tests' seconds-long version (``configs/default.py:test`` with the refiner at block 1
of the tiny model).
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: as ``default.get_config`` ("" or "test")."""
  c = default.get_config(arg)
  c.name = "default_track4gen"
  c.objective.lambda_track = 0.0
  c.objective.lambda_corr = 0.0
  c.objective.lambda_feat = 8.0
  c.refiner.layer = 1
  c.optimizer.trainable_patterns = (r"^(dit|refiner)/",)
  if arg != "test":
    c.optimizer.learning_rate_multipliers = ((r"^refiner/", 10.0),)
  return c
