"""Camera accuracy of generated videos: CamI2V's RotErr / TransErr / CamMC and pose estimation.

**Errors** (CamI2V, Zheng et al. 2024, ``ZGCTroy/CamI2V`` ``evaluation/glomap_evaluation.py``;
adopted by ReCamMaster and, as per-frame means, by MVTrack4Gen). Given ground-truth and predicted
camera-to-world trajectories of ``T`` frames:

1. both are made relative to their own first frame, ``c2w_rel[i] = inv(c2w[0]) @ c2w[i]``
   (``geometry.relative_to_reference``), which removes the world gauge;
2. each trajectory's translations are divided by *its own* largest translation norm
   ``max_i ‖t_i‖ + eps`` (CamI2V's ``normalize_t``, ``eps = 1e-9``), which removes the global scale
   (a monocular pose estimate is only defined up to scale);
3. ``RotErr  = Σ_i arccos(clip((tr(R_gt,iᵀ R_pred,i) − 1) / 2, −1, 1))`` (radians),
   ``TransErr = Σ_i ‖t_gt,i − t_pred,i‖``, ``CamMC = Σ_i ‖[R|t]_gt,i − [R|t]_pred,i‖_F`` (3 × 4).

The sums run over all ``T`` frames (frame 0 contributes 0 by construction), as in CamI2V; the
per-frame means ``m_rot_err = RotErr / T`` etc. are MVTrack4Gen's ``mRotErr / mTransErr /
mCamMC`` (the paper does not define the "m"; the mean over frames is this project's reading, docs/design.md
§4.6). ``m_rot_err_deg`` gives the same angle in degrees.

*Zero-motion trajectories*: when every translation is zero (a pure pan / tilt, or a static
camera) the normalisation divides zeros by ``eps`` and the translations stay exactly zero, so the
trajectory contributes only its rotations. This is CamI2V's behaviour; note that it makes
TransErr sensitive to small spurious translations of a *predicted* rotation-only trajectory (they
are blown up to unit norm), which is why ``estimate_poses_from_tracks`` reports exact zero
translation for frames without measurable parallax.

**Pose estimation** of a (generated) video with known intrinsics, from 2D correspondences between
every frame and frame 0 — the tracking head's tracks, or feature matches (``match_feature_tracks``,
OpenCV SIFT/ORB with Lowe's ratio test, or ``optical_flow_tracks``, pyramidal Lucas–Kanade for low-resolution videos):

- per frame ``i``: ``cv2.findEssentialMat`` (5-point solver in OpenCV's USAC_ACCURATE RANSAC) on
  normalised image coordinates (so each frame may have its own intrinsics), a robust
  least-squares polish of the Sampson distances of the inliers (plain RANSAC keeps the error of
  its best minimal sample, ~0.5° on exact data), then ``cv2.recoverPose`` (cheirality) gives the
  rotation ``R_i`` and the unit translation *direction* ``t̂_i`` of camera 0 → camera ``i``
  (``X_i = R_i X_0 + t_i``);
- frames whose correspondences a rotation alone explains as well as the essential matrix does
  (median residual of a least-squares rotation fit of the bearing vectors, in pixels, below
  ``min_parallax_px + 3 ×`` the median Sampson distance of the essential fit, i.e. no parallax
  above the noise level) get that rotation and ``t = 0``: the essential matrix is degenerate
  there and its translation direction is noise;
- *scale*: every ``t̂_i`` has unit norm, so per-frame directions alone do not form a trajectory
  (normalising them by their max norm would leave all of them at length 1). The frame with the
  largest parallax is the anchor ``a`` (``‖t_a‖ = 1``); the points seen in frames 0 and ``a`` are
  triangulated, and every other frame's scale ``s_i`` is the median over those points of the
  closed-form least-squares solution of ``x̃_i × (R_i X + s_i t̂_i) = 0``. The trajectory is then
  consistent up to *one* global scale, which is exactly what CamI2V's max-norm normalisation
  removes — the estimate and the ground truth become comparable.

Frames with too few correspondences keep the last valid pose and are flagged in ``valid``.
OpenCV keypoints put pixel centres at integer coordinates; they are shifted by +0.5 into the
project's corner-origin convention (docs/design.md §3) before use.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import numpy as np
import scipy.optimize

from mvtrack_jax.geometry import invert_rigid, relative_to_reference

Array = Any

DEFAULT_EPS = 1e-9  # CamI2V normalize_t


def _as_trajectory(name: str, value: Array) -> np.ndarray:
  arr = np.asarray(value, np.float64)
  if arr.ndim != 3 or arr.shape[1:] != (4, 4) or arr.shape[0] < 1:
    raise ValueError(f"{name} has shape {arr.shape}, expected (T, 4, 4) camera-to-world poses with T >= 1")
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"{name} contains NaN or inf (frames {np.where(~np.isfinite(arr).all(axis=(1, 2)))[0].tolist()})")
  return arr


def normalize_translation(cam_to_world: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
  """Divides translations by the trajectory's max translation norm (CamI2V ``normalize_t``).

  Args:
    cam_to_world: ``(T, 4, 4)`` float poses (usually relative to frame 0).
    eps: added to the max norm; a zero-motion trajectory keeps exactly zero translations.

  Returns:
    ``(T, 4, 4)`` float64 poses, rotations untouched, ``max_i ‖t_i‖ ≈ 1`` (or 0).
  """
  out = np.array(cam_to_world, np.float64)
  scale = np.max(np.linalg.norm(out[:, :3, 3], axis=-1)) + eps
  out[:, :3, 3] /= scale
  return out


def camera_errors_per_frame(gt_cam_to_world: Array, pred_cam_to_world: Array,
                            eps: float = DEFAULT_EPS) -> dict[str, np.ndarray]:
  """Per-frame CamI2V errors (the terms of the sums of ``camera_errors``).

  Args:
    gt_cam_to_world: ``(T, 4, 4)`` ground-truth camera-to-world poses (OpenCV axes, any units).
    pred_cam_to_world: ``(T, 4, 4)`` predicted / estimated poses, same frames.
    eps: CamI2V's normalisation epsilon.

  Returns:
    ``{'rot_err', 'trans_err', 'cam_mc'}``, each ``(T,)`` float64 (radians / normalised units).

  Raises:
    ValueError: shapes differ or are not ``(T, 4, 4)``, or poses hold NaN/inf.
  """
  gt = _as_trajectory("gt_cam_to_world", gt_cam_to_world)
  pred = _as_trajectory("pred_cam_to_world", pred_cam_to_world)
  if gt.shape != pred.shape:
    raise ValueError(f"gt_cam_to_world {gt.shape} and pred_cam_to_world {pred.shape} must have the same (T, 4, 4) shape")
  gt = normalize_translation(relative_to_reference(gt, gt[:1]), eps)
  pred = normalize_translation(relative_to_reference(pred, pred[:1]), eps)
  rel_rot = np.einsum("tji,tjk->tik", gt[:, :3, :3], pred[:, :3, :3])  # R_gtᵀ R_pred
  cos = np.clip((np.trace(rel_rot, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
  return {
      "rot_err": np.arccos(cos),
      "trans_err": np.linalg.norm(gt[:, :3, 3] - pred[:, :3, 3], axis=-1),
      "cam_mc": np.linalg.norm((gt[:, :3, :4] - pred[:, :3, :4]).reshape(-1, 12), axis=-1),
  }


def camera_errors(gt_cam_to_world: Array, pred_cam_to_world: Array, eps: float = DEFAULT_EPS) -> dict[str, float]:
  """CamI2V camera errors of a predicted trajectory against the ground truth.

  Args:
    gt_cam_to_world: ``(T, 4, 4)`` ground-truth camera-to-world poses (OpenCV axes, any units).
    pred_cam_to_world: ``(T, 4, 4)`` predicted poses of the same frames (e.g. from
      ``estimate_poses_from_tracks``; any global scale and world frame).
    eps: CamI2V's normalisation epsilon (see the module docstring for zero-motion trajectories).

  Returns:
    ``{'rot_err', 'trans_err', 'cam_mc'}`` (sums over the ``T`` frames; radians, normalised
    translation units), ``{'m_rot_err', 'm_trans_err', 'm_cam_mc'}`` (the same divided by ``T``)
    and ``'m_rot_err_deg'``, all Python floats.

  Raises:
    ValueError: see ``camera_errors_per_frame``.
  """
  per_frame = camera_errors_per_frame(gt_cam_to_world, pred_cam_to_world, eps)
  out = {}
  for name, values in per_frame.items():
    out[name] = float(np.sum(values))
    out[f"m_{name}"] = float(np.mean(values))
  out["m_rot_err_deg"] = float(np.degrees(out["m_rot_err"]))
  return out


def redirector_errors(gt_cam_to_world: Array, pred_cam_to_world: Array, eps: float = 1e-6) -> dict[str, float]:
  """ReDirector's camera errors (``eval_utils.py`` ``eval_rot`` / ``eval_trans`` of byeongjun-park/ReDirector), which
  it reports beside CamI2V's under the same names, so a table must say which it holds.

  - ``redirector_rot_err_deg``: the mean over all ordered frame pairs ``(i, j)``, ``i ≠ j``, of the angle between
    the ground-truth and the predicted relative rotations ``R_iᵀ R_j`` (degrees; no global frame needed).
  - ``redirector_trans_err``: the predicted camera centres aligned to the ground-truth ones by the least-squares
    similarity (Umeyama 1991: scale, rotation, translation), then the mean distance to the ground truth divided by
    the largest ground-truth distance between two centres (``+ eps``). A ground-truth path without translation (a
    pan) divides by ``eps`` as ReDirector does; predicted centres that all coincide are aligned to the ground-truth
    centroid (the similarity's scale is 0).

  Args:
    gt_cam_to_world, pred_cam_to_world: ``(T, 4, 4)``, ``T >= 2``, any world frame and scale.
    eps: ReDirector's 1e-6.

  Raises:
    ValueError: as :func:`camera_errors_per_frame`, or ``T < 2``.
  """
  gt = _as_trajectory("gt_cam_to_world", gt_cam_to_world)
  pred = _as_trajectory("pred_cam_to_world", pred_cam_to_world)
  if gt.shape != pred.shape or gt.shape[0] < 2:
    raise ValueError(f"gt_cam_to_world {gt.shape} and pred_cam_to_world {pred.shape}: expected the same (T >= 2, 4, 4)")
  t = gt.shape[0]
  i, j = np.nonzero(~np.eye(t, dtype=bool))
  rel = lambda r: np.einsum("nki,nkj->nij", r[i, :3, :3], r[j, :3, :3])  # R_iᵀ R_j
  diff = np.einsum("nki,nkj->nij", rel(gt), rel(pred))
  cos = np.clip((np.trace(diff, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
  a, b = gt[:, :3, 3], pred[:, :3, 3]
  a0, b0 = a - a.mean(0), b - b.mean(0)
  u, sigma, vh = np.linalg.svd(b0.T @ a0)
  flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vh)) or 1.0])
  variance = float(np.sum(b0 ** 2))
  scale = float(np.trace(np.diag(sigma) @ flip)) / variance if variance > 0 else 0.0
  aligned = scale * b0 @ (u @ flip @ vh) + a.mean(0)
  extent = float(np.max(np.linalg.norm(a[None] - a[:, None], axis=-1)))
  return {"redirector_rot_err_deg": float(np.degrees(np.arccos(cos)).mean()),
          "redirector_trans_err": float(np.mean(np.linalg.norm(a - aligned, axis=1)) / (extent + eps))}


# The camera columns of a table: CamI2V's per-frame means, ReDirector's errors.
ERROR_KEYS = ("m_rot_err_deg", "m_trans_err", "m_cam_mc", "redirector_rot_err_deg", "redirector_trans_err")


def trajectory_errors(gt_cam_to_world: Array, cam_to_world: Array) -> dict[str, float]:
  """:data:`ERROR_KEYS` of an estimated trajectory against the ground truth (:func:`camera_errors`' per-frame means,
  :func:`redirector_errors`; NaN for ReDirector's with a single frame, which has no frame pair)."""
  errors = camera_errors(gt_cam_to_world, cam_to_world)
  out = {key: errors[key] for key in ERROR_KEYS[:3]}
  out.update(redirector_errors(gt_cam_to_world, cam_to_world) if len(np.asarray(cam_to_world)) > 1 else
             {key: float("nan") for key in ERROR_KEYS[3:]})
  return out


@dataclasses.dataclass(frozen=True)
class PoseEstimate:
  """Camera trajectory estimated from correspondences with frame 0.

  Attributes:
    cam_to_world: ``(T, 4, 4)`` float64 camera-to-world poses relative to frame 0 (frame 0 is the
      identity), OpenCV axes; translations share one arbitrary global scale (the anchor frame's
      translation has norm 1).
    valid: ``(T,)`` bool; False where the frame had too few correspondences / inliers (its pose
      repeats the previous valid one).
    rotation_only: ``(T,)`` bool; True where no parallax was measurable and ``t = 0`` was set.
    num_inliers: ``(T,)`` int RANSAC + cheirality inliers (all correspondences for rotation-only
      frames; frame 0: its number of points).
    anchor: index of the frame that fixed the scale (−1 when every frame is rotation-only).
  """

  cam_to_world: np.ndarray
  valid: np.ndarray
  rotation_only: np.ndarray
  num_inliers: np.ndarray
  anchor: int


def _normalised(points_xy: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
  """Pixel ``(x, y)`` → normalised image coordinates ``K⁻¹ [x, y, 1]`` (first two), float64."""
  homo = np.concatenate([points_xy, np.ones_like(points_xy[:, :1])], axis=-1)
  cam = homo @ np.linalg.inv(intrinsics).T
  return cam[:, :2] / cam[:, 2:3]


def _bearings(norm_xy: np.ndarray) -> np.ndarray:
  rays = np.concatenate([norm_xy, np.ones_like(norm_xy[:, :1])], axis=-1)
  return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def _fit_rotation(b0: np.ndarray, b1: np.ndarray) -> np.ndarray:
  """Rotation ``R`` minimising ``Σ ‖b1 − R b0‖²`` (Kabsch / orthogonal Procrustes)."""
  u, _, vt = np.linalg.svd(b1.T @ b0)
  d = np.sign(np.linalg.det(u @ vt))
  return u @ np.diag([1.0, 1.0, d]) @ vt


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1))


def _skew(v: np.ndarray) -> np.ndarray:
  """Cross-product matrix ``[v]_×`` of a 3-vector."""
  return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _sampson(ess: np.ndarray, n0: np.ndarray, n1: np.ndarray) -> np.ndarray:
  """Signed Sampson distances of normalised correspondences under an essential matrix."""
  x0 = np.concatenate([n0, np.ones_like(n0[:, :1])], axis=-1)
  x1 = np.concatenate([n1, np.ones_like(n1[:, :1])], axis=-1)
  ex0 = x0 @ ess.T
  etx1 = x1 @ ess
  num = np.sum(x1 * ex0, axis=-1)
  den = ex0[:, 0] ** 2 + ex0[:, 1] ** 2 + etx1[:, 0] ** 2 + etx1[:, 1] ** 2
  return num / np.sqrt(np.maximum(den, 1e-30))


def _refine_pose(rot: np.ndarray, trans: np.ndarray, n0: np.ndarray, n1: np.ndarray,
                 scale: float) -> tuple[np.ndarray, np.ndarray]:
  """Polishes ``(R, t̂)`` by robust least squares on the Sampson distances of the inliers.

  OpenCV's minimal-sample estimate is only as accurate as its best sample; this Gauss–Newton
  polish (``scipy.optimize.least_squares``, soft-L1 loss at the RANSAC threshold ``scale``)
  parametrises ``R ← R · exp([ω]_×)`` and ``t̂`` on its tangent plane.
  """
  trans = trans / np.linalg.norm(trans)
  basis = np.linalg.svd(trans[None])[2][1:].T  # (3, 2) orthonormal basis of t̂'s tangent plane

  def unpack(params):
    r = rot @ cv2.Rodrigues(params[:3])[0]
    t = trans + basis @ params[3:]
    return r, t / np.linalg.norm(t)

  def residuals(params):
    r, t = unpack(params)
    return _sampson(_skew(t) @ r, n0, n1)

  result = scipy.optimize.least_squares(residuals, np.zeros(5), loss="soft_l1", f_scale=scale, x_scale=1e-2)
  return unpack(result.x)


def _check_tracks(tracks, visible, intrinsics):
  tracks = np.asarray(tracks, np.float64)
  if tracks.ndim != 3 or tracks.shape[-1] != 2:
    raise ValueError(f"tracks has shape {tracks.shape}, expected (T, N, 2) (x, y) pixels")
  t, n, _ = tracks.shape
  if visible is None:
    visible = np.isfinite(tracks).all(-1)
  visible = np.asarray(visible).astype(bool)
  if visible.shape != (t, n):
    raise ValueError(f"visible has shape {visible.shape}, expected {(t, n)} (tracks' (T, N))")
  intrinsics = np.asarray(intrinsics, np.float64)
  if intrinsics.shape == (3, 3):
    intrinsics = np.broadcast_to(intrinsics, (t, 3, 3))
  if intrinsics.shape != (t, 3, 3):
    raise ValueError(f"intrinsics has shape {intrinsics.shape}, expected (3, 3) or {(t, 3, 3)}")
  if np.any(intrinsics[:, 0, 0] <= 0) or np.any(intrinsics[:, 1, 1] <= 0):
    raise ValueError("intrinsics must have positive focal lengths fx, fy")
  visible = visible & np.isfinite(tracks).all(-1)
  return np.nan_to_num(tracks), visible, intrinsics


def estimate_poses_from_tracks(tracks: Array, visible: Array | None, intrinsics: Array, *,
                               ransac_threshold_px: float = 1.0, confidence: float = 0.999,
                               min_points: int = 8, min_parallax_px: float = 0.5,
                               seed: int = 0) -> PoseEstimate:
  """Relative camera trajectory of a video from correspondences with its first frame.

  Args:
    tracks: ``(T, N, 2)`` float ``(x, y)`` pixel positions (corner origin, centres at +0.5) of N
      points in every frame, e.g. the tracking head's tracks of the generated view or
      ``match_feature_tracks``'s matches of frame-0 keypoints.
    visible: ``(T, N)`` bool, which positions are valid (``None``: all finite positions).
    intrinsics: ``(3, 3)`` or ``(T, 3, 3)`` pixel intrinsics of the video.
    ransac_threshold_px: RANSAC epipolar threshold in pixels (converted with the mean focal).
    confidence: RANSAC confidence.
    min_points: fewest correspondences (visible in frame 0 and frame i) to estimate a frame.
    min_parallax_px: parallax (pixels) that a frame's median pure-rotation residual must exceed,
      on top of 3 × the essential fit's median Sampson distance, to be given a translation;
      below it the frame is rotation-only (``t = 0``).
    seed: seed of OpenCV's RNG (RANSAC), for reproducible estimates.

  Returns:
    ``PoseEstimate`` (see its docstring); ``cam_to_world[0]`` is the identity.

  Raises:
    ValueError: on malformed shapes or non-positive focal lengths.
  """
  tracks, visible, intrinsics = _check_tracks(tracks, visible, intrinsics)
  num_frames = tracks.shape[0]
  cv2.setRNGSeed(seed)
  rots = np.tile(np.eye(3), (num_frames, 1, 1))
  dirs = np.zeros((num_frames, 3))
  valid = np.zeros(num_frames, bool)
  rot_only = np.zeros(num_frames, bool)
  inliers_count = np.zeros(num_frames, np.int64)
  inlier_masks: dict[int, np.ndarray] = {}
  parallax = np.zeros(num_frames)
  valid[0] = True
  inliers_count[0] = int(visible[0].sum())
  norm = np.stack([_normalised(tracks[i], intrinsics[i]) for i in range(num_frames)])

  for i in range(1, num_frames):
    common = np.where(visible[0] & visible[i])[0]
    if common.size < min_points:
      continue
    n0, ni = norm[0, common], norm[i, common]
    focal = 0.25 * (intrinsics[0, 0, 0] + intrinsics[0, 1, 1] + intrinsics[i, 0, 0] + intrinsics[i, 1, 1])
    threshold = ransac_threshold_px / focal
    ess, mask = cv2.findEssentialMat(n0, ni, np.eye(3), method=cv2.USAC_ACCURATE, prob=confidence,
                                     threshold=threshold)
    inl = np.ones(common.size, bool) if mask is None else mask.ravel().astype(bool)
    if ess is not None and ess.shape[0] > 3:
      ess = ess[:3]  # several solutions: the first is the best ranked
    if ess is None or ess.shape != (3, 3) or inl.sum() < min_points:
      ess = None  # degenerate input: only the rotation-only model is available
      inl = np.ones(common.size, bool)
    rot = _fit_rotation(_bearings(n0[inl]), _bearings(ni[inl]))
    residual = focal * _angles(_bearings(ni), _bearings(n0) @ rot.T)  # rotation-only model, pixels
    rot_residual = float(np.median(residual[inl]))
    essential_ok, sampson_px = False, np.inf
    if ess is not None:
      count, rot_e, trans_e, _ = cv2.recoverPose(ess, n0, ni, np.eye(3), mask=inl.astype(np.uint8)[:, None])
      if count >= min_points:
        rot_e, trans_e = _refine_pose(rot_e, trans_e.ravel(), n0[inl], ni[inl], threshold)
        count, rot_e, trans_e, pose_mask = cv2.recoverPose(_skew(trans_e) @ rot_e, n0, ni, np.eye(3),
                                                           mask=inl.astype(np.uint8)[:, None])
        sampson_px = focal * float(np.median(np.abs(_sampson(_skew(trans_e.ravel()) @ rot_e, n0[inl], ni[inl]))))
        essential_ok = count >= min_points
    # Model selection: a rotation explains the motion as well as the essential matrix (up to the
    # noise level, which the Sampson residual measures) -> no measurable translation.
    if not essential_ok or rot_residual < min_parallax_px + 3.0 * sampson_px:
      keep = residual < max(ransac_threshold_px, 3.0 * rot_residual)  # refit on all rotation inliers
      if keep.sum() < min_points:
        continue
      rots[i] = _fit_rotation(_bearings(n0[keep]), _bearings(ni[keep]))
      rot_only[i], valid[i], inliers_count[i] = True, True, int(keep.sum())
      continue
    rots[i], dirs[i] = rot_e, trans_e.ravel() / np.linalg.norm(trans_e)
    valid[i], inliers_count[i], parallax[i] = True, int(count), rot_residual
    full = np.zeros(visible.shape[1], bool)
    full[common[pose_mask.ravel() > 0]] = True
    inlier_masks[i] = full

  scales = np.zeros(num_frames)
  moving = [i for i in inlier_masks]
  anchor = int(max(moving, key=lambda i: parallax[i])) if moving else -1
  if anchor >= 0:
    pts = inlier_masks[anchor]
    p0 = np.hstack([np.eye(3), np.zeros((3, 1))])
    pa = np.hstack([rots[anchor], dirs[anchor][:, None]])
    x_h = cv2.triangulatePoints(p0, pa, norm[0, pts].T, norm[anchor, pts].T)
    points = (x_h[:3] / x_h[3]).T
    depth_a = points @ rots[anchor].T + dirs[anchor]
    ok = (points[:, 2] > 0) & (depth_a[:, 2] > 0) & np.isfinite(points).all(-1)
    point_ids = np.where(pts)[0][ok]
    points = points[ok]
    scales[anchor] = 1.0
    for i in moving:
      if i == anchor:
        continue
      sel = visible[i, point_ids]
      if sel.sum() < 3:
        valid[i] = False
        continue
      x_i = np.concatenate([norm[i, point_ids[sel]], np.ones((int(sel.sum()), 1))], axis=-1)
      a = np.cross(x_i, points[sel] @ rots[i].T)
      b = np.cross(x_i, np.broadcast_to(dirs[i], a.shape))
      denom = np.sum(b * b, axis=-1)
      good = denom > 1e-18
      if good.sum() < 3:
        valid[i] = False
        continue
      scales[i] = float(np.median(-np.sum(a * b, axis=-1)[good] / denom[good]))

  w2c = np.tile(np.eye(4), (num_frames, 1, 1))
  for i in range(1, num_frames):
    if valid[i]:
      w2c[i, :3, :3] = rots[i]
      w2c[i, :3, 3] = scales[i] * dirs[i]
    else:
      w2c[i] = w2c[i - 1]
  return PoseEstimate(cam_to_world=invert_rigid(w2c), valid=valid, rotation_only=rot_only,
                      num_inliers=inliers_count, anchor=anchor)


def match_feature_tracks(video: Array, *, method: str = "sift", ratio: float = 0.75,
                      max_features: int = 4000) -> tuple[np.ndarray, np.ndarray]:
  """Tracks of frame-0 keypoints through a video by descriptor matching (no learned weights).

  Keypoints and descriptors are detected once in frame 0 and matched against every frame with a
  brute-force matcher and Lowe's ratio test (k = 2 nearest neighbours); a frame-0 keypoint is
  "visible" in frame ``i`` when it has an unambiguous match there.

  Args:
    video: ``(T, H, W, 3)`` uint8 RGB (or ``(T, H, W)`` grey) frames.
    method: ``'sift'`` (float descriptors, L2) or ``'orb'`` (binary, Hamming).
    ratio: Lowe's ratio-test threshold (best / second-best distance).
    max_features: cap on the number of frame-0 keypoints.

  Returns:
    ``(tracks (T, N, 2) float64, visible (T, N) bool)``: positions in the project's corner-origin
    pixel convention (OpenCV keypoint + 0.5); frame 0 holds the keypoints themselves.

  Raises:
    ValueError: bad video shape/dtype or unknown ``method``.
  """
  video = np.asarray(video)
  if video.ndim not in (3, 4) or (video.ndim == 4 and video.shape[-1] != 3) or video.dtype != np.uint8:
    raise ValueError(f"video has shape {video.shape} dtype {video.dtype}, expected (T, H, W, 3) or (T, H, W) uint8")
  if method == "sift":
    detector, norm_type = cv2.SIFT_create(nfeatures=max_features), cv2.NORM_L2
  elif method == "orb":
    detector, norm_type = cv2.ORB_create(nfeatures=max_features), cv2.NORM_HAMMING
  else:
    raise ValueError(f"method={method!r}, expected 'sift' or 'orb'")
  grey = [f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video]
  keypoints0, desc0 = detector.detectAndCompute(grey[0], None)
  num_frames, n = len(grey), len(keypoints0)
  tracks = np.zeros((num_frames, n, 2))
  visible = np.zeros((num_frames, n), bool)
  if n == 0:
    return tracks, visible
  tracks[0] = np.array([k.pt for k in keypoints0]) + 0.5
  visible[0] = True
  matcher = cv2.BFMatcher(norm_type)
  for i in range(1, num_frames):
    keypoints, desc = detector.detectAndCompute(grey[i], None)
    if desc is None or len(keypoints) < 2:
      continue
    for pair in matcher.knnMatch(desc0, desc, k=2):
      if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance:
        tracks[i, pair[0].queryIdx] = np.array(keypoints[pair[0].trainIdx].pt) + 0.5
        visible[i, pair[0].queryIdx] = True
  return tracks, visible


def optical_flow_tracks(video: Array, *, grid_step: int = 4, max_level: int = 3, window: int = 9,
                        max_forward_backward_px: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
  """Tracks of a regular grid of frame-0 points through a video with pyramidal Lucas–Kanade.

  For low-resolution videos (the CPU models generate 32–64 px frames) where SIFT/ORB find too few
  keypoints. Points on a ``grid_step`` lattice of frame 0 are tracked frame to frame with OpenCV's
  ``calcOpticalFlowPyrLK`` (Bouguet's pyramidal LK); a point stays visible while the flow succeeds,
  stays inside the frame and its forward–backward error (track ``i−1 → i → i−1``) is below
  ``max_forward_backward_px``. A lost point is not re-acquired.

  Args:
    video: ``(T, H, W, 3)`` uint8 RGB (or ``(T, H, W)`` grey) frames.
    grid_step: spacing of the frame-0 lattice in pixels (points at ``(k + ½)·grid_step``).
    max_level: pyramid levels above the full resolution (``maxLevel``).
    window: LK window size in pixels (``winSize = (window, window)``).
    max_forward_backward_px: forward–backward consistency threshold (pixels).

  Returns:
    ``(tracks (T, N, 2) float64, visible (T, N) bool)``, corner-origin pixel convention.

  Raises:
    ValueError: bad video shape/dtype or non-positive settings.
  """
  video = np.asarray(video)
  if video.ndim not in (3, 4) or (video.ndim == 4 and video.shape[-1] != 3) or video.dtype != np.uint8:
    raise ValueError(f"video has shape {video.shape} dtype {video.dtype}, expected (T, H, W, 3) or (T, H, W) uint8")
  if grid_step < 1 or window < 3 or max_level < 0 or not max_forward_backward_px > 0:
    raise ValueError(f"optical_flow_tracks: need grid_step >= 1, window >= 3, max_level >= 0 and "
                     f"max_forward_backward_px > 0, got {grid_step}, {window}, {max_level}, {max_forward_backward_px}")
  grey = [f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video]
  h, w = grey[0].shape
  ys, xs = np.meshgrid(np.arange(grid_step / 2, h, grid_step), np.arange(grid_step / 2, w, grid_step), indexing="ij")
  # OpenCV puts pixel centres at integers: corner-origin x = OpenCV x + 0.5.
  pts = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32) - 0.5
  num_frames, n = len(grey), pts.shape[0]
  tracks = np.zeros((num_frames, n, 2))
  visible = np.zeros((num_frames, n), bool)
  tracks[0], visible[0] = pts + 0.5, True
  params = dict(winSize=(window, window), maxLevel=max_level,
                criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
  current, alive = pts.reshape(-1, 1, 2), np.ones(n, bool)
  for i in range(1, num_frames):
    nxt, ok, _ = cv2.calcOpticalFlowPyrLK(grey[i - 1], grey[i], current, None, **params)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(grey[i], grey[i - 1], nxt, None, **params)
    fb = np.linalg.norm((back - current).reshape(-1, 2), axis=-1)
    xy = nxt.reshape(-1, 2)
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] <= w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] <= h - 0.5)
    alive &= ok.ravel().astype(bool) & ok_back.ravel().astype(bool) & (fb < max_forward_backward_px) & inside
    tracks[i] = xy + 0.5
    visible[i] = alive
    current = nxt
  return tracks, visible


def estimate_poses_from_video(video: Array, intrinsics: Array, *, method: str = "sift", ratio: float = 0.75,
                              **kwargs) -> PoseEstimate:
  """Correspondences with frame 0, then ``estimate_poses_from_tracks`` (keyword args forwarded).

  ``method``: ``'sift'`` / ``'orb'`` (``match_feature_tracks``, with ``ratio``) or ``'flow'``
  (``optical_flow_tracks``: Lucas–Kanade on a pixel lattice, for low-resolution videos).

  Raises:
    ValueError: unknown ``method`` or bad inputs.
  """
  if method == "flow":
    tracks, visible = optical_flow_tracks(video)
  else:
    tracks, visible = match_feature_tracks(video, method=method, ratio=ratio)
  return estimate_poses_from_tracks(tracks, visible, intrinsics, **kwargs)
