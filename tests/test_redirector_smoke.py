"""The ReDirector configuration's sequence on CPU stand-ins (``configs/mvtrack4gen_redirector.py:smoke``).

Stand-in VAE, CLIP vision tower and MultiCamVideo tree (``convert.standins``); a "Wan2.1-Fun" file under
DiffSynth names and a "ReDirector step file" (self-attention + RoCE) made from random weights of the
smoke architecture. Latents and CLIP features of both sources are cached, the model trains from Fun
overlaid with the step file, then generates a novel view and probes its layers with the CLIP features of
the reference computed on the fly, and exports for DiffSynth.
"""

import dataclasses
import json
import os

import flax
import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mvtrack_jax import run_config  # noqa: E402
from mvtrack_jax import checkpoint_format
from mvtrack_jax import errors, export, generate  # noqa: E402
from mvtrack_jax.convert import standins  # noqa: E402
from mvtrack_jax.convert import wan as convert  # noqa: E402
from mvtrack_jax.convert import checkpoint_io  # noqa: E402
from mvtrack_jax.convert import wan_names  # noqa: E402
from mvtrack_jax.data import encode_image, encode_latents, sources  # noqa: E402
from mvtrack_jax.evaluation import probe_run  # noqa: E402
from mvtrack_jax.inference import novel_view  # noqa: E402
from mvtrack_jax.models import wan  # noqa: E402
from mvtrack_jax.models import wan_params  # noqa: E402
from mvtrack_jax.training import metric_writers, trainer  # noqa: E402
from tests.helpers import load_config  # noqa: E402

pytestmark = pytest.mark.slow  # ~1-2 min: two sources encoded, a 2-step run, a generation


def _fun_files(cfg: wan.WanConfig, folder: str) -> tuple[str, str, dict]:
  """A Fun-like base file (DiffSynth names, no RoCE) and a ReDirector-like step file (self_attn + rope_phase)."""
  fun = dataclasses.replace(cfg, roce=False)
  inputs = wan_params.example_inputs(fun, latent_shape=(1, 2, 2), context_length=1)
  params = flax.linen.meta.unbox(wan.WanDiT(fun).init(jax.random.key(3), **inputs)["params"])
  _, sd, cam = convert.to_diffusers(params, fun)
  base = os.path.join(folder, "diffusion_pytorch_model.safetensors")
  save_file(wan_names.to_original_names({**sd, **cam}), base)
  rng = np.random.default_rng(0)
  pairs = cfg.num_heads * (2 * cfg.head_dim // 3 // 2)
  step = {f"blocks.{i}.self_attn.rope_phase_{n}.1.weight": (0.01 * rng.standard_normal((pairs, cfg.dim))).astype(
      np.float32) for i in range(cfg.num_layers) for n in ("qk", "vo")}
  step.update({f"blocks.{i}.self_attn.q.weight": rng.standard_normal((cfg.dim, cfg.dim)).astype(np.float32) / 10
               for i in range(cfg.num_layers)})
  step_path = os.path.join(folder, "step20000.safetensors")
  save_file(step, step_path)
  return base, step_path, step


def test_redirector_smoke_trains_generates_and_exports(tmp_path):
  w = str(tmp_path / "standins")
  standins.write_standins(w)
  standins.write_multicamvideo(os.path.join(w, "multicamvideo"))
  c = load_config("mvtrack4gen_redirector.py", "smoke")
  c.autoencoder.path = os.path.join(w, "vae")
  c.data.data_dir = os.path.join(w, "multicamvideo")
  c.image.encoder = os.path.join(w, "image_encoder")
  dit_cfg = run_config.parse(c).model.wan_config()
  assert (dit_cfg.camera_mode, dit_cfg.roce, dit_cfg.image_dim, dit_cfg.rope_mode) == ("redirector", True, 32, "shared")

  # Caches: VAE latents and CLIP features of both sources.
  lat_m, lat_s, img_m, img_s = (str(tmp_path / n) for n in ("lat_m", "lat_s", "img_m", "img_s"))
  encode_latents.encode_dataset(c, lat_m, ["train"], progress=False)
  encode_latents.encode_dataset(c, lat_s, sources.splits_read(c.data, "synthetic"), progress=False,
                                source="synthetic")
  encode_image.encode_images(c, img_m, ["train"], progress=False)
  encode_image.encode_images(c, img_s, sources.splits_read(c.data, "synthetic"), progress=False, source="synthetic")
  c.data.latents_dir, c.data.mixture.synthetic.latents_dir = lat_m, lat_s
  c.image.cache, c.data.mixture.synthetic.image_cache = img_m, img_s

  # Train from "Fun" overlaid with the "ReDirector step file".
  base, step_path, step = _fun_files(dit_cfg, str(tmp_path))
  c.init.transformer, c.init.overlay = base, step_path
  workdir = str(tmp_path / "run")
  trainer.train_and_evaluate(c, workdir)
  rows = [r for r in metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl")) if "loss_corr" in r]
  assert len(rows) == c.num_train_steps and all(np.isfinite(r["loss"]) and r["loss_corr"] > 0 for r in rows)
  _, trees = checkpoint_format.read_params(os.path.join(workdir, "checkpoints"), keys=("params",))
  dit = trees["params"]["dit"]
  # Frozen modules are Fun's; the overlay's tensors were the starting point of the trained self-attention.
  fun_sd = wan_names.to_diffusers_names(checkpoint_io.read_checkpoint(base)[0])
  np.testing.assert_array_equal(dit["control_adapter"]["conv"]["bias"], fun_sd["control_adapter.conv.bias"])
  np.testing.assert_array_equal(dit["blocks_0"]["attn2"]["add_k_proj"]["kernel"],
                                fun_sd["blocks.0.attn2.add_k_proj.weight"].T)
  moved = np.abs(dit["blocks_0"]["attn1"]["rope_phase_qk"]["kernel"]
                 - step["blocks.0.self_attn.rope_phase_qk.1.weight"].T).max()
  assert 0 < moved < 0.05  # trained for 2 steps from the overlay, not from zero

  # Generate: the CLIP features of the reference's first frame are computed from config.image.encoder.
  out = str(tmp_path / "novel")
  info = generate.run(workdir, "dataset:train:0", "arc_left", out, steps=2, grid=2, progress=False)
  assert os.path.exists(os.path.join(out, "target.mp4")) and info["num_frames"] == c.data.num_frames
  loaded = novel_view.NovelViewPipeline.from_checkpoint(workdir)
  assert loaded.image_encoder.num_tokens == standins.IMAGE_TOKENS
  loaded.config.image.encoder = ""
  with pytest.raises(errors.UserError, match="trained with CLIP image features"):
    novel_view.NovelViewPipeline(loaded.config, loaded.params, step=loaded.step, source=loaded.source).image_encoder
  # The layer probe reads the same features (its batches come from the dataset, not the image cache).
  probed = probe_run.run_probe(workdir, str(tmp_path / "probe"), split="train", num_batches=1, timesteps=(500.0,),
                           progress=False)
  assert probed["settings"]["num_examples"] == 1 and probed["settings"]["image_context"].startswith("CLIP")

  # Export under DiffSynth / ReDirector names, readable back.
  exported = str(tmp_path / "diffsynth")
  export.export(workdir, exported, fmt="diffsynth")
  names = checkpoint_io.read_checkpoint(os.path.join(exported, "model.safetensors"))[0]
  assert {"blocks.1.self_attn.rope_phase_vo.1.weight", "img_emb.proj.4.weight",
          "control_adapter.residual_blocks.0.conv2.weight", "blocks.0.cross_attn.k_img.weight"} <= set(names)
  back = convert.convert_state_dict(names, dit_cfg)
  np.testing.assert_allclose(back["blocks_1"]["attn1"]["rope_phase_vo"]["kernel"],
                             dit["blocks_1"]["attn1"]["rope_phase_vo"]["kernel"], atol=1e-6)
  assert json.load(open(os.path.join(exported, "export.json")))["format"] == "diffsynth"
