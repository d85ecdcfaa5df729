"""Weight conversion: PyTorch Wan2.1 / diffusers / ReCamMaster checkpoints → Flax params."""

from mvtrack_jax.convert.wan import (
    config_from_diffusers,
    convert_state_dict,
    infer_config,
    load_diffusers_transformer,
    load_original_transformer,
)
from mvtrack_jax.convert.checkpoint_io import load_safetensors

__all__ = [
    "config_from_diffusers",
    "convert_state_dict",
    "infer_config",
    "load_diffusers_transformer",
    "load_original_transformer",
    "load_safetensors",
]
