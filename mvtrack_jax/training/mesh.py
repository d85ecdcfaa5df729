"""Device mesh, logical-axis shardings and global batches: how arrays are laid out on devices.

The trainer runs on a 3-axis device mesh ``("data", "fsdp", "tensor")`` built from the config
(sizes may be ``-1``: "all remaining devices"). Axis types are ``Auto`` so Flax linen's logical
partitioning (``nn.logical_to_mesh_sharding``) and XLA's sharding propagation work; meshes are
activated with ``jax.set_mesh`` (``with mesh:`` is deprecated in jax ≥ 0.10).

- Parameters and optimizer state are sharded by the model's *logical* axis names mapped onto
  mesh axes by rules (``(("embed", "fsdp"), ("mlp", "tensor"), ...)``), as in MaxText and
  maxdiffusion.
- Batches are sharded along their leading (example) axis over ``data × fsdp``; every process
  loads only its own examples and the global array is assembled with
  ``jax.make_array_from_process_local_data`` (never ``device_put`` of per-host data onto a
  global sharding, which would silently treat each host's shard as the whole batch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

MESH_AXES: tuple[str, ...] = ("data", "fsdp", "tensor")
# Mesh axes the example (batch) dimension is split over.
BATCH_AXES: tuple[str, ...] = ("data", "fsdp")


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
  """Replaces one ``-1`` entry of a mesh shape by the number of remaining devices.

  Args:
    shape: per-axis sizes, positive ints and at most one ``-1``.
    num_devices: total number of devices the mesh must cover.

  Returns:
    A tuple of positive ints whose product is ``num_devices``.

  Raises:
    ValueError: more than one ``-1``, a size < 1 (other than ``-1``), or a product that does not
      equal (or, with ``-1``, divide) ``num_devices``.
  """
  shape = tuple(int(s) for s in shape)
  if sum(s == -1 for s in shape) > 1:
    raise ValueError(f"mesh shape {shape}: at most one axis may be -1")
  if any(s < 1 and s != -1 for s in shape):
    raise ValueError(f"mesh shape {shape}: sizes must be positive or -1")
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if num_devices % known:
      raise ValueError(
          f"mesh shape {shape}: fixed axes (product {known}) do not divide the "
          f"{num_devices} available devices")
    shape = tuple(num_devices // known if s == -1 else s for s in shape)
  if math.prod(shape) != num_devices:
    raise ValueError(
        f"mesh shape {shape} covers {math.prod(shape)} devices, but {num_devices} are "
        "available; use -1 for one axis to take the rest")
  return shape


def make_mesh(shape: Sequence[int] = (-1, 1, 1),
              axes: Sequence[str] = MESH_AXES,
              devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
  """Builds a device mesh with ``Auto`` axis types (works on jax 0.10 and 0.11).

  Args:
    shape: sizes per axis (one may be ``-1``), e.g. ``(-1, 1, 1)`` = pure data parallelism.
    axes: axis names, same length as ``shape``; default ``("data", "fsdp", "tensor")``.
    devices: devices to use; default all global devices (``jax.devices()``).

  Returns:
    A ``jax.sharding.Mesh``. Activate it with ``jax.set_mesh(mesh)``.

  Raises:
    ValueError: ``shape`` and ``axes`` lengths differ or the shape does not fit the devices.
  """
  if len(shape) != len(axes):
    raise ValueError(f"mesh shape {tuple(shape)} and axes {tuple(axes)} differ in length")
  devices = list(jax.devices() if devices is None else devices)
  resolved = resolve_mesh_shape(shape, len(devices))
  return jax.make_mesh(
      resolved, tuple(axes), axis_types=(jax.sharding.AxisType.Auto,) * len(axes),
      devices=devices)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Sharding of batch arrays: leading axis over ``data × fsdp``, the rest replicated."""
  axes = tuple(a for a in BATCH_AXES if a in mesh.axis_names)
  return NamedSharding(mesh, P(axes))


def num_batch_shards(mesh: jax.sharding.Mesh) -> int:
  """Number of slices the example axis is split into (product of the batch mesh axes)."""
  return math.prod(mesh.shape[a] for a in BATCH_AXES if a in mesh.axis_names)


def global_batch_size(batch_size: int, mesh: jax.sharding.Mesh) -> int:
  """The global batch of ``config.batch_size``: ``> 0`` the global batch itself; ``−n`` means ``n``
  examples per slice of the batch axes (per device with a data/FSDP mesh), so a config runs as
  printed on one GPU or on a node of eight (the paper config: ``−1``, one clip per GPU as ReCamMaster and MVTrack4Gen train: 4 on the paper's 4 H100s).

  Raises:
    ValueError: ``batch_size == 0``.
  """
  if batch_size == 0:
    raise ValueError("batch_size=0: expected a global batch (> 0) or -n for n examples per device")
  return batch_size if batch_size > 0 else -batch_size * num_batch_shards(mesh)


def check_batch_size(global_batch_size: int, mesh: jax.sharding.Mesh) -> int:
  """Validates a global batch size and returns the per-process batch size.

  Raises:
    ValueError: the batch does not split evenly over the batch mesh axes or processes.
  """
  shards = num_batch_shards(mesh)
  if global_batch_size % shards:
    raise ValueError(
        f"batch_size={global_batch_size} is not divisible by the data×fsdp mesh size {shards}")
  if global_batch_size % jax.process_count():
    raise ValueError(
        f"batch_size={global_batch_size} is not divisible by the {jax.process_count()} processes")
  return global_batch_size // jax.process_count()


def make_global_batch(local_batch: Mapping[str, np.ndarray],
                      mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Turns this process's numpy batch into global ``jax.Array``s sharded over ``data × fsdp``.

  Args:
    local_batch: name → array with the per-process examples on axis 0 (the same leading size
      on every process; global size = local size × ``jax.process_count()``).
    mesh: the training mesh.

  Returns:
    name → global ``jax.Array`` of shape ``(B_global, ...)`` with ``batch_sharding(mesh)``.
  """
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}


def logical_to_shardings(abstract_boxed: Any, mesh: jax.sharding.Mesh,
                         rules: Sequence[tuple[str, Any]]) -> Any:
  """Maps a pytree carrying Flax logical-axis boxes to ``NamedSharding``s on ``mesh``.

  Args:
    abstract_boxed: output of ``jax.eval_shape`` of an init function whose leaves are
      ``nn.LogicallyPartitioned`` boxes (unboxed leaves are replicated).
    mesh: target mesh.
    rules: logical name → mesh axis (or ``None``) pairs.

  Returns:
    A pytree of ``NamedSharding`` with the structure of ``nn.unbox(abstract_boxed)``.
  """
  specs = nn.get_partition_spec(abstract_boxed)
  return nn.logical_to_mesh_sharding(specs, mesh, tuple(rules))
