r"""MVTrack4Gen on the ReCamMaster setting (the paper's configuration), for GPU/TPU clusters.

Run (one host; see launch/ for SLURM and TPU pods)::

  python -m mvtrack_jax.train --config=configs/mvtrack4gen_recammaster.py --workdir=out/mvtrack4gen \
      --config.data.data_dir=/data/MultiCamVideo-Dataset/train

Wan2.1-T2V-1.3B (30 blocks, width 1536) with dense Plücker camera maps injected into every block
(MVTrack4Gen's improved camera encoding; ReCamMaster's distinct RoPE frames), target and
reference videos of 81 frames at 480×832 → 2 × 21 latent frames of 60×104 → 65,520 tokens;
probe layer 18 (0-based) feeds the MV-TAP tracking head and the attention-correspondence loss;
``L = L_diff + 0.01·L_track + 0.01·L_corr``; AdamW lr 1e-4; bf16 compute with full
rematerialisation of the scanned blocks; trainable = self-attention + camera modules + head
(the FFNs, cross-attention and embeddings stay frozen and have no optimizer state).

Pretrained weights: ``--config.init.transformer=/ckpt/Wan2.1-T2V-1.3B-Diffusers/transformer`` (or a
ReCamMaster / DiffSynth ``.ckpt``) starts a new run from them; the camera modules and the head
start fresh. The autoencoder is the Wan2.1 VAE
(``models.wan_vae``); point it at its weights and encode the dataset once (the trainer then reads
the cached latents and never runs the encoder)::

  python -m mvtrack_jax.data.encode_latents --config=configs/mvtrack4gen_recammaster.py \
      --config.autoencoder.path=/ckpt/Wan2.1-T2V-1.3B-Diffusers/vae \
      --config.data.data_dir=/data/MultiCamVideo-Dataset/train --out /data/latents
  python -m mvtrack_jax.train ... --config.autoencoder.path=/ckpt/.../vae --config.data.latents_dir=/data/latents

Without ``latents_dir`` the input iterator encodes each batch with the frozen VAE before the step.
With ``autoencoder.path`` empty only shapes are known (enough for ``bench``); encoding raises.
``configs/recammaster_diffusion_only.py`` is the λ = 0 baseline. ``get_config("small")`` shrinks
frames/resolution for smoke runs on one GPU.
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: None/"" (paper setting) or "small" (17 frames at 240×416, for smoke tests)."""
  c = default.get_config()
  c.name = "mvtrack4gen_recammaster"
  c.num_train_steps = 4800  # the paper's evaluated ReCamMaster checkpoint
  c.log_every_steps = 10
  c.eval_every_steps = 500
  c.eval_steps = 8
  c.checkpoint_every_steps = 200
  c.keep_checkpoints = 3
  c.progress_bar = True
  c.batch_size = 8  # global; 1 per H100 on one node
  c.mesh.shape = (-1, 1, 1)  # pure data parallelism; FSDP: e.g. (-1, 8, 1)

  c.optimizer.learning_rate = 1e-4
  c.optimizer.warmup_steps = 100
  c.optimizer.schedule = "constant"
  c.optimizer.weight_decay = 1e-2
  c.optimizer.grad_clip_norm = 1.0
  c.optimizer.trainable_patterns = (
      r"^dit/.*attn1/",  # self-attention (q, k, v, out, q/k RMSNorm)
      r"^dit/camera_encoder/", r"camera_proj", r"cam_encoder", r"projector",  # camera modules
      r"^head/",  # tracking head
  )

  c.model.preset = "wan2.1-t2v-1.3b"
  c.model.overrides = ml_collections.ConfigDict(dict(
      camera_mode="plucker", rope_mode="distinct", dtype="bfloat16",
      attention_backend="dot_product",  # cuDNN flash attention on GPU; "splash" on TPU
      scan_layers=True, remat_policy="full"))
  c.head = ml_collections.ConfigDict({"preset": "default", "overrides": ml_collections.ConfigDict(
      dict(dtype="bfloat16"))})
  c.autoencoder = ml_collections.ConfigDict({
      "kind": "wan", "path": "",  # diffusers vae/ folder or Wan2.1_VAE.pth ("random": random init, tests)
      "seed": 0, "vae": ml_collections.ConfigDict(), "tiling": ()})

  c.objective.lambda_diff = 1.0
  c.objective.lambda_track = 0.01
  c.objective.lambda_corr = 0.01
  c.objective.head_layers = (18,)
  c.objective.corr_layers = (18,)
  c.objective.context_length = 512  # umT5 tokens (zero context when the batch has none)

  c.data.dataset = "multicamvideo"
  with c.data.ignore_type():  # the demo's dict of sizes → the registered dataset name (unused with multicamvideo)
    c.data.synthetic = "default"
  c.data.data_dir = ""  # set to the MultiCamVideo train root
  c.data.num_frames = 81
  c.data.height = 480
  c.data.width = 832
  c.data.num_query_points = 256
  c.data.worker_count = 4
  c.data.read_threads = 4

  if arg == "small":
    c.data.num_frames = 17
    c.data.height = 240
    c.data.width = 416
    c.batch_size = 1
  elif arg not in (None, ""):
    raise ValueError(f"configs/mvtrack4gen_recammaster.py: unknown arg {arg!r}; expected '' or 'small'")
  return c
