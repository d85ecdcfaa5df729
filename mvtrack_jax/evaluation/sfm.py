"""Camera trajectories of videos by structure-from-motion: COLMAP features and matching, GLOMAP global mapping.

The papers' camera metrics (CamI2V's RotErr / TransErr / CamMC, which ReCamMaster, ReDirector and MVTrack4Gen
report) are computed on poses that a structure-from-motion pipeline estimates from the generated video. CamI2V's
``evaluation/glomap_evaluation.py`` runs, per video, with the known intrinsics of the first frame:

1. COLMAP ``feature_extractor``: SIFT with affine shape estimation and domain-size pooling, one camera for every
   frame, ``SIMPLE_PINHOLE`` with the known focal length and principal point;
2. COLMAP ``sequential_matcher`` with guided matching, at most 65,536 matches per pair;
3. GLOMAP ``mapper`` (global rotation averaging, then global positioning and bundle adjustment) with epipolar
   error 4 px (COLMAP's two-view verification default, ``TwoViewGeometryOptions.ransac.max_error``, which this
   module keeps) and the intrinsics held fixed;

and repeats the whole evaluation in several independent trials whose metrics are averaged. :func:`estimate_poses`
does the same through ``pycolmap`` (COLMAP's Python bindings; since COLMAP 3.12 / pycolmap 4 GLOMAP is COLMAP's
``global_mapping``), on CPU, from frames held in memory. A focal length that differs between ``fx`` and ``fy``
uses ``PINHOLE`` (the same model with two focal lengths).

SfM needs texture: SIFT finds few features in frames of a few dozen pixels, and the mapper then registers few
frames or none. :func:`min_frame_size` is the smallest frame this module accepts; below it, use the two-view
estimator of ``evaluation.camera`` (``--pose_method flow``), which exists for exactly those frames.

Pixels: COLMAP puts the centre of the top-left pixel at ``(0.5, 0.5)``, the project's corner-origin convention, so
intrinsics pass unchanged. Poses come back as COLMAP's world-to-camera ``cam_from_world`` (OpenCV axes) and are
returned as camera-to-world poses relative to frame 0.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any

import cv2
import numpy as np
import pycolmap

from mvtrack_jax.evaluation import camera
from mvtrack_jax.geometry import invert_rigid, relative_to_reference

Array = Any

MIN_FRAME_SIZE = 96  # px: the shorter side below which SfM is refused (module docstring)
DEFAULT_TRIALS = 3


def min_frame_size() -> int:
  """The shorter frame side (pixels) :func:`estimate_poses` accepts."""
  return MIN_FRAME_SIZE


@dataclasses.dataclass(frozen=True)
class SfmTrial:
  """One reconstruction. ``cam_to_world`` ``(T, 4, 4)`` relative to frame 0 (unregistered frames repeat the last
  registered pose before them, or the identity); ``registered`` ``(T,)`` bool; ``num_points`` 3-D points."""

  cam_to_world: np.ndarray
  registered: np.ndarray
  num_points: int


def _camera(intrinsics: np.ndarray) -> tuple[str, str]:
  """COLMAP's camera model and parameters for pinhole ``intrinsics`` (one focal length when ``fx == fy``)."""
  k = np.asarray(intrinsics, np.float64)
  fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
  if abs(fx - fy) <= 1e-6 * fx:
    return "SIMPLE_PINHOLE", f"{fx},{cx},{cy}"
  return "PINHOLE", f"{fx},{fy},{cx},{cy}"


def _reconstruct(folder: str, names: list[str], intrinsics: np.ndarray, seed: int, num_threads: int) -> SfmTrial:
  """One trial, from feature extraction on (a fresh database: CamI2V's trials are independent runs)."""
  database = os.path.join(folder, f"database{seed}.db")
  model, params = _camera(intrinsics)
  reader = pycolmap.ImageReaderOptions()
  reader.camera_model = model
  reader.camera_params = params
  extraction = pycolmap.FeatureExtractionOptions()
  extraction.sift.estimate_affine_shape = True
  extraction.sift.domain_size_pooling = True
  extraction.num_threads = num_threads
  images = os.path.join(folder, "images")
  pycolmap.extract_features(database, images, camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                            extraction_options=extraction, device=pycolmap.Device.cpu)
  matching = pycolmap.FeatureMatchingOptions()
  matching.guided_matching = True
  matching.max_num_matches = 65536
  matching.num_threads = num_threads
  pycolmap.match_sequential(database, matching_options=matching, device=pycolmap.Device.cpu)
  options = pycolmap.GlobalPipelineOptions()
  options.random_seed = seed
  options.mapper.random_seed = seed
  options.num_threads = options.mapper.num_threads = num_threads
  ba = options.mapper.bundle_adjustment
  ba.refine_focal_length = ba.refine_principal_point = ba.refine_extra_params = False
  ba.ceres.use_gpu = False
  options.mapper.global_positioning.use_gpu = False
  out = os.path.join(folder, f"sparse{seed}")
  os.makedirs(out, exist_ok=True)
  reconstructions = pycolmap.global_mapping(database, images, out, options)
  t = len(names)
  poses = np.tile(np.eye(4), (t, 1, 1))
  registered = np.zeros(t, bool)
  if not reconstructions:
    return SfmTrial(poses, registered, 0)
  rec = max(reconstructions.values(), key=lambda r: r.num_reg_images())
  index = {name: i for i, name in enumerate(names)}
  for image in rec.images.values():
    if image.has_pose and image.name in index:
      i = index[image.name]
      poses[i] = invert_rigid(np.vstack([image.cam_from_world().matrix(), [0, 0, 0, 1]]))
      registered[i] = True
  if not registered.any():
    return SfmTrial(np.tile(np.eye(4), (t, 1, 1)), registered, 0)
  first = int(np.argmax(registered))
  poses[:first] = poses[first]
  for i in range(first + 1, t):
    if not registered[i]:
      poses[i] = poses[i - 1]
  return SfmTrial(relative_to_reference(poses, poses[:1]), registered, int(rec.num_points3D()))


def estimate_poses(video: Array, intrinsics: Array, *, trials: int = DEFAULT_TRIALS, seed: int = 0,
                   workdir: str | None = None, num_threads: int = -1) -> list[SfmTrial]:
  """Camera trajectories of ``video`` by COLMAP + GLOMAP, as CamI2V's evaluation (module docstring).

  Args:
    video: ``(T, H, W, 3)`` uint8 frames, ``T >= 2``, the shorter side at least :func:`min_frame_size`.
    intrinsics: ``(3, 3)`` or ``(T, 3, 3)`` pixel intrinsics; frame 0's are used for every frame (CamI2V: one
      camera, held fixed).
    trials: independent reconstructions (random seeds ``seed, seed + 1, …``; CamI2V averages its metrics over
      trials).
    seed: the first trial's seed.
    workdir: the folder under which a temporary working folder (frames, COLMAP databases) is made and removed
      afterwards (default: the system's temporary folder).
    num_threads: COLMAP's threads (-1: every core). Several threads make the result vary slightly from run to run
      (the order in which matches and residuals are summed); 1 makes it reproducible.

  Returns:
    ``trials`` :class:`SfmTrial` (a failed reconstruction registers no frame).

  Raises:
    ValueError: a bad video or intrinsics, or frames smaller than :func:`min_frame_size`.
  """
  video = np.asarray(video)
  if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8 or video.shape[0] < 2:
    raise ValueError(f"video has shape {video.shape} dtype {video.dtype}, expected (T >= 2, H, W, 3) uint8")
  t, h, w = video.shape[:3]
  if min(h, w) < MIN_FRAME_SIZE:
    raise ValueError(f"frames of {h}x{w} pixels: structure-from-motion needs a shorter side of at least "
                     f"{MIN_FRAME_SIZE} px (SIFT finds too few features below); use the two-view estimator "
                     "(--pose_method flow)")
  k = np.asarray(intrinsics, np.float64)
  k = k if k.shape == (3, 3) else k[0]
  if k.shape != (3, 3) or not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
    raise ValueError(f"intrinsics: expected (3, 3) or (T, 3, 3) pinhole matrices with positive focal lengths, got "
                     f"{np.asarray(intrinsics).shape}")
  if trials < 1:
    raise ValueError(f"trials={trials}, expected >= 1")
  with tempfile.TemporaryDirectory(dir=workdir) as folder:
    os.makedirs(os.path.join(folder, "images"))
    names = [f"{i:05d}.png" for i in range(t)]
    for name, frame in zip(names, video):
      cv2.imwrite(os.path.join(folder, "images", name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2  # COLMAP logs every image and pair at INFO; keep warnings and errors only
    try:
      return [_reconstruct(folder, names, k, seed + i, num_threads) for i in range(trials)]
    finally:
      pycolmap.logging.minloglevel = level


def trial_errors(gt_cam_to_world: Array, estimates: list[SfmTrial]) -> dict[str, float]:
  """``camera.trajectory_errors`` (CamI2V's and ReDirector's) of each trial that registered every frame, averaged
  over those trials (CamI2V averages over trials; an incomplete reconstruction fails its evaluation), with
  ``pose_valid`` the mean registered fraction of all trials and ``sfm_trials_complete`` the number of complete
  trials. NaN errors when no trial is complete."""
  complete = [e for e in estimates if e.registered.all()]
  out = {key: float("nan") for key in camera.ERROR_KEYS}
  if complete:
    rows = [camera.trajectory_errors(gt_cam_to_world, e.cam_to_world) for e in complete]
    out = {key: float(np.mean([r[key] for r in rows])) for key in camera.ERROR_KEYS}
  out["pose_valid"] = float(np.mean([e.registered.mean() for e in estimates]))
  out["sfm_trials_complete"] = float(len(complete))
  return out
