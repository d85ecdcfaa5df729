"""Forward+backward step time and tokens/s of the camera-conditioned Wan DiT.

A step is ``jax.grad`` of a velocity MSE (plus a probe q/k term when ``--probe_layers`` is set)
with respect to all parameters, jitted; no optimizer update. Tokens/s counts every token of the
joint ``[target | reference]`` sequence times the batch.

CPU (the figures in docs/performance.md):

  .venv/bin/python -m benchmarks.dit_bench --preset tiny --tokens 2x4x8x12 --steps 10

GPU (issue 3 target: Wan2.1-1.3B, 2 views × 21 × 30 × 52 = 65,520 tokens, bf16, cuDNN flash):

  python -m benchmarks.dit_bench --preset wan2.1-t2v-1.3b --tokens 2x21x30x52 --dtype bfloat16 \\
      --attention dot_product --scan --remat dots_with_no_batch_dims_saveable --steps 5

``--lower_only`` traces and lowers the step with abstract inputs (no parameter memory), which
checks the big-model code path on a machine that cannot run it.
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mvtrack_jax.models import wan
from mvtrack_jax.models import wan_params


def _parse_tokens(spec: str, cfg: wan.WanConfig) -> tuple[int, tuple[int, int, int]]:
  """``"VxFxHxW"`` token grid (views 1 or 2) → (views, latent (F, H, W))."""
  parts = [int(p) for p in spec.lower().split("x")]
  if len(parts) != 4 or parts[0] not in (1, 2):
    raise ValueError(f"--tokens must be VIEWSxFxHxW with VIEWS in (1, 2), got {spec!r}")
  views, f, h, w = parts
  pt, ph, pw = cfg.patch_size
  return views, (f * pt, h * ph, w * pw)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--preset", default="tiny", choices=sorted(wan.PRESETS))
  parser.add_argument("--tokens", default="2x4x8x12", help="token grid VIEWSxFxHxW (after patchify)")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--context_length", type=int, default=512)
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--attention", default="einsum", choices=["einsum", "dot_product", "splash"])
  parser.add_argument("--camera_mode", default="plucker", choices=["none", "recammaster", "plucker"])
  parser.add_argument("--scan", action="store_true", help="nn.scan over blocks")
  parser.add_argument("--remat", default="none", choices=list(wan.REMAT_POLICIES))
  parser.add_argument("--probe_layers", default="", help="comma-separated 0-based blocks, e.g. 18")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--lower_only", action="store_true", help="lower with abstract inputs, do not run")
  args = parser.parse_args(argv)

  cfg = wan.get_config(args.preset, dtype=args.dtype, attention_backend=args.attention, camera_mode=args.camera_mode,
                       scan_layers=args.scan, remat_policy=args.remat)
  views, latent = _parse_tokens(args.tokens, cfg)
  probes = tuple(int(p) for p in args.probe_layers.split(",") if p)
  inputs = wan_params.example_inputs(cfg, batch_size=args.batch, latent_shape=latent, context_length=args.context_length,
                              with_reference=views == 2)
  model = wan.WanDiT(cfg)
  grid = wan.token_grid(cfg, inputs["latents"].shape)
  tokens = views * int(np.prod(grid))
  target = jnp.asarray(np.random.default_rng(1).standard_normal(inputs["latents"].shape).astype(np.float32))

  def loss_fn(params, inputs):
    out = model.apply({"params": params}, **inputs, probe_layers=probes)
    vel, pr = out if probes else (out, {})
    loss = jnp.mean((vel - target) ** 2)
    for p in pr.values():
      loss = loss + 1e-3 * jnp.mean(p["q"].astype(jnp.float32) * p["k"].astype(jnp.float32))
    return loss

  step = jax.jit(jax.value_and_grad(loss_fn))
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), **inputs))["params"]
  abstract = nn.meta.unbox(abstract)
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
  print(f"preset {args.preset}: dim {cfg.dim}, layers {cfg.num_layers}, params {wan_params.count_params(abstract):,}; "
        f"batch {args.batch} x {tokens:,} tokens (views {views}, grid {grid}), dtype {cfg.dtype}, "
        f"attention {cfg.attention_backend}, camera {cfg.camera_mode}, scan {cfg.scan_layers}, remat {cfg.remat_policy}")
  t0 = time.perf_counter()
  lowered = step.lower(abstract, inputs)
  print(f"lowered in {time.perf_counter() - t0:.1f} s")
  if args.lower_only:
    return
  t0 = time.perf_counter()
  compiled = lowered.compile()
  print(f"compiled in {time.perf_counter() - t0:.1f} s")
  flops = None
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", 0.0)) or None
  except Exception:  # pylint: disable=broad-except
    pass
  params = jax.jit(lambda k: nn.meta.unbox(model.init(k, **inputs))["params"])(jax.random.key(0))
  loss, grads = compiled(params, inputs)
  jax.block_until_ready(grads)
  times = []
  for _ in range(args.steps):
    t0 = time.perf_counter()
    loss, grads = compiled(params, inputs)
    jax.block_until_ready((loss, grads))
    times.append(time.perf_counter() - t0)
  med = float(np.median(times))
  print(f"loss {float(loss):.4f}; fwd+bwd step: median {med * 1e3:.1f} ms over {args.steps} steps "
        f"(min {min(times) * 1e3:.1f} ms) -> {args.batch * tokens / med:,.0f} tokens/s")
  if flops:
    print(f"XLA cost analysis: {flops / 1e9:.2f} GFLOP/step -> {flops / med / 1e12:.3f} TFLOP/s achieved")


if __name__ == "__main__":
  main()
