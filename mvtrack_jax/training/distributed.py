"""Multi-process start-up: ``jax.distributed.initialize`` for SLURM, TPU pods or explicit flags.

One JAX process per host (TPU) or per GPU (SLURM, ``srun --ntasks-per-node=<GPUs>``) joins a
coordinator before any device is touched. Three ways in:

- explicit: ``coordinator_address`` (``host:port``), ``num_processes``, ``process_id`` (the local
  two-process launcher and custom clusters);
- SLURM: inside a job step with more than one task (``SLURM_NTASKS > 1``) JAX's cluster
  auto-detection reads the coordinator, process count/id and ``local_device_ids=[SLURM_LOCALID]``;
- TPU VM pods: more than one host in ``TPU_WORKER_HOSTNAMES`` → auto-detection from the
  TPU metadata.

Otherwise nothing is done (single process). On CPU the cross-process collectives need gloo.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import jax
from absl import logging


def detect_cluster(environ: Mapping[str, str] | None = None) -> str | None:
  """Names the multi-process cluster this process runs in, or ``None``.

  Args:
    environ: environment (default ``os.environ``).

  Returns:
    ``"slurm"`` (a SLURM step with > 1 task), ``"tpu"`` (a multi-host TPU VM slice) or ``None``.
  """
  env = os.environ if environ is None else environ
  if int(env.get("SLURM_NTASKS", env.get("SLURM_STEP_NUM_TASKS", "1")) or 1) > 1:
    return "slurm"
  hosts = env.get("TPU_WORKER_HOSTNAMES", "")
  if len([h for h in hosts.split(",") if h]) > 1:
    return "tpu"
  return None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None,
               local_device_ids: Sequence[int] | None = None) -> bool:
  """Joins the process group when running multi-process; no-op for a single process.

  Must run before any JAX computation or device query.

  Args:
    coordinator_address: ``host:port`` of process 0's coordinator (explicit mode).
    num_processes: total processes (explicit mode).
    process_id: this process's rank in ``[0, num_processes)`` (explicit mode).
    local_device_ids: devices this process owns (e.g. ``[0]`` with one task per GPU when the
      scheduler does not set it; also read from ``JAX_LOCAL_DEVICE_IDS`` by JAX).

  Returns:
    Whether ``jax.distributed.initialize`` was called.

  Raises:
    ValueError: explicit mode with missing or inconsistent arguments.
  """
  explicit = coordinator_address is not None
  if explicit:
    if num_processes is None or process_id is None:
      raise ValueError(
          f"coordinator_address={coordinator_address!r} needs num_processes and process_id "
          f"(got {num_processes}, {process_id})")
    if not 0 <= process_id < num_processes:
      raise ValueError(f"process_id={process_id} not in [0, num_processes={num_processes})")
  cluster = None if explicit else detect_cluster()
  if not explicit and cluster is None:
    return False
  # Cross-process collectives on the CPU backend (local tests, CPU clusters); GPUs/TPUs ignore it.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = {}
  if local_device_ids is not None:
    kwargs["local_device_ids"] = list(local_device_ids)
  if explicit:
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)
  else:
    jax.distributed.initialize(**kwargs)
  logging.info("jax.distributed initialised (%s): process %d of %d, %d local / %d global devices",
               "explicit" if explicit else cluster, jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  return True
