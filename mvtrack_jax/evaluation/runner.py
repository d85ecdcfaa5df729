"""Runs the evaluation protocols: models × scenes × trajectories → ``metrics.json``, ``metrics.md``, per-clip CSV.

The three protocols of ``python -m mvtrack_jax.evaluate`` (its docstring describes them and every metric;
docs/evaluation.md the choices): :func:`run` (the model's own ``--split``, ground truth re-rendered),
:func:`run_videos` (a folder of mp4s, DAVIS) and :func:`run_dycheck` (DyCheck iPhone). Clips come from
``protocol_clips``, metrics from ``clip_metrics``, the model-free columns from ``baselines``, the tables from
``report``; the models are ``inference.novel_view.NovelViewPipeline`` objects. ``compare`` runs :func:`run`
too.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from mvtrack_jax import drawing
from mvtrack_jax import errors
from mvtrack_jax.data import captions as captions_lib
from mvtrack_jax.data import dycheck as dycheck_lib
from mvtrack_jax.data import readers
from mvtrack_jax.data import sources
from mvtrack_jax.data import video_io
from mvtrack_jax.evaluation import baselines as baselines_lib
from mvtrack_jax.evaluation import clip_metrics
from mvtrack_jax.evaluation import drift
from mvtrack_jax.evaluation import learned
from mvtrack_jax.evaluation import protocol_clips
from mvtrack_jax.evaluation import report
from mvtrack_jax.geometry import trajectories
from mvtrack_jax.inference import novel_view
from mvtrack_jax.models import autoencoder as ae_lib

DEFAULT_TRAJECTORIES = (protocol_clips.RECORDED, "pan_right", "zoom_in", "arc_left", "translate_up")
# ReCamMaster's ten released trajectories (cam01 … cam10, constant speed, resampled as ReDirector does): the --videos
# (DAVIS) protocol's default, as in both papers.
VIDEO_TRAJECTORIES = trajectories.RECAMMASTER_NAMES
PROTOCOLS = ("split", "videos", "dycheck")
# Data settings two models must share to be compared on the same clips.
SPLIT_DATA_KEYS = ("dataset", "synthetic", "data_dir", "num_frames", "frame_stride", "height", "width")
PROTOCOL_DATA_KEYS = ("num_frames", "frame_stride", "height", "width")
GT_VIDEO = "gt_video"
# What MVTrack4Gen / ReDirector report on DAVIS that needs learned weights (evaluation.learned names).
PAPER_VIDEO_METRICS = ("met3r", "vbench_subject_consistency", "vbench_imaging_quality", "vbench_motion_smoothness",
                       "lpips")
RESERVED_NAMES = baselines_lib.BASELINES + (GT_VIDEO,)
# metrics.json "camera_assumption" of a --videos run without any per-video camera file (F4 of the fidelity review).
STATIC_CAMERAS = "static-camera assumption"

# ------------------------------------------------------------------------------------------------
# The --videos and --dycheck protocols (module docstring).


Checkpoints = Sequence[str | novel_view.NovelViewPipeline]


@dataclasses.dataclass(frozen=True)
class TextOptions:
  """The text conditioning of an evaluation, as the reference inference scripts sample (captions, CFG 5, Wan's
  negative prompt; ``inference.novel_view.NovelViewPipeline.guidance`` resolves each model's two branches).

  Attributes:
    prompt: ``--prompt``: the caption of every clip without one of its own (None: the null context).
    captions: ``--captions``: a ReCamMaster ``metadata.csv`` (``data.captions``) captioning the ``--videos`` files
      by name and the ``--dycheck`` sequences by folder; None: none.
    negative_prompt: ``--negative_prompt``: None = Wan's standard negative prompt for a model trained with text,
      ``""`` the empty prompt.
    text_encoder: ``--text_encoder``: the umT5 folder that embeds prompts (default: each model's ``text.encoder``).
  """

  prompt: str | None = None
  captions: str | None = None
  negative_prompt: str | None = None
  text_encoder: str | None = None
  rows: Mapping[tuple[str, ...], str] | None = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):  # read (and checked) once, when the command starts
    object.__setattr__(self, "rows", None if self.captions is None else captions_lib.read_captions(self.captions))

  def caption(self, name: str | None) -> str | None:
    """The caption of the clip source ``name`` (a video path, a sequence folder; None: no name to match)."""
    found = None if self.rows is None or name is None else captions_lib.caption_for(self.rows, name)
    return self.prompt if found is None else found

  def record(self) -> dict[str, Any]:
    return {"prompt": self.prompt, "captions": None if self.captions is None else os.path.abspath(self.captions),
            "negative_prompt": self.negative_prompt}


def _check_labels(labels: list[str], num_models: int) -> None:
  if len(labels) != num_models or len(set(labels)) != len(labels):
    raise errors.UserError(f"--names {labels}: need {num_models} distinct names, one per --checkpoint")
  reserved = [label for label in labels if label in RESERVED_NAMES]
  if reserved:
    raise errors.UserError(f"--names {labels}: {reserved} reserved for the baseline / ground-truth columns "
                           f"({', '.join(RESERVED_NAMES)}); choose other names")


def _load_models(out: str, checkpoints: Checkpoints, names: Sequence[str] | None, data_keys: Sequence[str],
                 text: TextOptions):
  """``(models, labels)``: the checkpoints as pipelines (paths are loaded, pipelines kept) and their column
  names, checked (see :func:`run`), after checking that ``--out`` can be written (so a bad one fails before
  any model is loaded)."""
  if not checkpoints:
    raise ValueError("evaluate: give at least one --checkpoint")
  video_io.check_output_dir(out)
  if names:  # given names are checked before loading; default names (the models' own) after
    _check_labels(list(names), len(checkpoints))
  models = [c if isinstance(c, novel_view.NovelViewPipeline)
            else novel_view.NovelViewPipeline.from_checkpoint(c, text_encoder=text.text_encoder) for c in checkpoints]
  labels = list(names) if names else [m.name for m in models]
  _check_labels(labels, len(models))
  data0 = models[0].config.data
  for model in models[1:]:
    for key in data_keys:
      if model.config.data.get(key) != data0.get(key):
        raise ValueError(f"evaluate: {model.source} has data.{key}={model.config.data.get(key)!r} but "
                         f"{models[0].source} has {data0.get(key)!r}; compare models trained on the same data")
  return models, labels


@dataclasses.dataclass(frozen=True)
class _Scoring:
  """How a protocol scores one clip. ``reference_rows(scene, trajectory, clip)``: the rows needing no model (the
  ground truth and the baselines); ``model_metrics(video, clip, tracked, pose_file)``: a generated video's metrics,
  with the head's ``tracked`` output for this clip (``NovelViewPipeline.track``, batch index taken) or None, and its
  poses from ``pose_file`` (``--poses``) or None (the estimator)."""

  reference_rows: Callable[[Any, str, Mapping[str, np.ndarray]], list[dict[str, Any]]]
  model_metrics: Callable[[np.ndarray, Mapping[str, np.ndarray], Mapping[str, np.ndarray] | None, str | None],
                          dict[str, Any]]


def _split_scoring(pose_method: str, baselines: bool, track_frames: np.ndarray) -> _Scoring:
  """The synthetic split: the ground truth's camera and drift metrics, the baselines scored as models, and every model
  against the true target video (``clip_metrics.prediction_metrics``) and true tracks (``tracking_metrics``)."""
  def reference_rows(scene, name, clip):
    # The ground truth's own camera errors (the estimator's floor) and drift (what a perfect video scores).
    rows = [{"model": GT_VIDEO, "scene": scene, "trajectory": name,
             "metrics": clip_metrics.camera_metrics(clip["target_video"], clip, pose_method)
                        | drift.drift_metrics(clip["target_video"], clip)}]
    if baselines:
      rows.extend(baselines_lib.baseline_rows(clip, scene, name, track_frames, pose_method))
    return rows

  def model_metrics(video, clip, tracked, pose_file):
    metrics = clip_metrics.prediction_metrics(video, clip, pose_method, pose_file)
    if tracked is not None and clip["track_mask"].any():
      metrics.update(clip_metrics.tracking_metrics(clip, tracked))
    return metrics

  return _Scoring(reference_rows, model_metrics)


def _proxy_scoring(pose_method: str, baselines: bool, frames: np.ndarray) -> _Scoring:
  """The video protocols (no true target for most clips): ``gt_video`` (clips with a ``target_video``) is the pose
  estimator on the ground truth and the matched epipolar proxy on its *present* track frames (a filled frame shows
  another instant than the reference frame it would be matched with); baselines and models get the proxies
  (``clip_metrics.protocol_metrics``), head models also the head's epipolar proxy (its reference↔target tracks)."""
  def reference_rows(scene, name, clip):
    rows = []
    if "target_video" in clip:
      metrics = clip_metrics.camera_metrics(clip["target_video"], clip, pose_method)
      real = frames[np.asarray(clip["present"], bool)[frames]]
      metrics.update(clip_metrics.matched_epipolar_metrics(clip["target_video"], clip, real, pose_method))
      rows.append({"model": GT_VIDEO, "scene": scene, "trajectory": name, "metrics": metrics})
    if baselines:
      rows.extend({"model": baseline, "scene": scene, "trajectory": name,
                   "metrics": clip_metrics.protocol_metrics(video, clip, pose_method, frames)}
                  for baseline, video in baselines_lib.baseline_videos(clip).items())
    return rows

  def model_metrics(video, clip, tracked, pose_file):
    metrics = clip_metrics.protocol_metrics(video, clip, pose_method, frames, pose_file)
    if tracked is not None:
      tracks, visible = tracked["tracks"], tracked["visible"]
      metrics.update(clip_metrics.epipolar_metrics(tracks[0], tracks[1], visible[0] & visible[1], clip,
                                                   tracked["frames"]))
    return metrics

  return _Scoring(reference_rows, model_metrics)


def _scene_rows(scene, stem: str, clips: Sequence[tuple[str, Mapping[str, np.ndarray]]], models, labels, sampling,
                scoring: _Scoring, *, text: TextOptions, caption: str | None, batch_size: int, save_videos: bool,
                out: str, poses: str | None = None) -> list[dict[str, Any]]:
  """The ``metrics.json`` rows of one scene of any protocol: the rows needing no model, then every model's,
  ``batch_size`` clips per generation, each model guided by ``caption`` and ``text``'s negative branch; with
  ``save_videos`` each model's clip is written as ``out/videos/<label>/<stem>_<trajectory>.mp4`` (reference |
  generated [| ground truth]) and the generated video alone, at the model's resolution, as
  ``<stem>_<trajectory>.generated.mp4`` (what a pose estimator run elsewhere reads); with ``poses``
  (``--poses DIR``) a model's camera columns come from ``DIR/<label>/<stem>_<trajectory>.npz``
  (``clip_metrics.pose_file_metrics``; every file of the scene is checked before anything is generated) and its
  estimator is not run."""
  pose_files = {}
  if poses is not None:
    pose_files = {(label, name): os.path.join(poses, label, f"{stem}_{name}.npz") for label in labels
                  for name, _ in clips}
    missing = sorted(p for p in pose_files.values() if not os.path.isfile(p))
    if missing:
      raise errors.UserError(f"--poses {poses}: no camera file for {len(missing)} generated video(s) of scene "
                             f"{stem}, e.g. {missing[0]} (one per model, scene and trajectory, named as "
                             "--save_videos names the videos)")
  rows = []
  for name, clip in clips:
    rows.extend(scoring.reference_rows(scene, name, clip))
  keys = novel_view.CLIP_KEYS + ("query_points",)
  for label, model in zip(labels, models):
    guidance = model.guidance(sampling, prompt=caption, negative_prompt=text.negative_prompt)
    for i in range(0, len(clips), batch_size):
      chunk = clips[i:i + batch_size]
      batch = {key: np.stack([clip[key] for _, clip in chunk]) for key in keys}
      generated = model(batch, sampling, guidance=guidance)["target_video"]
      tracked = model.track(batch, generated, sampling) if model.head is not None else None
      for b, (name, clip) in enumerate(chunk):
        tracked_b = None if tracked is None else {k: v if k == "frames" else v[b] for k, v in tracked.items()}
        metrics = scoring.model_metrics(generated[b], clip, tracked_b, pose_files.get((label, name)))
        rows.append({"model": label, "scene": scene, "trajectory": name, "metrics": metrics})
        if save_videos:
          panels = [clip["reference_video"], generated[b]] + ([clip["target_video"]] if "target_video" in clip else [])
          scale = drawing.upscale_factor(generated.shape[2], 128)
          video_io.write_video(os.path.join(out, "videos", label, f"{stem}_{name}.mp4"),
                               drawing.side_by_side_video(np.stack(panels), scale))
          video_io.write_video(os.path.join(out, "videos", label, f"{stem}_{name}.generated.mp4"), generated[b])
  return rows


_NEGATIVES = {"wan": "negative: Wan's standard negative prompt", "empty": "negative: the empty prompt",
              "given": "negative: the given negative prompt", "none": "negative: zeros (a model without text)",
              "unused": ""}


def _resolve_guidance(models, labels, sampling, text: TextOptions, sources: Sequence[str | None]) -> dict[str, Any]:
  """Each model's guidance (``Guidance.record()``) for the captions of ``sources`` (the scenes' paths; None: no name),
  resolved before anything is generated, so a combination that cannot run (an explicit ``--cfg`` where a scene
  without a caption leaves both branches the null context) fails at once. A model whose guidance differs between
  scenes (captioned and uncaptioned ones) gets the list of its distinct records."""
  captions = sorted({text.caption(s) for s in sources} or {text.caption(None)}, key=str)
  out = {}
  for label, model in zip(labels, models):
    records = []
    for caption in captions:
      record = model.guidance(sampling, prompt=caption, negative_prompt=text.negative_prompt).record()
      if record not in records:
        records.append(record)
    out[label] = records[0] if len(records) == 1 else records
  return out


def _guidance_line(guidance: Mapping[str, Any] | list | None) -> str:
  """``CFG 5 (negative: …)`` or ``no guidance`` for a model's ``Guidance.record()`` (a list: it varies by scene)."""
  if isinstance(guidance, list):
    return "guidance varies with the caption: " + " / ".join(_guidance_line(g) for g in guidance)
  if guidance is None:
    return "no clip generated"
  if not guidance["guidance_active"]:
    return "no guidance"
  return f"CFG {guidance['guidance_scale']:g}, {_NEGATIVES[guidance['negative']]}"


def _cameras_line(settings: Mapping[str, Any], infos: Mapping[str, Mapping[str, Any]]) -> str:
  """Where the ``--videos`` reference cameras came from (``settings["camera_assumption"]``), for the header."""
  static = f"static-camera assumption (a static {settings['fov']:g}° pinhole reference camera)"
  files = sum(1 for info in infos.values() if info.get("reference_cameras"))
  return {"camera files": f"reference cameras from each video's `<stem>{readers.CAMERA_FILE_SUFFIX}`",
          STATIC_CAMERAS: static[0].upper() + static[1:],
          "mixed": f"reference cameras from `<stem>{readers.CAMERA_FILE_SUFFIX}` for {files} of {len(infos)} videos, "
                   f"the {static} for the others"}[settings["camera_assumption"]]


def _dycheck_notes(record: Mapping[str, Any], num_sequences: int) -> str:
  """How the DyCheck table scores fidelity (DyCheck's per-frame, co-visibility-masked protocol) and what its camera
  columns measure when the validation cameras are static (F11, F18 of the fidelity review)."""
  masked = len(record["covisible_masks"])
  static, total = record["static_target_cameras"]["static"], record["static_target_cameras"]["cameras"]
  notes = [f"`psnr` / `ssim`: per frame, averaged over the validation camera's present frames, within DyCheck's "
           f"co-visibility masks (its mPSNR / mSSIM) for {masked} of {num_sequences} sequences"
           + (", over full frames for the others (no `covisible/` folder)" if masked < num_sequences else "") + "."]
  if "lpips" not in learned.available_learned_metrics():
    notes.append(f"LPIPS (the papers' third iPhone metric) is not computed: register it with `evaluation.learned` "
                 f"(${learned.ENV_VAR}); it receives the co-visibility mask as `mask=`.")
  if total and static == total:
    notes.append("Every validation camera is static (DyCheck's tripod phones), so the ground-truth target path is "
                 "constant: `m_rot_err_deg` / `m_trans_err` / `m_cam_mc` / `redirector_rot_err_deg` measure how "
                 "static the generated video is, not how it follows a camera path, and `redirector_trans_err` "
                 "divides by a zero path length (ReDirector's 1e-6) and means nothing.")
  elif static:
    notes.append(f"{static} of {total} validation cameras are static: on those the camera columns measure "
                 "staticness.")
  return " ".join(notes)


def _captions_line(text: TextOptions) -> str:
  if text.captions is not None:
    return f"captions from `{text.captions}`" + (f" (else \"{text.prompt}\")" if text.prompt is not None else "")
  return f"prompt \"{text.prompt}\"" if text.prompt is not None else "no captions (the null context)"


def _run_protocol(protocol: str, models, labels, out: str, scenes, num_scenes: int, settings: Mapping[str, Any], *,
                  steps: int, cfg: float | None, text: TextOptions, caption_sources: Sequence[str], seed: int,
                  pose_method: str, poses: str | None, grid: int, batch_size: int,
                  frames_per_latent: int, save_videos: bool, baselines: bool, progress: bool,
                  started: float) -> dict[str, Any]:
  """Evaluates protocol scenes and writes ``metrics.json``, ``metrics.md`` and ``per_clip.csv`` into ``out``.

  Args:
    protocol: ``"videos"`` or ``"dycheck"`` (``metrics.json`` ``protocol``; the table header).
    models, labels: :func:`_load_models`' loaded models and column names.
    out: output directory.
    scenes: iterable of ``(scene name, [(trajectory name, clip)], info)``, consumed lazily (one scene's
      frames in memory at a time); ``info`` is stored under ``scenes`` in ``metrics.json`` (with the scene's
      ``caption``, matched by ``info["source"]``); a scene without clips (every DyCheck validation camera
      skipped) adds no row.
    num_scenes: for the progress bar.
    settings: protocol settings merged into ``metrics.json`` (``videos``/``fov``, ``dycheck``/``scales``).
    steps, cfg, seed: sampler settings (``cfg`` None: each model's default, ``NovelViewPipeline.guidance``);
      text: the captions and negative branch; caption_sources: every scene's source path (its caption's key);
      grid, batch_size, frames_per_latent, pose_method: as
      :func:`run_videos`; save_videos, baselines, progress: as :func:`run`; started: ``time.time()``
      at the start of the command.

  Returns:
    The ``metrics.json`` record.

  Raises:
    ValueError: two scenes with one name, or no clip at all.
  """
  sampling = novel_view.SamplingConfig(num_steps=steps, guidance_scale=cfg, seed=seed)
  if progress:
    scenes = tqdm(scenes, total=num_scenes, desc="scenes", unit="scene")
  guidances = _resolve_guidance(models, labels, sampling, text, caption_sources)
  rows, infos, order = [], {}, []
  for scene, clips, info in scenes:
    if scene in infos:
      raise ValueError(f"evaluate --{protocol}: two scenes are named {scene!r} ({infos[scene]['source']}, "
                       f"{info['source']}); rename one")
    caption = text.caption(info["source"])
    infos[scene] = dict(info, caption=caption)
    if not clips:
      continue
    frames = ae_lib.latent_frame_indices(clips[0][1]["reference_video"].shape[0], frames_per_latent)
    rows.extend(_scene_rows(scene, scene, clips, models, labels, sampling,
                            _proxy_scoring(pose_method, baselines, frames), text=text, caption=caption,
                            batch_size=batch_size, save_videos=save_videos, out=out, poses=poses))
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
      "checkpoints": {label: {"source": m.source, "step": m.step, "guidance": guidances.get(label)}
                      for label, m in zip(labels, models)},
      "baselines": [c for c in baselines_lib.VIDEO_BASELINES if c in summary], **settings,
      "num_scenes": len(infos), "scenes": infos, "trajectories": order,
      "skipped": {k: v["skipped_cameras"] for k, v in infos.items() if v.get("skipped_cameras")},
      "unreadable": {k: v["error"] for k, v in infos.items() if v.get("error")},
      "steps": steps, "cfg": cfg, **text.record(), "seed": seed, "batch_size": batch_size,
      "pose_method": pose_method, "poses": poses, "grid": grid, "frames_per_latent": frames_per_latent,
      "resolution": [int(data.num_frames), int(data.height), int(data.width)],
      "seconds": round(time.time() - started, 1), "summary": summary, "rows": rows}
  if protocol == "videos":
    what = (f"DAVIS protocol (proxies), `{settings['videos']}`: {len(infos)} videos × {len(order)} trajectories "
            f"({_cameras_line(settings, infos)}; trajectories from {settings['trajectory_source']})")
  else:
    what = (f"DyCheck `{settings['dycheck']}`: {len(infos)} sequences, one clip per validation camera "
            f"(rgb scale {settings['scales']})")
    record["covisible_masks"] = sorted(k for k, v in infos.items() if v.get("covisible"))
    static = [c.get("static") for v in infos.values() for c in v.get("cameras", {}).values()]
    record["static_target_cameras"] = {"static": sum(static), "cameras": len(static)}
  header = (f"# Novel-view evaluation, {what}\n\n"
            f"{steps} Euler steps, seed {seed} (batch {batch_size}), {_captions_line(text)}, "
            f"{clip_metrics.pose_estimator(pose_method, poses)}, matched epipolar proxy from "
            f"`{clip_metrics.matcher(pose_method)}` correspondences; models: "
            + ", ".join(f"`{label}` = {m.source} (step {m.step}; {_guidance_line(guidances.get(label))})"
                        for label, m in zip(labels, models))
            + (f"; baselines without a model: {baselines_lib.described(baselines_lib.VIDEO_BASELINES)}"
               if baselines else "")
            + (f"; `{GT_VIDEO}` = the pose estimator and matched proxy on the ground-truth target video"
               if GT_VIDEO in columns else "") + ".")
  if protocol == "dycheck":
    header += "\n\n" + _dycheck_notes(record, len(infos))
  missing = [m for m in PAPER_VIDEO_METRICS if m not in learned.available_learned_metrics()]
  if protocol == "videos" and missing:
    header += (f"\n\nNot computed (the papers' DAVIS metrics): {', '.join(missing)}; register an implementation with "
               f"`evaluation.learned` (${learned.ENV_VAR}) to add its columns. "
               + ("" if pose_method == "colmap" or poses else
                  f"Camera errors come from the two-view `{pose_method}` estimator, not the papers' "
                  "structure-from-motion (`--pose_method colmap` or `--poses DIR`). ")
               + "The epipolar columns are this project's proxies: compare these numbers with each other, not with "
               "the papers' tables.")
  if record["unreadable"]:
    header += "\n\nSkipped, could not be used: " + "; ".join(f"`{k}` ({v})" for k, v in record["unreadable"].items())
  _write_outputs(out, record, columns, order, header)
  return record


def run_videos(checkpoints: Checkpoints, out: str, videos: str, *, names: Sequence[str] | None = None,
               trajectory_names: Sequence[str] = VIDEO_TRAJECTORIES, max_scenes: int | None = None, steps: int = 50,
               cfg: float | None = None, text: TextOptions = TextOptions(), seed: int = 0, pose_method: str = "flow",
               poses: str | None = None, fov: float = 60.0, grid: int = 8, batch_size: int = 1,
               save_videos: bool = False, baselines: bool = True, progress: bool = True,
               trajectories_file: str | None = None) -> dict[str, Any]:
  """The ``--videos DIR`` protocol (module docstring); returns the ``metrics.json`` record.

  ``cfg`` None: each model's default scale (``NovelViewPipeline.guidance``); ``text``: the videos' captions (matched
  by file name) and the negative branch.

  ``trajectories_file``: a ReCamMaster ``camera_extrinsics.json`` (``--trajectories FILE``) whose cameras replace
  ``trajectory_names`` (all of them, by their names in the file; ``geometry.trajectories.read_recammaster_json``).

  A video that cannot be used (unreadable, corrupt, empty, shorter than one latent frame) is skipped, its
  cause recorded under ``unreadable`` in ``metrics.json`` and listed in ``metrics.md``; the others are
  evaluated as usual (``evaluate`` then exits with its ``EXIT_SKIPPED`` code).

  Raises:
    ValueError: a trajectory that is not a preset, bad ``--names``/checkpoints (:func:`run`), a
      non-positive ``batch_size``/``grid``, a video too short; FileNotFoundError: no mp4 in ``videos``.
  """
  started = time.time()
  released = None
  if trajectories_file is not None:
    try:
      released = trajectories.read_recammaster_json(trajectories_file)
    except ValueError as e:
      raise errors.UserError(f"--trajectories {e}") from e
    trajectory_names = list(released)
  trajectory_names = list(trajectory_names)
  bad = [n for n in trajectory_names if n not in trajectories.PRESET_NAMES and n not in (released or {})]
  if bad or not trajectory_names:
    raise errors.UserError(f"--trajectories {trajectory_names}: --videos takes preset trajectories "
                           f"({', '.join(trajectories.PRESET_NAMES)}); {bad} are not presets"
                           + (f" ('{protocol_clips.RECORDED}' needs a second recorded view)"
                              if protocol_clips.RECORDED in bad else ""))
  if batch_size < 1 or grid < 1:
    raise ValueError(f"evaluate: --batch_size and --grid must be >= 1, got {batch_size}, {grid}")
  paths = protocol_clips.list_videos(videos)[:max_scenes]
  camera_files = {p: readers.existing_camera_file(p) for p in paths if readers.existing_camera_file(p)}
  models, labels = _load_models(out, checkpoints, names, PROTOCOL_DATA_KEYS, text)
  clip_metrics.check_pose_method(pose_method, int(models[0].config.data.height), int(models[0].config.data.width))
  k = math.lcm(*(m.autoencoder.temporal_factor for m in models))

  def scenes():
    for path in paths:
      name = os.path.splitext(os.path.basename(path))[0]
      try:
        clips, info = protocol_clips.video_clips(path, models[0].config, trajectory_names, frames_per_latent=k,
                                                 fov=fov, grid=grid, released=released,
                                                 cameras_file=camera_files.get(path))
      except (video_io.VideoError, ValueError) as e:  # corrupt, empty, too short, bad cameras: the others still run
        yield name, [], {"source": path, "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"}
        continue
      yield name, list(zip(trajectory_names, clips)), info

  settings = {"videos": os.path.abspath(videos), "fov": fov,
              "camera_assumption": ("camera files" if len(camera_files) == len(paths) else
                                    STATIC_CAMERAS if not camera_files else "mixed"),
              "trajectory_source": (os.path.abspath(trajectories_file) if trajectories_file else
                                    "geometry.trajectories presets (cam01-cam10: ReCamMaster's released cameras)")}
  return _run_protocol("videos", models, labels, out, scenes(), len(paths), settings, steps=steps, cfg=cfg, text=text,
                       caption_sources=[os.path.abspath(p) for p in paths], seed=seed,
                       pose_method=pose_method, poses=poses, grid=grid, batch_size=batch_size, frames_per_latent=k,
                       save_videos=save_videos, baselines=baselines, progress=progress, started=started)


def run_dycheck(checkpoints: Checkpoints, out: str, dycheck: str, *, names: Sequence[str] | None = None,
                scale: int | None = None, max_scenes: int | None = None, steps: int = 50, cfg: float | None = None,
                text: TextOptions = TextOptions(), seed: int = 0, pose_method: str = "flow", poses: str | None = None,
                grid: int = 8, batch_size: int = 1, save_videos: bool = False, baselines: bool = True,
                progress: bool = True) -> dict[str, Any]:
  """The ``--dycheck DIR`` protocol (module docstring); returns the ``metrics.json`` record. ``cfg``, ``text``: as
  :func:`run_videos` (captions matched by sequence folder).

  Raises:
    ValueError: bad ``--names``/checkpoints (:func:`run`), a non-positive ``batch_size``/``grid``, a
      sequence too short or without validation camera, no clip at all; FileNotFoundError: no
      sequence under ``dycheck``; schema.RecordError: bad DyCheck files (naming file and field).
  """
  started = time.time()
  if batch_size < 1 or grid < 1:
    raise ValueError(f"evaluate: --batch_size and --grid must be >= 1, got {batch_size}, {grid}")
  sequences = [dycheck_lib.open_sequence(p, scale=scale) for p in dycheck_lib.find_sequences(dycheck)[:max_scenes]]
  models, labels = _load_models(out, checkpoints, names, PROTOCOL_DATA_KEYS, text)
  clip_metrics.check_pose_method(pose_method, int(models[0].config.data.height), int(models[0].config.data.width))
  k = math.lcm(*(m.autoencoder.temporal_factor for m in models))

  def scenes():
    for sequence in sequences:
      clips, info = protocol_clips.dycheck_clips(sequence, models[0].config, frames_per_latent=k, grid=grid)
      yield sequence.name, clips, info

  settings = {"dycheck": os.path.abspath(dycheck), "scales": sorted({s.scale for s in sequences})}
  return _run_protocol("dycheck", models, labels, out, scenes(), len(sequences), settings, steps=steps, cfg=cfg, text=text,
                       caption_sources=[os.path.abspath(s.path) for s in sequences],
                       seed=seed, pose_method=pose_method, poses=poses, grid=grid, batch_size=batch_size,
                       frames_per_latent=k,
                       save_videos=save_videos, baselines=baselines, progress=progress, started=started)


def _write_text(path: str, text: str) -> None:
  with video_io.atomic_output(path) as tmp:
    with open(tmp, "w") as f:
      f.write(text)


# ------------------------------------------------------------------------------------------------
# The run.


def run(checkpoints: Checkpoints, out: str, *, names: Sequence[str] | None = None, split: str = "test",
        trajectory_names: Sequence[str] = DEFAULT_TRAJECTORIES, max_scenes: int | None = None, steps: int = 50,
        cfg: float | None = None, text: TextOptions = TextOptions(), seed: int = 0, pose_method: str = "flow",
        poses: str | None = None, save_videos: bool = False, baselines: bool = True,
        progress: bool = True) -> dict[str, Any]:
  """The command (module docstring); returns the ``metrics.json`` record.

  ``cfg``, ``text``: as :func:`run_videos`; the split's clips have no captions of their own (``text.prompt``
  captions every clip; ``text.captions`` is refused).

  ``pose_method``: the camera columns' estimator (``clip_metrics.POSE_METHODS``; ``colmap`` is CamI2V's SfM, for
  frames of at least ``evaluation.sfm.min_frame_size()`` px); ``poses``: ``--poses DIR``, the models' generated
  videos' poses estimated elsewhere, one camera file ``DIR/<label>/<scene>_<trajectory>.npz`` per clip (named as
  ``save_videos`` names the videos; ``clip_metrics.pose_file_metrics``); baselines and ground truth keep
  ``pose_method``.

  ``baselines``: add the model-free columns ``copy_reference``, ``mean_colour`` and ``zero_motion``
  (rows with those ``"model"`` names in ``metrics.json``, entries in its ``summary``).

  Raises:
    ValueError: no checkpoint, names of the wrong length or reserved (:data:`RESERVED_NAMES`),
      models with different data settings, or bad trajectories.
  """
  started = time.time()
  if text.captions is not None:
    raise errors.UserError(f"--captions {text.captions}: the --split protocol's clips have no file names to caption; "
                           "use --prompt for one caption of every clip, or --captions with --videos / --dycheck")
  trajectory_names = list(trajectory_names)
  protocol_clips.check_trajectory_names(trajectory_names)
  models, labels = _load_models(out, checkpoints, names, SPLIT_DATA_KEYS, text)
  data0 = models[0].config.data
  clip_metrics.check_pose_method(pose_method, int(data0.height), int(data0.width))
  num_scenes = len(sources.data_source(data0, split))
  if max_scenes is not None:
    num_scenes = min(num_scenes, max_scenes)
  # zero_motion is scored at the track frames of a head model (NovelViewPipeline.track's "frames").
  track_model = next((m for m in models if m.head is not None), models[0])
  track_frames = ae_lib.latent_frame_indices(int(data0.num_frames), track_model.autoencoder.temporal_factor)
  k = math.lcm(*(m.autoencoder.temporal_factor for m in models))  # query points on every model's latent frames
  sampling = novel_view.SamplingConfig(num_steps=steps, guidance_scale=cfg, seed=seed)
  guidances = _resolve_guidance(models, labels, sampling, text, [None])
  rows = []
  scenes = range(num_scenes)
  if progress:
    scenes = tqdm(scenes, desc="scenes", unit="scene")
  scoring = _split_scoring(pose_method, baselines, track_frames)
  for index in scenes:
    clips = protocol_clips.scene_clips(models[0].config, split, index, trajectory_names, frames_per_latent=k)
    rows.extend(_scene_rows(index, f"scene{index}", list(zip(trajectory_names, clips)), models, labels, sampling,
                            scoring, text=text, caption=text.caption(None), batch_size=len(clips),
                            save_videos=save_videos, out=out, poses=poses))
  summary = report.summarize(rows)
  columns = labels + (list(baselines_lib.BASELINES) if baselines else []) + [GT_VIDEO]
  # zero_motion only where a clip had tracks
  columns = [c for c in columns if c != baselines_lib.ZERO_MOTION or c in summary]
  record = {
      "protocol": "split",
      "checkpoints": {label: {"source": m.source, "step": m.step, "guidance": guidances.get(label)}
                      for label, m in zip(labels, models)},
      "baselines": [c for c in baselines_lib.BASELINES if c in columns],
      "zero_motion_frames": [int(f) for f in track_frames] if baselines_lib.ZERO_MOTION in columns else None,
      "split": split, "num_scenes": num_scenes, "trajectories": trajectory_names, "steps": steps,
      "cfg": cfg, **text.record(), "seed": seed, "pose_method": pose_method, "poses": poses,
      "resolution": [int(data0.num_frames), int(data0.height), int(data0.width)],
      "seconds": round(time.time() - started, 1), "summary": summary, "rows": rows}
  header = (f"# Novel-view evaluation: split `{split}`, {num_scenes} scenes × {len(trajectory_names)} trajectories\n\n"
            f"{steps} Euler steps, seed {seed}, {_captions_line(text)}, "
            f"{clip_metrics.pose_estimator(pose_method, poses)}"
            "; models: "
            + ", ".join(f"`{label}` = {m.source} (step {m.step}; {_guidance_line(guidances.get(label))})"
                        for label, m in zip(labels, models))
            + (f"; baselines without a model: {baselines_lib.described(baselines_lib.BASELINES, track_frames)}"
               if baselines else "")
            + f"; `{GT_VIDEO}` = the pose estimator and the drift metrics on the ground-truth target video.")
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
