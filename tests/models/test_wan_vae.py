"""Wan2.1 VAE: parity with diffusers' AutoencoderKLWan on CPU, weight import, bad input, memory."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from mvtrack_jax.convert import wan_vae as convert  # noqa: E402
from mvtrack_jax.models import wan_vae  # noqa: E402

# Tiny random configs: different widths, latent sizes, depths and temporal layouts.
CONFIGS = [
    dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 4, 4], num_res_blocks=1, temperal_downsample=[False, True, True]),
    dict(base_dim=12, z_dim=6, dim_mult=[1, 2, 2, 2], num_res_blocks=2, temperal_downsample=[True, False, True]),
]


def _reference(cfg, seed=0):
  torch.manual_seed(seed)
  model = diffusers.AutoencoderKLWan(**cfg).eval()
  # Random norms too (diffusers initialises gamma to ones), so a wrong gamma layout cannot pass.
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("gamma"):
        p.copy_(1 + 0.2 * torch.randn_like(p))
  state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  return model, state


def _video(b, t, h, w, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, size=(b, t, h, w, 3)).astype(np.float32)


def _to_torch(video):
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(video, -1, 1)))


def _from_torch(x):
  return np.moveaxis(x.detach().numpy(), 1, -1)


def _close(got, ref, what):
  err = np.max(np.abs(np.asarray(got) - ref))
  scale = np.max(np.abs(ref))
  assert err <= 1e-4 * scale, f"{what}: max |diff| {err:.3g} > 1e-4 × max |ref| {scale:.3g}"


@pytest.mark.parametrize("cfg_index", range(len(CONFIGS)))
@pytest.mark.parametrize("frames", [1, 5, 9])
def test_encode_decode_match_diffusers(cfg_index, frames):
  cfg = CONFIGS[cfg_index]
  model, state = _reference(cfg, seed=cfg_index)
  module, params = convert.load_diffusers_vae(state, cfg)
  video = _video(1, frames, 16, 24, seed=frames)          # non-square
  with torch.no_grad():
    dist = model.encode(_to_torch(video)).latent_dist
    ref_mean, ref_logvar = _from_torch(dist.mean), _from_torch(dist.logvar)
  mean, logvar = jax.jit(lambda p, v: module.apply({"params": p}, v, method="encode"))(params, video)
  assert mean.shape == (1, 1 + (frames - 1) // 4, 2, 3, cfg["z_dim"])
  _close(mean, ref_mean, "encode mean")
  _close(logvar, ref_logvar, "encode logvar")
  latents = np.asarray(ref_mean) * 3.0                     # push the decoder out of its linear range
  with torch.no_grad():
    ref_video = _from_torch(model.decode(_to_torch(latents)).sample)
  got = jax.jit(lambda p, z: module.apply({"params": p}, z, method="decode"))(params, latents)
  assert got.shape == video.shape
  _close(got, ref_video, "decode")


def test_tiled_encode_decode_match_diffusers():
  cfg = CONFIGS[0]
  model, state = _reference(cfg, seed=3)
  module, params = convert.load_diffusers_vae(state, cfg)
  model.enable_tiling(tile_sample_min_height=16, tile_sample_min_width=16, tile_sample_stride_height=8,
                      tile_sample_stride_width=8)
  tiling = wan_vae.Tiling(16, 16, 8, 8)
  video = _video(1, 5, 16, 24, seed=4)        # 2 × 3 tiles: blended across rows and columns
  with torch.no_grad():
    ref_mean = _from_torch(model.encode(_to_torch(video)).latent_dist.mean)
    ref_video = _from_torch(model.decode(_to_torch(ref_mean)).sample)
  encode = jax.jit(lambda p, v, t: module.apply({"params": p}, v, t, method="encode")[0], static_argnums=2)
  decode = jax.jit(lambda p, z, t: module.apply({"params": p}, z, t, method="decode"), static_argnums=2)
  mean = encode(params, video, tiling)
  _close(mean, ref_mean, "tiled encode")
  _close(decode(params, ref_mean, tiling), ref_video, "tiled decode")
  # Tiles change the result (diffusers' tiling is an approximation), so the tiled path really ran.
  assert not np.allclose(mean, encode(params, video, None), atol=1e-6)


def test_original_checkpoint_names(tmp_path):
  """Original Wan2.1_VAE.pth names (diffusers' own converter gives the inverse map) load to the same params."""
  from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
  cfg = dict(CONFIGS[0], num_res_blocks=2)
  _, state = _reference(cfg, seed=5)
  cfg_obj = wan_vae.WanVAEConfig.from_diffusers(cfg)
  # Build original names by inverting diffusers' converter on a probe of every original key pattern.
  inverse = {}
  for orig in _original_names(cfg_obj):
    converted = convert_wan_vae_to_diffusers({orig: 0})
    (name,) = converted
    inverse[name] = orig
  assert set(inverse) == set(state), sorted(set(state) ^ set(inverse))[:10]
  original = {inverse[k]: v for k, v in state.items()}
  assert convert.original_to_diffusers_names(original, cfg_obj) == state
  path = tmp_path / "Wan2.1_VAE.pth"
  torch.save({k: torch.from_numpy(v) for k, v in original.items()}, path)
  # Original files carry no config: Wan2.1's architecture is assumed unless fields are given.
  with pytest.raises(ValueError, match="wrong shapes"):
    convert.load_vae(path)
  module, params = convert.load_vae(path, **cfg)
  _, ref = convert.load_diffusers_vae(state, cfg)
  assert module.config.base_dim == 8
  jax.tree.map(np.testing.assert_array_equal, params, ref)


def _original_names(cfg):
  """Every key of the original Wan2.1 VAE module tree for ``cfg`` (from its constructor's layout)."""
  names = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]
  res = lambda p, sc: [f"{p}.residual.0.gamma", f"{p}.residual.2.weight", f"{p}.residual.2.bias",
                       f"{p}.residual.3.gamma", f"{p}.residual.6.weight", f"{p}.residual.6.bias"] + (
                           [f"{p}.shortcut.weight", f"{p}.shortcut.bias"] if sc else [])
  dims = [cfg.base_dim * m for m in (1,) + cfg.dim_mult]
  idx = 0
  for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
    for _ in range(cfg.num_res_blocks):
      names += res(f"encoder.downsamples.{idx}", a != b)
      a, idx = b, idx + 1
    if i != len(cfg.dim_mult) - 1:
      names += [f"encoder.downsamples.{idx}.resample.1.weight", f"encoder.downsamples.{idx}.resample.1.bias"]
      if cfg.temperal_downsample[i]:
        names += [f"encoder.downsamples.{idx}.time_conv.weight", f"encoder.downsamples.{idx}.time_conv.bias"]
      idx += 1
  up = cfg.temperal_downsample[::-1]
  ddims = [cfg.base_dim * m for m in (cfg.dim_mult[-1],) + cfg.dim_mult[::-1]]
  idx = 0
  for i, (a, b) in enumerate(zip(ddims[:-1], ddims[1:])):
    a = a // 2 if i > 0 else a
    for _ in range(cfg.num_res_blocks + 1):
      names += res(f"decoder.upsamples.{idx}", a != b)
      a, idx = b, idx + 1
    if i != len(cfg.dim_mult) - 1:
      names += [f"decoder.upsamples.{idx}.resample.1.weight", f"decoder.upsamples.{idx}.resample.1.bias"]
      if up[i]:
        names += [f"decoder.upsamples.{idx}.time_conv.weight", f"decoder.upsamples.{idx}.time_conv.bias"]
      idx += 1
  for side in ("encoder", "decoder"):
    names += [f"{side}.conv1.weight", f"{side}.conv1.bias", f"{side}.head.0.gamma", f"{side}.head.2.weight",
              f"{side}.head.2.bias", f"{side}.middle.1.norm.gamma", f"{side}.middle.1.to_qkv.weight",
              f"{side}.middle.1.to_qkv.bias", f"{side}.middle.1.proj.weight", f"{side}.middle.1.proj.bias"]
    names += res(f"{side}.middle.0", False) + res(f"{side}.middle.2", False)
  return names


def test_diffusers_folder(tmp_path):
  cfg = CONFIGS[1]
  model, state = _reference(cfg, seed=6)
  model.save_pretrained(tmp_path / "vae")
  module, params = convert.load_vae(tmp_path / "vae")
  _, ref = convert.load_diffusers_vae(state, cfg)
  jax.tree.map(np.testing.assert_array_equal, params, ref)
  assert module.config.z_dim == 6 and module.config.temperal_downsample == (True, False, True)


def test_full_size_parameter_count():
  ref = diffusers.AutoencoderKLWan()   # Wan2.1 defaults, random init: 126.9 M parameters
  n_ref = sum(p.numel() for p in ref.parameters())
  assert convert.num_params(wan_vae.WanVAEConfig()) == n_ref
  assert round(n_ref / 1e6, 1) == 126.9


def test_bad_inputs_name_what_is_wrong():
  cfg = CONFIGS[0]
  _, state = _reference(cfg)
  module, params = convert.load_diffusers_vae(state, cfg)
  enc = lambda v: module.apply({"params": params}, v, method="encode")
  with pytest.raises(ValueError, match=r"T = 1 \+ 4k frames, got T=4"):
    enc(_video(1, 4, 16, 16))
  with pytest.raises(ValueError, match=r"multiples of 8, got 12×16"):
    enc(_video(1, 5, 12, 16))
  with pytest.raises(ValueError, match=r"\(B, T, H, W, 3\), got shape \(1, 5, 16, 16, 4\)"):
    enc(np.zeros((1, 5, 16, 16, 4), np.float32))
  nan = _video(1, 5, 16, 16)
  nan[0, 2, 3, 4] = np.nan
  with pytest.raises(ValueError, match=r"video has 3 non-finite values"):
    enc(nan)
  with pytest.raises(ValueError, match=r"latents must be \(B, T, H, W, 4\)"):
    module.apply({"params": params}, np.zeros((1, 2, 2, 2, 16), np.float32), method="decode")
  bad = dict(state)
  bad["encoder.conv_in.weight"] = bad["encoder.conv_in.weight"][:, :, :1]
  del bad["decoder.conv_out.bias"]
  bad["encoder.extra.weight"] = np.zeros(3, np.float32)
  with pytest.raises(ValueError) as e:
    convert.load_diffusers_vae(bad, cfg)
  msg = str(e.value)
  assert "encoder.conv_in.weight: got (8, 3, 1, 3, 3)" in msg and "expected (3, 3, 3, 3, 8)" in msg
  assert "missing keys (1): ['decoder.conv_out.bias']" in msg and "encoder.extra.weight" in msg
  with pytest.raises(ValueError, match="is_residual"):
    wan_vae.WanVAEConfig.from_diffusers(dict(cfg, is_residual=True))


def test_decode_memory_flat_in_time():
  """The scanned decoder's temp memory does not grow with the number of latent frames."""
  cfg = wan_vae.WanVAEConfig(base_dim=8, z_dim=4, num_res_blocks=1)
  module = wan_vae.WanVAE(cfg)
  params = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, 5, 16, 16, 3))))["params"]

  def temp_bytes(frames):
    z = jax.ShapeDtypeStruct((1, frames, 4, 4, 4), jnp.float32)
    fn = jax.jit(lambda p, z: module.apply({"params": p}, z, method="decode"))
    return fn.lower(params, z).compile().memory_analysis().temp_size_in_bytes

  small, large = temp_bytes(3), temp_bytes(12)
  out_growth = (12 - 3) * 4 * 32 * 32 * 3 * 4     # the larger output itself (bytes)
  assert large <= small + 2 * out_growth, (small, large)


def test_latent_normalisation_round_trip():
  cfg = wan_vae.WanVAEConfig()
  z = np.random.default_rng(0).normal(size=(1, 2, 3, 3, 16)).astype(np.float32)
  n = wan_vae.normalize_latents(z, cfg)
  np.testing.assert_allclose(n[..., 0], (z[..., 0] + 0.7571) / 2.8184, rtol=1e-5)
  np.testing.assert_allclose(wan_vae.denormalize_latents(n, cfg), z, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="z_dim"):
    wan_vae.normalize_latents(z[..., :4], cfg)
