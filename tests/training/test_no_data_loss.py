"""Nothing is saved that cannot be resumed from, and every step is logged once in every resume path:
the update guard (a NaN learning rate), config values checked before any work (the train CLI's cases are in
tests/test_cli_errors.py),
poisoned checkpoints skipped on resume, and metrics of a run restarted from step 0."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mvtrack_jax.errors import ConfigError
from mvtrack_jax.training import checkpointing
from mvtrack_jax.training import mesh as mesh_lib
from mvtrack_jax.training import metric_writers
from mvtrack_jax.training import optimizer as optimizer_lib
from mvtrack_jax.training import train_state as state_lib
from mvtrack_jax.training import train_step as step_lib
from mvtrack_jax.training import trainer
from tests.training import toy_task



def _quadratic_loss(params, batch, rng):
  del rng
  loss = jnp.sum((params["w"] - batch["y"]) ** 2)
  return loss, {"loss_diff": loss}


@pytest.mark.parametrize("learning_rate", [float("nan"), float("inf")])
def test_an_update_that_would_poison_the_parameters_is_not_applied(learning_rate):
  """The loss and gradient of the step are finite; only the update is not. The step is skipped."""
  tx = optax.adam(learning_rate)
  params = {"w": jnp.ones(3)}
  state = state_lib.create_train_state(params, tx, use_ema=True)
  step = jax.jit(step_lib.make_train_step(_quadratic_loss, tx, lambda s: learning_rate,
                                          base_rng=jax.random.key(0), ema_decay=0.5))
  new, metrics = step(state, {"y": jnp.zeros(3)})
  assert np.isfinite(float(metrics["loss"])) and np.isfinite(float(metrics["grad_norm"]))
  assert float(metrics["nonfinite"]) == 1.0 and int(metrics["nonfinite_total"]) == 1
  assert float(metrics["update_norm"]) == 0.0
  np.testing.assert_array_equal(new.params["w"], params["w"])
  np.testing.assert_array_equal(new.ema_params["w"], params["w"])
  assert bool(step_lib.all_finite(new))
  # A finite learning rate on the same state trains.
  good = jax.jit(step_lib.make_train_step(_quadratic_loss, optax.adam(0.1), lambda s: 0.1,
                                          base_rng=jax.random.key(0)))
  newer, metrics = good(state_lib.create_train_state(params, optax.adam(0.1), use_ema=False), {"y": jnp.zeros(3)})
  assert float(metrics["nonfinite"]) == 0.0 and float(newer.params["w"][0]) < 1.0


def test_all_finite_ignores_integers_and_sees_one_nan():
  assert bool(step_lib.all_finite({"a": jnp.ones(2), "n": jnp.int32(3), "none": None}))
  assert not bool(step_lib.all_finite({"a": jnp.ones(2), "b": jnp.array([0.0, jnp.nan])}))
  assert bool(step_lib.all_finite({}))


def _poison_step(workdir, config, src_step, new_step):
  """Saves the state of ``src_step`` with NaN parameters as ``new_step`` (what an older version could save)."""
  task = toy_task.make_task()
  mesh = mesh_lib.make_mesh(tuple(config.mesh.shape), tuple(config.mesh.axes))
  tx, _ = optimizer_lib.make_optimizer(config.optimizer, int(config.num_train_steps))
  abstract, _ = state_lib.state_shardings(task.init_params, tx, use_ema=True, mesh=mesh, rules=task.logical_axis_rules)
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=None, async_save=False)
  data_iter = task.make_iterator("train", 8, 0)
  state = ckpt.restore(abstract, step=src_step, data_iter=data_iter)
  poisoned = state.replace(step=jnp.int32(new_step), params=jax.tree.map(lambda x: x * jnp.nan, state.params))
  ckpt.save(new_step, poisoned, data_iter=data_iter, config=config)
  ckpt.close()


def test_a_poisoned_checkpoint_is_moved_aside_and_the_run_resumes_from_a_finite_one(tmp_path):
  workdir = str(tmp_path / "run")
  config = toy_task.toy_config(num_train_steps=4, eval_every_steps=0)
  trainer.train_and_evaluate(config, workdir, task=toy_task.make_task())
  _poison_step(workdir, config, 4, 5)
  last = trainer.train_and_evaluate(toy_task.toy_config(num_train_steps=6, eval_every_steps=0), workdir,
                                    task=toy_task.make_task())
  assert os.path.isdir(os.path.join(workdir, "checkpoints_damaged", "5"))
  assert np.isfinite(last["loss"]) and np.isfinite(last["param_norm"])
  assert [r["step"] for r in metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))] == [1, 2, 3, 4, 5, 6]


def test_every_checkpoint_poisoned_says_so_then_a_rerun_starts_afresh_logging_each_step_once(tmp_path):
  workdir = str(tmp_path / "run")
  config = toy_task.toy_config(num_train_steps=2, checkpoint_every_steps=0, eval_every_steps=0)
  trainer.train_and_evaluate(config, workdir, task=toy_task.make_task())
  shutil.rmtree(os.path.join(workdir, "checkpoints", "2"))
  os.makedirs(os.path.join(workdir, "checkpoints"), exist_ok=True)
  # Only a poisoned step 2 remains: rebuild it from a fresh run's state in a scratch folder.
  scratch = str(tmp_path / "scratch")
  trainer.train_and_evaluate(config, scratch, task=toy_task.make_task())
  _poison_step(scratch, config, 2, 3)
  shutil.copytree(os.path.join(scratch, "checkpoints", "3"), os.path.join(workdir, "checkpoints", "3"))
  with pytest.raises(trainer.CheckpointError, match=r"step 3: FloatingPointError: .*NaN/inf.*Rerun to start this run "
                                                    r"afresh from step 0"):
    trainer.train_and_evaluate(config, workdir, task=toy_task.make_task())
  trainer.train_and_evaluate(config, workdir, task=toy_task.make_task())
  assert [r["step"] for r in metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))] == [1, 2]


def test_a_run_that_restored_nothing_drops_an_earlier_attempts_lines(tmp_path):
  """As after a double Ctrl-C before the first checkpoint: lines of steps 1..3 and no checkpoint."""
  workdir = tmp_path / "run"
  workdir.mkdir()
  for name in ("metrics.jsonl", "eval_metrics.jsonl"):
    (workdir / name).write_text("".join(json.dumps({"step": s, "loss": 9.0}) + "\n" for s in (0, 1, 2, 3)))
  config = toy_task.toy_config(num_train_steps=3, eval_every_steps=3, **{"eval_at_start": True})
  trainer.train_and_evaluate(config, str(workdir), task=toy_task.make_task())
  records = metric_writers.read_jsonl(workdir / "metrics.jsonl")
  assert [r["step"] for r in records] == [1, 2, 3] and all(r["loss"] != 9.0 for r in records)
  assert [r["step"] for r in metric_writers.read_jsonl(workdir / "eval_metrics.jsonl")] == [0, 3]


def test_resuming_past_num_train_steps_is_a_clear_error(tmp_path):
  """A step-4 run resumed with num_train_steps=2 said "trained to step 2" and did nothing."""
  workdir = str(tmp_path / "run")
  trainer.train_and_evaluate(toy_task.toy_config(num_train_steps=4, eval_every_steps=0), workdir,
                             task=toy_task.make_task())
  with pytest.raises(ConfigError, match=r"--config.num_train_steps: got 2, but the checkpoint .* is already at step 4"):
    trainer.train_and_evaluate(toy_task.toy_config(num_train_steps=2, eval_every_steps=0), workdir,
                               task=toy_task.make_task())
