"""The paper's two benchmark protocols of ``python -m mvtrack_jax.evaluate``: ``--videos`` (DAVIS) and ``--dycheck``.

Fixtures are written in the datasets' own layouts inside the tests: a folder of tiny mp4s
(``data.video_io``) and a tiny DyCheck iPhone sequence (``dataset.json``, ``metadata.json``,
``camera/<id>.json``, ``rgb/<s>x/<id>.png``) whose cameras and images come from
``data.synthetic.render_scene``, so the true cameras, images and point tracks are known. The end-to-end
runs use the session's tiny untrained checkpoint (``tests/conftest.py``) with one Euler step; every clip
has the model's 4-frame 32×32 window and batch 1, so the model compiles once for both protocols.
"""

import json
import os
import shutil
import subprocess
import sys

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import scipy.signal

from mvtrack_jax import errors
from mvtrack_jax.data import dycheck
from mvtrack_jax.data import feature_cache
from mvtrack_jax.data import readers
from mvtrack_jax.data import schema
from mvtrack_jax.data import synthetic
from mvtrack_jax.data import video_io
from mvtrack_jax.evaluation import baselines
from mvtrack_jax.evaluation import fidelity
from mvtrack_jax.evaluation import learned
from mvtrack_jax.evaluation import protocol_clips
from mvtrack_jax.evaluation import runner
from mvtrack_jax.inference import novel_view
from mvtrack_jax.geometry import cameras as geometry
from mvtrack_jax.geometry import trajectories
from tests.helpers import REPO, FakeTextEncoder, load_config, with_text

MODEL_FRAMES = 4  # configs/default.py:test — 4 frames of 32×32, pixel autoencoder (k = 1)
SEQUENCE = "windmill"
# DyCheck fixture: view 0 = training camera 0; view 1 = validation camera 1 (a camera that starts at the
# reference and moves away along its optical axis) without time 2; view 2 = validation camera 2 (placed
# elsewhere) with only time 5, outside the 4-frame window: skipped by the protocol.
MISSING = frozenset({(1, 2)} | {(2, t) for t in range(5)})


# ------------------------------------------------------------------------------------------------
# Fixture writers.


def _dycheck_camera(intrinsics: np.ndarray, world_to_camera: np.ndarray, width: int, height: int) -> dict:
  """A DyCheck camera JSON (dycheck/geometry/camera.py) of a known OpenCV camera.

  ``orientation`` = the world-to-camera rotation, ``position`` = the camera centre, ``principal_point``
  in the corner-origin / centre +0.5 convention DyCheck shares with this project.
  """
  k, w2c = np.asarray(intrinsics, np.float64), np.asarray(world_to_camera, np.float64)
  rot = w2c[:3, :3]
  return {"orientation": rot.tolist(), "position": (-rot.T @ w2c[:3, 3]).tolist(), "focal_length": k[0, 0],
          "principal_point": [k[0, 2], k[1, 2]], "skew": k[0, 1], "pixel_aspect_ratio": k[1, 1] / k[0, 0],
          "radial_distortion": [0.0, 0.0, 0.0], "tangential_distortion": [0.0, 0.0], "image_size": [width, height]}


def write_dycheck_sequence(root: str, record: dict, missing=frozenset(), scales=(1, 2)) -> None:
  """Writes ``record``'s views as a DyCheck sequence: view 0 training camera, views 1… validation cameras.

  Images of ``rgb/1x`` are the record's frames; ``rgb/<s>x`` are them shrunk by ``s`` (cv2 INTER_AREA, as
  DyCheck's processing); cameras describe the 1x images. ``missing``: ``(view, time)`` pairs left out.
  """
  num_views, num_times, height, width = record["video"].shape[:4]
  os.makedirs(os.path.join(root, "camera"))
  for s in scales:
    os.makedirs(os.path.join(root, "rgb", f"{s}x"))
  ids, metadata = {"train_ids": [], "val_ids": []}, {}
  for v in range(num_views):
    for t in range(num_times):
      if (v, t) in missing:
        continue
      frame_id = f"{v}_{t:05d}"
      camera = _dycheck_camera(record["intrinsics"][v, t], record["world_to_camera"][v, t], width, height)
      with open(os.path.join(root, "camera", frame_id + ".json"), "w") as f:
        json.dump(camera, f)
      for s in scales:
        image = record["video"][v, t]
        if s != 1:
          image = cv2.resize(image, (width // s, height // s), interpolation=cv2.INTER_AREA)
        iio.imwrite(os.path.join(root, "rgb", f"{s}x", frame_id + ".png"), image)
      ids["train_ids" if v == 0 else "val_ids"].append(frame_id)
      metadata[frame_id] = {"warp_id": t, "appearance_id": t, "camera_id": v}
  dataset = {"count": len(metadata), "num_exemplars": len(ids["train_ids"]),
             "ids": ids["train_ids"] + ids["val_ids"], **ids}
  with open(os.path.join(root, "dataset.json"), "w") as f:
    json.dump(dataset, f)
  with open(os.path.join(root, "metadata.json"), "w") as f:
    json.dump(metadata, f)


@pytest.fixture(scope="module")
def scene():
  """A rendered 3-view scene (6 frames of 48×64, 64 tracked points) with exact cameras and tracks."""
  return synthetic.render_scene(5, num_views=3, num_frames=6, height=48, width=64, num_tracks=64)


@pytest.fixture(scope="module")
def dycheck_root(scene, tmp_path_factory) -> str:
  """A folder holding one DyCheck sequence ``windmill`` of ``scene`` (module constants)."""
  root = str(tmp_path_factory.mktemp("iphone"))
  write_dycheck_sequence(os.path.join(root, SEQUENCE), scene, MISSING)
  return root


@pytest.fixture(scope="module")
def davis_dir(tmp_path_factory) -> str:
  """Two mp4 reference videos (40×48, 6 and 5 frames) of rendered scenes, plus a non-video file."""
  root = str(tmp_path_factory.mktemp("davis"))
  video = synthetic.render_scene(1, num_views=1, num_frames=6, height=40, width=48, num_tracks=0)["video"][0]
  video_io.write_video(os.path.join(root, "bear.mp4"), video)
  video_io.write_video(os.path.join(root, "car-turn.mp4"), video[::-1][:5])
  with open(os.path.join(root, "notes.txt"), "w") as f:
    f.write("not a video")
  return root


@pytest.fixture(scope="module")
def model_config():
  return load_config("default.py", "test")


# ------------------------------------------------------------------------------------------------
# Windows.


def test_evaluation_windows_query_the_models_latent_frames(model_config):
  """The split protocol's query points sit on the model's latent frames (the Wan VAE's 0, 4, 8, …)."""
  wan = protocol_clips.window_config(load_config("mvtrack4gen_recammaster.py", "smoke"))
  assert wan.latent_frame_queries and wan.frames_per_latent == 4 and not wan.random_crop
  assert protocol_clips.window_config(model_config).frames_per_latent == 1   # the pixel autoencoder: every frame


def test_protocol_num_frames():
  # The paper config: 81-frame windows of a Wan VAE (k = 4), truncated to 1 + 4m.
  assert protocol_clips.protocol_num_frames(100, 81, 1, 4) == 81
  assert protocol_clips.protocol_num_frames(81, 81, 1, 4) == 81
  assert protocol_clips.protocol_num_frames(70, 81, 1, 4) == 69
  assert protocol_clips.protocol_num_frames(5, 81, 1, 4) == 5
  assert protocol_clips.protocol_num_frames(10, 4, 2, 1) == 4  # frames 0, 2, 4, 6
  assert protocol_clips.protocol_num_frames(6, 81, 2, 1) == 3  # frames 0, 2, 4
  with pytest.raises(ValueError, match="clip.mp4: 4 frame.*at least 5"):
    protocol_clips.protocol_num_frames(4, 81, 1, 4, "clip.mp4")
  with pytest.raises(ValueError, match="at least 2"):
    protocol_clips.protocol_num_frames(1, 4, 1, 1)


def test_video_trajectories_are_recammasters_ten():
  """The --videos default is ReCamMaster's released cam01 … cam10 (not the project's eased presets)."""
  assert runner.VIDEO_TRAJECTORIES == tuple(f"cam{i:02d}" for i in range(1, 11))
  assert trajectories.RECAMMASTER_MOTIONS["cam01"] == "pan_right" and trajectories.RECAMMASTER_MOTIONS["cam09"] == "arc_left"


def test_video_clips_window_and_cameras(davis_dir, model_config, tmp_path):
  path = os.path.join(davis_dir, "bear.mp4")
  names = ["arc_left", "zoom_in"]
  clips, info = protocol_clips.video_clips(path, model_config, names, frames_per_latent=1, fov=60.0, grid=3)
  assert info["num_frames"] == MODEL_FRAMES and info["available_frames"] == 6 and info["frames"] == [0, 1, 2, 3]
  for name, clip in zip(names, clips):
    assert clip["reference_video"].shape == (MODEL_FRAMES, 32, 32, 3) and "target_video" not in clip
    np.testing.assert_allclose(clip["target_cam_to_world"], trajectories.preset_trajectory(name, MODEL_FRAMES),
                               atol=1e-6)
    np.testing.assert_array_equal(clip["reference_cam_to_world"], np.tile(np.eye(4), (MODEL_FRAMES, 1, 1)))
    np.testing.assert_array_equal(clip["target_intrinsics"], clip["reference_intrinsics"])
    assert clip["query_points"].shape == (9, 3) and (clip["query_points"][:, 0] == 0).all()
  # 60° horizontal field of view of the 48-px-wide video: fx = 24 / tan(30°), then resized by 38/48 to cover
  # 32 px (40×48 → 32×38) and centre-cropped by 3 px: the principal point lands at the centre of 32×32.
  k = clips[0]["reference_intrinsics"][0]
  np.testing.assert_allclose(k, [[24 / np.tan(np.pi / 6) * 38 / 48, 0, 16], [0, 24 / np.tan(np.pi / 6) * 0.8, 16],
                                 [0, 0, 1]], rtol=1e-5)
  # A video shorter than the model's window is truncated (model frames 4 → 3 of a 3-frame video).
  short = str(tmp_path / "short.mp4")
  video_io.write_video(short, video_io.read_video(path)[:3])
  clips, info = protocol_clips.video_clips(short, model_config, ["pan_left"], frames_per_latent=1)
  assert info["num_frames"] == 3 and clips[0]["target_cam_to_world"].shape == (3, 4, 4)


def test_a_camera_file_gives_the_reference_its_real_moving_cameras(model_config, tmp_path):
  """F4: a ``<stem>.cameras.npz`` beside an mp4 (a converted ViPE/COLMAP estimate) replaces the static 60° camera:
  the reference half gets its poses relative to frame 0 and its intrinsics mapped to the model's pixels, the
  target path starts at the reference's frame-0 camera with those intrinsics."""
  scene = synthetic.render_scene(1, num_views=1, num_frames=6, height=40, width=48, num_tracks=0)
  path = str(tmp_path / "walk.mp4")
  video_io.write_video(path, scene["video"][0])
  c2w = geometry.invert_rigid(scene["world_to_camera"][0].astype(np.float64))  # a camera that moves 0.8 m
  cameras = readers.camera_file_for(path)
  assert cameras == str(tmp_path / "walk.cameras.npz")
  np.savez(cameras, intrinsics=scene["intrinsics"][0], cam_to_world=c2w)
  clips, info = protocol_clips.video_clips(path, model_config, ["cam05"], frames_per_latent=1, cameras_file=cameras)
  clip = clips[0]
  assert info["reference_cameras"] == cameras
  expected = np.linalg.inv(c2w[0]) @ c2w[:MODEL_FRAMES]
  np.testing.assert_allclose(clip["reference_cam_to_world"], expected, atol=1e-5)
  assert np.abs(clip["reference_cam_to_world"][3, :3, 3]).max() > 0.4  # not the static identity
  # 40×48 → 32×38 (scale 0.8 both ways within a pixel) → centre crop of 3 px in x.
  k = scene["intrinsics"][0, 0].astype(np.float64)
  np.testing.assert_allclose(clip["reference_intrinsics"][0],
                             [[k[0, 0] * 38 / 48, 0, k[0, 2] * 38 / 48 - 3], [0, k[1, 1] * 0.8, k[1, 2] * 0.8],
                              [0, 0, 1]], rtol=1e-5)
  np.testing.assert_array_equal(clip["target_intrinsics"], clip["reference_intrinsics"])
  np.testing.assert_allclose(clip["target_cam_to_world"], trajectories.preset_trajectory("cam05", MODEL_FRAMES),
                             atol=1e-6)
  # One camera for all frames is accepted; too few poses, a missing key or a scaled rotation are named.
  np.savez(cameras, intrinsics=scene["intrinsics"][0, 0], cam_to_world=c2w)
  protocol_clips.video_clips(path, model_config, ["cam05"], frames_per_latent=1, cameras_file=cameras)
  for n in (3, 7):  # too few, or more than the video has (a file of another, longer clip)
    np.savez(cameras, intrinsics=scene["intrinsics"][0, 0], cam_to_world=np.concatenate([c2w, c2w])[:n])
    with pytest.raises(errors.UserError, match=rf"walk.cameras.npz: {n} camera\(s\) for the 6 frame\(s\)"):
      protocol_clips.video_clips(path, model_config, ["cam05"], frames_per_latent=1, cameras_file=cameras)
  np.savez(cameras, intrinsics=scene["intrinsics"][0])
  with pytest.raises(schema.RecordError, match="cam_to_world.*missing"):
    readers.read_camera_file(cameras)
  np.savez(cameras, intrinsics=scene["intrinsics"][0], cam_to_world=c2w * np.array([2, 2, 2, 1.0])[:, None])
  with pytest.raises(schema.RecordError, match="walk.cameras.npz.*cam_to_world"):
    readers.read_camera_file(cameras)


def test_videos_protocol_end_to_end(tiny_checkpoint, davis_dir, tmp_path):
  out = tmp_path / "davis"
  record = runner.run_videos([tiny_checkpoint], str(out), davis_dir, names=["mvtrack"], steps=1, progress=False,
                               save_videos=True)
  saved = json.loads((out / "metrics.json").read_text())
  assert saved["protocol"] == "videos" and saved["trajectories"] == list(runner.VIDEO_TRAJECTORIES)
  assert set(saved["scenes"]) == {"bear", "car-turn"}  # notes.txt is not a video
  assert all(info["num_frames"] == MODEL_FRAMES for info in saved["scenes"].values())
  assert saved["fov"] == 60.0 and saved["batch_size"] == 1 and saved["baselines"] == ["copy_reference", "mean_colour"]
  summary = saved["summary"]
  assert set(summary) == {"mvtrack", "copy_reference", "mean_colour"}  # no ground truth: no gt_video column
  overall = summary["mvtrack"]["all"]
  for key in ("m_rot_err_deg", "m_trans_err", "m_cam_mc", "pose_valid", "epipolar_matched_sampson_px",
              "epipolar_sampson_px"):
    assert key in overall, key
  assert "psnr" not in overall and "aj_target" not in overall  # nothing to compare with
  assert overall["m_rot_err_deg"]["n"] == 20 and np.isfinite(overall["m_rot_err_deg"]["mean"])
  rows = {(r["model"], r["scene"], r["trajectory"]): r["metrics"] for r in saved["rows"]}
  assert len(rows) == 2 * 10 * 3 == len(saved["rows"])
  # A pan has no baseline at any frame: no epipolar geometry, NaN for every column.
  assert np.isnan(rows[("mvtrack", "bear", "cam01")]["epipolar_matched_sampson_px"])  # cam01: pan right
  assert np.isnan(rows[("copy_reference", "bear", "cam01")]["epipolar_matched_sampson_px"])
  # A zoom is a pure translation with the reference's intrinsics: the copy of the reference matches itself
  # and satisfies its epipolar geometry exactly (the proxy's blind spot, shown by the baseline column).
  zoom = rows[("copy_reference", "bear", "cam05")]  # zoom in
  assert zoom["epipolar_matched_sampson_px"] < 1e-9 and zoom["epipolar_matched_below_2px"] == 1.0
  assert (out / "metrics.md").read_text().count("| cam05 | m_rot_err_deg ↓ |") == 1
  # Labelled as proxies, naming the paper metrics it lacks and how to add them.
  header = (out / "metrics.md").read_text().split("|")[0]
  assert "DAVIS protocol (proxies)" in header and "Not computed (the papers' DAVIS metrics): met3r" in header
  assert "MVTRACK_LEARNED_METRICS" in header
  assert (out / "per_clip.csv").read_text().count("\n") == 1 + 60
  assert (out / "videos" / "mvtrack" / "bear_cam09.mp4").is_file()
  # The generated video alone, at the model's resolution: what a pose estimator run elsewhere (--poses) reads.
  assert video_io.read_video(str(out / "videos" / "mvtrack" / "bear_cam09.generated.mp4")).shape == (4, 32, 32, 3)
  assert record["protocol"] == "videos" and len(record["rows"]) == 60


def test_videos_are_captioned_and_sampled_with_guidance_as_the_references_do(tiny_checkpoint, davis_dir, tmp_path):
  """--captions (ReCamMaster's metadata.csv) captions each video by file name, --prompt the others; a model trained
  with text samples with CFG 5 against Wan's negative prompt (its text cache's negative.npy); metrics.json and the
  table header say so. A model without text and an explicit --cfg is refused, saying why."""
  model = novel_view.NovelViewPipeline.from_checkpoint(tiny_checkpoint)
  cache = tmp_path / "text"
  cache.mkdir()
  d = model.dit.config.text_dim
  np.save(cache / feature_cache.NEGATIVE_NPY, np.random.default_rng(0).normal(size=(4, d)).astype(np.float32))
  encoder = FakeTextEncoder(d)
  texted = with_text(model, str(cache), encoder)
  captions = tmp_path / "metadata.csv"
  captions.write_text('file_name,text\nbear.mp4,"a bear walks, slowly"\n')
  text = runner.TextOptions(prompt="a street", captions=str(captions))
  videos = tmp_path / "videos"  # real-looking clips of different sizes and lengths
  videos.mkdir()
  shutil.copy(os.path.join(davis_dir, "bear.mp4"), videos / "bear.mp4")  # 6 frames of 40×48
  wide = video_io.read_video(os.path.join(davis_dir, "car-turn.mp4"))  # 5 frames, made 36×64
  video_io.write_video(str(videos / "car-turn.mp4"), np.stack([cv2.resize(f, (64, 36)) for f in wide]))
  out = tmp_path / "out"
  record = runner.run_videos([texted], str(out), str(videos), names=["m"], trajectory_names=["cam05"], steps=1,
                             text=text, baselines=False, progress=False)
  saved = json.loads((out / "metrics.json").read_text())
  assert saved["checkpoints"]["m"]["guidance"] == {"guidance_active": True, "guidance_scale": 5.0, "negative": "wan"}
  assert {k: v["caption"] for k, v in saved["scenes"].items()} == {"bear": "a bear walks, slowly",
                                                                   "car-turn": "a street"}
  assert saved["captions"] == str(captions) and saved["prompt"] == "a street" and saved["cfg"] is None
  assert sorted(p for call in encoder.calls for p in call) == ["a bear walks, slowly", "a street"]  # once each
  header = (out / "metrics.md").read_text().split("|")[0]
  assert f"captions from `{captions}`" in header and "CFG 5, negative: Wan's standard negative prompt" in header
  assert "trajectories from geometry.trajectories presets (cam01-cam10: ReCamMaster's released cameras)" in header
  assert "poses from the two-view estimator on Lucas–Kanade (`flow`) tracks" in header
  assert {k: v["num_frames"] for k, v in saved["scenes"].items()} == {"bear": 4, "car-turn": 4}
  assert "Static-camera assumption (a static 60° pinhole reference camera)" in header
  assert saved["camera_assumption"] == "static-camera assumption"
  assert all(info["reference_cameras"] is None for info in saved["scenes"].values())
  assert len(record["rows"]) == 2
  # The empty prompt as the negative branch and no --prompt: the captioned video is guided, the other has both
  # branches null (g = 1); metrics.json lists both settings and the header says guidance varies.
  record = runner.run_videos([texted], str(tmp_path / "empty"), davis_dir, names=["m"], trajectory_names=["cam05"],
                             steps=1, baselines=False, progress=False,
                             text=runner.TextOptions(captions=str(captions), negative_prompt=""))
  assert sorted(g["guidance_scale"] for g in record["checkpoints"]["m"]["guidance"]) == [1.0, 5.0]
  assert "guidance varies with the caption" in (tmp_path / "empty" / "metrics.md").read_text()
  # Asking for --cfg 3 there fails before anything is generated (it would have failed at the uncaptioned video).
  with pytest.raises(errors.UserError, match="--cfg 3: both guidance branches would be the null context"):
    runner.run_videos([texted], str(tmp_path / "mixed"), davis_dir, trajectory_names=["cam05"], steps=1, cfg=3.0,
                      baselines=False, progress=False, text=runner.TextOptions(captions=str(captions),
                                                                               negative_prompt=""))
  assert not (tmp_path / "mixed" / "metrics.json").exists()
  # No text anywhere and --cfg 3: both branches would be zeros.
  with pytest.raises(errors.UserError, match="--cfg 3: both guidance branches would be the null context"):
    runner.run_videos([model], str(tmp_path / "plain"), davis_dir, trajectory_names=["cam05"], steps=1, cfg=3.0,
                      max_scenes=1, baselines=False, progress=False)
  # --captions has nothing to caption in the --split protocol.
  with pytest.raises(errors.UserError, match="--captions .*--videos / --dycheck"):
    runner.run([model], str(tmp_path / "split"), text=text, max_scenes=1, steps=1, progress=False)


def test_an_unusable_video_is_skipped_and_named_the_others_are_evaluated(tiny_checkpoint, davis_dir, tmp_path):
  """One corrupt mp4 used to abort the run after the others were generated, with no metrics file."""
  import shutil  # pylint: disable=g-import-not-at-top
  videos = tmp_path / "videos"
  videos.mkdir()
  shutil.copy(os.path.join(davis_dir, "bear.mp4"), videos / "bear.mp4")
  (videos / "broken.mp4").write_bytes(b"not a video at all")
  cameras = readers.camera_file_for(str(videos / "bear.mp4"))  # bear has its cameras, broken.mp4 had none
  np.savez(cameras, intrinsics=np.array([[40.0, 0, 24], [0, 40, 20], [0, 0, 1]]),
           cam_to_world=np.tile(np.eye(4), (6, 1, 1)))
  poses = tmp_path / "poses" / "m"  # --poses: the generated video's poses from elsewhere (here: exactly right)
  poses.mkdir(parents=True)
  np.savez(poses / "bear_pan_right.npz", intrinsics=np.eye(3) * [40, 40, 1] + [[0, 0, 16], [0, 0, 16], [0, 0, 0]],
           cam_to_world=trajectories.preset_trajectory("pan_right", MODEL_FRAMES))
  out = tmp_path / "out"
  record = runner.run_videos([tiny_checkpoint], str(out), str(videos), names=["m"], trajectory_names=["pan_right"],
                             steps=1, progress=False, poses=str(poses.parent))
  saved = json.loads((out / "metrics.json").read_text())
  assert {r["scene"] for r in saved["rows"]} == {"bear"} and len(record["rows"]) == 3  # m + 2 baselines
  assert list(saved["unreadable"]) == ["broken"] and "broken.mp4" in saved["unreadable"]["broken"]
  assert "Skipped, could not be used: `broken`" in (out / "metrics.md").read_text()
  assert saved["camera_assumption"] == "mixed" and saved["scenes"]["bear"]["reference_cameras"] == cameras
  rows = {r["model"]: r["metrics"] for r in saved["rows"]}
  assert rows["m"]["m_rot_err_deg"] < 0.01 and rows["m"]["pose_valid"] == 1.0 and saved["poses"] == str(poses.parent)
  assert rows["copy_reference"]["m_rot_err_deg"] > 1.0  # the baselines keep --pose_method's estimates
  assert f"generated videos' poses from the camera files in `{poses.parent}`" in (out / "metrics.md").read_text()
  assert "sfm_trials_complete" not in rows["m"]  # the estimator is not run for a model with a pose file
  # A missing pose file is named before the scene is generated.
  with pytest.raises(errors.UserError, match=r"no camera file for 1 generated video\(s\) of scene bear, e\.g\. "
                                             r".*elsewhere/m/bear_pan_right.npz"):
    runner.run_videos([tiny_checkpoint], str(tmp_path / "out2"), str(videos), names=["m"],
                      trajectory_names=["pan_right"], steps=1, progress=False, poses=str(tmp_path / "elsewhere"),
                      max_scenes=1)
  assert ("reference cameras from `<stem>.cameras.npz` for 1 of 2 videos, the static-camera assumption"
          in (out / "metrics.md").read_text())


def test_videos_protocol_bad_input(davis_dir, model_config, tmp_path):
  with pytest.raises(FileNotFoundError, match="not a directory"):
    runner.run_videos(["unused"], str(tmp_path / "out"), str(tmp_path / "nowhere"), progress=False)
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no .mp4 files"):
    runner.run_videos(["unused"], str(tmp_path / "out"), str(tmp_path / "empty"), progress=False)
  with pytest.raises(ValueError, match="'recorded' needs a second recorded view"):
    runner.run_videos(["unused"], str(tmp_path / "out"), davis_dir, trajectory_names=["recorded"], progress=False)
  with pytest.raises(ValueError, match="batch_size"):
    runner.run_videos(["unused"], str(tmp_path / "out"), davis_dir, batch_size=0, progress=False)
  one = str(tmp_path / "one_frame.mp4")
  video_io.write_video(one, np.zeros((1, 16, 16, 3), np.uint8))
  with pytest.raises(ValueError, match="one_frame.mp4: 1 frame"):
    protocol_clips.video_clips(one, model_config, ["pan_left"], frames_per_latent=1)
  broken = tmp_path / "broken.mp4"
  broken.write_bytes(b"this is not an mp4")
  with pytest.raises(video_io.VideoError, match="broken.mp4"):
    protocol_clips.video_clips(str(broken), model_config, ["pan_left"], frames_per_latent=1)


# ------------------------------------------------------------------------------------------------
# DyCheck reader.


def test_dycheck_reader_matches_the_known_cameras(scene, dycheck_root):
  sequence = dycheck.open_sequence(os.path.join(dycheck_root, SEQUENCE))
  assert sequence.scale == 1  # the highest resolution present (rgb/1x, rgb/2x)
  assert sequence.reference_camera == 0 and sequence.validation_cameras == (1, 2)
  np.testing.assert_array_equal(sequence.reference_times, np.arange(6))
  clip = dycheck.read_clip(sequence, np.arange(6))
  record = clip.record
  assert clip.camera_ids == (0, 1, 2) and record["video"].shape == (3, 6, 48, 64, 3)
  assert record["tracks"].shape == (3, 6, 0, 2) and record["points_3d"].shape == (6, 0, 3)
  present = np.array([[(v, t) not in MISSING for t in range(6)] for v in range(3)])
  np.testing.assert_array_equal(clip.present, present)
  assert clip.frame_names[1][2] is None and clip.frame_names[1][3] == "1_00003"
  # Real frames: the cameras and images written from the render, read back in OpenCV world-to-camera form.
  np.testing.assert_allclose(record["world_to_camera"][present], scene["world_to_camera"][present], atol=1e-5)
  np.testing.assert_allclose(record["intrinsics"][present], scene["intrinsics"][present], atol=1e-4)
  np.testing.assert_array_equal(record["video"][present], scene["video"][present])
  # The renderer's own projections of its 3D points (independent code) are where the read cameras put them:
  # a transposed orientation, a camera-to-world reading or a half-pixel principal-point shift would fail.
  xy, z = geometry.project_points(scene["points_3d"].astype(np.float64), record["intrinsics"].astype(np.float64),
                                  record["world_to_camera"].astype(np.float64))
  visible = scene["visible"] & present[..., None]
  assert visible.sum() > 100 and (z[visible] > 0).all()
  np.testing.assert_allclose(xy[visible], scene["tracks"][visible], atol=1e-3)
  # A missing frame holds the nearest present one (time 2 → time 1, the earlier on a tie with time 3).
  np.testing.assert_array_equal(record["video"][1, 2], scene["video"][1, 1])
  np.testing.assert_allclose(record["world_to_camera"][1, 2], scene["world_to_camera"][1, 1], atol=1e-5)
  np.testing.assert_allclose(record["world_to_camera"][2, :5], np.broadcast_to(scene["world_to_camera"][2, 5],
                                                                               (5, 4, 4)), atol=1e-5)


def test_dycheck_reader_rescaled_images(scene, dycheck_root):
  sequence = dycheck.open_sequence(os.path.join(dycheck_root, SEQUENCE), scale=2)
  assert sequence.scale == 2 and dycheck.available_scales(sequence.path) == [1, 2]
  record = dycheck.read_clip(sequence, [0, 1, 3], cameras=[1]).record
  assert record["video"].shape == (2, 3, 24, 32, 3)
  # rgb/2x: focal length and principal point halved (corner-origin pixels scale exactly).
  expected = scene["intrinsics"][:2, [0, 1, 3]] * np.array([[0.5], [0.5], [1.0]])
  np.testing.assert_allclose(record["intrinsics"], expected, atol=1e-4)
  xy, _ = geometry.project_points(scene["points_3d"][[0, 1, 3]].astype(np.float64),
                                  record["intrinsics"].astype(np.float64), record["world_to_camera"].astype(np.float64))
  visible = scene["visible"][:2, [0, 1, 3]]
  np.testing.assert_allclose(xy[visible], scene["tracks"][:2, [0, 1, 3]][visible] / 2, atol=1e-3)


def test_dycheck_camera_convention():
  # DyCheck: X_cam = orientation · (X_world − position); pixel = K · X_cam / z with
  # K = [[f, skew, cx], [0, f·pixel_aspect_ratio, cy], [0, 0, 1]] and pixel centres at +0.5 (no shift).
  angle = np.deg2rad(30.0)
  rot = np.array([[np.cos(angle), 0, -np.sin(angle)], [0, 1, 0], [np.sin(angle), 0, np.cos(angle)]])
  position = np.array([1.0, -2.0, 3.0])
  camera = dycheck.camera_from_dict({
      "orientation": rot.tolist(), "position": position.tolist(), "focal_length": 100.0,
      "principal_point": [40.5, 30.25], "skew": 0.5, "pixel_aspect_ratio": 1.1, "image_size": [80, 60]})
  assert camera.image_size == (80, 60)
  local = np.array([0.2, -0.1, 2.0])
  world = position + rot.T @ local
  np.testing.assert_allclose(camera.world_to_camera @ np.append(world, 1.0), np.append(local, 1.0), atol=1e-12)
  xy, z = geometry.project_points(world[None], camera.intrinsics, camera.world_to_camera)
  expected = [100.0 * 0.2 / 2.0 + 0.5 * -0.1 / 2.0 + 40.5, 110.0 * -0.1 / 2.0 + 30.25]
  np.testing.assert_allclose(xy[0], expected, atol=1e-12)
  assert z[0] == pytest.approx(2.0)
  on_axis, _ = geometry.project_points((position + rot.T @ [0.0, 0.0, 5.0])[None], camera.intrinsics,
                                       camera.world_to_camera)
  np.testing.assert_allclose(on_axis[0], [40.5, 30.25], atol=1e-12)  # the principal point, unshifted
  # The values of camera/0_00000.json of DyCheck's iPhone sequence "paper-windmill" (720×960 portrait
  # frames): image_size is (W, H), the principal point near its centre, the first camera at the origin.
  windmill = dycheck.camera_from_dict({
      "focal_length": 719.9471435546875, "image_size": [720, 960],
      "orientation": [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]], "pixel_aspect_ratio": 1.0,
      "position": [0.0, 4.656612873077393e-10, 0.0], "principal_point": [358.8895263671875, 484.92236328125],
      "radial_distortion": [0.0, 0.0, 0.0], "skew": 0.0, "tangential_distortion": [0.0, 0.0]})
  assert windmill.image_size == (720, 960)
  np.testing.assert_allclose(windmill.intrinsics, [[719.9471435546875, 0, 358.8895263671875],
                                                   [0, 719.9471435546875, 484.92236328125], [0, 0, 1]])
  np.testing.assert_allclose(windmill.world_to_camera, np.diag([1.0, -1.0, -1.0, 1.0]), atol=1e-9)
  assert windmill.rescaled(2).image_size == (360, 480)
  np.testing.assert_allclose(windmill.rescaled(2).intrinsics[:2, 2], [179.44476318359375, 242.461181640625])


def _edit_json(path, edit):
  with open(path) as f:
    value = json.load(f)
  edit(value)
  with open(path, "w") as f:
    json.dump(value, f)


BAD_INPUTS = {
    "no dataset.json": (lambda d: os.remove(os.path.join(d, "dataset.json")),
                        r"dataset\.json: field 'dataset': file not found"),
    "no val_ids": (lambda d: _edit_json(os.path.join(d, "dataset.json"), lambda v: v.pop("val_ids")),
                   r"dataset\.json: field 'val_ids': missing"),
    "id without metadata": (lambda d: _edit_json(os.path.join(d, "metadata.json"), lambda v: v.pop("1_00001")),
                            r"metadata\.json: field '1_00001': no entry"),
    "bad camera_id": (lambda d: _edit_json(os.path.join(d, "metadata.json"),
                                           lambda v: v["0_00001"].update(camera_id="zero")),
                      r"metadata\.json: field '0_00001\.camera_id'"),
    "train_ids on two cameras": (lambda d: _edit_json(os.path.join(d, "metadata.json"),
                                                      lambda v: v["0_00004"].update(camera_id=3)),
                                 r"dataset\.json: field 'train_ids': spans cameras \[0, 3\]"),
    "camera without orientation": (lambda d: _edit_json(os.path.join(d, "camera", "0_00001.json"),
                                                        lambda v: v.pop("orientation")),
                                   r"camera/0_00001\.json: field 'orientation': missing"),
    "orientation not a rotation": (lambda d: _edit_json(os.path.join(d, "camera", "0_00001.json"),
                                                        lambda v: v.update(orientation=(2 * np.eye(3)).tolist())),
                                   r"camera/0_00001\.json: field 'orientation': not a rotation"),
    "position of 2 numbers": (lambda d: _edit_json(os.path.join(d, "camera", "1_00003.json"),
                                                   lambda v: v.update(position=[1.0, 2.0])),
                              r"camera/1_00003\.json: field 'position': shape \(2,\), expected \(3,\)"),
    "lens distortion": (lambda d: _edit_json(os.path.join(d, "camera", "1_00001.json"),
                                             lambda v: v.update(radial_distortion=[0.1, 0.0, 0.0])),
                        r"camera/1_00001\.json: field 'radial_distortion': non-zero lens distortion"),
    "image_size disagrees": (lambda d: _edit_json(os.path.join(d, "camera", "0_00001.json"),
                                                  lambda v: v.update(image_size=[66, 48])),
                             r"rgb/1x/0_00001\.png: field 'image_size': image is 64x48"),
    "missing png": (lambda d: os.remove(os.path.join(d, "rgb", "1x", "1_00003.png")),
                    r"rgb/1x/1_00003\.png: field 'rgb': file not found"),
    "corrupt png": (lambda d: open(os.path.join(d, "rgb", "1x", "0_00000.png"), "wb").write(b"not a png"),
                    r"rgb/1x/0_00000\.png: field 'rgb': cannot decode"),
    "missing camera file": (lambda d: os.remove(os.path.join(d, "camera", "0_00002.json")),
                            r"camera/0_00002\.json: field 'camera': file not found"),
    "invalid json": (lambda d: open(os.path.join(d, "camera", "0_00003.json"), "w").write("{orientation"),
                     r"camera/0_00003\.json: field 'camera': not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_dycheck_bad_input_names_file_and_field(case, dycheck_root, tmp_path):
  sequence_dir = str(tmp_path / SEQUENCE)
  shutil.copytree(os.path.join(dycheck_root, SEQUENCE), sequence_dir)
  corrupt, message = BAD_INPUTS[case]
  corrupt(sequence_dir)
  with pytest.raises(schema.RecordError, match=message):
    dycheck.read_clip(dycheck.open_sequence(sequence_dir), np.arange(4), cameras=[1])


def test_dycheck_bad_window_and_scale(dycheck_root, tmp_path):
  sequence = dycheck.open_sequence(os.path.join(dycheck_root, SEQUENCE))
  with pytest.raises(schema.RecordError, match=r"dataset\.json: field 'train_ids'.*no frame at time 7"):
    dycheck.read_clip(sequence, [0, 1, 7])
  with pytest.raises(schema.RecordError, match=r"dataset\.json: field 'val_ids'.*camera 2 has no frame"):
    dycheck.read_clip(sequence, [0, 1, 2, 3], cameras=[2])
  with pytest.raises(schema.RecordError, match=r"rgb/4x: field 'rgb': no such image folder.*\[1, 2\]"):
    dycheck.open_sequence(sequence.path, scale=4)
  with pytest.raises(FileNotFoundError, match="no DyCheck sequence"):
    dycheck.find_sequences(str(tmp_path))
  assert dycheck.find_sequences(dycheck_root) == [sequence.path]
  assert dycheck.find_sequences(sequence.path) == [sequence.path]


# ------------------------------------------------------------------------------------------------
# DyCheck protocol.


def test_dycheck_clips_relative_cameras_and_present_frames(scene, dycheck_root, model_config):
  sequence = dycheck.open_sequence(os.path.join(dycheck_root, SEQUENCE))
  clips, info = protocol_clips.dycheck_clips(sequence, model_config, frames_per_latent=1, grid=2)
  assert [name for name, _ in clips] == ["camera1"] and info["skipped_cameras"] == [2]
  assert info["times"] == [0, 1, 2, 3] and info["cameras"]["camera1"]["present_frames"] == 3
  clip = clips[0][1]
  np.testing.assert_array_equal(clip["present"], [True, True, False, True])
  # The target trajectory: the validation camera relative to the training camera at frame 0.
  c2w = geometry.invert_rigid(scene["world_to_camera"].astype(np.float64))
  expected = np.linalg.inv(c2w[0, 0]) @ c2w[1, [0, 1, 1, 3]]  # time 2 holds time 1's camera
  np.testing.assert_allclose(clip["target_cam_to_world"], expected, atol=1e-4)
  np.testing.assert_allclose(clip["reference_cam_to_world"], np.linalg.inv(c2w[0, 0]) @ c2w[0, :4], atol=1e-4)
  assert clip["target_video"].shape == clip["reference_video"].shape == (MODEL_FRAMES, 32, 32, 3)
  # 48×64 frames → 32×43 (cover 32×32) → centre crop: the principal point moves with the crop.
  k_expected = geometry.crop_intrinsics(geometry.scale_intrinsics(scene["intrinsics"][1, 0].astype(np.float64),
                                                                  43 / 64, 32 / 48), 5.0, 0.0)
  np.testing.assert_allclose(clip["target_intrinsics"][0], k_expected, rtol=1e-5)


def test_dycheck_protocol_end_to_end(tiny_checkpoint, scene, dycheck_root, model_config, tmp_path):
  out = tmp_path / "iphone"
  runner.run_dycheck([tiny_checkpoint], str(out), dycheck_root, names=["mvtrack"], steps=1, progress=False)
  saved = json.loads((out / "metrics.json").read_text())
  assert saved["protocol"] == "dycheck" and saved["trajectories"] == ["camera1"]
  assert saved["skipped"] == {SEQUENCE: [2]} and saved["scales"] == [1]
  assert saved["scenes"][SEQUENCE]["cameras"]["camera1"]["frame_names"] == ["1_00000", "1_00001", None, "1_00003"]
  summary = saved["summary"]
  assert set(summary) == {"mvtrack", "copy_reference", "mean_colour", "gt_video"}
  model = summary["mvtrack"]["all"]
  for key in ("psnr", "ssim", "m_rot_err_deg", "m_trans_err", "m_cam_mc", "epipolar_matched_sampson_px",
              "epipolar_sampson_px"):
    assert key in model, key
  assert model["psnr"]["n"] == 1 and np.isfinite(model["psnr"]["mean"])
  assert "psnr" not in summary["gt_video"]["all"]
  rows = {r["model"]: r["metrics"] for r in saved["rows"]}
  # PSNR/SSIM over the present frames only (time 2 was dropped by DyCheck's synchronisation).
  clip = protocol_clips.dycheck_clips(dycheck.open_sequence(os.path.join(dycheck_root, SEQUENCE)), model_config,
                                frames_per_latent=1)[0][0][1]
  present = clip["present"]
  expected = fidelity.frame_mean_fidelity(clip["reference_video"][present], clip["target_video"][present])
  assert rows["copy_reference"]["psnr"] == pytest.approx(expected["psnr"], rel=1e-12)
  assert rows["copy_reference"]["ssim"] == pytest.approx(expected["ssim"], rel=1e-12)
  per_frame = fidelity.psnr(clip["reference_video"][present], clip["target_video"][present])
  assert expected["psnr"] == pytest.approx(per_frame.mean(), rel=1e-9)  # DyCheck: per frame, then the mean
  # The real validation video matches the reference under the converted cameras: sub-pixel Sampson distance.
  assert rows["gt_video"]["epipolar_matched_sampson_px"] < 1.0
  assert rows["gt_video"]["epipolar_matched_below_2px"] > 0.9
  table = (out / "metrics.md").read_text()
  assert "| metric | mvtrack | copy_reference | mean_colour | gt_video |" in table
  assert "| camera1 | psnr ↑ |" in table
  assert (out / "per_clip.csv").read_text().count("\n") == 1 + 4
  header = table.split("|")[0]
  assert "within DyCheck's co-visibility masks (its mPSNR / mSSIM) for 0 of 1 sequences, over full frames" in header
  assert "LPIPS (the papers' third iPhone metric) is not computed" in header
  assert saved["static_target_cameras"] == {"static": 0, "cameras": 1} and "measure how static" not in header
  # DyCheck's own layout: a static (tripod) validation camera and covisible/1x/val masks. PSNR/SSIM are taken
  # within the masks (resized with the frames), a registered LPIPS receives them, and the header says that the
  # camera columns measure staticness.
  static = dict(scene, world_to_camera=scene["world_to_camera"].copy())
  static["world_to_camera"][1] = static["world_to_camera"][1, :1]
  root = tmp_path / "tripod"
  write_dycheck_sequence(str(root / SEQUENCE), static, MISSING, scales=(1,))
  (root / SEQUENCE / "covisible" / "1x" / "val").mkdir(parents=True)
  for t in (0, 1, 3):
    mask = np.zeros((48, 64), np.uint8)
    mask[:, : 20 + 8 * t] = 255
    iio.imwrite(root / SEQUENCE / "covisible" / "1x" / "val" / f"1_{t:05d}.png", mask)
  seen = []

  def lpips(generated, reference, mask=None):
    seen.append(mask)
    return float(np.abs(generated.astype(float) - reference)[mask].mean())

  learned.register_learned_metric("lpips", lpips)
  try:
    runner.run_dycheck([tiny_checkpoint], str(tmp_path / "out2"), str(root), names=["m"], steps=1, progress=False)
  finally:
    learned.unregister_learned_metric("lpips")
  saved = json.loads((tmp_path / "out2" / "metrics.json").read_text())
  assert saved["covisible_masks"] == [SEQUENCE] and saved["static_target_cameras"] == {"static": 1, "cameras": 1}
  assert saved["scenes"][SEQUENCE]["cameras"]["camera1"]["static"]
  clip = protocol_clips.dycheck_clips(dycheck.open_sequence(str(root / SEQUENCE)), model_config,
                                      frames_per_latent=1)[0][0][1]
  # 48×64 → 32×43 → centre crop of 5 px: the masks' edges at 20 + 8t px land at (20 + 8t)·43/64 − 5; a pixel is
  # co-visible where its centre is.
  np.testing.assert_array_equal(clip["covisible"][0, 0], np.arange(32) + 0.5 < 20 * 43 / 64 - 5)
  np.testing.assert_array_equal(clip["covisible"][3, 0], np.arange(32) + 0.5 < 44 * 43 / 64 - 5)
  present = clip["present"]
  rows = {r["model"]: r["metrics"] for r in saved["rows"]}
  flat = baselines.baseline_videos(clip)["mean_colour"][present]  # (copy_reference is exact at frame 0 here)
  expected = fidelity.frame_mean_fidelity(flat, clip["target_video"][present], clip["covisible"][present])
  assert rows["mean_colour"]["psnr"] == pytest.approx(expected["psnr"], rel=1e-12)
  assert rows["mean_colour"]["ssim"] == pytest.approx(expected["ssim"], rel=1e-12)
  assert expected["psnr"] != pytest.approx(fidelity.frame_mean_fidelity(flat, clip["target_video"][present])["psnr"],
                                           rel=1e-3)
  assert seen and all(m.shape == (3, 32, 32) and m.dtype == bool for m in seen)
  assert np.isfinite(rows["m"]["lpips/lpips"]) and np.isfinite(rows["copy_reference"]["lpips/lpips"])
  header = (tmp_path / "out2" / "metrics.md").read_text().split("|")[0]
  assert "masks (its mPSNR / mSSIM) for 1 of 1 sequences." in header and "LPIPS (the papers'" not in header
  assert "Every validation camera is static" in header and "measure how static the generated video is" in header


def test_masked_fidelity_is_dychecks():
  """DyCheck's mPSNR / mSSIM (dycheck/core/metrics/image.py): without a mask the per-frame PSNR and Wang et al.'s
  SSIM of scikit-image; with one, the PSNR of the masked pixels, and an SSIM that ignores what is outside it."""
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (2, 24, 30, 3), dtype=np.uint8)
  b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
  np.testing.assert_allclose(fidelity.masked_ssim(a, b), fidelity.ssim(a, b), rtol=1e-9)
  np.testing.assert_allclose(fidelity.masked_psnr(a, b), fidelity.psnr(a, b), rtol=1e-12)
  mask = np.zeros((2, 24, 30), bool)
  mask[:, :, :15] = True
  np.testing.assert_allclose(fidelity.masked_psnr(a, b, mask), fidelity.psnr(a[:, :, :15], b[:, :, :15]), rtol=1e-12)
  scrambled = b.copy()
  scrambled[:, :, 15:] = 255 - scrambled[:, :, 15:]  # outside the mask: any change is invisible to the metrics
  assert (fidelity.masked_psnr(a, scrambled, mask) == fidelity.masked_psnr(a, b, mask)).all()
  # SSIM windows straddle the edge: only their masked pixels count (DyCheck's partial convolution).
  np.testing.assert_allclose(fidelity.masked_ssim(a, scrambled, mask), fidelity.masked_ssim(a, b, mask), rtol=1e-12)
  assert (fidelity.masked_ssim(a, scrambled) < fidelity.masked_ssim(a, b) - 0.1).all()
  assert np.isnan(fidelity.masked_psnr(a, b, np.zeros((2, 24, 30), bool))).all()
  with pytest.raises(ValueError, match=r"mask has shape \(24, 30\), expected \(2, 24, 30\)"):
    fidelity.masked_psnr(a, b, mask[0])
  # DyCheck's compute_ssim written out as its code is (scipy's 2-D "valid" convolutions with a 1-D kernel, the
  # partial-convolution renormalisation by the count of masked pixels in the window), on an irregular mask.
  blob = rng.uniform(size=(24, 30)) < 0.6
  f = np.exp(-0.5 * ((np.arange(11) - 5) / 1.5) ** 2)
  f /= f.sum()

  def conv(z, m, kernel):
    zc = scipy.signal.convolve2d(z * m, kernel, mode="valid")
    mc = scipy.signal.convolve2d(m, np.ones_like(kernel), mode="valid")
    return np.where(mc != 0, zc * kernel.size / np.where(mc != 0, mc, 1), 0), (mc != 0).astype(float)

  def blur(z, m):
    z2, m2 = conv(z, m, f[None, :])
    return conv(z2, m2, f[:, None])[0]

  def dycheck_ssim(x, y, m):
    maps = []
    for c in range(3):
      x0, y0 = x[..., c] / 255.0, y[..., c] / 255.0
      mu0, mu1 = blur(x0, m), blur(y0, m)
      s00 = np.maximum(0, blur(x0 * x0, m) - mu0 ** 2)
      s11 = np.maximum(0, blur(y0 * y0, m) - mu1 ** 2)
      s01 = blur(x0 * y0, m) - mu0 * mu1
      s01 = np.sign(s01) * np.minimum(np.sqrt(s00 * s11), np.abs(s01))
      c1, c2 = 0.01 ** 2, 0.03 ** 2
      maps.append((2 * mu0 * mu1 + c1) * (2 * s01 + c2) / ((mu0 ** 2 + mu1 ** 2 + c1) * (s00 + s11 + c2)))
    return np.mean(maps)

  expected = [dycheck_ssim(a[t].astype(float), b[t].astype(float), blob.astype(float)) for t in range(2)]
  np.testing.assert_allclose(fidelity.masked_ssim(a, b, np.stack([blob, blob])), expected, rtol=1e-10)


def test_dycheck_protocol_skips_and_fails_clearly(dycheck_root, tmp_path):
  with pytest.raises(FileNotFoundError, match="no DyCheck sequence"):
    runner.run_dycheck(["unused"], str(tmp_path / "out"), str(tmp_path), progress=False)
  with pytest.raises(schema.RecordError, match=r"rgb/3x"):
    runner.run_dycheck(["unused"], str(tmp_path / "out"), dycheck_root, scale=3, progress=False)


def test_command_line_protocol_flags(tmp_path):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  base = [sys.executable, "-m", "mvtrack_jax.evaluate", "--checkpoint", "unused", "--out", str(tmp_path)]
  for extra, message in ((["--videos", "a", "--dycheck", "b"], "give one of them"),
                         (["--dycheck", "b", "--trajectories", "pan_left"], "does not apply to --dycheck")):
    result = subprocess.run(base + extra, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode != 0 and message in result.stderr + result.stdout


def test_videos_protocol_reads_a_recammaster_camera_file(tiny_checkpoint, davis_dir, model_config, tmp_path):
  """--trajectories FILE: the cameras of a ReCamMaster camera_extrinsics.json, resampled to the clip."""
  identity = "[1 0 0 0] [0 1 0 0] [0 0 1 0] [3390 1380 240 1]"
  moved = "[1 0 0 0] [0 1 0 0] [0 0 1 0] [3490 1380 240 1]"  # 1 m along Unreal's x: forward in OpenCV (+z)
  path = tmp_path / "cams.json"
  path.write_text(json.dumps({f"frame{i}": {"camA": identity if i == 0 else moved} for i in range(3)}))
  out = tmp_path / "out"
  record = runner.run_videos([tiny_checkpoint], str(out), davis_dir, names=["m"], steps=1, progress=False,
                             max_scenes=1, trajectories_file=str(path), baselines=False)
  assert record["trajectories"] == ["camA"] and record["trajectory_source"] == str(path)
  assert f"trajectories from {path}" in (out / "metrics.md").read_text()
  released = trajectories.read_recammaster_json(path)["camA"]
  np.testing.assert_allclose(released[1, :3, 3], [0.0, 0.0, 1.0], atol=1e-9)
  clips, _ = protocol_clips.video_clips(os.path.join(davis_dir, "bear.mp4"), model_config, ["camA"],
                                        frames_per_latent=1, released={"camA": released})
  np.testing.assert_allclose(clips[0]["target_cam_to_world"], trajectories.redirector_resample(released, MODEL_FRAMES),
                             atol=1e-6)
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"frame0": {"camA": "[1 0 0]"}}))
  with pytest.raises(errors.UserError, match=r"--trajectories .*bad.json: frame0.camA: expected 4 rows"):
    runner.run_videos([tiny_checkpoint], str(tmp_path / "out2"), davis_dir, trajectories_file=str(bad), progress=False)
