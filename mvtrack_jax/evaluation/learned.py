"""Hook for learned video metrics (MEt3R, VBench, LPIPS) whose weights the user must provide.

MVTrack4Gen reports MEt3R / MEt3R-dynamic (geometric consistency; DUSt3R/MASt3R point maps and
DINO features upsampled with FeatUp) and VBench dimensions (subject consistency with DINO,
imaging quality with MUSIQ, motion smoothness with AMT, aesthetics with a LAION predictor on
CLIP). Their weights cannot be downloaded in this project's environment and are not shipped, so
this module does **not** implement them: it keeps a registry in which a user plugs in a callable
that wraps their own checkpoints, and it fails loudly — naming the metric and the weights it
needs — when asked for a metric nobody registered. It never returns a placeholder number.

Plugging in a metric::

    from mvtrack_jax.evaluation import learned

    def my_met3r(generated, reference, *, weights):
      model = load_met3r(weights["mast3r"], weights["featup"])   # the user's code
      return float(model.score(reference, generated))

    learned.register_learned_metric("met3r", my_met3r,
                                    weights={"mast3r": "/ckpt/mast3r.pth", "featup": "/ckpt/featup.pth"})
    learned.compute_learned_metric("met3r", generated_video, reference_video)   # {'met3r': 0.27}

or, without code changes to an entry point, through the environment::

    MVTRACK_LEARNED_METRICS="met3r=my_pkg.metrics:met3r,vbench_imaging_quality=my_pkg.vb:musiq"

followed by ``learned.register_from_env()`` (the callables take no ``weights`` argument then:
they load their own). The callable's contract: ``fn(generated, reference, **kwargs)`` with
``generated`` the ``(T, H, W, 3)`` uint8 generated video and ``reference`` the ``(T', H', W', 3)``
uint8 reference video (or ``None``), returning a float or a mapping of names to floats. The DyCheck protocol
passes ``mask=`` ``(T, H, W)`` bool, DyCheck's co-visibility of each frame, when the sequence has masks; a metric
of the papers' iPhone table (LPIPS: DyCheck's mLPIPS averages the spatial LPIPS map over the mask) must honour
it, or its numbers are full-frame ones under a masked table's header.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
from typing import Any, Callable, Mapping

import numpy as np

MetricFn = Callable[..., Any]
ENV_VAR = "MVTRACK_LEARNED_METRICS"


@dataclasses.dataclass(frozen=True)
class LearnedMetricInfo:
  """What a learned metric measures and which weights it needs.

  Attributes:
    name: registry key.
    description: what the number means.
    required_weights: human-readable names of the checkpoints an implementation needs.
    higher_is_better: direction of the metric.
    reference: paper / code of the metric.
  """

  name: str
  description: str
  required_weights: tuple[str, ...]
  higher_is_better: bool
  reference: str


KNOWN_METRICS: dict[str, LearnedMetricInfo] = {
    info.name: info for info in (
        LearnedMetricInfo(
            "met3r", "MEt3R multi-view inconsistency of (reference frame i, generated frame i) pairs, "
            "1 − ½(S₁₂ + S₂₁) of DINO features re-rendered through MASt3R/DUSt3R point maps, mean over frames",
            ("MASt3R (or DUSt3R) ViT-L checkpoint", "DINO / DINOv2 feature backbone", "FeatUp upsampler for it"),
            False, "Asim et al., MEt3R, CVPR 2025 (github.com/mohammadasim98/met3r)"),
        LearnedMetricInfo(
            "met3r_dynamic", "MEt3R variant of MVTrack4Gen's table (lower is better); its exact definition is not "
            "published — supply your own implementation", ("MASt3R (or DUSt3R) ViT-L checkpoint",
                                                            "DINO / DINOv2 feature backbone", "FeatUp upsampler"),
            False, "MVTrack4Gen (arXiv 2606.26087), Table 1"),
        LearnedMetricInfo(
            "vbench_subject_consistency", "VBench subject consistency: DINO feature similarity of each frame to the "
            "first and previous frames", ("DINO ViT-B/16 (facebook/dino-vitb16)",), True,
            "Huang et al., VBench, CVPR 2024"),
        LearnedMetricInfo(
            "vbench_imaging_quality", "VBench imaging quality: MUSIQ score of each frame / 100",
            ("MUSIQ (SPAQ-trained) checkpoint",), True, "Huang et al., VBench, CVPR 2024"),
        LearnedMetricInfo(
            "vbench_motion_smoothness", "VBench motion smoothness: frame-interpolation error of AMT on dropped frames",
            ("AMT-S checkpoint",), True, "Huang et al., VBench, CVPR 2024"),
        LearnedMetricInfo(
            "vbench_aesthetic_quality", "VBench aesthetic quality: LAION aesthetic predictor on CLIP features",
            ("CLIP ViT-L/14", "LAION aesthetic predictor head"), True, "Huang et al., VBench, CVPR 2024"),
        LearnedMetricInfo(
            "lpips", "LPIPS perceptual distance of generated vs ground-truth target frames, mean over frames",
            ("LPIPS linear heads + AlexNet or VGG backbone",), False, "Zhang et al., LPIPS, CVPR 2018"),
    )
}


class LearnedMetricUnavailableError(RuntimeError):
  """A learned metric was requested but no implementation (with its weights) is registered."""


@dataclasses.dataclass(frozen=True)
class _Registered:
  fn: MetricFn
  weights: Mapping[str, str] | None
  info: LearnedMetricInfo


_REGISTRY: dict[str, _Registered] = {}


def register_learned_metric(name: str, fn: MetricFn, *, weights: Mapping[str, str] | None = None,
                            info: LearnedMetricInfo | None = None, overwrite: bool = False) -> None:
  """Registers the user's implementation of a learned metric.

  Args:
    name: a ``KNOWN_METRICS`` key, or a new name (then ``info`` describes it; a minimal one is made
      when omitted).
    fn: ``fn(generated, reference, **kwargs) -> float | Mapping[str, float]``; when ``weights`` is
      given it is also passed as ``weights=``.
    weights: optional ``{checkpoint name: file or directory path}``; every path must exist now.
    info: description for a metric not in ``KNOWN_METRICS``.
    overwrite: replace an existing registration instead of raising.

  Raises:
    TypeError: ``fn`` is not callable.
    FileNotFoundError: a ``weights`` path does not exist (the message names the entry).
    ValueError: ``name`` is already registered and ``overwrite`` is False.
  """
  if not callable(fn):
    raise TypeError(f"register_learned_metric({name!r}): fn must be callable, got {type(fn).__name__}")
  if name in _REGISTRY and not overwrite:
    raise ValueError(f"learned metric {name!r} is already registered; pass overwrite=True to replace it")
  if weights is not None:
    missing = {k: v for k, v in weights.items() if not os.path.exists(v)}
    if missing:
      raise FileNotFoundError(f"learned metric {name!r}: weights not found: "
                              + ", ".join(f"{k}={v!r}" for k, v in missing.items()))
    weights = dict(weights)
  if info is None:
    info = KNOWN_METRICS.get(name) or LearnedMetricInfo(name, "user-registered metric", (), False, "user")
  _REGISTRY[name] = _Registered(fn=fn, weights=weights, info=info)


def unregister_learned_metric(name: str) -> None:
  """Removes a registration (no error when absent)."""
  _REGISTRY.pop(name, None)


def available_learned_metrics() -> list[str]:
  """Names of the metrics that have a registered implementation, sorted."""
  return sorted(_REGISTRY)


def describe(name: str) -> LearnedMetricInfo:
  """The ``LearnedMetricInfo`` of a registered or known metric.

  Raises:
    KeyError: unknown name (the message lists the known ones).
  """
  if name in _REGISTRY:
    return _REGISTRY[name].info
  if name in KNOWN_METRICS:
    return KNOWN_METRICS[name]
  raise KeyError(f"unknown learned metric {name!r}; known: {sorted(set(KNOWN_METRICS) | set(_REGISTRY))}")


def _check_video(name: str, video: Any) -> np.ndarray:
  arr = np.asarray(video)
  if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or arr.shape[0] == 0:
    raise ValueError(f"{name} has shape {arr.shape} dtype {arr.dtype}, expected a (T, H, W, 3) uint8 video")
  return arr


def compute_learned_metric(name: str, generated: Any, reference: Any = None, **kwargs) -> dict[str, float]:
  """Runs a registered learned metric.

  Args:
    name: metric name (``available_learned_metrics()``).
    generated: ``(T, H, W, 3)`` uint8 generated video.
    reference: ``(T', H', W', 3)`` uint8 reference (or ground-truth target) video, or ``None``.
    **kwargs: forwarded to the implementation.

  Returns:
    ``{name: value}`` for a scalar result, else the implementation's mapping, values as floats.

  Raises:
    LearnedMetricUnavailableError: ``name`` is a known metric without a registered implementation;
      the message names the weights it needs and how to register one.
    KeyError: ``name`` is neither known nor registered.
    ValueError: bad video arrays, or the implementation returned something that is not a number
      (or a mapping of numbers).
  """
  if name not in _REGISTRY:
    info = describe(name)  # KeyError for unknown names
    raise LearnedMetricUnavailableError(
        f"learned metric {name!r} ({info.reference}) needs model weights that are not available: "
        f"{'; '.join(info.required_weights)}. No implementation is registered. Provide the weights and "
        f"register a callable with mvtrack_jax.evaluation.learned.register_learned_metric({name!r}, fn, "
        f"weights={{...}}) or through ${ENV_VAR}='{name}=package.module:function'.")
  entry = _REGISTRY[name]
  generated = _check_video("generated", generated)
  if reference is not None:
    reference = _check_video("reference", reference)
  if entry.weights is not None:
    kwargs = dict(kwargs, weights=entry.weights)
  result = entry.fn(generated, reference, **kwargs)
  values = result if isinstance(result, Mapping) else {name: result}
  out = {}
  for key, value in values.items():
    try:
      out[str(key)] = float(value)
    except (TypeError, ValueError):
      raise ValueError(f"learned metric {name!r} returned {key}={value!r}, expected a number") from None
    if math.isnan(out[str(key)]):
      raise ValueError(f"learned metric {name!r} returned NaN for {key!r}")
  return out


def register_from_spec(spec: str, *, overwrite: bool = False) -> str:
  """Registers ``"name=package.module:function"`` (the callable loads its own weights).

  Returns:
    The registered name.

  Raises:
    ValueError: malformed spec; ImportError / AttributeError: the module or function is missing.
  """
  name, sep, target = spec.partition("=")
  module_name, colon, attr = target.partition(":")
  if not sep or not colon or not name.strip() or not module_name.strip() or not attr.strip():
    raise ValueError(f"learned metric spec {spec!r} is malformed; expected 'name=package.module:function'")
  module = importlib.import_module(module_name.strip())
  try:
    fn = getattr(module, attr.strip())
  except AttributeError:
    raise AttributeError(f"learned metric spec {spec!r}: module {module_name.strip()!r} has no "
                         f"attribute {attr.strip()!r}") from None
  register_learned_metric(name.strip(), fn, overwrite=overwrite)
  return name.strip()


def register_from_env(var: str = ENV_VAR) -> list[str]:
  """Registers every comma-separated ``name=module:function`` spec of an environment variable.

  Returns:
    The registered names (empty when the variable is unset or empty).
  """
  specs = [s.strip() for s in os.environ.get(var, "").split(",") if s.strip()]
  return [register_from_spec(s, overwrite=True) for s in specs]
