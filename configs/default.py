r"""The embedded default (``make demo``): a tiny MVTrack4Gen on the built-in synthetic dataset, CPU.

Run::

  python -m mvtrack_jax.train --config=configs/default.py --workdir=out/demo

A tiny camera-conditioned Wan-style DiT (``tiny-pixel``: 4 blocks, width 128, one 4×4-pixel cell of
the 4×4 space-to-depth "autoencoder" per token, so 48 numbers in a 128-wide model; Plücker camera
encoding, distinct RoPE frames) plus the tiny MV-TAP tracking head, trained with the full objective
``L_diff + 0.01·L_track + 0.01·L_corr`` (probe layer 1 of 0..3) for 400 steps of batch 4 on 32×32
windows of 4 frames (every 5th frame, so a window spans the whole 16-frame record) of the built-in
synthetic dataset (2 views per scene that start at the same camera, 400 training scenes; built on
first use into ``$MVTRACK_DATA_DIR``). Leaves ``out/demo/{checkpoints,metrics.jsonl,
eval_metrics.jsonl,tensorboard}``. Rerun the same command to resume from the newest checkpoint.
About 4.5 minutes on a 2-core CPU.

Its values are the run-config schema's defaults (``mvtrack_jax/run_config.py`` says what each field means);
why each was chosen, with the measurements behind them, is in docs/training.md, "The demo's settings".

Every field can be overridden: ``--config.num_train_steps=50 --config.batch_size=2``. The
``get_config("test")`` variant (``--config=configs/default.py:test``) is the seconds-long version
used by the tests (tiny dataset, 4 frames at stride 1, 3 steps).
"""

import ml_collections

from mvtrack_jax import run_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: None/"" (demo) or "test" (tiny dataset and steps, for the test suite).

  The demo's values are the schema's defaults (``mvtrack_jax.run_config``: every field, its meaning and why it has
  that value), so this file holds the name and the test variant only.
  """
  if arg not in (None, "", "test"):
    raise ValueError(f"configs/default.py: unknown arg {arg!r}; expected '' or 'test'")
  c = run_config.default_config()
  c.name = "default"
  if arg == "test":
    c.num_train_steps = 3
    c.log_every_steps = 1
    c.eval_every_steps = 3
    c.eval_steps = 1
    c.checkpoint_every_steps = 2
    c.batch_size = 2
    c.optimizer.warmup_steps = 1
    c.progress_bar = False
    with c.data.ignore_type():
      c.data.synthetic = "tiny"  # 3 training scenes of 2 views × 4 frames of 32×48
    c.data.frame_stride = 1
    c.data.num_query_points = 16
  return c
