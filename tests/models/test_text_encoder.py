"""umT5 text encoder: parity with diffusers' WanPipeline.encode_prompt on tiny random stand-ins."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from mvtrack_jax.convert import standins  # noqa: E402
from mvtrack_jax.models import text_encoder  # noqa: E402

PROMPTS = ["A red car  &amp; a dancer.", "", "two dancers spin " * 20]


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("standins"))
  standins.write_standins(out)
  return out


def test_matches_diffusers_wan_pipeline(wan_folder):
  import transformers
  encoder = text_encoder.UMT5TextEncoder(wan_folder, max_length=40)
  ours = encoder.encode(PROMPTS)
  pipe = diffusers.WanPipeline(
      tokenizer=transformers.AutoTokenizer.from_pretrained(f"{wan_folder}/tokenizer"),
      text_encoder=transformers.UMT5EncoderModel.from_pretrained(f"{wan_folder}/text_encoder"),
      vae=diffusers.AutoencoderKLWan.from_pretrained(f"{wan_folder}/vae"),
      scheduler=diffusers.FlowMatchEulerDiscreteScheduler())
  with torch.no_grad():
    ref, neg = pipe.encode_prompt(PROMPTS, negative_prompt=None, max_sequence_length=40, device="cpu")
  ref, neg = ref.numpy(), neg.numpy()
  assert encoder.dim == standins.TEXT_DIM
  # Our rows are diffusers' up to each prompt's token count; diffusers' padding rows are zeros.
  lengths = [o.shape[0] for o in ours]
  assert lengths[1] == 1 and lengths[2] == 40 and 1 < lengths[0] < 40  # "</s>" alone; truncated; in between
  for o, r in zip(ours, ref):
    np.testing.assert_allclose(o, r[:o.shape[0]], atol=1e-6)
    assert not r[o.shape[0]:].any()
  # diffusers' default negative prompt is "", our null context.
  np.testing.assert_allclose(neg[0, :1], ours[1], atol=1e-6)
  assert not neg[0, 1:].any()


def test_clean_prompt_and_errors(wan_folder, tmp_path):
  assert text_encoder.clean_prompt("  a &amp;amp; b\n\t c ") == "a & b c"
  encoder = text_encoder.UMT5TextEncoder(wan_folder, max_length=8)
  with pytest.raises(TypeError, match="one string"):
    encoder.encode("a caption")
  with pytest.raises(TypeError, match="must be strings"):
    encoder.encode(["a", 3])
  with pytest.raises(FileNotFoundError, match="not a folder"):
    text_encoder.UMT5TextEncoder(str(tmp_path / "missing"))
  with pytest.raises(FileNotFoundError, match="no config.json"):
    text_encoder.UMT5TextEncoder(str(tmp_path))
  with pytest.raises(ValueError, match="dtype"):
    text_encoder.UMT5TextEncoder(wan_folder, dtype="int8")
