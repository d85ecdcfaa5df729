"""Trainer infrastructure on a small stand-in task: sharding equivalence (1 vs 8 devices, 1 vs 2
processes), exact resume (also onto another mesh), non-finite handling, frozen parameters,
metric files and export."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from optax.tree import norm as optax_norm
import portpicker
import pytest

from mvtrack_jax import checkpoint_format
from mvtrack_jax import export
from mvtrack_jax.training import mesh as mesh_lib
from mvtrack_jax.training import metric_writers
from mvtrack_jax.training import optimizer as optimizer_lib
from mvtrack_jax.training import train_state as state_lib
from mvtrack_jax.training import trainer
from tests.training import toy_task

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOSS_KEYS = ("loss", "loss_diff", "loss_track", "grad_norm", "param_norm")


def _strip_timing(records):
  return [{k: v for k, v in r.items() if k not in metric_writers.TIMING_KEYS} for r in records]


def _run_toy(workdir, devices, mesh, *extra, dist=None):
  args = [sys.executable, "-m", "tests.training.run_toy", str(workdir), str(devices), mesh]
  if dist is not None:
    args += [str(a) for a in dist]
  env = dict(os.environ, PYTHONPATH=REPO)
  return subprocess.Popen(args + list(extra), cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _wait(proc, timeout=240):
  out, _ = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, out[-4000:]


@pytest.fixture(scope="module")
def single_device_run(tmp_path_factory):
  """The uninterrupted reference run on one CPU device (6 steps, eval, EMA, checkpoints)."""
  workdir = tmp_path_factory.mktemp("single")
  trainer.train_and_evaluate(toy_task.toy_config(), str(workdir), task=toy_task.make_task())
  return workdir


def test_resolve_mesh_shape():
  assert mesh_lib.resolve_mesh_shape((-1, 1, 1), 8) == (8, 1, 1)
  assert mesh_lib.resolve_mesh_shape((2, -1, 2), 8) == (2, 2, 2)
  with pytest.raises(ValueError, match="at most one"):
    mesh_lib.resolve_mesh_shape((-1, -1, 1), 8)
  with pytest.raises(ValueError, match="do not divide"):
    mesh_lib.resolve_mesh_shape((3, -1, 1), 8)
  with pytest.raises(ValueError, match="covers 4 devices"):
    mesh_lib.resolve_mesh_shape((2, 2, 1), 8)


def test_run_writes_metrics_tensorboard_checkpoints_and_learns(single_device_run):
  records = metric_writers.read_jsonl(single_device_run / "metrics.jsonl")
  assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
  for key in ("loss", "loss_diff", "loss_track", "loss_corr", "grad_norm", "learning_rate",
              "steps_per_sec", "nonfinite_total"):
    assert all(key in r for r in records), key
  assert records[-1]["loss"] < records[0]["loss"]
  evals = metric_writers.read_jsonl(single_device_run / "eval_metrics.jsonl")
  assert [r["step"] for r in evals] == [3, 6] and evals[1]["loss"] < evals[0]["loss"] * 1.5
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(
      single_device_run / "tensorboard"))
  # keep_checkpoints=3 of saves at 2, 4, 6.
  assert sorted(os.listdir(single_device_run / "checkpoints")) == ["2", "4", "6"]


def test_interrupted_and_resumed_run_reproduces_metrics_exactly(single_device_run, tmp_path):
  cfg = toy_task.toy_config(stop_after_steps=3)  # stops after step 3 (not a checkpoint step)
  trainer.train_and_evaluate(cfg, str(tmp_path), task=toy_task.make_task())
  assert [r["step"] for r in metric_writers.read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2, 3]
  trainer.train_and_evaluate(toy_task.toy_config(), str(tmp_path), task=toy_task.make_task())
  for name in ("metrics.jsonl", "eval_metrics.jsonl"):
    assert _strip_timing(metric_writers.read_jsonl(tmp_path / name)) == _strip_timing(
        metric_writers.read_jsonl(single_device_run / name)), name


def test_jsonl_lines_after_restored_step_are_dropped_on_resume(single_device_run, tmp_path):
  # A run killed after logging step 5 but whose newest checkpoint is step 4.
  cfg = toy_task.toy_config(stop_after_steps=5, checkpoint_every_steps=4)
  trainer.train_and_evaluate(cfg, str(tmp_path), task=toy_task.make_task())
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(tmp_path / "checkpoints" / "5")
  trainer.train_and_evaluate(toy_task.toy_config(checkpoint_every_steps=4), str(tmp_path),
                             task=toy_task.make_task())
  assert _strip_timing(metric_writers.read_jsonl(tmp_path / "metrics.jsonl")) == _strip_timing(
      metric_writers.read_jsonl(single_device_run / "metrics.jsonl"))


def test_eight_devices_and_resume_onto_another_mesh_match_one_device(single_device_run,
                                                                     tmp_path):
  ref = metric_writers.read_jsonl(single_device_run / "metrics.jsonl")
  # Same steps on 8 fake devices, mesh data×fsdp×tensor = 2×2×2.
  mesh8 = _run_toy(tmp_path / "mesh8", 8, "2,2,2")
  # Resume a 1-device checkpoint (step 2) on a 4-device 1×2×2 mesh.
  trainer.train_and_evaluate(toy_task.toy_config(stop_after_steps=2), str(tmp_path / "moved"),
                             task=toy_task.make_task())
  moved_proc = _run_toy(tmp_path / "moved", 4, "1,2,2")
  _wait(mesh8)
  _wait(moved_proc)
  got = metric_writers.read_jsonl(tmp_path / "mesh8" / "metrics.jsonl")
  moved = metric_writers.read_jsonl(tmp_path / "moved" / "metrics.jsonl")
  for records in (got, moved):
    assert [r["step"] for r in records] == [r["step"] for r in ref]
    for a, b in zip(ref, records):
      for k in LOSS_KEYS:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=f"{k} step {a['step']}")


def test_two_processes_match_one_process_with_four_devices(tmp_path):
  port = portpicker.pick_unused_port()
  procs = [_run_toy(tmp_path / "two", 2, "-1,2,1", dist=(f"127.0.0.1:{port}", 2, i))
           for i in range(2)]
  one = _run_toy(tmp_path / "one", 4, "-1,2,1")
  for p in procs + [one]:
    _wait(p)
  a = metric_writers.read_jsonl(tmp_path / "one" / "metrics.jsonl")
  b = metric_writers.read_jsonl(tmp_path / "two" / "metrics.jsonl")  # process 0 only writes
  assert len(a) == len(b) == 6
  for x, y in zip(a, b):
    for k in LOSS_KEYS:
      np.testing.assert_allclose(y[k], x[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_relative_workdir_checkpoints_resumes_and_exports(tmp_path, monkeypatch):
  # `make demo` passes --workdir=out/demo; Orbax itself only accepts absolute paths.
  monkeypatch.chdir(tmp_path)
  cfg = toy_task.toy_config(num_train_steps=2, checkpoint_every_steps=1, eval_every_steps=0,
                            ema_decay=0.0)
  trainer.train_and_evaluate(cfg, "run", task=toy_task.make_task())
  assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["1", "2"]
  assert export.export("run", "exported")["step"] == 2
  assert (tmp_path / "exported" / "export.json").exists()


def test_nonfinite_step_is_skipped_counted_and_run_continues(tmp_path):
  # Global batch 8: step 3 (examples 16..23) has one NaN example.
  cfg = toy_task.toy_config(num_train_steps=4, checkpoint_every_steps=0, eval_every_steps=0,
                            ema_decay=0.0)
  trainer.train_and_evaluate(cfg, str(tmp_path), task=toy_task.make_task(poison={17}))
  records = metric_writers.read_jsonl(tmp_path / "metrics.jsonl")
  assert [r["nonfinite"] for r in records] == [0.0, 0.0, 1.0, 0.0]
  assert [r["nonfinite_total"] for r in records] == [0, 0, 1, 1]
  assert records[2]["loss"] == "nan" and records[2]["update_norm"] == 0.0
  # The skipped step left the parameters unchanged.
  assert records[2]["param_norm"] == records[1]["param_norm"]
  assert np.isfinite(records[3]["loss"])


def test_consecutive_nonfinite_steps_stop_the_run_keeping_last_good_checkpoint(tmp_path):
  poison = {8 * s + 1 for s in range(2, 6)}  # steps 3, 4, 5, 6 all poisoned
  cfg = toy_task.toy_config(num_train_steps=8, checkpoint_every_steps=2, eval_every_steps=0,
                            max_consecutive_nonfinite=3)
  with pytest.raises(trainer.NonFiniteError, match="3 consecutive"):
    trainer.train_and_evaluate(cfg, str(tmp_path), task=toy_task.make_task(poison=poison))
  steps = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints"))
  assert steps[-1] <= 4  # nothing saved after the run went bad at step 5


def test_trunk_gradient_norms_are_logged_once_with_the_first_step_of_a_new_run(tmp_path):
  seen = []

  def norms(params, batch, rng):
    seen.append(1)  # traced once
    return {"trunk_grad_norm/toy": optax_norm(params["body"]) + 0.0 * batch["x"].sum()}

  task = dataclasses.replace(toy_task.make_task(), trunk_gradient_norms=norms)
  cfg = toy_task.toy_config(num_train_steps=3, checkpoint_every_steps=2, eval_every_steps=0, ema_decay=0.0)
  trainer.train_and_evaluate(cfg, str(tmp_path), task=task)
  records = metric_writers.read_jsonl(tmp_path / "metrics.jsonl")
  init = jax.jit(task.init_params)(trainer.base_keys(0)[0])
  init = jax.tree.map(lambda x: getattr(x, "value", x), init, is_leaf=lambda x: hasattr(x, "value"))
  np.testing.assert_allclose(records[0]["trunk_grad_norm/toy"], float(optax_norm(init["body"])), rtol=1e-6)
  assert all("trunk_grad_norm/toy" not in r for r in records[1:]) and len(seen) == 1
  cfg.num_train_steps = 4  # a resumed run does not compute them again
  trainer.train_and_evaluate(cfg, str(tmp_path), task=task)
  assert len(seen) == 1


def test_frozen_params_have_no_optimizer_state_and_stay_fixed(tmp_path):
  cfg = toy_task.toy_config(**{"optimizer.trainable_patterns": ("^head/",)})
  tx, _ = optimizer_lib.make_optimizer(cfg.optimizer, 10)
  task = toy_task.make_task()
  abstract, _ = state_lib.state_shardings(task.init_params, tx, use_ema=False,
                                          mesh=mesh_lib.make_mesh(), rules=toy_task.RULES)
  n_params = sum(x.size for x in jax.tree.leaves(abstract.params))
  n_head = sum(x.size for x in jax.tree.leaves(abstract.params["head"]))
  n_opt = sum(x.size for x in jax.tree.leaves(abstract.opt_state) if x.ndim)
  assert n_opt == 2 * n_head < 2 * n_params  # Adam mu + nu of the head only.
  trainer.train_and_evaluate(cfg, str(tmp_path), task=task)
  _, trees = checkpoint_format.read_params(
      tmp_path / "checkpoints")
  init = jax.jit(task.init_params)(trainer.base_keys(0)[0])
  init = jax.tree.map(lambda x: getattr(x, "value", x), init,
                      is_leaf=lambda x: hasattr(x, "value"))
  np.testing.assert_array_equal(trees["params"]["body"]["kernel"], init["body"]["kernel"])
  assert not np.allclose(trees["params"]["head"]["kernel"], init["head"]["kernel"])
  with pytest.raises(ValueError, match="match no parameter"):
    optimizer_lib.trainable_labels(abstract.params, ("^nothing$",))


def test_learning_rate_multipliers_scale_the_selected_updates_only():
  params = {"dit": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)}, "head": {"kernel": jnp.ones((2, 2))}}
  grads = jax.tree.map(lambda x: 0.3 * jnp.arange(x.size, dtype=jnp.float32).reshape(x.shape) - 0.2, params)

  def first_update(multipliers):
    cfg = toy_task.toy_config(**{"optimizer.learning_rate_multipliers": multipliers,
                                 "optimizer.trainable_patterns": (".*",), "optimizer.warmup_steps": 0})
    tx, _ = optimizer_lib.make_optimizer(cfg.optimizer, 10)
    updates, state = tx.update(grads, tx.init(params), params)
    return updates, jax.tree.structure(state)

  (plain, plain_state), (scaled, scaled_state) = first_update(()), first_update((("^head/", 10.0),
                                                                                 ("^dit/.*kernel", 0.5)))
  assert plain_state == scaled_state  # a checkpoint of either resumes with the other
  np.testing.assert_allclose(scaled["head"]["kernel"], 10.0 * plain["head"]["kernel"], rtol=1e-6)
  np.testing.assert_allclose(scaled["dit"]["kernel"], 0.5 * plain["dit"]["kernel"], rtol=1e-6)
  np.testing.assert_array_equal(scaled["dit"]["bias"], plain["dit"]["bias"])  # no regex: factor 1
  assert np.abs(plain["head"]["kernel"]).min() > 0
  with pytest.raises(ValueError, match="not a regular expression"):
    optimizer_lib.learning_rate_factors(params, (("(", 2.0),))
  with pytest.raises(ValueError, match=r"all select 'head/kernel'"):
    optimizer_lib.learning_rate_factors(params, (("^head/", 10.0), ("kernel$", 2.0)))


def test_export_round_trip(single_device_run, tmp_path):
  info = export.export(str(single_device_run), str(tmp_path / "exp"), dtype="bfloat16",
                       use_ema=True)
  assert info["step"] == 6 and info["num_params"] == 8 * 32 + 32 + 32 * 4 + 4
  params, config, _ = checkpoint_format.load_exported(str(tmp_path / "exp"))
  _, host = checkpoint_format.read_params(
      single_device_run / "checkpoints", keys=("ema_params",))
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(host["ema_params"])):
    assert a.dtype == jnp.bfloat16
    np.testing.assert_array_equal(a, np.asarray(b).astype(jnp.bfloat16))
  assert config.num_train_steps == 6
  # The exported weights run the model (loss as the trained params, up to bf16 rounding).
  batch = toy_task.example(5)
  loss, _ = toy_task.loss_fn(jax.tree.map(lambda x: x.astype(jnp.float32), params),
                             {k: v[None] for k, v in batch.items()}, jax.random.key(0))
  assert np.isfinite(loss)
  with pytest.raises(FileExistsError):
    export.export(str(single_device_run), str(tmp_path / "exp"))


def test_sigterm_checkpoints_and_stops_at_the_next_log_step(tmp_path):
  import os as os_lib  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  task = toy_task.make_task()

  class PreemptingIterator:
    """Sends SIGTERM to this process while preparing step 3's batch (checkpointable)."""

    def __init__(self, it, train):
      self.it, self.train, self.i = it, train, 0

    def __next__(self):
      if self.train and self.i == 2:
        os_lib.kill(os_lib.getpid(), signal.SIGTERM)
      self.i += 1
      return next(self.it)

    def get_state(self):
      return json.dumps(self.it.get_state()).encode()

    def set_state(self, state):
      self.it.set_state(json.loads(state.decode()))

  def preempting_iterator(split, batch, seed):
    return PreemptingIterator(task.make_iterator(split, batch, seed), split == "train")

  import dataclasses  # pylint: disable=g-import-not-at-top
  cfg = toy_task.toy_config(num_train_steps=10, checkpoint_every_steps=0, eval_every_steps=0)
  sigint_before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under a background launcher
  with pytest.raises(trainer.TrainingStopped, match="stopped by SIGTERM at step 3"):
    trainer.train_and_evaluate(cfg, str(tmp_path),
                               task=dataclasses.replace(task, make_iterator=preempting_iterator))
  assert [r["step"] for r in metric_writers.read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2, 3]
  assert os.listdir(tmp_path / "checkpoints") == ["3"]
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers removed again
  assert signal.getsignal(signal.SIGINT) is sigint_before


def test_sigterm_while_the_run_starts_up_stops_it_cleanly(tmp_path):
  """A SIGTERM before the first step (here: while the train iterator is made, during the restore) used to kill the
  process with 143; it now stops the run at the first log step, checkpointed."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  task = toy_task.make_task()

  def terminated_during_start_up(split, batch, seed):
    if split == "train":
      os.kill(os.getpid(), signal.SIGTERM)
    return task.make_iterator(split, batch, seed)

  cfg = toy_task.toy_config(num_train_steps=10, log_every_steps=2, checkpoint_every_steps=0, eval_every_steps=0)
  with pytest.raises(trainer.TrainingStopped, match="stopped by SIGTERM at step 2"):
    trainer.train_and_evaluate(cfg, str(tmp_path), task=dataclasses.replace(task, make_iterator=terminated_during_start_up))
  assert os.listdir(tmp_path / "checkpoints") == ["2"]
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_ctrl_c_checkpoints_and_stops_a_second_one_aborts():
  import signal  # pylint: disable=g-import-not-at-top
  flag = trainer._PreemptionFlag()  # pylint: disable=protected-access
  # An interactive launch (a background launcher would leave SIGINT ignored: test_an_ignored_ctrl_c_stays_ignored).
  launcher = signal.signal(signal.SIGINT, signal.default_int_handler)
  flag.install()
  try:
    os.kill(os.getpid(), signal.SIGINT)
    assert flag.requested == "SIGINT" and flag.any_process()      # the loop will checkpoint and stop
    with pytest.raises(KeyboardInterrupt, match="second SIGINT"):
      os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored by the second one
  finally:
    flag.uninstall()
    signal.signal(signal.SIGINT, launcher)


def test_an_ignored_ctrl_c_stays_ignored():
  """A run launched with SIGINT ignored (a background job of a shell script) keeps ignoring it; SIGTERM still stops."""
  import signal  # pylint: disable=g-import-not-at-top
  before = signal.signal(signal.SIGINT, signal.SIG_IGN)
  flag = trainer._PreemptionFlag()  # pylint: disable=protected-access
  try:
    flag.install()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    os.kill(os.getpid(), signal.SIGINT)
    assert flag.requested is None
  finally:
    flag.uninstall()
    signal.signal(signal.SIGINT, before)


@pytest.mark.slow  # ~40 s of a real training process; the in-process signal tests above cover the logic
def test_train_cli_exits_75_when_stopped_by_a_signal(tmp_path):
  """SIGTERM during training through the real entry point: checkpoint, a message, exit code 75."""
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(
      [sys.executable, "-m", "mvtrack_jax.train", "--config=configs/default.py:test", f"--workdir={tmp_path}",
       "--config.num_train_steps=100000", "--config.log_every_steps=1", "--config.eval_every_steps=0",
       "--config.checkpoint_every_steps=0", "--config.objective.lambda_track=0", "--compilation_cache_dir="],
      cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 600
  while not (tmp_path / "metrics.jsonl").exists() or not (tmp_path / "metrics.jsonl").read_text():
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:] if proc.poll() else "timeout"
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=600)
  assert proc.returncode == 75, err[-3000:]
  assert "stopped by SIGTERM" in err and os.listdir(tmp_path / "checkpoints")


def test_detect_cluster():
  from mvtrack_jax.training import distributed  # pylint: disable=g-import-not-at-top
  assert distributed.detect_cluster({}) is None
  assert distributed.detect_cluster({"SLURM_NTASKS": "1"}) is None
  assert distributed.detect_cluster({"SLURM_NTASKS": "16"}) == "slurm"
  assert distributed.detect_cluster({"TPU_WORKER_HOSTNAMES": "h0"}) is None
  assert distributed.detect_cluster({"TPU_WORKER_HOSTNAMES": "h0,h1,h2,h3"}) == "tpu"
  with pytest.raises(ValueError, match="needs num_processes"):
    distributed.initialize("127.0.0.1:1234")
  with pytest.raises(ValueError, match="not in"):
    distributed.initialize("127.0.0.1:1234", 2, 2)


@pytest.mark.parametrize("damage", ["data_file", "manifest", "iterator_state"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_step(single_device_run, tmp_path, damage):
  """Delete one file of the newest step (6): the resume logs it, moves step 6 aside, restores step 4,
  trains to the end, and metrics.jsonl holds every step exactly once."""
  import shutil
  workdir = tmp_path / "run"
  shutil.copytree(single_device_run, workdir)
  step6 = workdir / "checkpoints" / "6"
  victim = {"data_file": max((step6 / "state" / "d").iterdir(), key=lambda f: f.stat().st_size),  # merged data
            "manifest": step6 / "state" / "manifest.ocdbt",
            "iterator_state": step6 / "data_iter" / "process_0-of-1.json"}[damage]
  os.remove(victim)
  trainer.train_and_evaluate(toy_task.toy_config(num_train_steps=8), str(workdir), task=toy_task.make_task())
  assert (workdir / "checkpoints_damaged" / "6").is_dir()                       # moved, never deleted
  steps = [r["step"] for r in metric_writers.read_jsonl(workdir / "metrics.jsonl")]
  assert steps == list(range(1, 9)), steps
  assert sorted(os.listdir(workdir / "checkpoints")) == ["4", "6", "8"]         # 6 re-saved from step 4


@pytest.mark.slow  # ~15 s of a real process; test_checkpointing's failed restores cover the cause in 8 s
def test_fallback_run_output_is_one_line_per_damaged_step(single_device_run, tmp_path):
  """The fallback through a real process (a missing manifest, the damage that fails every array): its terminal
  output names the damage and the changed config once each, with no ``Event loop is closed`` tracebacks from
  Orbax's aborted restore."""
  import shutil
  workdir = tmp_path / "run"
  shutil.copytree(single_device_run, workdir)
  os.remove(workdir / "checkpoints" / "6" / "state" / "manifest.ocdbt")
  proc = _run_toy(workdir, 1, "-1,1,1", "num_train_steps=8")
  out, _ = proc.communicate(timeout=240)
  assert proc.returncode == 0, out[-4000:]
  assert out.count("checkpoint step 6 does not restore") == 1, out[-4000:]
  assert out.count("resuming with a changed num_train_steps: 6 -> 8") == 1, out[-4000:]  # not once per step tried
  for noise in ("Event loop is closed", "never retrieved", "Traceback"):
    assert noise not in out, out[-4000:]
  assert [r["step"] for r in metric_writers.read_jsonl(workdir / "metrics.jsonl")] == list(range(1, 9))


def test_no_restorable_checkpoint_and_changed_configs_are_clear_errors(single_device_run, tmp_path):
  import shutil
  workdir = tmp_path / "run"
  shutil.copytree(single_device_run, workdir)
  config_json = (workdir / "config.json").read_text()
  changed = toy_task.toy_config(num_train_steps=8)
  changed.model.preset = "tiny"                                               # the toy run stored the default
  with pytest.raises(ValueError, match=r"another architecture or objective; changed: model.preset: 'small-pixel' -> "
                                       r"'tiny'"):
    trainer.train_and_evaluate(changed, str(workdir), task=toy_task.make_task())
  assert (workdir / "config.json").read_text() == config_json                  # a failed resume writes nothing
  assert not (workdir / "checkpoints_damaged").exists()                        # nor moves healthy checkpoints
  # Another parameter tree (here: no EMA) is refused by the config check, not taken for damage.
  with pytest.raises(ValueError, match=r"ema_decay"):
    trainer.train_and_evaluate(toy_task.toy_config(num_train_steps=8, ema_decay=0.0), str(workdir),
                               task=toy_task.make_task())
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4", "6"]
  for step in ("2", "4", "6"):
    os.remove(workdir / "checkpoints" / step / "state" / "manifest.ocdbt")
  with pytest.raises(trainer.CheckpointError, match=r"no checkpoint in .* restores \(step 6: .*step 4: .*step 2: "):
    trainer.train_and_evaluate(toy_task.toy_config(num_train_steps=8), str(workdir), task=toy_task.make_task())
  assert sorted(os.listdir(workdir / "checkpoints_damaged")) == ["2", "4", "6"]


def test_reading_a_step_never_saved_or_a_missing_ema_is_explained(single_device_run, tmp_path):
  with pytest.raises(FileNotFoundError, match=r"--step 150: .* the saved steps are \[2, 4, 6\]"):
    checkpoint_format.read_params(single_device_run / "checkpoints", step=150)
  trainer.train_and_evaluate(toy_task.toy_config(num_train_steps=2, ema_decay=0.0, eval_every_steps=0),
                             str(tmp_path), task=toy_task.make_task())
  with pytest.raises(KeyError, match="holds no EMA weights: the run was trained with config.ema_decay = 0"):
    checkpoint_format.read_params(tmp_path / "checkpoints", keys=("ema_params",))
