"""The shipped base model (``weights/base/``, written by ``make base`` from ``configs/base.py``) loads, every tensor of
it, into the model that config trains, through the same ``config.init.transformer`` path a fine-tune uses, so the
weights and the config cannot drift apart (docs/base_model.md)."""

import json
import os

import jax
import numpy as np
from flax import traverse_util

from configs import base
from mvtrack_jax import run_config
from mvtrack_jax.convert import checkpoint_io
from mvtrack_jax.training import checkpointing
from mvtrack_jax.training import tasks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(REPO, "weights", "base")
MAX_BYTES = 25 * 2**20  # what the repository ships at most


def test_shipped_base_weights_are_small_and_say_how_they_were_made():
  files = sorted(os.listdir(WEIGHTS))
  assert {"config.json", "diffusion_pytorch_model.safetensors", checkpoint_io.MODULES_FILE, "mvtrack_config.json",
          "export.json"} <= set(files), files
  assert sum(os.path.getsize(os.path.join(WEIGHTS, f)) for f in files) <= MAX_BYTES
  with open(os.path.join(WEIGHTS, "export.json"), encoding="utf-8") as f:
    info = json.load(f)
  assert info["ema"] is True and info["format"] == "diffusers" and info["step"] == base.get_config().num_train_steps
  # The export's record of the config it was trained with is configs/base.py's model and objective.
  with open(os.path.join(WEIGHTS, "mvtrack_config.json"), encoding="utf-8") as f:
    stored = json.load(f)
  stored = checkpointing.config_to_json_dict(run_config.complete(stored))
  now = checkpointing.config_to_json_dict(run_config.complete(base.get_config()))
  for block in ("model", "autoencoder", "objective", "data"):
    assert stored[block] == now[block], block


def test_shipped_base_weights_load_into_the_base_config_with_nothing_fresh_or_ignored():
  config = base.get_config()
  config.init.transformer = WEIGHTS
  task = tasks.build_task(config)
  values, report = task.pretrained_params()
  assert report["fresh"] == [] and report["ignored"] == [], report
  # Every DiT parameter of the model gets a value of its shape, and the values are finite.
  abstract = jax.eval_shape(task.init_params, jax.random.key(0))
  expected = traverse_util.flatten_dict(abstract["dit"], sep="/")
  loaded = traverse_util.flatten_dict(values["dit"], sep="/")
  assert set(loaded) == {k.removesuffix("/value") for k in expected} or set(loaded) == set(expected)
  for name, value in loaded.items():
    assert np.all(np.isfinite(value)), name
  # Camera modules are among them (they travel in the export's second file).
  assert any("camera" in name for name in loaded)
