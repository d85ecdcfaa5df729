r"""Trains an MVTrack4Gen model: ``python -m mvtrack_jax.train --config=... --workdir=...``.

Examples::

  # The CPU demo (tiny Plücker DiT + tracking head on the built-in synthetic dataset).
  python -m mvtrack_jax.train --config=configs/default.py --workdir=out/demo
  # Override any config field.
  python -m mvtrack_jax.train --config=configs/default.py --workdir=out/x \
      --config.num_train_steps=20 --config.batch_size=4
  # Explicit multi-process start (see launch/ for SLURM / TPU / local launchers).
  python -m mvtrack_jax.train --config=... --workdir=... \
      --coordinator_address=127.0.0.1:12345 --num_processes=2 --process_id=0

Rerunning with the same ``--workdir`` resumes from the newest checkpoint in
``WORKDIR/checkpoints`` that restores (onto the current mesh/device count; a damaged newer step is
moved to ``WORKDIR/checkpoints_damaged/``). Under SLURM (``srun``, > 1 task) or on a multi-host TPU
VM the process group is joined automatically.

Exit codes: 0 when the run finished; 75 (``EXIT_STOPPED``, EX_TEMPFAIL) when SIGTERM (pre-emption)
or a first Ctrl-C stopped it after a checkpoint — rerun to resume, and ``train && evaluate`` does
not evaluate an unfinished model; a second Ctrl-C aborts at once (130, no checkpoint); 2 when the config
is invalid (``run_config``: a field that does not exist, with the nearest valid name; a wrong type; a value
that cannot train — one ``error:`` line naming every such ``--config.`` field, nothing written); 1 on other
errors.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from mvtrack_jax import cli
from mvtrack_jax import run_config
from mvtrack_jax.data import video_io
from mvtrack_jax.training import distributed

EXIT_STOPPED = 75  # stopped by a signal after checkpointing (EX_TEMPFAIL: rerun to resume)

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the command's flags on absl's ``FLAGS`` (here, not at import, so tests can run ``main`` in-process beside
  other commands' flags)."""
  config_flags.DEFINE_config_file(
      "config", None, "Config file (configs/*.py); fields can be overridden with --config.x=y.", lock_config=True)
  flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, logs).")
  flags.DEFINE_string("coordinator_address", None, "host:port of process 0 for an explicit multi-process start.")
  flags.DEFINE_integer("num_processes", None, "Processes (explicit start).")
  flags.DEFINE_integer("process_id", None, "This process's rank (explicit start).")
  flags.DEFINE_list("local_device_ids", None, "Devices owned by this process (e.g. one GPU per process).")
  flags.DEFINE_string(
      "compilation_cache_dir", os.environ.get(
          "MVTRACK_COMPILATION_CACHE",
          os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                       "mvtrack_jax", "jax_compilation_cache")),
      "Persistent XLA compilation cache (a resumed or repeated run skips recompiling); '' = off.")


def enable_compilation_cache(path: str) -> None:
  """Turns on JAX's persistent compilation cache in ``path`` (executables compiling > 1 s)."""
  if not path:
    return
  import jax  # pylint: disable=g-import-not-at-top
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.config is None or not FLAGS.workdir:
    raise app.UsageError("--config and --workdir are required")
  # Before any work: a bad config value (exit 2) or a --workdir that cannot be one (exit 1) ends in one line.
  config = run_config.complete(cli.loaded_config(FLAGS["config"]))  # validated, every field present
  run_config.check_trainable(config)
  video_io.check_output_dir(FLAGS.workdir, "--workdir")
  distributed.initialize(
      FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
      None if FLAGS.local_device_ids is None else [int(i) for i in FLAGS.local_device_ids])
  enable_compilation_cache(FLAGS.compilation_cache_dir)
  # Imported after the distributed start: nothing may touch devices before it.
  from mvtrack_jax.training import trainer  # pylint: disable=g-import-not-at-top
  workdir = os.path.abspath(FLAGS.workdir)
  logging.info("config:\n%s", config)  # the full config goes to WORKDIR/config.json
  print(f"training {config.name}: {config.num_train_steps} steps, batch_size {config.batch_size}, "
        f"workdir {workdir} (config in config.json)", flush=True)
  try:
    last = trainer.train_and_evaluate(config, workdir)
  except trainer.TrainingStopped as e:
    print(e, file=sys.stderr)
    sys.exit(EXIT_STOPPED)
  # A run resumed at its last step trains nothing and has no new losses to show.
  shown = ", ".join(f"{k} {last[k]:.4g}" for k in ("loss", "loss_diff", "loss_track", "loss_corr", "loss_feat")
                    if k in last)
  shown = shown or "already finished, nothing trained (metrics.jsonl has its losses)"
  print(f"trained to step {last.get('step', config.num_train_steps)}: {shown}; checkpoints in "
        f"{os.path.join(workdir, 'checkpoints')}, metrics in {os.path.join(workdir, 'metrics.jsonl')}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
