"""The paper config's fine-tuning sequence on CPU stand-ins (``mvtrack4gen_recammaster.py:smoke``): a tiny random
Wan VAE, transformer and umT5 saved with save_pretrained; encode the latent cache (and resume it) and the captions,
train from the pretrained transformer on both caches, export to diffusers, generate a decoded mp4 from a prompt."""

import os

import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from mvtrack_jax import run_config  # noqa: E402
from mvtrack_jax import checkpoint_format  # noqa: E402
from mvtrack_jax import export, generate  # noqa: E402
from mvtrack_jax.convert import standins  # noqa: E402
from mvtrack_jax.data import encode_latents, encode_text, feature_cache, pipeline, video_io  # noqa: E402
from mvtrack_jax.models import wan_vae  # noqa: E402
from mvtrack_jax.data import sources  # noqa: E402
from mvtrack_jax import builders  # noqa: E402
from mvtrack_jax.training import metric_writers, tasks, trainer  # noqa: E402
from tests.helpers import load_config  # noqa: E402

Z = 4


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
  """A tiny random diffusers AutoencoderKLWan saved with save_pretrained (stands in for Wan2.1's vae/)."""
  torch.manual_seed(0)
  path = tmp_path_factory.mktemp("wan") / "vae"
  diffusers.AutoencoderKLWan(base_dim=8, z_dim=Z, num_res_blocks=1,
                             latents_mean=[0.1, -0.2, 0.0, 0.3], latents_std=[1.5, 0.5, 1.0, 2.0]).save_pretrained(path)
  return str(path)


@pytest.fixture(scope="module")
def transformer_folder(tmp_path_factory):
  """A tiny random diffusers WanTransformer3DModel with the smoke config's DiT architecture."""
  torch.manual_seed(1)
  path = tmp_path_factory.mktemp("wan") / "transformer"
  diffusers.WanTransformer3DModel(patch_size=(1, 1, 1), num_attention_heads=2, attention_head_dim=64, in_channels=Z,
                                  out_channels=Z, text_dim=32, freq_dim=32, ffn_dim=256,
                                  num_layers=2).save_pretrained(path)
  return str(path)


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
  """Tiny random umT5 + tokenizer in the diffusers Wan layout, and a MultiCamVideo-layout stand-in tree."""
  path = str(tmp_path_factory.mktemp("wan_text"))
  standins.write_standins(path)
  standins.write_multicamvideo(os.path.join(path, "multicamvideo"))
  return path


def _config(vae_path: str, data_dir: str, transformer_path: str = ""):
  c = load_config("mvtrack4gen_recammaster.py", "smoke")
  c.autoencoder.path = vae_path
  c.data.data_dir = data_dir
  c.init.transformer = transformer_path
  return c


def test_cache_train_export_generate(vae_folder, transformer_folder, text_folder, tmp_path, monkeypatch):
  """The paper config's smoke sequence: MultiCamVideo stand-ins (no tracks) mixed 1:1 with the tracked synthetic
  set, both latent-cached, MultiCamVideo captioned, trained from the pretrained transformer."""
  mcv, syn = str(tmp_path / "latents_mcv"), str(tmp_path / "latents_syn")
  config = _config(vae_folder, os.path.join(text_folder, "multicamvideo"), transformer_folder)
  ae = builders.make_autoencoder(run_config.parse(config).autoencoder)
  assert isinstance(ae, wan_vae.WanVAEAutoencoder) and ae.latent_channels == Z

  # Encode each source once (the primary's train split; the synthetic entry is also the evaluation source).
  assert sources.splits_read(config.data) == ["train"]
  assert encode_latents.encode_dataset(config, mcv, ["train"], progress=False) == {"train": 2}
  assert encode_latents.encode_dataset(config, syn, sources.splits_read(config.data, "synthetic"), progress=False,
                                       source="synthetic") == {"train": 2, "validation": 2}
  cached = np.load(feature_cache.record_path(mcv, "train", 0))
  assert cached.shape == (3, 3, 4, 4, Z) and cached.dtype == np.float32  # 3 cameras, 9 frames → 3 latent frames
  # The cache is the VAE's normalised encoding of the pipeline's centred crop of each view.
  record = sources.data_source(config.data, "train", "synthetic")[0]
  pcfg = sources.pipeline_config(config.data, 1, train=False)
  np.testing.assert_allclose(np.load(feature_cache.record_path(syn, "train", 0)),
                             ae.encode(pipeline.resized_video(record["video"], pcfg)), atol=1e-5)

  # Resume: a missing file and a stale temporary from a killed run; only the missing record is redone.
  os.remove(feature_cache.record_path(syn, "train", 1))
  with open(os.path.join(syn, "train", ".tmp-killed.npy"), "wb") as fh:
    fh.write(b"half")
  assert encode_latents.encode_dataset(config, syn, ["train", "validation"], progress=False, source="synthetic") == {
      "train": 1, "validation": 0}
  # Another frame size cannot reuse the cache.
  other = _config(vae_folder, config.data.data_dir)
  other.data.height = 48
  with pytest.raises(ValueError, match="height"):
    encode_latents.encode_dataset(other, mcv, ["train"], progress=False)
  # Some sources cached and others not: refused before any step.
  config.data.latents_dir = mcv
  with pytest.raises(ValueError, match=r"\['synthetic'\] have no latents_dir"):
    tasks.make_iterator(config, "train", 2, seed=0)
  config.data.mixture.synthetic.latents_dir = syn

  # Captions of the MultiCamVideo stand-ins (ReCamMaster's metadata.csv layout): scene1 by folder.
  captions = tmp_path / "metadata.csv"
  captions.write_text('file_name,text\nscene0/videos/cam01.mp4,"a red box, turning"\nscene1,a blue ball rolls\n')
  text_dir = str(tmp_path / "text")
  config.text.encoder = text_folder
  assert encode_text.encode_captions(config, str(captions), text_dir, ["train"], progress=False) == {
      "train": {"encoded": 2, "uncaptioned": 2}}   # scene0's cam02 and cam03
  null = np.load(f"{text_dir}/{feature_cache.NULL_NPY}")
  assert null.shape == (1, 32) and np.load(feature_cache.record_path(text_dir, "train", 0)).shape[0] == 3
  config.text.cache = text_dir

  # Mixed batches: every example carries its source, the cached latents and a context (the synthetic
  # records' is the null context).
  batch = next(tasks.make_iterator(config, "train", 2, seed=0))
  assert batch["context"].shape == (2, config.text.context_length, 32)
  assert batch["target_latents"].shape == (2, 2, 4, 4, Z) and batch["reference_video"].shape == (2, 5, 32, 32, 3)
  assert sorted(batch["source_id"].tolist()) == [0, 1]
  synthetic_row = int(np.argmax(batch["source_id"] == 1))
  np.testing.assert_array_equal(batch["context"][synthetic_row, :1], null)
  assert batch["track_mask"][synthetic_row].any() and not batch["track_mask"][1 - synthetic_row].any()

  # Train on the caches from the pretrained transformer: the encoder must never run.
  def no_encoder(*_):
    raise AssertionError("the trainer ran the VAE encoder")
  monkeypatch.setattr(wan_vae.WanVAEAutoencoder, "encode", no_encoder)
  workdir = str(tmp_path / "run")
  trainer.train_and_evaluate(config, workdir)
  monkeypatch.undo()
  rows = metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  train_rows = [r for r in rows if "loss_corr" in r]
  evals = metric_writers.read_jsonl(os.path.join(workdir, "eval_metrics.jsonl"))
  assert evals and all(r["loss_corr"] > 0 for r in evals)   # evaluated on the synthetic (tracked) validation split
  # The synthetic source has diffusion_weight 0 in training, but validation scores L_diff on every example.
  assert all(r["loss_diff"] > 0 for r in evals)
  assert rows[-1]["step"] == config.num_train_steps and all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
  assert len(train_rows) == config.num_train_steps and all(r["corr_rows"] > 0 and r["loss_corr"] > 0 for r in train_rows)
  assert all(r["examples/multicamvideo"] == 1 and r["examples/synthetic"] == 1 for r in train_rows), train_rows
  # Frozen weights are still the pretrained ones (the FFNs are not trainable in the paper config).
  _, trees = checkpoint_format.read_params(os.path.join(workdir, "checkpoints"), keys=("params",))
  reference = diffusers.WanTransformer3DModel.from_pretrained(transformer_folder).state_dict()
  np.testing.assert_array_equal(trees["params"]["dit"]["blocks_0"]["ffn_in"]["kernel"],
                                reference["blocks.0.ffn.net.0.proj.weight"].numpy().T)
  # The null context is the cache's empty-prompt embedding, zero-padded, and stays frozen.
  stored = trees["params"]["text"]["null_context"]
  np.testing.assert_array_equal(stored[:1], null)
  assert stored.shape == (config.text.context_length, 32) and not stored[1:].any()

  # Export for diffusers: it loads the fine-tuned transformer with no missing or unexpected key.
  export.export(workdir, str(tmp_path / "diffusers"), fmt="diffusers")
  _, loading = diffusers.WanTransformer3DModel.from_pretrained(str(tmp_path / "diffusers"), output_loading_info=True)
  assert not loading["missing_keys"] and not loading["unexpected_keys"]

  # Generate decodes the sample with the VAE into an mp4 of the input's 5 frames.
  out = tmp_path / "gen"
  info = generate.run(workdir, "dataset:train:0", "arc_left", str(out), steps=2, grid=2, progress=False,
                      prompt="a red box, turning")
  assert video_io.read_video(out / "target.mp4").shape == (5, 32, 32, 3)
  assert info["guidance_active"] and info["prompt"] == "a red box, turning"


def test_without_cache_the_iterator_encodes(vae_folder, text_folder):
  config = _config(vae_folder, os.path.join(text_folder, "multicamvideo"))
  batch = next(tasks.make_iterator(config, "train", 2, seed=0))
  ae = builders.make_autoencoder(run_config.parse(config).autoencoder)
  np.testing.assert_allclose(batch["target_latents"], ae.encode(batch["target_video"]), atol=1e-6)
  assert batch["reference_latents"].shape == (2, 2, 4, 4, Z)


def test_autoencoder_refuses_tracing_and_missing_weights(vae_folder):
  import jax
  ae = builders.make_autoencoder(run_config.parse(_config(vae_folder, "")).autoencoder)
  with pytest.raises(ValueError, match="traced"):
    jax.jit(ae.encode)(np.zeros((1, 5, 16, 16, 3), np.uint8))
  with pytest.raises(ValueError, match="non-finite"):
    ae.decode(np.full((1, 1, 2, 2, Z), np.nan, np.float32))
  mismatched = _config(vae_folder, "")
  mismatched.autoencoder.vae = ml_collections.ConfigDict({"latents_std": [1.0] * 16})
  with pytest.raises(ValueError, match="z_dim is 4 but its config has 4 latents_mean and 16 latents_std"):
    builders.make_autoencoder(run_config.parse(mismatched).autoencoder)
  empty = _config("", "")
  with pytest.raises(ValueError, match="path is empty"):
    builders.make_autoencoder(run_config.parse(empty).autoencoder).encode(np.zeros((1, 5, 16, 16, 3), np.uint8))


def test_cache_files_have_the_mode_of_any_other_output(tmp_path):
  """mkstemp's 0600 leaked into cache files (other outputs follow the umask)."""
  path = feature_cache.record_path(str(tmp_path), "train", 3)
  feature_cache.write_atomic(path, np.zeros(2, np.float16))
  feature_cache.write_metadata(str(tmp_path), {"dim": 2})
  for written in (path, os.path.join(tmp_path, feature_cache.CACHE_JSON)):
    assert os.stat(written).st_mode & 0o777 == video_io.FILE_MODE, written
  assert sorted(os.listdir(tmp_path)) == [feature_cache.CACHE_JSON, "train"]  # no temporary file left
