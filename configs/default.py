r"""The embedded default (``make demo``): the paper's experiment on CPU, fine-tuning the shipped base model.

Run::

  python -m mvtrack_jax.train --config=configs/default.py --workdir=out/demo

MVTrack4Gen's experiment fine-tunes a camera-controlled backbone that already does novel-view synthesis.
Here the backbone is the project's own base model (``weights/base/``, made by ``configs/base.py`` with
``L_diff`` alone; docs/base_model.md): a Plücker-conditioned Wan-style DiT (``small-pixel``: 4 blocks,
width 256, one 8×8-pixel cell per token through the 4×4 space-to-depth "autoencoder" and Wan's 1×2×2
patch) on 64×64 frames. This config loads it (``init.transformer``) and trains it further with the full
objective ``L_diff + 0.01·L_track + 0.01·L_corr`` (probe layer 1 of 0..3), the tiny MV-TAP tracking
head starting from random weights (and so at 10× the DiT's learning rate), for 100 steps of batch 4 at
learning rate 5e-4 on 64×64 windows of 4 frames (every 5th frame, so a window spans the whole 16-frame
record) of the built-in synthetic dataset (2 views per scene that start at the same camera, 200 training
scenes in the base's ``paper`` style, built on first use into ``$MVTRACK_DATA_DIR``).
``configs/default_diffusion_only.py`` is the other arm.
Leaves ``out/demo/{checkpoints,metrics.jsonl,eval_metrics.jsonl,tensorboard}``. Rerun the same command to
resume from the newest checkpoint. About 4 minutes on a 2-core CPU.

Its values are the run-config schema's defaults (``mvtrack_jax/run_config.py`` says what each field means)
plus the path of the shipped weights and the head's learning-rate factor; why each was chosen, with the
measurements behind them, is in docs/training.md, "The demo's settings".

Every field can be overridden: ``--config.num_train_steps=50 --config.batch_size=2``. The
``get_config("test")`` variant (``--config=configs/default.py:test``) is the seconds-long version used by
the tests: the 32×32 ``tiny-pixel`` DiT (width 128, 4-pixel tokens) from random weights, tiny dataset, 4
frames at stride 1, 3 steps.
"""

import os

import ml_collections

from mvtrack_jax import run_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shipped base model (``make base``), which the demo fine-tunes.
BASE_WEIGHTS = os.path.join(REPO, "weights", "base")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: None/"" (demo) or "test" (tiny model, dataset and steps, for the test suite).

  The demo's values are the schema's defaults (``mvtrack_jax.run_config``: every field, its meaning and why it has
  that value), ``init.transformer`` = the shipped base weights and the head's learning-rate factor (neither is a
  schema default: every config built from the schema would inherit them), so this file holds those and the test
  variant only.
  """
  if arg not in (None, "", "test"):
    raise ValueError(f"configs/default.py: unknown arg {arg!r}; expected '' or 'test'")
  c = run_config.default_config()
  c.name = "default"
  c.init.transformer = BASE_WEIGHTS
  c.optimizer.learning_rate_multipliers = ((r"^head/", 10.0),)
  if arg == "test":
    c.init.transformer = ""
    c.optimizer.learning_rate_multipliers = ()
    c.model.preset = "tiny-pixel"
    c.data.height = 32
    c.data.width = 32
    c.num_train_steps = 3
    c.log_every_steps = 1
    c.eval_every_steps = 3
    c.eval_steps = 1
    c.checkpoint_every_steps = 2
    c.batch_size = 2
    c.optimizer.learning_rate = 3e-3
    c.optimizer.warmup_steps = 1
    c.progress_bar = False
    with c.data.ignore_type():
      c.data.synthetic = "tiny"  # 3 training scenes of 2 views × 4 frames of 32×48
    c.data.frame_stride = 1
    c.data.num_query_points = 16
  return c
