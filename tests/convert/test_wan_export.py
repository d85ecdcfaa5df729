"""Export back to PyTorch: WanDiT params → a diffusers folder that WanTransformer3DModel loads and runs the same."""

import json
import os

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest
from flax import traverse_util
from safetensors.numpy import load_file, save_file

from mvtrack_jax import run_config
from mvtrack_jax import checkpoint_format
from mvtrack_jax import export
from mvtrack_jax.convert import wan as convert
from mvtrack_jax.convert import pretrained
from mvtrack_jax.convert import wan_names
from mvtrack_jax.data import video_io
from mvtrack_jax.models import wan
from mvtrack_jax.models import wan_params
from tests.helpers import run_cli

try:  # the PyTorch round trips need them; the command line's path checks at the end do not
  import diffusers
  import torch
except ImportError:
  diffusers = torch = None
needs_diffusers = pytest.mark.skipif(diffusers is None, reason="needs torch and diffusers")


def _random_params(cfg, seed=0):
  """Initial params with every tensor perturbed (zero-initialised tables would hide layout bugs)."""
  module = wan.WanDiT(cfg)
  inputs = wan_params.example_inputs(cfg, latent_shape=(2, 4, 4), with_reference=cfg.camera_mode != "none")
  params = jax.tree.map(np.asarray, nn.meta.unbox(module.init(jax.random.key(seed), **inputs)["params"]))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda x: (x + 0.05 * rng.standard_normal(x.shape)).astype(np.float32), params)


def _save(tmp_path, diffusers_config, state_dict):
  tmp_path.mkdir(parents=True, exist_ok=True)
  save_file(state_dict, str(tmp_path / "diffusion_pytorch_model.safetensors"))
  (tmp_path / "config.json").write_text(json.dumps(diffusers_config))
  return tmp_path


@needs_diffusers
def test_diffusers_loads_the_export_and_matches_the_jax_forward(tmp_path):
  cfg = wan.get_config("tiny", camera_mode="none", in_channels=4, out_channels=4, patch_size=(1, 2, 2))
  params = _random_params(cfg)
  dcfg, wan_sd, camera_sd = convert.to_diffusers(params, cfg)
  assert camera_sd == {}
  model, info = diffusers.WanTransformer3DModel.from_pretrained(
      _save(tmp_path / "dit", dcfg, wan_sd), output_loading_info=True)
  assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
  rng = np.random.default_rng(1)
  latents = rng.standard_normal((2, 2, 4, 4, 4)).astype(np.float32)
  timestep = np.array([150.0, 870.0], np.float32)
  context = rng.standard_normal((2, 5, cfg.text_dim)).astype(np.float32)
  ours = np.asarray(wan.WanDiT(cfg).apply({"params": params}, latents, timestep, context))
  with torch.no_grad():
    ref = model.eval()(torch.from_numpy(np.ascontiguousarray(np.moveaxis(latents, -1, 1))), torch.from_numpy(timestep),
                       torch.from_numpy(context), return_dict=False)[0].numpy()
  ref = np.moveaxis(ref, 1, -1)
  assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()
  # And back: our importer reads the export to the same params.
  _, again = convert.load_diffusers_transformer(load_file(str(tmp_path / "dit" / "diffusion_pytorch_model.safetensors")),
                                                dcfg)
  jax.tree.map(np.testing.assert_array_equal, again, params)


@needs_diffusers
def test_scanned_plucker_model_round_trips_with_its_camera_modules():
  cfg = wan.get_config("tiny", camera_mode="plucker", in_channels=4, out_channels=4, patch_size=(1, 2, 2))
  params = _random_params(cfg, seed=2)
  scanned = wan_params.stack_block_params(params, cfg.num_layers)
  scanned_cfg = wan.get_config("tiny", camera_mode="plucker", in_channels=4, out_channels=4, patch_size=(1, 2, 2),
                               scan_layers=True)
  dcfg, wan_sd, camera_sd = convert.to_diffusers(scanned, scanned_cfg)
  assert any(k.startswith("camera_encoder.") for k in camera_sd)
  assert {f"blocks.{i}.camera_proj.weight" for i in range(cfg.num_layers)} <= set(camera_sd)
  assert not any(wan_names.is_camera_name(k) for k in wan_sd)
  _, again = convert.load_diffusers_transformer({**wan_sd, **camera_sd}, dcfg, camera_mode="plucker")
  jax.tree.map(np.testing.assert_array_equal, again, params)


@needs_diffusers
def test_export_cli_writes_a_diffusers_folder(tiny_checkpoint, tmp_path):
  """The demo-shaped model (Plücker cameras + head) through ``write_diffusers``, as ``--format=diffusers`` writes it."""
  params, config, _ = checkpoint_format.load_exported(tiny_checkpoint)
  out = tmp_path / "diffusers"
  info = export.write_torch(str(out), params, config, {"step": 0, "dtype": "float32"})
  assert sorted(p.name for p in out.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors",
                                                    "export.json", "mvtrack_config.json", "mvtrack_modules.safetensors"]
  model, loading = diffusers.WanTransformer3DModel.from_pretrained(out,
                                                                  output_loading_info=True)
  assert not loading["missing_keys"] and not loading["unexpected_keys"]
  extra = load_file(str(out / "mvtrack_modules.safetensors"))
  head = traverse_util.flatten_dict(params["head"])
  assert {"head." + ".".join(p) for p in head} <= set(extra)
  assert info["mvtrack_tensors"] == len(extra) and info["wan_tensors"] == len(model.state_dict())
  assert all(os.stat(p).st_mode & 0o777 == video_io.FILE_MODE for p in out.iterdir())  # not safetensors' 0600
  # The folder is a pretrained init (config.init.transformer): its camera modules come from the second file.
  values, report = pretrained.pretrained_params(out, run_config.parse(config).model.wan_config())
  assert report["fresh"] == [] and report["ignored"] == [], report
  jax.tree.map(np.testing.assert_array_equal, values, jax.tree.map(np.asarray, params["dit"]))
  # And as a whole model (what generate / evaluate --checkpoint read): the DiT and the head, exactly.
  whole, stored = pretrained.torch_export_params(out, run_config.parse(config).model.wan_config())
  assert sorted(whole) == ["dit", "head"] and stored["format"] == "diffusers"
  jax.tree.map(np.testing.assert_array_equal, whole, {k: jax.tree.map(np.asarray, params[k]) for k in whole})
  with pytest.raises(FileExistsError):
    export.write_torch(str(out), params, config, {"step": 0})
  with pytest.raises(ValueError, match="format"):
    export.export("unused", str(tmp_path / "x"), fmt="diffsynth-typo")
  assert isinstance(config, ml_collections.ConfigDict)


@needs_diffusers
def test_diffsynth_export_carries_recammaster_names_and_reads_back(tiny_checkpoint, tmp_path):
  params, config, _ = checkpoint_format.load_exported(tiny_checkpoint)
  config.model.overrides.camera_mode = "recammaster"
  cfg = run_config.parse(config).model.wan_config()
  params = {"dit": _random_params(cfg, seed=4), "head": params["head"]}
  export.write_torch(str(tmp_path / "ds"), params, config, {"step": 0}, fmt="diffsynth")
  weights = load_file(str(tmp_path / "ds" / "model.safetensors"))
  assert "blocks.0.cam_encoder.weight" in weights and "blocks.0.projector.weight" in weights
  assert "blocks.0.self_attn.q.weight" in weights and "head.head.weight" in weights and "blocks.0.norm3.weight" in weights
  module, again = convert.load_original_transformer(weights, head_dim=cfg.head_dim)
  assert module.config.camera_mode == "recammaster"
  jax.tree.map(np.testing.assert_array_equal, again, params["dit"])
  whole, _ = pretrained.torch_export_params(tmp_path / "ds", cfg)
  jax.tree.map(np.testing.assert_array_equal, whole, jax.tree.map(np.asarray, params))
  with pytest.raises(FileNotFoundError, match="not a folder written by export"):
    pretrained.torch_export_params(tmp_path, cfg)


def test_a_refiner_travels_in_the_torch_exports_and_reads_back(tiny_checkpoint, tmp_path):
  """Track4Gen's refiner sits outside the DiT; both PyTorch layouts carry it beside the head (``refiner.…``)."""
  params, config, _ = checkpoint_format.load_exported(tiny_checkpoint)
  config.refiner = ml_collections.ConfigDict(dict(layer=1, channels=4, depth=2, kernel="3d", inject=True))
  config.optimizer.trainable_patterns = ("^(dit|head|refiner)/",)
  refiner = {"refiner": {"proj_in": {"kernel": np.full((128, 4), 0.5, np.float32), "bias": np.zeros(4, np.float32)}},
             "zeta": {"proj": {"kernel": np.eye(128, dtype=np.float32), "bias": np.ones(128, np.float32)}}}
  params = dict(params, refiner=refiner)
  for fmt in ("diffusers", "diffsynth"):
    export.write_torch(str(tmp_path / fmt), params, config, {"step": 3}, fmt=fmt)
    whole, _ = pretrained.torch_export_params(tmp_path / fmt, run_config.parse(config).model.wan_config())
    jax.tree.map(np.testing.assert_array_equal, whole["refiner"], refiner)


@pytest.fixture
def no_checkpoint(monkeypatch):
  """Reading the checkpoint fails the test: every check must come before it."""
  def read(*_, **__):
    raise AssertionError("the checkpoint was read before the paths were checked")
  monkeypatch.setattr(checkpoint_format, "read_params", read)


def test_cli_out_that_is_a_file_is_named_before_the_checkpoint_is_read(tmp_path, no_checkpoint):
  (tmp_path / "a_file").write_text("x")
  for out in (tmp_path / "a_file", tmp_path / "a_file" / "below"):
    with pytest.raises(NotADirectoryError, match=f"--out {out}: .*is a file"):
      run_cli(export, f"--workdir={tmp_path}", f"--out={out}")
  (tmp_path / "full").mkdir()
  (tmp_path / "full" / "params").mkdir()
  with pytest.raises(FileExistsError, match=f"--out {tmp_path / 'full'} exists and is not empty"):  # as before
    run_cli(export, f"--workdir={tmp_path}", f"--out={tmp_path / 'full'}")


def test_cli_read_only_parent_of_out_is_named(tmp_path, no_checkpoint, locked_dir):
  with pytest.raises(PermissionError, match=f"--out {locked_dir / 'export'}: cannot write in {locked_dir}"):
    run_cli(export, f"--workdir={tmp_path}", f"--out={locked_dir / 'export'}")


def test_cli_missing_workdir_is_named_before_the_checkpoint_is_read(tmp_path, no_checkpoint):
  with pytest.raises(FileNotFoundError, match=f"--workdir {tmp_path / 'run'}: no such folder"):
    run_cli(export, f"--workdir={tmp_path / 'run'}", f"--out={tmp_path / 'export'}")
  assert not (tmp_path / "export").exists()


def test_the_name_table_maps_both_ways_and_round_trips():
  """Known Wan2.1 / DiffSynth ↔ diffusers pairs, and every parameter of the T2V, I2V and ReDirector layouts back and
  forth (one table serves both directions)."""
  pairs = {
      "blocks.3.self_attn.q.weight": "blocks.3.attn1.to_q.weight",
      "blocks.3.self_attn.o.bias": "blocks.3.attn1.to_out.0.bias",
      "blocks.0.cross_attn.k_img.weight": "blocks.0.attn2.add_k_proj.weight",
      "blocks.0.cross_attn.norm_k_img.weight": "blocks.0.attn2.norm_added_k.weight",
      "blocks.1.self_attn.rope_phase_qk.1.weight": "blocks.1.attn1.rope_phase_qk.weight",
      "blocks.2.norm3.weight": "blocks.2.norm2.weight",
      "blocks.2.ffn.0.weight": "blocks.2.ffn.net.0.proj.weight",
      "blocks.2.modulation": "blocks.2.scale_shift_table",
      "head.modulation": "scale_shift_table",
      "head.head.weight": "proj_out.weight",
      "time_projection.1.bias": "condition_embedder.time_proj.bias",
      "img_emb.proj.4.bias": "condition_embedder.image_embedder.norm2.bias",
      "blocks.0.self_attn.norm_q.weight": "blocks.0.attn1.norm_q.weight",  # kept inside a renamed module
      "blocks.0.cam_encoder.weight": "blocks.0.cam_encoder.weight",  # camera modules keep their names
  }
  assert wan_names.to_diffusers_names(pairs) == {d: d for d in pairs.values()}
  assert wan_names.to_diffusers_names({"model.diffusion_model." + o: 0 for o in pairs}) == dict.fromkeys(
      pairs.values(), 0)
  assert wan_names.to_original_names({d: o for o, d in pairs.items()}) == {o: o for o in pairs}
  for preset, extra in (("tiny", {}), ("tiny", {"image_dim": 32}), ("tiny-redirector", {})):
    names = [wan_names.torch_name(p) for p in traverse_util.flatten_dict(
        convert._expected_params(wan.get_config(preset, **extra)))]  # pylint: disable=protected-access
    original = wan_names.to_original_names(dict.fromkeys(names))
    assert len(original) == len(names) and sorted(wan_names.to_diffusers_names(original)) == sorted(names)
