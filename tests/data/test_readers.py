"""Tests of the MultiCamVideo and .npz readers on fixtures written in the exact on-disk formats."""

import json
import os

import numpy as np
import pytest

from mvtrack_jax.data import readers
from mvtrack_jax.data import schema
from mvtrack_jax.geometry import cameras as geometry
from tests.helpers import tiny_record, write_multicam_scene


@pytest.fixture
def scene(tmp_path):
  rec = tiny_record(num_views=3, num_frames=4)
  scene_dir = tmp_path / "train" / "f24_aperture5" / "scene7"
  write_multicam_scene(str(scene_dir), rec["world_to_camera"].astype(np.float64), rec["video"])
  return str(scene_dir), rec


def test_unreal_conversion_of_known_camera():
  # Unreal camera at (100, 200, 300) cm with identity rotation: looks along +x_ue, right = +y_ue, up = +z_ue.
  text = "[1 0 0 0] [0 1 0 0] [0 0 1 0] [100 200 300 1] "
  c2w = readers.unreal_to_opencv_cam_to_world(readers.parse_unreal_matrix(text))
  expected = np.array([[0, 0, 1, 1.0], [1, 0, 0, 2.0], [0, -1, 0, 3.0], [0, 0, 0, 1]])
  np.testing.assert_array_equal(c2w, expected)  # columns: right = y_ue, down = -z_ue, forward = x_ue
  assert np.linalg.det(c2w[:3, :3]) == pytest.approx(-1.0)  # left-handed world → reflection


def test_unreal_conversion_matches_reference_loader_steps():
  rng = np.random.default_rng(1)
  q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
  q *= np.sign(np.linalg.det(q))
  mat = np.eye(4)
  mat[:3, :3] = q
  mat[3, :3] = rng.normal(size=3) * 500
  # The ReCamMaster loader, literally: transpose, reorder columns, negate column 1, cm → m.
  ref = mat.T[:, [1, 2, 0, 3]].copy()
  ref[:3, 1] *= -1.0
  ref[:3, 3] /= 100
  np.testing.assert_array_equal(readers.unreal_to_opencv_cam_to_world(mat), ref)


def test_parse_unreal_matrix_errors():
  with pytest.raises(schema.RecordError, match="f.json.*frame3/cam02.*4 bracketed rows"):
    readers.parse_unreal_matrix("[1 0 0 0] [0 1 0 0] [0 0 1 0]", source="f.json", field="frame3/cam02")
  with pytest.raises(schema.RecordError, match="non-numeric"):
    readers.parse_unreal_matrix("[1 0 0 0] [0 1 0 0] [0 0 x 0] [0 0 0 1]")


def test_read_multicam_scene_round_trip(scene):
  scene_dir, rec = scene
  out = readers.read_multicam_scene(scene_dir)
  assert out["video"].shape == (3, 4, 32, 32, 3)
  assert out["tracks"].shape == (3, 4, 0, 2) and out["visible"].shape == (3, 4, 0)
  assert out["points_3d"].shape == (4, 0, 3)
  np.testing.assert_allclose(out["world_to_camera"], rec["world_to_camera"], atol=1e-5)
  assert np.all(np.linalg.det(out["world_to_camera"][..., :3, :3]) > 0.99)
  f_px = 32 * 24 / 23.76
  np.testing.assert_allclose(out["intrinsics"][1, 2], [[f_px, 0, 16], [0, f_px, 16], [0, 0, 1]], rtol=1e-6)
  assert np.abs(out["video"].astype(int) - rec["video"]).mean() < 6
  # Relative poses equal those of the reference loaders' conversion (no world flip).
  with open(os.path.join(scene_dir, "cameras", "camera_extrinsics.json")) as f:
    data = json.load(f)
  raw = np.stack([[readers.parse_unreal_matrix(data[f"frame{i}"][f"cam{j + 1:02d}"]) for i in range(4)] for j in range(3)])
  plain = readers.unreal_to_opencv_cam_to_world(raw)
  rel_plain = np.linalg.inv(plain[0, 0]) @ plain
  rel_ours = geometry.relative_to_reference(geometry.invert_rigid(out["world_to_camera"].astype(np.float64)),
                                            geometry.invert_rigid(out["world_to_camera"][0, 0].astype(np.float64)))
  np.testing.assert_allclose(rel_ours, rel_plain, atol=1e-5)


def test_read_multicam_scene_options(scene):
  scene_dir, rec = scene
  out = readers.read_multicam_scene(scene_dir, cameras=["cam03", "cam01"], num_frames=2, size=(16, 24),
                                    focal_length_mm=50.0)
  assert out["video"].shape == (2, 2, 16, 24, 3)
  np.testing.assert_allclose(out["world_to_camera"][0], rec["world_to_camera"][2, :2], atol=1e-5)
  np.testing.assert_allclose(out["world_to_camera"][1], rec["world_to_camera"][0, :2], atol=1e-5)
  f_px = 32 * 24 / 23.76  # the scene's f24_aperture5 folder wins over the fallback focal length
  np.testing.assert_allclose(out["intrinsics"][0, 0],
                             [[f_px * 24 / 32, 0, 12], [0, f_px * 16 / 32, 8], [0, 0, 1]], rtol=1e-6)


def test_focal_length_from_path():
  assert readers.focal_length_from_path("/data/train/f18_aperture10/scene1") == 18.0
  assert readers.focal_length_from_path("/data/f35_aperture2.4/scene3/") == 35.0
  assert readers.focal_length_from_path("/data/val/10basic_trajectories") is None


def test_multicam_errors(tmp_path):
  rec = tiny_record(num_views=2, num_frames=3)
  w2c = rec["world_to_camera"].astype(np.float64)
  base = tmp_path / "f24_aperture5"

  missing_frame = str(base / "s_frame")
  write_multicam_scene(missing_frame, w2c, rec["video"], drop_frame=2)
  with pytest.raises(schema.RecordError, match="camera_extrinsics.json: field 'frame2': missing"):
    readers.read_multicam_scene(missing_frame)

  missing_cam = str(base / "s_cam")
  write_multicam_scene(missing_cam, w2c, rec["video"], drop_camera=(1, "cam02"))
  with pytest.raises(schema.RecordError, match="field 'frame1/cam02': camera missing"):
    readers.read_multicam_scene(missing_cam)
  with pytest.raises(schema.RecordError, match="cam05.mp4: field 'video'.*not found"):
    readers.read_multicam_scene(missing_cam, cameras=["cam01", "cam05"])

  corrupt = str(base / "s_corrupt")
  write_multicam_scene(corrupt, w2c, rec["video"])
  with open(os.path.join(corrupt, "videos", "cam02.mp4"), "wb") as f:
    f.write(b"\x00garbage" * 64)
  with pytest.raises(schema.RecordError, match="cam02.mp4: field 'video'"):
    readers.read_multicam_scene(corrupt)

  with pytest.raises(schema.RecordError, match="cam01.mp4: field 'video': has 3 frames, 5 requested"):
    readers.read_multicam_scene(missing_frame, num_frames=5)

  no_focal = str(tmp_path / "plain" / "scene1")
  write_multicam_scene(no_focal, w2c, rec["video"])
  with pytest.raises(schema.RecordError, match="field 'intrinsics'.*focal"):
    readers.read_multicam_scene(no_focal)
  assert readers.read_multicam_scene(no_focal, focal_length_mm=35.0)["video"].shape[:2] == (2, 3)

  bad_json = str(base / "s_json")
  write_multicam_scene(bad_json, w2c, rec["video"])
  path = os.path.join(bad_json, "cameras", "camera_extrinsics.json")
  with open(path) as f:
    data = json.load(f)
  data["frame1"]["cam01"] = "[2 0 0 0] [0 2 0 0] [0 0 2 0] [0 0 0 1] "  # scaled: not rigid
  with open(path, "w") as f:
    json.dump(data, f)
  with pytest.raises(schema.RecordError, match="field 'frame1/cam01'.*not orthonormal"):
    readers.read_multicam_scene(bad_json)
  data["frame1"]["cam01"] = "[-1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1] "  # mirrored camera
  with open(path, "w") as f:
    json.dump(data, f)
  with pytest.raises(schema.RecordError, match="mix handedness"):
    readers.read_multicam_scene(bad_json)
  with open(path, "w") as f:
    f.write("{not json")
  with pytest.raises(schema.RecordError, match="camera_extrinsics.json.*not valid JSON"):
    readers.read_multicam_scene(bad_json)


def test_multicam_source(tmp_path):
  rec = tiny_record(num_views=2, num_frames=2, height=16, width=16)
  w2c = rec["world_to_camera"].astype(np.float64)
  write_multicam_scene(str(tmp_path / "f50_aperture2.4" / "scene2"), w2c, rec["video"])
  write_multicam_scene(str(tmp_path / "f18_aperture10" / "scene1"), w2c, rec["video"])
  source = readers.MultiCamVideoSource(tmp_path, num_frames=1)
  assert len(source) == 2
  first, second = source[0], source[1]
  assert first["video"].shape == (2, 1, 16, 16, 3)
  assert first["intrinsics"][0, 0, 0, 0] == pytest.approx(16 * 18 / 23.76)  # sorted: f18 first
  assert second["intrinsics"][0, 0, 0, 0] == pytest.approx(16 * 50 / 23.76)
  with pytest.raises(IndexError):
    source[2]
  with pytest.raises(FileNotFoundError, match="no MultiCamVideo scenes"):
    readers.MultiCamVideoSource(tmp_path / "f50_aperture2.4" / "scene2" / "videos")


def test_npz_round_trip_and_source(tmp_path):
  rec = tiny_record(seed=3)
  rec64 = dict(rec, intrinsics=rec["intrinsics"].astype(np.float64))
  readers.write_npz_clip(tmp_path / "clips" / "a.npz", rec64)
  readers.write_npz_clip(tmp_path / "clips" / "b.npz", tiny_record(seed=4), compress=False)
  back = readers.read_npz_clip(tmp_path / "clips" / "a.npz")
  assert set(back) == set(rec)
  for key in rec:
    np.testing.assert_array_equal(back[key], rec[key])
  assert back["intrinsics"].dtype == np.float32
  source = readers.NpzClipSource(tmp_path / "clips")
  assert len(source) == 2
  np.testing.assert_array_equal(source[1]["video"], tiny_record(seed=4)["video"])
  assert sorted(os.listdir(tmp_path / "clips")) == ["a.npz", "b.npz"]  # no temporaries left
  assert len(readers.NpzClipSource([tmp_path / "clips" / "b.npz"])) == 1


def test_npz_errors_name_file_and_field(tmp_path):
  rec = tiny_record()
  bad = dict(rec, points_3d=rec["points_3d"].copy())
  bad["points_3d"][1, 2, 0] = np.nan
  with pytest.raises(schema.RecordError, match="nan.npz: field 'points_3d': 1 non-finite"):
    readers.write_npz_clip(tmp_path / "nan.npz", bad)
  assert not (tmp_path / "nan.npz").exists()

  # Files written by other tools are validated on reading.
  path = tmp_path / "views.npz"
  np.savez(path, **dict(rec, visible=rec["visible"][:2]))
  with pytest.raises(schema.RecordError, match="views.npz: field 'visible': shape"):
    readers.read_npz_clip(path)
  path = tmp_path / "tracks.npz"
  tracks = rec["tracks"].copy()
  tracks[0, 0, 0] = [1000.0, 5.0]
  vis = rec["visible"].copy()
  vis[0, 0, 0] = True
  np.savez(path, **dict(rec, tracks=tracks, visible=vis))
  with pytest.raises(schema.RecordError, match="tracks.npz: field 'tracks'.*outside the image"):
    readers.read_npz_clip(path)
  path = tmp_path / "cams.npz"
  w2c = rec["world_to_camera"].copy()
  w2c[1, 1, :3, :3] = 0.0
  np.savez(path, **dict(rec, world_to_camera=w2c))
  with pytest.raises(schema.RecordError, match="cams.npz: field 'world_to_camera'.*non-invertible"):
    readers.read_npz_clip(path)
  path = tmp_path / "extra.npz"
  np.savez(path, **dict(rec, colour=np.zeros(3)))
  with pytest.raises(schema.RecordError, match="extra.npz: field 'colour'"):
    readers.read_npz_clip(path)
  path = tmp_path / "corrupt.npz"
  path.write_bytes(b"PK\x03\x04 definitely not a zip")
  with pytest.raises(schema.RecordError, match="corrupt.npz: field '<file>': not a readable"):
    readers.read_npz_clip(path)
  with pytest.raises(schema.RecordError, match="absent.npz.*not found"):
    readers.read_npz_clip(tmp_path / "absent.npz")
  with pytest.raises(FileNotFoundError):
    readers.NpzClipSource(tmp_path / "nowhere")


def test_lazy_scene_decodes_only_the_views_and_frames_taken(scene, monkeypatch):
  scene_dir, _ = scene
  eager = readers.read_multicam_scene(scene_dir, size=(16, 24))
  lazy = readers.read_multicam_scene(scene_dir, size=(16, 24), lazy=True)
  assert isinstance(lazy["video"], readers.LazyVideo) and lazy["video"].shape == eager["video"].shape
  for key in ("intrinsics", "world_to_camera"):
    np.testing.assert_array_equal(lazy[key], eager[key])
  opened = []
  iter_video = readers.video_io.iter_video
  monkeypatch.setattr(readers.video_io, "iter_video",
                      lambda path, **kw: (opened.append((os.path.basename(path), kw["num_frames"])), iter_video(path, **kw))[1])
  window = lazy["video"].read_window([2, 0], [1, 3])
  np.testing.assert_array_equal(window, eager["video"][[2, 0]][:, [1, 3]])
  assert opened == [("cam03.mp4", 4), ("cam01.mp4", 4)]           # two views, up to the last frame needed
  # The pipeline takes exactly one example's two views through it.
  from mvtrack_jax.data import pipeline
  opened.clear()
  cfg = pipeline.PipelineConfig(batch_size=1, num_frames=2, height=16, width=16, num_query_points=0)
  example, _ = pipeline.window_example(lazy, cfg, views=(1, 2), start=1, train=False)
  assert sorted(name for name, _ in opened) == ["cam02.mp4", "cam03.mp4"] and example["reference_video"].shape == (2, 16, 16, 3)
  np.testing.assert_array_equal(np.asarray(lazy["video"]), eager["video"])   # np.asarray decodes everything


def test_validation_layout_takes_the_focal_length_from_the_caller(tmp_path):
  rec = tiny_record(num_views=2, num_frames=3)
  scene_dir = tmp_path / "val" / "10basic_trajectories"              # no f{mm}_aperture folder above it
  readers.write_multicam_scene(str(scene_dir), rec)
  with pytest.raises(readers.RecordError, match="no focal length.*focal_length_mm"):
    readers.MultiCamVideoSource(str(tmp_path / "val"))[0]
  out = readers.MultiCamVideoSource(str(tmp_path / "val"), focal_length_mm=35.0)[0]
  assert out["intrinsics"][0, 0, 0, 0] == pytest.approx(32 * 35 / 23.76)
  # write_multicam_scene is the reader's inverse for the cameras (relative poses; the world y axis flips).
  rel = lambda w2c: geometry.relative_to_reference(geometry.invert_rigid(w2c.astype(np.float64)),
                                                   geometry.invert_rigid(w2c[0, 0].astype(np.float64)))
  np.testing.assert_allclose(rel(out["world_to_camera"]), rel(rec["world_to_camera"]), atol=1e-5)
  assert np.abs(np.asarray(out["video"]).astype(int) - rec["video"]).mean() < 10  # H.264 of a 32-px pattern
