r"""MVTrack4Gen on the ReCamMaster setting (the paper's configuration), for GPU/TPU clusters.

Wan2.1-T2V-1.3B (30 blocks, width 1536) with dense Plücker camera maps injected into every block
(MVTrack4Gen's improved camera encoding; ReCamMaster's distinct RoPE frames), target and
reference videos of 81 frames at 480×832 → 2 × 21 latent frames of 60×104 → 65,520 tokens;
probe layer 18 (0-based) feeds the MV-TAP tracking head and the attention-correspondence loss;
``L = L_diff + 0.01·L_track + 0.01·L_corr``; AdamW lr 1e-4; bf16 compute; the scanned blocks are
rematerialised except the cuDNN attention forward (remat policy ``save_attention``: the backward
pass never re-runs attention, ~80 % of the FLOPs); trainable = self-attention + camera modules + head
(the FFNs, cross-attention and embeddings stay frozen and have no optimizer state). This file
stands alone (nothing is inherited from the CPU demo's config).

Data: MultiCamVideo (no tracks) is the primary source, mixed 1:1 with the paper-resolution synthetic
set (``synthetic="paper"``: tracked, 81 frames at 480×832) so L_track and L_corr see tracks every
step; periodic evaluation runs on the synthetic validation split (``data.eval_source``).

Fine-tuning a pretrained Wan2.1, the whole sequence (one host; see launch/ for SLURM and TPU
pods; ``W=/ckpt/Wan2.1-T2V-1.3B-Diffusers``, ``D=/data/MultiCamVideo-Dataset`` (``train/``, ``val/``)
with ReCamMaster's ``metadata.csv`` of captions)::

  C="--config=configs/mvtrack4gen_recammaster.py --config.autoencoder.path=$W/vae --config.data.data_dir=$D \
     --config.text.encoder=$W --config.data.latents_dir=/data/latents \
     --config.data.mixture.synthetic.latents_dir=/data/latents_synthetic"
  # 1. encode every view of both sources once with the Wan VAE (the trainer never runs the encoder)
  python -m mvtrack_jax.data.encode_latents $C --out /data/latents
  python -m mvtrack_jax.data.encode_latents $C --source synthetic --out /data/latents_synthetic
  # 2. encode the captions once with umT5 (and the empty prompt: the null context)
  python -m mvtrack_jax.data.encode_text $C --captions $D/metadata.csv --out /data/text
  # 3. train, starting from the pretrained transformer (camera modules and head start fresh)
  python -m mvtrack_jax.train $C --workdir=out/mvtrack4gen --config.text.cache=/data/text \
      --config.init.transformer=$W/transformer
  # 4. export for PyTorch (diffusers; --format=diffsynth for ReCamMaster's scripts)
  python -m mvtrack_jax.export --workdir=out/mvtrack4gen --out=out/mvtrack4gen_diffusers --format=diffusers
  # 5. generate a novel view (decoded by the Wan VAE), guided by a prompt (CFG 5 against the null context)
  python -m mvtrack_jax.generate --checkpoint out/mvtrack4gen --reference clip.mp4 --trajectory arc_left \
      --prompt "a man dancing in a plaza" --out out/novel_view

A released ReCamMaster ``.ckpt`` works as ``init.transformer`` with ``model.overrides.camera_mode="recammaster"``.
``configs/recammaster_diffusion_only.py`` is the λ = 0 baseline.

Variants: ``get_config("small")`` shrinks frames/resolution (17 frames at 240×416) for smoke runs on
one GPU; ``get_config("14b")`` is Wan2.1-14B with FSDP over 8 GPUs (full remat, probe layer 24); ``get_config("smoke")`` runs the sequence above on a CPU in seconds with tiny random
stand-ins (``python -m mvtrack_jax.convert.standins --out W``: a ``tiny`` DiT of 2 blocks × 128, 4
latent channels, patch 1×1×1; a tiny VAE and umT5; a MultiCamVideo-layout tree of 2 scenes × 3
cameras × 9 frames of 32×48 as ``D``; the mixture entry a tiny synthetic set; 2 steps) — the
docs/training.md's "Fine-tune a pretrained Wan2.1" lists the commands and ``tests/data/test_latent_cache.py``
runs them.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: None/"" (paper setting), "small" (17 frames at 240×416), "14b" (Wan2.1-14B, FSDP over 8 GPUs)
  or "smoke" (CPU stand-ins)."""
  if arg not in (None, "", "small", "14b", "smoke"):
    raise ValueError(f"configs/mvtrack4gen_recammaster.py: unknown arg {arg!r}; expected '', 'small', '14b' or "
                     "'smoke'")
  c = ml_collections.ConfigDict()
  c.name = "mvtrack4gen_recammaster"
  c.seed = 0

  # Loop.
  c.num_train_steps = 4800  # the paper's evaluated ReCamMaster checkpoint
  c.log_every_steps = 10
  c.eval_every_steps = 500
  c.eval_steps = 8
  c.eval_at_start = False
  c.checkpoint_every_steps = 200
  c.keep_checkpoints = 3
  c.async_checkpointing = True
  c.stop_after_steps = -1
  c.max_consecutive_nonfinite = 5
  c.tensorboard = True
  c.progress_bar = True

  c.mesh = ml_collections.ConfigDict({"shape": (-1, 1, 1), "axes": ("data", "fsdp", "tensor")})  # FSDP: (-1, 8, 1)
  c.batch_size = -1  # 1 per device (mesh_lib.global_batch_size): 8 on one 8-GPU node, as ReCamMaster

  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-4, warmup_steps=100, schedule="constant", end_lr_factor=1.0,
      b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-2, grad_clip_norm=1.0,
      trainable_patterns=(
          r"^dit/.*attn1/",  # self-attention (q, k, v, out, q/k RMSNorm)
          r"^dit/camera_encoder/", r"camera_proj", r"cam_encoder", r"projector",  # camera modules
          r"^head/",  # tracking head
      )))
  c.ema_decay = 0.0

  # Start from pretrained weights (a new run only; a checkpoint in the workdir wins): transformer = a diffusers
  # transformer/ folder, .safetensors or .ckpt; overlay = a partial state dict applied over it (e.g. ReDirector's
  # step20000.safetensors over Wan2.1-Fun).
  c.init = ml_collections.ConfigDict(dict(transformer="", overlay=""))

  c.model = ml_collections.ConfigDict({
      "preset": "wan2.1-t2v-1.3b",
      "overrides": ml_collections.ConfigDict(dict(
          camera_mode="plucker", rope_mode="distinct", dtype="bfloat16",
          attention_backend="dot_product",  # cuDNN flash attention on GPU; "splash" on TPU
          # Recompute each scanned block in the backward pass except the cuDNN attention forward, whose
          # residuals are kept (models.attention.with_named_residuals); "offload_attention" keeps them in
          # pinned host memory instead, "full" recomputes everything.
          scan_layers=True, remat_policy="save_attention")),
  })
  c.head = ml_collections.ConfigDict({"preset": "default", "overrides": ml_collections.ConfigDict(
      dict(dtype="bfloat16"))})
  c.autoencoder = ml_collections.ConfigDict({
      "kind": "wan", "path": "",  # diffusers vae/ folder or Wan2.1_VAE.pth ("random": random init, tests)
      "seed": 0, "vae": ml_collections.ConfigDict(), "tiling": ()})

  c.objective = ml_collections.ConfigDict(dict(
      lambda_diff=1.0, lambda_track=0.01, lambda_corr=0.01,
      head_layers=(18,), corr_layers=(18,),
      schedule=ml_collections.ConfigDict(dict(shift=5.0, weighting="wan")),
      corr=ml_collections.ConfigDict(dict(domain="reference_frame", target="bilinear", head_reduction="per_head")),
      tracking=ml_collections.ConfigDict()))

  # umT5 captions: encoded once into text.cache; the empty prompt's embedding is the null context
  # (caption dropout, CFG). An empty cache trains with the zero null context.
  c.text = ml_collections.ConfigDict(dict(
      encoder="",  # a diffusers Wan2.1 folder (text_encoder/ + tokenizer/), for encode_text / generate --prompt
      cache="",  # text cache of data_dir (python -m mvtrack_jax.data.encode_text)
      context_length=512, caption_dropout=0.1))

  # CLIP image features of the reference's first frame, for a DiT with an image branch (model image_dim > 0: the
  # ReDirector / Wan2.1-Fun backbone); encoded once into image.cache. Empty cache: no image features.
  c.image = ml_collections.ConfigDict(dict(
      encoder="",  # a CLIP vision folder (e.g. a Wan2.1-I2V diffusers image_encoder/), for encode_image / generate
      cache="",  # image cache (python -m mvtrack_jax.data.encode_image)
      preprocess="wan"))  # "wan": whole frame resized to 224² (Wan/DiffSynth); "clip": CLIPImageProcessor

  # Data (data.sources): MultiCamVideo (no tracks) is the primary source; the paper-resolution synthetic
  # set (tracked: 81 frames at 480×832) is mixed in 1:1 so L_track and L_corr see tracks in every batch
  # of 2+ examples on average. Periodic evaluation runs on the synthetic validation split (it has tracks).
  c.data = ml_collections.ConfigDict(dict(
      dataset="multicamvideo",
      data_dir="",  # the MultiCamVideo-Dataset root (holding train/ and val/)
      # Decode 1280² frames straight to 832² (cover the 480×832 crop), the views and frames an example uses only.
      multicamvideo=ml_collections.ConfigDict(dict(cameras=(), size=(832, 832), num_frames=81,
                                                   focal_length_mm=0.0)),
      latents_dir="",  # latent cache of data_dir (python -m mvtrack_jax.data.encode_latents)
      weight=1.0,
      mixture=ml_collections.ConfigDict({"synthetic": ml_collections.ConfigDict(dict(
          dataset="synthetic", synthetic="paper", data_dir="", latents_dir="", text_cache="", image_cache="",
          weight=1.0))}),
      eval_source="synthetic",
      train_split="train", eval_split="validation",
      num_frames=81, frame_stride=1, height=480, width=832, num_query_points=256,
      random_crop=True, shuffle=True, read_threads=4, prefetch_buffer_size=4, worker_count=4))

  if arg == "14b":
    # Wan2.1-T2V-14B (40 blocks × 5120): parameters, gradients and Adam moments sharded over 8 GPUs (FSDP),
    # 1 example per GPU. Full remat: keeping the attention residuals (save_attention) would add ~107 GB per
    # GPU at 65,520 tokens (docs/training.md, "Scale-out"). Probe layer 24 of 40 (the 1.3B's 18 of 30, scaled; an
    # assumption: the paper gives no 14B layer).
    c.model.preset = "wan2.1-t2v-14b"
    c.model.overrides.remat_policy = "full"
    c.mesh.shape = (-1, 8, 1)
    c.objective.head_layers = (24,)
    c.objective.corr_layers = (24,)
  elif arg == "small":
    c.data.num_frames = 17
    c.data.height = 240
    c.data.width = 416
    c.batch_size = 1
  elif arg == "smoke":
    c.num_train_steps = 2
    c.log_every_steps = 1
    c.eval_every_steps = 2
    c.eval_steps = 1
    c.checkpoint_every_steps = 2
    c.progress_bar = False
    c.batch_size = 2
    c.optimizer.warmup_steps = 1
    c.model.preset = "tiny"
    c.model.overrides.update(dict(patch_size=(1, 1, 1), in_channels=4, out_channels=4, vae_stride=8,
                                  frames_per_latent=4, dtype="float32", attention_backend="einsum",
                                  scan_layers=False, remat_policy="none"))
    c.head.preset = "tiny"
    c.head.overrides = ml_collections.ConfigDict()
    c.objective.head_layers = (1,)
    c.objective.corr_layers = (1,)
    c.text.context_length = 8
    c.data.multicamvideo.size = (32, 48)
    c.data.multicamvideo.num_frames = 9
    with c.data.mixture.synthetic.ignore_type():
      c.data.mixture.synthetic.synthetic = ml_collections.ConfigDict(dict(
          num_views=2, num_frames=9, height=32, width=48, num_tracks=16, num_train=2, num_validation=2, num_test=1))
    c.data.num_frames = 5
    c.data.height = 32
    c.data.width = 32
    c.data.num_query_points = 8
    c.data.random_crop = False
    c.data.read_threads = 1
    c.data.worker_count = 0
  return c
