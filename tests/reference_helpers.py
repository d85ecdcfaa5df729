"""Helpers the torch reference tests share (diffusers models to compare against, checkpoint name tables written
independently of the project's). Imported only by tests that have skipped themselves when torch or diffusers is
missing (``pytest.importorskip``)."""

import re

import numpy as np
import torch
import diffusers


def random_diffusers(model_kwargs, seed):
  """A diffusers ``WanTransformer3DModel(**model_kwargs)`` with every parameter random (diffusers zero/one-initialises
  some, which would hide mistakes), seeded."""
  torch.manual_seed(seed)
  model = diffusers.WanTransformer3DModel(**model_kwargs).eval()
  gen = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim >= 2 and "scale_shift_table" not in name:
        p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p[0].numel()))
      elif name.endswith("norm_q.weight") or name.endswith("norm_k.weight") or name.endswith("norm2.weight"):
        p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
      else:
        p.copy_(0.3 * torch.randn(p.shape, generator=gen))
  return model


def to_original(state_dict):
  """diffusers names → original Wan2.1 names (an independent hand-written table)."""
  table = [("condition_embedder.text_embedder.linear_1.", "text_embedding.0."),
           ("condition_embedder.text_embedder.linear_2.", "text_embedding.2."),
           ("condition_embedder.time_embedder.linear_1.", "time_embedding.0."),
           ("condition_embedder.time_embedder.linear_2.", "time_embedding.2."),
           ("condition_embedder.time_proj.", "time_projection.1."), ("proj_out.", "head.head."),
           (".attn1.to_out.0.", ".self_attn.o."), (".attn2.to_out.0.", ".cross_attn.o."),
           (".attn1.to_", ".self_attn."), (".attn2.to_", ".cross_attn."), (".attn1.", ".self_attn."),
           (".attn2.", ".cross_attn."), (".norm2.", ".norm3."), (".ffn.net.0.proj.", ".ffn.0."),
           (".ffn.net.2.", ".ffn.2.")]
  out = {}
  for name, value in state_dict.items():
    new = name
    if name == "scale_shift_table":
      new = "head.modulation"
    elif re.fullmatch(r"blocks\.\d+\.scale_shift_table", name):
      new = name.replace("scale_shift_table", "modulation")
    else:
      for a, b in table:
        if a in new:
          new = new.replace(a, b)
          break
    out["model.diffusion_model." + new] = value
  return out
