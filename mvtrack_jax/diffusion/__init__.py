"""mvtrack_jax.diffusion: the flow-matching schedule (and, later, the sampler)."""

from mvtrack_jax.diffusion.flow_matching import (
    FlowMatchingSchedule,
    add_noise,
    euler_step,
    shift_sigmas,
    velocity_target,
)

__all__ = ["FlowMatchingSchedule", "add_noise", "euler_step", "shift_sigmas", "velocity_target"]
