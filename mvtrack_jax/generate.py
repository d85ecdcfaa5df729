r"""Generates a novel-view video from a reference video and a target camera trajectory.

Examples::

  # A test scene of the model's dataset, camera arcing left around the scene.
  python -m mvtrack_jax.generate --checkpoint out/demo --reference dataset:test:0 \
      --trajectory arc_left --out out/demo/generate
  # Any mp4 (60° horizontal field of view unless --intrinsics is given), custom cameras, a prompt, 3x guidance
  # (a model trained with text; the negative branch is Wan's standard negative prompt).
  python -m mvtrack_jax.generate --checkpoint out/export --reference clip.mp4 --fov 50 \
      --trajectory cameras.json --prompt "a dog runs on a beach" --cfg 3 --steps 30 --out out/clip

``--checkpoint``: an export directory (``mvtrack_jax.export``) or a training workdir (newest step).

``--reference``:

- ``PATH.mp4`` (anything ffmpeg reads): frames ``--start_frame, +frame_stride, …`` (the model's stride, or
  ``--frame_stride``; a clip too short for the model's gets the largest stride its frames allow, so any clip of
  at least ``num_frames`` frames works; ``generation.json`` ``frame_stride`` says which); intrinsics from
  ``--intrinsics`` (JSON 3×3 in the video's pixels) or a pinhole of ``--fov`` degrees horizontal field
  of view centred in the frame; the reference camera is assumed static (monocular videos carry no
  poses) unless ``--reference_cameras`` gives its cameras: a camera file (``.npz`` with ``intrinsics`` and
  OpenCV ``cam_to_world``, one per video frame; ``data.readers.read_camera_file``), e.g. a converted ViPE or COLMAP
  estimate. A ``<stem>.cameras.npz`` beside the mp4 is used without the flag (and without ``--intrinsics``), as
  ``evaluate --videos`` uses it;
  ``generation.json`` records which (``reference_cameras``).
- ``PATH.npz``: a clip in the project's interchange format (``data.readers``), view ``--reference_view``.
- ``dataset:SPLIT:INDEX``: record ``INDEX`` of split ``SPLIT`` of the dataset in the model's config
  (the built-in synthetic dataset for ``configs/default.py``), view ``--reference_view``.

The clip is brought to the model's resolution and ``num_frames`` (``config.data``; override with
``--num_frames/--height/--width``). How an mp4 of another aspect ratio is fitted is ``--resize``:

- ``crop`` (default; what training and evaluation do): scaled to cover the frame, aspect kept, and
  centre-cropped: the edges of a wide clip are cut;
- ``pad``: scaled to fit inside the frame, aspect kept, and centred on black bars: nothing is cut, but
  the model (trained on full frames) sees bars it never saw in training;
- ``stretch``: scaled to the frame in each axis separately: nothing is cut, the pixels are no longer
  square (the intrinsics follow, fx ≠ fy).

``generation.json`` records the policy and the affine map from mp4 pixels to generated pixels. ``.npz`` and
``dataset:`` references are windowed as the model's data (``crop``). An mp4 is decoded only up to the
last frame used and each frame is scaled as it is decoded, so an 8K clip costs one 8K frame of memory at
a time; the written videos play at the mp4's rate over the frame stride (the span sampled).

``--trajectory``: one of ``static``, ``pan_left/right``, ``tilt_up/down``, ``zoom_in/out``,
``translate_up/down``, ``arc_left/right`` (ReCamMaster's ten presets; ``geometry.trajectories``:
``--magnitude`` in degrees or metres, ``--look_at_depth`` metres for the translate/arc pivot), or a
JSON file ``{"cam_to_world": [T × 4×4], "intrinsics": 3×3 or [T × 3×3] (optional)}`` with OpenCV
camera-to-world poses **relative to the reference camera at frame 0** (metres) and intrinsics in
pixels of the generated video (default: the reference's). ``cameras.json`` in the output is in this
format.

Writes into ``--out`` (atomically, file by file):

- ``target.mp4``: the generated target view; ``reference.mp4``: the reference as the model saw it;
- ``side_by_side.mp4``: reference | generated with the head's tracks drawn (if the model has a head);
- ``strip.png``: a still overview without a video player: 4 frames (first, last and evenly spaced) as
  rows of reference | generated [| ground truth] panels, enlarged, the frames clean
  (``inference.visualize.comparison_strip``);
- ``tracks.png`` (models with a head): the same panels with the head's tracks (and the ground-truth tracks of
  the same query points) drawn, one colour per query point, hollow where (predicted) occluded — a second figure,
  so that the dots never hide what the model generated;
- ``ground_truth.mp4`` (where the ground truth is known, below): the true target view;
- ``tracks.npz``: ``tracks`` ``(2, F, N, 2)`` pixels ``(x, y)`` of the generated video's resolution
  (view 0 reference, 1 target), ``visible`` ``(2, F, N)`` bool, ``visibility``/``confidence``
  probabilities, ``frames`` ``(F,)`` video frame of each track frame, ``query_points`` ``(N, 3)``
  ``(t, x, y)``;
- ``cameras.json`` (the trajectory used) and ``generation.json`` (settings, checkpoint, timings, the
  ``files`` written; ``psnr`` (dB) / ``ssim`` of the generated video against the ground truth where
  it is known, ``evaluation.fidelity.video_fidelity``).

Ground truth is known for a ``dataset:SPLIT:INDEX`` reference of the built-in synthetic dataset with a
preset ``--trajectory``: the same scene is re-rendered (``data.synthetic.render_novel_view``, as in
``evaluate``) along exactly the cameras the model was given (the reference camera at window frame 0
composed with the trajectory, reference intrinsics), and the query points are tracked in it. There
is none for mp4/npz references, other datasets or JSON cameras.

``--query_points``: a ``.npy``/``.json``/``.txt`` array ``(N, 3)`` ``(t, x, y)`` or ``(N, 2)`` ``(x, y)``
(frame 0), in pixels of the *input* reference video and frames of the generated clip; default a
``--grid × --grid`` grid of points at frame 0.

Text (classifier-free guidance with ``--cfg``, default 5 as Wan / ReCamMaster when there is something to guide
with, else 1):

- ``--prompt "a person dancing in a plaza"``: encoded by the umT5 text encoder of ``--text_encoder``
  (default: the checkpoint config's ``text.encoder``; a diffusers Wan2.1 folder with
  ``text_encoder/`` and ``tokenizer/``; needs torch, transformers and ftfy); ``--negative_prompt``
  likewise for the negative branch (default: Wan's standard negative prompt for a model trained with text,
  as ReCamMaster's and ReDirector's inference; ``--negative_prompt ""`` is the empty prompt);
- or ``--context`` / ``--negative_context``: ``.npy`` ``(L, text_dim)`` embeddings computed elsewhere
  (``L ≤`` the model's ``context_length``; zero-padded as Wan pads prompts).

A conditional branch without text uses the model's null context (the empty prompt's embedding stored with a
model trained with text; zeros otherwise). When both branches are the null context (a model without text and
no prompt, or ``--negative_prompt ""`` and no prompt) guidance would compare the context with itself: ``--cfg``
then defaults to 1, and another value is refused. ``generation.json`` records ``guidance_active``, the
``guidance_scale`` used and the ``negative`` branch (``wan``, ``empty``, ``given``, ``none`` or ``unused``).

Image (a model whose DiT has an image branch: the ReDirector / Wan2.1-Fun backbone): the CLIP
features of the reference's first frame (after the crop to the model's size) are computed with
``--image_encoder`` (default: the checkpoint config's ``image.encoder``; a CLIP vision folder, e.g. a
Wan2.1-I2V diffusers ``image_encoder/``; needs torch and transformers) and the config's
``image.preprocess``, and condition both guidance branches. A model trained with image features
(``image.cache`` set) needs an encoder; one trained without them runs with the branch off.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from absl import app
from absl import flags
import imageio.v3 as iio
import numpy as np

from mvtrack_jax import cli
from mvtrack_jax import errors
from mvtrack_jax.data import readers
from mvtrack_jax.data import video_io
from mvtrack_jax.evaluation import fidelity
from mvtrack_jax.geometry import trajectories
from mvtrack_jax.inference import clips
from mvtrack_jax.inference import novel_view
from mvtrack_jax.inference import visualize

FLAGS = flags.FLAGS


# ------------------------------------------------------------------------------------------------
# The run.


def run(checkpoint: str, reference: str, trajectory: str, out: str, *, steps: int = 50, cfg: float | None = None,
        seed: int = 0, query_points: str | None = None, grid: int = 8, reference_view: int = 0,
        start_frame: int = 0, num_frames: int | None = None, height: int | None = None, width: int | None = None,
        fov: float = 60.0, intrinsics: str | None = None, magnitude: float | None = None,
        look_at_depth: float | None = None, context: str | None = None, negative_context: str | None = None,
        prompt: str | None = None, negative_prompt: str | None = None, text_encoder: str | None = None,
        image_encoder: str | None = None, fps: float | None = None, step: int | None = None, use_ema: bool = False,
        progress: bool = True, overwrite: bool = False, resize: str = "crop",
        reference_cameras: str | None = None, frame_stride: int | None = None) -> dict[str, Any]:
  """The command (module docstring); returns the ``generation.json`` record.

  ``out`` must be empty or missing, unless ``overwrite``: then the files an earlier ``generate`` wrote there
  (``OUTPUT_FILES``) are removed first, so none of them (a ground truth of another scene, tracks of another model)
  is left beside the new ones; other files are left alone.

  Raises:
    ValueError: both a prompt and a context for one branch, a prompt without a text encoder, or a model
      trained with image features and no image encoder.
    FileExistsError: ``out`` holds files and ``overwrite`` is False.
  """
  for text_flag, array_flag, a, b in (("prompt", "context", prompt, context),
                                      ("negative_prompt", "negative_context", negative_prompt, negative_context)):
    if a is not None and b is not None:
      raise errors.UserError(f"--{text_flag} and --{array_flag} both given; pass one of them")
  # Fail fast: the output folder, every input file and the camera flags, before the model is loaded.
  video_io.check_output_dir(out)
  previous = sorted(os.listdir(out)) if os.path.isdir(out) else []
  if previous and not overwrite:
    raise FileExistsError(f"--out {out}: not empty ({len(previous)} entries, e.g. {previous[0]}); pass --overwrite to "
                          "replace an earlier generate's files there, or choose another folder")
  check_numeric_arguments(fov=fov, steps=steps, cfg=cfg, grid=grid, start_frame=start_frame, num_frames=num_frames,
                          height=height, width=width, magnitude=magnitude, look_at_depth=look_at_depth, fps=fps,
                          reference_view=reference_view, frame_stride=frame_stride)
  clips.check_resize(resize, reference)
  clips.check_trajectory(trajectory, magnitude=magnitude, look_at_depth=look_at_depth)
  if not reference.startswith("dataset:"):
    video_io.ensure_input_file(reference, "--reference")
  if trajectory.endswith(".json"):
    video_io.ensure_input_file(trajectory, "--trajectory")
  if reference_cameras is None and reference.lower().endswith(".mp4") and intrinsics is None:
    reference_cameras = readers.existing_camera_file(reference)
  for flag, value in (("--query_points", query_points), ("--intrinsics", intrinsics), ("--context", context),
                      ("--negative_context", negative_context), ("--reference_cameras", reference_cameras)):
    if value is not None:
      video_io.ensure_input_file(value, flag)
  start = time.time()
  model = novel_view.NovelViewPipeline.from_checkpoint(checkpoint, step=step, use_ema=use_ema,
                                                      image_encoder=image_encoder, text_encoder=text_encoder)
  clip = clips.novel_view_clip(
      model.config, reference, trajectory, num_frames=num_frames, height=height, width=width,
      reference_view=reference_view, start_frame=start_frame, fov=fov,
      intrinsics=None if intrinsics is None else clips.load_array(intrinsics, "intrinsics"), magnitude=magnitude,
      look_at_depth=look_at_depth, query_points=query_points, grid=grid, resize=resize,
      reference_cameras=reference_cameras, frame_stride=frame_stride)
  inputs, truth = clip.inputs, clip.truth
  reference_video, queries = inputs["reference_video"][0], inputs["query_points"][0]
  t, h, w = reference_video.shape[:3]
  texts = {"prompt": prompt, "negative_prompt": negative_prompt,
           "context": None if context is None else clips.load_array(context, "context"),
           "negative_context": None if negative_context is None else clips.load_array(negative_context,
                                                                                      "negative_context")}
  sampling = novel_view.SamplingConfig(num_steps=steps, guidance_scale=cfg, seed=seed)
  t0 = time.time()
  guidance = model.guidance(sampling, **texts)
  result = model(inputs, sampling, guidance=guidance, progress=progress)
  t_generate = time.time() - t0
  generated = result["target_video"][0]

  os.makedirs(out, exist_ok=True)
  for name in OUTPUT_FILES:  # what an earlier run wrote (overwrite): none of it may outlive this run
    if os.path.isfile(os.path.join(out, name)):
      os.remove(os.path.join(out, name))
  fps = output_fps(fps, clip.source_fps, clip.frame_stride)
  video_io.write_video(os.path.join(out, "target.mp4"), generated, fps=fps)
  video_io.write_video(os.path.join(out, "reference.mp4"), reference_video, fps=fps)
  cameras = {"trajectory": clip.trajectory, "cam_to_world": inputs["target_cam_to_world"][0].tolist(),
             "intrinsics": inputs["target_intrinsics"][0].tolist(),
             "reference_cam_to_world": inputs["reference_cam_to_world"][0].tolist(),
             "reference_intrinsics": inputs["reference_intrinsics"][0].tolist()}
  _write_json(os.path.join(out, "cameras.json"), cameras)
  files = ["target.mp4", "reference.mp4", "cameras.json"]
  t_track = 0.0
  if model.head is not None:
    t0 = time.time()
    tracked = model.track(inputs, result["target_video"], sampling)
    t_track = time.time() - t0
    arrays = {key: tracked[key][0] for key in ("tracks", "visible", "visibility", "confidence")}
    arrays.update(frames=tracked["frames"], query_points=queries)
    with video_io.atomic_output(os.path.join(out, "tracks.npz")) as tmp:
      with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    panels = visualize.side_by_side_with_tracks(reference_video, generated, arrays["tracks"],
                                                arrays["visible"], arrays["frames"])
    video_io.write_video(os.path.join(out, "side_by_side.mp4"), panels, fps=fps)
    files += ["tracks.npz", "side_by_side.mp4"]
    drawn = {"tracks": arrays["tracks"], "visible": arrays["visible"], "frames": arrays["frames"]}
  else:
    panels = visualize.side_by_side_with_tracks(reference_video, generated, np.zeros((2, t, 0, 2)),
                                                np.zeros((2, t, 0), bool))
    video_io.write_video(os.path.join(out, "side_by_side.mp4"), panels, fps=fps)
    files.append("side_by_side.mp4")
    drawn = {}
  fidelity_metrics = {}
  if truth is not None:
    video_io.write_video(os.path.join(out, "ground_truth.mp4"), truth["video"], fps=fps)
    files.append("ground_truth.mp4")
    scores = fidelity.video_fidelity(generated, truth["video"])
    fidelity_metrics = {key: round(float(scores[key]), 4) for key in ("psnr", "ssim")}
    if model.head is not None:  # ground-truth tracks of the head's query points; nothing to compare without a head
      drawn.update(gt_tracks=truth["tracks"], gt_visible=truth["visible"])
  truth_video = None if truth is None else truth["video"]
  _write_png(os.path.join(out, "strip.png"), visualize.comparison_strip(reference_video, generated, truth_video)[0])
  files.append("strip.png")
  if model.head is not None:
    _write_png(os.path.join(out, "tracks.png"),
               visualize.comparison_strip(reference_video, generated, truth_video, **drawn)[0])
    files.append("tracks.png")
  info = {"checkpoint": model.source, "model": model.name, "reference": clip.source, "trajectory": clip.trajectory,
          "num_frames": t, "frame_stride": clip.frame_stride, "fps": fps, "resize": resize,
          "input_to_output_pixels": clip.to_video.tolist(), "height": h, "width": w, "steps": steps, **guidance.record(),
          "reference_cameras": None if reference_cameras is None else os.path.abspath(reference_cameras),
          "prompt": prompt, "negative_prompt": negative_prompt,
          "seed": seed, "num_query_points": int(len(queries)),
          "ground_truth": truth is not None, **fidelity_metrics,
          "seconds_generate": round(t_generate, 3), "seconds_track": round(t_track, 3),
          "seconds_total": round(time.time() - start, 3), "files": files}
  _write_json(os.path.join(out, "generation.json"), info)
  return info


def check_numeric_arguments(**values: Any) -> None:
  """Rejects numeric flags that cannot work, before any model is loaded (``None`` = not given).

  Raises:
    errors.UserError: the first offending flag, as ``--flag VALUE: expected WHAT``.
  """
  rules = {
      "fov": (lambda v: 0.0 < v < 180.0, "a horizontal field of view in (0, 180) degrees"),
      "steps": (lambda v: v >= 1, "an integer >= 1 (Euler steps)"),
      "cfg": (lambda v: v >= 0.0, "a guidance scale >= 0 (1 = no guidance)"),
      "grid": (lambda v: v >= 1, "an integer >= 1 (a grid x grid lattice of query points)"),
      "start_frame": (lambda v: v >= 0, "a frame index >= 0"),
      "num_frames": (lambda v: v >= 1, "an integer >= 1"),
      "frame_stride": (lambda v: v >= 1, "an integer >= 1 (source frames between clip frames)"),
      "height": (lambda v: v >= 1, "an integer >= 1 (pixels)"),
      "width": (lambda v: v >= 1, "an integer >= 1 (pixels)"),
      "magnitude": (lambda v: True, "a finite number (degrees or metres)"),
      "look_at_depth": (lambda v: v > 0.0, "a distance > 0 (metres in front of the reference camera)"),
      "fps": (lambda v: v > 0.0, "a frame rate > 0"),
      "reference_view": (lambda v: v >= 0, "a view index >= 0"),
  }
  for name, value in values.items():
    if value is None:
      continue
    ok, expected = rules[name]
    if not (np.isfinite(value) and ok(value)):
      raise errors.UserError(f"--{name} {value}: expected {expected}")


# Every file ``run`` may write into ``--out``.
OUTPUT_FILES = ("target.mp4", "reference.mp4", "side_by_side.mp4", "ground_truth.mp4", "tracks.npz", "cameras.json",
                "strip.png", "tracks.png", "generation.json")


def output_fps(requested: float | None, source_fps: float | None, frame_stride: int) -> float:
  """Frame rate of the written videos: ``--fps`` when given, else the reference mp4's rate over the frame stride
  (every ``frame_stride``-th source frame is used, so the clip lasts as long as the span it was sampled from), else
  ``video_io.DEFAULT_FPS`` (references without a rate: dataset records, ``.npz`` clips)."""
  if requested:
    return float(requested)
  if source_fps:
    return float(source_fps) / max(int(frame_stride), 1)
  return float(video_io.DEFAULT_FPS)


def _write_png(path: str, image: np.ndarray) -> None:
  with video_io.atomic_output(path) as tmp:
    iio.imwrite(tmp, image, extension=".png")


def _write_json(path: str, value: Any) -> None:
  with video_io.atomic_output(path) as tmp:
    with open(tmp, "w") as f:
      json.dump(value, f, indent=2)


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_string("checkpoint", None, "Export directory (any export format) or training workdir.")
  flags.DEFINE_string("reference", None, "PATH.mp4, PATH.npz or dataset:SPLIT:INDEX.")
  flags.DEFINE_string("trajectory", None,
                      f"One of {', '.join(trajectories.PRESET_NAMES)} or a cameras JSON file.")
  flags.DEFINE_string("out", None, "Output directory.")
  flags.DEFINE_integer("steps", 50, "Euler steps.")
  flags.DEFINE_float("cfg", None, "Classifier-free guidance scale; default 5 when the two branches differ (a prompt "
                     "or context, or a model trained with text), else 1.")
  flags.DEFINE_integer("seed", 0, "Seed of the initial noise.")
  flags.DEFINE_string("query_points", None, "Query points file (N, 3) (t, x, y) or (N, 2).")
  flags.DEFINE_integer("grid", 8, "Default query points: a grid x grid lattice at frame 0.")
  flags.DEFINE_integer("reference_view", 0, "View of an .npz / dataset record used as reference.")
  flags.DEFINE_integer("start_frame", 0, "First frame of the reference clip.")
  flags.DEFINE_integer("num_frames", None, "Frames to generate (default: the model's).")
  flags.DEFINE_integer("height", None, "Output height (default: the model's).")
  flags.DEFINE_integer("width", None, "Output width (default: the model's).")
  flags.DEFINE_float("fov", 60.0, "Horizontal field of view (degrees) of an mp4 reference.")
  flags.DEFINE_string("intrinsics", None, "JSON 3x3 intrinsics of an mp4 reference (its pixels).")
  flags.DEFINE_string("reference_cameras", None, "Camera file of an mp4 reference (.npz: intrinsics, cam_to_world "
                      "per video frame; default: <stem>.cameras.npz beside it, if any).")
  flags.DEFINE_float("magnitude", None, "Preset trajectory size (degrees or metres).")
  flags.DEFINE_float("look_at_depth", None, "Pivot depth (m) of translate/arc presets.")
  flags.DEFINE_string("prompt", None, "Text prompt, encoded with --text_encoder (umT5).")
  flags.DEFINE_string("negative_prompt", None, "Negative prompt of guidance (default: Wan's standard negative prompt "
                      "for a model trained with text; \"\" for the empty prompt).")
  flags.DEFINE_string("text_encoder", None, "umT5 folder for --prompt (default: the checkpoint config's text.encoder).")
  flags.DEFINE_string("context", None, ".npy text embeddings (L, text_dim) instead of --prompt.")
  flags.DEFINE_string("negative_context", None, ".npy text embeddings (L, text_dim) instead of --negative_prompt.")
  flags.DEFINE_string("image_encoder", None, "CLIP vision folder for a model with an image branch (default: the "
                      "checkpoint config's image.encoder).")
  flags.DEFINE_integer("frame_stride", None, "Source frames between clip frames (default: the model's; an mp4 too "
                       "short for it gets the largest stride that fits).")
  flags.DEFINE_float("fps", None, "Output frame rate (default: the mp4's rate over the frame stride, so the clip lasts "
                     "the span it was sampled from; else 15).")
  flags.DEFINE_integer("step", None, "Training step (workdir checkpoints; default newest).")
  flags.DEFINE_bool("use_ema", False, "Use the EMA weights of a training workdir.")
  flags.DEFINE_enum("resize", clips.RESIZE_POLICIES[0], clips.RESIZE_POLICIES,
                    "How an mp4 of another aspect ratio fits the model's frame: crop (cover, centre crop; as in "
                    "training), pad (fit, black bars) or stretch (each axis).")
  flags.DEFINE_bool("overwrite", False, "Replace the files of an earlier generate in a non-empty --out.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for name in ("checkpoint", "reference", "trajectory", "out"):
    if not getattr(FLAGS, name):
      raise app.UsageError(f"--{name} is required")
  info = run(FLAGS.checkpoint, FLAGS.reference, FLAGS.trajectory, FLAGS.out, steps=FLAGS.steps, cfg=FLAGS.cfg,
             seed=FLAGS.seed, query_points=FLAGS.query_points, grid=FLAGS.grid,
             reference_view=FLAGS.reference_view, start_frame=FLAGS.start_frame, num_frames=FLAGS.num_frames,
             height=FLAGS.height, width=FLAGS.width, fov=FLAGS.fov, intrinsics=FLAGS.intrinsics,
             reference_cameras=FLAGS.reference_cameras, frame_stride=FLAGS.frame_stride,
             magnitude=FLAGS.magnitude, look_at_depth=FLAGS.look_at_depth, context=FLAGS.context,
             negative_context=FLAGS.negative_context, prompt=FLAGS.prompt, negative_prompt=FLAGS.negative_prompt,
             text_encoder=FLAGS.text_encoder, image_encoder=FLAGS.image_encoder, fps=FLAGS.fps, step=FLAGS.step,
             use_ema=FLAGS.use_ema, overwrite=FLAGS.overwrite, resize=FLAGS.resize)
  extra = f", PSNR {info['psnr']} dB" if "psnr" in info else ""
  print(f"wrote {', '.join(info['files'])} to {os.path.abspath(FLAGS.out)} ({info['seconds_total']} s{extra}; settings "
        "in generation.json)")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
