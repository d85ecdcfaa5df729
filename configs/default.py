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

Why these settings (measured on the test split with ``evaluate``, 2026-11-27; README "The demo"):

- Width ≥ 2× the token input (``WanConfig`` capacity rule). The old 96-wide model on 192-number
  tokens could not represent the noise it had to predict.
- 4 frames at stride 5: one train step costs about half of an 8-frame step (attention is quadratic
  in tokens), and the window covers the record's whole camera motion, the magnitude at which
  ``evaluate``'s preset trajectories move.
- Two views that start at the same camera (``data.synthetic``): every training pair is the task
  ``evaluate`` scores (the target path begins at the reference camera).
- ``objective.schedule.weighting = "uniform"``: Wan's bell-shaped loss weight gives the noisiest
  timesteps almost no weight, which suits fine-tuning a pretrained Wan, not a model trained from
  scratch whose first sampling steps decide the layout of the sample.
- Learning rate 3e-3 with β₂ = 0.99 and 30 warm-up steps: a few hundred steps are all a CPU affords.
- ``objective.tracking.confidence_threshold_px = 48`` (3.4 px at 32×32; the comment there says why).

Every field can be overridden: ``--config.num_train_steps=50 --config.batch_size=2``. The
``get_config("test")`` variant (``--config=configs/default.py:test``) is the seconds-long version
used by the tests (tiny dataset, 4 frames at stride 1, 3 steps).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: None/"" (demo) or "test" (tiny dataset and steps, for the test suite)."""
  c = ml_collections.ConfigDict()
  c.name = "default"
  c.seed = 0

  # Loop.
  c.num_train_steps = 400
  c.log_every_steps = 10
  c.eval_every_steps = 200
  c.eval_steps = 4  # validation batches per evaluation
  c.eval_at_start = True  # also evaluate the initial parameters (step 0)
  c.checkpoint_every_steps = 200
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
      learning_rate=3e-3, warmup_steps=30, schedule="cosine", end_lr_factor=0.1,
      b1=0.9, b2=0.99, eps=1e-8, weight_decay=1e-4, grad_clip_norm=1.0,
      # Regexes on '/'-joined parameter paths ("dit/blocks_0/attn1/to_q/kernel", "head/...").
      trainable_patterns=(r"^(dit|head)/",)))
  c.ema_decay = 0.0  # > 0 keeps an EMA of the parameters (exportable with --use_ema)

  # Start from pretrained weights (a new run only; a checkpoint in the workdir wins): a diffusers
  # transformer/ folder, a .safetensors file or shard index, or an original Wan / DiffSynth / ReCamMaster
  # checkpoint (.ckpt/.pth/.bin through torch). Its architecture must equal config.model's.
  # init.overlay: a partial state dict applied over it (e.g. ReDirector's step20000.safetensors over Fun).
  c.init = ml_collections.ConfigDict(dict(transformer="", overlay=""))

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
      head_layers=(1,), corr_layers=(1,),
      # Flow-matching training grid (diffusion.flow_matching.FlowMatchingSchedule): Wan's shift, uniform weight.
      schedule=ml_collections.ConfigDict(dict(shift=5.0, weighting="uniform")),
      corr=ml_collections.ConfigDict(dict(
          domain="reference_frame", target="bilinear", head_reduction="per_head")),
      # Confidence target "within r px" (in 384×512 pixels, losses.tracking): MV-TAP's 12 px is 0.85 px at
      # 32×32, finer than the head gets in 400 steps, so it called nearly every point occluded (reference AJ
      # 0.002). 48 px is 3.4 px here, under one 4-px token (reference AJ 0.111 vs zero_motion 0.104 on the
      # 10-scene demo comparison, 2026-11-27).
      tracking=ml_collections.ConfigDict(dict(confidence_threshold_px=48.0))))

  # Text (umT5 caption embeddings, models.mvtrack4gen): the synthetic scenes have no captions, so the
  # DiT sees the null context (zeros of context_length tokens) as a text-free Wan would.
  c.text = ml_collections.ConfigDict(dict(
      encoder="",  # umT5: a diffusers Wan2.1 folder (text_encoder/ + tokenizer/), for encode_text / generate --prompt
      cache="",  # text cache (python -m mvtrack_jax.data.encode_text); "" = no text, zero null context
      context_length=8, caption_dropout=0.1))

  # CLIP image features of the reference's first frame, for a DiT with an image branch (model image_dim > 0: the
  # ReDirector / Wan2.1-Fun backbone); encoded once into image.cache. Empty cache: no image features.
  c.image = ml_collections.ConfigDict(dict(
      encoder="",  # a CLIP vision folder (e.g. a Wan2.1-I2V diffusers image_encoder/), for encode_image / generate
      cache="",  # image cache (python -m mvtrack_jax.data.encode_image)
      preprocess="wan"))  # "wan": whole frame resized to 224² (Wan/DiffSynth); "clip": CLIPImageProcessor

  # Data (data.pipeline over a random-access source).
  c.data = ml_collections.ConfigDict(dict(
      dataset="synthetic",  # "synthetic" | "npz" | "multicamvideo"
      # Synthetic dataset sizes (configs/synthetic_data.py fields; "default", "tiny" or a dict): 2 views that
      # start at the same camera, 16 frames of 64×64, 400/20/20 scenes (built in about 40 s).
      synthetic="tiny" if arg == "test" else ml_collections.ConfigDict(dict(num_views=2, num_train=400)),
      data_dir="",  # "" = $MVTRACK_DATA_DIR (synthetic) / required for npz & multicamvideo
      latents_dir="",  # Wan-VAE latent cache of the dataset (python -m mvtrack_jax.data.encode_latents)
      train_split="train", eval_split="validation",
      num_frames=4, frame_stride=5, height=32, width=32, num_query_points=64,
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
    c.data.num_frames = 4
    c.data.frame_stride = 1
    c.data.num_query_points = 16
  elif arg not in (None, ""):
    raise ValueError(f"configs/default.py: unknown arg {arg!r}; expected '' or 'test'")
  return c
