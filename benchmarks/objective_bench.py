"""Benchmark of the MVTrack4Gen objective: L_corr memory/time scaling and train-step cost.

Run: ``python -m benchmarks.objective_bench`` (``--quick`` for smaller sizes, ``--repeats``).

1. ``L_corr`` (forward + backward w.r.t. q and k, jitted) for ``S``, ``2S`` and ``4S`` tokens at
   fixed ``N``: XLA's compiled temporary memory (``memory_analysis().temp_size_in_bytes``) and
   the median wall time, for each softmax domain. Memory must grow linearly in ``S`` (it never
   holds an ``S×S`` map; the dense map size is printed for comparison).
2. One train-step forward/backward (``jax.value_and_grad`` of the objective) on the ``tiny-pixel``
   WanDiT preset with the tiny head: diffusion only vs ``L_diff + 0.01·L_track + 0.01·L_corr``.

Timings are wall clock on whatever machine runs it; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np


def _time(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def bench_corr(num_points: int, frames: int, h: int, w: int, heads: int, head_dim: int, repeats: int) -> None:
  """Prints temp memory and time of L_corr fwd+bwd for S, 2S, 4S tokens (width doubled)."""
  from mvtrack_jax.losses import correspondence as corr
  stride = 16
  print(f"\nL_corr (fwd+bwd wrt q,k), N={num_points}, F={frames}, heads={heads}, head_dim={head_dim}, fp32")
  print(f"{'domain':>16} {'S':>7} {'temp MiB':>9} {'dense S×S MiB':>14} {'time ms':>8}")
  for domain in ("reference_frame", "reference_video", "all"):
    cfg = corr.CorrespondenceConfig(domain=domain)
    prev = None
    for mult in (1, 2, 4):
      ww = w * mult
      s_tokens = 2 * frames * h * ww
      rng = np.random.default_rng(0)
      q = jnp.asarray(rng.normal(size=(1, s_tokens, heads, head_dim)), jnp.float32)
      k = jnp.asarray(rng.normal(size=(1, s_tokens, heads, head_dim)), jnp.float32)
      tracks = np.stack([rng.uniform(0, ww * stride, (1, 2, frames, num_points)),
                         rng.uniform(0, h * stride, (1, 2, frames, num_points))], -1).astype(np.float32)
      visible = np.ones((1, 2, frames, num_points), bool)
      mask = np.ones((1, num_points), bool)

      def loss(q, k, tracks=tracks, ww=ww, cfg=cfg):
        return corr.attention_correspondence_loss(q, k, tracks, visible, mask, grid=(frames, h, ww),
                                                  token_stride=stride, config=cfg)[0]

      fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
      compiled = fn.lower(q, k).compile()
      temp = compiled.memory_analysis().temp_size_in_bytes / 2**20
      dense = s_tokens * s_tokens * heads * 4 / 2**20
      ms = 1e3 * _time(compiled, q, k, repeats=repeats)
      ratio = f"  (×{temp / prev:.2f})" if prev else ""
      prev = temp
      print(f"{domain:>16} {s_tokens:>7} {temp:>9.1f} {dense:>14.1f} {ms:>8.1f}{ratio}")


def bench_train_step(frames: int, size: int, num_points: int, repeats: int) -> None:
  """Prints the time of one value_and_grad of the objective, with and without the tracking terms."""
  from mvtrack_jax.losses import objective as obj
  from mvtrack_jax.losses.correspondence import CorrespondenceConfig
  from mvtrack_jax.models import autoencoder as ae
  from mvtrack_jax.models import tracking_head as th
  from mvtrack_jax.models import wan
  from mvtrack_jax.models.mvtrack4gen import MVTrack4Gen

  rng = np.random.default_rng(0)
  b = 1
  intr = np.broadcast_to(np.array([[size, 0, size / 2], [0, size, size / 2], [0, 0, 1]], np.float32),
                         (b, frames, 3, 3)).copy()
  c2w = np.broadcast_to(np.eye(4, dtype=np.float32), (b, frames, 4, 4)).copy()
  query = np.stack([rng.integers(0, frames, (b, num_points)), rng.uniform(0, size, (b, num_points)),
                    rng.uniform(0, size, (b, num_points))], -1).astype(np.float32)
  batch = {
      "reference_video": rng.integers(0, 256, (b, frames, size, size, 3), dtype=np.uint8),
      "target_video": rng.integers(0, 256, (b, frames, size, size, 3), dtype=np.uint8),
      "reference_intrinsics": intr, "target_intrinsics": intr.copy(), "reference_cam_to_world": c2w,
      "target_cam_to_world": c2w.copy(), "query_points": query,
      "tracks": np.broadcast_to(query[:, None, None, :, 1:], (b, 2, frames, num_points, 2)).copy(),
      "visible": np.ones((b, 2, frames, num_points), bool), "track_mask": np.ones((b, num_points), bool),
  }
  autoencoder = ae.PixelAutoencoder(4)
  dit = wan.WanDiT(wan.get_config("tiny-pixel"))
  head = th.MVTAPHead(th.TrackingHeadConfig.tiny())
  print(f"\nTrain step (value_and_grad) on tiny-pixel WanDiT + tiny head: B={b}, T={frames}, {size}×{size}, "
        f"N={num_points}")
  base = dict(corr=CorrespondenceConfig(layers=(1,)))
  model = MVTrack4Gen(dit, head, autoencoder, head_layers=(1,), context_length=8)
  params = jax.jit(model.init)(jax.random.key(0), batch)
  for name, kw in (("L_diff only", dict(lambda_track=0.0, lambda_corr=0.0)),
                   ("L_diff + L_track + L_corr", {})):
    cfg = obj.ObjectiveConfig(**base, **kw)
    fn = obj.make_objective(model if cfg.lambda_track > 0 else dataclasses.replace(model, head=None), cfg)
    p = params if cfg.lambda_track > 0 else {"dit": params["dit"]}
    step = jax.jit(jax.value_and_grad(lambda p, bt, r: fn(p, bt, r)[0]))
    t = time.perf_counter()
    compiled = step.lower(p, batch, jax.random.key(1)).compile()
    compile_s = time.perf_counter() - t
    ms = 1e3 * _time(compiled, p, batch, jax.random.key(1), repeats=repeats)
    temp = compiled.memory_analysis().temp_size_in_bytes / 2**20
    print(f"{name:>28}: {ms:8.1f} ms/step  (compile {compile_s:.1f} s, temp {temp:.1f} MiB)")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="smaller sizes (CI smoke run)")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
  if args.quick:
    bench_corr(num_points=64, frames=2, h=4, w=8, heads=2, head_dim=32, repeats=args.repeats)
    bench_train_step(frames=2, size=32, num_points=8, repeats=args.repeats)
  else:
    bench_corr(num_points=256, frames=4, h=8, w=16, heads=12, head_dim=128, repeats=args.repeats)
    bench_train_step(frames=4, size=64, num_points=32, repeats=args.repeats)


if __name__ == "__main__":
  main()
