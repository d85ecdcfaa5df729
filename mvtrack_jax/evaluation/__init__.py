"""Evaluation metrics of novel-view generation and tracking (docs/design.md §4.6).

Submodules (imported lazily, so that e.g. the jitted training step can use ``tapvid`` without
pulling in OpenCV or scikit-image):

- ``tapvid``: TAP-Vid AJ / δ_avg / OA (NumPy or ``jax.numpy``, jit-able) and the conversion from
  the project's track layout (``to_tapvid_format``, ``rescale_to_raster``).
- ``camera``: CamI2V RotErr / TransErr / CamMC (+ per-frame means) and pose estimation of a video
  from tracks, SIFT/ORB matches or Lucas–Kanade flow (essential matrix + recoverPose, triangulated scale).
- ``fidelity``: per-frame PSNR / SSIM against ground-truth target views (scikit-image).
- ``epipolar``: Sampson error of reference↔target correspondences under ground-truth cameras.
- ``learned``: registry hook for MEt3R / VBench / LPIPS implementations with user-provided weights.

The main functions are also available here: ``compute_tapvid_metrics``, ``to_tapvid_format``,
``rescale_to_raster``, ``camera_errors``, ``estimate_poses_from_tracks``,
``estimate_poses_from_video``, ``video_fidelity``, ``epipolar_consistency``,
``compute_learned_metric``, ``register_learned_metric``.
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = ("tapvid", "camera", "fidelity", "epipolar", "learned", "probe")
_EXPORTS = {
    "compute_tapvid_metrics": "tapvid",
    "to_tapvid_format": "tapvid",
    "rescale_to_raster": "tapvid",
    "camera_errors": "camera",
    "estimate_poses_from_tracks": "camera",
    "estimate_poses_from_video": "camera",
    "optical_flow_tracks": "camera",
    "video_fidelity": "fidelity",
    "epipolar_consistency": "epipolar",
    "compute_learned_metric": "learned",
    "register_learned_metric": "learned",
}

__all__ = list(_SUBMODULES) + list(_EXPORTS)


def __getattr__(name: str) -> Any:
  if name in _SUBMODULES:
    return importlib.import_module(f"{__name__}.{name}")
  if name in _EXPORTS:
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
