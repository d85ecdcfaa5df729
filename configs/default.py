r"""The embedded default (``make demo``): a tiny MVTrack4Gen on the built-in synthetic dataset, CPU.

Run::

  python -m mvtrack_jax.train --config=configs/default.py --workdir=out/demo

A tiny camera-conditioned Wan-style DiT (``tiny-pixel``: 3 blocks, width 96, Plücker camera
encoding, distinct RoPE frames) in pixel space (4×4 space-to-depth "autoencoder", 8 px tokens) plus
the tiny MV-TAP tracking head, trained with the full objective
``L_diff + 0.01·L_track + 0.01·L_corr`` (probe layer 1 of 0..2) for 200 steps of batch 4 on 32×32,
8-frame windows of the
built-in synthetic multi-view dataset (built on first use into ``$MVTRACK_DATA_DIR``). Leaves
``out/demo/{checkpoints,metrics.jsonl,eval_metrics.jsonl,tensorboard}``. Rerun the same command to
resume from the newest checkpoint. Designed to finish in under 10 minutes on a 2-core CPU.

Every field can be overridden: ``--config.num_train_steps=50 --config.batch_size=2``. The
``get_config("test")`` variant (``--config=configs/default.py:test``) is the seconds-long version
used by the tests (tiny dataset, 4 frames, 3 steps).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: None/"" (demo) or "test" (tiny dataset and steps, for the test suite)."""
  c = ml_collections.ConfigDict()
  c.name = "default"
  c.seed = 0

  # Loop.
  c.num_train_steps = 200
  c.log_every_steps = 10
  c.eval_every_steps = 100
  c.eval_steps = 4  # validation batches per evaluation
  c.eval_at_start = True  # also evaluate the initial parameters (step 0)
  c.checkpoint_every_steps = 100
  c.keep_checkpoints = 2
  c.async_checkpointing = True
  c.stop_after_steps = -1  # > 0: stop (and checkpoint) at this step, as if pre-empted
  c.max_consecutive_nonfinite = 5  # stop after this many skipped NaN/inf steps in a row (0 = never)
  c.tensorboard = True
  c.progress_bar = True

  # Devices: mesh axes (data, fsdp, tensor); -1 = all remaining devices.
  c.mesh = ml_collections.ConfigDict({"shape": (-1, 1, 1), "axes": ("data", "fsdp", "tensor")})
  c.batch_size = 4  # global examples per step

  # Optimizer: AdamW, linear warmup then cosine decay, global-norm clipping.
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-3, warmup_steps=20, schedule="cosine", end_lr_factor=0.1,
      b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4, grad_clip_norm=1.0,
      # Regexes on '/'-joined parameter paths ("dit/blocks_0/attn1/to_q/kernel", "head/...").
      trainable_patterns=(".*",)))
  c.ema_decay = 0.0  # > 0 keeps an EMA of the parameters (exportable with --use_ema)

  # Model: models.wan preset + WanConfig overrides.
  c.model = ml_collections.ConfigDict({
      "preset": "tiny-pixel",
      "overrides": ml_collections.ConfigDict(dict(
          camera_mode="plucker", rope_mode="distinct", dtype="float32",
          attention_backend="einsum", scan_layers=False, remat_policy="none")),
  })
  c.head = ml_collections.ConfigDict({"preset": "tiny", "overrides": ml_collections.ConfigDict()})
  c.autoencoder = ml_collections.ConfigDict({"kind": "pixel", "patch": 4})

  # Objective (losses.objective): λs, probe layers (0-based), correspondence and tracking options.
  c.objective = ml_collections.ConfigDict(dict(
      lambda_diff=1.0, lambda_track=0.01, lambda_corr=0.01,
      head_layers=(1,), corr_layers=(1,), context_length=8,
      corr=ml_collections.ConfigDict(dict(
          domain="reference_frame", target="bilinear", head_reduction="per_head")),
      tracking=ml_collections.ConfigDict()))

  # Data (data.pipeline over a random-access source).
  c.data = ml_collections.ConfigDict(dict(
      dataset="synthetic",  # "synthetic" | "npz" | "multicamvideo"
      synthetic="default",  # synthetic dataset config: "default", "tiny" or a dict of sizes
      data_dir="",  # "" = $MVTRACK_DATA_DIR (synthetic) / required for npz & multicamvideo
      train_split="train", eval_split="validation",
      num_frames=8, frame_stride=1, height=32, width=32, num_query_points=64,
      random_crop=True, shuffle=True, read_threads=2, prefetch_buffer_size=4, worker_count=0))

  if arg == "test":
    c.num_train_steps = 3
    c.log_every_steps = 1
    c.eval_every_steps = 3
    c.eval_steps = 1
    c.checkpoint_every_steps = 2
    c.batch_size = 2
    c.optimizer.warmup_steps = 1
    c.progress_bar = False
    c.data.synthetic = "tiny"
    c.data.num_frames = 4
    c.data.num_query_points = 16
  elif arg not in (None, ""):
    raise ValueError(f"configs/default.py: unknown arg {arg!r}; expected '' or 'test'")
  return c
