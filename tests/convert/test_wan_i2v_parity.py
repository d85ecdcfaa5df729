"""Parity of the image-context branch and the conditioning channels with diffusers (torch, CPU, float32).

Wan2.1-Fun (ReDirector's base) is diffusers' ``WanTransformer3DModel`` with ``image_dim`` /
``added_kv_proj_dim`` (CLIP features through ``condition_embedder.image_embedder``, a second key/value
projection per cross-attention) and a patch embedding wider than the latents (``in_channels`` 32 = 16
latent + 16 conditioning channels, which ReDirector feeds with zeros). A tiny random diffusers model
is converted and must match ``max|err| ≤ 1e-4 · max|ref|``. diffusers splits its context at a fixed
512 text tokens (``image_context_length = L − 512``), so the text here is exactly 512 tokens long.
"""

import functools

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from mvtrack_jax.convert import wan as convert  # noqa: E402
from mvtrack_jax.convert import wan_names  # noqa: E402
from mvtrack_jax.models import wan  # noqa: E402
from mvtrack_jax.models import wan_params  # noqa: E402

from tests.reference_helpers import random_diffusers  # noqa: E402

_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

MODEL = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=7, out_channels=4,
             text_dim=12, freq_dim=16, ffn_dim=40, num_layers=2, image_dim=20, added_kv_proj_dim=32)
LATENT = (2, 4, 6)
TEXT_LEN, IMAGE_LEN = 512, 5


@pytest.fixture(scope="module")
def reference():
  model = random_diffusers(MODEL, seed=11)
  rng = np.random.default_rng(5)
  latents = rng.standard_normal((2,) + LATENT + (MODEL["out_channels"],)).astype(np.float32)
  timestep = np.array([250.0, 810.0], np.float32)
  context = rng.standard_normal((2, TEXT_LEN, MODEL["text_dim"])).astype(np.float32)
  image = rng.standard_normal((2, IMAGE_LEN, MODEL["image_dim"])).astype(np.float32)
  padded = np.concatenate([latents, np.zeros(latents.shape[:-1] + (3,), np.float32)], -1)  # zero condition channels
  with torch.no_grad():
    out = model(torch.from_numpy(np.transpose(padded, (0, 4, 1, 2, 3))).contiguous(), torch.from_numpy(timestep),
                torch.from_numpy(context), encoder_hidden_states_image=torch.from_numpy(image), return_dict=False)[0]
  state_dict = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
  return dict(config=dict(model.config), state_dict=state_dict, latents=latents, timestep=timestep, context=context,
              image=image, ref=np.transpose(out.numpy(), (0, 2, 3, 4, 1)))


def test_config_maps_image_and_condition_fields(reference):
  cfg = convert.config_from_diffusers(reference["config"])
  assert (cfg.image_dim, cfg.in_channels, cfg.condition_channels, cfg.out_channels) == (20, 4, 3, 4)
  back = convert.diffusers_config(cfg)
  assert (back["image_dim"], back["added_kv_proj_dim"], back["in_channels"]) == (20, 32, 7)


@pytest.mark.parametrize("scan", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_image_branch_matches_diffusers(reference, scan):
  module, params = convert.load_diffusers_transformer(reference["state_dict"], reference["config"], scan_layers=scan)
  out = np.asarray(_jit(functools.partial(module.apply, image_context=reference["image"]))(
      {"params": params}, reference["latents"], reference["timestep"], reference["context"]))
  ref = reference["ref"]
  assert out.shape == ref.shape
  err = np.abs(out - ref).max()
  assert err <= 1e-4 * np.abs(ref).max(), (err, np.abs(ref).max())
  # The image branch matters: without it the output differs (so the comparison above exercises it).
  off = np.asarray(module.apply({"params": params}, reference["latents"], reference["timestep"],
                                reference["context"]))
  assert np.abs(off - ref).max() > 1e-2 * np.abs(ref).max()


def test_original_image_names_convert_and_round_trip(reference):
  cfg = convert.config_from_diffusers(reference["config"])
  original = wan_names.to_original_names(reference["state_dict"])
  assert {"img_emb.proj.0.weight", "img_emb.proj.4.bias", "blocks.1.cross_attn.k_img.weight",
          "blocks.0.cross_attn.norm_k_img.weight"} <= set(original)
  a = convert.convert_state_dict(reference["state_dict"], cfg)
  b = convert.convert_state_dict(original, cfg)
  assert jax.tree.all(jax.tree.map(np.array_equal, a, b))
  assert convert.infer_config(original, head_dim=16) == cfg
  _, wan_sd, camera_sd = convert.to_diffusers(a, cfg)
  assert not camera_sd and set(wan_sd) == set(reference["state_dict"])


def test_image_context_errors(reference):
  module, params = convert.load_diffusers_transformer(reference["state_dict"], reference["config"])
  args = ({"params": params}, reference["latents"], reference["timestep"], reference["context"])
  with pytest.raises(ValueError, match=r"image_context has shape \(2, 5, 19\), expected \(2, N, 20\)"):
    module.apply(*args, image_context=reference["image"][..., :19])
  plain = wan.WanDiT(wan.get_config("tiny", camera_mode="none"))
  inputs = wan_params.example_inputs(plain.config, with_reference=False)
  plain_params = plain.init(jax.random.key(0), **inputs)
  with pytest.raises(ValueError, match="config.image_dim is 0"):
    plain.apply(plain_params, **inputs, image_context=np.zeros((1, 3, 8), np.float32))
  with pytest.raises(ValueError, match="added_kv_proj_dim"):
    convert.config_from_diffusers(dict(reference["config"], added_kv_proj_dim=16))
