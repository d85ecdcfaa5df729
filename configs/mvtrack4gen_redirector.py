r"""MVTrack4Gen on the ReDirector backbone (the paper's second setting), for GPU/TPU clusters.

Wan2.1-Fun-V1.1-1.3B-Control-Camera as ReDirector uses it (``models.wan`` preset
``wan2.1-fun-1.3b-control-camera``): CLIP image context of the reference's first frame, 32-channel
input (latents + 16 zero control channels), full-resolution Plücker maps through Fun's control
adapter added to the patch embeddings, Rotary Camera Encoding (RoCE) in every self-attention, the
same RoPE frames for both views. 81 frames at 480×832 → 2 × 21 latent frames of 60×104 → 65,520
tokens; probe layer 18 (0-based) feeds the MV-TAP head and L_corr on q/k after RoPE *and* RoCE;
``L = L_diff + 0.01·L_track + 0.01·L_corr``; AdamW lr 1e-4 as ReDirector; 13,000 steps of one clip per GPU (the
project page's budget, on 4 GPUs; its tables evaluate step 11,750: ``--config.num_train_steps=11750``); trainable = every self-attention module
(q, k, v, o, q/k RMSNorm, RoCE phases — ReDirector's own set) + the tracking head. Everything else
(loop, mesh, data mixture, schedule, remat) is ``configs/mvtrack4gen_recammaster.py``'s.

Starting point: the Fun base model, overlaid with ReDirector's released ``step20000.safetensors``
(its trained self-attention and RoCE; ``init.overlay``), so MVTrack4Gen fine-tunes ReDirector
(an inference: the paper does not say). Leave ``init.overlay`` empty to start RoCE from zero.

The whole sequence (one host; ``F=/ckpt/Wan2.1-Fun-V1.1-1.3B-Control-Camera``,
``R=/ckpt/ReDirector/step20000.safetensors``, ``W=/ckpt/Wan2.1-T2V-1.3B-Diffusers`` for the VAE and
umT5, ``I=/ckpt/Wan2.1-I2V-14B-480P-Diffusers`` for the CLIP vision tower (``image_encoder/``),
``D=/data/MultiCamVideo-Dataset``)::

  C="--config=configs/mvtrack4gen_redirector.py --config.autoencoder.path=$W/vae --config.data.data_dir=$D \
     --config.text.encoder=$W --config.image.encoder=$I/image_encoder --config.data.latents_dir=/data/latents \
     --config.data.mixture.synthetic.latents_dir=/data/latents_synthetic"
  # 1. latents, captions and CLIP features of every view, once
  python -m mvtrack_jax.data.encode_latents $C --out /data/latents
  python -m mvtrack_jax.data.encode_latents $C --source synthetic --out /data/latents_synthetic
  python -m mvtrack_jax.data.encode_text $C --captions $D/metadata.csv --out /data/text
  python -m mvtrack_jax.data.encode_image $C --out /data/image
  python -m mvtrack_jax.data.encode_image $C --source synthetic --out /data/image_synthetic
  # 2. train from Fun + ReDirector (the tracking head starts fresh)
  python -m mvtrack_jax.train $C --workdir=out/mvtrack4gen_redirector --config.text.cache=/data/text \
      --config.image.cache=/data/image --config.data.mixture.synthetic.image_cache=/data/image_synthetic \
      --config.init.transformer=$F/diffusion_pytorch_model.safetensors --config.init.overlay=$R
  # 3. generate (CLIP features of the reference computed on the fly), export for DiffSynth/ReDirector
  python -m mvtrack_jax.generate --checkpoint out/mvtrack4gen_redirector --reference clip.mp4 \
      --trajectory arc_left --prompt "a man dancing in a plaza" --out out/novel_view
  python -m mvtrack_jax.export --workdir=out/mvtrack4gen_redirector --out=out/redirector_diffsynth --format=diffsynth

``configs/redirector_diffusion_only.py`` is the λ = 0 baseline. Variants: ``get_config("small")``
(17 frames at 240×416, one GPU) and ``get_config("smoke")`` (CPU, tiny random stand-ins from
``python -m mvtrack_jax.convert.standins``: the ``tiny-redirector`` DiT, a 32-wide CLIP, 2 steps).
"""

import ml_collections

from configs import mvtrack4gen_recammaster

ARGS = (None, "", "small", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """``arg``: None/"" (paper setting), "small" (17 frames at 240×416) or "smoke" (CPU stand-ins)."""
  if arg not in ARGS:
    raise ValueError(f"configs/mvtrack4gen_redirector.py: unknown arg {arg!r}; expected '', 'small' or 'smoke'")
  c = mvtrack4gen_recammaster.get_config(arg)
  c.name = "mvtrack4gen_redirector"
  c.optimizer.trainable_patterns = (
      r"^dit/.*attn1/",  # every self-attention: q, k, v, o, q/k RMSNorm and the RoCE phase layers
      r"^head/",  # tracking head
  )
  overrides = {k: v for k, v in c.model.overrides.items() if k not in ("camera_mode", "rope_mode")}
  if arg == "smoke":
    c.model.preset = "tiny-redirector"
    overrides.update(in_channels=4, out_channels=4, condition_channels=4, patch_size=(1, 2, 2))
  else:
    c.model.preset = "wan2.1-fun-1.3b-control-camera"
  c.model.overrides = ml_collections.ConfigDict(overrides)
  return c
