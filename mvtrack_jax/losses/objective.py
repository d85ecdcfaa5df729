"""The MVTrack4Gen training objective in one pure function of ``(params, batch, rng)``.

``L = λ_diff·L_diff + λ_track·L_track + λ_corr·L_corr`` with ``λ = (1, 0.01, 0.01)``
(MVTrack4Gen project page, step 3; docs/design.md §1):

1. both views' videos → latents with the autoencoder (``PixelAutoencoder`` on CPU; Wan VAE later);
2. one flow-matching grid index per sample (``FlowMatchingSchedule``), noise on the **target**
   latents only; the reference latents stay clean (ReCamMaster / ReDirector);
3. one ``WanDiT`` forward on ``target_noisy ⊕ reference`` with both views' cameras, also returning
   the probe layers' q/k when a tracking term is on;
4. ``L_diff`` = weighted velocity MSE on the target half (``losses.diffusion``);
5. ``L_track`` = MV-TAP loss of the ``MVTAPHead`` run on the probe q/k (``losses.tracking``);
6. ``L_corr`` = attention cross-entropy at the GT correspondences (``losses.correspondence``).

A λ of 0 removes its term from the graph (no head call, no probes requested): λ_track = λ_corr = 0
is the diffusion-only baseline. Tracking terms are masked means over valid points of the whole
batch, so samples whose ``track_mask`` is all False contribute only ``L_diff``. The head's TAP-Vid
average Jaccard on the batch (both views flattened along time, 'strided' mode, last iteration,
visibility ``σ(vis)·σ(conf) > 0.6``) is returned as a metric.

Tracks run at latent-frame rate: with ``frames_per_latent = k`` GT tracks are subsampled at video
frames ``0, k, 2k, …`` and query frames mapped to ``round(t / k)`` (``models.autoencoder``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from mvtrack_jax.diffusion.flow_matching import FlowMatchingSchedule, add_noise, velocity_target
from mvtrack_jax.evaluation import tapvid
from mvtrack_jax.losses.correspondence import CorrespondenceConfig, multi_layer_correspondence_loss
from mvtrack_jax.losses.diffusion import flow_matching_loss
from mvtrack_jax.losses.tracking import TrackingLossConfig, tracking_loss
from mvtrack_jax.models import autoencoder as ae_lib
from mvtrack_jax.models import tracking_head as head_lib
from mvtrack_jax.models import wan as wan_lib

Array = Any

BATCH_KEYS = ("reference_video", "target_video", "reference_intrinsics", "target_intrinsics",
              "reference_cam_to_world", "target_cam_to_world", "query_points", "tracks", "visible", "track_mask")
CAMERA_KEYS = ("reference_intrinsics", "target_intrinsics", "reference_cam_to_world", "target_cam_to_world")


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
  """Static options of :func:`make_objective`.

  Attributes:
    lambda_diff, lambda_track, lambda_corr: term weights (1, 0.01, 0.01). 0 skips the term.
    head_layers: 0-based probe layers whose q/k (concatenated) feed the tracking head.
    corr: :class:`CorrespondenceConfig` (its ``layers`` are the supervised attention layers).
    tracking: :class:`TrackingLossConfig`.
    schedule: :class:`FlowMatchingSchedule`.
    context_length: text tokens of the all-zero context used when the batch has no ``context``.
    visibility_threshold: ``σ(vis)·σ(conf)`` threshold for the AJ metric (MV-TAP: 0.6).
  """

  lambda_diff: float = 1.0
  lambda_track: float = 0.01
  lambda_corr: float = 0.01
  head_layers: tuple[int, ...] = (18,)
  corr: CorrespondenceConfig = CorrespondenceConfig()
  tracking: TrackingLossConfig = TrackingLossConfig()
  schedule: FlowMatchingSchedule = FlowMatchingSchedule()
  context_length: int = 512
  visibility_threshold: float = 0.6

  def __post_init__(self):
    for name in ("lambda_diff", "lambda_track", "lambda_corr"):
      if getattr(self, name) < 0:
        raise ValueError(f"ObjectiveConfig: {name} must be >= 0, got {getattr(self, name)}")
    if self.lambda_track > 0 and not self.head_layers:
      raise ValueError("ObjectiveConfig: head_layers must be non-empty when lambda_track > 0")

  def probe_layers(self) -> tuple[int, ...]:
    """The DiT layers whose q/k must be returned (empty for the diffusion-only baseline)."""
    layers = set()
    if self.lambda_track > 0:
      layers |= set(self.head_layers)
    if self.lambda_corr > 0:
      layers |= set(self.corr.layers)
    return tuple(sorted(layers))


def batch_latents(autoencoder: Any, batch: Mapping[str, Array], view: str) -> jax.Array:
  """The ``view`` ("target"/"reference") latents of a batch: ``batch[f"{view}_latents"]`` when the
  input side provides them (latent cache, or encoded by the iterator for a frozen Wan VAE), else
  ``autoencoder.encode(batch[f"{view}_video"])`` (the parameter-free pixel autoencoder)."""
  key = f"{view}_latents"
  if key in batch:
    return jnp.asarray(batch[key], jnp.float32)
  return autoencoder.encode(batch[f"{view}_video"])


def validate_batch(batch: Mapping[str, Array], autoencoder: ae_lib.PixelAutoencoder) -> None:
  """Eager shape/dtype checks of a host batch (pipeline layout; see ``data.pipeline``).

  Raises:
    ValueError: naming the missing key or the field whose shape disagrees.
  """
  missing = [k for k in BATCH_KEYS if k not in batch]
  if missing:
    raise ValueError(f"objective batch lacks keys {missing}; expected {list(BATCH_KEYS)}")
  video = batch["target_video"]
  if video.ndim != 5 or batch["reference_video"].shape != video.shape:
    raise ValueError(f"objective batch: target_video {video.shape} and reference_video "
                     f"{batch['reference_video'].shape} must both be (B, T, H, W, 3)")
  latent = tuple(autoencoder.latent_shape(video.shape))
  for key in ("target_latents", "reference_latents"):
    if key in batch and tuple(batch[key].shape) != latent:
      raise ValueError(f"objective batch: {key} has shape {tuple(batch[key].shape)}, expected {latent} "
                       f"(the autoencoder's latents of {tuple(video.shape)} videos)")
  b, t = video.shape[:2]
  for key in CAMERA_KEYS:
    trailing = (3, 3) if key.endswith("intrinsics") else (4, 4)
    if tuple(batch[key].shape) != (b, t) + trailing:
      raise ValueError(f"objective batch: {key} has shape {batch[key].shape}, expected {(b, t) + trailing}")
  n = batch["query_points"].shape[1] if batch["query_points"].ndim == 3 else -1
  expected = {"query_points": (b, n, 3), "tracks": (b, 2, t, n, 2), "visible": (b, 2, t, n), "track_mask": (b, n)}
  for key, shape in expected.items():
    if tuple(batch[key].shape) != shape:
      raise ValueError(f"objective batch: {key} has shape {tuple(batch[key].shape)}, expected {shape}")


def head_average_jaccard(query_points: Array, pred_tracks: Array, pred_visible: Array, gt_tracks: Array,
                         gt_visible: Array, point_mask: Array, image_size: tuple[int, int]) -> jax.Array:
  """TAP-Vid AJ of multi-view predictions, both views flattened along time (MV-TAP protocol).

  Args:
    query_points: ``(B, N, 3)`` ``(f, x, y)`` reference-view queries at latent-frame rate.
    pred_tracks, gt_tracks: ``(B, 2, F, N, 2)`` pixels; pred_visible, gt_visible: ``(B, 2, F, N)`` bool.
    point_mask: ``(B, N)`` bool; masked points count as occluded in both GT and prediction.
    image_size: ``(H, W)`` video pixels (coordinates go to the 256 raster).

  Returns:
    Scalar fp32 mean AJ over the videos that have a scored visible point (0 when none has).
  """
  mask = point_mask[:, None, None, :]
  cat = lambda x: jnp.concatenate([x[:, 0], x[:, 1]], axis=1)
  q, gt_occ, gt_xy = tapvid.to_tapvid_format(query_points, cat(gt_tracks), cat(gt_visible & mask), image_size)
  _, pred_occ, pred_xy = tapvid.to_tapvid_format(query_points, cat(pred_tracks), cat(pred_visible & mask), image_size)
  aj = tapvid.compute_tapvid_metrics(q, gt_occ, gt_xy, pred_occ, pred_xy, "strided")["average_jaccard"]
  ok = jnp.isfinite(aj)
  return jnp.sum(jnp.where(ok, aj, 0.0)) / jnp.maximum(ok.sum(), 1)


def make_objective(dit: wan_lib.WanDiT, head: head_lib.MVTAPHead | None, autoencoder: ae_lib.PixelAutoencoder,
                   config: ObjectiveConfig = ObjectiveConfig()
                   ) -> Callable[[Mapping[str, Any], Mapping[str, Array], jax.Array], tuple[jax.Array, dict]]:
  """Builds ``objective(params, batch, rng) -> (loss, metrics)``, pure and jit-able.

  Args:
    dit: the ``WanDiT`` (its ``config.vae_stride``/``frames_per_latent`` must match ``autoencoder``).
    head: the ``MVTAPHead``; may be None only when ``config.lambda_track == 0``.
    autoencoder: maps uint8 videos to latents (``encode``), temporal/spatial factors.
    config: :class:`ObjectiveConfig` (static).

  Returns:
    ``objective(params, batch, rng)`` with ``params = {"dit": ..., "head": ...}`` (``"head"``
    unused when λ_track = 0), ``batch`` the pipeline layout (:data:`BATCH_KEYS`, optional
    ``context`` ``(B, L, text_dim)``), ``rng`` a PRNG key. Returns the scalar fp32 loss and a
    dict of scalar metrics: ``loss, diff_loss, sigma``, and when on ``track_loss, track_pos,
    track_vis, track_conf, head_aj`` / ``corr_loss, corr_rows, corr_loss/layer_l, corr_accuracy/layer_l``.

  Raises:
    ValueError: inconsistent factors between DiT and autoencoder, missing head, bad probe layers.
  """
  wcfg = dit.config
  if wcfg.vae_stride != autoencoder.spatial_factor or wcfg.frames_per_latent != autoencoder.temporal_factor:
    raise ValueError(f"make_objective: DiT vae_stride/frames_per_latent = {wcfg.vae_stride}/{wcfg.frames_per_latent}"
                     f" but the autoencoder has {autoencoder.spatial_factor}/{autoencoder.temporal_factor}")
  if config.lambda_track > 0 and head is None:
    raise ValueError("make_objective: lambda_track > 0 needs a tracking head")
  probe_layers = config.probe_layers()
  bad = [l for l in probe_layers if not 0 <= l < wcfg.num_layers]
  if bad:
    raise ValueError(f"make_objective: probe layers {bad} out of range for a {wcfg.num_layers}-layer DiT")
  if wcfg.patch_size[1] != wcfg.patch_size[2]:
    raise ValueError(f"make_objective: non-square token patches {wcfg.patch_size} are not supported")
  token_stride = wcfg.vae_stride * wcfg.patch_size[1]
  k = autoencoder.temporal_factor

  def objective(params, batch, rng):
    target = batch_latents(autoencoder, batch, "target")
    reference = batch_latents(autoencoder, batch, "reference")
    b = target.shape[0]
    height, width = batch["target_video"].shape[2:4]
    rng_t, rng_n = jax.random.split(rng)
    sample = config.schedule.sample_training(rng_t, b)
    noise = jax.random.normal(rng_n, target.shape, jnp.float32)
    noisy = add_noise(target, noise, sample["sigma"])
    context = batch.get("context")
    if context is None:
      context = jnp.zeros((b, config.context_length, wcfg.text_dim), jnp.float32)
    cameras = None
    if wcfg.camera_mode != "none":
      cameras = {key: jnp.asarray(batch[key], jnp.float32) for key in CAMERA_KEYS}
    out = dit.apply({"params": params["dit"]}, noisy.astype(wcfg.dtype), sample["timestep"], context,
                    reference_latents=reference.astype(wcfg.dtype), cameras=cameras, probe_layers=probe_layers)
    velocity, probes = out if probe_layers else (out, {})
    diff = flow_matching_loss(velocity, velocity_target(target, noise), sample["weight"])
    metrics = {"diff_loss": diff, "sigma": sample["sigma"].mean()}
    total = config.lambda_diff * diff

    if probe_layers:
      grid = wan_lib.token_grid(wcfg, target.shape)
      tracks, visible = ae_lib.tracks_to_latent_rate(jnp.asarray(batch["tracks"], jnp.float32),
                                                     jnp.asarray(batch["visible"], bool), k)
      query = ae_lib.query_frames_to_latent(jnp.asarray(batch["query_points"], jnp.float32), k, grid[0])
      qx, qy = query[..., 1], query[..., 2]
      point_mask = (jnp.asarray(batch["track_mask"], bool) & (qx >= 0) & (qx < width) & (qy >= 0) & (qy < height))

    if config.lambda_track > 0:
      q_feat, k_feat = head_lib.features_from_probes(probes, config.head_layers)
      idx = ae_lib.latent_frame_indices(batch["target_video"].shape[1], k)
      head_cams = {key: jnp.asarray(batch[key], jnp.float32)[:, idx] for key in CAMERA_KEYS}
      pred = head.apply({"params": params["head"]}, q_feat, k_feat, query, grid=grid, token_stride=token_stride,
                        cameras=head_cams, point_mask=point_mask)
      track, terms = tracking_loss(pred["tracks"], pred["visibility"], pred["confidence"], tracks, visible,
                                   point_mask, image_size=(height, width), config=config.tracking)
      total = total + config.lambda_track * track
      pred_vis = jax.nn.sigmoid(pred["visibility"][-1]) * jax.nn.sigmoid(pred["confidence"][-1])
      aj = head_average_jaccard(query, jax.lax.stop_gradient(pred["tracks"][-1]),
                                pred_vis > config.visibility_threshold, tracks, visible, point_mask, (height, width))
      metrics.update(track_loss=track, head_aj=aj, **terms)

    if config.lambda_corr > 0:
      corr, corr_metrics = multi_layer_correspondence_loss(probes, tracks, visible, point_mask, grid=grid,
                                                           token_stride=token_stride, config=config.corr)
      total = total + config.lambda_corr * corr
      metrics.update(corr_loss=corr, **corr_metrics)
    metrics["loss"] = total
    return total, metrics

  return objective


def init_params(rng: jax.Array, dit: wan_lib.WanDiT, head: head_lib.MVTAPHead | None,
                autoencoder: ae_lib.PixelAutoencoder, batch: Mapping[str, Array],
                config: ObjectiveConfig = ObjectiveConfig()) -> dict[str, Any]:
  """Initial ``{"dit": ..., "head": ...}`` params for batches shaped like ``batch`` (jit-able).

  The head is initialised on zero probe features of the right shape (no DiT forward needed).
  """
  rng_d, rng_h = jax.random.split(rng)
  wcfg = dit.config
  target = batch_latents(autoencoder, batch, "target")
  b = target.shape[0]
  cameras = None
  if wcfg.camera_mode != "none":
    cameras = {key: jnp.asarray(batch[key], jnp.float32) for key in CAMERA_KEYS}
  context = batch.get("context")
  if context is None:
    context = jnp.zeros((b, config.context_length, wcfg.text_dim), jnp.float32)
  params = {"dit": dit.init(rng_d, target, jnp.zeros((b,), jnp.float32), context, reference_latents=target,
                            cameras=cameras)["params"]}
  if head is not None:
    grid = wan_lib.token_grid(wcfg, target.shape)
    s_tokens = 2 * grid[0] * grid[1] * grid[2]
    feats = jnp.zeros((b, s_tokens, len(config.head_layers) * wcfg.dim), jnp.float32)
    k = autoencoder.temporal_factor
    idx = ae_lib.latent_frame_indices(batch["target_video"].shape[1], k)
    head_cams = {key: jnp.asarray(batch[key], jnp.float32)[:, idx] for key in CAMERA_KEYS}
    query = ae_lib.query_frames_to_latent(jnp.asarray(batch["query_points"], jnp.float32), k, grid[0])
    params["head"] = head.init(rng_h, feats, feats, query, grid=grid,
                               token_stride=wcfg.vae_stride * wcfg.patch_size[1], cameras=head_cams)["params"]
  return params
