"""The ReDirector backbone: RoCE, the Fun camera adapter, zero-init behaviour, weight import, bad input.

References are written here from the equations (ReDirector, arXiv 2511.19827; DiffSynth
``SimpleAdapter``): RoCE in NumPy complex arithmetic, the adapter in torch's own
``PixelUnshuffle``/``Conv2d`` (the modules the released weights were trained in).
"""

import dataclasses
import functools

import flax
import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from mvtrack_jax.convert import wan as convert
from mvtrack_jax.convert import checkpoint_io
from mvtrack_jax.convert import pretrained
from mvtrack_jax.convert import wan_names
from mvtrack_jax.geometry import intrinsics_from_fov, invert_rigid, look_at
from mvtrack_jax.models import camera as camera_lib
from mvtrack_jax.models import rope as rope_lib
from mvtrack_jax.models import wan
from mvtrack_jax.models import wan_params

_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
CFG = wan.get_config("tiny-redirector")


def _flat(tree):
  return flax.traverse_util.flatten_dict(flax.linen.meta.unbox(tree))


def _init(cfg, inputs, seed=0):
  return flax.linen.meta.unbox(_jit(wan.WanDiT(cfg).init)(jax.random.key(seed), **inputs)["params"])


def _randomise(params, pattern, seed, scale=0.3):
  rng = np.random.default_rng(seed)
  flat = _flat(params)
  for path in flat:
    if pattern in "/".join(path):
      flat[path] = (scale * rng.standard_normal(flat[path].shape)).astype(np.float32)
  return flax.traverse_util.unflatten_dict(flat)


# ----------------------------------------------------------------------------------------------
# RoCE.


def test_phase_width_and_unsupported_head_dims():
  assert rope_lib.roce_phase_pairs(128) == 42 and rope_lib.roce_phase_pairs(48) == 16
  with pytest.raises(ValueError, match=r"head_dim=64 is unsupported.*supported head_dim values include"):
    rope_lib.roce_phase_pairs(64)
  with pytest.raises(ValueError, match=r"WanConfig: roce=True with RoCE: head_dim=64"):
    wan.get_config("tiny-redirector", head_dim=64)
  with pytest.raises(ValueError, match=r"roce must be False unless camera_mode='redirector'"):
    wan.get_config("tiny", roce=True)


def test_zero_phase_is_rope_and_constant_phase_is_shifted_rope():
  d, grid = 48, (2, 3, 4)
  x = np.random.default_rng(0).standard_normal((1, np.prod(grid), 2, d)).astype(np.float32)
  pos = rope_lib.token_positions(*grid)
  rope = lambda p: rope_lib.apply_rope(x, *rope_lib.rope_angles(p, d))
  pairs = rope_lib.roce_phase_pairs(d)
  np.testing.assert_allclose(rope_lib.apply_phase(rope(pos), np.zeros(x.shape[:3] + (pairs,), np.float32)),
                             rope(pos), atol=1e-6)
  # A phase of Δ·ω on every row/column pair (ω: that pair's RoPE frequency) moves the token by Δ rows/columns.
  _, h_dim, w_dim = rope_lib.rope_band_dims(d)
  omega = lambda band: 1.0 / 10000.0 ** (np.arange(0, band, 2) / band)
  shift = np.array([0, 2, -3])
  phase = np.concatenate([shift[1] * omega(h_dim), shift[2] * omega(w_dim)]).astype(np.float32)
  got = rope_lib.apply_phase(rope(pos), np.broadcast_to(phase, x.shape[:3] + (pairs,)))
  np.testing.assert_allclose(got, rope(pos + shift), atol=2e-5)


def _numpy_roce_attention(p, x, cos, sin, camera, num_heads):
  """Self-attention with RoPE + RoCE from the equations, complex NumPy, float64."""
  silu = lambda t: t / (1 + np.exp(-t))
  lin = lambda t, name: t @ p[name]["kernel"].astype(np.float64) + p[name].get("bias", 0.0)
  rms = lambda t, name: t / np.sqrt((t ** 2).mean(-1, keepdims=True) + 1e-6) * p[name]["scale"]
  b, s, dim = x.shape
  d = dim // num_heads
  heads = lambda t: t.reshape(b, s, num_heads, d)
  cplx = lambda t: t[..., 0::2] + 1j * t[..., 1::2]
  real = lambda z: np.stack([z.real, z.imag], -1).reshape(z.shape[:-1] + (2 * z.shape[-1],))
  pad = lambda ph: np.concatenate([np.zeros(ph.shape[:-1] + (d // 2 - ph.shape[-1],)), ph], -1)
  phase_qk = pad(lin(silu(camera), "rope_phase_qk").reshape(b, s, num_heads, -1))  # 'b s (n p)': head-major
  phase_vo = pad(lin(silu(camera), "rope_phase_vo").reshape(b, s, num_heads, -1))
  rot = (cos + 1j * sin)[None, :, None, :]
  q = cplx(heads(rms(lin(x, "to_q"), "norm_q"))) * rot * np.exp(1j * phase_qk)
  k = cplx(heads(rms(lin(x, "to_k"), "norm_k"))) * rot * np.exp(1j * phase_qk)
  v = cplx(heads(lin(x, "to_v"))) * np.exp(-1j * phase_vo)
  q, k, v = real(q), real(k), real(v)
  logits = np.einsum("bsnd,btnd->bnst", q, k) / np.sqrt(d)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  out = lin(np.einsum("bnst,btnd->bsnd", probs, v).reshape(b, s, dim), "to_out")
  return real(cplx(heads(out)) * np.exp(1j * phase_vo)).reshape(b, s, dim)


@pytest.mark.parametrize("backend", ["einsum", "dot_product"])
def test_roce_attention_matches_numpy_equations(backend):
  cfg = dataclasses.replace(CFG, attention_backend=backend)
  rng = np.random.default_rng(1)
  grid = (2, 2, 3)
  s = 2 * int(np.prod(grid))
  x = rng.standard_normal((2, s, cfg.dim)).astype(np.float32)
  camera = rng.standard_normal((2, s, cfg.dim)).astype(np.float32)
  cos, sin = rope_lib.rope_tables(*grid, cfg.head_dim, with_reference=True, rope_mode="shared")
  attn = wan.WanAttention(cfg)
  params = flax.linen.meta.unbox(attn.init(jax.random.key(0), x, rope=(cos, sin), camera=camera)["params"])
  assert not np.any(params["rope_phase_qk"]["kernel"])  # zero-initialised
  params = _randomise(params, "rope_phase", seed=2, scale=0.5)
  params = _randomise(params, "norm_", seed=3, scale=1.0)
  out = attn.apply({"params": params}, x, rope=(cos, sin), camera=camera)[0]
  p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  ref = _numpy_roce_attention(p64, x.astype(np.float64), np.asarray(cos, np.float64), np.asarray(sin, np.float64),
                              camera.astype(np.float64), cfg.num_heads)
  np.testing.assert_allclose(np.asarray(out), ref, atol=1e-4 * np.abs(ref).max())


# ----------------------------------------------------------------------------------------------
# Camera adapter.


def _cameras(batch, frames, height, width, seed=0):
  rng = np.random.default_rng(seed)
  k = np.broadcast_to(intrinsics_from_fov(height, width, 55.0), (batch, frames, 3, 3)).astype(np.float32)
  def orbit(start):
    ang = start + np.linspace(0, 0.4, frames) + rng.uniform(-0.1, 0.1, (batch, 1))
    eye = np.stack([3 * np.sin(ang), 0.2 * np.cos(3 * ang), 3 - 3 * np.cos(ang)], -1)
    return invert_rigid(look_at(eye, np.broadcast_to([0.0, 0.0, 3.0], eye.shape))).astype(np.float32)
  return k, orbit(0.3), orbit(-0.2)


def test_pixel_maps_pack_ray_channel_major():
  k, tgt, ref = _cameras(1, 8, 16, 24)
  maps = np.asarray(camera_lib.plucker_pixel_maps(k, tgt, ref, 16, 24, 4))
  assert maps.shape == (1, 2, 16, 24, 24)
  from mvtrack_jax.geometry import plucker_rays, relative_to_reference  # the per-frame rays, unpacked
  rays = np.asarray(plucker_rays(k, relative_to_reference(tgt, ref[:, :1]), 16, 24))  # (1, 8, H, W, 6)
  for f in range(2):
    for c in range(6):
      for j in range(4):
        np.testing.assert_array_equal(maps[0, f, ..., 4 * c + j], rays[0, 4 * f + j, ..., c])


def test_adapter_matches_torch_simple_adapter():
  torch = pytest.importorskip("torch")
  dim, stride, patch = 16, 4, (2, 2)
  maps = np.random.default_rng(4).standard_normal((2, 3, 16, 24, 24)).astype(np.float32)
  adapter = camera_lib.ControlAdapter(dim, patch, stride)
  params = flax.linen.meta.unbox(adapter.init(jax.random.key(0), maps)["params"])
  params = _randomise(params, "bias", seed=5, scale=0.2)
  out = np.asarray(adapter.apply({"params": params}, maps))
  w = lambda k: torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(k), (3, 2, 0, 1))))
  b = lambda v: torch.from_numpy(np.asarray(v))
  x = torch.from_numpy(maps).reshape(6, 16, 24, 24).permute(0, 3, 1, 2)
  with torch.no_grad():
    x = torch.nn.functional.pixel_unshuffle(x, stride)
    x = torch.nn.functional.conv2d(x, w(params["conv"]["kernel"]), b(params["conv"]["bias"]), stride=2)
    rb = params["residual_blocks_0"]
    h = torch.relu(torch.nn.functional.conv2d(x, w(rb["conv1"]["kernel"]), b(rb["conv1"]["bias"]), padding=1))
    x = x + torch.nn.functional.conv2d(h, w(rb["conv2"]["kernel"]), b(rb["conv2"]["bias"]), padding=1)
  ref = x.permute(0, 2, 3, 1).reshape(2, -1, dim).numpy()
  np.testing.assert_allclose(out, ref, atol=1e-4 * np.abs(ref).max())


# ----------------------------------------------------------------------------------------------
# The whole backbone.


@pytest.fixture(scope="module")
def fun_model():
  """A "pretrained Fun" model: redirector without RoCE, every parameter random (adapter included)."""
  fun = dataclasses.replace(CFG, roce=False)
  inputs = wan_params.example_inputs(fun, latent_shape=(2, 4, 6), image_tokens=5)
  params = _randomise(_init(fun, inputs), "", seed=7, scale=0.2)
  params = _randomise(params, "scale_shift_table", seed=8, scale=0.05)
  return fun, inputs, params


def test_zero_init_roce_leaves_a_pretrained_fun_model_unchanged(fun_model, tmp_path):
  fun, inputs, params = fun_model
  base = np.asarray(_jit(wan.WanDiT(fun).apply)({"params": params}, **inputs))
  # Fun's released file (DiffSynth names) → the RoCE model: the phase layers start at zero.
  _, sd, cam = convert.to_diffusers(params, fun)
  path = str(tmp_path / "fun.safetensors")
  save_file(wan_names.to_original_names({**sd, **cam}), path)
  loaded, report = pretrained.pretrained_params(path, CFG)
  assert sorted(report["fresh"]) == sorted(f"blocks.{i}.attn1.rope_phase_{n}.weight" for i in range(2)
                                           for n in ("qk", "vo"))
  fresh = _init(CFG, inputs)
  merged = flax.traverse_util.flatten_dict(fresh)
  merged.update(flax.traverse_util.flatten_dict(loaded))
  roce_params = flax.traverse_util.unflatten_dict(merged)
  apply = _jit(wan.WanDiT(CFG).apply)
  out = np.asarray(apply({"params": roce_params}, **inputs))
  np.testing.assert_allclose(out, base, atol=1e-5 * np.abs(base).max())
  # ... and trained phases change it.
  moved = _randomise(roce_params, "rope_phase", seed=9, scale=0.5)
  assert np.abs(np.asarray(apply({"params": moved}, **inputs)) - base).max() > 1e-3


@pytest.mark.slow  # keeps make test under its 10-minute budget; run by make test-all
def test_redirector_overlay_import_and_errors(fun_model, tmp_path):
  fun, inputs, params = fun_model
  _, sd, cam = convert.to_diffusers(params, fun)
  base = str(tmp_path / "diffusion_pytorch_model.safetensors")
  save_file(wan_names.to_original_names({**sd, **cam}), base)
  rng = np.random.default_rng(3)
  # ReDirector's step20000.safetensors: the trained self-attention of every block, RoCE included.
  overlay = {}
  for i in range(CFG.num_layers):
    for name in ("q", "k", "v", "o"):
      overlay[f"blocks.{i}.self_attn.{name}.weight"] = rng.standard_normal((CFG.dim, CFG.dim)).astype(np.float32)
    for name in ("qk", "vo"):
      overlay[f"blocks.{i}.self_attn.rope_phase_{name}.1.weight"] = rng.standard_normal(
          (CFG.num_heads * rope_lib.roce_phase_pairs(CFG.head_dim), CFG.dim)).astype(np.float32)
  step = str(tmp_path / "step20000.safetensors")
  save_file(overlay, step)
  loaded, report = pretrained.pretrained_params(base, CFG, overlay=step)
  assert not report["fresh"] and len(report["overlaid"]) == len(overlay)
  np.testing.assert_array_equal(loaded["blocks_1"]["attn1"]["rope_phase_vo"]["kernel"],
                                overlay["blocks.1.self_attn.rope_phase_vo.1.weight"].T)
  np.testing.assert_array_equal(loaded["blocks_0"]["attn1"]["to_q"]["kernel"], overlay["blocks.0.self_attn.q.weight"].T)
  np.testing.assert_array_equal(loaded["blocks_0"]["attn1"]["to_q"]["bias"], np.asarray(params["blocks_0"]["attn1"]
                                                                                           ["to_q"]["bias"]))
  save_file({**overlay, "blocks.0.self_attn.extra.weight": np.zeros((2, 2), np.float32)}, step)
  with pytest.raises(ValueError, match=r"step20000.safetensors: overlay tensors that are not parameters.*"
                                       r"blocks.0.attn1.extra.weight"):
    pretrained.pretrained_params(base, CFG, overlay=step)
  # The Fun base inferred from its names alone.
  found = convert.infer_config(checkpoint_io.read_checkpoint(base)[0], head_dim=CFG.head_dim)
  assert (found.camera_mode, found.rope_mode, found.roce, found.image_dim, found.condition_channels) == (
      "redirector", "shared", False, 32, 16)
  # A plain T2V Wan does not fit a Fun config: the architecture error names the fields.
  plain = dataclasses.replace(fun, camera_mode="none", image_dim=0, condition_channels=0)
  _, plain_sd, _ = convert.to_diffusers(_init(plain, wan_params.example_inputs(plain, with_reference=False)), plain)
  save_file(plain_sd, str(tmp_path / "t2v.safetensors"))
  with pytest.raises(ValueError, match=r"image_dim: checkpoint 0, config 32.*condition_channels: checkpoint 0"):
    pretrained.pretrained_params(str(tmp_path / "t2v.safetensors"), CFG)


@pytest.mark.slow  # keeps make test under its 10-minute budget; run by make test-all
def test_scanned_matches_unscanned_with_probes(fun_model):
  _, inputs, _ = fun_model
  params = _randomise(_init(CFG, inputs), "rope_phase", seed=1, scale=0.3)
  out, probes = wan.WanDiT(CFG).apply({"params": params}, **inputs, probe_layers=(1,))
  scan_cfg = dataclasses.replace(CFG, scan_layers=True, remat_policy="full")
  out_s, probes_s = wan.WanDiT(scan_cfg).apply({"params": wan_params.stack_block_params(params, CFG.num_layers)}, **inputs,
                                               probe_layers=(1,))
  np.testing.assert_allclose(out_s, out, atol=1e-5)
  np.testing.assert_allclose(probes_s[1]["q"], probes[1]["q"], atol=1e-5)
  assert probes[1]["q"].shape == (1, 2 * 2 * 2 * 3, CFG.num_heads, CFG.head_dim)


def test_bad_inputs_name_the_argument(fun_model):
  _, inputs, _ = fun_model
  params = _init(CFG, inputs)
  model = wan.WanDiT(CFG)
  cams = dict(inputs["cameras"])
  del cams["reference_intrinsics"]
  with pytest.raises(ValueError, match=r"cameras lacks 'reference_intrinsics'"):
    model.apply({"params": params}, **dict(inputs, cameras=cams))
  with pytest.raises(ValueError, match=r"cameras is None but config.camera_mode is 'redirector'"):
    model.apply({"params": params}, **dict(inputs, cameras=None))
  with pytest.raises(ValueError, match=r"image_context has shape \(1, 5, 31\), expected \(1, N, 32\)"):
    model.apply({"params": params}, **dict(inputs, image_context=inputs["image_context"][..., :31]))
  with pytest.raises(ValueError, match=r"temporal patch 1 with camera_mode='redirector'"):
    wan.get_config("tiny-redirector", patch_size=(2, 2, 2))


@pytest.mark.slow  # keeps make test under its 10-minute budget; run by make test-all
def test_full_size_preset_parameter_count():
  cfg = wan.get_config("wan2.1-fun-1.3b-control-camera")
  shapes = jax.eval_shape(lambda: wan.WanDiT(cfg).init(
      jax.random.key(0), **wan_params.example_inputs(cfg, latent_shape=(1, 2, 2), context_length=1, image_tokens=1)))
  flat = {"/".join(k): v.shape for k, v in _flat(shapes["params"]).items()}
  assert flat["patch_embedding/kernel"] == (1, 2, 2, 32, 1536)
  assert flat["control_adapter/conv/kernel"] == (2, 2, 24 * 64, 1536)
  assert flat["blocks_0/attn1/rope_phase_qk/kernel"] == (1536, 12 * 42)
  assert flat["image_embedder_ff_0/kernel"] == (1280, 1280)
  # Fun-1.3B-Control-Camera = Wan2.1-T2V-1.3B (its count is checked against PyTorch in test_wan_parity) + 16 more
  # input channels, the image branch and the adapter; RoCE adds 2 × 1536 × 504 per block.
  plain = wan.get_config("wan2.1-t2v-1.3b", camera_mode="none")
  t2v = wan_params.count_params(jax.eval_shape(lambda: wan.WanDiT(plain).init(jax.random.key(0), **wan_params.example_inputs(
      plain, latent_shape=(1, 2, 2), context_length=1, with_reference=False)))["params"])
  extra_in = 16 * 4 * 1536
  image = (2 * 1280 + 1280 * 1280 + 1280 + 1280 * 1536 + 1536 + 2 * 1536) + 30 * (2 * (1536 * 1536 + 1536) + 1536)
  adapter = (1536 * 4 * 1536 + 1536) + 2 * (1536 * 1536 * 9 + 1536)
  roce = 30 * 2 * 1536 * 504
  assert wan_params.count_params(shapes["params"]) == t2v + extra_in + image + adapter + roce
