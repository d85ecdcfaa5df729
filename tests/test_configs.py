"""Every training config in configs/ builds its task and lowers its sharded train step abstractly
(``jit(...).lower`` on ``ShapeDtypeStruct``s: no parameters, data or device memory), the
Wan2.1-1.3B paper configuration included."""

import glob
import os
import subprocess
import sys
import time

import flax
import jax
import pytest

from mvtrack_jax.data import feature_cache
from mvtrack_jax.training import mesh as mesh_lib
from mvtrack_jax.training import optimizer as optimizer_lib
from mvtrack_jax.training import tasks
from mvtrack_jax.training import train_state as state_lib
from mvtrack_jax.training import train_step as step_lib
from mvtrack_jax.training import trainer
from tests.helpers import REPO, config_module, cpu_env

NOT_TRAINING = {"synthetic_data.py"}  # dataset build settings, not a training config
CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                 if os.path.basename(p) not in NOT_TRAINING | {"__init__.py"})


def lower_train_step(config):
  """Lowers the config's train step on the abstract state; returns (lowered, abstract state)."""
  mesh = mesh_lib.make_mesh(tuple(config.mesh.shape), tuple(config.mesh.axes))
  task = tasks.build_task(config)
  tx, schedule = optimizer_lib.make_optimizer(config.optimizer, config.num_train_steps)
  use_ema = config.ema_decay > 0
  abstract, shardings = state_lib.state_shardings(
      task.init_params, tx, use_ema=use_ema, mesh=mesh, rules=task.logical_axis_rules)
  step = step_lib.jit_train_step(
      step_lib.make_train_step(
          task.loss_fn, tx, schedule, base_rng=trainer.base_keys(0)[1], ema_decay=config.ema_decay,
          trainable=optimizer_lib.trainable_mask(abstract.params,
                                                 config.optimizer.trainable_patterns)),
      shardings, mesh_lib.batch_sharding(mesh), mesh, task.logical_axis_rules)
  batch_sharding = mesh_lib.batch_sharding(mesh)
  batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_sharding)
           for k, v in task.batch_spec(mesh_lib.global_batch_size(config.batch_size, mesh)).items()}
  return step.lower(abstract, batch), abstract, task


def test_there_are_configs():
  assert {"default.py", "mvtrack4gen_recammaster.py", "recammaster_diffusion_only.py"} <= set(
      CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_docstring_gives_the_run_command(name):
  module, config = config_module(name)
  assert f"--config=configs/{name}" in module.__doc__
  for field in ("num_train_steps", "checkpoint_every_steps", "log_every_steps", "eval_every_steps",
                "seed", "batch_size"):
    assert field in config, field
  assert {"preset"} <= set(config.model) and {"shape", "axes"} <= set(config.mesh)
  assert {"lambda_track", "lambda_corr", "head_layers", "corr_layers"} <= set(config.objective)
  # Per-source caches can be set from the command line (--config.data.mixture.NAME.image_cache=DIR): the keys exist.
  for name, entry in config.data.get("mixture", {}).items():
    assert {"text_cache", "image_cache", "latents_dir"} <= set(entry), name


# Tracing/lowering the MV-TAP head's graph dominates (~25-70 s on a busy 2-core CPU; the 1.3B DiT
# itself ~6 s), so configs with the head are `slow`; each also has a fast variant without the
# head that keeps the DiT (1.3B for the paper config), the probe layers and L_corr.
def _has_head(name):
  return config_module(name)[1].objective.lambda_track > 0


LOWERING_CASES = [
    pytest.param(name, {}, marks=[pytest.mark.slow] if _has_head(name) else [], id=name)
    for name in CONFIGS
] + [pytest.param(name, {"lambda_track": 0.0}, id=f"{name}-without-head")
     for name in CONFIGS if _has_head(name)]


@pytest.mark.parametrize("name,objective_overrides", LOWERING_CASES)
def test_config_lowers_its_train_step_abstractly(name, objective_overrides):
  _, config = config_module(name)
  config.objective.update(objective_overrides)
  t0 = time.perf_counter()
  lowered, abstract, task = lower_train_step(config)
  print(f"{name}: lowered in {time.perf_counter() - t0:.1f} s")
  text = lowered.as_text()
  # A StableHLO module whose entry takes every state leaf (all flow to the outputs) and the batch fields the
  # objective reads (jit drops unread ones, e.g. tracks without a head).
  assert text.startswith("module @jit_") and "func.func public @main(" in text, text[:300]
  main_args = text.split("func.func public @main(", 1)[1].split(") ->", 1)[0].count("%arg")
  n_state = len(jax.tree.leaves(abstract))
  assert n_state < main_args <= n_state + len(task.batch_spec(1)), (main_args, n_state)
  n_params = sum(x.size for x in jax.tree.leaves(abstract.params))
  n_opt = sum(x.size for x in jax.tree.leaves(abstract.opt_state) if x.ndim)
  if config.model.preset in ("wan2.1-t2v-1.3b", "wan2.1-fun-1.3b-control-camera"):
    # 1.3B DiT (+ camera modules, image branch, + head); only the trainable subset has Adam moments.
    assert 1.3e9 < n_params < 1.8e9, n_params
    assert 0 < n_opt < 2 * n_params * 0.6, (n_opt, n_params)
    assert task.tokens_per_example == 65_520
  else:
    assert n_opt == 2 * n_params  # everything trainable in the CPU configs
  if config.objective.lambda_track > 0:
    assert "head" in abstract.params
  else:
    assert "head" not in abstract.params


_LOWER_14B_FOR_CUDA = r"""
import importlib, re
import flax.linen as nn
import jax, jax.numpy as jnp
from jax._src.cudnn import fused_attention_stablehlo as fa
from tests.helpers import config_module
from mvtrack_jax.training import mesh as mesh_lib, optimizer as optimizer_lib, tasks, train_state as state_lib
from mvtrack_jax.training import train_step as step_lib, trainer
fa.check_cudnn_version = lambda: 91000               # lowering only: no cuDNN on this machine
importlib.import_module("mvtrack_jax.models.attention").cudnn_supported = lambda q: q.dtype == jnp.bfloat16
_, c = config_module("mvtrack4gen_recammaster.py", "14b")
mesh = mesh_lib.make_mesh(tuple(c.mesh.shape), tuple(c.mesh.axes))
task = tasks.build_task(c)
tx, schedule = optimizer_lib.make_optimizer(c.optimizer, c.num_train_steps)
abstract, shardings = state_lib.state_shardings(task.init_params, tx, use_ema=False, mesh=mesh,
                                                rules=task.logical_axis_rules)
step = step_lib.jit_train_step(step_lib.make_train_step(
    task.loss_fn, tx, schedule, base_rng=trainer.base_keys(0)[1], ema_decay=0.0,
    trainable=optimizer_lib.trainable_mask(abstract.params, c.optimizer.trainable_patterns)),
    shardings, mesh_lib.batch_sharding(mesh), mesh, task.logical_axis_rules)
batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=mesh_lib.batch_sharding(mesh))
         for k, v in task.batch_spec(mesh_lib.global_batch_size(c.batch_size, mesh)).items()}
with jax.set_mesh(mesh), nn.logical_axis_rules(tuple(task.logical_axis_rules)):
  text = step.jitted.trace(abstract, batch).lower(lowering_platforms=("cuda",)).as_text()
params = sum(x.size for x in jax.tree.leaves(abstract.params))
moments = sum(x.size for x in jax.tree.leaves(abstract.opt_state) if x.ndim)
assert 15.0e9 < params < 16.0e9 and 10.0e9 < moments < 11.0e9, (params, moments)
assert "CustomSPMDPartitioning" in text            # the cuDNN attention, partitioned per device
print("ok", params, moments)
"""


@pytest.mark.slow
def test_14b_fsdp_train_step_lowers_for_cuda_on_eight_devices():
  """configs/mvtrack4gen_recammaster.py:14b: the sharded train step (FSDP over 8) lowers for CUDA here."""
  proc = subprocess.run([sys.executable, "-c", _LOWER_14B_FOR_CUDA], cwd=REPO, env=cpu_env(8), capture_output=True,
                        text=True, timeout=900)
  assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_redirector_lowers_at_full_size_with_the_image_branch(tmp_path):
  """configs/mvtrack4gen_redirector.py with CLIP features (257 × 1280, declared by an image cache's metadata):
  the batch carries image_context, the Fun DiT's image branch, adapter and RoCE are in the lowered step, and the
  trainable set is every self-attention (RoCE included) + the head."""
  _, config = config_module("mvtrack4gen_redirector.py")
  feature_cache.write_metadata(str(tmp_path), {"num_tokens": 257, "width": 1280, "preprocess": "wan"},
                               feature_cache.IMAGE_JSON)
  config.image.cache = str(tmp_path)
  config.objective.lambda_track = 0.0  # the head's trace is the slow part (covered by the slow case above)
  lowered, abstract, task = lower_train_step(config)
  assert task.batch_spec(1)["image_context"].shape == (1, 257, 1280)
  assert task.tokens_per_example == 65_520
  flat = flax.traverse_util.flatten_dict(abstract.params, sep="/")
  assert flat["dit/image_embedder_ff_0/kernel"].shape == (1280, 1280)
  assert flat["dit/blocks/block/attn1/rope_phase_qk/kernel"].shape == (30, 1536, 12 * 42)
  trainable = optimizer_lib.trainable_mask(abstract.params, config.optimizer.trainable_patterns)
  trained = {k for k, v in flax.traverse_util.flatten_dict(trainable, sep="/").items() if v}
  assert "dit/blocks/block/attn1/rope_phase_vo/kernel" in trained
  assert not any("control_adapter" in k or "attn2" in k or "ffn" in k for k in trained)
  assert "1280" in lowered.as_text()[:2_000_000]
