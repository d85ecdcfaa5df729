"""The MVTrack4Gen training objective in one pure function of ``(params, batch, rng)``.

``L = λ_diff·L_diff + λ_track·L_track + λ_corr·L_corr`` with ``λ = (1, 0.01, 0.01)``
(MVTrack4Gen project page, step 3; docs/design.md §1):

1. ``MVTrack4Gen.prepare``: both views' latents (from the batch, or the pixel autoencoder), relative
   cameras, latent-rate tracks and query frames, the text context; for a model with text, **caption
   dropout** then replaces each example's context by the null context with probability
   ``caption_dropout`` (Wan / ReCamMaster practice; it trains the null branch that classifier-free
   guidance uses at sampling; its draw has a key of its own, :func:`training_keys`);
2. one flow-matching grid index per sample (``FlowMatchingSchedule``), noise on the **target**
   latents only; the reference latents stay clean (ReCamMaster / ReDirector);
3. one ``WanDiT`` forward on ``target_noisy ⊕ reference`` with both views' cameras, also returning
   the probe layers' q/k when a tracking term is on;
4. ``L_diff`` = weighted velocity MSE on the target half (``losses.diffusion``);
5. ``L_track`` = MV-TAP loss of the ``MVTAPHead`` run on the probe q/k (``losses.tracking``);
6. ``L_corr`` = attention cross-entropy at the GT correspondences (``losses.correspondence``);
A model with given frames (``MVTrack4Gen.given_frames``, image-to-video) sees them clean and marked in step 3 and
leaves them out of ``L_diff`` (``models.frame_conditioning``).

7. ``L_feat`` (Track4Gen, ``λ_feat`` 0 by default; 8 in Track4Gen) = the cosine cost-volume loss
   (``losses.feature_tracking``) on the refined features of a model with a refiner, each view against its own
   ground-truth tracks, averaged over the two views.

A λ of 0 removes its term from the graph (no head call, no probes requested): λ_track = λ_corr = 0
is the diffusion-only baseline. Tracking terms are masked means over valid points of the whole
batch, so samples whose ``track_mask`` is all False contribute only ``L_diff``. An optional batch key
``diffusion_weight`` ``(B,)`` weighs each example in ``L_diff`` (``Σ_b d_b·w_b·MSE_b / Σ_b d_b``; the trainer
sets it from ``data.*.diffusion_weight`` in mixed batches, 0 for a tracked-only source). The head's TAP-Vid
average Jaccard on the batch (both views flattened along time, 'strided' mode, last iteration,
visibility ``σ(vis)·σ(conf) > 0.6``) is returned as a metric.

Tracks run at latent-frame rate: with ``frames_per_latent = k`` GT tracks are subsampled at video
frames ``0, k, 2k, …`` and query frames mapped to ``round(t / k)`` (``models.autoencoder``, applied
by ``MVTrack4Gen.prepare``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from mvtrack_jax.diffusion.flow_matching import FlowMatchingSchedule, add_noise, velocity_target
from mvtrack_jax import tapvid
from mvtrack_jax.losses.correspondence import CorrespondenceConfig, multi_layer_correspondence_loss
from mvtrack_jax.losses.diffusion import flow_matching_loss
from mvtrack_jax.losses.feature_tracking import FeatureTrackingConfig, feature_tracking_loss
from mvtrack_jax.losses.tracking import TrackingLossConfig, tracking_loss
from mvtrack_jax.models.mvtrack4gen import CAMERA_KEYS, MVTrack4Gen

Array = Any

BATCH_KEYS = ("reference_video", "target_video", "reference_intrinsics", "target_intrinsics",
              "reference_cam_to_world", "target_cam_to_world", "query_points", "tracks", "visible", "track_mask")


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
  """Static options of :func:`make_objective`.

  Attributes:
    lambda_diff, lambda_track, lambda_corr, lambda_feat: term weights (1, 0.01, 0.01, 0). 0 skips the term.
    feat: :class:`FeatureTrackingConfig` of ``L_feat`` (Track4Gen; needs a model with a refiner).
    corr: :class:`CorrespondenceConfig` (its ``layers`` are the supervised attention layers).
    tracking: :class:`TrackingLossConfig`.
    schedule: :class:`FlowMatchingSchedule`.
    visibility_threshold: ``σ(vis)·σ(conf)`` threshold for the AJ metric (MV-TAP: 0.6).
    caption_dropout: probability that an example's text context is replaced by the null context
      (models with text only; ``config.text.caption_dropout``, default 0.1).
  """

  lambda_diff: float = 1.0
  lambda_track: float = 0.01
  lambda_corr: float = 0.01
  lambda_feat: float = 0.0
  feat: FeatureTrackingConfig = FeatureTrackingConfig()
  corr: CorrespondenceConfig = CorrespondenceConfig()
  tracking: TrackingLossConfig = TrackingLossConfig()
  schedule: FlowMatchingSchedule = FlowMatchingSchedule()
  visibility_threshold: float = 0.6
  caption_dropout: float = 0.0

  def __post_init__(self):
    for name in ("lambda_diff", "lambda_track", "lambda_corr", "lambda_feat"):
      if getattr(self, name) < 0:
        raise ValueError(f"ObjectiveConfig: {name} must be >= 0, got {getattr(self, name)}")
    if not 0.0 <= self.caption_dropout <= 1.0:
      raise ValueError(f"ObjectiveConfig: caption_dropout must be in [0, 1], got {self.caption_dropout}")

  def probe_layers(self, head_layers: tuple[int, ...]) -> tuple[int, ...]:
    """The DiT layers whose q/k must be returned (empty for the diffusion-only baseline)."""
    layers = set()
    if self.lambda_track > 0:
      layers |= set(head_layers)
    if self.lambda_corr > 0:
      layers |= set(self.corr.layers)
    return tuple(sorted(layers))


def training_keys(rng: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The step key split three ways: the flow-matching grid index, the noise, the caption-dropout draw.

  ``split(rng, 3)``: three independent keys. (The dropout draw used ``fold_in(rng, 1)``, which is the noise key
  itself, ``split(rng)[1]``: dropping an example was a function of its first noise value.) With JAX's
  partitionable threefry (the default) ``split(rng, 3)[:2] == split(rng)``, so the σ and noise draws are those of
  the two-way split used before.
  """
  rng_t, rng_n, rng_drop = jax.random.split(rng, 3)
  return rng_t, rng_n, rng_drop


def validate_batch(batch: Mapping[str, Array], autoencoder: Any) -> None:
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


def make_objective(model: MVTrack4Gen, config: ObjectiveConfig = ObjectiveConfig()
                   ) -> Callable[[Mapping[str, Any], Mapping[str, Array], jax.Array], tuple[jax.Array, dict]]:
  """Builds ``objective(params, batch, rng) -> (loss, metrics)``, pure and jit-able.

  Args:
    model: the ``MVTrack4Gen`` (DiT, head, autoencoder; its ``prepare`` turns the batch into latents,
      relative cameras, latent-rate tracks and query frames).
    config: :class:`ObjectiveConfig`.

  Returns:
    The objective; ``params = {"dit": ..., "head": ..., "text": ...}`` (``MVTrack4Gen.init``); batch in the
    ``data.pipeline`` layout, optionally with ``context`` ``(B, L, text_dim)`` and
    ``reference_latents`` / ``target_latents``. Metrics: ``loss``, ``diff_loss``, ``sigma`` (batch
    mean), and when on ``track_loss``, ``track_pos/vis/conf``, ``head_aj``, ``corr_loss``,
    ``corr_loss/layer_i``, ``corr_token_hit_rate/layer_i``, ``corr_rows``.

  Raises:
    ValueError: ``lambda_track > 0`` without a head, or probe layers out of range.
  """
  if config.lambda_track > 0 and model.head is None:
    raise ValueError("make_objective: lambda_track > 0 needs a tracking head")
  if config.lambda_feat > 0 and model.refiner is None:
    raise ValueError("make_objective: lambda_feat > 0 needs a model with a refiner")
  probe_layers = config.probe_layers(model.head_layers)
  bad = [l for l in probe_layers if not 0 <= l < model.dit.config.num_layers]
  if bad:
    raise ValueError(f"make_objective: probe layers {bad} out of range for a {model.dit.config.num_layers}-layer DiT")

  def objective(params, batch, rng):
    p = model.prepare(batch, params)
    target = p["target"]
    b = target.shape[0]
    rng_t, rng_n, rng_drop = training_keys(rng)
    if model.with_text and config.caption_dropout > 0:
      drop = jax.random.bernoulli(rng_drop, config.caption_dropout, (b,))
      p["context"] = jnp.where(drop[:, None, None], model.null_context(params, b), p["context"])
    sample = config.schedule.sample_training(rng_t, b)
    noise = jax.random.normal(rng_n, target.shape, jnp.float32)
    noisy = add_noise(target, noise, sample["sigma"])
    with_refined = config.lambda_feat > 0
    out = model.velocity(params["dit"], noisy, sample["timestep"], p, probe_layers=probe_layers,
                         refiner_params=params.get("refiner"), with_refined=with_refined)
    velocity, probes = out if probe_layers or with_refined else (out, {})
    weight = sample["weight"]
    if "diffusion_weight" in batch:  # per-example weights of a mixture: the weighted mean over the batch
      d = jnp.asarray(batch["diffusion_weight"], jnp.float32)
      weight = weight * d * (b / jnp.maximum(d.sum(), 1e-6))
    # Given (clean) frames are no part of L_diff: the model is never asked to denoise them.
    diff = flow_matching_loss(velocity, velocity_target(target, noise), weight,
                              frame_mask=None if "given" not in p else ~p["given"])
    metrics = {"diff_loss": diff, "sigma": sample["sigma"].mean()}
    total = config.lambda_diff * diff

    if config.lambda_track > 0:
      pred = model.track(params["head"], probes, p)
      track, terms = tracking_loss(pred["tracks"], pred["visibility"], pred["confidence"], p["tracks"], p["visible"],
                                   p["point_mask"], image_size=p["image_size"], config=config.tracking)
      total = total + config.lambda_track * track
      pred_vis = jax.nn.sigmoid(pred["visibility"][-1]) * jax.nn.sigmoid(pred["confidence"][-1])
      aj = head_average_jaccard(p["query"], jax.lax.stop_gradient(pred["tracks"][-1]),
                                pred_vis > config.visibility_threshold, p["tracks"], p["visible"], p["point_mask"],
                                p["image_size"])
      metrics.update(track_loss=track, head_aj=aj, **terms)

    if config.lambda_corr > 0:
      corr, corr_metrics = multi_layer_correspondence_loss(probes, p["tracks"], p["visible"], p["point_mask"],
                                                           grid=p["grid"], token_stride=model.token_stride,
                                                           config=config.corr)
      total = total + config.lambda_corr * corr
      metrics.update(corr_loss=corr, **corr_metrics)

    if with_refined:  # L_feat on both views' refined features, each against its own ground-truth tracks
      refined = probes[model.feat_layer]["refined"]
      views = [feature_tracking_loss(refined[:, v], p["tracks"][:, v], p["visible"][:, v], p["point_mask"],
                                     token_stride=model.token_stride, config=config.feat) for v in (0, 1)]
      feat = 0.5 * (views[0][0] + views[1][0])
      total = total + config.lambda_feat * feat
      metrics.update(feat_loss=feat, feat_pairs=views[0][1]["feat_pairs"] + views[1][1]["feat_pairs"],
                     feat_error_tokens=0.5 * (views[0][1]["feat_error_tokens"] + views[1][1]["feat_error_tokens"]))
    metrics["loss"] = total
    return total, metrics

  return objective


# (term name, its ObjectiveConfig weight, its unweighted value among the objective's metrics).
TERMS = (("diff", "lambda_diff", "diff_loss"), ("track", "lambda_track", "track_loss"),
         ("corr", "lambda_corr", "corr_loss"), ("feat", "lambda_feat", "feat_loss"))


def make_trunk_gradient_norms(objective: Callable, config: ObjectiveConfig
                              ) -> Callable[[Mapping[str, Any], Mapping[str, Array], jax.Array], dict[str, jax.Array]]:
  """What each term's weight means on the shared trunk: the gradient norm of every weighted term on the DiT.

  The DiT (``params["dit"]``) is the trunk every term reaches; the head and the refiner belong to one term each.
  Track4Gen's λ_feat = 8 was set for its backbone and features; here the size of ``λ_feat·∇L_feat`` next to
  ``∇L_diff`` on the same parameters says what it does to the generator. The trainer logs these once, on the
  first batch of a new run with ``λ_feat > 0`` (one backward pass per active term, compiled once).

  Args:
    objective: the function :func:`make_objective` returned (its metrics hold each term unweighted).
    config: the :class:`ObjectiveConfig` it was built with.

  Returns:
    ``fn(params, batch, rng) -> metrics``: ``trunk_grad_norm/<term>`` = global L2 norm of
    ``∇_dit (λ_term·L_term)`` over every DiT leaf (trainable or not) for each active term (``diff``, ``track``,
    ``corr``, ``feat``), and ``trunk_grad_ratio/<term>`` = that norm over ``diff``'s for every other active term
    (inf where ``L_diff`` is off or its gradient is zero); float32 scalars.
  """
  active = [(name, float(getattr(config, weight)), metric) for name, weight, metric in TERMS
            if getattr(config, weight) > 0]

  def fn(params, batch, rng):
    norms = {}
    for name, weight, metric in active:
      def term(dit, metric=metric, weight=weight):
        return weight * objective(dict(params, dit=dit), batch, rng)[1][metric]
      norms[name] = optax.tree.norm(jax.grad(term)(params["dit"])).astype(jnp.float32)
    out = {f"trunk_grad_norm/{name}": value for name, value in norms.items()}
    base = norms.get("diff", jnp.zeros((), jnp.float32))
    for name, value in norms.items():
      if name != "diff":
        out[f"trunk_grad_ratio/{name}"] = jnp.where(base > 0, value / jnp.where(base > 0, base, 1.0), jnp.inf)
    return out

  return fn
