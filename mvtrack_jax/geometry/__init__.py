"""Camera geometry shared by data, models and evaluation (conventions: docs/design.md §3)."""

from mvtrack_jax.geometry.cameras import (
    camera_rays,
    crop_intrinsics,
    intrinsics_from_fov,
    invert_rigid,
    look_at,
    pixel_centers,
    project_points,
    relative_to_reference,
    scale_intrinsics,
)
from mvtrack_jax.geometry.plucker import plucker_rays

__all__ = [
    "camera_rays",
    "crop_intrinsics",
    "intrinsics_from_fov",
    "invert_rigid",
    "look_at",
    "pixel_centers",
    "plucker_rays",
    "project_points",
    "relative_to_reference",
    "scale_intrinsics",
]
