"""The run config's schema (``mvtrack_jax.run_config``): every shipped config validates; misspelt fields, wrong types,
values that cannot train and fields that disagree are rejected before any work, naming the field (and the nearest
valid name); stored configs of older schemas are upgraded; defaults live in the schema only."""

import importlib
import re
import typing

import ml_collections
import numpy as np
import pytest

from mvtrack_jax import builders
from mvtrack_jax import run_config
from mvtrack_jax.errors import ConfigError
from mvtrack_jax.training import tasks
from tests.helpers import load_config
from tests.training import toy_task

SHIPPED = [("default", ""), ("default", "test"), ("default_diffusion_only", ""), ("default_diffusion_only", "test"),
           ("default_track4gen", ""), ("default_track4gen", "test"), ("track4gen_recammaster", ""),
           ("track4gen_recammaster", "smoke"),
           ("base", ""), ("base", "stage1"), ("base", "test"), ("mvtrack4gen_recammaster", ""),
           ("mvtrack4gen_recammaster", "small"), ("mvtrack4gen_recammaster", "14b"),
           ("mvtrack4gen_recammaster", "smoke"), ("mvtrack4gen_redirector", ""), ("mvtrack4gen_redirector", "smoke"),
           ("recammaster_diffusion_only", ""), ("redirector_diffusion_only", "")]


@pytest.mark.parametrize("name,arg", SHIPPED)
def test_every_shipped_config_is_valid_and_complete_is_idempotent(name, arg):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  full = run_config.complete(config)
  assert full.schema_version == run_config.SCHEMA_VERSION
  assert run_config.complete(full).to_dict() == full.to_dict()
  # Completing keeps every value the config file set.
  flat_in = _flatten(config.to_dict())
  flat_out = _flatten(full.to_dict())
  assert all(flat_out[k] == v for k, v in flat_in.items()), [k for k, v in flat_in.items() if flat_out[k] != v]


def _flatten(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict) and v:
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = v
  return out


def test_the_demo_config_is_the_schema_defaults_plus_the_shipped_weights():
  from configs import default  # pylint: disable=g-import-not-at-top
  demo = default.get_config().to_dict()
  defaults = run_config.default_config().to_dict()
  for tree in (demo, defaults):
    tree.pop("name")
  assert demo.pop("init") == {"transformer": default.BASE_WEIGHTS, "overlay": ""}
  assert defaults.pop("init") == {"transformer": "", "overlay": ""}  # no default loads weights from a checkout
  assert demo["optimizer"].pop("learning_rate_multipliers") == (("^head/", 10.0),)
  assert defaults["optimizer"].pop("learning_rate_multipliers") == ()  # one learning rate, as the papers
  assert demo == defaults


@pytest.mark.parametrize("path,value,message", [
    ("data.heigth", 32, r"--config\.data\.heigth: no such field \(did you mean 'height'\?\)"),
    ("optimiser", 1, r"--config\.optimiser: no such field \(did you mean 'optimizer'\?\)"),
    ("objective.lamda_corr", 0.1, r"--config\.objective\.lamda_corr: no such field \(did you mean 'lambda_corr'\?\)"),
    ("model.overrides.dtyp", "float32", r"--config\.model\.overrides: WanConfig has no field 'dtyp' \(did you mean "
                                        r"'dtype'\?\)"),
    ("objective.corr.domian", "all", r"CorrespondenceConfig has no field 'domian' \(did you mean 'domain'\?\)"),
    ("head.overrides.hidden", 64, r"TrackingHeadConfig has no field 'hidden'"),
])
def test_a_misspelt_field_is_named_with_the_nearest_valid_one(path, value, message):
  config = run_config.default_config()
  *parents, leaf = path.split(".")
  node = config
  for p in parents:
    node = node[p]
  node[leaf] = value
  with pytest.raises(ConfigError, match=message):
    run_config.parse(config)


def test_a_misspelt_field_of_a_mixture_entry_is_named():
  config = run_config.default_config()
  config.data.mixture = ml_collections.ConfigDict({"kubric": {"datset": "npz"}})
  with pytest.raises(ConfigError, match=r"--config\.data\.mixture\.kubric\.datset: no such field \(did you mean "
                                        r"'dataset'\?\)"):
    run_config.parse(config)


@pytest.mark.parametrize("field,value,expected", [
    ("optimizer.learning_rate", float("nan"), "should be a finite number"),
    ("optimizer.learning_rate", 0.0, "should be greater than 0"),
    ("keep_checkpoints", 0, "0 would delete every checkpoint"),
    ("num_train_steps", -1, "should be greater than or equal to 1"),
    ("checkpoint_every_steps", -5, "should be greater than or equal to 0"),
    ("ema_decay", 1.0, "should be less than 1"),
    ("optimizer.b2", 1.0, "should be less than 1"),
    ("log_every_steps", 0, "should be greater than or equal to 1"),
    ("batch_size", 0, "expected an integer >= 1, or -1"),
    ("text.caption_dropout", 1.5, "should be less than or equal to 1"),
    ("num_train_steps", 2.5, "should be a valid integer"),
    ("optimizer.schedule", "linear", "should be 'cosine' or 'constant'"),
    ("optimizer.trainable_patterns", ("(dit",), "is not a regular expression"),
    ("data.synthetic", "huge", "huge"),
    ("model.preset", "tiny-pixl", "unknown preset (did you mean 'tiny-pixel'?)"),
])
def test_values_that_cannot_train_are_named(field, value, expected):
  config = toy_task.toy_config()
  *parents, leaf = field.split(".")
  node = config
  for p in parents:
    node = node[p]
  with node.ignore_type():
    node[leaf] = value
  with pytest.raises(ConfigError, match=rf"--config\.{re.escape(field)}: (got {re.escape(repr(value))}; )?"):
    run_config.parse(config)
  with pytest.raises(ConfigError, match=re.escape(expected)):
    run_config.parse(config)
  run_config.parse(toy_task.toy_config())  # the toy config itself is valid


def test_several_problems_are_reported_together():
  config = toy_task.toy_config(keep_checkpoints=0, **{"optimizer.learning_rate": -1.0})
  config.data.heigth = 3
  with pytest.raises(ConfigError) as e:
    run_config.parse(config)
  assert all(s in str(e.value) for s in ("--config.keep_checkpoints: got 0", "--config.optimizer.learning_rate: got "
                                         "-1.0", "--config.data.heigth: no such field"))


@pytest.mark.parametrize("change,message", [
    (lambda c: setattr(c.objective, "head_layers", (4,)), r"objective\.head_layers \[4\] out of range for the 4-block"),
    (lambda c: setattr(c.data, "eval_source", "synthetc"), r"eval_source 'synthetc' names no source \(did you mean "
                                                          r"'synthetic'\?\)"),
    (lambda c: setattr(c.mesh, "axes", ("data", "fsdp")), r"shape \(-1, 1, 1\) and axes \('data', 'fsdp'\) differ"),
    (lambda c: setattr(c.data, "weight", 0.0), r"every source has weight 0"),
])
def test_fields_that_must_agree_are_checked_together(change, message):
  config = run_config.default_config()
  change(config)
  with pytest.raises(ConfigError, match=message):
    run_config.parse(config)


def test_a_stored_config_of_an_older_schema_is_upgraded():
  # Before schema_version: no image block; before that, objective.context_length and no text block.
  old = ml_collections.ConfigDict(dict(objective=dict(lambda_track=1.0), text=dict(encoder="", cache="")))
  upgraded = run_config.complete(old)
  assert upgraded.image.to_dict() == {"encoder": "", "cache": "", "preprocess": "wan"} and "image" not in old
  assert upgraded.objective.lambda_track == 1.0 and upgraded.schema_version == run_config.SCHEMA_VERSION
  older = run_config.complete({"objective": {"context_length": 16}})
  assert older.text.context_length == 16 and older.text.caption_dropout == 0.0 and older.image.preprocess == "wan"
  # JSON lists (a stored config.json) are read as tuples.
  assert run_config.parse({"mesh": {"shape": [-1, 1, 1], "axes": ["data", "fsdp", "tensor"]}}).mesh.shape == (-1, 1, 1)
  with pytest.raises(ConfigError, match="schema_version 99 is newer"):
    run_config.parse({"schema_version": 99})


def test_resume_fixed_fields_are_marked_in_the_schema():
  assert set(run_config.resume_fixed_fields()) == {"task", "model", "head", "autoencoder", "objective", "refiner",
                                                   "conditioning",
                                                   "text.context_length", "optimizer.trainable_patterns"}


def test_a_refiner_is_checked_against_the_dit_the_objective_and_the_trainable_set():
  config = run_config.default_config()
  config.objective.lambda_feat = 8.0
  with pytest.raises(ConfigError, match=r"lambda_feat > 0 needs a refiner: set refiner.layer"):
    run_config.parse(config)
  config.refiner.layer = 4
  with pytest.raises(ConfigError, match=r"refiner.layer 4 out of range for the 4-block DiT"):
    run_config.parse(config)
  config.refiner.layer = 1
  with pytest.raises(ConfigError, match=r"leave frozen .* add a pattern such as '\^refiner/'"):
    run_config.parse(config)
  config.optimizer.trainable_patterns = (r"^(dit|head|refiner)/",)
  config.objective.feat = {"mode": "local", "local_radius": 1}
  run = run_config.parse(config)
  assert run.objective_config().lambda_feat == 8.0 and run.objective_config().feat.mode == "local"
  model = builders.build_model(run)
  assert model.feat_layer == 1 and model.refiner.config.channels == 32 and model.refiner.config.kernel == "2d"
  config.objective.feat = {"mode": "nearest"}
  with pytest.raises(ConfigError, match="mode='nearest'"):
    run_config.parse(config)


def test_every_task_the_schema_names_has_a_builder_and_others_are_rejected():
  named = set(typing.get_args(run_config.RunConfig.model_fields["task"].annotation))
  assert named == set(tasks.TASK_BUILDERS) == {"novel_view"}
  with pytest.raises(ConfigError, match=r"--config.task: .*'novel_view'"):
    run_config.parse({"task": "4d_grid"})


def test_a_wan_vae_without_weights_or_caches_cannot_train():
  smoke = importlib.import_module("configs.mvtrack4gen_recammaster").get_config("smoke")
  run_config.parse(smoke)  # valid to lower or benchmark
  with pytest.raises(ConfigError, match=r"\['multicamvideo', 'synthetic'\] have no latent cache"):
    run_config.check_trainable(smoke)
  smoke.data.latents_dir = "/cache"
  with pytest.raises(ConfigError, match=r"\['synthetic'\] have no latent cache"):
    run_config.check_trainable(smoke)
  smoke.data.mixture.synthetic.latents_dir = "/cache_synthetic"
  run_config.check_trainable(smoke)  # every source cached
  smoke.autoencoder.path = "/w/vae"
  smoke.data.latents_dir = ""
  run_config.check_trainable(smoke)  # weights to encode with
  run_config.check_trainable(run_config.default_config())  # the pixel autoencoder needs none


def test_the_parsed_config_is_frozen_and_typed():
  run = run_config.parse(run_config.default_config())
  with pytest.raises(Exception):
    run.num_train_steps = 5  # type: ignore[misc]
  assert run.model.wan_config().num_layers == 4 and isinstance(run.data.height, int)


def test_the_objective_block_becomes_the_losses_config():
  """Every objective field (and text.caption_dropout) reaches ``losses.objective.ObjectiveConfig``, lists as tuples."""
  config = run_config.default_config()
  config.objective.lambda_track, config.objective.corr_layers = 0, [0, 2]
  config.objective.schedule = dict(shift=3.0, weighting="wan")
  config.objective.corr = dict(domain="all", target="onehot", head_reduction="mean_attention")
  config.objective.tracking = dict(huber_delta_px=4.0)
  config.text.caption_dropout = 0.25
  got = run_config.parse(config).objective_config()
  assert (got.lambda_diff, got.lambda_track, got.lambda_corr, got.caption_dropout) == (1.0, 0.0, 0.01, 0.25)
  assert got.corr.layers == (0, 2) and (got.corr.domain, got.corr.target, got.corr.head_reduction) == (
      "all", "onehot", "mean_attention")
  assert (got.schedule.shift, got.schedule.weighting) == (3.0, "wan") and got.tracking.huber_delta_px == 4.0
  assert got.probe_layers((1,)) == (0, 2)   # no head term: only the supervised attention layers


def test_a_tracked_only_source_and_the_paper_configs_use_it():
  """diffusion_weight weighs a mixture's sources in L_diff; with one source it would be lambda_diff, so it is refused."""
  config = run_config.default_config()
  config.data.diffusion_weight = 0.0
  with pytest.raises(ConfigError, match="diffusion_weight=0.0 .*one source: set objective.lambda_diff"):
    run_config.parse(config)
  for name in ("mvtrack4gen_recammaster.py", "mvtrack4gen_redirector.py"):
    run = run_config.parse(load_config(name))
    assert run.data.diffusion_weight == 1.0 and run.data.mixture["synthetic"].diffusion_weight == 0.0, name
  # The trainer's per-example lookup table, in source_id order (primary first).
  np.testing.assert_array_equal(tasks.diffusion_weights(load_config("mvtrack4gen_recammaster.py", "smoke")), [1.0, 0.0])
  assert tasks.diffusion_weights(run_config.complete(run_config.default_config())) is None


def test_the_recammaster_paper_config_starts_from_a_camera_trained_backbone():
  """F7: MVTrack4Gen fine-tunes a backbone that already follows cameras; the Plücker model has no released one, so the
  config runs ReCamMaster's stage explicitly (L_diff on MultiCamVideo alone, 20,000 steps) and starts from it."""
  module = importlib.import_module("configs.mvtrack4gen_recammaster")
  backbone = run_config.parse(load_config("mvtrack4gen_recammaster.py", "backbone"))
  assert backbone.num_train_steps == 20000 and backbone.objective.lambda_track == backbone.objective.lambda_corr == 0
  assert not backbone.data.mixture and backbone.data.dataset == "multicamvideo"
  paper = run_config.parse(load_config("mvtrack4gen_recammaster.py"))
  assert paper.model == backbone.model and paper.num_train_steps == 13000  # the same DiT; the paper's budget after
  assert ":backbone --workdir=out/backbone" in module.__doc__
  assert "--config.init.transformer=out/backbone_export" in module.__doc__
