r"""Evaluates novel-view generation: scenes under several target trajectories, one metrics table.

Examples::

  python -m mvtrack_jax.evaluate --checkpoint out/demo --split test --out out/demo/evaluate
  # MVTrack4Gen vs the diffusion-only baseline trained with the same budget, side by side.
  python -m mvtrack_jax.evaluate --checkpoint out/mvtrack --checkpoint out/baseline \
      --names mvtrack4gen,diffusion_only --split test --out out/compare --steps 50
  # The paper's benchmarks: DAVIS (a folder of mp4s) x the 10 ReCamMaster trajectories, DyCheck iPhone.
  python -m mvtrack_jax.evaluate --checkpoint out/export --videos data/davis_val --pose_method colmap \
      --out out/davis
  python -m mvtrack_jax.evaluate --checkpoint out/export --dycheck data/iphone --pose_method colmap \
      --out out/iphone

Three protocols: the model's own ``--split`` (default, below), ``--videos DIR`` and ``--dycheck DIR``
(sections after it). All write the same files and use the same metric functions.

Protocol ``--split`` (default). For each scene ``i`` of ``--split`` (the dataset of the first
checkpoint's config), view 0 over frames ``0 … T−1`` (the model's ``config.data`` frames/resolution,
centre crop) is the reference, and for each ``--trajectories`` entry a ground-truth target view is built:

- a preset name (``pan_right``, ``zoom_in``, ``arc_left``, …; ``geometry.trajectories``): the
  target camera starts at the reference camera's frame-0 pose and follows the preset (default
  magnitudes; translate/arc pivot on the optical axis at the median depth of the reference's first
  frame); the **same scene and tracked points are re-rendered** from it
  (``data.synthetic.render_scene_views``), so only the built-in synthetic dataset supports presets;
- ``recorded``: the record's view 1 (its own camera path), for any dataset.

Every model generates the target view (Euler + CFG, ``--steps``/``--cfg``/``--seed``; all
trajectories of a scene in one batch) and, if it has a tracking head, tracks the clip's query
points (sampled among the ground-truth points visible in the reference view, on the model's latent frames
0, k, 2k, … where the head's tracks are). Metrics per clip
(docs/design.md §4.6; the table's arrows say which way is better):

- ``psnr`` ↑ / ``ssim`` ↑: against the ground-truth target view (``evaluation.fidelity``).
- ``m_rot_err_deg`` ↓, ``m_trans_err`` ↓, ``m_cam_mc`` ↓: CamI2V errors (per-frame means) of the
  trajectory estimated from the *generated* video against the ground truth, and beside them ReDirector's
  definitions of the same names, ``redirector_rot_err_deg`` ↓ (mean angle of the relative rotations over
  ordered frame pairs) and ``redirector_trans_err`` ↓ (similarity-aligned camera centres, mean distance over
  the largest ground-truth distance; ``evaluation.camera.redirector_errors``). The estimator is
  ``--pose_method``: ``colmap`` is the papers' (CamI2V's evaluation: COLMAP SIFT features, sequential
  matching, GLOMAP global mapping with the known intrinsics, 3 trials averaged; ``evaluation.sfm``; frames of
  at least 96 px), ``flow`` (Lucas–Kanade lattice tracks, the default, for the 32–64 px CPU models, where SfM
  finds too few features) and ``sift``/``orb`` feed this project's two-view estimator
  (``evaluation.camera``); the same estimator for every model, so it does not favour a model with a head.
  ``--poses DIR`` takes the generated videos' poses from elsewhere instead (a camera file per clip,
  ``DIR/<model>/<scene>_<trajectory>.npz``, e.g. GLOMAP or ViPE run on the ``<scene>_<trajectory>.generated.mp4``
  files a first run's ``--save_videos`` wrote; the second run generates the same videos again from the same seed,
  so run it on the same machine with the same settings; every file of a scene is checked before it is generated,
  and the models' own estimator is not run). The table header names the estimator. ``pose_valid`` is the fraction of frames the estimator could pose
  (``colmap``: registered, over its trials; ``sfm_trials_complete`` the trials that registered every
  frame, the only ones scored). The column ``gt_video`` runs the same estimator on the ground-truth target
  video: the floor the estimator itself reaches.
- drift (``evaluation.drift``, no weights; the ``gt_video`` column gives the ground truth's own values):
  ``track_colour_drift`` ↓ (mean RGB distance, 0–255 units, between a ground-truth track's colour in each frame
  and in the first), ``flow_track_survival`` ↑ (fraction of first-frame Lucas–Kanade tracks that last to the end),
  ``temporal_flickering`` ↑ (VBench's ``(255 − mean consecutive-frame MAE) / 255``).
- head models only: ``aj_reference`` / ``aj_target`` ↑, ``delta_avg_target`` ↑,
  ``oa_target`` ↑: TAP-Vid metrics of the head's tracks ('strided' mode, 256×256 raster, points of
  each view scored separately, target view scored in the generated video against the ground-truth
  view's tracks); ``epipolar_sampson_px`` ↓ / ``epipolar_below_2px`` ↑: Sampson error of the
  head's reference↔target correspondences under the ground-truth cameras (``evaluation.epipolar``).
- learned metrics registered with ``evaluation.learned`` (MEt3R, VBench, … with user weights):
  ``<name>/<key>`` columns.

Model-free baselines (``--baselines``, on by default; computed once per clip, scored by the same
functions as the models): a number in the table only means something next to what a prediction
that needs **no model** reaches, so a model must beat these columns to have learnt anything.

- ``copy_reference``: the target video predicted as the reference video itself: the PSNR/SSIM of
  ignoring the target camera, and camera errors of the reference's own motion taken for the
  target trajectory.
- ``mean_colour``: every pixel of every frame is the reference video's mean colour (per RGB
  channel, over all ``T·H·W`` pixels, rounded to uint8): the PSNR/SSIM of predicting no structure;
  its camera errors are those of a video the pose estimator cannot track (what a failed estimate
  scores against this trajectory).
- ``zero_motion`` (tracking): every query point stays at its reference-view ``(x, y)`` in both
  views at every track frame, always visible; scored by the same TAP-Vid / epipolar code as the
  head at the same track frames (video frames ``0, k, 2k, …`` of the first head model's
  autoencoder, ``k`` its frames per latent frame). Its ``aj_reference`` is what assuming that
  nothing moves scores: a head must beat it to show it tracks anything.

The column names ``copy_reference``, ``mean_colour``, ``zero_motion`` and ``gt_video`` are reserved
(``--names`` may not use them); columns are ordered models…, baselines, ``gt_video``.

Writes ``--out/metrics.json`` (settings, ``baselines`` and ``zero_motion_frames``, per-clip rows
with ``"model"`` a label or a baseline name, means per model × trajectory and overall),
``--out/metrics.md`` (the summary and per-trajectory tables, models side by side) and
``--out/per_clip.csv``; with ``--save_videos``, ``videos/<model>/scene<i>_<trajectory>.mp4``
(reference | generated | ground truth). Means skip NaN (a metric a clip could not produce); ``n``
counts the clips of each mean.

Protocol ``--videos DIR`` (DAVIS: MVTrack4Gen, arXiv 2606.26087, reports DAVIS × ReCamMaster's 10
trajectories, after ReDirector's 50 DAVIS videos × 10 trajectories = 500 cases). Every ``*.mp4`` of
``DIR`` (sorted by name, not recursive; ``--max_scenes`` keeps the first N) is a reference video,
evaluated under each ``--trajectories`` preset (default ``runner.VIDEO_TRAJECTORIES``: ReCamMaster's released
``cam01`` … ``cam10`` = pan right/left 20°, tilt up/down 10°, zoom in/out 2 m, translate up/down 1 m, arc
left/right 30° about the point 4 m ahead, at constant speed over 81 frames, a shorter clip covering the part its
frames reach as in ReDirector (``geometry.trajectories``); the eased presets and ``static`` are allowed,
``recorded`` is not: there is no second view). Decisions:

- Reading: ``inference.clips.reference_record`` (the ``--reference PATH.mp4`` path of ``generate``), so both
  commands see an mp4 identically. Reference cameras: a ``<stem>.cameras.npz`` beside the mp4
  (``data.readers.read_camera_file``: ``intrinsics`` ``(T, 3, 3)`` in the video's pixels and OpenCV
  ``cam_to_world`` ``(T, 4, 4)``, e.g. a converted ViPE estimate, which ReDirector's inference conditions on)
  gives the reference half's intrinsics and poses (relative to its frame 0), the target's intrinsics and the
  cameras of the epipolar proxy and the pose estimator. Without one, the **static-camera assumption**: a
  pinhole camera of ``--fov`` degrees horizontal field of view (default 60°, ``geometry.intrinsics_from_fov``,
  principal point at the image centre) with the identity pose at every frame (a monocular video carries no
  poses); ``metrics.json`` ``camera_assumption`` (``camera files``, ``static-camera assumption`` or ``mixed``),
  each scene's ``reference_cameras`` and the table header say which. The whole file is decoded (DAVIS clips
  are at most ~100 frames); trim long videos beforehand.
- Window: frames ``0, s, 2s, …`` (``s`` = the model's ``config.data.frame_stride``) of
  ``evaluation.protocol_clips.protocol_num_frames`` length: the model's ``config.data.num_frames`` (81 for the paper
  config) truncated to what the video has, rounded down to ``1 + k·m`` (``k`` = frames per latent frame of the
  models' autoencoders, their least common multiple; 4 for the Wan VAE, so a 70-frame video gives 69
  frames), at least ``1 + k``; resized to cover the model's resolution and centre-cropped as in
  ``generate`` (``pipeline.window_example``).
- Target cameras: ``inference.clips.trajectory_cameras`` (``geometry.trajectories.preset_trajectory``, default
  magnitudes, relative to the reference camera at frame 0, the reference's intrinsics); without depth
  the translate/arc pivot is the presets' default point 4 m in front of the camera (``generate``
  without ``--look_at_depth``).
- No ground-truth target exists, so no PSNR/SSIM/TAP-Vid. Reported per clip: camera metrics
  (``m_rot_err_deg``, ``m_trans_err``, ``m_cam_mc``, ``pose_valid``: ``--pose_method`` poses of the
  generated video against the requested trajectory, exactly as in ``--split``; use ``colmap`` at full
  resolution), the epipolar proxy and the learned-metric hook (below).

Protocol ``--dycheck DIR`` (DyCheck iPhone, Gao et al. 2022; MVTrack4Gen's second benchmark, evaluated
as in ReDirector-style work: the first 81 frames as input, the provided poses of a held-out camera as
the target trajectory, PSNR/SSIM against its frames). ``DIR`` is
one sequence folder (holding ``dataset.json``) or a folder of them (``data.dycheck`` reads the layout
and converts the cameras: see its docstring for the conventions and their sources). Per sequence:

- Reference video: the training camera's first frames (its sorted time ids ``0, s, 2s, …``), of
  ``evaluation.protocol_clips.protocol_num_frames`` length (81 for the paper config), read from
  ``rgb/<--dycheck_scale>x``
  (default the highest resolution present: the model's resize then loses least).
- One clip per validation camera (trajectory name ``camera<id>``): its frames at the same times are
  the ground-truth target video, its cameras made relative to the reference camera at frame 0
  (``pipeline.window_example``: ``c2w_rel = inv(c2w_ref[0]) @ c2w_val``, docs/design.md §3) are the
  target trajectory, with the validation camera's own intrinsics; both views are resized and cropped
  as in ``--split``. DyCheck dropped unsynchronised validation frames: a missing frame is filled with
  the camera's nearest present frame (image and camera; exact cameras for DyCheck's static validation
  rigs) and left out of PSNR/SSIM; a camera without any frame in the window is skipped (listed under
  ``skipped`` in ``metrics.json``).
- Reported: ``psnr``/``ssim`` as DyCheck's protocol scores them (``evaluation.fidelity.frame_mean_fidelity``:
  per present frame, then the mean; within DyCheck's ``covisible/`` masks where the sequence has them: mPSNR,
  mSSIM), the camera metrics against the validation trajectory (DyCheck's validation cameras are static: they
  measure staticness, and the header says so), the epipolar proxy, the learned hook (a registered ``lpips``
  gets the co-visibility as ``mask=``); ``gt_video`` runs the pose estimator and (on its present frames)
  the matched epipolar proxy on the real validation video: the floor of both, and its sub-pixel
  epipolar error on real frames checks the camera conversion.

Shared by ``--videos`` and ``--dycheck``:

- Text and guidance, as the reference inference scripts: each video is captioned by its ``--captions`` row
  (ReCamMaster's ``metadata.csv`` layout: ``file_name`` names the mp4 / the DyCheck sequence folder by the end of
  its path; rows are matched as ``data.captions`` says), else by ``--prompt``, else gets the null context; the
  captions are embedded by each model's umT5 encoder (``--text_encoder`` or its config's ``text.encoder``).
  The negative branch is Wan's standard negative prompt for a model trained with text (``--negative_prompt ""``:
  the empty prompt), and ``--cfg`` defaults to 5 when a model's two branches differ, else to 1; an explicit
  ``--cfg`` other than 1 where both branches would be the null context is an error. ``metrics.json`` records
  each model's ``guidance`` (active, scale, negative) under ``checkpoints`` and each scene's ``caption``; the
  table header says the same.
- Generation: every model generates each clip with ``--steps``/``--cfg`` and the **same seed**
  ``--seed``; ``--batch_size`` clips of a scene per batch (default 1: every clip starts from the same
  initial noise, ``normal(key(seed))``; with a larger batch clip ``b`` of a batch gets slice ``b`` of
  the batch's noise, so numbers depend on ``--batch_size``).
- Epipolar proxy (Sampson distance, ``evaluation.epipolar``, under the cameras given to the model,
  scored at the head's track frames ``0, k, 2k, …``; a camera pair without baseline, e.g. every frame
  of a pan or tilt and frame 0 of every preset, has no epipolar geometry and is excluded):
  ``epipolar_sampson_px`` / ``epipolar_below_2px`` from the head's reference↔target tracks of a
  ``--grid``² lattice of frame-0 query points (head models only, as in ``--split``), and, for **every**
  column (models with or without a head, baselines, ``gt_video``),
  ``epipolar_matched_sampson_px`` / ``epipolar_matched_below_2px`` from correspondences between
  reference frame ``t`` and generated frame ``t`` found by the ``--pose_method`` matcher
  (``flow``: Lucas–Kanade lattice tracks with a forward–backward check; ``sift``/``orb``: Lowe-ratio
  matches). The matched proxy is model-independent (like the pose estimator, it does not favour a
  model with a head) and is what a diffusion-only model is scored with instead of NaN. It is a
  necessary, not sufficient, test: a copy of the reference satisfies the epipolar geometry of any
  pure translation (``zoom_in``/``zoom_out``) exactly, hence the ``copy_reference`` column. For
  ``--videos`` under the static-camera assumption the unknown own motion of a real video's camera biases
  the proxy (a camera file removes the bias as far as its cameras are right).
- Learned metrics (``evaluation.learned``; the command line also registers
  ``$MVTRACK_LEARNED_METRICS``): called with the generated video and, as ``reference``, the
  ground-truth target video where there is one (``--dycheck``, as ``--split``), else the reference
  video (``--videos``: MEt3R compares reference and generated frames).
- Baselines (``--baselines``): ``copy_reference`` and ``mean_colour`` scored like a model;
  ``zero_motion`` needs ground-truth tracks and is not run.
- Scenes are named by the video's file stem / the sequence folder's name; ``metrics.json`` has
  ``protocol``, the per-scene window (``scenes``: source, frames, present frames of each validation
  camera) and the settings; with ``--save_videos``, ``videos/<model>/<scene>_<trajectory>.mp4``.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags

from mvtrack_jax import cli
from mvtrack_jax.evaluation import baselines as baselines_lib
from mvtrack_jax.evaluation import clip_metrics
from mvtrack_jax.evaluation import learned
from mvtrack_jax.evaluation import protocol_clips
from mvtrack_jax.evaluation import runner
from mvtrack_jax.geometry import trajectories

EXIT_SKIPPED = 3  # finished, metrics written, but some --videos could not be used (listed on stderr)

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_multi_string("checkpoint", None, "Export dir or training workdir; repeat to compare.")
  flags.DEFINE_list("names", None, "Column names of the checkpoints (default: config name@step).")
  flags.DEFINE_string("split", "test", "Dataset split.")
  flags.DEFINE_string("out", None, "Output directory.")
  flags.DEFINE_list("trajectories", None,
                    f"'{protocol_clips.RECORDED}' and/or presets: {', '.join(trajectories.PRESET_NAMES)} (default: "
                    f"{','.join(runner.DEFAULT_TRAJECTORIES)} for --split, ReCamMaster's cam01..cam10 for --videos, or "
                    "with --videos a ReCamMaster camera_extrinsics.json whose cameras are used; not with --dycheck).")
  flags.DEFINE_string("videos", None, "Protocol: a folder of mp4 reference videos (DAVIS) x preset trajectories.")
  flags.DEFINE_string("dycheck", None, "Protocol: a DyCheck iPhone sequence folder, or a folder of them.")
  flags.DEFINE_float("fov", 60.0, "--videos: horizontal field of view (degrees) of an mp4 without a "
                     "<stem>.cameras.npz (the static-camera assumption).")
  flags.DEFINE_integer("dycheck_scale", None, "--dycheck: read rgb/<s>x (default: the highest resolution present).")
  flags.DEFINE_integer("grid", 8, "--videos/--dycheck: the head's query points, a grid x grid lattice at frame 0.")
  flags.DEFINE_integer("batch_size", 1,
                       "--videos/--dycheck: clips per generation batch (1: the same noise for every clip).")
  flags.DEFINE_integer("max_scenes", None, "Evaluate the first N scenes (videos, sequences) only.")
  flags.DEFINE_integer("steps", 50, "Euler steps.")
  flags.DEFINE_float("cfg", None, "Classifier-free guidance scale; default 5 (ReCamMaster, ReDirector) for a model "
                     "whose two branches differ (trained with text, or a caption given), else 1.")
  flags.DEFINE_string("captions", None, "--videos/--dycheck: a ReCamMaster metadata.csv (file_name,text) captioning "
                      "the videos by file name / the sequences by folder.")
  flags.DEFINE_string("prompt", None, "The caption of every clip without one from --captions.")
  flags.DEFINE_string("negative_prompt", None, "Negative branch of guidance (default: Wan's standard negative "
                      "prompt for a model trained with text; \"\" for the empty prompt).")
  flags.DEFINE_string("text_encoder", None, "umT5 folder for the captions (default: each checkpoint's text.encoder).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_enum("pose_method", "flow", list(clip_metrics.POSE_METHODS),
                    "Camera columns' pose estimator: two-view on flow/sift/orb correspondences, or colmap (COLMAP + "
                    "GLOMAP structure-from-motion, CamI2V's protocol; frames of at least 96 px).")
  flags.DEFINE_string("poses", None, "Poses of the generated videos estimated elsewhere: DIR/<model>/<scene>_"
                      "<trajectory>.npz camera files (named as --save_videos names the videos).")
  flags.DEFINE_bool("save_videos", False, "Write reference | generated | GT videos.")
  flags.DEFINE_bool("baselines", True,
                    f"Add the model-free columns {', '.join(baselines_lib.BASELINES)} (--nobaselines: off).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.checkpoint or not FLAGS.out:
    raise app.UsageError("--checkpoint and --out are required")
  if FLAGS.videos and FLAGS.dycheck:
    raise app.UsageError("--videos and --dycheck are two protocols; give one of them")
  if FLAGS.dycheck and FLAGS.trajectories:
    raise app.UsageError("--trajectories does not apply to --dycheck (the targets are its validation cameras)")
  learned.register_from_env()
  text = runner.TextOptions(prompt=FLAGS.prompt, captions=FLAGS.captions, negative_prompt=FLAGS.negative_prompt,
                            text_encoder=FLAGS.text_encoder)
  common = dict(names=FLAGS.names, max_scenes=FLAGS.max_scenes, steps=FLAGS.steps, cfg=FLAGS.cfg, text=text,
                seed=FLAGS.seed, pose_method=FLAGS.pose_method, poses=FLAGS.poses, save_videos=FLAGS.save_videos,
                baselines=FLAGS.baselines)
  if FLAGS.videos:
    from_file = FLAGS.trajectories and len(FLAGS.trajectories) == 1 and FLAGS.trajectories[0].endswith(".json")
    record = runner.run_videos(FLAGS.checkpoint, FLAGS.out, FLAGS.videos,
                               trajectory_names=(not from_file and FLAGS.trajectories) or runner.VIDEO_TRAJECTORIES,
                               trajectories_file=FLAGS.trajectories[0] if from_file else None, fov=FLAGS.fov,
                               grid=FLAGS.grid, batch_size=FLAGS.batch_size, **common)
  elif FLAGS.dycheck:
    record = runner.run_dycheck(FLAGS.checkpoint, FLAGS.out, FLAGS.dycheck, scale=FLAGS.dycheck_scale, grid=FLAGS.grid,
                         batch_size=FLAGS.batch_size, **common)
  else:
    record = runner.run(FLAGS.checkpoint, FLAGS.out, split=FLAGS.split,
                 trajectory_names=FLAGS.trajectories or runner.DEFAULT_TRAJECTORIES, **common)
  with open(os.path.join(FLAGS.out, "metrics.md")) as f:
    print(f.read())
  print(f"wrote {FLAGS.out}/metrics.json, metrics.md, per_clip.csv in {record['seconds']} s")
  if record.get("unreadable"):
    print(f"skipped {len(record['unreadable'])} video(s) that could not be used: "
          + "; ".join(f"{k}: {v}" for k, v in record["unreadable"].items()), file=sys.stderr)
    sys.exit(EXIT_SKIPPED)


if __name__ == "__main__":
  define_flags()
  cli.run(main)
