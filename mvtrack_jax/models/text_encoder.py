"""Wan2.1's text encoder: captions → umT5-XXL token embeddings, through transformers' ``UMT5EncoderModel``.

Wan2.1 (and ReCamMaster, ReDirector) condition the DiT's cross-attention on the last hidden state
of the umT5-XXL encoder: ``(L, 4096)`` per prompt, ``L`` ≤ 512 tokens including the closing
``</s>``; the original code and diffusers' ``WanPipeline`` zero-pad it to 512 rows and use no mask
(the DiT attends to the zero rows too). This module computes exactly diffusers'
``WanPipeline.encode_prompt`` (0.42.1, checked by ``tests/models/test_text_encoder.py``):

1. clean the prompt: ``ftfy.fix_text``, HTML-unescape twice, collapse whitespace, strip;
2. tokenise with the checkpoint's tokenizer (``add_special_tokens``, truncation to ``max_length``);
3. ``UMT5EncoderModel(ids, attention_mask).last_hidden_state`` cut to each prompt's token count.

The empty prompt ``""`` tokenises to ``</s>`` alone, so its embedding has one row: the **null
context** that caption dropout trains and that a prompt-less conditional branch uses (diffusers' default negative
prompt). The negative branch of guidance defaults to :data:`WAN_NEGATIVE_PROMPT` (``inference.novel_view``).

The encoder runs in PyTorch (an optional dependency: ``pip install torch==2.13.0 transformers==5.24.0
ftfy==6.3.1``, see ``requirements-dev.txt``), once per caption, outside any training step; its
outputs are cached by ``python -m mvtrack_jax.data.encode_text``. torch, transformers and ftfy are
imported when an encoder is built, so the rest of the package never needs them.

Checkpoint layouts accepted as ``path`` (local folders only; nothing is downloaded):

- a diffusers Wan2.1 pipeline folder (``Wan2.1-T2V-1.3B-Diffusers``): ``path/text_encoder/``
  (``config.json`` + safetensors) and ``path/tokenizer/``;
- a transformers model folder holding both the model and the tokenizer files.

The original ``models_t5_umt5-xxl-enc-bf16.pth`` uses Wan's own module names and is not read; use the
diffusers folder, which holds the same weights.
"""

from __future__ import annotations

import html
import os
import re
from typing import Sequence

import numpy as np

MAX_LENGTH = 512  # Wan2.1's text length (tokens)
# Wan2.1's standard negative prompt (its sampling config's default), which both backbones' released inference pass
# as the negative branch of guidance: ReCamMaster `inference_recammaster.py`, ReDirector `configs/base.yaml`
# (`eval.negative_prompt`). It lists what to steer away from: oversaturated colours, overexposure, static frames,
# blurred details, subtitles, grey casts, low quality, JPEG artefacts, malformed hands and faces, cluttered
# backgrounds, walking backwards.
WAN_NEGATIVE_PROMPT = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
                       "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，"
                       "形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")

_INSTALL = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu transformers==5.24.0 ftfy==6.3.1"


def clean_prompt(text: str) -> str:
  """Wan's / diffusers' prompt cleaning: ``ftfy.fix_text``, HTML-unescape twice, one space between words.

  Raises:
    ImportError: ftfy is not installed.
  """
  try:
    import ftfy  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"cleaning prompts as Wan does needs ftfy ({_INSTALL})") from e
  text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
  return re.sub(r"\s+", " ", text).strip()


def _folders(path: str) -> tuple[str, str]:
  """``(model folder, tokenizer folder)`` of a checkpoint path (module docstring)."""
  if not os.path.isdir(path):
    raise FileNotFoundError(f"text encoder {path!r}: not a folder (expected a diffusers Wan2.1 folder with "
                            "text_encoder/ and tokenizer/, or a transformers UMT5 model folder with its tokenizer)")
  model = os.path.join(path, "text_encoder") if os.path.isdir(os.path.join(path, "text_encoder")) else path
  tokenizer = os.path.join(path, "tokenizer") if os.path.isdir(os.path.join(path, "tokenizer")) else model
  if not os.path.isfile(os.path.join(model, "config.json")):
    raise FileNotFoundError(f"text encoder {path!r}: no config.json in {model!r} (expected a UMT5EncoderModel "
                            "saved with save_pretrained)")
  if not any(os.path.isfile(os.path.join(tokenizer, f)) for f in ("tokenizer.json", "spiece.model")):
    raise FileNotFoundError(f"text encoder {path!r}: no tokenizer.json or spiece.model in {tokenizer!r}")
  return model, tokenizer


class UMT5TextEncoder:
  """umT5 encoder + tokenizer of a local checkpoint (module docstring).

  Args:
    path: checkpoint folder (module docstring).
    max_length: tokens per prompt after truncation (Wan: 512; the ``context_length`` of the model).
    dtype: torch compute dtype, ``"float32"`` or ``"bfloat16"`` (Wan runs umT5 in bf16 on GPUs).
    device: torch device, e.g. ``"cpu"`` or ``"cuda"``; None = CUDA when available.
    batch_size: prompts per encoder call.

  Attributes:
    source: ``path`` as given; ``dim``: embedding width (``d_model``, 4096 for umT5-XXL).

  Raises:
    ImportError: torch, transformers or ftfy is missing (the message gives the pinned install line).
    FileNotFoundError: ``path`` is not one of the accepted layouts.
    ValueError: ``max_length`` < 1 or an unknown ``dtype``.
  """

  def __init__(self, path: str | os.PathLike[str], *, max_length: int = MAX_LENGTH, dtype: str = "float32",
               device: str | None = None, batch_size: int = 8):
    try:
      import ftfy  # pylint: disable=g-import-not-at-top,unused-import
      import torch  # pylint: disable=g-import-not-at-top
      import transformers  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(f"the umT5 text encoder needs torch, transformers and ftfy ({_INSTALL})") from e
    if int(max_length) < 1:
      raise ValueError(f"UMT5TextEncoder: max_length must be >= 1, got {max_length}")
    if dtype not in ("float32", "bfloat16"):
      raise ValueError(f"UMT5TextEncoder: dtype={dtype!r}; expected 'float32' or 'bfloat16'")
    self.source = os.fspath(path)
    model_dir, tokenizer_dir = _folders(self.source)
    self.max_length, self.batch_size = int(max_length), int(batch_size)
    self._torch = torch
    self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    transformers.utils.logging.disable_progress_bar()  # one bar per weight file otherwise
    self.tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    self.model = transformers.UMT5EncoderModel.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    self.model.to(self.device).eval()
    self.dim = int(self.model.config.d_model)

  def encode(self, prompts: Sequence[str]) -> list[np.ndarray]:
    """Embeddings of ``prompts``: one ``(L_i, dim)`` float32 array each, ``L_i`` = tokens incl. ``</s>``.

    Raises:
      TypeError: ``prompts`` is a single string or holds a non-string.
    """
    if isinstance(prompts, str):
      raise TypeError("UMT5TextEncoder.encode: expected a sequence of prompts, got one string (wrap it in a list)")
    bad = [p for p in prompts if not isinstance(p, str)]
    if bad:
      raise TypeError(f"UMT5TextEncoder.encode: prompts must be strings, got {type(bad[0]).__name__} {bad[0]!r}")
    out = []
    for i in range(0, len(prompts), self.batch_size):
      chunk = [clean_prompt(p) for p in prompts[i:i + self.batch_size]]
      tokens = self.tokenizer(chunk, padding="max_length", max_length=self.max_length, truncation=True,
                              add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
      with self._torch.no_grad():
        hidden = self.model(tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)).last_hidden_state
      lengths = tokens.attention_mask.sum(dim=1).tolist()
      hidden = hidden.float().cpu().numpy()
      out.extend(np.ascontiguousarray(h[:n]) for h, n in zip(hidden, lengths))
    return out

