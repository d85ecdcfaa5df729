"""Training starts from a pretrained Wan transformer (config.init.transformer); a checkpoint in the workdir wins."""

import re

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest
from flax import traverse_util

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from mvtrack_jax import checkpoint_format  # noqa: E402
from mvtrack_jax.convert import wan_names  # noqa: E402
from mvtrack_jax.training import metric_writers, tasks, train_state, trainer  # noqa: E402
from mvtrack_jax.training import mesh as mesh_lib  # noqa: E402
from tests.helpers import load_config  # noqa: E402

# configs/default.py:test's "tiny-pixel" DiT in diffusers' terms.
TINY_PIXEL = dict(patch_size=(1, 1, 1), num_attention_heads=4, attention_head_dim=32, in_channels=48, out_channels=48,
                  text_dim=32, freq_dim=64, ffn_dim=512, num_layers=4)
TRAINABLE = (r"^dit/blocks_\d+/attn1/", r"camera")


def _save_diffusers(path, seed=0, **overrides):
  torch.manual_seed(seed)
  model = diffusers.WanTransformer3DModel(**dict(TINY_PIXEL, **overrides))
  with torch.no_grad():   # no zero/one-initialised tensors: every tensor must be seen to load
    for p in model.parameters():
      p.add_(0.02 * torch.randn_like(p))
  model.save_pretrained(path)
  return str(path)


def _config(init_path):
  c = load_config("default.py", "test")
  c.objective.lambda_track = 0.0   # the head is not part of a Wan checkpoint; keep the compile small
  c.init.transformer = init_path
  c.optimizer.trainable_patterns = TRAINABLE
  c.num_train_steps = 2
  c.eval_every_steps = 0
  c.eval_at_start = False
  c.ema_decay = 0.9  # the EMA starts from the pretrained weights too (in buffers of its own: the step donates both)
  return c


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _save_diffusers(tmp_path_factory.mktemp("wan") / "transformer")


def test_initial_params_equal_the_checkpoint_exactly(folder):
  config = _config(folder)
  task = tasks.build_task(config)
  mesh = mesh_lib.make_mesh(tuple(config.mesh.shape), tuple(config.mesh.axes))
  state, _ = train_state.init_train_state(task.init_params, optax.sgd(0.1), jax.random.key(0),
                                          use_ema=True, mesh=mesh, rules=task.logical_axis_rules)
  fresh = traverse_util.flatten_dict(jax.device_get(state.params))
  values, report = task.pretrained_params()
  state = train_state.overlay_params(state, values)
  got = traverse_util.flatten_dict(jax.device_get(state.params))
  ema = traverse_util.flatten_dict(jax.device_get(state.ema_params))
  expected = traverse_util.flatten_dict(values)
  for path, value in expected.items():
    np.testing.assert_array_equal(got[path], value, err_msg="/".join(path))
    np.testing.assert_array_equal(ema[path], value, err_msg="/".join(path))
  # Distinct device buffers: one shared by params and ema_params made the donating train step fail.
  params_on_device = traverse_util.flatten_dict(state.params)
  ema_on_device = traverse_util.flatten_dict(state.ema_params)
  assert all(params_on_device[p].unsafe_buffer_pointer() != ema_on_device[p].unsafe_buffer_pointer()
             for p in expected)
  # The Plücker camera modules are not in a Wan checkpoint: reported fresh, kept as initialised (zero-init
  # projections, so the network starts as the pretrained Wan).
  assert report["fresh"] and all(wan_names.is_camera_name(n) for n in report["fresh"])
  assert not report["ignored"] and len(report["loaded"]) == len(expected)
  camera = [p for p in got if p not in expected]
  assert camera and all(np.array_equal(got[p], fresh[p]) for p in camera)


def test_training_moves_only_trainable_params_and_resume_wins(folder, tmp_path):
  workdir = tmp_path / "run"
  trainer.train_and_evaluate(_config(folder), str(workdir))
  _, trees = checkpoint_format.read_params(str(workdir / "checkpoints"), keys=("params",))
  trained = traverse_util.flatten_dict(trees["params"]["dit"])
  expected = traverse_util.flatten_dict(_config_values(folder))
  moved = [p for p, v in expected.items() if not np.array_equal(np.asarray(trained[p]), v)]
  assert moved and all(re.search(TRAINABLE[0], "dit/" + "/".join(p)) for p in moved), moved[:5]
  # A rerun with a checkpoint present resumes from it; init is not even read (this path does not exist). It asks
  # for no further step, so nothing compiles again (resuming and continuing is test_trainer's).
  again = _config(str(tmp_path / "no-such-checkpoint"))
  trainer.train_and_evaluate(again, str(workdir))
  assert [r["step"] for r in metric_writers.read_jsonl(str(workdir / "metrics.jsonl"))] == [1, 2]  # none redone


def _config_values(folder):
  task = tasks.build_task(_config(folder))
  return task.pretrained_params()[0]["dit"]


def test_architecture_mismatch_and_missing_tensors_are_named(tmp_path):
  other = _save_diffusers(tmp_path / "two_layers", num_layers=2, ffn_dim=256)
  task = tasks.build_task(_config(other))
  with pytest.raises(ValueError, match=r"ffn_dim: checkpoint 256, config 512.*num_layers: checkpoint 2, config 4"):
    task.pretrained_params()
  with pytest.raises(FileNotFoundError, match="no-such"):
    tasks.build_task(_config(str(tmp_path / "no-such"))).pretrained_params()


def test_null_context_comes_from_the_text_cache_and_must_stay_frozen(tmp_path):
  config = _config("")
  config.text.cache = str(tmp_path / "text")
  with pytest.raises(FileNotFoundError, match="not a context cache.*encode_text"):
    tasks.build_task(config).pretrained_params()
  config.optimizer.trainable_patterns = (".*",)
  with pytest.raises(ValueError, match=r"\['\.\*'\] select text/null_context"):
    tasks.build_task(config)


def test_compiled_step_does_not_contain_the_weights(folder):
  """Weights are arguments of the step, never constants: its program is small next to the weights."""
  config = _config(folder)
  task = tasks.build_task(config)
  n = sum(np.size(v) for v in jax.tree.leaves(task.pretrained_params()[0]))
  spec = task.batch_spec(2)
  params = jax.eval_shape(lambda: nn.unbox(task.init_params(jax.random.key(0))))
  text = jax.jit(task.loss_fn).lower(params, spec, jax.random.key(0)).as_text()
  assert len(text) < n, (len(text), n)


def test_original_bf16_torch_pickle(folder, tmp_path):
  """A ReCamMaster/DiffSynth-style .ckpt: original names, bf16 tensors, a torch pickle (read through torch)."""
  from tests.reference_helpers import to_original  # pylint: disable=g-import-not-at-top
  model = diffusers.WanTransformer3DModel.from_pretrained(folder)
  original = to_original({k: v.to(torch.bfloat16) for k, v in model.state_dict().items()})
  torch.save({"state_dict": original}, tmp_path / "model.ckpt")
  config = _config(str(tmp_path / "model.ckpt"))
  values, _ = tasks.build_task(config).pretrained_params()
  reference = _config_values(folder)
  for path, value in traverse_util.flatten_dict(values["dit"]).items():
    expected = traverse_util.flatten_dict(reference)[path]
    np.testing.assert_array_equal(value, np.asarray(torch.tensor(expected).to(torch.bfloat16).float()),
                                  err_msg="/".join(path))
