"""MFU accounting: the 3x convention, the frozen-aware count and the device peak table."""

import re

import pytest

from mvtrack_jax.models import wan
from mvtrack_jax.training import flops
from mvtrack_jax.training import mesh as mesh_lib

RECAMMASTER_TRAINABLE = (r"^dit/.*attn1/", r"^dit/camera_encoder/", r"camera_proj", r"cam_encoder", r"projector",
                         r"^head/")


def _trainable(patterns):
  return lambda path: any(re.search(p, path) for p in patterns)


def test_frozen_aware_counts_by_hand():
  fwd = {"attn_proj": 10.0, "attn_scores": 20.0, "cross_attn_proj": 3.0, "cross_attn_text": 1.0,
         "cross_attn_scores": 2.0, "ffn": 7.0, "camera": 1.0, "camera_embed": 0.5, "patch_embed": 0.25,
         "text_embed": 0.5, "out_head": 0.125}
  # Everything trainable: every backward is 2x forward except those with data on one side, which need
  # dW or the query-side gradient only (1x): the text k/v, the cross-attention scores, the embeddings.
  everything = flops.frozen_aware_train_flops(fwd, 4.0, lambda p: True)
  one_sided = 1.0 + 2.0 + 0.5 + 0.25 + 0.5
  assert everything == pytest.approx(3 * sum(fwd.values()) - one_sided + 3 * 4.0)
  # ReCamMaster's set: dW only for self-attention and the camera modules.
  backward = 2 * 10 + 2 * 20 + 3 + 0 + 2 + 7 + 2 * 1 + 0.5 + 0 + 0 + 0.125
  assert flops.frozen_aware_train_flops(fwd, 4.0, _trainable(RECAMMASTER_TRAINABLE)) == pytest.approx(
      sum(fwd.values()) + backward + 12.0)
  # Nothing in the DiT trained: no backward through it at all.
  assert flops.frozen_aware_train_flops(fwd, 4.0, lambda p: p.startswith("head/")) == pytest.approx(
      sum(fwd.values()) + 0.125 + 12.0)


def test_wan_1_3b_at_65k_tokens():
  cfg = wan.get_config("wan2.1-t2v-1.3b", camera_mode="plucker")
  fwd = flops.dit_forward_flops(cfg, 21 * 30 * 52, text_len=512)
  convention = flops.train_flops_per_example(fwd)
  frozen = flops.frozen_aware_train_flops(fwd, 0.0, _trainable(RECAMMASTER_TRAINABLE))
  assert fwd["attn_scores"] / sum(fwd.values()) > 0.75          # attention dominates at 65k tokens
  assert 0.9 * convention < frozen < 0.99 * convention, frozen / convention  # 95.4 %: the S² terms need both grads


def test_peak_table_tells_sxm_from_pcie():
  assert flops.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
  assert flops.peak_flops("NVIDIA H100 PCIe") == 756e12
  assert flops.peak_flops("NVIDIA H100 NVL") == 835e12
  assert flops.peak_flops("NVIDIA H200") == 989e12
  assert flops.peak_flops("TPU v5 lite") == 197e12 and flops.peak_flops("TPU v6 lite") == 918e12
  assert flops.peak_flops("cpu") is None


def test_per_device_batch_size():
  mesh = mesh_lib.make_mesh((-1, 1, 1), ("data", "fsdp", "tensor"))
  assert mesh_lib.global_batch_size(4, mesh) == 4
  assert mesh_lib.global_batch_size(-2, mesh) == 2 * mesh_lib.num_batch_shards(mesh)
  with pytest.raises(ValueError, match="batch_size=0"):
    mesh_lib.global_batch_size(0, mesh)
