"""Tests of CamI2V camera errors and of pose estimation from correspondences."""

import cv2
import numpy as np
import pytest
import skimage.data

from mvtrack_jax import geometry
from mvtrack_jax.evaluation import camera


def _rot(axis, angle):
  return cv2.Rodrigues(np.asarray(axis, np.float64) / np.linalg.norm(axis) * angle)[0]


def _pose(rot, trans):
  out = np.eye(4)
  out[:3, :3], out[:3, 3] = rot, trans
  return out


def _random_trajectory(rng, num_frames=5):
  return np.stack([_pose(_rot(rng.normal(size=3), rng.uniform(0, 1)), rng.normal(size=3)) for _ in range(num_frames)])


def test_identical_trajectories_have_zero_error():
  traj = _random_trajectory(np.random.default_rng(0))
  errors = camera.camera_errors(traj, traj)
  assert set(errors) == {"rot_err", "trans_err", "cam_mc", "m_rot_err", "m_trans_err", "m_cam_mc", "m_rot_err_deg"}
  for name, value in errors.items():
    assert abs(value) < 1e-6, name


def test_known_rotation_angle():
  # GT: the camera stays put; prediction: rotated by 0.1 rad at frame 1 and 0.25 rad at frame 2.
  gt = np.stack([np.eye(4)] * 3)
  pred = np.stack([np.eye(4), _pose(_rot([0, 1, 0], 0.1), np.zeros(3)), _pose(_rot([1, 2, 3], 0.25), np.zeros(3))])
  errors = camera.camera_errors(gt, pred)
  np.testing.assert_allclose(errors["rot_err"], 0.35, rtol=1e-7)
  np.testing.assert_allclose(errors["m_rot_err"], 0.35 / 3, rtol=1e-7)
  np.testing.assert_allclose(errors["m_rot_err_deg"], np.degrees(0.35 / 3), rtol=1e-7)
  assert errors["trans_err"] == 0.0  # zero-motion trajectories keep zero translations
  # CamMC of a pure rotation difference = ‖R_gt − R_pred‖_F = 2√2 sin(θ/2).
  np.testing.assert_allclose(errors["cam_mc"], 2 * np.sqrt(2) * (np.sin(0.05) + np.sin(0.125)), rtol=1e-7)


def test_translation_normalisation_and_gauge_invariance():
  gt = np.stack([_pose(np.eye(3), [x, 0, 0]) for x in (0.0, 1.0, 2.0)])
  # Same path at another scale and in another world frame: zero error.
  gauge = _pose(_rot([1, -1, 2], 0.7), [3.0, -2.0, 5.0])
  scaled = gt.copy()
  scaled[:, :3, 3] *= 7.5
  errors = camera.camera_errors(gt, gauge @ scaled)
  assert max(errors.values()) < 1e-9
  # Moving along y instead of x: per frame ‖(s, 0, 0) − (0, s, 0)‖ = s√2 with s = 0.5, 1.
  sideways = np.stack([_pose(np.eye(3), [0, y, 0]) for y in (0.0, 10.0, 20.0)])
  errors = camera.camera_errors(gt, sideways)
  np.testing.assert_allclose(errors["trans_err"], 1.5 * np.sqrt(2), rtol=1e-9)
  np.testing.assert_allclose(errors["cam_mc"], 1.5 * np.sqrt(2), rtol=1e-9)
  np.testing.assert_allclose(errors["m_trans_err"], 0.5 * np.sqrt(2), rtol=1e-9)
  assert errors["rot_err"] < 1e-7


def test_errors_name_the_argument():
  traj = _random_trajectory(np.random.default_rng(1))
  with pytest.raises(ValueError, match="pred_cam_to_world"):
    camera.camera_errors(traj, traj[:, :3])
  with pytest.raises(ValueError, match="same"):
    camera.camera_errors(traj, traj[:3])
  bad = traj.copy()
  bad[2, 0, 0] = np.nan
  with pytest.raises(ValueError, match=r"gt_cam_to_world contains NaN.*\[2\]"):
    camera.camera_errors(bad, traj)
  with pytest.raises(ValueError, match="visible"):
    camera.estimate_poses_from_tracks(np.zeros((3, 10, 2)), np.ones((3, 9), bool), np.eye(3))
  with pytest.raises(ValueError, match="intrinsics"):
    camera.estimate_poses_from_tracks(np.zeros((3, 10, 2)), None, np.eye(4))


def _scene_points(rng, n=150):
  return np.stack([rng.uniform(-2, 2, n), rng.uniform(-1.5, 1.5, n), rng.uniform(3, 7, n)], axis=-1)


def _arc(num_frames=6):
  eyes = [np.array([3 * np.sin(0.05 * i), 0.1 * i, 5 - 5 * np.cos(0.05 * i)]) for i in range(num_frames)]
  return np.stack([geometry.look_at(e, np.array([0.0, 0.0, 5.0])) for e in eyes])


def _pan(num_frames=6):
  return np.stack([geometry.look_at(np.zeros(3), np.array([np.sin(0.05 * i), 0.02 * i, np.cos(0.05 * i)]))
                   for i in range(num_frames)])


@pytest.mark.parametrize("trajectory", [_arc, _pan])
def test_pose_estimation_recovers_synthetic_motion_from_exact_correspondences(trajectory):
  rng = np.random.default_rng(0)
  w2c = trajectory()
  intrinsics = geometry.intrinsics_from_fov(240, 320, 60).astype(np.float64)
  xy, z = geometry.project_points(_scene_points(rng)[None], intrinsics[None], w2c)
  visible = (z > 0) & (xy[..., 0] > 0) & (xy[..., 0] < 320) & (xy[..., 1] > 0) & (xy[..., 1] < 240)
  est = camera.estimate_poses_from_tracks(xy, visible, intrinsics)
  assert est.valid.all()
  np.testing.assert_allclose(est.cam_to_world[0], np.eye(4), atol=1e-12)
  errors = camera.camera_errors(geometry.invert_rigid(w2c), est.cam_to_world)
  assert errors["m_rot_err"] < 1e-6 and errors["m_trans_err"] < 1e-6 and errors["m_cam_mc"] < 1e-6, errors
  if trajectory is _pan:
    assert est.rotation_only[1:].all() and est.anchor == -1
    np.testing.assert_array_equal(est.cam_to_world[:, :3, 3], 0.0)
  else:
    assert not est.rotation_only.any() and est.anchor == 5
    # The estimate is one global scale away from the truth (anchor frame at unit distance).
    gt_rel = geometry.relative_to_reference(geometry.invert_rigid(w2c), geometry.invert_rigid(w2c[:1]))
    scale = np.linalg.norm(gt_rel[5, :3, 3])
    np.testing.assert_allclose(est.cam_to_world[:, :3, 3] * scale, gt_rel[:, :3, 3], atol=1e-6)


def test_pose_estimation_with_noise_and_outliers_is_close():
  rng = np.random.default_rng(1)
  w2c = _arc()
  intrinsics = geometry.intrinsics_from_fov(240, 320, 60).astype(np.float64)
  xy, _ = geometry.project_points(_scene_points(rng, 300)[None], intrinsics[None], w2c)
  xy = xy + rng.normal(scale=0.3, size=xy.shape)
  outliers = rng.uniform(size=xy.shape[:2]) < 0.1
  outliers[0] = False
  xy[outliers] = rng.uniform(0, 240, size=(int(outliers.sum()), 2))
  est = camera.estimate_poses_from_tracks(xy, None, intrinsics)
  errors = camera.camera_errors(geometry.invert_rigid(w2c), est.cam_to_world)
  assert errors["m_rot_err_deg"] < 0.5 and errors["m_trans_err"] < 0.1, errors


def _texture(name, size=512):
  image = getattr(skimage.data, name)()
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  return cv2.resize(np.ascontiguousarray(image[..., :3]), (size, size), interpolation=cv2.INTER_AREA)


def _render_room(w2c, intrinsics, height, width):
  """Ray-casts a box room whose walls carry real photographs (scikit-image's bundled images)."""
  # (axis, plane coordinate, texture axes, texture); walls at x = ±3, floor/ceiling y = ±2, back z = 8.
  planes = [(2, 8.0, (0, 1), "astronaut"), (0, -3.0, (2, 1), "coffee"), (0, 3.0, (2, 1), "chelsea"),
            (1, 2.0, (0, 2), "rocket"), (1, -2.0, (0, 2), "immunohistochemistry")]
  origin, dirs = geometry.camera_rays(intrinsics, geometry.invert_rigid(w2c), height, width)
  best = np.full((height, width), np.inf)
  image = np.zeros((height, width, 3), np.uint8)
  for axis, coord, (ua, va), name in planes:
    with np.errstate(divide="ignore", invalid="ignore"):
      s = (coord - origin[axis]) / dirs[..., axis]
    hit = origin + s[..., None] * dirs
    tex = _texture(name)
    px_per_m = 64.0
    map_u = (hit[..., ua] * px_per_m % 512).astype(np.float32)
    map_v = (hit[..., va] * px_per_m % 512).astype(np.float32)
    colour = cv2.remap(tex, map_u, map_v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    closer = (s > 0) & (s < best)
    best = np.where(closer, s, best)
    image[closer] = colour[closer]
  return image


def test_pose_estimation_from_rendered_textured_room_with_sift():
  height, width = 192, 256
  intrinsics = geometry.intrinsics_from_fov(height, width, 70).astype(np.float64)
  eyes = [np.array([0.25 * i, -0.1 * i, 0.3 * i]) for i in range(3)]
  w2c = np.stack([geometry.look_at(e, np.array([0.1 * i, 0.0, 8.0])) for i, e in enumerate(eyes)])
  video = np.stack([_render_room(p, intrinsics, height, width) for p in w2c])
  tracks, visible = camera.match_feature_tracks(video, method="sift")
  assert visible[1].sum() > 50
  est = camera.estimate_poses_from_video(video, intrinsics)
  assert est.valid.all() and not est.rotation_only[1:].any()
  errors = camera.camera_errors(geometry.invert_rigid(w2c), est.cam_to_world)
  assert errors["m_rot_err_deg"] < 0.5 and errors["m_trans_err"] < 0.1, errors
  assert tracks.shape == (3, visible.shape[1], 2)


def test_optical_flow_tracks_follow_a_known_shift_and_estimate_poses():
  # A textured room seen by a camera translating sideways: LK tracks of the lattice must move
  # with the image, and the poses estimated from them must match the true motion.
  height, width = 64, 80
  intrinsics = geometry.intrinsics_from_fov(height, width, 70).astype(np.float64)
  eyes = [np.array([0.1 * i, -0.04 * i, 0.12 * i]) for i in range(4)]
  w2c = np.stack([geometry.look_at(e, np.array([0.04 * i, 0.0, 8.0])) for i, e in enumerate(eyes)])
  video = np.stack([_render_room(p, intrinsics, height, width) for p in w2c])
  tracks, visible = camera.optical_flow_tracks(video, grid_step=4)
  assert tracks.shape == (4, visible.shape[1], 2) and visible[3].sum() > 0.3 * visible.shape[1]
  np.testing.assert_allclose(tracks[0, 0], [2.0, 2.0])  # lattice at (k + 1/2)·step, corner origin
  est = camera.estimate_poses_from_video(video, intrinsics, method="flow")
  assert est.valid.all()
  errors = camera.camera_errors(geometry.invert_rigid(w2c), est.cam_to_world)
  assert errors["m_rot_err_deg"] < 1.0 and errors["m_trans_err"] < 0.2, errors
  with pytest.raises(ValueError, match="grid_step"):
    camera.optical_flow_tracks(video, grid_step=0)


def test_redirector_errors_are_its_definitions():
  """ReDirector's eval_rot / eval_trans: pairwise relative rotations (gauge-free) and Sim(3)-aligned centres over
  the ground truth's extent, so a similarity of the whole trajectory costs nothing and one tilted frame costs its
  angle on the 2·(T − 1) ordered pairs it is part of."""
  rng = np.random.default_rng(1)
  gt = _random_trajectory(rng, num_frames=6)
  similarity = _pose(_rot([1, 2, 3], 0.7), [4.0, -1.0, 2.0])
  moved = similarity @ gt
  moved[:, :3, 3] = (moved[:, :3, 3] - 1.0) * 3.0  # any scale and origin of the centres
  errors = camera.redirector_errors(gt, moved)
  assert errors["redirector_rot_err_deg"] < 1e-6 and errors["redirector_trans_err"] < 1e-9
  tilted = gt.copy()
  tilted[2, :3, :3] = tilted[2, :3, :3] @ _rot([0, 1, 0], np.radians(2.0))
  assert camera.redirector_errors(gt, tilted)["redirector_rot_err_deg"] == pytest.approx(2.0 * 2 * 5 / 30, rel=1e-6)
  still = gt.copy()
  still[:, :3, 3] = 0.0  # predicted centres that all coincide: aligned to the ground-truth centroid
  a = gt[:, :3, 3]
  extent = max(np.linalg.norm(p - q) for p in a for q in a)
  expected = np.mean(np.linalg.norm(a - a.mean(0), axis=1)) / (extent + 1e-6)
  assert camera.redirector_errors(gt, still)["redirector_trans_err"] == pytest.approx(expected, rel=1e-9)
  with pytest.raises(ValueError, match="T >= 2"):
    camera.redirector_errors(gt[:1], gt[:1])
