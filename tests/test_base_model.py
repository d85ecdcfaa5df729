"""The shipped base model (``weights/base/``, written by ``make base`` from ``configs/base.py``) loads, every tensor of
it, into the model that config trains, through the same ``config.init.transformer`` path a fine-tune uses, so the
weights and the config cannot drift apart (docs/base_model.md)."""

import json
import os

import jax
import numpy as np
from flax import traverse_util

from configs import base
from mvtrack_jax import generate
from mvtrack_jax import run_config
from mvtrack_jax.convert import checkpoint_io
from mvtrack_jax.data import video_io
from mvtrack_jax.training import checkpointing
from mvtrack_jax.training import tasks
from tests.helpers import load_config

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


def test_every_demo_arm_starts_from_every_tensor_of_the_shipped_weights():
  """``make demo`` (and the Track4Gen arm) fine-tune the base: their configs point at ``weights/base`` and their DiT
  is the base's, so the weights load with nothing fresh or ignored (the tracking head and the refiner, outside the
  DiT, start from random)."""
  for name in ("default.py", "default_diffusion_only.py", "default_track4gen.py"):
    config = load_config(name)
    assert config.init.transformer == WEIGHTS, name
    assert config.model.to_dict() == load_config("base.py").model.to_dict(), name
    values, report = tasks.build_task(config).pretrained_params()
    assert report["loaded"] and report["fresh"] == [] and report["ignored"] == [], (name, report)
    assert sorted(values) == ["dit"], name


def test_a_real_video_of_any_size_and_rate_goes_through_the_shipped_weights(tmp_path):
  """``generate --checkpoint weights/base --reference any.mp4`` (the diffusers-layout folder read back whole): an
  odd-sized, 9-frame 12 fps clip is cropped and resized to the model's 64×64, sampled at a stride its length allows,
  and generated from (one Euler step: the path, not the quality, is under test; docs/base_model.md says what the
  base makes of real footage)."""
  rng = np.random.default_rng(0)
  clip = np.clip(np.cumsum(rng.integers(-20, 21, (9, 50, 70, 3)), axis=0) + 128, 0, 255).astype(np.uint8)
  video_io.write_video(tmp_path / "clip.mp4", clip, fps=12)
  info = generate.run(WEIGHTS, str(tmp_path / "clip.mp4"), "arc_left", str(tmp_path / "out"), steps=1,
                      progress=False)
  for name in ("strip.png", "target.mp4", "reference.mp4", "side_by_side.mp4", "generation.json"):
    assert (tmp_path / "out" / name).stat().st_size > 0, name
  assert video_io.read_video(tmp_path / "out" / "target.mp4").shape == (4, 64, 64, 3)
  assert info["frame_stride"] == 2  # 9 frames cannot hold 4 at the model's stride 5: the largest that fits
  assert info["checkpoint"] == WEIGHTS and info["model"] == f"base@{base.get_config().num_train_steps}"
