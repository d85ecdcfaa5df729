"""Wan2.1 VAE benchmark: encode and decode frames per second, and the decoder's memory against T.

Run::

  .venv/bin/python -m benchmarks.vae_bench                       # reduced size (CPU)
  .venv/bin/python -m benchmarks.vae_bench --frames=81 --height=480 --width=832 --dtype=bfloat16   # GPU

Measures, with the full Wan2.1 architecture (random weights: speed does not depend on them),
batch 1:

1. ``encode`` and ``decode`` wall time after a compile-and-warm-up call, as video frames per second
   (``--repeats`` timed calls, median);
2. the compiled decoder's temporary memory (``memory_analysis().temp_size_in_bytes``, what XLA
   allocates besides arguments and outputs) at ``--frames`` and at about twice as many frames: the
   chunked, scanned decoder keeps it flat in T (only the output grows).
"""

from __future__ import annotations

import platform
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from mvtrack_jax.convert import wan_vae as convert_vae
from mvtrack_jax.models import wan_vae

_FRAMES = flags.DEFINE_integer("frames", 9, "Video frames T (1 + 4k).")
_HEIGHT = flags.DEFINE_integer("height", 128, "Frame height (multiple of 8).")
_WIDTH = flags.DEFINE_integer("width", 224, "Frame width (multiple of 8).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per measurement.")


def _timed(fn, *args) -> float:
  jax.block_until_ready(fn(*args))            # compile + warm-up
  times = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main(argv):
  del argv
  t, h, w = _FRAMES.value, _HEIGHT.value, _WIDTH.value
  cfg = wan_vae.WanVAEConfig(dtype=jnp.dtype(_DTYPE.value))
  module = wan_vae.WanVAE(cfg)
  params = convert_vae.random_params(cfg)
  video = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, t, h, w, 3)), jnp.float32)
  encode = jax.jit(lambda p, v: module.apply({"params": p}, v, method="encode")[0])
  decode = jax.jit(lambda p, z: module.apply({"params": p}, z, method="decode"))
  latents = encode(params, video)
  enc_s = _timed(encode, params, video)
  dec_s = _timed(decode, params, latents)

  def temp_gib(frames):
    z = jax.ShapeDtypeStruct((1, 1 + (frames - 1) // 4, h // 8, w // 8, cfg.z_dim), jnp.float32)
    return decode.lower(params, z).compile().memory_analysis().temp_size_in_bytes / 2 ** 30

  t2 = 1 + 2 * (t - 1)
  print(f"Wan2.1 VAE ({convert_vae.num_params(cfg) / 1e6:.1f} M params), {_DTYPE.value}, video 1×{t}×{h}×{w}, "
        f"device {jax.devices()[0].device_kind} ({platform.processor() or platform.machine()})")
  print(f"  encode: {enc_s:.3f} s = {t / enc_s:.2f} frames/s")
  print(f"  decode: {dec_s:.3f} s = {t / dec_s:.2f} frames/s")
  print(f"  decode temp memory: {temp_gib(t):.3f} GiB at T={t}, {temp_gib(t2):.3f} GiB at T={t2}")


if __name__ == "__main__":
  app.run(main)
