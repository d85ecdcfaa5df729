r"""Local multi-process launcher: N JAX processes on this machine (CPU devices, gloo collectives).

Runs ``python -m mvtrack_jax.train`` (or any module given with ``--module``) in
``--num_processes`` processes that join one process group through a coordinator on a free
localhost port; each process fakes ``--devices_per_process`` CPU devices. It reproduces a
multi-host launch on one machine — per-process data shards, global arrays, process-0-only logs::

  python launch/local_multiprocess.py --num_processes=2 --devices_per_process=2 -- \
      --config=configs/default.py --workdir=out/two_proc --config.mesh.shape=-1,1,1

Arguments after ``--`` go to the module. The launcher exits with the first non-zero exit code.
"""

import argparse
import os
import subprocess
import sys

import portpicker


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num_processes", type=int, default=2)
  parser.add_argument("--devices_per_process", type=int, default=1)
  parser.add_argument("--module", default="mvtrack_jax.train")
  parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments after -- for the module")
  ns = parser.parse_args()
  args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
  if ns.num_processes < 1 or ns.devices_per_process < 1:
    parser.error("--num_processes and --devices_per_process must be >= 1")
  port = portpicker.pick_unused_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={ns.devices_per_process}")
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
  procs = [subprocess.Popen(
      [sys.executable, "-m", ns.module, *args, f"--coordinator_address=127.0.0.1:{port}",
       f"--num_processes={ns.num_processes}", f"--process_id={i}"], env=env, cwd=repo)
           for i in range(ns.num_processes)]
  codes = [p.wait() for p in procs]
  return next((c for c in codes if c), 0)


if __name__ == "__main__":
  sys.exit(main())
