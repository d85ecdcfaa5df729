"""Shared fixtures: a tiny untrained MVTrack4Gen checkpoint for the inference entry points (helpers the tests
share are in ``helpers.py``)."""

import os
import shutil
import subprocess
import tempfile

# The suite compiles hundreds of small programs and runs each a few times, so XLA compile time is most of its CPU
# time. Two XLA:CPU settings cut it: LLVM at -O0 and the legacy fusion code generator instead of the MLIR fusion
# emitters (4 test modules, 2 workers: 267 s of CPU at -O0 alone, 178 s with both; docs/design.md §5). Neither
# changes XLA's HLO passes, which decide the numerics (results agree to float32 rounding). Set before jax creates its
# backend, and inherited by the commands tests start.
TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
os.environ["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), *TEST_XLA_FLAGS]))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mvtrack_jax import export  # noqa: E402
from mvtrack_jax.training import tasks  # noqa: E402
from tests.helpers import load_config, shared_dir  # noqa: E402

# The integration layer: whole commands (in-process or as subprocesses), training loops with checkpoints and resume,
# multi-device and multi-process runs, the paper configs' smoke sequences. Everything else is the unit layer
# (`make test-unit`); `make test` runs both.
INTEGRATION = {
    "test_cli_errors.py", "test_compare_cli.py", "test_evaluate_cli.py", "test_evaluate_protocols.py",
    "test_generate_cli.py", "test_probe_cli.py", "test_redirector_smoke.py", "data/test_encode_latents_cli.py",
    "data/test_latent_cache.py", "convert/test_wan_export.py", "training/test_default_config.py",
    "training/test_no_data_loss.py", "training/test_pretrained_init.py", "training/test_trainer.py",
}


# One persistent XLA compilation cache per pytest run, shared by its workers and by the commands tests start (`train`
# reads MVTRACK_COMPILATION_CACHE): many tests compile the same train, eval and sampling programs, and every compile
# after the first becomes a file read. Fresh per run, so no run reuses an earlier run's executables (a developer's
# machine measures what CI's fresh one does) and nothing is left behind.
CACHE_ENV = "MVTRACK_COMPILATION_CACHE"


def pytest_configure(config):
  if not hasattr(config, "workerinput"):   # the controller, or a run without xdist: its workers inherit the variable
    config.mvtrack_cache = tempfile.mkdtemp(prefix="mvtrack-test-xla-cache-")
    os.environ[CACHE_ENV] = config.mvtrack_cache
  jax.config.update("jax_compilation_cache_dir", os.environ[CACHE_ENV])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def pytest_unconfigure(config):
  if getattr(config, "mvtrack_cache", None):
    shutil.rmtree(config.mvtrack_cache, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
  del config
  tests_dir = os.path.dirname(os.path.abspath(__file__))
  for item in items:
    if os.path.relpath(str(item.path), tests_dir) in INTEGRATION:
      item.add_marker(pytest.mark.integration)


def _export_initial_params(config, out) -> None:
  """Writes an export directory of ``config``'s initial parameters (no training) to ``out``."""
  task = tasks.build_task(config)
  params = jax.tree.map(np.asarray, jax.jit(lambda r: nn.unbox(task.init_params(r)))(jax.random.key(0)))
  export.write_export(str(out), params, config, {"step": 0, "dtype": "float32", "ema": False})


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, worker_id) -> str:
  """An export directory of ``configs/default.py:test`` at its initial parameters (DiT + head).

  Tiny-pixel DiT, tiny MV-TAP head, 4 frames of 32×32 crops of the tiny synthetic dataset (32×48).
  Built from ``init_params`` (no training), ~15 s of CPU once per run (``helpers.shared_dir``).
  """
  config = load_config("default.py", "test")
  return str(shared_dir(tmp_path_factory, worker_id, "tiny", lambda d: _export_initial_params(config, d / "export"))
             / "export")


@pytest.fixture(scope="session")
def tiny_baseline_checkpoint(tmp_path_factory, worker_id) -> str:
  """The diffusion-only twin of ``tiny_checkpoint`` (``configs/default_diffusion_only.py:test``, no head)."""
  config = load_config("default_diffusion_only.py", "test")
  return str(shared_dir(tmp_path_factory, worker_id, "tiny_baseline",
                        lambda d: _export_initial_params(config, d / "export")) / "export")


@pytest.fixture(scope="session")
def tiny_track4gen_checkpoint(tmp_path_factory, worker_id) -> str:
  """The Track4Gen twin of ``tiny_checkpoint`` (``configs/default_track4gen.py:test``: refiner at block 1, no head)."""
  config = load_config("default_track4gen.py", "test")
  return str(shared_dir(tmp_path_factory, worker_id, "tiny_track4gen",
                        lambda d: _export_initial_params(config, d / "export")) / "export")


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
