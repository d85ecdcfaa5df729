"""Subprocess entry for multi-device / multi-process trainer tests on the toy task.

``python -m tests.training.run_toy WORKDIR DEVICES MESH [COORDINATOR NUM_PROCESSES PROCESS_ID]
[key=value ...]`` fakes ``DEVICES`` CPU devices (set before JAX is imported), optionally joins a
localhost process group, and trains ``toy_task`` with mesh ``MESH`` (e.g. ``2,2,2``). Extra
``key=value`` pairs override toy config fields (values parsed as Python literals).
"""

import ast
import os
import sys


def main(argv):
  workdir, devices, mesh = argv[1], int(argv[2]), tuple(int(s) for s in argv[3].split(","))
  rest = argv[4:]
  dist = None
  if rest and ":" in rest[0]:
    dist, rest = (rest[0], int(rest[1]), int(rest[2])), rest[3:]
  os.environ["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"),
                                                  f"--xla_force_host_platform_device_count={devices}"]))
  os.environ["JAX_PLATFORMS"] = "cpu"
  from mvtrack_jax.training import distributed  # pylint: disable=g-import-not-at-top
  if dist is not None:
    distributed.initialize(*dist)
  from mvtrack_jax.training import trainer  # pylint: disable=g-import-not-at-top
  from tests.training import toy_task  # pylint: disable=g-import-not-at-top
  overrides = {k: ast.literal_eval(v) for k, v in (a.split("=", 1) for a in rest)}
  config = toy_task.toy_config(**{"mesh.shape": mesh, **overrides})
  trainer.train_and_evaluate(config, workdir, task=toy_task.make_task())


if __name__ == "__main__":
  main(sys.argv)
