"""Tests of the ray-cast synthetic renderer: the exact-record invariant, occlusion, determinism."""

import numpy as np
import pytest

from mvtrack_jax.data import schema
from mvtrack_jax.data import synthetic
from mvtrack_jax.data import textures
from mvtrack_jax.geometry import cameras
from mvtrack_jax.geometry import trajectories


def assert_exact_record(record, every_point_seen=True):
  """The schema invariant, literally, plus the renderer's own guarantees."""
  rec = schema.validate_record(record, "render")
  dims = schema.record_dims(rec)
  xy, z = cameras.project_points(rec["points_3d"][None], rec["intrinsics"], rec["world_to_camera"])
  vis = rec["visible"]
  # Tracks are the projections: exactly where visible, to float32 rounding elsewhere in front.
  np.testing.assert_allclose(rec["tracks"][vis], xy[vis], rtol=0, atol=1e-3)
  np.testing.assert_allclose(rec["tracks"][z > 0.1], xy[z > 0.1], rtol=1e-4, atol=1e-3)
  vi, ti, ni = np.nonzero(vis)
  col = np.floor(rec["tracks"][vi, ti, ni, 0]).astype(int)
  row = np.floor(rec["tracks"][vi, ti, ni, 1]).astype(int)
  assert (col >= 0).all() and (col < dims["W"]).all() and (row >= 0).all() and (row < dims["H"]).all()
  pix_depth = rec["depth"][vi, ti, row, col]
  assert (z[vi, ti, ni] > 0).all()
  assert (np.abs(z[vi, ti, ni] - pix_depth) <= 0.01 * pix_depth).all()
  # In-image, in-front points more than 1 % behind the surface are never visible.
  inside = (z > 0) & (xy[..., 0] >= 0) & (xy[..., 0] < dims["W"]) & (xy[..., 1] >= 0) & (xy[..., 1] < dims["H"])
  vi, ti, ni = np.nonzero(inside)
  depth_there = rec["depth"][vi, ti, np.floor(xy[vi, ti, ni, 1]).astype(int), np.floor(xy[vi, ti, ni, 0]).astype(int)]
  behind = z[vi, ti, ni] > 1.01 * depth_there
  assert not vis[vi[behind], ti[behind], ni[behind]].any()
  assert not vis[~inside].any()
  if dims["N"] and every_point_seen:
    assert vis.any(axis=(0, 1)).all(), "every point must be visible in some view at some frame"
  assert (rec["depth"] > 0).all()


@pytest.mark.parametrize("seed, kwargs", [
    (0, {}),  # defaults: V=4, T=16, 64x64, N=256
    (1, dict(num_views=2, num_frames=3, height=24, width=40, num_tracks=20)),
    (2, dict(num_views=1, num_frames=1, height=16, width=16, num_tracks=8)),
    (3, dict(num_views=3, num_frames=5, height=48, width=32, num_tracks=64)),
    (4, dict(num_views=2, num_frames=4, height=3, width=5, num_tracks=6)),
])
def test_render_scene_invariant(seed, kwargs):
  rec = synthetic.render_scene(seed, **kwargs)
  v, t = kwargs.get("num_views", 4), kwargs.get("num_frames", 16)
  h, w, n = kwargs.get("height", 64), kwargs.get("width", 64), kwargs.get("num_tracks", 256)
  assert schema.record_dims(rec) == {"V": v, "T": t, "H": h, "W": w, "N": n}
  assert_exact_record(rec)
  # Synchronised cameras with a fixed focal length per view, principal point at the centre.
  np.testing.assert_allclose(rec["intrinsics"][:, :, 0, 2], w / 2)
  np.testing.assert_allclose(rec["intrinsics"], np.broadcast_to(rec["intrinsics"][:, :1], rec["intrinsics"].shape))


def test_default_scene_content():
  rec = synthetic.render_scene(7)
  # About half the points sit on moving objects (background points are static in the world).
  moving = np.abs(rec["points_3d"] - rec["points_3d"][:1]).max(axis=(0, 2)) > 1e-5
  assert 0.3 <= moving.mean() <= 0.7
  # Real textures: many distinct colours, not flat shading.
  assert len(np.unique(rec["video"].reshape(-1, 3), axis=0)) > 1000
  # Some views move (preset trajectories) and points get occluded / leave the view.
  centres = cameras.invert_rigid(rec["world_to_camera"].astype(np.float64))[:, :, :3, 3]
  assert np.ptp(centres, axis=1).max() > 0.05 or np.ptp(rec["world_to_camera"], axis=1).max() > 1e-3
  assert 0.05 < rec["visible"].mean() < 0.95


def test_views_come_in_pairs_that_start_at_the_same_camera():
  rec = synthetic.render_scene(3, num_views=4, num_frames=6, height=16, width=16, num_tracks=8)
  w2c, k = rec["world_to_camera"], rec["intrinsics"]
  for a, b in ((0, 1), (2, 3)):  # odd view starts where its even partner starts (pose and intrinsics)
    np.testing.assert_array_equal(w2c[a, 0], w2c[b, 0])
    np.testing.assert_array_equal(k[a], k[b])
    np.testing.assert_array_equal(rec["video"][a, 0], rec["video"][b, 0])  # same first frame
  # The pairs start at different places around the room (wide baselines across pairs).
  centres = cameras.invert_rigid(w2c[:, 0].astype(np.float64))[:, :3, 3]
  assert np.linalg.norm(centres[0] - centres[2]) > 0.5


def test_deterministic_and_seed_dependent():
  kwargs = dict(num_views=2, num_frames=3, height=20, width=24, num_tracks=16)
  a = synthetic.render_scene(11, **kwargs)
  b = synthetic.render_scene(11, **kwargs)
  c = synthetic.render_scene(12, **kwargs)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(a["video"], c["video"])
  assert not np.array_equal(a["world_to_camera"], c["world_to_camera"])


def test_no_tracks():
  rec = synthetic.render_scene(5, num_views=1, num_frames=2, height=8, width=8, num_tracks=0)
  assert rec["tracks"].shape == (1, 2, 0, 2) and rec["points_3d"].shape == (2, 0, 3)
  schema.validate_record(rec)


@pytest.mark.parametrize("name, value", [
    ("num_views", 0), ("num_frames", 0), ("height", 0), ("width", -3), ("num_tracks", -1),
    ("num_views", 2.0), ("height", True), ("seed", -1),
])
def test_bad_arguments(name, value):
  kwargs = dict(num_views=1, num_frames=1, height=8, width=8, num_tracks=1)
  seed = 0
  if name == "seed":
    seed = value
  else:
    kwargs[name] = value
  with pytest.raises(ValueError, match=name):
    synthetic.render_scene(seed, **kwargs)


# --- Explicitly constructed scenes ----------------------------------------------------------------


def _room():
  tex = textures.load_textures()[0][1]
  return synthetic.Room(np.array([-10.0, -10.0, -10.0]), np.array([10.0, 10.0, 20.0]), (tex,) * 6)


def _sphere(centres, radius, num_frames):
  centres = np.broadcast_to(np.asarray(centres, np.float64), (num_frames, 3))
  return synthetic.SceneObject("sphere", np.array([radius]), textures.load_textures()[1][1], centres,
                               np.broadcast_to(np.eye(3), (num_frames, 3, 3)))


def _identity_camera(num_frames, height=48, width=64):
  k = cameras.intrinsics_from_fov(height, width, 60.0)
  return (np.broadcast_to(k, (1, num_frames, 3, 3)), np.broadcast_to(np.eye(4), (1, num_frames, 4, 4)))


def test_constructed_occlusion():
  # Camera at the origin looking down +z; sphere A (r=0.5) at z=4 in front of sphere B (r=3) at z=10.
  scene = synthetic.Scene(_room(), (_sphere([0, 0, 4], 0.5, 1), _sphere([0, 0, 10], 3.0, 1)), 1)
  k, c2w = _identity_camera(1)
  owners = np.array([2, 1, 2, 2, 0, 0])
  local = np.array([
      [0.0, 0.0, -3.0],  # B's front pole: straight behind A → hidden.
      [0.0, 0.0, -0.5],  # A's front pole → visible.
      [1.2, 0.0, -2.75],  # B's front, off to the side of A → visible.
      [0.0, 0.0, 3.0],  # B's back pole → hidden by B itself.
      [0.0, 0.0, 20.0],  # far wall behind both spheres → hidden.
      [8.0, 1.0, 20.0],  # far wall, clear line of sight → visible.
  ])
  rec = synthetic.render_record(scene, k, c2w, 48, 64, owners, local)
  assert_exact_record(rec, every_point_seen=False)
  np.testing.assert_array_equal(rec["visible"][0, 0], [False, True, True, False, False, True])
  # The hidden point is in the image and in front of the camera: only the depth test hides it.
  x, y = rec["tracks"][0, 0, 0]
  assert 0 <= x < 64 and 0 <= y < 48
  assert rec["depth"][0, 0, int(y), int(x)] == pytest.approx(3.5, rel=1e-3)
  assert rec["points_3d"][0, 0, 2] == pytest.approx(7.0)


def test_constructed_occluder_passes_in_front():
  # A small sphere crosses in front of B's front pole: visible, hidden, visible again.
  t = 5
  a_path = np.stack([np.linspace(-2.0, 2.0, t), np.zeros(t), np.full(t, 4.0)], axis=-1)
  scene = synthetic.Scene(_room(), (_sphere(a_path, 0.5, t), _sphere([0, 0, 7], 1.5, t)), t)
  k, c2w = _identity_camera(t)
  rec = synthetic.render_record(scene, k, c2w, 48, 64, np.array([2, 1]), np.array([[0.0, 0.0, -1.5], [0.0, 0.0, -0.5]]))
  assert_exact_record(rec)
  np.testing.assert_array_equal(rec["visible"][0, :, 0], [True, True, False, True, True])
  # The point attached to A moves with it.
  np.testing.assert_allclose(rec["points_3d"][:, 1], a_path + [0.0, 0.0, -0.5], atol=1e-6)


def test_attached_points_rotate_with_their_object_and_supersampling_keeps_ground_truth():
  t = 4
  angle = np.linspace(0.0, np.pi / 2, t)
  rot = np.zeros((t, 3, 3))
  rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = (
      np.cos(angle), np.sin(angle), 1.0, -np.sin(angle), np.cos(angle))
  card = synthetic.SceneObject("card", np.array([1.0, 0.8]), textures.load_textures()[2][1],
                               np.broadcast_to([0.0, 0.0, 5.0], (t, 3)), rot)
  box = synthetic.SceneObject("box", np.array([0.3, 0.3, 0.3]), textures.load_textures()[3][1],
                              np.broadcast_to([1.5, 0.5, 4.0], (t, 3)), rot)
  scene = synthetic.Scene(_room(), (card, box), t)
  k, c2w = _identity_camera(t, 32, 40)
  owners, local = np.array([1, 2, 0]), np.array([[0.5, 0.2, 0.0], [0.1, 0.0, -0.3], [9.0, -3.0, 20.0]])
  rec = synthetic.render_record(scene, k, c2w, 32, 40, owners, local)
  rec_ss = synthetic.render_record(scene, k, c2w, 32, 40, owners, local, supersample=2)
  assert_exact_record(rec)
  expected = np.einsum("tij,j->ti", rot, local[0]) + [0.0, 0.0, 5.0]
  np.testing.assert_allclose(rec["points_3d"][:, 0], expected, atol=1e-6)
  assert rec["visible"][0, 0].all()
  for key in ("depth", "tracks", "visible", "points_3d"):
    np.testing.assert_array_equal(rec[key], rec_ss[key])
  assert not np.array_equal(rec["video"], rec_ss["video"])
  # 2×2 supersampling = the box-filtered render at twice the resolution (same sub-pixel samples).
  k2 = cameras.scale_intrinsics(np.asarray(k, np.float64), 2.0, 2.0)
  big = synthetic.render_record(scene, k2, c2w, 64, 80, owners, local)["video"].astype(float)
  pooled = big.reshape(1, t, 32, 2, 40, 2, 3).mean(axis=(3, 5))
  assert np.abs(pooled - rec_ss["video"]).max() <= 1.0


def test_scene_rejects_bad_objects():
  with pytest.raises(ValueError, match="kind"):
    synthetic.Scene(_room(), (synthetic.SceneObject("cone", np.ones(1), np.ones((2, 2, 3)), np.zeros((1, 3)),
                                                    np.eye(3)[None]),), 1)
  with pytest.raises(ValueError, match="centres"):
    synthetic.Scene(_room(), (_sphere([0, 0, 4], 0.5, 2),), 3)


def test_textures_are_real_photographs():
  loaded = dict(textures.load_textures())
  assert {"astronaut", "chelsea", "brick"} <= set(loaded)
  assert "eagle" not in loaded  # needs a download
  for image in loaded.values():
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[-1] == 3
    assert max(image.shape[:2]) <= textures.MAX_TEXTURE_SIDE and 0 <= image.min() and image.max() <= 1


# --- render_scene_views: the same scene and points from other cameras --------------------------------

_VIEWS_SIZES = dict(num_views=2, num_frames=4, height=20, width=28, num_tracks=24)


def test_render_scene_views_with_the_records_own_cameras_reproduces_it_exactly():
  rec = synthetic.render_scene(6, **_VIEWS_SIZES)
  c2w = cameras.invert_rigid(rec["world_to_camera"].astype(np.float64))
  again = synthetic.render_scene_views(6, rec["intrinsics"], c2w, **_VIEWS_SIZES)
  assert again.keys() == rec.keys()
  for key in rec:
    assert again[key].dtype == rec[key].dtype, key
    np.testing.assert_array_equal(again[key], rec[key], err_msg=key)
  # One view alone (another V') is the same view.
  one = synthetic.render_scene_views(6, rec["intrinsics"][1:], c2w[1:], **_VIEWS_SIZES)
  for key in ("video", "depth", "tracks", "visible"):
    np.testing.assert_array_equal(one[key], rec[key][1:], err_msg=key)


@pytest.mark.parametrize("name, magnitude", [("arc_left", None), ("translate_up", 1.0)])
def test_render_scene_views_along_a_preset_trajectory(name, magnitude):
  rec = synthetic.render_scene(8, **_VIEWS_SIZES)
  c2w_ref = cameras.invert_rigid(rec["world_to_camera"][0, 0].astype(np.float64))
  traj = trajectories.preset_trajectory(name, 4, start_cam_to_world=c2w_ref, magnitude=magnitude)
  new = synthetic.render_scene_views(8, rec["intrinsics"][:1], traj[None], **_VIEWS_SIZES)
  assert schema.record_dims(new) == {"V": 1, "T": 4, "H": 20, "W": 28, "N": 24}
  np.testing.assert_array_equal(new["points_3d"], rec["points_3d"])
  assert_exact_record(new, every_point_seen=False)  # tracks = projections of points_3d where visible, depth test
  xy, _ = cameras.project_points(new["points_3d"][None], new["intrinsics"], new["world_to_camera"])
  np.testing.assert_allclose(new["tracks"][new["visible"]], xy[new["visible"]], rtol=0, atol=1e-3)
  np.testing.assert_allclose(cameras.invert_rigid(new["world_to_camera"].astype(np.float64))[0], traj, atol=1e-5)
  assert new["visible"].any() and not np.array_equal(new["video"][0, -1], rec["video"][0, -1])
  # Frame 0 is the reference camera: the reference view's frame 0, exactly.
  for key in ("video", "depth", "tracks", "visible"):
    np.testing.assert_array_equal(new[key][0, 0], rec[key][0, 0], err_msg=key)


def test_cameras_outside_the_room_see_through_the_near_wall_and_misses_are_black():
  # Room z in [-10, 20]; the camera stands behind the -z wall at z = -15. Looking +z it sees through
  # that wall (one-sided) the sphere at z = 4 and the far wall; looking -z every ray misses.
  scene = synthetic.Scene(_room(), (_sphere([0, 0, 4], 1.0, 1),), 1)
  k, _ = _identity_camera(1, 24, 32)
  c2w = np.broadcast_to(np.eye(4), (2, 1, 4, 4)).copy()
  c2w[:, 0, 2, 3] = -15.0
  c2w[1, 0, :3, :3] = np.diag([-1.0, 1.0, -1.0])  # turned around
  owners = np.array([1, 0, 0])
  local = np.array([[0.0, 0.0, -1.0], [2.0, 1.0, 20.0], [0.0, 0.0, -10.0]])  # sphere front, far wall, near wall
  rec = synthetic.render_record(scene, np.broadcast_to(k, (2, 1, 3, 3)), c2w, 24, 32, owners, local)
  schema.validate_record(rec)
  assert 18.0 < rec["depth"][0, 0, 12, 16] < 18.2  # sphere front (z = 3) at the pixel next to the centre
  assert rec["depth"][0, 0, 12, 10] == pytest.approx(35.0, rel=1e-4)  # far wall (z = 20) left of the sphere
  assert (rec["depth"][0] > 5.0).all()  # nothing at the near wall (z = -10, depth 5): it is transparent
  np.testing.assert_array_equal(rec["visible"][:, 0], [[True, True, False], [False, False, False]])
  assert (rec["depth"][1] == 0).all() and (rec["video"][1] == 0).all()
  # The same for a random scene whose camera zooms far out of the room.
  rec = synthetic.render_scene(8, **_VIEWS_SIZES)
  c2w_ref = cameras.invert_rigid(rec["world_to_camera"][0, 0].astype(np.float64))
  traj = trajectories.preset_trajectory("zoom_out", 4, start_cam_to_world=c2w_ref, magnitude=15.0)
  assert not np.all(np.abs(traj[-1, :3, 3]) < [7.0, 5.0, 7.0])  # the last camera is outside the room
  new = synthetic.render_scene_views(8, rec["intrinsics"][:1], traj[None], **_VIEWS_SIZES)
  schema.validate_record(new)
  miss = new["depth"] == 0
  assert miss[0, -1].any() and not miss[0, 0].any() and (new["video"][miss] == 0).all()
  assert new["visible"][0, -1].any()
  vi, ti, ni = np.nonzero(new["visible"])
  col, row = np.floor(new["tracks"][vi, ti, ni]).astype(int).T
  assert (new["depth"][vi, ti, row, col] > 0).all()


def test_render_scene_views_rejects_bad_cameras():
  k = np.broadcast_to(cameras.intrinsics_from_fov(8, 8, 60.0), (1, 2, 3, 3))
  c2w = np.broadcast_to(np.eye(4), (1, 2, 4, 4)).copy()
  sizes = dict(num_views=1, num_frames=2, height=8, width=8, num_tracks=2)
  with pytest.raises(ValueError, match="intrinsics"):
    synthetic.render_scene_views(0, k[0], c2w, **sizes)
  with pytest.raises(ValueError, match="cam_to_world"):
    synthetic.render_scene_views(0, k, c2w[:, :1], **sizes)
  with pytest.raises(ValueError, match="frames"):
    synthetic.render_scene_views(0, k, c2w, **dict(sizes, num_frames=3))
  skewed = c2w.copy()
  skewed[0, 1, 0, 1] = 0.3
  with pytest.raises(ValueError, match="rigid"):
    synthetic.render_scene_views(0, k, skewed, **sizes)
  with pytest.raises(ValueError, match="supersample"):
    synthetic.render_scene_views(0, k, c2w, supersample=0, **sizes)
  with pytest.raises(ValueError, match="render_scene_views: num_tracks"):
    synthetic.render_scene_views(0, k, c2w, **dict(sizes, num_tracks=-1))
