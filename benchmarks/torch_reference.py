r"""PyTorch reference of the MVTrack4Gen train step: diffusers ``WanTransformer3DModel`` at a config's shapes.

Run (after, or through, the JAX bench of the same config)::

  python -m mvtrack_jax.bench --config=configs/recammaster_diffusion_only.py --torch_reference
  python -m benchmarks.torch_reference --config=configs/recammaster_diffusion_only.py [--jax_step_time_s=6.18]

The reference is what ReCamMaster / DiffSynth train, at the config's DiT shapes (``config.model``:
Wan2.1-1.3B for the paper configs) and token count (``config.data``: both views concatenated along
frames, ``2 × 21`` latent frames of ``60 × 104`` → 65,520 tokens, a 512-token text context), batch 1:

- bf16 weights and activations, PyTorch SDPA (``--sdpa``: ``default`` lets PyTorch choose; ``cudnn``
  or ``flash`` force one backend), gradient checkpointing per block (``enable_gradient_checkpointing``,
  i.e. remat ``full``);
- trainable: the self-attention (``attn1``) of every block, the rest frozen, fused AdamW on the
  trainable set; a velocity-MSE loss on random latents.

ReCamMaster's camera modules (per-block ``Linear(12 → D)`` + ``projector``) and the tracking head are
absent: the reference is the diffusion-only step, so compare it with the diffusion-only JAX config.
Prints step time (mean and min over ``--steps`` after ``--warmup``), tokens/s, peak CUDA memory and, with
``--jax_step_time_s``, the speed ratio ``t_torch / t_jax``. Skipped with a message where torch has no
CUDA (this CPU machine): nothing is measured there.
"""

from __future__ import annotations

import json
import time

from absl import app
from absl import flags
from ml_collections import config_flags

from mvtrack_jax import run_config
from mvtrack_jax.convert import wan as convert_wan


def reference_step_time(config, *, steps: int = 5, warmup: int = 2, sdpa: str = "default") -> dict | None:
  """Times the reference train step of ``config``'s shapes; None (after printing why) without CUDA."""
  import torch  # pylint: disable=g-import-not-at-top
  if not torch.cuda.is_available():
    print(f"torch reference skipped: torch {torch.__version__} has no CUDA device here")
    return None
  import diffusers  # pylint: disable=g-import-not-at-top
  from torch.nn.attention import SDPBackend, sdpa_kernel  # pylint: disable=g-import-not-at-top
  cfg = run_config.parse(config).model.wan_config()
  model_config = {k: v for k, v in convert_wan.diffusers_config(cfg).items() if not k.startswith("_")}
  model = diffusers.WanTransformer3DModel(**model_config).to("cuda", torch.bfloat16)
  model.enable_gradient_checkpointing()
  trainable = []
  for name, param in model.named_parameters():
    param.requires_grad_(".attn1." in name)
    if param.requires_grad:
      trainable.append(param)
  optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=True)
  data = config.data
  latent = model_config["out_channels"]
  frames = 2 * (1 + (int(data.num_frames) - 1) // cfg.frames_per_latent)
  h, w = int(data.height) // cfg.vae_stride, int(data.width) // cfg.vae_stride
  x = torch.randn(1, latent, frames, h, w, device="cuda", dtype=torch.bfloat16)
  target = torch.randn(1, latent, frames, h, w, device="cuda", dtype=torch.bfloat16)
  context = torch.randn(1, int(config.text.context_length), cfg.text_dim, device="cuda", dtype=torch.bfloat16)
  timestep = torch.tensor([500.0], device="cuda")
  backends = {"default": None, "cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}

  def step():
    out = model(x, timestep, context, return_dict=False)[0]
    loss = torch.nn.functional.mse_loss(out.float(), target.float())
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

  def run(n):
    times = []
    for _ in range(n):
      t = time.perf_counter()
      if backends[sdpa] is None:
        step()
      else:
        with sdpa_kernel(backends[sdpa]):
          step()
      torch.cuda.synchronize()
      times.append(time.perf_counter() - t)
    return times

  run(warmup)
  torch.cuda.reset_peak_memory_stats()
  times = run(steps)
  tokens = frames * h * w // (cfg.patch_size[1] * cfg.patch_size[2] * cfg.patch_size[0])
  return {"device": torch.cuda.get_device_name(), "sdpa": sdpa, "tokens": tokens,
          "step_time_s": sum(times) / len(times), "step_time_min_s": min(times),
          "tokens_per_s": tokens * len(times) / sum(times),
          "peak_memory_gib": torch.cuda.max_memory_allocated() / 2 ** 30,
          "torch": torch.__version__, "diffusers": diffusers.__version__, "date": time.strftime("%Y-%m-%d")}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  if f.config is None:
    raise app.UsageError("--config is required")
  result = reference_step_time(f.config, steps=f.steps, warmup=f.warmup, sdpa=f.sdpa)
  if result is None:
    return
  if f.jax_step_time_s:
    result["jax_step_time_s"] = f.jax_step_time_s
    result["speed_ratio_torch_over_jax"] = result["step_time_s"] / f.jax_step_time_s
    print(f"JAX is {result['speed_ratio_torch_over_jax']:.2f}x the PyTorch reference")
  print(json.dumps(result))


if __name__ == "__main__":
  config_flags.DEFINE_config_file("config", None, "Config whose DiT shapes are benchmarked.", lock_config=True)
  flags.DEFINE_integer("steps", 5, "Timed steps.")
  flags.DEFINE_integer("warmup", 2, "Untimed steps first.")
  flags.DEFINE_enum("sdpa", "default", ["default", "cudnn", "flash"], "PyTorch SDPA backend.")
  flags.DEFINE_float("jax_step_time_s", None, "JAX step time of the same shapes, for the ratio.")
  app.run(main)
