r"""Evaluates novel-view generation: scenes under several target trajectories, one metrics table.

Examples::

  python -m mvtrack_jax.evaluate --checkpoint out/demo --split test --out out/demo/evaluate
  # MVTrack4Gen vs the diffusion-only baseline trained with the same budget, side by side.
  python -m mvtrack_jax.evaluate --checkpoint out/mvtrack --checkpoint out/baseline \
      --names mvtrack4gen,diffusion_only --split test --out out/compare --steps 50
  # The paper's benchmarks: DAVIS (a folder of mp4s) x the 10 ReCamMaster trajectories, DyCheck iPhone.
  python -m mvtrack_jax.evaluate --checkpoint out/export --videos data/davis_val --pose_method sift \
      --out out/davis
  python -m mvtrack_jax.evaluate --checkpoint out/export --dycheck data/iphone --pose_method sift \
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
points (sampled among the ground-truth points visible in the reference view). Metrics per clip
(docs/design.md §4.6; the table's arrows say which way is better):

- ``psnr`` ↑ / ``ssim`` ↑: against the ground-truth target view (``evaluation.fidelity``).
- ``m_rot_err_deg`` ↓, ``m_trans_err`` ↓, ``m_cam_mc`` ↓: CamI2V errors (per-frame means) of the
  trajectory estimated from the *generated* video (``evaluation.camera``, ``--pose_method``: ``flow``
  Lucas–Kanade lattice tracks by default, ``sift``/``orb`` matches for large videos; the same
  estimator for every model, so it does not favour a model with a head) against the ground truth;
  ``pose_valid`` the fraction of frames the estimator could solve. The column ``gt_video`` runs the
  same estimator on the ground-truth target video: the floor the estimator itself reaches.
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
evaluated under each ``--trajectories`` preset (default :data:`VIDEO_TRAJECTORIES`: ``pan_right,
pan_left, tilt_up, tilt_down, zoom_in, zoom_out, translate_up, translate_down, arc_left, arc_right``;
``static`` allowed, ``recorded`` is not: there is no second view). Decisions:

- Reading: ``inference.clips.reference_record`` (the ``--reference PATH.mp4`` path of ``generate``), so both
  commands see an mp4 identically: a pinhole camera of ``--fov`` degrees horizontal field of view
  (default 60°, ``geometry.intrinsics_from_fov``, principal point at the image centre) that is
  **static** (identity pose at every frame: a monocular video carries no poses, and this is the
  reference camera the model is conditioned on). The whole file is decoded (DAVIS clips are at most
  ~100 frames); trim long videos beforehand.
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
  generated video against the requested trajectory, exactly as in ``--split``; use ``sift`` at full
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
- Reported: ``psnr``/``ssim`` (``evaluation.fidelity`` on the present frames; full frames, DyCheck's
  co-visibility masks are not applied), the camera metrics against the validation trajectory, the
  epipolar proxy, the learned hook; ``gt_video`` runs the pose estimator and (on its present frames)
  the matched epipolar proxy on the real validation video: the floor of both, and its sub-pixel
  epipolar error on real frames checks the camera conversion.

Shared by ``--videos`` and ``--dycheck``:

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
  ``--videos`` the reference camera is the assumed static one: the unknown own motion of a real
  video's camera biases the proxy.
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

import csv
import io
import json
import math
import os
import sys
import time
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags
import numpy as np
from tqdm import tqdm

from mvtrack_jax import cli
from mvtrack_jax import errors
from mvtrack_jax.data import dycheck as dycheck_lib
from mvtrack_jax.data import preview
from mvtrack_jax.data import sources
from mvtrack_jax.data import video_io
from mvtrack_jax.evaluation import baselines as baselines_lib
from mvtrack_jax.evaluation import clip_metrics
from mvtrack_jax.evaluation import learned
from mvtrack_jax.evaluation import protocol_clips
from mvtrack_jax.evaluation import report
from mvtrack_jax.geometry import trajectories
from mvtrack_jax.inference import checkpoint as checkpoint_lib
from mvtrack_jax.inference import novel_view
from mvtrack_jax.models import autoencoder as ae_lib

EXIT_SKIPPED = 3  # finished, metrics written, but some --videos could not be used (listed on stderr)
DEFAULT_TRAJECTORIES = (protocol_clips.RECORDED, "pan_right", "zoom_in", "arc_left", "translate_up")
# ReCamMaster's ten preset trajectories: the --videos (DAVIS) protocol's default.
VIDEO_TRAJECTORIES = tuple(name for name in trajectories.TRAJECTORY_NAMES if name != "static")
PROTOCOLS = ("split", "videos", "dycheck")
# Data settings two models must share to be compared on the same clips.
SPLIT_DATA_KEYS = ("dataset", "synthetic", "data_dir", "num_frames", "frame_stride", "height", "width")
PROTOCOL_DATA_KEYS = ("num_frames", "frame_stride", "height", "width")
GT_VIDEO = "gt_video"
RESERVED_NAMES = baselines_lib.BASELINES + (GT_VIDEO,)

FLAGS = flags.FLAGS


# ------------------------------------------------------------------------------------------------
# The --videos and --dycheck protocols (module docstring).


def _load_models(out: str, checkpoints: Sequence[str], names: Sequence[str] | None, data_keys: Sequence[str]):
  """``(models, labels)``: the loaded checkpoints and their column names, checked (see :func:`run`),
  after checking that ``--out`` can be written (so a bad one fails before any model is loaded)."""
  if not checkpoints:
    raise ValueError("evaluate: give at least one --checkpoint")
  video_io.check_output_dir(out)
  models = [checkpoint_lib.load_model(c) for c in checkpoints]
  labels = list(names) if names else [m.name for m in models]
  if len(labels) != len(models) or len(set(labels)) != len(labels):
    raise errors.UserError(f"--names {labels}: need {len(models)} distinct names, one per --checkpoint")
  reserved = [label for label in labels if label in RESERVED_NAMES]
  if reserved:
    raise errors.UserError(f"--names {labels}: {reserved} reserved for the baseline / ground-truth columns "
                           f"({', '.join(RESERVED_NAMES)}); choose other names")
  data0 = models[0].config.data
  for model in models[1:]:
    for key in data_keys:
      if model.config.data.get(key) != data0.get(key):
        raise ValueError(f"evaluate: {model.source} has data.{key}={model.config.data.get(key)!r} but "
                         f"{models[0].source} has {data0.get(key)!r}; compare models trained on the same data")
  return models, labels


def _protocol_scene_rows(scene: str, clips: Sequence[tuple[str, Mapping[str, np.ndarray]]], models, labels, generators,
                         sampling, *, pose_method: str, batch_size: int, frames_per_latent: int, baselines: bool,
                         save_videos: bool, out: str) -> list[dict[str, Any]]:
  """The ``metrics.json`` rows of one protocol scene: ground truth, baselines, then every model.

  ``gt_video`` (clips with a ``target_video``): the pose estimator on the ground truth and the matched
  epipolar proxy on its *present* track frames (a filled frame shows another instant than the
  reference frame it would be matched with). Models generate ``batch_size`` clips per batch; head
  models add the head's epipolar proxy (:func:`epipolar_metrics` of its reference↔target tracks).
  """
  num_frames = clips[0][1]["reference_video"].shape[0]
  frames = ae_lib.latent_frame_indices(num_frames, frames_per_latent)
  rows = []
  for name, clip in clips:
    if "target_video" in clip:
      metrics = clip_metrics.camera_metrics(clip["target_video"], clip, pose_method)
      real = frames[np.asarray(clip["present"], bool)[frames]]
      metrics.update(clip_metrics.matched_epipolar_metrics(clip["target_video"], clip, real, pose_method))
      rows.append({"model": GT_VIDEO, "scene": scene, "trajectory": name, "metrics": metrics})
    if baselines:
      rows.extend({"model": baseline, "scene": scene, "trajectory": name,
                   "metrics": clip_metrics.protocol_metrics(video, clip, pose_method, frames)}
                  for baseline, video in baselines_lib.baseline_videos(clip).items())
  keys = novel_view.CLIP_KEYS + ("query_points",)
  for label, model, generator in zip(labels, models, generators):
    for i in range(0, len(clips), batch_size):
      chunk = clips[i:i + batch_size]
      batch = {key: np.stack([clip[key] for _, clip in chunk]) for key in keys}
      generated = generator.generate(batch, sampling)["target_video"]
      tracked = generator.track(batch, generated, sampling) if model.head is not None else None
      for b, (name, clip) in enumerate(chunk):
        metrics = clip_metrics.protocol_metrics(generated[b], clip, pose_method, frames)
        if tracked is not None:
          tracks, visible = tracked["tracks"][b], tracked["visible"][b]
          metrics.update(clip_metrics.epipolar_metrics(tracks[0], tracks[1], visible[0] & visible[1], clip,
                                                       tracked["frames"]))
        rows.append({"model": label, "scene": scene, "trajectory": name, "metrics": metrics})
        if save_videos:
          panels = [clip["reference_video"], generated[b]] + ([clip["target_video"]] if "target_video" in clip else [])
          scale = preview.upscale_factor(generated.shape[2], 128)
          video_io.write_video(os.path.join(out, "videos", label, f"{scene}_{name}.mp4"),
                               preview.side_by_side_video(np.stack(panels), scale))
  return rows


def _run_protocol(protocol: str, models, labels, out: str, scenes, num_scenes: int, settings: Mapping[str, Any], *,
                  steps: int, cfg: float, seed: int, pose_method: str, grid: int, batch_size: int,
                  frames_per_latent: int, save_videos: bool, baselines: bool, progress: bool,
                  started: float) -> dict[str, Any]:
  """Evaluates protocol scenes and writes ``metrics.json``, ``metrics.md`` and ``per_clip.csv`` into ``out``.

  Args:
    protocol: ``"videos"`` or ``"dycheck"`` (``metrics.json`` ``protocol``; the table header).
    models, labels: :func:`_load_models`' loaded models and column names.
    out: output directory.
    scenes: iterable of ``(scene name, [(trajectory name, clip)], info)``, consumed lazily (one scene's
      frames in memory at a time); ``info`` is stored under ``scenes`` in ``metrics.json``; a scene
      without clips (every DyCheck validation camera skipped) adds no row.
    num_scenes: for the progress bar.
    settings: protocol settings merged into ``metrics.json`` (``videos``/``fov``, ``dycheck``/``scales``).
    steps, cfg, seed: sampler settings; grid, batch_size, frames_per_latent, pose_method: as
      :func:`run_videos`; save_videos, baselines, progress: as :func:`run`; started: ``time.time()``
      at the start of the command.

  Returns:
    The ``metrics.json`` record.

  Raises:
    ValueError: two scenes with one name, or no clip at all.
  """
  generators = [novel_view.NovelViewGenerator(m, image_encoder=novel_view.image_encoder_for(m)) for m in models]
  sampling = novel_view.SamplingConfig(num_steps=steps, guidance_scale=cfg, seed=seed)
  if progress:
    scenes = tqdm(scenes, total=num_scenes, desc="scenes", unit="scene")
  rows, infos, order = [], {}, []
  for scene, clips, info in scenes:
    if scene in infos:
      raise ValueError(f"evaluate --{protocol}: two scenes are named {scene!r} ({infos[scene]['source']}, "
                       f"{info['source']}); rename one")
    infos[scene] = info
    if not clips:
      continue
    rows.extend(_protocol_scene_rows(scene, clips, models, labels, generators, sampling, pose_method=pose_method,
                                     batch_size=batch_size, frames_per_latent=frames_per_latent,
                                     baselines=baselines, save_videos=save_videos, out=out))
    order.extend(name for name, _ in clips if name not in order)
  if not rows:
    raise ValueError(f"evaluate --{protocol}: nothing to evaluate: no scene has a clip "
                     f"({ {k: v.get('skipped_cameras') for k, v in infos.items()} })")
  summary = report.summarize(rows)
  columns = (labels + [c for c in baselines_lib.VIDEO_BASELINES if c in summary]
             + ([GT_VIDEO] if GT_VIDEO in summary else []))
  data = models[0].config.data
  record = {
      "protocol": protocol,
      "checkpoints": {label: {"source": m.source, "step": m.step} for label, m in zip(labels, models)},
      "baselines": [c for c in baselines_lib.VIDEO_BASELINES if c in summary], **settings,
      "num_scenes": len(infos), "scenes": infos, "trajectories": order,
      "skipped": {k: v["skipped_cameras"] for k, v in infos.items() if v.get("skipped_cameras")},
      "unreadable": {k: v["error"] for k, v in infos.items() if v.get("error")},
      "steps": steps, "guidance_scale": cfg, "seed": seed, "batch_size": batch_size, "pose_method": pose_method,
      "grid": grid, "frames_per_latent": frames_per_latent,
      "resolution": [int(data.num_frames), int(data.height), int(data.width)],
      "seconds": round(time.time() - started, 1), "summary": summary, "rows": rows}
  what = {"videos": f"`{settings.get('videos')}`: {len(infos)} videos × {len(order)} trajectories (static "
                    f"{settings.get('fov')}° pinhole reference camera)",
          "dycheck": f"DyCheck `{settings.get('dycheck')}`: {len(infos)} sequences, one clip per validation camera "
                     f"(rgb scale {settings.get('scales')})"}[protocol]
  header = (f"# Novel-view evaluation, {what}\n\n"
            f"{steps} Euler steps, CFG {cfg}, seed {seed} (batch {batch_size}), poses and matched epipolar proxy "
            f"from `{pose_method}` correspondences; models: "
            + ", ".join(f"`{label}` = {m.source} (step {m.step})" for label, m in zip(labels, models))
            + (f"; baselines without a model: {baselines_lib.described(baselines_lib.VIDEO_BASELINES)}"
               if baselines else "")
            + (f"; `{GT_VIDEO}` = the pose estimator and matched proxy on the ground-truth target video"
               if GT_VIDEO in columns else "") + ".")
  if record["unreadable"]:
    header += "\n\nSkipped, could not be used: " + "; ".join(f"`{k}` ({v})" for k, v in record["unreadable"].items())
  _write_outputs(out, record, columns, order, header)
  return record


def run_videos(checkpoints: Sequence[str], out: str, videos: str, *, names: Sequence[str] | None = None,
               trajectory_names: Sequence[str] = VIDEO_TRAJECTORIES, max_scenes: int | None = None, steps: int = 50,
               cfg: float = 5.0, seed: int = 0, pose_method: str = "flow", fov: float = 60.0, grid: int = 8,
               batch_size: int = 1, save_videos: bool = False, baselines: bool = True,
               progress: bool = True) -> dict[str, Any]:
  """The ``--videos DIR`` protocol (module docstring); returns the ``metrics.json`` record.

  A video that cannot be used (unreadable, corrupt, empty, shorter than one latent frame) is skipped, its
  cause recorded under ``unreadable`` in ``metrics.json`` and listed in ``metrics.md``; the others are
  evaluated as usual (the command then exits with ``EXIT_SKIPPED``).

  Raises:
    ValueError: a trajectory that is not a preset, bad ``--names``/checkpoints (:func:`run`), a
      non-positive ``batch_size``/``grid``, a video too short; FileNotFoundError: no mp4 in ``videos``.
  """
  started = time.time()
  trajectory_names = list(trajectory_names)
  bad = [n for n in trajectory_names if n not in trajectories.TRAJECTORY_NAMES]
  if bad or not trajectory_names:
    raise errors.UserError(f"--trajectories {trajectory_names}: --videos takes preset trajectories "
                           f"({', '.join(trajectories.TRAJECTORY_NAMES)}); {bad} are not presets"
                           + (f" ('{protocol_clips.RECORDED}' needs a second recorded view)"
                              if protocol_clips.RECORDED in bad else ""))
  if batch_size < 1 or grid < 1:
    raise ValueError(f"evaluate: --batch_size and --grid must be >= 1, got {batch_size}, {grid}")
  paths = protocol_clips.list_videos(videos)[:max_scenes]
  models, labels = _load_models(out, checkpoints, names, PROTOCOL_DATA_KEYS)
  k = math.lcm(*(m.autoencoder.temporal_factor for m in models))

  def scenes():
    for path in paths:
      name = os.path.splitext(os.path.basename(path))[0]
      try:
        clips, info = protocol_clips.video_clips(path, models[0].config, trajectory_names, frames_per_latent=k,
                                                 fov=fov, grid=grid)
      except (video_io.VideoError, ValueError) as e:  # corrupt, empty, too short: the others are still evaluated
        yield name, [], {"source": path, "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"}
        continue
      yield name, list(zip(trajectory_names, clips)), info

  settings = {"videos": os.path.abspath(videos), "fov": fov}
  return _run_protocol("videos", models, labels, out, scenes(), len(paths), settings, steps=steps, cfg=cfg, seed=seed,
                       pose_method=pose_method, grid=grid, batch_size=batch_size, frames_per_latent=k,
                       save_videos=save_videos, baselines=baselines, progress=progress, started=started)


def run_dycheck(checkpoints: Sequence[str], out: str, dycheck: str, *, names: Sequence[str] | None = None,
                scale: int | None = None, max_scenes: int | None = None, steps: int = 50, cfg: float = 5.0,
                seed: int = 0, pose_method: str = "flow", grid: int = 8, batch_size: int = 1,
                save_videos: bool = False, baselines: bool = True, progress: bool = True) -> dict[str, Any]:
  """The ``--dycheck DIR`` protocol (module docstring); returns the ``metrics.json`` record.

  Raises:
    ValueError: bad ``--names``/checkpoints (:func:`run`), a non-positive ``batch_size``/``grid``, a
      sequence too short or without validation camera, no clip at all; FileNotFoundError: no
      sequence under ``dycheck``; schema.RecordError: bad DyCheck files (naming file and field).
  """
  started = time.time()
  if batch_size < 1 or grid < 1:
    raise ValueError(f"evaluate: --batch_size and --grid must be >= 1, got {batch_size}, {grid}")
  sequences = [dycheck_lib.open_sequence(p, scale=scale) for p in dycheck_lib.find_sequences(dycheck)[:max_scenes]]
  models, labels = _load_models(out, checkpoints, names, PROTOCOL_DATA_KEYS)
  k = math.lcm(*(m.autoencoder.temporal_factor for m in models))

  def scenes():
    for sequence in sequences:
      clips, info = protocol_clips.dycheck_clips(sequence, models[0].config, frames_per_latent=k, grid=grid)
      yield sequence.name, clips, info

  settings = {"dycheck": os.path.abspath(dycheck), "scales": sorted({s.scale for s in sequences})}
  return _run_protocol("dycheck", models, labels, out, scenes(), len(sequences), settings, steps=steps, cfg=cfg,
                       seed=seed, pose_method=pose_method, grid=grid, batch_size=batch_size, frames_per_latent=k,
                       save_videos=save_videos, baselines=baselines, progress=progress, started=started)


def _write_text(path: str, text: str) -> None:
  with video_io.atomic_output(path) as tmp:
    with open(tmp, "w") as f:
      f.write(text)


# ------------------------------------------------------------------------------------------------
# The run.


def run(checkpoints: Sequence[str], out: str, *, names: Sequence[str] | None = None, split: str = "test",
        trajectory_names: Sequence[str] = DEFAULT_TRAJECTORIES, max_scenes: int | None = None, steps: int = 50,
        cfg: float = 5.0, seed: int = 0, pose_method: str = "flow", save_videos: bool = False,
        baselines: bool = True, progress: bool = True) -> dict[str, Any]:
  """The command (module docstring); returns the ``metrics.json`` record.

  ``baselines``: add the model-free columns ``copy_reference``, ``mean_colour`` and ``zero_motion``
  (rows with those ``"model"`` names in ``metrics.json``, entries in its ``summary``).

  Raises:
    ValueError: no checkpoint, names of the wrong length or reserved (:data:`RESERVED_NAMES`),
      models with different data settings, or bad trajectories.
  """
  started = time.time()
  models, labels = _load_models(out, checkpoints, names, SPLIT_DATA_KEYS)
  data0 = models[0].config.data
  trajectory_names = list(trajectory_names)
  num_scenes = len(sources.data_source(data0, split))
  if max_scenes is not None:
    num_scenes = min(num_scenes, max_scenes)
  generators = [novel_view.NovelViewGenerator(m, image_encoder=novel_view.image_encoder_for(m)) for m in models]
  # zero_motion is scored at the track frames of a head model (NovelViewGenerator.track's "frames").
  track_model = next((m for m in models if m.head is not None), models[0])
  track_frames = ae_lib.latent_frame_indices(int(data0.num_frames), track_model.autoencoder.temporal_factor)
  sampling = novel_view.SamplingConfig(num_steps=steps, guidance_scale=cfg, seed=seed)
  rows = []
  scenes = range(num_scenes)
  if progress:
    scenes = tqdm(scenes, desc="scenes", unit="scene")
  for index in scenes:
    clips = protocol_clips.scene_clips(models[0].config, split, index, trajectory_names)
    batch = {key: np.stack([c[key] for c in clips]) for key in clips[0]}
    for name, clip in zip(trajectory_names, clips):
      rows.append({"model": GT_VIDEO, "scene": index, "trajectory": name,
                   "metrics": clip_metrics.camera_metrics(clip["target_video"], clip, pose_method)})
      if baselines:
        rows.extend(baselines_lib.baseline_rows(clip, index, name, track_frames, pose_method))
    for label, model, generator in zip(labels, models, generators):
      generated = generator.generate(batch, sampling)["target_video"]
      tracked = generator.track(batch, generated, sampling) if model.head is not None else None
      for b, (name, clip) in enumerate(zip(trajectory_names, clips)):
        metrics = clip_metrics.prediction_metrics(generated[b], clip, pose_method)
        if tracked is not None and clip["track_mask"].any():
          tracked_b = {k: v[b] if k != "frames" else v for k, v in tracked.items()}
          metrics.update(clip_metrics.tracking_metrics(clip, tracked_b))
        rows.append({"model": label, "scene": index, "trajectory": name, "metrics": metrics})
        if save_videos:
          scale = preview.upscale_factor(generated.shape[2], 128)
          panels = preview.side_by_side_video(
              np.stack([clip["reference_video"], generated[b], clip["target_video"]]), scale)
          video_io.write_video(os.path.join(out, "videos", label, f"scene{index}_{name}.mp4"), panels)
  summary = report.summarize(rows)
  columns = labels + (list(baselines_lib.BASELINES) if baselines else []) + [GT_VIDEO]
  # zero_motion only where a clip had tracks
  columns = [c for c in columns if c != baselines_lib.ZERO_MOTION or c in summary]
  record = {
      "protocol": "split",
      "checkpoints": {label: {"source": m.source, "step": m.step} for label, m in zip(labels, models)},
      "baselines": [c for c in baselines_lib.BASELINES if c in columns],
      "zero_motion_frames": [int(f) for f in track_frames] if baselines_lib.ZERO_MOTION in columns else None,
      "split": split, "num_scenes": num_scenes, "trajectories": trajectory_names, "steps": steps,
      "guidance_scale": cfg, "seed": seed, "pose_method": pose_method,
      "resolution": [int(data0.num_frames), int(data0.height), int(data0.width)],
      "seconds": round(time.time() - started, 1), "summary": summary, "rows": rows}
  header = (f"# Novel-view evaluation: split `{split}`, {num_scenes} scenes × {len(trajectory_names)} trajectories\n\n"
            f"{steps} Euler steps, CFG {cfg}, seed {seed}, poses from `{pose_method}` tracks; models: "
            + ", ".join(f"`{label}` = {m.source} (step {m.step})" for label, m in zip(labels, models))
            + (f"; baselines without a model: {baselines_lib.described(baselines_lib.BASELINES, track_frames)}"
               if baselines else "")
            + f"; `{GT_VIDEO}` = the pose estimator on the ground-truth target video.")
  _write_outputs(out, record, columns, trajectory_names, header)
  return record


def _write_outputs(out: str, record: Mapping[str, Any], columns: Sequence[str], trajectory_names: Sequence[str],
                   header: str) -> None:
  """Writes ``metrics.json`` (``record``), ``metrics.md`` (tables of ``record["summary"]``) and ``per_clip.csv``."""
  os.makedirs(out, exist_ok=True)
  _write_text(os.path.join(out, "metrics.json"), json.dumps(record, indent=2, allow_nan=True))
  _write_text(os.path.join(out, "metrics.md"),
              report.markdown_tables(record["summary"], columns, trajectory_names, header))
  rows = record["rows"]
  keys = sorted({k for row in rows for k in row["metrics"]})
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(["model", "scene", "trajectory"] + keys)
  for row in rows:
    writer.writerow([row["model"], row["scene"], row["trajectory"]] + [row["metrics"].get(k, "") for k in keys])
  _write_text(os.path.join(out, "per_clip.csv"), buffer.getvalue())


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so importing this module defines none)."""
  flags.DEFINE_multi_string("checkpoint", None, "Export dir or training workdir; repeat to compare.")
  flags.DEFINE_list("names", None, "Column names of the checkpoints (default: config name@step).")
  flags.DEFINE_string("split", "test", "Dataset split.")
  flags.DEFINE_string("out", None, "Output directory.")
  flags.DEFINE_list("trajectories", None,
                    f"'{protocol_clips.RECORDED}' and/or presets: {', '.join(trajectories.TRAJECTORY_NAMES)} (default: "
                    f"{','.join(DEFAULT_TRAJECTORIES)} for --split, the ten presets for --videos; not with --dycheck).")
  flags.DEFINE_string("videos", None, "Protocol: a folder of mp4 reference videos (DAVIS) x preset trajectories.")
  flags.DEFINE_string("dycheck", None, "Protocol: a DyCheck iPhone sequence folder, or a folder of them.")
  flags.DEFINE_float("fov", 60.0, "--videos: horizontal field of view (degrees) of the mp4s' pinhole camera.")
  flags.DEFINE_integer("dycheck_scale", None, "--dycheck: read rgb/<s>x (default: the highest resolution present).")
  flags.DEFINE_integer("grid", 8, "--videos/--dycheck: the head's query points, a grid x grid lattice at frame 0.")
  flags.DEFINE_integer("batch_size", 1,
                       "--videos/--dycheck: clips per generation batch (1: the same noise for every clip).")
  flags.DEFINE_integer("max_scenes", None, "Evaluate the first N scenes (videos, sequences) only.")
  flags.DEFINE_integer("steps", 50, "Euler steps.")
  flags.DEFINE_float("cfg", 5.0, "Classifier-free guidance scale (needs a text context to matter).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_enum("pose_method", "flow", ["flow", "sift", "orb"], "Pose estimator correspondences.")
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
  common = dict(names=FLAGS.names, max_scenes=FLAGS.max_scenes, steps=FLAGS.steps, cfg=FLAGS.cfg, seed=FLAGS.seed,
                pose_method=FLAGS.pose_method, save_videos=FLAGS.save_videos, baselines=FLAGS.baselines)
  if FLAGS.videos:
    record = run_videos(FLAGS.checkpoint, FLAGS.out, FLAGS.videos, trajectory_names=FLAGS.trajectories or
                        VIDEO_TRAJECTORIES, fov=FLAGS.fov, grid=FLAGS.grid, batch_size=FLAGS.batch_size, **common)
  elif FLAGS.dycheck:
    record = run_dycheck(FLAGS.checkpoint, FLAGS.out, FLAGS.dycheck, scale=FLAGS.dycheck_scale, grid=FLAGS.grid,
                         batch_size=FLAGS.batch_size, **common)
  else:
    record = run(FLAGS.checkpoint, FLAGS.out, split=FLAGS.split,
                 trajectory_names=FLAGS.trajectories or DEFAULT_TRAJECTORIES, **common)
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
