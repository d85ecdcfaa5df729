"""Models: the camera-conditioned Wan2.1 DiT, its attention backends, 3D RoPE and camera encoders."""

from mvtrack_jax.models.attention import attention
from mvtrack_jax.models.wan import (
    LOGICAL_AXIS_RULES,
    PRESETS,
    WanConfig,
    WanDiT,
    get_config,
    token_grid,
)
from mvtrack_jax.models.wan_params import example_inputs, stack_block_params, unstack_block_params

__all__ = [
    "LOGICAL_AXIS_RULES",
    "PRESETS",
    "WanConfig",
    "WanDiT",
    "attention",
    "example_inputs",
    "get_config",
    "stack_block_params",
    "token_grid",
    "unstack_block_params",
]
