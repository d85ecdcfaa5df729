"""python -m mvtrack_jax.data.encode_latents fails fast: bad --out, data_dir or VAE path are named before the VAE is
built (no torch or diffusers needed: the VAE is never built)."""

import pytest

from mvtrack_jax.data import encode_latents
from mvtrack_jax import builders
from tests.helpers import run_cli

CONFIG = "--config=configs/mvtrack4gen_recammaster.py:smoke"


@pytest.fixture
def no_vae(monkeypatch):
  """Building the VAE fails the test: every check must come before it."""
  def built(*_, **__):
    raise AssertionError("the VAE was built before the paths were checked")
  monkeypatch.setattr(builders, "make_autoencoder", built)


def test_out_that_is_a_file_is_named_before_the_vae_is_built(tmp_path, no_vae):
  (tmp_path / "a_file").write_text("x")
  for out in (tmp_path / "a_file", tmp_path / "a_file" / "below"):
    with pytest.raises(NotADirectoryError, match=f"--out {out}: .*is a file"):
      run_cli(encode_latents, CONFIG, f"--config.data.data_dir={tmp_path}", f"--out={out}")


def test_read_only_parent_of_out_is_named(tmp_path, no_vae, locked_dir):
  with pytest.raises(PermissionError, match=f"--out {locked_dir / 'latents'}: cannot write in {locked_dir}"):
    run_cli(encode_latents, CONFIG, f"--config.data.data_dir={tmp_path}", f"--out={locked_dir / 'latents'}")
  assert not (locked_dir / "latents").exists()


def test_missing_inputs_are_named_before_the_vae_is_built(tmp_path, no_vae):
  out = tmp_path / "latents"
  with pytest.raises(FileNotFoundError, match=f"--config.data.data_dir {tmp_path / 'missing'}: no such folder"):
    run_cli(encode_latents, CONFIG, f"--config.data.data_dir={tmp_path / 'missing'}", f"--out={out}")
  with pytest.raises(FileNotFoundError, match=f"--config.autoencoder.path {tmp_path / 'vae'}: no such file or folder"):
    run_cli(encode_latents, CONFIG, f"--config.data.data_dir={tmp_path}",
            f"--config.autoencoder.path={tmp_path / 'vae'}", f"--out={out}")
  with pytest.raises(FileNotFoundError, match=r"--config.data.mixture.synthetic.data_dir .*missing: no such folder"):
    run_cli(encode_latents, CONFIG, f"--config.data.data_dir={tmp_path}", "--config.data.mixture.synthetic.dataset=npz",
            f"--config.data.mixture.synthetic.data_dir={tmp_path / 'missing'}", "--source=synthetic", f"--out={out}")
  assert not out.exists()
