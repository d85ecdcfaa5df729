"""Tests of the Kubric multi-view converter on scenes written in Kubric's own on-disk conventions.

The fixture takes an exact synthetic record (OpenCV cameras, pixel K, z-depth, exact tracks) and
writes it the way Kubric and MVTracker's Kubric multi-view data store it: Blender camera axes as
``(w, x, y, z)`` quaternions + positions, normalised Blender-camera ``K``, depth as distance along
the ray, ``rgba_XXXXX.png`` / ``depth_XXXXX.tiff`` frames. The writer is independent of the
converter (scipy for quaternions, its own ray-length formula), and ``test_fixture_matches_kubric_projection``
checks it against Kubric's ``Camera.project_point`` formula, so the round trip tests the conventions.
"""

import json
import os
import shutil
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mvtrack_jax.data import convert_kubric
from mvtrack_jax.data import readers
from mvtrack_jax.data import schema
from mvtrack_jax.data import synthetic
from tests.helpers import run_cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SENSOR_WIDTH_MM = 32.0
FLIP = np.diag([1.0, -1.0, -1.0, 1.0])
KUBRIC_MISS = 1e10  # what Kubric's depth holds where a ray hits nothing


@pytest.fixture(scope="module")
def record():
  return synthetic.render_scene(3, num_views=2, num_frames=4, height=32, width=48, num_tracks=32)


def ray_lengths(k: np.ndarray, height: int, width: int) -> np.ndarray:
  """``‖((x − cx)/fx, (y − cy)/fy, 1)‖`` at pixel centres: distance = z · this (no skew)."""
  ys, xs = np.mgrid[0:height, 0:width] + 0.5
  return np.sqrt(((xs - k[0, 2]) / k[0, 0]) ** 2 + ((ys - k[1, 2]) / k[1, 1]) ** 2 + 1.0)


def write_kubric_scene(scene_dir, record, *, depth_format="tiff", depth_type="distance", blender_axes=True,
                       tracks_2d=True):
  """Writes ``record`` in the Kubric multi-view layout (convert_kubric module docstring).

  ``blender_axes=False`` writes the OpenCV poses as if they were Blender ones (a wrong convention).
  """
  v_count, t_count, height, width = record["depth"].shape
  os.makedirs(scene_dir, exist_ok=True)
  np.savez(os.path.join(scene_dir, "tracks_3d.npz"), tracks_3d=record["points_3d"])
  c2w_cv = np.linalg.inv(record["world_to_camera"].astype(np.float64))
  c2w_bl = c2w_cv @ FLIP if blender_axes else c2w_cv
  for v in range(v_count):
    view = os.path.join(scene_dir, f"view_{v}")
    os.makedirs(view)
    k = record["intrinsics"][v, 0].astype(np.float64)
    k_kubric = np.array([[k[0, 0] / width, 0.0, -k[0, 2] / width],
                         [0.0, -k[1, 1] / height, -k[1, 2] / height],
                         [0.0, 0.0, -1.0]])
    focal = k[0, 0] / width * SENSOR_WIDTH_MM
    quats = Rotation.from_matrix(c2w_bl[v, :, :3, :3]).as_quat(scalar_first=True)
    meta = {
        "metadata": {"resolution": [width, height], "num_frames": t_count},
        "camera": {"K": k_kubric.tolist(), "R": c2w_bl[v, 0].tolist(), "positions": c2w_bl[v, :, :3, 3].tolist(),
                   "quaternions": quats.tolist(), "focal_length": focal, "sensor_width": SENSOR_WIDTH_MM,
                   "field_of_view": 2 * np.arctan(SENSOR_WIDTH_MM / 2 / focal)},
    }
    with open(os.path.join(view, "metadata.json"), "w") as f:
      json.dump(meta, f)
    z = record["depth"][v].astype(np.float64)
    depth = z * ray_lengths(k, height, width)[None] if depth_type == "distance" else z
    depth = np.where(z > 0, depth, KUBRIC_MISS)
    if depth_format == "png":
      lo, hi = float(depth.min()), float(depth.max())
      with open(os.path.join(view, "data_ranges.json"), "w") as f:
        json.dump({"depth": {"min": lo, "max": hi}}, f)
    for t in range(t_count):
      alpha = np.full((height, width, 1), 255, np.uint8)
      iio.imwrite(os.path.join(view, f"rgba_{t:05d}.png"), np.concatenate([record["video"][v, t], alpha], -1))
      if depth_format == "tiff":
        iio.imwrite(os.path.join(view, f"depth_{t:05d}.tiff"), depth[t, :, :, None].astype(np.float32))
      else:
        scaled = np.round((depth[t] - lo) / (hi - lo) * 65535).astype(np.uint16)
        iio.imwrite(os.path.join(view, f"depth_{t:05d}.png"), scaled)
    if tracks_2d:
      np.savez(os.path.join(view, "tracks_2d.npz"), tracks_2d=record["tracks"][v], occlusion=~record["visible"][v])


def kubric_project(meta_camera, point, width, height, t):
  """Kubric's ``Camera.project_point`` (kubric/core/cameras.py) in pixels: ``K @ inv(matrix_world) @ p``."""
  matrix_world = np.eye(4)
  matrix_world[:3, :3] = Rotation.from_quat(meta_camera["quaternions"][t], scalar_first=True).as_matrix()
  matrix_world[:3, 3] = meta_camera["positions"][t]
  cam = (np.linalg.inv(matrix_world) @ np.append(point, 1.0))[:3]
  projected = np.asarray(meta_camera["K"]) @ cam
  return projected[:2] / projected[2] * [width, height], np.sign(projected[2])


def test_fixture_matches_kubric_projection(record, tmp_path):
  """The fixture's Blender-convention cameras reproduce the exact tracks under Kubric's own formula."""
  write_kubric_scene(tmp_path / "s", record)
  _, t_count, height, width = record["depth"].shape
  for v in range(2):
    with open(tmp_path / "s" / f"view_{v}" / "metadata.json") as f:
      camera = json.load(f)["camera"]
    for t in range(t_count):
      for n in np.nonzero(record["visible"][v, t])[0]:
        xy, front = kubric_project(camera, record["points_3d"][t, n].astype(np.float64), width, height, t)
        np.testing.assert_allclose(xy, record["tracks"][v, t, n], atol=2e-3)
        assert front == 1.0  # Kubric's project_point marks points in front with +1


@pytest.mark.parametrize("depth_format,depth_type", [("tiff", "distance"), ("png", "distance"), ("tiff", "z")])
def test_round_trip_matches_original(record, tmp_path, depth_format, depth_type):
  write_kubric_scene(tmp_path / "s", record, depth_format=depth_format, depth_type=depth_type)
  out = convert_kubric.read_kubric_scene(tmp_path / "s", depth_type=depth_type)
  assert set(out) == {"video", "intrinsics", "world_to_camera", "depth", "tracks", "visible", "points_3d"}
  np.testing.assert_array_equal(out["video"], record["video"])
  np.testing.assert_allclose(out["intrinsics"], record["intrinsics"], rtol=1e-5)
  np.testing.assert_allclose(out["world_to_camera"], record["world_to_camera"], atol=1e-5)
  np.testing.assert_array_equal(out["points_3d"], record["points_3d"])
  depth_rtol = 1e-5 if depth_format == "tiff" else 2e-4  # 16-bit quantisation of a ~10 m range
  np.testing.assert_allclose(out["depth"], record["depth"], rtol=depth_rtol)
  vis = record["visible"]
  assert vis.sum() > 20
  np.testing.assert_allclose(out["tracks"][vis], record["tracks"][vis], atol=1e-3)
  # The converter sees only depth maps (no ray casting): every originally visible point stays
  # visible, and it may add at most a few the renderer's exact ray test rejects.
  if depth_format == "tiff":
    assert np.all(out["visible"][vis])
  else:
    assert np.mean(out["visible"][vis]) > 0.97
  assert np.mean(out["visible"] != vis) < 0.02
  schema.validate_record(out)


def test_wrong_axis_convention_is_detected(record, tmp_path):
  """Poses written without the Blender axis flip: the tracks_2d cross-check fails, and without it the
  converted cameras and tracks do not match the original (the round-trip comparison is a real check)."""
  write_kubric_scene(tmp_path / "s", record, blender_axes=False)
  with pytest.raises(schema.RecordError, match=r"view_0.tracks_2d\.npz: field 'occlusion': .* behind the camera"):
    convert_kubric.read_kubric_scene(tmp_path / "s")
  out = convert_kubric.read_kubric_scene(tmp_path / "s", check_tracks_2d=False)
  assert np.abs(out["world_to_camera"] - record["world_to_camera"]).max() > 0.5
  assert out["visible"].sum() < 0.2 * record["visible"].sum()  # points now project behind the camera


def test_scale_multiplies_lengths_only(record, tmp_path):
  write_kubric_scene(tmp_path / "s", record)
  base = convert_kubric.read_kubric_scene(tmp_path / "s")
  scaled = convert_kubric.read_kubric_scene(tmp_path / "s", scale=2.0)
  np.testing.assert_allclose(scaled["points_3d"], 2 * base["points_3d"], rtol=1e-6)
  np.testing.assert_allclose(scaled["depth"], 2 * base["depth"], rtol=1e-6)
  np.testing.assert_allclose(scaled["world_to_camera"][..., :3, 3], 2 * base["world_to_camera"][..., :3, 3],
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(scaled["tracks"], base["tracks"], atol=1e-3)
  np.testing.assert_array_equal(scaled["visible"], base["visible"])


def test_intrinsics_from_focal_length_without_k(record, tmp_path):
  write_kubric_scene(tmp_path / "s", record)
  for v in range(2):
    path = tmp_path / "s" / f"view_{v}" / "metadata.json"
    meta = json.loads(path.read_text())
    del meta["camera"]["K"]
    path.write_text(json.dumps(meta))
  out = convert_kubric.read_kubric_scene(tmp_path / "s")
  np.testing.assert_allclose(out["intrinsics"], record["intrinsics"], rtol=1e-5)


def _drop(path):
  os.remove(path)


def _edit_camera(view, fn):
  def edit(scene):
    path = os.path.join(scene, view, "metadata.json")
    with open(path) as f:
      meta = json.load(f)
    fn(meta["camera"])
    with open(path, "w") as f:
      json.dump(meta, f)
  return edit


def _opencv_k(camera):
  k = np.asarray(camera["K"])
  camera["K"] = (k @ np.diag([1.0, -1.0, -1.0])).tolist()


def _scaled_quaternion(camera):
  camera["quaternions"][2] = (2 * np.asarray(camera["quaternions"][2])).tolist()


def _corrupt(path):
  with open(path, "wb") as f:
    f.write(b"not a png")


BAD_INPUTS = {
    "no_tracks_3d": (lambda s: _drop(os.path.join(s, "tracks_3d.npz")), r"tracks_3d\.npz: field 'points_3d'"),
    "no_quaternions": (_edit_camera("view_1", lambda c: c.pop("quaternions")),
                       r"view_1.metadata\.json: field 'camera/quaternions': missing"),
    "opencv_k": (_edit_camera("view_0", _opencv_k), r"view_0.metadata\.json: field 'camera/K': not Kubric"),
    "k_vs_focal": (_edit_camera("view_0", lambda c: c.update(focal_length=2 * c["focal_length"])),
                   r"metadata\.json: field 'camera/K': fx"),
    "non_unit_quaternion": (_edit_camera("view_1", _scaled_quaternion), r"field 'camera/quaternions': .*norm"),
    "short_positions": (_edit_camera("view_0", lambda c: c["positions"].pop()),
                        r"field 'camera/positions': shape \(3, 3\), expected \(4, 3\)"),
    "missing_depth_frame": (lambda s: _drop(os.path.join(s, "view_1", "depth_00003.tiff")),
                            r"view_1: field 'depth': 3 depth frames but 4 RGB frames"),
    "frame_gap": (lambda s: _drop(os.path.join(s, "view_0", "rgba_00001.png")), r"view_0: field 'video': frame file"),
    "corrupt_png": (lambda s: _corrupt(os.path.join(s, "view_0", "rgba_00002.png")),
                    r"rgba_00002\.png: field 'video': unreadable image"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_names_file_and_field(record, tmp_path, name):
  scene = str(tmp_path / "s")
  write_kubric_scene(scene, record)
  breaker, pattern = BAD_INPUTS[name]
  breaker(scene)
  with pytest.raises(schema.RecordError, match=pattern):
    convert_kubric.read_kubric_scene(scene)


def test_cli_converts_a_folder_of_scenes(record, tmp_path):
  write_kubric_scene(tmp_path / "root" / "train" / "00000", record)
  shutil.copytree(tmp_path / "root" / "train" / "00000", tmp_path / "root" / "train" / "00001")
  out = tmp_path / "clips"
  proc = subprocess.run([sys.executable, "-m", "mvtrack_jax.data.convert_kubric", f"--input={tmp_path / 'root'}",
                         f"--out={out}"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  for name in ("00000", "00001"):
    clip = readers.read_npz_clip(out / "train" / f"{name}.npz")
    np.testing.assert_allclose(clip["tracks"][record["visible"]], record["tracks"][record["visible"]], atol=1e-3)
  # One scene → one file; a bad scene fails with the file and field named and writes nothing.
  one = str(tmp_path / "one.npz")
  assert convert_kubric.convert(tmp_path / "root" / "train" / "00000", one) == [one]
  os.remove(tmp_path / "root" / "train" / "00001" / "view_0" / "metadata.json")
  with pytest.raises(schema.RecordError, match=r"view_0.metadata\.json: field 'camera': file not found"):
    convert_kubric.convert(tmp_path / "root" / "train" / "00001", tmp_path / "two.npz")
  assert not (tmp_path / "two.npz").exists()


def test_import_defines_no_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  assert "depth_tolerance" not in flags.FLAGS


@pytest.fixture
def scenes(tmp_path, monkeypatch):
  """A root holding one scene folder (only what marks a folder as a scene; reading a scene fails the test)."""
  scene = tmp_path / "root" / "train" / "00000"
  (scene / "view_0").mkdir(parents=True)
  (scene / convert_kubric.TRACKS_3D_FILE).write_bytes(b"not read")

  def read(*_, **__):
    raise AssertionError("a scene was read before the paths were checked")
  monkeypatch.setattr(convert_kubric, "read_kubric_scene", read)
  return tmp_path / "root", scene


def test_cli_bad_out_is_named_before_any_scene_is_read(scenes, tmp_path):
  root, scene = scenes
  (tmp_path / "a_file").write_text("x")
  (tmp_path / "folder.npz").mkdir()
  with pytest.raises(IsADirectoryError, match=f"--out {tmp_path / 'folder.npz'}: is a folder, not a file"):
    run_cli(convert_kubric, f"--input={scene}", f"--out={tmp_path / 'folder.npz'}")
  with pytest.raises(NotADirectoryError, match=f"--out {tmp_path / 'a_file' / 'one.npz'}: .*a_file is a file"):
    run_cli(convert_kubric, f"--input={scene}", f"--out={tmp_path / 'a_file' / 'one.npz'}")
  for out in (tmp_path / "a_file", tmp_path / "a_file" / "clips"):  # a root of scenes writes a folder
    with pytest.raises(NotADirectoryError, match=f"--out {out}: .*is a file"):
      run_cli(convert_kubric, f"--input={root}", f"--out={out}")


def test_cli_read_only_parent_of_out_is_named(scenes, locked_dir):
  root, scene = scenes
  for input_path, out in ((scene, locked_dir / "one.npz"), (root, locked_dir / "clips")):
    with pytest.raises(PermissionError, match=f"--out {out}: cannot write in {locked_dir}"):
      run_cli(convert_kubric, f"--input={input_path}", f"--out={out}")


def test_cli_missing_input_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match=f"--input '{tmp_path / 'missing'}' is not a directory"):
    run_cli(convert_kubric, f"--input={tmp_path / 'missing'}", f"--out={tmp_path / 'one.npz'}")
  assert not (tmp_path / "one.npz").exists()
