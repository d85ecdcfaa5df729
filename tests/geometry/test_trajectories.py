"""Tests of ReCamMaster's preset trajectories: start pose, directions, rigidity, errors."""

import json

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


# Frames 1, 40 and 80 of ReCamMaster's released camera_extrinsics.json (KwaiVGI/ReCamMaster
# example_test_data/cameras/, MIT), copied verbatim; frame 0 is "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3390 1380 240 1]"
# for every camera.
_RECAMMASTER_FRAMES = {
    1: {
        '01': '[0.999991 0.00433621 0 0] [-0.00433621 0.999991 0 0] [0 -0 1 0] [3390 1380 240 1]',
        '02': '[0.999991 -0.00433621 0 0] [0.00433621 0.999991 -0 0] [0 0 1 0] [3390 1380 240 1]',
        '03': '[0.999998 0 0.00216811 0] [-0 1 0 0] [-0.00216811 -0 0.999998 0] [3390 1380 240 1]',
        '04': '[0.999998 0 -0.00216811 0] [-0 1 0 0] [0.00216811 0 0.999998 0] [3390 1380 240 1]',
        '05': '[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3392.48 1380 240 1]',
        '06': '[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3387.52 1380 240 1]',
        '07': '[0.999995 0 -0.00310558 0] [-0 1 0 0] [0.00310558 0 0.999995 0] [3390 1380 241.242 1]',
        '08': '[0.999995 0 0.00310558 0] [-0 1 0 0] [-0.00310558 -0 0.999995 0] [3390 1380 238.758 1]',
        '09': '[0.999981 0.00622141 0 0] [-0.00622141 0.999981 0 0] [0 -0 1 0] [3390.67 1377.52 240 1]',
        '10': '[0.999981 -0.00622141 0 0] [0.00622141 0.999981 -0 0] [0 0 1 0] [3390.67 1382.48 240 1]',
    },
    40: {
        '01': '[0.984995 0.17258 0 0] [-0.17258 0.984995 0 0] [0 -0 1 0] [3390 1380 240 1]',
        '02': '[0.984995 -0.17258 0 0] [0.17258 0.984995 -0 0] [0 0 1 0] [3390 1380 240 1]',
        '03': '[0.996242 0 0.0866158 0] [6.69781e-35 1 -7.70372e-34 0] [-0.0866158 7.73278e-34 0.996242 0] [3390 1380 240 1]',
        '04': '[0.996242 0 -0.0866158 0] [-0 1 0 0] [0.0866158 0 0.996242 0] [3390 1380 240 1]',
        '05': '[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3489.38 1380 240 1]',
        '06': '[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3290.62 1380 240 1]',
        '07': '[0.992372 0 -0.123276 0] [-0 1 0 0] [0.123276 0 0.992372 0] [3390 1380 289.689 1]',
        '08': '[0.992372 0 0.123276 0] [-0 1 0 0] [-0.123276 -0 0.992372 0] [3390 1380 190.311 1]',
        '09': '[0.966355 0.257211 0 0] [-0.257211 0.966355 0 0] [0 -0 1 0] [3416.63 1280.62 240 1]',
        '10': '[0.966355 -0.257211 0 0] [0.257211 0.966355 -0 0] [0 0 1 0] [3416.63 1479.38 240 1]',
    },
    80: {
        '01': '[0.940432 0.339982 0 0] [-0.339982 0.940432 0 0] [0 -0 1 0] [3390 1380 240 1]',
        '02': '[0.940432 -0.339982 0 0] [0.339982 0.940432 -0 0] [0 0 1 0] [3390 1380 240 1]',
        '03': '[0.984995 -2.13821e-50 0.17258 0] [2.69953e-34 1 -1.54074e-33 0] [-0.17258 1.56421e-33 0.984995 0] [3390 1380 240 1]',
        '04': '[0.984995 0 -0.17258 0] [-0 1 0 0] [0.17258 0 0.984995 0] [3390 1380 240 1]',
        '05': '[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3588.76 1380 240 1]',
        '06': '[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3191.24 1380 240 1]',
        '07': '[0.970496 0 -0.241117 0] [-0 1 0 0] [0.241117 0 0.970496 0] [3390 1380 339.379 1]',
        '08': '[0.970496 0 0.241117 0] [-0 1 0 0] [-0.241117 -0 0.970496 0] [3390 1380 140.621 1]',
        '09': '[0.867575 0.497306 0 0] [-0.497306 0.867575 0 0] [0 -0 1 0] [3443.26 1181.24 240 1]',
        '10': '[0.867575 -0.497306 0 0] [0.497306 0.867575 -0 0] [0 0 1 0] [3443.26 1578.76 240 1]',
    },
}
_RECAMMASTER_FRAME0 = "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3390 1380 240 1]"


def _angle_between_deg(a: np.ndarray, b: np.ndarray) -> float:
  """Rotation angle between two rotation matrices, from the skew part (accurate near 0)."""
  d = a.T @ b
  return float(np.degrees(np.arctan2(np.linalg.norm([d[2, 1] - d[1, 2], d[0, 2] - d[2, 0], d[1, 0] - d[0, 1]]) / 2,
                                     (np.trace(d) - 1) / 2)))


def test_recammaster_presets_equal_the_released_json(tmp_path):
  """preset_trajectory("cam01" … "cam10", 81) against the JSON read with ReCamMaster's conversion: 0.1° and 1 cm."""
  frames = [0, 1, 40, 80]
  data = {"frame0": {f"cam{c:02d}": _RECAMMASTER_FRAME0 for c in range(1, 11)}}
  data.update({f"frame{i + 1}": {f"cam{c}": m for c, m in _RECAMMASTER_FRAMES[f].items()}
               for i, f in enumerate(frames[1:])})
  path = tmp_path / "camera_extrinsics.json"
  path.write_text(json.dumps(data))
  read = trajectories.read_recammaster_json(path)
  assert sorted(read) == list(trajectories.RECAMMASTER_NAMES)
  for name, released in read.items():
    ours = trajectories.preset_trajectory(name, 81)[frames]
    for f, (a, b) in enumerate(zip(ours, released)):
      assert _angle_between_deg(a[:3, :3], b[:3, :3]) < 0.1 and np.linalg.norm(a[:3, 3] - b[:3, 3]) < 0.01, (name, frames[f])
  # What they are (OpenCV camera axes, metres): cam01 pans right 19.88° by frame 80, cam05 moves 1.99 m forward,
  # cam07 rises 0.99 m (-y) looking down at the point 4 m ahead, cam09 arcs left turning right.
  last = {name: trajectories.preset_trajectory(name, 81)[-1] for name in ("cam01", "cam05", "cam07", "cam09")}
  assert last["cam01"][0, 2] == pytest.approx(np.sin(np.radians(20 * 80 / 80.5)), abs=1e-9)
  np.testing.assert_allclose(last["cam05"][:3, 3], [0, 0, 2 * 80 / 80.5], atol=1e-9)
  assert last["cam07"][1, 3] < -0.99 and last["cam07"][2, 1] < 0  # up, optical axis tilted down (+y)
  assert last["cam09"][0, 3] < -1.98 and last["cam09"][0, 2] > 0.49  # left, optical axis turned right
  with pytest.raises(ValueError, match="look_at_point and magnitude do not apply"):
    trajectories.preset_trajectory("cam09", 81, magnitude=10.0)


def test_recammaster_presets_keep_their_speed_when_resampled():
  """ReDirector's resampling: a shorter clip moves at the same per-frame speed (a constant-speed pan's first T
  frames), longer ones go further; 81 frames are the released path itself; the start pose is composed in front."""
  full = trajectories.preset_trajectory("cam01", 81)
  np.testing.assert_allclose(trajectories.preset_trajectory("cam01", 21), full[:21], atol=1e-9)
  zoom = trajectories.preset_trajectory("cam06", 121)
  assert zoom[-1, 2, 3] == pytest.approx(-2.0 * 120 / 80.5, rel=1e-6)
  arc = trajectories.preset_trajectory("cam10", 33)
  steps = np.linalg.norm(np.diff(arc[:, :3, 3], axis=0), axis=-1)
  np.testing.assert_allclose(steps, steps[0], rtol=1e-3)  # the chord at constant speed
  start = cameras.look_at(np.array([1.0, -2.0, 0.5]), np.zeros(3))
  start_c2w = cameras.invert_rigid(start)
  np.testing.assert_allclose(trajectories.preset_trajectory("cam03", 9, start_cam_to_world=start_c2w),
                             start_c2w[None] @ trajectories.preset_trajectory("cam03", 9), atol=1e-12)
  with pytest.raises(ValueError, match="unknown name 'cam11'"):
    trajectories.recammaster_trajectory("cam11")
