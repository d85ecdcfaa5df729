"""Shared fixtures: a tiny untrained MVTrack4Gen checkpoint for the inference entry points (helpers the tests
share are in ``helpers.py``)."""

import os
import shutil
import subprocess

import flax.linen as nn
import jax
import numpy as np
import pytest

from tests.helpers import load_config

# The integration layer: whole commands (in-process or as subprocesses), training loops with checkpoints and resume,
# multi-device and multi-process runs, the paper configs' smoke sequences. Everything else is the unit layer
# (`make test-unit`); `make test` runs both.
INTEGRATION = {
    "test_cli_errors.py", "test_compare_cli.py", "test_evaluate_cli.py", "test_evaluate_protocols.py",
    "test_generate_cli.py", "test_probe_cli.py", "test_redirector_smoke.py", "data/test_encode_latents_cli.py",
    "data/test_latent_cache.py", "convert/test_wan_export.py", "training/test_default_config.py",
    "training/test_no_data_loss.py", "training/test_pretrained_init.py", "training/test_trainer.py",
}


def pytest_collection_modifyitems(config, items):
  del config
  tests_dir = os.path.dirname(os.path.abspath(__file__))
  for item in items:
    if os.path.relpath(str(item.path), tests_dir) in INTEGRATION:
      item.add_marker(pytest.mark.integration)


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
