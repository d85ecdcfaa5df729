"""Wan2.1's image encoder: frames → CLIP ViT-H/14 penultimate-layer tokens, through transformers' ``CLIPVisionModel``.

Wan2.1 image-to-video, Wan2.1-Fun and ReDirector condition the DiT on the CLIP features of one
frame (ReDirector: the reference video's first frame): the hidden states after the **penultimate**
transformer block of the open-clip ``xlm-roberta-large-vit-huge-14`` vision tower, ``(257, 1280)``
per frame (the class token + 16 × 16 patches of a 224² input, width 1280), without the final
LayerNorm or projection. Sources, which this module reproduces (checked by
``tests/models/test_image_encoder.py`` on a tiny random config):

- original Wan (``wan/modules/clip.py``, ``CLIPModel.visual``) and DiffSynth (``WanImageEncoder.encode_image``):
  ``self.model.visual(x, use_31_block=True)``, i.e. the output of blocks 1..31 of 32;
- diffusers ``WanImageToVideoPipeline.encode_image`` (0.42.1):
  ``image_encoder(**image_processor(images=image), output_hidden_states=True).hidden_states[-2]``;
  transformers' ``hidden_states`` is ``(pre-LayerNorm embeddings, block 1, …, block L)``, so ``[-2]`` is
  the output of block ``L − 1`` — the same tensor (:data:`HIDDEN_STATE`).

Two preprocessings (``preprocess``):

- ``"wan"`` (default; original Wan, DiffSynth, hence ReDirector's training features): the whole frame
  is resized to ``image_size²`` (224²) by ``torch.nn.functional.interpolate(mode="bicubic",
  align_corners=False)`` — no crop, the aspect ratio is squashed, no antialiasing — then normalised by
  CLIP's mean/std (:data:`CLIP_MEAN`, :data:`CLIP_STD`). Wan interpolates frames in [-1, 1] and maps
  them to [0, 1] afterwards; interpolation is affine-equivariant, so this equals resizing [0, 1] frames.
- ``"clip"`` (diffusers' pipeline): the folder's ``CLIPImageProcessor`` (PIL bicubic resize of the
  short side to 224, centre crop 224², rescale, normalise). The PIL backend (``CLIPImageProcessorPil``)
  is used whether or not torchvision is installed, so features do not depend on it (diffusers gets
  the PIL backend without torchvision, a torchvision one with it; the two differ by resampling noise).

The model runs in PyTorch (an optional dependency: ``pip install torch==2.13.0 transformers==5.24.0``,
see ``requirements-dev.txt``), once per frame, outside any training step; its outputs are cached by
``python -m mvtrack_jax.data.encode_image``. torch and transformers are imported when an encoder is
built, so the rest of the package never needs them.

Checkpoint layouts accepted as ``path`` (local folders only; nothing is downloaded), see
:func:`resolve_folders`:

- a diffusers Wan2.1 image-to-video folder (``Wan2.1-I2V-14B-480P-Diffusers``): ``path/image_encoder/``
  (``config.json`` + safetensors of a ``CLIPVisionModel`` or ``CLIPVisionModelWithProjection``) and
  ``path/image_processor/`` (``preprocessor_config.json``);
- the model folder itself (``…/image_encoder``), with the processor in it or in a sibling ``image_processor/``;
- a transformers ``CLIPModel`` folder (its vision tower is used; the text tower is ignored).

The processor is only needed for ``preprocess="clip"``. Weight names of transformers 4.x
(``vision_model.…``) and 5.x load alike. The original ``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth``
uses open-clip's names and is not read; use the diffusers folder, which holds the same vision weights.
"""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np

HIDDEN_STATE = -2  # index into transformers' hidden_states: the output of the penultimate block (Wan: use_31_block)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP / open-clip RGB normalisation (Wan's clip.py)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PREPROCESS = ("wan", "clip")
MODEL_TYPES = ("clip_vision_model", "clip")  # config.json model_type of a CLIP vision tower / a full CLIPModel
PROCESSOR_JSON = "preprocessor_config.json"

_INSTALL = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu transformers==5.24.0"


def resolve_folders(path: str | os.PathLike[str], preprocess: str = "wan",
                    flag: str = "image encoder") -> tuple[str, str | None]:
  """``(model folder, processor folder or None)`` of a checkpoint path (module docstring), without loading it.

  Args:
    path: the checkpoint folder.
    preprocess: ``"wan"`` (the processor folder is optional and returned when found) or ``"clip"``
      (it is required).
    flag: what to call ``path`` in errors (e.g. ``"--config.image.encoder"``).

  Raises:
    FileNotFoundError: ``path`` is not a folder, holds no ``config.json`` (nor ``image_encoder/config.json``),
      or, for ``"clip"``, no ``preprocessor_config.json`` is found.
    ValueError: an unknown ``preprocess``, or ``config.json`` is not a CLIP model's (naming its model_type).
  """
  if preprocess not in PREPROCESS:
    raise ValueError(f"{flag}: preprocess={preprocess!r}; expected one of {PREPROCESS}")
  path = os.fspath(path)
  if not path or not os.path.isdir(path):
    raise FileNotFoundError(f"{flag} {path!r}: not a folder (expected a diffusers Wan2.1 image-to-video folder with "
                            "image_encoder/ and image_processor/, or a transformers CLIPVisionModel folder)")
  sub = os.path.join(path, "image_encoder")
  model = sub if os.path.isfile(os.path.join(sub, "config.json")) else path
  config_path = os.path.join(model, "config.json")
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f"{flag} {path!r}: no config.json in it or in its image_encoder/ (expected a "
                            "CLIPVisionModel saved with save_pretrained)")
  with open(config_path) as fh:
    model_type = json.load(fh).get("model_type")
  if model_type not in MODEL_TYPES:
    raise ValueError(f"{flag} {path!r}: {config_path} is a {model_type!r} model; expected a CLIP vision model "
                     f"(model_type {' or '.join(map(repr, MODEL_TYPES))})")
  candidates = [os.path.join(path, "image_processor"), model, os.path.join(os.path.dirname(model), "image_processor")]
  processor = next((c for c in candidates if os.path.isfile(os.path.join(c, PROCESSOR_JSON))), None)
  if processor is None and preprocess == "clip":
    raise FileNotFoundError(f"{flag} {path!r}: preprocess='clip' needs a CLIPImageProcessor ({PROCESSOR_JSON} in "
                            f"{' or '.join(dict.fromkeys(candidates))}); add one or use preprocess='wan'")
  return model, processor


@contextlib.contextmanager
def _quiet_transformers(transformers):
  """transformers logs errors only inside (its per-load key report; unused/missing keys are checked by the caller)."""
  logging = transformers.utils.logging
  level = logging.get_verbosity()
  logging.set_verbosity_error()
  try:
    yield
  finally:
    logging.set_verbosity(level)


class CLIPImageEncoder:
  """A CLIP vision tower of a local checkpoint, giving Wan's image features (module docstring).

  Args:
    path: checkpoint folder (module docstring, :func:`resolve_folders`).
    preprocess: ``"wan"`` (default: bicubic squash to ``image_size²``, no crop) or ``"clip"`` (the
      folder's ``CLIPImageProcessor``: short-side resize, centre crop).
    dtype: torch compute dtype, ``"float32"``, ``"bfloat16"`` or ``"float16"`` (Wan runs CLIP in half
      precision on GPUs); outputs are float32 either way.
    device: torch device, e.g. ``"cpu"`` or ``"cuda"``; None = CUDA when available.
    batch_size: frames per model call.

  Attributes:
    source: ``path`` as given; ``preprocess``; ``image_size``: the model's input side in pixels (224);
    ``num_tokens``: tokens per frame, ``(image_size / patch_size)² + 1`` (257); ``dim``: their width
    (``hidden_size``, 1280 for ViT-H/14).

  Raises:
    ImportError: torch or transformers is missing (the message gives the pinned install line).
    FileNotFoundError: ``path`` is not one of the accepted layouts (the message names it).
    ValueError: an unknown ``preprocess``/``dtype``, ``batch_size`` < 1, weights missing from the
      checkpoint (it is not this model's), or a processor whose crop differs from ``image_size``.
  """

  def __init__(self, path: str | os.PathLike[str], *, preprocess: str = "wan", dtype: str = "float32",
               device: str | None = None, batch_size: int = 16):
    try:
      import torch  # pylint: disable=g-import-not-at-top
      import transformers  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(f"the CLIP image encoder needs torch and transformers ({_INSTALL})") from e
    if dtype not in ("float32", "bfloat16", "float16"):
      raise ValueError(f"CLIPImageEncoder: dtype={dtype!r}; expected 'float32', 'bfloat16' or 'float16'")
    if int(batch_size) < 1:
      raise ValueError(f"CLIPImageEncoder: batch_size must be >= 1, got {batch_size}")
    self.source, self.preprocess = os.fspath(path), preprocess
    model_dir, processor_dir = resolve_folders(self.source, preprocess)
    self.batch_size = int(batch_size)
    self._torch = torch
    self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    transformers.utils.logging.disable_progress_bar()  # one bar per weight file otherwise
    with _quiet_transformers(transformers):
      model, info = transformers.CLIPVisionModel.from_pretrained(model_dir, dtype=getattr(torch, dtype),
                                                                 output_loading_info=True)
    missing = sorted(info.get("missing_keys") or ())
    if missing:
      raise ValueError(f"image encoder {self.source!r}: {len(missing)} weights of the CLIP vision model are missing "
                       f"from {model_dir} (first: {missing[:3]}); is it a CLIP vision checkpoint?")
    self.model = model.to(self.device).eval()
    vision = self.model.config
    self.image_size, self.dim = int(vision.image_size), int(vision.hidden_size)
    self.num_tokens = (self.image_size // int(vision.patch_size)) ** 2 + 1
    self.processor = None
    if preprocess == "clip":
      processor_cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
      self.processor = processor_cls.from_pretrained(processor_dir)
      crop = self.processor.crop_size if self.processor.do_center_crop else {}
      if (crop.get("height"), crop.get("width")) != (self.image_size, self.image_size):
        raise ValueError(f"image encoder {self.source!r}: the image processor in {processor_dir} gives "
                         f"{crop or 'uncropped'} images; the model takes {self.image_size}x{self.image_size}")

  def pixel_values(self, frames: np.ndarray) -> np.ndarray:
    """The model input of ``frames``: ``(N, 3, image_size, image_size)`` float32, normalised (module docstring).

    Args:
      frames: ``(N, H, W, 3)`` RGB, uint8 or float in [0, 1] (for ``"clip"``, floats are rounded to
        uint8 first, the PIL processor's input).

    Raises:
      ValueError: not ``(N, H, W, 3)``, another dtype, or floats outside [0, 1].
    """
    frames = _check_frames(frames)
    if self.preprocess == "clip":
      from PIL import Image  # pylint: disable=g-import-not-at-top  (a dependency of transformers' PIL processor)
      if frames.dtype != np.uint8:
        frames = np.round(frames * 255.0).astype(np.uint8)
      if not len(frames):
        return np.zeros((0, 3, self.image_size, self.image_size), np.float32)
      out = self.processor(images=[Image.fromarray(f) for f in frames], return_tensors="np")["pixel_values"]
      return np.asarray(out, np.float32)
    torch = self._torch
    x = frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)
    if len(x):
      x = torch.nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic",
                                          align_corners=False)
    else:
      x = x.new_zeros((0, 3, self.image_size, self.image_size))
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).numpy()

  def encode(self, frames: np.ndarray) -> np.ndarray:
    """CLIP features of ``frames``: ``(N, num_tokens, dim)`` float32 (``hidden_states[-2]``; module docstring).

    Args:
      frames: ``(N, H, W, 3)`` RGB, uint8 or float in [0, 1]; any size (each is resized).

    Raises:
      ValueError: as :meth:`pixel_values`.
    """
    pixels = self.pixel_values(frames)
    torch = self._torch
    out = [np.zeros((0, self.num_tokens, self.dim), np.float32)]
    for i in range(0, len(pixels), self.batch_size):
      x = torch.from_numpy(pixels[i:i + self.batch_size]).to(self.device, self.model.dtype)
      with torch.no_grad():
        hidden = self.model(pixel_values=x, output_hidden_states=True).hidden_states[HIDDEN_STATE]
      out.append(hidden.float().cpu().numpy())
    return np.concatenate(out)


def _check_frames(frames: np.ndarray) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    hint = " (one frame: pass frame[None])" if frames.ndim == 3 else ""
    raise ValueError(f"CLIPImageEncoder: frames of shape {frames.shape}; expected (N, H, W, 3) RGB{hint}")
  if frames.dtype == np.uint8:
    return frames
  if not np.issubdtype(frames.dtype, np.floating):
    raise ValueError(f"CLIPImageEncoder: frames of dtype {frames.dtype}; expected uint8 or float in [0, 1]")
  if frames.size and not (np.isfinite(frames).all() and frames.min() >= 0.0 and frames.max() <= 1.0):
    raise ValueError(f"CLIPImageEncoder: float frames must lie in [0, 1], got [{np.nanmin(frames):.3g}, "
                     f"{np.nanmax(frames):.3g}] (uint8 frames are divided by 255)")
  return frames
