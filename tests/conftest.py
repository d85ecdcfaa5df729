"""Shared fixtures: a tiny untrained MVTrack4Gen checkpoint for the inference entry points."""

import contextlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys

from absl import flags
import flax.linen as nn
import jax
import numpy as np
import pytest

from mvtrack_jax import cli
from mvtrack_jax import run_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def _command_flags(module, args):
  """``module``'s flags defined on absl's ``FLAGS`` and ``sys.argv`` set as ``python -m module args`` would
  (``--config.x`` overrides are read from it), both undone afterwards."""
  names, was_parsed, saved_argv = set(flags.FLAGS), flags.FLAGS.is_parsed(), sys.argv
  sys.argv = [module.__name__, *args]
  try:
    module.define_flags()
    yield sys.argv
  finally:
    sys.argv = saved_argv
    for name in set(flags.FLAGS) - names:
      delattr(flags.FLAGS, name)
    if not was_parsed:
      flags.FLAGS.unparse_flags()


def run_cli(module, *args):
  """Runs ``module.main`` in this process as ``python -m module args`` would, flags parsed from ``args`` by absl
  (``module.define_flags()``), so a command's fail-fast checks are tested through its entry point in well under a
  second (a subprocess pays seconds of imports). Exceptions propagate (see ``run_command`` for the user's view)."""
  with _command_flags(module, args) as argv:
    return module.main(flags.FLAGS(argv))


def run_command(module, *args) -> tuple[int, str, str]:
  """``(exit code, stdout, stderr)`` of ``python -m module args`` run in this process as ``cli.run`` runs it: flag
  parsing (``cli.parse_flags``) and ``main`` under the project's user-error handling (``cli.guarded``)."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _command_flags(module, args) as argv:
    try:
      cli.guarded(module.main)(cli.parse_flags(argv))
      code = 0
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else 1
  return code, out.getvalue(), err.getvalue()


def load_config(name: str, arg: str | None = None):
  """``get_config(arg)`` of ``configs/<name>``, validated and completed as every entry point sees it
  (``run_config.complete``)."""
  spec = importlib.util.spec_from_file_location(f"configs_{name[:-3]}", os.path.join(REPO, "configs", name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return run_config.complete(module.get_config(arg))


def _export_initial_params(config, out: str) -> str:
  """Writes an export directory of ``config``'s initial parameters (no training)."""
  from mvtrack_jax import export  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.training import tasks  # pylint: disable=g-import-not-at-top
  task = tasks.build_task(config)
  params = jax.tree.map(np.asarray, jax.jit(lambda r: nn.unbox(task.init_params(r)))(jax.random.key(0)))
  export.write_export(out, params, config, {"step": 0, "dtype": "float32", "ema": False})
  return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
  """An export directory of ``configs/default.py:test`` at its initial parameters (DiT + head).

  Tiny-pixel DiT, tiny MV-TAP head, 4 frames of 32×32 crops of the tiny synthetic dataset (32×48).
  Built from ``init_params`` (no training), ~15 s of CPU once per test worker.
  """
  return _export_initial_params(load_config("default.py", "test"), str(tmp_path_factory.mktemp("tiny") / "export"))


@pytest.fixture(scope="session")
def tiny_baseline_checkpoint(tmp_path_factory) -> str:
  """The diffusion-only twin of ``tiny_checkpoint`` (``configs/default_diffusion_only.py:test``, no head)."""
  return _export_initial_params(load_config("default_diffusion_only.py", "test"),
                                str(tmp_path_factory.mktemp("tiny_baseline") / "export"))


@pytest.fixture
def locked_dir(tmp_path):
  """A folder no one may write in (``tmp_path/locked``), for "not writable" errors.

  Mode 0o500 for a normal user. Root ignores file permissions, so as root (CI) the folder is made immutable
  (``chattr +i``: writing, creating and deleting in it fail with EPERM, which ``os.access`` reports too); only
  where neither works is the test skipped.
  """
  locked = tmp_path / "locked"
  locked.mkdir(mode=0o500)
  immutable = False
  if os.geteuid() == 0:
    done = subprocess.run(["chattr", "+i", str(locked)], capture_output=True, check=False) if shutil.which(
        "chattr") else None
    if done is None or done.returncode != 0:
      pytest.skip("running as root, which ignores file permissions, and chattr +i is not available here")
    immutable = True
  try:
    yield locked
  finally:
    if immutable:
      subprocess.run(["chattr", "-i", str(locked)], check=True)
    locked.chmod(0o700)
