"""Tests of ReCamMaster's preset trajectories: start pose, directions, rigidity, errors."""

import numpy as np
import pytest

from mvtrack_jax.geometry import cameras
from mvtrack_jax.geometry import trajectories

TARGET = np.array([0.3, -0.2, 0.5])


def _start_pose() -> np.ndarray:
  """A generic (non-identity) start pose aimed at TARGET, world gravity +y."""
  return cameras.invert_rigid(cameras.look_at(np.array([2.0, -1.5, -3.0]), TARGET))


def _angle_deg(a, b) -> float:
  return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


@pytest.mark.parametrize("name", trajectories.TRAJECTORY_NAMES)
def test_frame0_is_start_and_rotations_are_proper(name):
  start = _start_pose()
  poses = trajectories.preset_trajectory(name, 9, start_cam_to_world=start, look_at_point=TARGET)
  assert poses.shape == (9, 4, 4)
  np.testing.assert_array_equal(poses[0], start)
  rot = poses[:, :3, :3]
  np.testing.assert_allclose(np.einsum("tji,tjk->tik", rot, rot), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
  np.testing.assert_array_equal(poses[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (9, 4)))


def test_identity_default_start_and_single_frame():
  poses = trajectories.preset_trajectory("arc_left", 1)
  np.testing.assert_array_equal(poses, np.eye(4)[None])
  np.testing.assert_array_equal(trajectories.preset_trajectory("pan_right", 4)[0], np.eye(4))


def _motion(name, **kwargs):
  start = _start_pose()
  poses = trajectories.preset_trajectory(name, 17, start_cam_to_world=start, look_at_point=TARGET, **kwargs)
  axes0 = start[:3, :3]  # columns x0, y0, z0
  move = axes0.T @ (poses[-1, :3, 3] - poses[0, :3, 3])  # displacement in start-camera axes
  view = axes0.T @ poses[-1, :3, 2]  # final optical axis in start-camera axes
  return start, poses, move, view


@pytest.mark.parametrize("name, axis, sign, degrees", [
    ("pan_right", 0, +1, 30.0), ("pan_left", 0, -1, 30.0),
    ("tilt_up", 1, -1, 20.0), ("tilt_down", 1, +1, 20.0),
])
def test_pan_and_tilt_turn_the_optical_axis_in_place(name, axis, sign, degrees):
  _, poses, move, view = _motion(name)
  np.testing.assert_allclose(move, 0.0, atol=1e-12)
  assert np.sign(view[axis]) == sign and abs(view[axis]) > 0.3
  assert abs(view[1 - axis]) < 1e-9  # pure yaw / pure pitch
  assert _angle_deg(view, [0, 0, 1]) == pytest.approx(degrees, abs=1e-6)
  _, _, _, view = _motion(name, magnitude=10.0)
  assert _angle_deg(view, [0, 0, 1]) == pytest.approx(10.0, abs=1e-6)


@pytest.mark.parametrize("name, sign", [("zoom_in", +1), ("zoom_out", -1)])
def test_zoom_dollies_along_the_optical_axis(name, sign):
  start, poses, move, _ = _motion(name, magnitude=1.5)
  np.testing.assert_allclose(move, [0.0, 0.0, sign * 1.5], atol=1e-12)
  np.testing.assert_allclose(poses[:, :3, :3], np.broadcast_to(start[:3, :3], (17, 3, 3)), atol=1e-15)


@pytest.mark.parametrize("name, sign", [("translate_up", -1), ("translate_down", +1)])
def test_translate_moves_along_camera_y_and_keeps_aiming(name, sign):
  start, poses, move, _ = _motion(name)
  distance = np.linalg.norm(TARGET - start[:3, 3])
  np.testing.assert_allclose(move, [0.0, sign * 0.3 * distance, 0.0], atol=1e-9)
  for pose in poses:  # the start pose aims at TARGET, so every frame does.
    assert _angle_deg(pose[:3, 2], TARGET - pose[:3, 3]) < 1e-5


@pytest.mark.parametrize("name, sign", [("arc_left", -1), ("arc_right", +1)])
def test_arc_orbits_the_look_at_point(name, sign):
  start, poses, move, _ = _motion(name, magnitude=60.0)
  assert np.sign(move[0]) == sign and abs(move[0]) > 0.5
  assert abs(move[1]) < 1e-9  # orbit axis is the camera's up
  radius0 = np.linalg.norm(start[:3, 3] - TARGET)
  np.testing.assert_allclose(np.linalg.norm(poses[:, :3, 3] - TARGET, axis=-1), radius0, rtol=1e-12)
  for pose in poses:
    assert _angle_deg(pose[:3, 2], TARGET - pose[:3, 3]) < 1e-5
  offset0 = start[:3, 3] - TARGET
  assert _angle_deg(offset0, poses[-1, :3, 3] - TARGET) == pytest.approx(60.0, abs=1e-6)


def test_motion_is_smooth_and_monotonic():
  _, poses, _, _ = _motion("zoom_in")
  steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=-1)
  assert np.all(steps > 0)
  assert steps[0] < steps[len(steps) // 2] and steps[-1] < steps[len(steps) // 2]  # ease in / out
  assert np.abs(np.diff(steps)).max() < 0.2 * steps.max()


def test_static_never_moves():
  start = _start_pose()
  poses = trajectories.preset_trajectory("static", 5, start_cam_to_world=start, magnitude=3.0)
  np.testing.assert_array_equal(poses, np.broadcast_to(start, (5, 4, 4)))


def test_bad_arguments():
  with pytest.raises(ValueError, match="pan_right.*arc_left"):
    trajectories.preset_trajectory("dolly_zoom", 4)
  with pytest.raises(ValueError, match="num_frames"):
    trajectories.preset_trajectory("pan_left", 0)
  with pytest.raises(ValueError, match="magnitude"):
    trajectories.preset_trajectory("pan_left", 4, magnitude=-1.0)
  with pytest.raises(ValueError, match="start_cam_to_world"):
    trajectories.preset_trajectory("pan_left", 4, start_cam_to_world=np.diag([2.0, 1.0, 1.0, 1.0]))
  with pytest.raises(ValueError, match="look_at_point"):
    trajectories.preset_trajectory("arc_left", 4, look_at_point=np.zeros(2))
  with pytest.raises(ValueError, match="look_at_point"):
    trajectories.preset_trajectory("translate_up", 4, look_at_point=np.zeros(3))
