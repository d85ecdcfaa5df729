r"""Tiny random stand-ins of a diffusers Wan2.1 checkpoint, for smoke runs without downloads.

Writes the folder layout of ``Wan2.1-T2V-1.3B-Diffusers`` with tiny random models, each saved by
its library's ``save_pretrained``, so every command of the fine-tuning sequence (docs/training.md, "Fine-tune a
pretrained Wan2.1") runs on a CPU in seconds exactly as it would on the real checkpoint::

  OUT/transformer/   diffusers WanTransformer3DModel: 2 blocks × 128 (2 heads × 64), 4 latent channels,
                     patch 1×1×1, text_dim 32 (the ``tiny`` preset of models.wan)
  OUT/vae/           diffusers AutoencoderKLWan: base_dim 8, z_dim 4, one residual block
  OUT/text_encoder/  transformers UMT5EncoderModel: d_model 32, 2 layers
  OUT/tokenizer/     a 64-piece unigram tokenizer (T5 layout: <pad> 0, </s> 1, <unk> 2; "</s>" appended)
  OUT/image_encoder/ transformers CLIPVisionModel: hidden 32, 2 layers, 56² input in 14² patches, so
                     17 tokens of width 32 per frame (Wan2.1-I2V's is ViT-H/14: 257 × 1280); a DiT
                     fed by it takes image_dim 32
  OUT/image_processor/ a CLIPImageProcessor for it (short side 56, centre crop 56², CLIP mean/std)
  OUT/multicamvideo/ a MultiCamVideo-layout dataset (``write_multicamvideo``): train/f24_aperture5/scene{i}
                     with 3 cameras × 9 frames of 32×48 of synthetic scenes, one lens for all cameras

Run::

  python -m mvtrack_jax.convert.standins --out out/standins
  # e.g. the image cache of the stand-in dataset:
  python -m mvtrack_jax.data.encode_image ... --config.image.encoder=out/standins --out out/image

The weights are random (seeded), so outputs mean nothing; shapes, names and file formats are the real
ones. Needs torch, diffusers, transformers and tokenizers (``requirements-dev.txt``).
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
import numpy as np

from mvtrack_jax import cli
from mvtrack_jax.data import readers
from mvtrack_jax.data import synthetic
from mvtrack_jax.data import video_io
from mvtrack_jax.geometry import cameras as geometry

# A few sentences to fit the stand-in tokenizer's pieces on (any text works; these look like captions).
_CORPUS = (
    "a person walks across a sunny plaza while the camera orbits around them",
    "a red car drives down a wet street at night with neon lights",
    "two dancers spin in an empty hall, the camera slowly pans to the left",
    "textured boxes and spheres rest on a checkered floor under soft light",
)
TEXT_DIM = 32
IMAGE_DIM = 32  # width of the stand-in CLIP features (hidden_size)
IMAGE_SIZE, IMAGE_PATCH = 56, 14
IMAGE_TOKENS = (IMAGE_SIZE // IMAGE_PATCH) ** 2 + 1  # 17: class token + 4 × 4 patches


def write_standins(out: str, seed: int = 0) -> dict[str, str]:
  """Writes the stand-in model folders under ``out`` (module docstring); returns ``{name: folder}``.

  Raises:
    ImportError: torch, diffusers, transformers or tokenizers is missing.
  """
  import diffusers  # pylint: disable=g-import-not-at-top
  import tokenizers  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  folders = {name: os.path.join(out, name)
             for name in ("transformer", "vae", "text_encoder", "tokenizer", "image_encoder", "image_processor")}
  torch.manual_seed(seed)
  diffusers.WanTransformer3DModel(
      patch_size=(1, 1, 1), num_attention_heads=2, attention_head_dim=64, in_channels=4, out_channels=4,
      text_dim=TEXT_DIM, freq_dim=32, ffn_dim=256, num_layers=2).save_pretrained(folders["transformer"])
  diffusers.AutoencoderKLWan(base_dim=8, z_dim=4, num_res_blocks=1, latents_mean=[0.0] * 4,
                             latents_std=[1.0] * 4).save_pretrained(folders["vae"])

  tok = tokenizers.Tokenizer(tokenizers.models.Unigram())
  tok.normalizer = tokenizers.normalizers.NFKC()
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace()
  tok.decoder = tokenizers.decoders.Metaspace()
  tok.train_from_iterator(_CORPUS, tokenizers.trainers.UnigramTrainer(
      vocab_size=64, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"))
  tok.post_processor = tokenizers.processors.TemplateProcessing(
      single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))])
  transformers.T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                               extra_ids=0).save_pretrained(folders["tokenizer"])
  config = transformers.UMT5Config(
      vocab_size=tok.get_vocab_size(), d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
      relative_attention_num_buckets=8, relative_attention_max_distance=16, feed_forward_proj="gated-gelu",
      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
  transformers.UMT5EncoderModel(config).save_pretrained(folders["text_encoder"])
  write_image_encoder(folders["image_encoder"], folders["image_processor"], seed=seed)
  return folders


def write_image_encoder(model_dir: str, processor_dir: str, seed: int = 0) -> None:
  """A tiny random CLIP vision tower in ``model_dir`` and its ``CLIPImageProcessor`` in ``processor_dir``
  (the diffusers Wan2.1-I2V ``image_encoder/`` + ``image_processor/`` layout; module docstring).

  Raises:
    ImportError: torch or transformers is missing.
  """
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  torch.manual_seed(seed)
  config = transformers.CLIPVisionConfig(
      hidden_size=IMAGE_DIM, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=IMAGE_SIZE,
      patch_size=IMAGE_PATCH, projection_dim=16, hidden_act="gelu")  # Wan's ViT-H/14 uses gelu
  transformers.CLIPVisionModel(config).save_pretrained(model_dir)
  processor_cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
  processor_cls(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                image_processor_type="CLIPImageProcessor").save_pretrained(processor_dir)


def write_multicamvideo(out: str, *, num_scenes: int = 2, num_views: int = 3, num_frames: int = 9, height: int = 32,
                        width: int = 48, focal_length_mm: float = 24.0, seed: int = 0) -> list[str]:
  """Writes ``out/train/f{mm}_aperture5/scene{i}`` in the MultiCamVideo layout (``readers.write_multicam_scene``).

  Each scene is ``synthetic.render_scene(seed + i, …)``'s scene and cameras re-rendered with one lens for
  every camera, ``fx = fy = W·f/23.76`` px with the principal point at the centre (what the reader derives
  from the folder name), so videos and cameras are consistent. Returns the scene folders.
  """
  focal_px = width * focal_length_mm / readers.UNREAL_SENSOR_WIDTH_MM
  k = np.array([[focal_px, 0.0, width / 2], [0.0, focal_px, height / 2], [0.0, 0.0, 1.0]])
  sizes = dict(num_views=num_views, num_frames=num_frames, height=height, width=width, num_tracks=1)
  folders = []
  for i in range(num_scenes):
    record = synthetic.render_scene(seed + i, **sizes)
    c2w = geometry.invert_rigid(record["world_to_camera"].astype(np.float64))
    views = synthetic.render_scene_views(seed + i, np.broadcast_to(k, c2w.shape[:2] + (3, 3)), c2w, **sizes)
    folder = os.path.join(out, "train", f"f{focal_length_mm:g}_aperture5", f"scene{i}")
    readers.write_multicam_scene(folder, views)
    folders.append(folder)
  return folders


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS.out:
    raise app.UsageError("--out is required")
  out = video_io.check_output_dir(flags.FLAGS.out)  # before anything is written
  for name, folder in write_standins(out, flags.FLAGS.seed).items():
    print(f"{name}: {folder}")
  scenes = write_multicamvideo(os.path.join(out, "multicamvideo"), seed=flags.FLAGS.seed)
  print(f"multicamvideo: {len(scenes)} scenes in {os.path.join(out, 'multicamvideo')}")


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_string("out", None, "Folder to write (transformer/, vae/, text_encoder/, tokenizer/, image_encoder/, "
                      "image_processor/, multicamvideo/).")
  flags.DEFINE_integer("seed", 0, "torch seed of the random weights.")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
