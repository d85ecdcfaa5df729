"""python -m mvtrack_jax.generate end to end on the tiny checkpoint (CPU, 2 Euler steps)."""

import dataclasses
import json
import os

import imageio.v3 as iio
import numpy as np
import pytest

from mvtrack_jax import errors
from mvtrack_jax import generate
from mvtrack_jax.data import pipeline
from mvtrack_jax.data import video_io
from mvtrack_jax.inference import clips
from mvtrack_jax.inference import visualize
from mvtrack_jax.data import sources
from tests.helpers import load_config


def _strip_shape(panels: int, tracks: bool) -> tuple[int, ...]:
  """The shape of generate's strip.png for the tiny model's 4 frames of 32 x 32 (its layout depends on shapes only)."""
  video = np.zeros((4, 32, 32, 3), np.uint8)
  kwargs = dict(tracks=np.zeros((2, 4, 1, 2)), visible=np.ones((2, 4, 1), bool)) if tracks else {}
  return visualize.comparison_strip(video, video, video if panels == 3 else None, **kwargs)[0].shape


def test_dataset_reference_with_preset_writes_every_output(tiny_checkpoint, tmp_path):
  out = tmp_path / "gen"
  info = generate.run(tiny_checkpoint, "dataset:test:0", "arc_left", str(out), steps=2, grid=4, progress=False)
  for name in ("target.mp4", "reference.mp4", "side_by_side.mp4", "tracks.npz", "cameras.json", "generation.json",
               "strip.png", "tracks.png", "ground_truth.mp4"):
    assert (out / name).is_file(), name
  assert {"strip.png", "tracks.png", "ground_truth.mp4"} <= set(info["files"])
  assert info["ground_truth"] is True and np.isfinite(info["psnr"]) and -1 <= info["ssim"] <= 1
  assert video_io.read_video(out / "ground_truth.mp4").shape == (4, 32, 32, 3)
  # strip.png: the frames clean (no dot hides the 32 x 32 picture); tracks.png: the same panels with the tracks.
  strip = iio.imread(out / "strip.png")
  assert strip.shape == _strip_shape(3, tracks=False)  # 4 rows x (ref | gen | GT)
  layout = visualize.comparison_strip(np.zeros((4, 32, 32, 3), np.uint8), np.zeros((4, 32, 32, 3), np.uint8),
                                      np.zeros((4, 32, 32, 3), np.uint8))[1]
  s, (x0, y0) = layout["scale"], layout["panel_origin"][0, 1]

  def blocks(image):  # the generated panel of the first row as its 32 x 32 enlarged pixels, (32, s, 32, s, 3)
    return image[y0:y0 + 32 * s, x0:x0 + 32 * s, :3].reshape(32, s, 32, s, 3)

  clean = blocks(strip)
  assert (clean == clean[:, :1, :, :1]).all()  # every enlarged pixel is one flat block: nothing drawn over it
  tracks_png = iio.imread(out / "tracks.png")
  assert tracks_png.shape == _strip_shape(3, tracks=True)
  dotted = blocks(tracks_png)  # the same panel origins (the legend is below)
  assert not (dotted == dotted[:, :1, :, :1]).all()  # the track dots
  target = video_io.read_video(out / "target.mp4")
  assert target.shape == (4, 32, 32, 3)  # the model's 4 frames of 32 x 32
  side = video_io.read_video(out / "side_by_side.mp4")
  assert side.shape[0] == 4 and side.shape[2] > 2 * side.shape[1]  # two enlarged panels side by side
  with np.load(out / "tracks.npz") as f:
    assert f["tracks"].shape == (2, 4, 16, 2) and f["visible"].shape == (2, 4, 16)
    np.testing.assert_allclose(f["query_points"][:, 1:].min(), 32 / 8)  # 4 x 4 grid of cell centres
  cameras = json.loads((out / "cameras.json").read_text())
  c2w = np.asarray(cameras["cam_to_world"])
  np.testing.assert_allclose(c2w[0], np.eye(4), atol=1e-6)  # starts at the reference camera
  assert np.linalg.norm(c2w[-1, :3, 3]) > 0.1  # and arcs away
  assert info["trajectory"] == "arc_left" and info["guidance_active"] is False and info["steps"] == 2
  assert info["fps"] == video_io.DEFAULT_FPS and info["frame_stride"] == 1


def test_mp4_reference_with_cameras_json_and_query_points(tiny_checkpoint, tmp_path):
  rng = np.random.default_rng(0)
  clip = rng.integers(0, 256, (6, 40, 56, 3), dtype=np.uint8)
  video_io.write_video(tmp_path / "in.mp4", clip, fps=10)
  c2w = np.broadcast_to(np.eye(4), (4, 4, 4)).copy()
  c2w[:, 0, 3] = np.linspace(0, 0.3, 4)
  (tmp_path / "cams.json").write_text(json.dumps({"cam_to_world": c2w.tolist()}))
  # 16 points (the N the other tests compile the head for): one checked, the rest a lattice.
  np.save(tmp_path / "q.npy", np.concatenate([[[0, 28.0, 20.0]], [[t % 4, 10.0 + 2 * t, 5.0 + t] for t in range(15)]]))
  out = tmp_path / "gen"
  out.mkdir()  # an earlier run's files (of a dataset scene: with a ground truth) and a file of the user's
  (out / "ground_truth.mp4").write_bytes(b"stale")
  (out / "notes.txt").write_text("mine")
  with pytest.raises(FileExistsError, match=r"--out .*gen: not empty \(2 entries.*pass --overwrite"):
    generate.run(tiny_checkpoint, str(tmp_path / "in.mp4"), str(tmp_path / "cams.json"), str(out), progress=False)
  # The reference's own cameras from <stem>.cameras.npz beside it (as evaluate --videos reads them): 6 poses for
  # the 6 frames of the video, of which the 4 generated from are used.
  moving = np.broadcast_to(np.eye(4), (6, 4, 4)).copy()
  moving[:, 2, 3] = np.linspace(0, 0.5, 6)
  np.savez(tmp_path / "in.cameras.npz", intrinsics=np.array([[50.0, 0, 28], [0, 50, 20], [0, 0, 1]]),
           cam_to_world=moving)
  info = generate.run(tiny_checkpoint, str(tmp_path / "in.mp4"), str(tmp_path / "cams.json"), str(out), steps=2,
                      query_points=str(tmp_path / "q.npy"), progress=False, overwrite=True)
  assert info["reference_cameras"] == str(tmp_path / "in.cameras.npz")
  np.savez(tmp_path / "short.npz", intrinsics=np.eye(3) * [50, 50, 1], cam_to_world=moving[:3])
  with pytest.raises(errors.UserError, match=r"--reference_cameras .*short.npz: 3 camera\(s\) for the 4 frame"):
    generate.run(tiny_checkpoint, str(tmp_path / "in.mp4"), "pan_left", str(tmp_path / "gen2"), steps=1,
                 progress=False, reference_cameras=str(tmp_path / "short.npz"))
  with pytest.raises(errors.UserError, match="a camera file is for an mp4 reference; dataset:test:0 carries its own"):
    generate.run(tiny_checkpoint, "dataset:test:0", "pan_left", str(tmp_path / "gen3"), steps=1, progress=False,
                 reference_cameras=str(tmp_path / "in.cameras.npz"))
  assert (out / "notes.txt").read_text() == "mine"  # only generate's own files are replaced
  assert info["num_query_points"] == 16 and info["trajectory"] == "cams.json"
  with np.load(out / "tracks.npz") as f:
    # 40 x 56 → covers 32 x 32 by scaling to 32 x 45 (x by 45/56) and cropping 6 px on the left.
    np.testing.assert_allclose(f["query_points"][0], [0, 28 * 45 / 56 - 6, 20 * 0.8], atol=1e-4)
  assert video_io.video_fps(out / "target.mp4") == pytest.approx(10, rel=0.05)
  assert info["ground_truth"] is False and "psnr" not in info and not (out / "ground_truth.mp4").exists()
  assert iio.imread(out / "strip.png").shape == _strip_shape(2, tracks=False)  # no ground-truth panel
  assert iio.imread(out / "tracks.png").shape == _strip_shape(2, tracks=True)


def test_bad_arguments_are_named(tiny_checkpoint, tmp_path):
  with pytest.raises(ValueError, match="pan_left"):
    generate.run(tiny_checkpoint, "dataset:test:0", "spiral", str(tmp_path / "a"), steps=1, progress=False)
  (tmp_path / "bad.json").write_text(json.dumps({"cam_to_world": np.eye(4)[None].tolist()}))
  with pytest.raises(ValueError, match=r"\(4, 4, 4\)"):
    generate.run(tiny_checkpoint, "dataset:test:0", str(tmp_path / "bad.json"), str(tmp_path / "b"), steps=1,
                 progress=False)
  with pytest.raises(ValueError, match="dataset:SPLIT:INDEX"):
    generate.run(tiny_checkpoint, "dataset:test", "static", str(tmp_path / "c"), steps=1, progress=False)
  with pytest.raises(FileNotFoundError, match="no such file"):
    generate.run(tiny_checkpoint, str(tmp_path / "missing.mp4"), "static", str(tmp_path / "d"), steps=1,
                 progress=False)
  with pytest.raises(ValueError, match="--prompt and --context both given"):
    generate.run(tiny_checkpoint, "dataset:test:0", "static", str(tmp_path / "e"), steps=1, progress=False,
                 prompt="a box", context="ctx.npy")
  with pytest.raises(ValueError, match="--text_encoder"):  # the demo config names no umT5
    generate.run(tiny_checkpoint, "dataset:test:0", "static", str(tmp_path / "f"), steps=1, progress=False,
                 negative_prompt="blurry")
  assert not os.path.exists(tmp_path / "a")  # nothing written before the inputs were checked


def test_diffusion_only_model_generates_without_tracks(tiny_baseline_checkpoint, tmp_path):
  out = tmp_path / "gen"
  info = generate.run(tiny_baseline_checkpoint, "dataset:test:1", "zoom_out", str(out), steps=1, progress=False)
  assert "tracks.npz" not in info["files"] and not (out / "tracks.npz").exists()
  assert video_io.read_video(out / "side_by_side.mp4").shape[0] == 4
  assert "strip.png" in info["files"] and "psnr" in info  # a preset on a dataset scene: ground truth known
  assert iio.imread(out / "strip.png").shape == _strip_shape(3, tracks=False)  # panels without tracks


def _ground_truth(reference_view: int, trajectory: str):
  config = load_config("default.py", "test")
  record, *_ = clips.reference_record("dataset:test:0", config, reference_view=reference_view)
  pcfg = dataclasses.replace(sources.pipeline_config(config.data, 1, train=False), num_query_points=0)
  example, meta = pipeline.window_example(record, pcfg, views=(0, 1), start=0)
  if trajectory == "reference":  # the reference's own path (relative to its frame 0), as the target
    c2w = example["reference_cam_to_world"].astype(np.float64)
  else:
    c2w, _, _ = clips.trajectory_cameras(trajectory, pcfg.num_frames, example["reference_intrinsics"])
  queries = clips.grid_query_points(32, 32, 4)
  truth = clips.ground_truth_target("dataset:test:0", config, record, pcfg, 0, c2w, queries, meta["scale"],
                                       meta["crop"])
  return example, c2w, queries, truth


def test_ground_truth_is_rendered_along_the_cameras_the_model_was_given():
  # Along the reference's own cameras the re-rendered target view is the reference video itself.
  example, c2w, queries, truth = _ground_truth(1, "reference")
  assert np.abs(c2w[1:, :3, 3]).max() > 1e-3 or np.abs(c2w[1:, :3, :3] - np.eye(3)).max() > 1e-3  # it moves
  np.testing.assert_array_equal(truth["video"], example["reference_video"])
  # The query points are the surface points under the grid: at frame 0 they sit on their own pixels, visible.
  np.testing.assert_allclose(truth["tracks"][0], queries[:, 1:], atol=1e-4)
  assert truth["visible"][0].all()
  # View 0 moves: 'static' holds its frame-0 pose, so only frame 0 matches; arc_left leaves along its cameras.
  example, _, _, truth = _ground_truth(0, "static")
  np.testing.assert_array_equal(truth["video"][0], example["reference_video"][0])
  assert np.abs(truth["video"][1:].astype(int) - example["reference_video"][1:]).mean() > 10
  example, c2w, _, truth = _ground_truth(0, "arc_left")
  np.testing.assert_allclose(truth["cam_to_world"], c2w, atol=1e-5)  # GT cameras relative to the reference
  np.testing.assert_array_equal(truth["video"][0], example["reference_video"][0])
  assert np.linalg.norm(c2w[-1, :3, 3]) > 0.1
  config = load_config("default.py", "test")
  assert clips.ground_truth_target("clip.mp4", config, {}, None, 0, c2w, queries, None, None) is None


def test_bad_output_and_input_paths_fail_before_the_model_loads(tmp_path, monkeypatch):
  """--out that is a file or under a file, and missing input files, fail at once (no model is loaded)."""
  from mvtrack_jax import compare
  from mvtrack_jax.evaluation import probe_run, runner
  from mvtrack_jax.inference import novel_view

  def no_model(*_, **__):
    raise AssertionError("a model was loaded before the paths were checked")
  monkeypatch.setattr(novel_view.NovelViewPipeline, "from_checkpoint", no_model)
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  for out in (a_file, a_file / "below"):
    with pytest.raises(NotADirectoryError, match="--out"):
      generate.run("ckpt", "dataset:test:0", "static", str(out), progress=False)
    with pytest.raises(NotADirectoryError, match="--out"):
      probe_run.run_probe("ckpt", str(out))
    with pytest.raises(NotADirectoryError, match="--out"):
      runner.run(["ckpt"], str(out), progress=False)
    with pytest.raises(NotADirectoryError, match="--out"):
      compare.run(["ckpt"], str(out))
  for kwargs, flag in ((dict(reference=str(tmp_path / "missing.mp4")), "--reference"),
                       (dict(trajectory=str(tmp_path / "cams.json")), "--trajectory"),
                       (dict(query_points=str(tmp_path / "q.npy")), "--query_points"),
                       (dict(context=str(tmp_path / "c.npy")), "--context")):
    args = dict(reference="dataset:test:0", trajectory="static") | kwargs
    with pytest.raises(FileNotFoundError, match=flag):
      generate.run("ckpt", args.pop("reference"), args.pop("trajectory"), str(tmp_path / "out"), progress=False, **args)
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cameras,match", [
    ({"intrinsics": [[0, 0, 16], [0, 0, 16], [0, 0, 1]]}, r"intrinsics: focal length 0.0 px"),
    ({"nan_pose": True}, r"cam_to_world: nan at index \(1, 0, 3\); poses must be finite"),
    ({"scaled_pose": True}, r"cam_to_world: pose \(2,\) is not rigid"),
])
def test_camera_files_are_validated(tiny_checkpoint, tmp_path, cameras, match):
  t = 4                                                    # the tiny checkpoint's frames
  c2w = np.broadcast_to(np.eye(4), (t, 4, 4)).copy()
  if cameras.pop("nan_pose", False):
    c2w[1, 0, 3] = np.nan
  if cameras.pop("scaled_pose", False):
    c2w[2, :3, :3] *= 2.0
  (tmp_path / "cams.json").write_text(json.dumps(dict(cameras, cam_to_world=c2w.tolist())).replace("NaN", "NaN"))
  with pytest.raises(ValueError, match=match):
    generate.run(tiny_checkpoint, "dataset:test:0", str(tmp_path / "cams.json"), str(tmp_path / "o"), steps=1,
                 progress=False)
  assert not (tmp_path / "o").exists()


def test_fov_and_query_points_are_validated(tiny_checkpoint, tmp_path):
  with pytest.raises(ValueError, match=r"--fov 0.0: expected a horizontal field of view in \(0, 180\)"):
    generate.run(tiny_checkpoint, "dataset:test:0", "static", str(tmp_path / "a"), fov=0.0, progress=False)
  np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan, 3.0]]))
  with pytest.raises(ValueError, match=r"row 0 is \[0.0, nan, 3.0\]; query points must be finite"):
    generate.run(tiny_checkpoint, "dataset:test:0", "static", str(tmp_path / "b"), steps=1, progress=False,
                 query_points=str(tmp_path / "nan.npy"))
  np.save(tmp_path / "far.npy", np.array([[0.0, 20.0, 5.0], [0.0, 500.0, 5.0]]))  # 32x48 record, 8-px crop
  with pytest.raises(ValueError, match=r"1 point\(s\) outside the generated 32x32 frame .* row 1, \(x, y\) = \[500.0, 5.0\]"):
    generate.run(tiny_checkpoint, "dataset:test:0", "static", str(tmp_path / "c"), steps=1, progress=False,
                 query_points=str(tmp_path / "far.npy"))


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=0), r"--steps 0: expected an integer >= 1"),
    (dict(cfg=-1.0), r"--cfg -1.0: expected a guidance scale >= 0"),
    (dict(fps=-5.0), r"--fps -5.0: expected a frame rate > 0"),
    (dict(look_at_depth=0.0), r"--look_at_depth 0.0: expected a distance > 0"),
    (dict(look_at_depth=-2.0), r"--look_at_depth -2.0"),
    (dict(start_frame=-1), r"--start_frame -1: expected a frame index >= 0"),
    (dict(grid=0), r"--grid 0"),
    (dict(num_frames=0), r"--num_frames 0"),
    (dict(magnitude=float("nan")), r"--magnitude nan: expected a finite number"),
    (dict(fov=0.0), r"--fov 0.0: expected a horizontal field of view in \(0, 180\)"),
    (dict(resize="squash"), r"--resize squash: expected one of crop, pad, stretch"),
    (dict(resize="pad"), r"--resize pad: expected crop for dataset:test:0"),
])
def test_numeric_arguments_fail_before_the_model_loads(tmp_path, monkeypatch, kwargs, match):
  from mvtrack_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  from mvtrack_jax.inference import novel_view  # pylint: disable=g-import-not-at-top

  def no_model(*_, **__):
    raise AssertionError("a model was loaded before the arguments were checked")
  monkeypatch.setattr(novel_view.NovelViewPipeline, "from_checkpoint", no_model)
  with pytest.raises(UserError, match=match):
    generate.run("ckpt", "dataset:test:0", "static", str(tmp_path / "out"), progress=False, **kwargs)
  assert not (tmp_path / "out").exists()


def test_output_fps_keeps_the_sampled_span():
  """A 25-fps clip sampled every 5th frame is written at 5 fps: 4 frames last the 0.8 s they were sampled from."""
  assert generate.output_fps(None, 25.0, 5) == 5.0
  assert generate.output_fps(None, 10.0, 1) == 10.0
  assert generate.output_fps(12.0, 25.0, 5) == 12.0  # --fps wins
  assert generate.output_fps(None, None, 5) == video_io.DEFAULT_FPS  # dataset records have no rate


def test_a_large_mp4_is_shrunk_while_decoding_and_only_its_needed_frames_are_read(tmp_path):
  """A 12-frame 480x640 clip for a 32x32 model reading 5 frames: frames arrive at 32x43 (the cover size, aspect
  kept), only the first 5 are decoded, and the intrinsics (given in the video's pixels) follow the shrink."""
  rng = np.random.default_rng(0)
  video_io.write_video(tmp_path / "big.mp4", rng.integers(0, 256, (12, 480, 640, 3), dtype=np.uint8), fps=25)
  k = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
  config = load_config("default.py", "test")
  record, name, fps, to_record = clips.reference_record(str(tmp_path / "big.mp4"), config, intrinsics=k,
                                                           max_frames=5, size=(32, 32))
  assert record["video"].shape == (2, 5, 32, 43, 3) and name.endswith("big.mp4") and fps == pytest.approx(25)
  np.testing.assert_allclose(to_record, np.diag([43 / 640, 32 / 480, 1]))
  np.testing.assert_allclose(record["intrinsics"][0, 0], np.diag([43 / 640, 32 / 480, 1]) @ k, rtol=1e-6)
  assert clips._decode_size(20, 30, (32, 32)) == (20, 30)  # never enlarged  # pylint: disable=protected-access


@pytest.mark.parametrize("resize,decoded,to_record", [
    # 48 x 96 (2:1) for a 32 x 32 model: pad fits it to 16 x 32 and centres it on black rows 8..23.
    ("pad", (16, 32), [[1 / 3, 0, 0], [0, 1 / 3, 8], [0, 0, 1]]),
    # stretch scales each axis to the frame: x by 1/3, y by 2/3 (the pixels are no longer square).
    ("stretch", (32, 32), [[1 / 3, 0, 0], [0, 2 / 3, 0], [0, 0, 1]]),
])
def test_resize_policies_fit_a_wide_mp4_without_cutting_it(tmp_path, resize, decoded, to_record):
  """--resize pad / stretch keep the whole width of a 2:1 clip; the intrinsics and the pixel map follow."""
  video = np.full((3, 48, 96, 3), 200, np.uint8)
  video_io.write_video(tmp_path / "wide.mp4", video, fps=12)
  k = np.array([[80.0, 0, 48], [0, 80, 24], [0, 0, 1]])
  record, _, _, got = clips.reference_record(str(tmp_path / "wide.mp4"), load_config("default.py", "test"),
                                                intrinsics=k, size=(32, 32), resize=resize)
  np.testing.assert_allclose(got, to_record, atol=1e-9)
  np.testing.assert_allclose(record["intrinsics"][0, 0], np.asarray(to_record) @ k, rtol=1e-6)
  frames = record["video"][0]
  assert frames.shape == (3, 32, 32, 3)
  top = int(to_record[1][2])
  assert abs(float(frames[:, top:top + decoded[0]].mean()) - 200) < 4  # the clip, whole
  if top:
    assert frames[:, :top].max() == 0 and frames[:, top + decoded[0]:].max() == 0  # the black bars
  # The principal point (the frame centre of this clip) stays the centre of the generated frame.
  np.testing.assert_allclose(record["intrinsics"][0, 0, :2, 2], [16, 16], atol=1e-6)
