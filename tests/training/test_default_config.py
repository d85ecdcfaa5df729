"""The real MVTrack4Gen task through the entry points: ``python -m mvtrack_jax.train`` on the
default config's test variant (tiny synthetic dataset, tiny Plücker DiT + tracking head, full
objective) learns, is reproduced exactly by a killed-and-resumed run, writes the promised files,
and exports weights.

The runs are subprocesses of the real entry point sharing the suite's persistent compilation
cache, so a program compiles once for the whole run (the resumed run only reads it back)."""

import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax import checkpoint_format
from mvtrack_jax.training import metric_writers
from tests.helpers import REPO, cpu_env, shared_dir
STEPS = 6
BASE_FLAGS = ["--config=configs/default.py:test", f"--config.num_train_steps={STEPS}",
              f"--config.eval_every_steps={STEPS}", "--config.checkpoint_every_steps=4"]
# Tracing the MV-TAP head costs ~10-25 s per process on a busy 2-core CPU (compiling it ~2 min on
# a cold cache), so the default suite runs the objective without the head (L_diff + 0.01 L_corr at
# probe layer 1); the full objective runs in the `slow` tests below.
WITHOUT_HEAD = ["--config.objective.lambda_track=0"]
LOSS_KEYS = ("loss", "loss_diff", "loss_track", "loss_corr", "grad_norm", "param_norm")


def start_training(workdir, *flags, devices=1):
  return subprocess.Popen(
      [sys.executable, "-m", "mvtrack_jax.train", f"--workdir={workdir}", *BASE_FLAGS, *flags],
      cwd=REPO, env=cpu_env(devices), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc):
  _, err = proc.communicate(timeout=900)
  assert proc.returncode == 0, err[-5000:]


def train(workdir, *flags, devices=1):
  finish(start_training(workdir, *flags, devices=devices))


def strip_timing(records):
  return [{k: v for k, v in r.items() if k not in metric_writers.TIMING_KEYS} for r in records]


def assert_same_losses(got, want):
  assert [r["step"] for r in got] == [r["step"] for r in want]
  for a, b in zip(want, got):
    for key in LOSS_KEYS:
      if key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{key} at step {a['step']}")


def check_run(workdir, *, with_head):
  records = metric_writers.read_jsonl(workdir / "metrics.jsonl")
  assert [r["step"] for r in records] == list(range(1, STEPS + 1))
  for r in records:
    for key in ("loss", "loss_diff", "loss_track", "loss_corr", "grad_norm", "learning_rate",
                "steps_per_sec", "corr_token_hit_rate/layer_1"):
      assert key in r, key
    assert np.isfinite(r["loss"]) and r["nonfinite_total"] == 0 and r["loss_corr"] >= 0
    assert (r["loss_track"] > 0) == with_head and ("head_aj" in r) == with_head
  assert sorted(os.listdir(workdir / "checkpoints")) == ["4", "6"]
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir / "tensorboard"))
  assert (workdir / "config.json").exists()
  # Validation loss on the same batches and noise, before training and after STEPS steps.
  evals = {r["step"]: r for r in metric_writers.read_jsonl(workdir / "eval_metrics.jsonl")}
  assert set(evals) == {0, STEPS}
  assert evals[STEPS]["loss_diff"] < evals[0]["loss_diff"]
  assert evals[STEPS]["loss"] < evals[0]["loss"]


def _start_runs(root):
  procs = [start_training(root / "one_device", *WITHOUT_HEAD),
           start_training(root / "four_devices", *WITHOUT_HEAD, "--config.mesh.shape=(1,2,2)", devices=4)]
  for p in procs:
    finish(p)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, worker_id):
  """The default config's test variant (without head) on 1 device and on a 4-device 1×2×2 mesh, started together
  once per pytest run (``helpers.shared_dir``: the module's tests may run on different workers)."""
  root = shared_dir(tmp_path_factory, worker_id, "default_config_runs", _start_runs)
  return root / "one_device", root / "four_devices"


def killed_after(workdir, dest, step: int):
  """``dest``: what a run of ``workdir``'s flags leaves when it is killed while computing step ``step + 1``: its
  checkpoints up to ``step`` committed (later ones never written) and every metric logged up to ``step``."""
  shutil.copytree(workdir, dest)
  for name in os.listdir(dest / "checkpoints"):
    if int(name) > step:
      shutil.rmtree(dest / "checkpoints" / name)
  for name in ("metrics.jsonl", "eval_metrics.jsonl"):
    metric_writers.truncate_jsonl(str(dest / name), step)


def test_run_learns_and_leaves_metrics_tensorboard_checkpoints_and_config(runs):
  check_run(runs[0], with_head=False)


def test_fsdp_and_tensor_sharded_run_matches_one_device(runs):
  one, four = runs
  for name in ("metrics.jsonl", "eval_metrics.jsonl"):
    assert_same_losses(metric_writers.read_jsonl(four / name), metric_writers.read_jsonl(one / name))


def test_killed_and_resumed_run_reproduces_metrics_exactly(runs, tmp_path):
  one = runs[0]
  killed = tmp_path / "killed"
  killed_after(one, killed, 5)   # last checkpoint at step 4, step 5 logged: resuming redoes step 5 and logs it once
  assert sorted(os.listdir(killed / "checkpoints")) == ["4"]
  train(killed, *WITHOUT_HEAD)   # same workdir: resumes model, optimizer and data position
  for name in ("metrics.jsonl", "eval_metrics.jsonl"):
    assert strip_timing(metric_writers.read_jsonl(killed / name)) == strip_timing(
        metric_writers.read_jsonl(one / name)), name


def test_export_round_trip(runs, tmp_path):
  out = tmp_path / "export"
  proc = subprocess.run(
      [sys.executable, "-m", "mvtrack_jax.export", f"--workdir={runs[0]}", f"--out={out}",
       "--dtype=bfloat16"], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  # Quiet by default: one line saying what was written and where, nothing on stderr.
  assert proc.stdout.strip().splitlines() == [f"exported step {STEPS} (orbax, bfloat16) to {out} (details in export.json)"]
  assert proc.stderr == "", proc.stderr[-3000:]
  params, config, info = checkpoint_format.load_exported(str(out))
  assert set(params) == {"dit"} and info["step"] == STEPS
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))
  assert config.model.preset == "tiny-pixel" and config.objective.corr_layers == [1]
  # Parameters only: no optimizer state was exported.
  assert info["num_params"] == sum(np.size(x) for x in jax.tree.leaves(params))


@pytest.mark.slow
def test_full_objective_learns_resumes_exactly_and_matches_on_eight_devices(tmp_path):
  full, resumed, eight = tmp_path / "full", tmp_path / "resumed", tmp_path / "eight"
  procs = [start_training(full),
           start_training(resumed, "--config.stop_after_steps=3"),
           start_training(eight, "--config.mesh.shape=(1,2,2)", devices=4)]
  for p in procs:
    finish(p)
  check_run(full, with_head=True)
  train(resumed)
  for name in ("metrics.jsonl", "eval_metrics.jsonl"):
    assert strip_timing(metric_writers.read_jsonl(resumed / name)) == strip_timing(
        metric_writers.read_jsonl(full / name)), name
    assert_same_losses(metric_writers.read_jsonl(eight / name),
                       metric_writers.read_jsonl(full / name))


@pytest.mark.slow
def test_eight_device_2x2x2_mesh_matches_one_device(tmp_path):
  # Batch 4 over data×fsdp = 4 (the test variant's 2 validation scenes cannot fill a batch of 4,
  # so no evaluation here).
  flags = ["--config.batch_size=4", "--config.eval_every_steps=0"]
  procs = [start_training(tmp_path / "one", *flags),
           start_training(tmp_path / "eight", *flags, "--config.mesh.shape=(2,2,2)", devices=8)]
  for p in procs:
    finish(p)
  assert_same_losses(metric_writers.read_jsonl(tmp_path / "eight" / "metrics.jsonl"),
                     metric_writers.read_jsonl(tmp_path / "one" / "metrics.jsonl"))
