"""Parity of the JAX Wan2.1 DiT with diffusers ``WanTransformer3DModel`` (torch, CPU, float32).

Tiny random diffusers models (every parameter re-randomised: diffusers zero/one-initialises some)
are converted with ``load_diffusers_transformer`` and must match PyTorch to
``max|err| ≤ 1e-4 · max|ref|`` for every attention backend (docs/design.md §4.1).
"""

import functools

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from mvtrack_jax.convert import wan as convert  # noqa: E402
from mvtrack_jax.convert import checkpoint_io  # noqa: E402
from mvtrack_jax.models import wan  # noqa: E402
from mvtrack_jax.models import wan_params  # noqa: E402
from tests.reference_helpers import random_diffusers, to_original  # noqa: E402


# Tests are compile-bound on CPU: skip XLA's backend optimisations (halves compile time, same numerics).
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

CASES = {
    # head_dim 16: RoPE bands 8/4/4; odd frame count; non-square; out != in channels.
    "p122_h2_d16": dict(model=dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=4,
                                   out_channels=6, text_dim=24, freq_dim=32, ffn_dim=40, num_layers=2),
                        latent=(3, 4, 6)),
    # head_dim 20 (not divisible by 6: bands 8/6/6); temporal patch 2; no cross-attention norm.
    "p222_h3_d20": dict(model=dict(patch_size=(2, 2, 2), num_attention_heads=3, attention_head_dim=20, in_channels=5,
                                   out_channels=5, text_dim=16, freq_dim=16, ffn_dim=36, num_layers=2,
                                   cross_attn_norm=False),
                        latent=(4, 6, 4)),
}


def _inputs(model_kwargs, latent, seed, batch=2, text_len=7):
  rng = np.random.default_rng(seed)
  f, h, w = latent
  latents = rng.standard_normal((batch, f, h, w, model_kwargs["in_channels"])).astype(np.float32)
  timestep = np.array([137.5, 901.0][:batch], np.float32)
  context = rng.standard_normal((batch, text_len, model_kwargs["text_dim"])).astype(np.float32)
  return latents, timestep, context


def _reference(model, latents, timestep, context):
  with torch.no_grad():
    out = model(torch.from_numpy(np.transpose(latents, (0, 4, 1, 2, 3))).contiguous(), torch.from_numpy(timestep),
                torch.from_numpy(context), return_dict=False)[0]
  return np.transpose(out.numpy(), (0, 2, 3, 4, 1))


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
  spec = CASES[request.param]
  model = random_diffusers(spec["model"], seed=len(request.param))
  inputs = _inputs(spec["model"], spec["latent"], seed=3)
  state_dict = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
  return dict(config=dict(model.config), state_dict=state_dict, inputs=inputs, ref=_reference(model, *inputs))


@pytest.mark.parametrize("backend", ["einsum", "dot_product", "splash"])
def test_velocity_matches_diffusers(case, backend):
  module, params = convert.load_diffusers_transformer(case["state_dict"], case["config"], attention_backend=backend)
  out = np.asarray(_jit(module.apply)({"params": params}, *case["inputs"]))
  ref = case["ref"]
  assert out.shape == ref.shape and out.dtype == np.float32
  err = np.abs(out - ref).max()
  assert err <= 1e-4 * np.abs(ref).max(), (backend, err, np.abs(ref).max())


def test_original_names_give_same_params(case):
  cfg = convert.config_from_diffusers(case["config"])
  from_diffusers = convert.convert_state_dict(case["state_dict"], cfg)
  original = to_original(case["state_dict"])
  assert any(".self_attn.q." in k for k in original) and any(".norm3." in k for k in original) or (
      not cfg.cross_attn_norm)
  module, from_original = convert.load_original_transformer(original, head_dim=cfg.head_dim)
  assert module.config == cfg
  jax.tree.map(np.testing.assert_array_equal, from_diffusers, from_original)


# One case is enough: the scan does not depend on the patch (and CPU compile time is precious).
@pytest.mark.parametrize("case", ["p122_h2_d16"], indirect=True)
def test_scanned_params_convert_both_ways_and_match(case):
  module, params = convert.load_diffusers_transformer(case["state_dict"], case["config"], scan_layers=True,
                                                      remat_policy="full")
  out = np.asarray(_jit(module.apply)({"params": params}, *case["inputs"]))
  ref = case["ref"]
  assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()
  unscanned = wan_params.unstack_block_params(params)
  _, direct = convert.load_diffusers_transformer(case["state_dict"], case["config"])
  jax.tree.map(np.testing.assert_array_equal, unscanned, direct)
  restacked = wan_params.stack_block_params(unscanned, module.config.num_layers)
  jax.tree.map(np.testing.assert_array_equal, restacked, params)


def test_bad_state_dicts_list_the_keys(case):
  sd = dict(case["state_dict"])
  sd["blocks.0.attn1.extra.weight"] = np.zeros(3, np.float32)
  del sd["proj_out.bias"]
  sd["blocks.1.ffn.net.2.weight"] = sd["blocks.1.ffn.net.2.weight"][:, :-1]
  with pytest.raises(ValueError) as info:
    convert.load_diffusers_transformer(sd, case["config"])
  msg = str(info.value)
  assert "blocks.0.attn1.extra.weight" in msg and "proj_out.bias" in msg and "blocks.1.ffn.net.2.weight" in msg


def test_safetensors_single_sharded_and_bf16(case, tmp_path):
  import json
  import ml_dtypes
  from safetensors.numpy import save_file
  sd = case["state_dict"]
  names = sorted(sd)
  save_file({k: sd[k] for k in names}, str(tmp_path / "model.safetensors"))
  loaded = checkpoint_io.load_safetensors(tmp_path / "model.safetensors")
  assert sorted(loaded) == names and all(np.array_equal(loaded[k], sd[k]) for k in names)
  shard_dir = tmp_path / "sharded"
  shard_dir.mkdir()
  halves = [names[: len(names) // 2], names[len(names) // 2:]]
  weight_map = {}
  for i, part in enumerate(halves):
    fname = f"model-{i + 1:05d}-of-00002.safetensors"
    save_file({k: sd[k] for k in part}, str(shard_dir / fname))
    weight_map.update({k: fname for k in part})
  (shard_dir / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
  loaded = checkpoint_io.load_safetensors(shard_dir)
  assert sorted(loaded) == names and all(np.array_equal(loaded[k], sd[k]) for k in names)
  # BF16 (NumPy has no bfloat16): written through torch's safetensors writer, read back without torch.
  from safetensors.torch import save_file as save_torch
  save_torch({"a": torch.tensor([[1.5, -2.25], [3.0, 0.1]], dtype=torch.bfloat16), "b": torch.arange(3)},
             str(tmp_path / "bf16.safetensors"))
  loaded = checkpoint_io.load_safetensors(tmp_path / "bf16.safetensors")
  expected = np.array([[1.5, -2.25], [3.0, 0.1]], np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)
  np.testing.assert_array_equal(loaded["a"], expected)
  np.testing.assert_array_equal(loaded["b"], np.arange(3))
  with pytest.raises(FileNotFoundError, match="nope"):
    checkpoint_io.load_safetensors(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("preset", ["wan2.1-t2v-1.3b", "wan2.1-t2v-14b"])
def test_preset_parameter_counts_match_pytorch(preset):
  cfg = wan.get_config(preset, camera_mode="none", scan_layers=True)
  inputs = wan_params.example_inputs(cfg, latent_shape=(1, 2, 2), context_length=1, with_reference=False)
  shapes = jax.eval_shape(lambda: wan.WanDiT(cfg).init(jax.random.key(0), **inputs))
  ours = wan_params.count_params(shapes["params"])
  with torch.device("meta"):
    ref = diffusers.WanTransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=cfg.cross_attn_norm, eps=cfg.eps)
  theirs = sum(p.numel() for p in ref.parameters())
  assert ours == theirs
  expected = {"wan2.1-t2v-1.3b": (1.3e9, 1.5e9), "wan2.1-t2v-14b": (13.5e9, 14.5e9)}[preset]
  assert expected[0] < ours < expected[1]


class _ReCamMasterAttn(torch.nn.Module):
  """Wraps a diffusers ``attn1``: adds the camera embedding to its input, ``projector`` on its output
  (the released ReCamMaster DiTBlock injection, re-implemented independently in torch)."""

  def __init__(self, attn, cam_tokens, dim, gen):
    super().__init__()
    self.attn, self.cam_tokens = attn, cam_tokens
    self.cam_encoder = torch.nn.Linear(12, dim)
    self.projector = torch.nn.Linear(dim, dim)
    with torch.no_grad():
      for p in list(self.cam_encoder.parameters()) + list(self.projector.parameters()):
        p.copy_(0.2 * torch.randn(p.shape, generator=gen))

  def forward(self, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
    x = hidden_states + self.cam_encoder(self.cam_tokens)
    return self.projector(self.attn(x, encoder_hidden_states, attention_mask, rotary_emb))


@pytest.mark.parametrize("camera", [False, True])
def test_novel_view_layout_matches_diffusers_on_concatenated_frames(camera):
  """Distinct-RoPE [target | reference] = diffusers on the frame-concatenated video (frames 0..2F−1);
  with ``camera`` the ReCamMaster injection is checked against a torch re-implementation."""
  spec = CASES["p122_h2_d16"]
  model = random_diffusers(spec["model"], seed=11)
  latents, timestep, context = _inputs(spec["model"], spec["latent"], seed=5)
  reference = np.random.default_rng(6).standard_normal(latents.shape).astype(np.float32)
  cfg = convert.config_from_diffusers(dict(model.config), camera_mode="recammaster" if camera else "none")
  state_dict = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
  kwargs = {}
  if camera:
    ex = wan_params.example_inputs(cfg, batch_size=2, latent_shape=spec["latent"], seed=2)
    cams = ex["cameras"]
    kwargs["cameras"] = cams
    # ReCamMaster's features, straight from its recipe: inv(c2w_ref[0]) @ c2w_tgt at RGB frames 0,4,..
    rel = np.linalg.inv(cams["reference_cam_to_world"][:, :1]) @ cams["target_cam_to_world"]
    feats = rel[:, cfg.frames_per_latent - 1::cfg.frames_per_latent, :3, :].reshape(2, -1, 12)
    f, h, w = spec["latent"]
    tok = np.repeat(feats, (h // 2) * (w // 2), axis=1)
    tok = torch.from_numpy(np.concatenate([tok, tok], axis=1).astype(np.float32))  # repeated onto the reference
    gen = torch.Generator().manual_seed(3)
    for i, block in enumerate(model.blocks):
      block.attn1 = _ReCamMasterAttn(block.attn1, tok, cfg.dim, gen)
      for sub in ("cam_encoder", "projector"):
        for leaf in ("weight", "bias"):
          state_dict[f"blocks.{i}.{sub}.{leaf}"] = getattr(getattr(block.attn1, sub), leaf).detach().numpy().copy()
  joint = np.concatenate([latents, reference], axis=1)
  ref = _reference(model, joint, timestep, context)[:, :latents.shape[1]]
  module, params = convert.load_diffusers_transformer(state_dict, dict(model.config), camera_mode=cfg.camera_mode)
  out = np.asarray(_jit(lambda p: module.apply({"params": p}, latents, timestep, context,
                                                  reference_latents=reference, **kwargs))(params))
  assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("case", ["p122_h2_d16"], indirect=True)
def test_plain_wan_weights_into_a_plucker_model(case):
  """Pretrained Wan + fresh Plücker modules: zero-initialised projections, all other weights imported."""
  cfg = convert.config_from_diffusers(case["config"], camera_mode="plucker")
  with pytest.raises(ValueError, match="camera_proj"):
    convert.convert_state_dict(case["state_dict"], cfg)
  params = convert.convert_state_dict(case["state_dict"], cfg, init_missing_camera=True)
  _, plain = convert.load_diffusers_transformer(case["state_dict"], case["config"])
  for i in range(cfg.num_layers):
    np.testing.assert_array_equal(params[f"blocks_{i}"]["camera_proj"]["kernel"], 0.0)
    np.testing.assert_array_equal(params[f"blocks_{i}"]["attn1"]["to_q"]["kernel"],
                                  plain[f"blocks_{i}"]["attn1"]["to_q"]["kernel"])
  assert float(np.abs(params["camera_encoder"]["patch"]["kernel"]).max()) > 0
