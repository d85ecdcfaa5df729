"""The record schema: one record = one multi-view clip of one dynamic scene.

A record is a ``dict[str, np.ndarray]`` with these fields (``V`` views, ``T`` frames, ``H × W``
pixels, ``N`` tracked points; float32 unless stated):

============== =========================== ==================================================
field          shape / dtype               meaning
============== =========================== ==================================================
video          (V, T, H, W, 3) uint8       RGB frames of every view, synchronised.
intrinsics     (V, T, 3, 3)                pinhole ``K`` in pixels of this ``H × W``.
world_to_camera (V, T, 4, 4)               extrinsics, OpenCV axes (x right, y down, z fwd), m.
depth          (V, T, H, W)   [optional]   camera-space z-depth in metres of each pixel's surface.
tracks         (V, T, N, 2)                ``(x, y)`` pixel positions of each point in each view;
                                           origin at the top-left corner of the top-left pixel,
                                           pixel centres at +0.5 (TAP-Vid convention).
visible        (V, T, N) bool              point is in front of the camera, inside the image and
                                           not occluded (depth test).
points_3d      (T, N, 3)                   world positions of the points, metres.
context        (L, D) or (V, L, D)         [optional] text embeddings of the clip's caption (or of
               float16/float32             each view's): umT5 token features, ``L`` tokens of
                                           width ``D`` (4096 for umT5-XXL), unpadded or
                                           zero-padded (Wan's convention).
image_context  (V, N, D) float16/float32   [optional] CLIP image features of each view's first
                                           frame (``models.image_encoder``: Wan's ``N = 257``
                                           tokens of width ``D = 1280``); the pipeline gives an
                                           example its reference view's.
============== =========================== ==================================================

Records without ground-truth tracks (e.g. ReCamMaster's MultiCamVideo) carry ``N = 0``: tracks
``(V, T, 0, 2)``, visible ``(V, T, 0)``, points_3d ``(T, 0, 3)``; the input pipeline pads them to
a fixed number of query points with an all-false track mask, so tracking losses skip them.

Invariant of exact records (the synthetic renderer's): for every visible ``(v, t, n)``,
``project_points(points_3d[t, n], intrinsics[v, t], world_to_camera[v, t])`` equals
``tracks[v, t, n]`` within 1e-3 px and its camera z agrees with ``depth`` at that pixel within 1 %.

``validate_record`` checks shapes, dtypes, agreement of V/T/N/H/W across fields, finiteness,
camera validity and the track coordinate range, and raises ``RecordError`` naming the source (a
file path or dataset key) and the field.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from mvtrack_jax import errors
from mvtrack_jax.geometry import cameras as geometry

REQUIRED_FIELDS = ("video", "intrinsics", "world_to_camera", "tracks", "visible", "points_3d")
OPTIONAL_FIELDS = ("depth", "context", "image_context")
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS

# Tolerances of camera validity checks.
_ROTATION_TOL = 1e-3
_TRACK_RANGE_TOL = 1e-3


class RecordError(errors.UserError):
  """A record (file or dataset entry) violates the schema; the message names source and field (a ``ValueError``;
  the commands print it as one line, as any ``errors.UserError``)."""

  def __init__(self, source: str, field: str, message: str):
    self.source = source
    self.field = field
    super().__init__(f"{source}: field '{field}': {message}")


def record_dims(record: Mapping[str, np.ndarray]) -> dict[str, int]:
  """Returns ``{'V', 'T', 'H', 'W', 'N'}`` of a record (from ``video`` and ``tracks``)."""
  v, t, h, w, _ = np.shape(record["video"])
  n = np.shape(record["tracks"])[2]
  return {"V": v, "T": t, "H": h, "W": w, "N": n}


def _expected_shapes(dims: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
  v, t, h, w, n = (dims[k] for k in "VTHWN")
  return {
      "video": (v, t, h, w, 3),
      "intrinsics": (v, t, 3, 3),
      "world_to_camera": (v, t, 4, 4),
      "depth": (v, t, h, w),
      "tracks": (v, t, n, 2),
      "visible": (v, t, n),
      "points_3d": (t, n, 3),
  }


def validate_record(record: Mapping[str, np.ndarray], source: str = "<record>") -> dict[str, np.ndarray]:
  """Checks a record against the schema and returns it with canonical dtypes.

  Args:
    record: mapping of field name to array (extra fields are rejected, so typos surface).
    source: what to name in errors: the file path, or ``split[index]`` of a dataset.

  Returns:
    A new dict with ``video`` uint8, ``visible`` bool, ``context`` and ``image_context`` float16 or
    float32 (as given) and every other field float32.

  Raises:
    RecordError: a field is missing or unknown, has the wrong rank/shape/dtype, disagrees with the
      others on V/T/N/H/W, holds NaN/inf, has invalid intrinsics (non-positive focal length, last
      row not ``0 0 1``) or a non-rigid / non-invertible ``world_to_camera``, or a visible track lies
      outside ``[0, W] × [0, H]``.
  """
  for name in REQUIRED_FIELDS:
    if name not in record:
      raise RecordError(source, name, f"missing (a record needs {', '.join(REQUIRED_FIELDS)})")
  unknown = sorted(set(record) - set(FIELDS))
  if unknown:
    raise RecordError(source, unknown[0], f"unknown field(s) {unknown}; known fields are {list(FIELDS)}")

  video = np.asarray(record["video"])
  if video.ndim != 5 or video.shape[-1] != 3:
    raise RecordError(source, "video", f"shape {video.shape}, expected (V, T, H, W, 3)")
  if video.dtype != np.uint8:
    raise RecordError(source, "video", f"dtype {video.dtype}, expected uint8")
  tracks = np.asarray(record["tracks"])
  if tracks.ndim != 4 or tracks.shape[-1] != 2:
    raise RecordError(source, "tracks", f"shape {tracks.shape}, expected (V, T, N, 2)")
  dims = {"V": video.shape[0], "T": video.shape[1], "H": video.shape[2], "W": video.shape[3], "N": tracks.shape[2]}
  if min(dims["V"], dims["T"], dims["H"], dims["W"]) < 1:
    raise RecordError(source, "video", f"empty shape {video.shape}")
  expected = _expected_shapes(dims)

  out: dict[str, np.ndarray] = {}
  if "context" in record:
    out["context"] = validate_context(record["context"], dims["V"], source)
  if "image_context" in record:
    out["image_context"] = validate_image_context(record["image_context"], dims["V"], source)
  for name in FIELDS:
    if name not in record or name in ("context", "image_context"):
      continue
    value = np.asarray(record[name])
    if value.shape != expected[name]:
      raise RecordError(
          source, name,
          f"shape {value.shape}, expected {expected[name]} (V={dims['V']}, T={dims['T']}, "
          f"H={dims['H']}, W={dims['W']} from 'video', N={dims['N']} from 'tracks')")
    if name == "video":
      out[name] = value
    elif name == "visible":
      if value.dtype != np.bool_:
        raise RecordError(source, name, f"dtype {value.dtype}, expected bool")
      out[name] = value
    else:
      if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise RecordError(source, name, f"dtype {value.dtype}, expected a float type")
      value = value.astype(np.float32)
      bad = ~np.isfinite(value)
      if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise RecordError(source, name, f"{int(bad.sum())} non-finite value(s), first at index {idx}")
      out[name] = value

  _check_intrinsics(out["intrinsics"], source)
  _check_extrinsics(out["world_to_camera"], source)
  if "depth" in out and (out["depth"] < 0).any():
    raise RecordError(source, "depth", f"negative depth (min {float(out['depth'].min())})")
  vis = out["visible"]
  if vis.any():
    xy = out["tracks"][vis]
    w, h = dims["W"], dims["H"]
    outside = (xy[:, 0] < -_TRACK_RANGE_TOL) | (xy[:, 0] > w + _TRACK_RANGE_TOL) | \
              (xy[:, 1] < -_TRACK_RANGE_TOL) | (xy[:, 1] > h + _TRACK_RANGE_TOL)
    if outside.any():
      first = tuple(int(i) for i in np.argwhere(vis)[np.argmax(outside)])
      raise RecordError(
          source, "tracks",
          f"{int(outside.sum())} visible track point(s) outside the image [0, {w}] x [0, {h}] "
          f"(pixel coordinates, corner origin); first at (v, t, n) = {first}: {xy[np.argmax(outside)].tolist()}")
  return out


def validate_context(context: np.ndarray, num_views: int, source: str = "<record>") -> np.ndarray:
  """Checks a record's ``context`` (text embeddings, module table) and returns it as float16 or float32.

  Raises:
    RecordError: not ``(L, D)`` or ``(V, L, D)`` with ``V = num_views`` and ``L, D ≥ 1``, not a float
      type, or non-finite values.
  """
  value = np.asarray(context)
  if value.ndim not in (2, 3) or min(value.shape, default=0) < 1 or (value.ndim == 3 and value.shape[0] != num_views):
    raise RecordError(source, "context", f"shape {value.shape}, expected (L, D) or (V={num_views}, L, D) text "
                      "embeddings")
  return _finite_floats(value, "context", source)


def _finite_floats(value: np.ndarray, field: str, source: str) -> np.ndarray:
  """``value`` as float16/float32 (other floats become float32); RecordError for other dtypes or non-finite values."""
  if not np.issubdtype(value.dtype, np.floating):
    raise RecordError(source, field, f"dtype {value.dtype}, expected float16 or float32")
  if value.dtype not in (np.float16, np.float32):
    value = value.astype(np.float32)
  if not np.isfinite(value).all():
    raise RecordError(source, field, f"{int((~np.isfinite(value)).sum())} non-finite value(s)")
  return value


def validate_image_context(image_context: np.ndarray, num_views: int, source: str = "<record>") -> np.ndarray:
  """Checks a record's ``image_context`` (CLIP features, module table) and returns it as float16 or float32.

  Raises:
    RecordError: not ``(V, N, D)`` with ``V = num_views`` and ``N, D ≥ 1``, not a float type, or
      non-finite values.
  """
  value = np.asarray(image_context)
  if value.ndim != 3 or value.shape[0] != num_views or min(value.shape) < 1:
    raise RecordError(source, "image_context", f"shape {value.shape}, expected (V={num_views}, N, D) image features "
                      "(one row of N tokens per view)")
  return _finite_floats(value, "image_context", source)


def _check_intrinsics(k: np.ndarray, source: str) -> None:
  try:
    geometry.check_intrinsics(k, "(V, T) intrinsics")
  except ValueError as e:
    raise RecordError(source, "intrinsics", str(e)) from e


def _check_extrinsics(w2c: np.ndarray, source: str) -> None:
  try:
    geometry.check_rigid(w2c, "(V, T) poses", tolerance=_ROTATION_TOL)
  except ValueError as e:
    raise RecordError(source, "world_to_camera", str(e)) from e
