"""The CLIP image encoder against transformers' CLIPVisionModel run directly, on a tiny random vision config.

Checked: the features are ``hidden_states[-2]`` (diffusers' ``WanImageToVideoPipeline.encode_image``), which is
the output of every block but the last (Wan's ``use_31_block=True``); ``preprocess="wan"`` is Wan's bicubic squash
of [-1, 1] frames mapped to [0, 1] and CLIP-normalised; ``preprocess="clip"`` is the folder's CLIPImageProcessor.
"""

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("transformers.models.clip.modeling_clip")  # seconds to import: at collection, once

from PIL import Image  # noqa: E402

from mvtrack_jax.convert import standins  # noqa: E402
from mvtrack_jax.models import image_encoder  # noqa: E402


@pytest.fixture(scope="module")
def wan_i2v(tmp_path_factory):
  """A diffusers Wan2.1-I2V-style folder: image_encoder/ (tiny random CLIPVisionModel) + image_processor/."""
  root = tmp_path_factory.mktemp("wan_i2v")
  standins.write_image_encoder(str(root / "image_encoder"), str(root / "image_processor"))
  return str(root)


def _frames(seed=0, n=3, h=40, w=64):
  return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _reference_hidden(folder, pixels):
  """``hidden_states[-2]`` of transformers' CLIPVisionModel on ``pixels``, and the same by running its blocks."""
  model = transformers.CLIPVisionModel.from_pretrained(folder).eval()
  x = torch.from_numpy(pixels)
  with torch.no_grad():
    penultimate = model(pixel_values=x, output_hidden_states=True).hidden_states[-2].numpy()
    h = model.pre_layrnorm(model.embeddings(x))
    for layer in model.encoder.layers[:-1]:  # Wan: self.transformer[:-1](x), no final norm
      out = layer(h, None)
      h = out[0] if isinstance(out, tuple) else out
  return penultimate, h.numpy()


def test_wan_preprocess_and_penultimate_features(wan_i2v):
  enc = image_encoder.CLIPImageEncoder(wan_i2v)
  s = standins.IMAGE_SIZE
  assert (enc.num_tokens, enc.dim, enc.image_size, enc.preprocess) == (standins.IMAGE_TOKENS, standins.IMAGE_DIM, s,
                                                                      "wan")
  frames = _frames()
  # Wan's clip.py: frames in [-1, 1] → bicubic to image_size² (align_corners=False) → [0, 1] → CLIP mean/std.
  x = torch.from_numpy(frames.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
  x = torch.nn.functional.interpolate(x, size=(s, s), mode="bicubic", align_corners=False).mul(0.5).add(0.5)
  mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in ((0.48145466, 0.4578275, 0.40821073),
                                                           (0.26862954, 0.26130258, 0.27577711)))
  expected_pixels = ((x - mean) / std).numpy()
  pixels = enc.pixel_values(frames)
  assert pixels.shape == (3, 3, s, s) and pixels.dtype == np.float32
  np.testing.assert_allclose(pixels, expected_pixels, atol=1e-5)
  features = enc.encode(frames)
  assert features.shape == (3, standins.IMAGE_TOKENS, standins.IMAGE_DIM) and features.dtype == np.float32
  penultimate, blocks = _reference_hidden(os.path.join(wan_i2v, "image_encoder"), pixels)
  np.testing.assert_allclose(features, penultimate, atol=1e-5)
  np.testing.assert_allclose(penultimate, blocks, atol=1e-5)
  # Float frames in [0, 1] are the same frames; batching does not change the result.
  np.testing.assert_allclose(image_encoder.CLIPImageEncoder(wan_i2v, batch_size=2).encode(frames / 255.0), features,
                             atol=1e-5)
  assert enc.encode(frames[:0]).shape == (0, standins.IMAGE_TOKENS, standins.IMAGE_DIM)


def test_clip_preprocess_is_the_folders_image_processor(wan_i2v):
  enc = image_encoder.CLIPImageEncoder(wan_i2v, preprocess="clip")
  frames = _frames(seed=1, h=48, w=80)  # short side resized to 56, centre crop 56²
  processor_dir = os.path.join(wan_i2v, "image_processor")
  pil = [Image.fromarray(f) for f in frames]
  expected = transformers.CLIPImageProcessor.from_pretrained(processor_dir)(images=pil, return_tensors="np")
  pixels = enc.pixel_values(frames)
  np.testing.assert_allclose(pixels, expected["pixel_values"], atol=1e-6)
  if hasattr(transformers, "CLIPImageProcessorPil"):  # the backend used, whether or not torchvision is installed
    pil_pixels = transformers.CLIPImageProcessorPil.from_pretrained(processor_dir)(images=pil, return_tensors="np")
    np.testing.assert_array_equal(pixels, pil_pixels["pixel_values"])
  penultimate, _ = _reference_hidden(os.path.join(wan_i2v, "image_encoder"), pixels)
  np.testing.assert_allclose(enc.encode(frames), penultimate, atol=1e-5)
  # The two preprocessings differ (crop vs squash).
  assert not np.allclose(enc.encode(frames), image_encoder.CLIPImageEncoder(wan_i2v).encode(frames), atol=1e-3)


def test_folder_layouts(wan_i2v, tmp_path):
  frames = _frames(seed=2, n=2)
  expected = image_encoder.CLIPImageEncoder(wan_i2v).encode(frames)
  # The image_encoder/ folder itself; its image_processor/ sibling serves preprocess="clip".
  model_dir = os.path.join(wan_i2v, "image_encoder")
  np.testing.assert_allclose(image_encoder.CLIPImageEncoder(model_dir).encode(frames), expected, atol=1e-6)
  assert image_encoder.resolve_folders(model_dir, "clip") == (model_dir, os.path.join(wan_i2v, "image_processor"))
  # A CLIPVisionModelWithProjection saved by transformers 4.x (weights named vision_model.*, as Wan2.1-I2V's).
  from safetensors.torch import load_file, save_file  # pylint: disable=g-import-not-at-top
  legacy = tmp_path / "legacy"
  legacy.mkdir()
  weights = load_file(os.path.join(model_dir, "model.safetensors"))
  weights = {f"vision_model.{k}": v for k, v in weights.items()} | {"visual_projection.weight": torch.zeros(16, 32)}
  save_file(weights, str(legacy / "model.safetensors"), metadata={"format": "pt"})
  with open(os.path.join(model_dir, "config.json")) as fh:
    config = fh.read().replace('"CLIPVisionModel"', '"CLIPVisionModelWithProjection"')
  (legacy / "config.json").write_text(config)
  np.testing.assert_allclose(image_encoder.CLIPImageEncoder(str(legacy)).encode(frames), expected, atol=1e-6)


def test_bad_paths_and_inputs(wan_i2v, tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError, match=r"image encoder '.*nowhere': not a folder"):
    image_encoder.CLIPImageEncoder(str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match=r"--config.image.encoder '.*': no config.json"):
    image_encoder.resolve_folders(str(tmp_path), flag="--config.image.encoder")
  (tmp_path / "umt5").mkdir()
  (tmp_path / "umt5" / "config.json").write_text('{"model_type": "umt5"}')
  with pytest.raises(ValueError, match=r"is a 'umt5' model; expected a CLIP vision model"):
    image_encoder.CLIPImageEncoder(str(tmp_path / "umt5"))
  bare = tmp_path / "bare"
  bare.mkdir()
  for name in ("config.json", "model.safetensors"):
    os.link(os.path.join(wan_i2v, "image_encoder", name), bare / name)
  with pytest.raises(FileNotFoundError, match=r"preprocess='clip' needs a CLIPImageProcessor"):
    image_encoder.CLIPImageEncoder(str(bare), preprocess="clip")
  with pytest.raises(ValueError, match="preprocess='openai'"):
    image_encoder.CLIPImageEncoder(wan_i2v, preprocess="openai")
  enc = image_encoder.CLIPImageEncoder(str(bare))  # "wan" needs no processor
  for frames, match in [(np.zeros((8, 8, 3), np.uint8), r"\(N, H, W, 3\) RGB \(one frame: pass frame\[None\]\)"),
                        (np.zeros((1, 8, 8, 3), np.int32), "dtype int32"),
                        (np.full((1, 8, 8, 3), 2.0), r"float frames must lie in \[0, 1\]")]:
    with pytest.raises(ValueError, match=match):
      enc.encode(frames)
  monkeypatch.setitem(sys.modules, "transformers", None)
  with pytest.raises(ImportError, match="pip install .*transformers=="):
    image_encoder.CLIPImageEncoder(wan_i2v)
