r"""Exports inference weights from a training run: params only, no optimizer state.

``python -m mvtrack_jax.export --workdir=DIR --out=DIR2 [--format=orbax|diffusers] [--dtype=bfloat16]
[--use_ema] [--step=N]`` reads the newest (or given) checkpoint in ``DIR/checkpoints`` — only the
``params`` (or ``ema_params``) subtree is read, on the host, with no mesh — casts floating-point
leaves to ``--dtype`` and writes, all-or-nothing (a temporary folder renamed onto ``DIR2``):

``--format=orbax`` (default; what ``generate`` / ``evaluate`` / ``probe`` read):

- ``DIR2/params/``: an Orbax PyTree checkpoint of the parameter tree (``{"dit": ..., "head":
  ...}`` for MVTrack4Gen);
- ``DIR2/config.json``: the training config (model preset, objective, data resolution);
- ``DIR2/export.json``: source workdir, step, dtype, whether EMA weights were used.

``--format=diffusers`` (for PyTorch: ``WanTransformer3DModel.from_pretrained(DIR2)``):

- ``DIR2/config.json`` + ``DIR2/diffusion_pytorch_model.safetensors``: the Wan transformer in
  diffusers' names and layout (float32; ``--dtype=float16`` keeps float16), loadable with no
  missing or unexpected key;
- ``DIR2/mvtrack_modules.safetensors``: what ``WanTransformer3DModel`` has no place for — the
  camera modules under the names ``convert.wan_names`` maps (``camera_encoder.*``,
  ``blocks.N.camera_proj.*`` for Plücker cameras; ``blocks.N.cam_encoder.*``,
  ``blocks.N.projector.*`` for ReCamMaster's; ``control_adapter.*`` and RoCE's
  ``blocks.N.attn1.rope_phase_{qk,vo}.*`` for ReDirector's — the image branch of that backbone is
  diffusers' own, ``image_dim``/``added_kv_proj_dim`` in ``config.json``), PyTorch layout, and the tracking head as
  ``head.<Flax param path joined by dots>`` in Flax layout (Track4Gen's refiner likewise as ``refiner.…``), and for
  a model trained with text
  ``text.null_context`` ``(context_length, text_dim)``, the stored umT5 embedding of the empty
  prompt, zero-padded (what diffusers' ``WanPipeline`` computes itself for ``negative_prompt=""``);
  absent when there is none of these;
- ``DIR2/mvtrack_config.json`` (the training config) and ``DIR2/export.json``.

``--format=diffsynth`` (ReCamMaster's / DiffSynth's training and inference scripts):

- ``DIR2/model.safetensors``: the whole DiT under the original Wan2.1 names (``blocks.N.self_attn.q``,
  ``norm3``, ``ffn.0``, ``modulation``, ``head.head`` …) with the camera modules as they are named
  in ``convert.wan_names`` — for ``camera_mode="recammaster"`` exactly ReCamMaster's
  ``blocks.N.cam_encoder`` / ``blocks.N.projector``, for ``"redirector"`` Fun's ``img_emb``/``k_img``/
  ``control_adapter`` and ReDirector's ``self_attn.rope_phase_{qk,vo}.1``; ``convert.wan.load_original_transformer``
  reads it back;
- ``DIR2/mvtrack_modules.safetensors`` (the head and null context, if any), ``mvtrack_config.json``,
  ``export.json``.

``checkpoint_format.load_exported(DIR2)`` returns ``(params, config_dict, info)`` of an Orbax export.
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
from flax import traverse_util
from safetensors.numpy import save_file

from mvtrack_jax import checkpoint_format
from mvtrack_jax import cli
from mvtrack_jax import run_config
from mvtrack_jax.convert import checkpoint_io
from mvtrack_jax.convert import pretrained as convert_pretrained
from mvtrack_jax.convert import wan as convert_wan
from mvtrack_jax.convert import wan_names
from mvtrack_jax.data import video_io
from mvtrack_jax.training import checkpointing

_DTYPES = {"float32": np.float32, "bfloat16": jax.numpy.bfloat16, "float16": np.float16}
FORMATS = ("orbax", "diffusers", "diffsynth")

FLAGS = flags.FLAGS


def export(workdir: str, out: str, *, dtype: str = "float32", use_ema: bool = False,
           step: int | None = None, fmt: str = "orbax") -> dict[str, Any]:
  """Writes an inference checkpoint (see module docstring).

  Args:
    workdir: training run directory (has ``checkpoints/``).
    out: output directory (created; must not already hold ``params/``).
    dtype: "float32", "bfloat16" or "float16" for floating leaves.
    use_ema: export ``ema_params`` instead of ``params``.
    step: checkpoint step; default newest.
    fmt: ``"orbax"`` or ``"diffusers"`` (module docstring).

  Returns:
    The ``export.json`` record.

  Raises:
    ValueError: unknown dtype or format; FileExistsError: ``out`` exists and is not empty;
    NotADirectoryError / PermissionError: ``out`` is a file or not writable; FileNotFoundError: no
    ``workdir`` or no checkpoint; KeyError: ``use_ema`` but the run kept no EMA.
  """
  if dtype not in _DTYPES:
    raise ValueError(f"dtype={dtype!r}; expected one of {sorted(_DTYPES)}")
  if fmt not in FORMATS:
    raise ValueError(f"format={fmt!r}; expected one of {FORMATS}")
  # Fail fast: the output folder and the run directory, before the checkpoint is read.
  _check_out(out)
  if not epath.Path(workdir).is_dir():
    raise FileNotFoundError(f"--workdir {workdir}: no such folder (expected a training run directory)")
  ckpt_dir = os.path.join(workdir, "checkpoints")
  key = "ema_params" if use_ema else "params"
  step, trees = checkpoint_format.read_params(ckpt_dir, step=step, keys=(key,))
  target = _DTYPES[dtype]
  params = jax.tree.map(
      lambda x: np.asarray(x).astype(target) if np.issubdtype(np.asarray(x).dtype, np.floating)
      else np.asarray(x), trees[key])
  config = checkpoint_format.read_config(ckpt_dir, step)
  info = {"workdir": os.path.abspath(workdir), "step": int(step), "dtype": dtype, "ema": bool(use_ema)}
  if fmt in ("diffusers", "diffsynth"):
    return write_torch(out, params, config, info, fmt=fmt)
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
  if isinstance(config, ml_collections.ConfigDict):
    config = checkpointing.config_to_json_dict(config)
  info = dict(info, num_params=int(sum(np.size(x) for x in jax.tree.leaves(params))))

  def write(tmp: epath.Path) -> None:
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(tmp / "params", params)
    ckptr.wait_until_finished()
    (tmp / "config.json").write_text(json.dumps(dict(config), indent=2))
    (tmp / "export.json").write_text(json.dumps(info, indent=2))

  _write_dir_atomically(out, write)
  return info


def write_torch(out: str, params: Any, config: Mapping[str, Any] | ml_collections.ConfigDict,
                info: Mapping[str, Any], *, fmt: str = "diffusers") -> dict[str, Any]:
  """Writes ``params`` as PyTorch safetensors in diffusers' or DiffSynth's layout (module docstring),
  atomically.

  Args:
    out: output directory; must not exist or be empty.
    params: ``{"dit": ..., "head": ..., "text": ...}`` host arrays.
    config: the training config (it names the DiT preset and overrides).
    info: fields of ``export.json``.
    fmt: ``"diffusers"`` or ``"diffsynth"``.

  Raises:
    FileExistsError: ``out`` exists and is not empty; ValueError: unknown ``fmt``.
  """
  if fmt not in ("diffusers", "diffsynth"):
    raise ValueError(f"write_torch: fmt={fmt!r}; expected 'diffusers' or 'diffsynth'")
  if not isinstance(config, ml_collections.ConfigDict):
    config = ml_collections.ConfigDict(dict(config))
  diffusers_config, wan_sd, camera_sd = convert_wan.to_diffusers(params["dit"],
                                                                 run_config.parse(config).model.wan_config())
  keep = np.float16 if info.get("dtype") == "float16" else np.float32
  extra = {}
  if fmt == "diffusers":
    weights_name, weights = "diffusion_pytorch_model.safetensors", {k: v.astype(keep) for k, v in wan_sd.items()}
    extra.update(camera_sd)
  else:
    weights_name = "model.safetensors"
    weights = {k: v.astype(keep) for k, v in wan_names.to_original_names({**wan_sd, **camera_sd}).items()}
  for top in convert_pretrained.MODULE_TREES:
    for path, value in traverse_util.flatten_dict(dict(params.get(top) or {})).items():
      extra[".".join((top,) + path)] = np.ascontiguousarray(np.asarray(value, np.float32))
  info = dict(info, format=fmt, num_params=int(sum(np.size(x) for x in jax.tree.leaves(params))),
              wan_tensors=len(weights), mvtrack_tensors=len(extra))

  def write(tmp: epath.Path) -> None:
    save_file(weights, str(tmp / weights_name))
    if extra:
      save_file(extra, str(tmp / checkpoint_io.MODULES_FILE))
    if fmt == "diffusers":
      (tmp / "config.json").write_text(json.dumps(diffusers_config, indent=2))
    (tmp / "mvtrack_config.json").write_text(json.dumps(checkpointing.config_to_json_dict(config), indent=2))
    (tmp / "export.json").write_text(json.dumps(info, indent=2))

  _write_dir_atomically(out, write)
  return info


def _check_out(out: str) -> epath.Path:
  """``out`` as an absolute path, if an export can go there: a local ``out`` must be creatable and writable and not
  a file (``video_io.check_output_dir``; remote ``scheme://`` paths are left to the writer), and must not hold files.

  Raises:
    NotADirectoryError / PermissionError: ``out`` is a file or not writable; FileExistsError: not empty.
  """
  if "://" not in os.fspath(out):
    video_io.check_output_dir(out)
  out_path = epath.Path(out).absolute()
  if out_path.exists() and any(out_path.iterdir()):
    raise FileExistsError(f"export: --out {out_path} exists and is not empty; choose another --out")
  return out_path


def _write_dir_atomically(out: str, write) -> None:
  """Runs ``write(tmp)`` into a sibling temporary directory, then renames it onto ``out``, so an
  interrupted export never leaves a half-written folder behind."""
  out_path = _check_out(out)
  tmp_path = out_path.parent / f".{out_path.name}.tmp-{os.getpid()}"
  if tmp_path.exists():
    tmp_path.rmtree()
  tmp_path.mkdir(parents=True)
  try:
    write(tmp_path)
    for path in tmp_path.iterdir():  # safetensors writes 0600 files; give them the mode of any other output
      if path.is_file():
        os.chmod(path, video_io.FILE_MODE)
    if out_path.exists():
      out_path.rmdir()  # Empty (checked above).
    tmp_path.rename(out_path)
  except BaseException:
    tmp_path.rmtree(missing_ok=True)
    raise


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_string("workdir", None, "Training run directory.")
  flags.DEFINE_string("out", None, "Output directory for the inference checkpoint.")
  flags.DEFINE_enum("dtype", "float32", sorted(_DTYPES), "Parameter dtype.")
  flags.DEFINE_bool("use_ema", False, "Export the EMA parameters.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: newest).")
  flags.DEFINE_enum("format", "orbax", list(FORMATS),
                    "orbax (this project's tools), diffusers or diffsynth (PyTorch; ReCamMaster's names).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.workdir or not FLAGS.out:
    raise app.UsageError("--workdir and --out are required")
  info = export(FLAGS.workdir, FLAGS.out, dtype=FLAGS.dtype, use_ema=FLAGS.use_ema,
                step=FLAGS.step, fmt=FLAGS.format)
  print(f"exported step {info['step']} ({FLAGS.format}, {info['dtype']}{', EMA' if info['ema'] else ''}) to "
        f"{os.path.abspath(FLAGS.out)} (details in export.json)")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
