"""mvtrack_jax.diffusion: the flow-matching schedule and the Euler/CFG sampler."""

from mvtrack_jax.diffusion.flow_matching import (
    FlowMatchingSchedule,
    add_noise,
    euler_step,
    shift_sigmas,
    velocity_target,
)
from mvtrack_jax.diffusion.sampler import euler_sample, guided_velocity

__all__ = ["FlowMatchingSchedule", "add_noise", "euler_sample", "euler_step", "guided_velocity", "shift_sigmas",
           "velocity_target"]
