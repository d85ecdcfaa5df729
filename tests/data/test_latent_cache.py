"""Paper-shaped run on the Wan VAE: encode the latent cache, resume it, train on it, generate an mp4."""

import os

import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from mvtrack_jax import generate  # noqa: E402
from mvtrack_jax.data import encode_latents, latent_cache, pipeline, video_io  # noqa: E402
from mvtrack_jax.models import wan_vae  # noqa: E402
from mvtrack_jax.training import tasks, trainer  # noqa: E402
from tests.conftest import load_config  # noqa: E402

Z = 4


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
  """A tiny random diffusers AutoencoderKLWan saved with save_pretrained (stands in for Wan2.1's vae/)."""
  torch.manual_seed(0)
  path = tmp_path_factory.mktemp("wan") / "vae"
  diffusers.AutoencoderKLWan(base_dim=8, z_dim=Z, num_res_blocks=1,
                             latents_mean=[0.1, -0.2, 0.0, 0.3], latents_std=[1.5, 0.5, 1.0, 2.0]).save_pretrained(path)
  return str(path)


def _config(vae_path: str, latents_dir: str):
  c = load_config("default.py", "test")
  c.model.preset = "tiny"
  c.model.overrides.update(dict(patch_size=(1, 1, 1), in_channels=Z, out_channels=Z, vae_stride=8,
                                frames_per_latent=4))
  c.autoencoder = ml_collections.ConfigDict({"kind": "wan", "path": vae_path, "seed": 0,
                                             "vae": ml_collections.ConfigDict(), "tiling": ()})
  with c.data.ignore_type():
    c.data.synthetic = ml_collections.ConfigDict(dict(num_views=2, num_frames=9, height=32, width=48, num_tracks=16,
                                                      num_train=2, num_validation=1, num_test=1))
  c.data.num_frames = 5
  c.data.frame_stride = 1
  c.data.num_query_points = 8
  c.data.latents_dir = latents_dir
  c.checkpoint_every_steps = 3
  return c


def test_cache_train_generate(vae_folder, tmp_path, monkeypatch):
  cache = str(tmp_path / "latents")
  config = _config(vae_folder, cache)
  ae = tasks.make_autoencoder(config)
  assert isinstance(ae, wan_vae.WanVAEAutoencoder) and ae.latent_channels == Z

  # Encode; every record of both splits once, V views of (1 + 2) latent frames of 4 × 4.
  assert encode_latents.encode_dataset(config, cache, ["train", "validation"], progress=False) == {
      "train": 2, "validation": 1}
  cached = np.load(latent_cache.record_path(cache, "train", 0))
  assert cached.shape == (2, 3, 4, 4, Z) and cached.dtype == np.float32
  # The cache is the VAE's normalised encoding of the pipeline's centred crop of each view.
  record = tasks.data_source(config.data, "train")[0]
  pcfg = tasks.pipeline_config(config.data, 1, train=False)
  np.testing.assert_allclose(cached, ae.encode(pipeline.resized_video(record["video"], pcfg)), atol=1e-5)

  # Resume: a missing file and a stale temporary from a killed run; only the missing record is redone.
  os.remove(latent_cache.record_path(cache, "train", 1))
  with open(os.path.join(cache, "train", ".tmp-killed.npy"), "wb") as fh:
    fh.write(b"half")
  assert encode_latents.encode_dataset(config, cache, ["train", "validation"], progress=False) == {
      "train": 1, "validation": 0}
  # Another frame size cannot reuse the cache.
  other = _config(vae_folder, cache)
  other.data.height = 48
  with pytest.raises(ValueError, match="height"):
    encode_latents.encode_dataset(other, cache, ["train"], progress=False)

  # Windows start on the latent stride and carry the matching cached latent frames.
  batch = next(tasks.make_iterator(config, "train", 2, seed=0))
  assert batch["target_latents"].shape == (2, 2, 4, 4, Z) and batch["reference_video"].shape == (2, 5, 32, 32, 3)
  for b in range(2):
    rec = np.stack([np.load(latent_cache.record_path(cache, "train", i)) for i in range(2)])
    windows = [rec[i, v, s:s + 2] for i in range(2) for v in range(2) for s in (0, 1)]
    assert any(np.array_equal(batch["reference_latents"][b], w) for w in windows)

  # Train on the cache: the encoder must never run.
  def no_encoder(*_):
    raise AssertionError("the trainer ran the VAE encoder")
  monkeypatch.setattr(wan_vae.WanVAEAutoencoder, "encode", no_encoder)
  workdir = str(tmp_path / "run")
  trainer.train_and_evaluate(config, workdir)
  monkeypatch.undo()
  import json
  with open(os.path.join(workdir, "metrics.jsonl")) as fh:
    rows = [json.loads(line) for line in fh]
  assert rows[-1]["step"] == 3 and all(np.isfinite(r["loss"]) for r in rows)

  # Generate decodes the sample with the VAE into an mp4 of the input's 5 frames.
  out = tmp_path / "gen"
  info = generate.run(workdir, "dataset:test:0", "arc_left", str(out), steps=2, grid=2, progress=False)
  assert video_io.read_video(out / "target.mp4").shape == (5, 32, 32, 3)
  assert np.isfinite(info["psnr"])


def test_without_cache_the_iterator_encodes(vae_folder):
  config = _config(vae_folder, "")
  batch = next(tasks.make_iterator(config, "train", 1, seed=0))
  ae = tasks.make_autoencoder(config)
  np.testing.assert_allclose(batch["target_latents"], ae.encode(batch["target_video"]), atol=1e-6)
  assert batch["reference_latents"].shape == (1, 2, 4, 4, Z)


def test_autoencoder_refuses_tracing_and_missing_weights(vae_folder):
  import jax
  ae = tasks.make_autoencoder(_config(vae_folder, ""))
  with pytest.raises(ValueError, match="traced"):
    jax.jit(ae.encode)(np.zeros((1, 5, 16, 16, 3), np.uint8))
  with pytest.raises(ValueError, match="non-finite"):
    ae.decode(np.full((1, 1, 2, 2, Z), np.nan, np.float32))
  mismatched = _config(vae_folder, "")
  mismatched.autoencoder.vae = ml_collections.ConfigDict({"latents_std": [1.0] * 16})
  with pytest.raises(ValueError, match="z_dim is 4 but its config has 4 latents_mean and 16 latents_std"):
    tasks.make_autoencoder(mismatched)
  empty = _config("", "")
  with pytest.raises(ValueError, match="path is empty"):
    tasks.make_autoencoder(empty).encode(np.zeros((1, 5, 16, 16, 3), np.uint8))
