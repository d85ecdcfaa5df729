r"""Exports inference weights from a training run: params only, no optimizer state.

``python -m mvtrack_jax.export --workdir=DIR --out=DIR2 [--dtype=bfloat16] [--use_ema]
[--step=N]`` reads the newest (or given) checkpoint in ``DIR/checkpoints`` — only the ``params``
(or ``ema_params``) subtree is read, on the host, with no mesh — casts floating-point leaves to
``--dtype`` and writes:

- ``DIR2/params/``: an Orbax PyTree checkpoint of the parameter tree (``{"dit": ..., "head":
  ...}`` for MVTrack4Gen);
- ``DIR2/config.json``: the training config (model preset, objective, data resolution);
- ``DIR2/export.json``: source workdir, step, dtype, whether EMA weights were used.

``load_exported(DIR2)`` returns ``(params, config_dict, info)`` for generation/evaluation code.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import app
from absl import flags
from etils import epath

from mvtrack_jax.training import checkpointing

_DTYPES = {"float32": np.float32, "bfloat16": jax.numpy.bfloat16, "float16": np.float16}

FLAGS = flags.FLAGS


def export(workdir: str, out: str, *, dtype: str = "float32", use_ema: bool = False,
           step: int | None = None) -> dict[str, Any]:
  """Writes an inference checkpoint (see module docstring).

  Args:
    workdir: training run directory (has ``checkpoints/``).
    out: output directory (created; must not already hold ``params/``).
    dtype: "float32", "bfloat16" or "float16" for floating leaves.
    use_ema: export ``ema_params`` instead of ``params``.
    step: checkpoint step; default newest.

  Returns:
    The ``export.json`` record.

  Raises:
    ValueError: unknown dtype; FileExistsError: ``out/params`` exists; FileNotFoundError: no
    checkpoint; KeyError: ``use_ema`` but the run kept no EMA.
  """
  if dtype not in _DTYPES:
    raise ValueError(f"dtype={dtype!r}; expected one of {sorted(_DTYPES)}")
  ckpt_dir = os.path.join(workdir, "checkpoints")
  key = "ema_params" if use_ema else "params"
  step, trees = checkpointing.restore_params_to_host(ckpt_dir, step=step, keys=(key,))
  target = _DTYPES[dtype]
  params = jax.tree.map(
      lambda x: np.asarray(x).astype(target) if np.issubdtype(np.asarray(x).dtype, np.floating)
      else np.asarray(x), trees[key])
  config = checkpointing.Checkpointer(ckpt_dir, async_save=False).restore_config(step)
  info = {"workdir": os.path.abspath(workdir), "step": int(step), "dtype": dtype, "ema": bool(use_ema)}
  return write_export(out, params, config, info)


def write_export(out: str, params: Any, config: Mapping[str, Any] | ml_collections.ConfigDict,
                 info: Mapping[str, Any]) -> dict[str, Any]:
  """Writes ``params`` + ``config`` as an inference checkpoint, atomically (module docstring).

  Args:
    out: output directory; must not exist or be empty.
    params: parameter pytree of host arrays (``{"dit": ..., "head": ...}``).
    config: the training config (``ConfigDict`` or JSON-able dict).
    info: fields of ``export.json`` (``step`` at least); ``num_params`` is added.

  Returns:
    The ``export.json`` record.

  Raises:
    FileExistsError: ``out`` exists and is not empty.
  """
  out_path = epath.Path(out).absolute()
  if out_path.exists() and any(out_path.iterdir()):
    raise FileExistsError(f"export: --out {out_path} exists and is not empty; choose another --out")
  if isinstance(config, ml_collections.ConfigDict):
    config = checkpointing.config_to_json_dict(config)
  info = dict(info, num_params=int(sum(np.size(x) for x in jax.tree.leaves(params))))
  # Everything is written into a sibling temporary directory that is renamed onto --out at the
  # end, so an interrupted export never leaves a half-written inference checkpoint behind.
  tmp_path = out_path.parent / f".{out_path.name}.tmp-{os.getpid()}"
  if tmp_path.exists():
    tmp_path.rmtree()
  tmp_path.mkdir(parents=True)
  try:
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(tmp_path / "params", params)
    ckptr.wait_until_finished()
    (tmp_path / "config.json").write_text(json.dumps(dict(config), indent=2))
    (tmp_path / "export.json").write_text(json.dumps(info, indent=2))
    if out_path.exists():
      out_path.rmdir()  # Empty (checked above).
    tmp_path.rename(out_path)
  except BaseException:
    tmp_path.rmtree(missing_ok=True)
    raise
  return info


def load_exported(path: str) -> tuple[Any, ml_collections.ConfigDict, dict[str, Any]]:
  """Loads an exported inference checkpoint.

  Args:
    path: directory written by ``export``.

  Returns:
    ``(params, config, info)``: params as host numpy arrays (exported dtype), the training
    config as a ``ConfigDict``, and ``export.json``.

  Raises:
    FileNotFoundError: ``path`` is not an export directory.
  """
  p = epath.Path(path).absolute()
  if not (p / "params").exists() or not (p / "config.json").exists():
    raise FileNotFoundError(f"{p} is not an export directory (expected params/ and config.json)")
  meta = ocp.StandardCheckpointer().metadata(p / "params")
  tree = meta.item_metadata.tree if hasattr(meta, "item_metadata") else meta
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  params = ocp.PyTreeCheckpointer().restore(
      p / "params", args=ocp.args.PyTreeRestore(item=tree, restore_args=restore_args))
  config = ml_collections.ConfigDict(json.loads((p / "config.json").read_text()))
  info = json.loads((p / "export.json").read_text()) if (p / "export.json").exists() else {}
  return params, config, info


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_string("workdir", None, "Training run directory.")
  flags.DEFINE_string("out", None, "Output directory for the inference checkpoint.")
  flags.DEFINE_enum("dtype", "float32", sorted(_DTYPES), "Parameter dtype.")
  flags.DEFINE_bool("use_ema", False, "Export the EMA parameters.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: newest).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.workdir or not FLAGS.out:
    raise app.UsageError("--workdir and --out are required")
  info = export(FLAGS.workdir, FLAGS.out, dtype=FLAGS.dtype, use_ema=FLAGS.use_ema,
                step=FLAGS.step)
  print(json.dumps(info, indent=2))


if __name__ == "__main__":
  define_flags()
  app.run(main)
