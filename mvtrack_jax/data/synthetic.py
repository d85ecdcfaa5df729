"""Procedural multi-view dynamic scenes rendered exactly by ray casting, with ground-truth tracks.

A synthetic scene is a textured room (the background enclosure) containing 2–6 textured
foreground objects (spheres, boxes and two-sided planar cards) that translate along smooth random
paths and rotate. ``V`` synchronised pinhole cameras look at the middle of the room, each moving
along one of ReCamMaster's preset trajectories (``geometry.trajectories``) or standing still. Views
come in pairs that start at the same camera (``_random_cameras``), so a dataset holds both the
novel-view task of ReCamMaster (the target path begins at the reference camera) and wide baselines.
World gravity is +y (so the floor is the plane ``y = room.hi[1]``), OpenCV cameras, metres.

Rendering is exact ray casting in NumPy: every pixel-centre ray (``geometry.camera_rays``) is
intersected analytically with the room (ray–slab exit), each sphere (ray–sphere), each box
(ray–slab in the box's frame) and each card (ray–plane + rectangle test); the nearest hit wins.
Colour = the hit object's texture (a real photograph, ``data.textures``) at the hit's surface
coordinates, Lambert-shaded for foreground objects; ``depth`` is the camera z of the hit (not the
ray length). Optional supersampling (``render_record(..., supersample=s)``) averages colour over a
regular ``s × s`` sub-pixel grid while depth and tracks stay those of the pixel-centre ray;
``render_scene`` uses one sample per pixel to keep dataset builds fast. Images are rendered from the
cameras exactly as the record stores them (float32), so a record is a function of its own cameras.
Cameras belong inside the room; one outside it (an extreme novel-view trajectory) sees through the
near walls (they are one-sided) and its rays that miss the room hit nothing: black, depth 0.

Ground truth: tracked points are surface points attached to an object (or to the room), stored
as (owner, object-local coordinates), so they move and rotate with their object; ``points_3d`` is
their world path, ``tracks`` its projection (``geometry.project_points``). A point is visible in
``(v, t)`` when it is in front of the camera, inside the image, the ray from the camera centre to
it first hits *it* (same owner, same distance), and its camera z lies within 1 % of ``depth`` at the
pixel containing its projection (this last test drops points on a silhouette whose pixel centre
sees another surface, so the schema invariant holds literally). Points are sampled uniformly over
the rendered image area (a random view, frame and sub-pixel position, then the surface hit there),
half on foreground objects by default, and every returned point is visible in at least one view
at some frame.

Render styles (``STYLES``, the ``style`` argument of ``render_scene`` and friends) change only the
appearance, never geometry, cameras, depth or tracks (same seed and sizes → same fields except
``video``). ``"default"`` (every dataset config but ``paper``-style ones; its records are unchanged
by the styles' introduction): textures at most ``textures.MAX_TEXTURE_SIDE`` = 128 pixels, nearest-texel
lookups, enough for 64-pixel frames. ``"paper"`` (the 480×832 frames of the paper's 81-frame
videos): textures at their native resolution (≤ ``textures.PAPER_TEXTURE_SIDE`` = 1024 pixels) and
trilinear mip-mapped lookups, so close surfaces are magnified smoothly (no texel blocks) and far or
oblique ones are prefiltered (no texture aliasing). The mip level follows the pixel's footprint on
the surface, ``dist · cos^1.5(α) / f`` metres across the ray (``α`` off-axis angle, ``f`` focal
length in pixels, divided by ``s`` when supersampling) over ``√|cos θ|`` (``θ`` the incidence
angle; the area-preserving isotropic choice), against the texels per metre of that surface.

Object paths, spins and camera trajectories are defined over the clip, whatever ``T``: at the
paper's 81 frames and 480×832 visible tracks move a median 2.6 pixels per frame (95th percentile
6.4), a plausible video rate, so the paper style keeps the default scene layout and motion.

Memory: rays are cast in chunks of whole frames of at most ``_MAX_CHUNK_RAYS`` (2²¹) rays, so a
480×832 × 2-view × 81-frame scene (65 M rays) peaks at about 2.8 GB, not tens. The arithmetic is per
frame, so chunked renders equal one-pass ones bit for bit, and a render that fits one chunk (every
default-size or tiny scene) runs the single-pass code it always ran.

Public API: ``render_scene`` (a random scene from a seed → record), ``render_scene_views`` (that
scene and its tracked points from other cameras: novel-view ground truth), ``render_novel_view``
(a reference view and a target path given relative to it, as generation takes cameras, with optional
query pixels tracked: the ground truth of ``evaluate`` and ``generate``), and for explicitly
constructed scenes ``Scene``/``Room``/``SceneObject``/``render_record``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mvtrack_jax.data import textures as textures_lib
from mvtrack_jax.geometry import cameras
from mvtrack_jax.geometry import trajectories

KINDS = ("sphere", "box", "card")
MISS = -1  # owner id of a ray that hits nothing (only possible from a camera outside the room).
FOREGROUND_SHARE = 0.5  # default share of tracked points on foreground objects.

# Visibility tolerances. The schema's depth test allows 1 %; we keep a margin so float32 storage
# of points, cameras and depth cannot flip a borderline point.
_DEPTH_REL_TOL = 0.0099
_SELF_HIT_REL_TOL = 1e-4
_NEAR = 1e-4  # metres: hits closer than this along a ray are ignored.

# Random-scene layout (metres, world gravity +y).
_ROOM_LO = np.array([-7.0, -5.0, -7.0])
_ROOM_HI = np.array([7.0, 1.3, 7.0])
_SCENE_CENTRE = np.array([0.0, -0.2, 0.0])
_CAMERA_MIN_RADIUS = 2.2  # horizontal distance from the room axis that cameras never get under.
_CAMERA_ROOM_MARGIN = 0.5
_LIGHT = np.array([0.35, -1.0, -0.45]) / np.linalg.norm([0.35, -1.0, -0.45])  # towards the light.

# Rays cast at once (whole frames; a frame larger than this is cast alone): bounds the float64
# (3, R) ray and intersection temporaries to a few hundred MB.
_MAX_CHUNK_RAYS = 1 << 21
_MIN_COS = 0.02  # incidence cosines below this count as this in the mip-map footprint.
_MIPMAP_CACHE_SIZE = 64  # textures whose mip-map pyramids are kept per process.
TEXTURE_FILTERS = ("nearest", "trilinear")


@dataclasses.dataclass(frozen=True)
class RenderStyle:
  """How a random scene looks (module docstring, "Render styles").

  Attributes:
    texture_side: longest side of the textures in pixels (``textures.load_textures(texture_side)``).
    texture_filter: ``"nearest"`` (one texel per lookup) or ``"trilinear"`` (mip-mapped, bilinear
      within and linear between the two nearest levels of ``textures.mipmap_levels``).
  """
  texture_side: int
  texture_filter: str


STYLES = {
    "default": RenderStyle(texture_side=textures_lib.MAX_TEXTURE_SIDE, texture_filter="nearest"),
    "paper": RenderStyle(texture_side=textures_lib.PAPER_TEXTURE_SIDE, texture_filter="trilinear"),
}


@dataclasses.dataclass(frozen=True)
class SceneObject:
  """A rigid textured foreground object and its per-frame pose.

  Attributes:
    kind: ``"sphere"``, ``"box"`` or ``"card"``.
    size: sphere ``(radius,)``; box half-extents ``(hx, hy, hz)``; card half-sizes ``(hx, hy)`` of a
      rectangle in its local ``z = 0`` plane (two-sided). Metres.
    texture: ``(h, w, 3)`` float32 RGB in ``[0, 1]``.
    centres: ``(T, 3)`` world position of the object's origin per frame, metres.
    rotations: ``(T, 3, 3)`` object-to-world rotations per frame.
  """
  kind: str
  size: np.ndarray
  texture: np.ndarray
  centres: np.ndarray
  rotations: np.ndarray


@dataclasses.dataclass(frozen=True)
class Room:
  """The static background: the inside of the box ``[lo, hi]`` with one texture per face.

  Attributes:
    lo, hi: ``(3,)`` opposite corners, metres; cameras belong inside (see ``_intersect_room``).
    textures: 6 textures for the faces ``-x, +x, -y, +y, -z, +z`` (``+y`` is the floor), tiled
      every ``tile`` metres.
    tile: texture repeat length in metres.
  """
  lo: np.ndarray
  hi: np.ndarray
  textures: tuple[np.ndarray, ...]
  tile: float = 2.0


@dataclasses.dataclass(frozen=True)
class Scene:
  """A room plus foreground objects over ``num_frames`` frames. Owner id 0 = room, k+1 = objects[k].

  Raises:
    ValueError: an object of unknown kind or whose pose arrays are not ``(T, 3)`` / ``(T, 3, 3)``.
  """
  room: Room
  objects: tuple[SceneObject, ...]
  num_frames: int

  def __post_init__(self):
    for k, obj in enumerate(self.objects):
      if obj.kind not in KINDS:
        raise ValueError(f"Scene: objects[{k}].kind is {obj.kind!r}; expected one of {KINDS}")
      if np.shape(obj.centres) != (self.num_frames, 3) or np.shape(obj.rotations) != (self.num_frames, 3, 3):
        raise ValueError(
            f"Scene: objects[{k}] has centres {np.shape(obj.centres)} / rotations {np.shape(obj.rotations)}, "
            f"expected ({self.num_frames}, 3) / ({self.num_frames}, 3, 3)")


# --------------------------------------------------------------------------------------------------
# Ray casting. Internally rays are sorted by frame and stored structure-of-arrays ``(3, R)`` so
# each object's per-frame pose is applied with one small matmul per frame.


def _frame_bounds(frames_sorted: np.ndarray, num_frames: int) -> np.ndarray:
  """``(T + 1,)`` start offsets of each frame's run in an ascending ``frames`` array."""
  return np.searchsorted(frames_sorted, np.arange(num_frames + 1))


def _to_local(obj: SceneObject, vecs: np.ndarray, bounds: np.ndarray, is_point: bool) -> np.ndarray:
  """World ``(3, R)`` points (``is_point``) or directions → the object's frame, frame-sorted rays."""
  out = np.empty_like(vecs)
  for t in np.nonzero(bounds[1:] > bounds[:-1])[0]:
    s, e = bounds[t], bounds[t + 1]
    block = vecs[:, s:e] - obj.centres[t][:, None] if is_point else vecs[:, s:e]
    out[:, s:e] = obj.rotations[t].T @ block
  return out


def _intersect_object(obj: SceneObject, o: np.ndarray, d: np.ndarray) -> np.ndarray:
  """Ray length ``(R,)`` to the first hit beyond ``_NEAR`` (inf when missed); local SoA unit rays."""
  with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
    if obj.kind == "sphere":
      r = float(obj.size[0])
      b = o[0] * d[0] + o[1] * d[1] + o[2] * d[2]
      c = o[0] * o[0] + o[1] * o[1] + o[2] * o[2] - r * r
      disc = b * b - c
      sq = np.sqrt(np.maximum(disc, 0.0))
      near, far = -b - sq, -b + sq
      s = np.where(near > _NEAR, near, np.where(far > _NEAR, far, np.inf))
      return np.where(disc >= 0, s, np.inf)
    if obj.kind == "box":
      t_near = np.full(o.shape[1], -np.inf)
      t_far = np.full(o.shape[1], np.inf)
      for i in range(3):
        h = float(obj.size[i])
        di = np.where(np.abs(d[i]) < 1e-300, 1e-300, d[i])
        t1 = (-h - o[i]) / di
        t2 = (h - o[i]) / di
        t_near = np.maximum(t_near, np.minimum(t1, t2))
        t_far = np.minimum(t_far, np.maximum(t1, t2))
      ok = (t_near <= t_far) & (t_far > _NEAR)
      return np.where(ok, np.where(t_near > _NEAR, t_near, t_far), np.inf)
    if obj.kind == "card":
      hx, hy = float(obj.size[0]), float(obj.size[1])
      s = -o[2] / d[2]
      ok = np.isfinite(s) & (s > _NEAR) & (np.abs(o[0] + s * d[0]) <= hx) & (np.abs(o[1] + s * d[1]) <= hy)
      return np.where(ok, s, np.inf)
  raise ValueError(f"unknown object kind {obj.kind!r}; expected one of {KINDS}")


def _intersect_room(room: Room, o: np.ndarray, d: np.ndarray) -> np.ndarray:
  """Ray length ``(R,)`` to the room's inner surface, ``inf`` where a ray misses it (SoA rays).

  The walls are one-sided, seen from inside: from a camera outside the room the near wall is
  transparent, a ray through the room sees the inner face of the far wall (the slab exit, as from
  inside), and a ray that misses the room's box, or has it behind, hits nothing.
  """
  t_exit = np.full(o.shape[1], np.inf)
  t_enter = np.full(o.shape[1], -np.inf)
  with np.errstate(divide="ignore", invalid="ignore"):
    for i in range(3):
      di = np.where(np.abs(d[i]) < 1e-300, 1e-300, d[i])
      a, b = (room.lo[i] - o[i]) / di, (room.hi[i] - o[i]) / di
      t_exit = np.minimum(t_exit, np.maximum(a, b))
      t_enter = np.maximum(t_enter, np.minimum(a, b))
  return np.where((t_enter <= t_exit) & (t_exit > _NEAR), t_exit, np.inf)


def _cast_sorted(scene: Scene, o: np.ndarray, d: np.ndarray, bounds: np.ndarray):
  """``cast_rays`` on frame-sorted SoA rays ``(3, R)``."""
  dist = _intersect_room(scene.room, o, d)
  owner = np.zeros(o.shape[1], np.int32)
  for k, obj in enumerate(scene.objects):
    s = _intersect_object(obj, _to_local(obj, o, bounds, True), _to_local(obj, d, bounds, False))
    closer = s < dist
    dist = np.where(closer, s, dist)
    owner[closer] = k + 1
  owner[np.isinf(dist)] = MISS  # only from outside the room (``_intersect_room``).
  return dist, owner


def cast_rays(scene: Scene, origins: np.ndarray, dirs: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Nearest surface along each ray.

  Args:
    scene: the scene.
    origins: ``(R, 3)`` ray origins, metres (normally inside the room; see ``_intersect_room`` for
      origins outside it).
    dirs: ``(R, 3)`` unit ray directions.
    frames: ``(R,)`` int frame index of each ray (selects object poses).

  Returns:
    ``(dist, owner)``: ``(R,)`` float64 ray length to the first hit and ``(R,)`` int32 owner id of
    the hit (0 = room, k+1 = ``scene.objects[k]``); ``(inf, MISS)`` for a ray that hits nothing,
    which only happens from outside the room.
  """
  frames = np.asarray(frames, np.int64)
  order = np.argsort(frames, kind="stable")
  bounds = _frame_bounds(frames[order], scene.num_frames)
  o = np.ascontiguousarray(np.asarray(origins, np.float64)[order].T)
  d = np.ascontiguousarray(np.asarray(dirs, np.float64)[order].T)
  dist_sorted, owner_sorted = _cast_sorted(scene, o, d, bounds)
  dist = np.empty_like(dist_sorted)
  owner = np.empty_like(owner_sorted)
  dist[order] = dist_sorted
  owner[order] = owner_sorted
  return dist, owner


def _sample_texture(texture: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Nearest-texel lookup with wrap-around; ``u`` along width, ``v`` along height, period 1."""
  h, w = texture.shape[:2]
  col = (np.floor(u * w).astype(np.int64)) % w
  row = (np.floor(v * h).astype(np.int64)) % h
  return texture[row, col]


@dataclasses.dataclass(frozen=True)
class _Mipmap:
  """A texture's mip-map pyramid, levels stacked: ``texels (Σ h_l·w_l, 3)`` float32; ``(L,)`` int64
  ``offsets`` (first texel of level l), ``heights`` and ``widths``."""
  texels: np.ndarray
  offsets: np.ndarray
  heights: np.ndarray
  widths: np.ndarray


_MIPMAPS: dict[int, tuple[np.ndarray, _Mipmap]] = {}


def _mipmap(texture: np.ndarray) -> _Mipmap:
  """The (cached, per process) mip-map pyramid of ``texture``; textures are treated as immutable."""
  entry = _MIPMAPS.get(id(texture))
  if entry is not None and entry[0] is texture:  # the array is held, so its id is not reused.
    return entry[1]
  levels = textures_lib.mipmap_levels(texture)
  sizes = np.array([level.shape[0] * level.shape[1] for level in levels], np.int64)
  mip = _Mipmap(np.concatenate([level.reshape(-1, 3) for level in levels]),
                np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
                np.array([level.shape[0] for level in levels], np.int64),
                np.array([level.shape[1] for level in levels], np.int64))
  if len(_MIPMAPS) >= _MIPMAP_CACHE_SIZE:
    _MIPMAPS.pop(next(iter(_MIPMAPS)))
  _MIPMAPS[id(texture)] = (texture, mip)
  return mip


def _bilinear(mip: _Mipmap, level: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """``(R, 3)`` bilinear lookups at per-ray mip ``level`` ``(R,)`` int, wrap-around, period 1 in ``u, v``."""
  h, w, offset = mip.heights[level], mip.widths[level], mip.offsets[level]
  x = u * w - 0.5  # texel centres at (i + 0.5) / w
  y = v * h - 0.5
  x0, y0 = np.floor(x), np.floor(y)
  ax = (x - x0).astype(np.float32)[:, None]
  ay = (y - y0).astype(np.float32)[:, None]
  c0 = x0.astype(np.int64) % w
  c1 = (c0 + 1) % w
  r0 = offset + (y0.astype(np.int64) % h) * w
  r1 = offset + ((y0.astype(np.int64) + 1) % h) * w
  t = mip.texels
  top = t[r0 + c0] * (1.0 - ax) + t[r0 + c1] * ax
  bottom = t[r1 + c0] * (1.0 - ax) + t[r1 + c1] * ax
  return top * (1.0 - ay) + bottom * ay


def _sample_mipmap(texture: np.ndarray, u: np.ndarray, v: np.ndarray, span_u: np.ndarray,
                   span_v: np.ndarray) -> np.ndarray:
  """Trilinear mip-mapped lookup with wrap-around (``_sample_texture``'s ``u``/``v``, period 1).

  Args:
    texture: ``(h, w, 3)`` float32.
    u, v: ``(R,)`` texture coordinates along width / height.
    span_u, span_v: ``(R,)`` extent of each lookup's pixel footprint in ``u`` / ``v`` units; the level
      is ``log2`` of the larger one in level-0 texels (``≤ 1`` texel: level 0, bilinear).

  Returns:
    ``(R, 3)`` float32 colours.
  """
  mip = _mipmap(texture)
  h0, w0 = texture.shape[:2]
  rho = np.maximum(span_u * w0, span_v * h0)
  lod = np.clip(np.log2(np.maximum(rho, 1.0)), 0.0, mip.offsets.size - 1)
  lo = np.floor(lod).astype(np.int64)
  hi = np.minimum(lo + 1, mip.offsets.size - 1)
  frac = (lod - lo).astype(np.float32)[:, None]
  return _bilinear(mip, lo, u, v) * (1.0 - frac) + _bilinear(mip, hi, u, v) * frac


def _shade(scene: Scene, o: np.ndarray, d: np.ndarray, frames: np.ndarray, dist: np.ndarray,
           owner: np.ndarray, footprint: np.ndarray | None = None) -> np.ndarray:
  """Colour ``(R, 3)`` float32 in [0, 1] of each hit; frame-sorted SoA rays ``(3, R)``.

  ``footprint``: ``None`` → nearest-texel lookups (the ``"default"`` style); else ``(R,)`` metres a
  pixel spans across each ray at its hit → trilinear mip-mapped lookups whose level follows that
  footprint over ``√|cos θ|`` against the surface's metres per texture period.
  """
  rgb = np.zeros((o.shape[1], 3), np.float32)
  points = o + np.where(owner == MISS, 0.0, dist)[None] * d  # misses stay black.
  sel = np.nonzero(owner == 0)[0]
  if sel.size:
    room = scene.room
    p = points[:, sel]
    gaps = np.concatenate([np.abs(p - room.lo[:, None]), np.abs(p - room.hi[:, None])], axis=0)
    face = np.argmin(gaps, axis=0)  # 0..5 = -x,-y,-z,+x,+y,+z
    axis = face % 3
    face_index = 2 * axis + face // 3  # → order -x, +x, -y, +y, -z, +z
    first = np.where(axis == 0, p[1], p[0]) / room.tile
    second = np.where(axis == 2, p[1], p[2]) / room.tile
    col = np.zeros((sel.size, 3), np.float32)
    for f in range(6):
      m = face_index == f
      if m.any():
        if footprint is None:
          texel = _sample_texture(room.textures[f], first[m], second[m])
        else:  # the face's normal is its axis; one texture period = room.tile metres.
          cos = np.abs(d[axis[m], sel[m]])
          span = footprint[sel[m]] / np.sqrt(np.maximum(cos, _MIN_COS)) / room.tile
          texel = _sample_mipmap(room.textures[f], first[m], second[m], span, span)
        col[m] = texel * (0.75 + 0.05 * f)
    rgb[sel] = col
  for k, obj in enumerate(scene.objects):
    sel = np.nonzero(owner == k + 1)[0]
    if not sel.size:
      continue
    bounds = _frame_bounds(frames[sel], scene.num_frames)
    local = _to_local(obj, points[:, sel], bounds, True)
    size = np.asarray(obj.size, np.float64)
    if obj.kind == "sphere":
      unit = local / np.linalg.norm(local, axis=0, keepdims=True)
      u = 0.5 + np.arctan2(unit[0], unit[2]) / (2 * np.pi)
      v = np.arccos(np.clip(unit[1], -1.0, 1.0)) / np.pi
      normal = unit
    elif obj.kind == "box":
      scaled = local / size[:, None]
      axis = np.argmax(np.abs(scaled), axis=0)
      sign = np.sign(np.take_along_axis(scaled, axis[None], axis=0)[0])
      a = np.where(axis == 0, scaled[1], scaled[0])
      b = np.where(axis == 2, scaled[1], scaled[2])
      u = 0.5 * (a + 1.0) + 0.37 * axis  # shift per face so faces show different parts.
      v = 0.5 * (b + 1.0) + 0.21 * (sign > 0)
      normal = np.zeros_like(local)
      np.put_along_axis(normal, axis[None], sign[None], axis=0)
    else:  # card
      u = 0.5 * (local[0] / size[0] + 1.0)
      v = 0.5 * (local[1] / size[1] + 1.0)
      normal = np.zeros_like(local)
      normal[2] = 1.0
    lambert = np.empty(sel.size)
    for t in np.nonzero(bounds[1:] > bounds[:-1])[0]:
      s, e = bounds[t], bounds[t + 1]
      lambert[s:e] = _LIGHT @ (obj.rotations[t] @ normal[:, s:e])
    lambert = np.abs(lambert) if obj.kind == "card" else np.maximum(lambert, 0.0)
    shade = (0.45 + 0.55 * lambert).astype(np.float32)
    if footprint is None:
      texel = _sample_texture(obj.texture, u, v)
    else:
      # Metres per texture period along u and v (u, v as set above for each kind).
      if obj.kind == "sphere":
        metres_u = 2 * np.pi * size[0] * np.maximum(np.sqrt(np.maximum(1.0 - unit[1] ** 2, 0.0)), 1e-3)
        metres_v = np.pi * size[0]
      elif obj.kind == "box":
        metres_u = 2 * size[np.where(axis == 0, 1, 0)]
        metres_v = 2 * size[np.where(axis == 2, 1, 2)]
      else:
        metres_u, metres_v = 2 * size[0], 2 * size[1]
      cos = np.abs((_to_local(obj, d[:, sel], bounds, False) * normal).sum(axis=0))
      spread = footprint[sel] / np.sqrt(np.maximum(cos, _MIN_COS))
      texel = _sample_mipmap(obj.texture, u, v, spread / metres_u, spread / metres_v)
    rgb[sel] = texel * shade[:, None]
  return rgb


def _rays_through(intrinsics, cam_to_world, xy) -> tuple[np.ndarray, np.ndarray]:
  """World rays through continuous pixel positions.

  Args:
    intrinsics: ``(R, 3, 3)``; cam_to_world: ``(R, 4, 4)``; xy: ``(R, 2)`` pixel coordinates.

  Returns:
    ``(origins (R, 3), unit directions (R, 3))``.
  """
  fx, fy = intrinsics[:, 0, 0], intrinsics[:, 1, 1]
  cx, cy, skew = intrinsics[:, 0, 2], intrinsics[:, 1, 2], intrinsics[:, 0, 1]
  y_cam = (xy[:, 1] - cy) / fy
  x_cam = (xy[:, 0] - cx - skew * y_cam) / fx
  d_cam = np.stack([x_cam, y_cam, np.ones_like(x_cam)], axis=-1)
  d = np.einsum("rij,rj->ri", cam_to_world[:, :3, :3], d_cam)
  return cam_to_world[:, :3, 3], d / np.linalg.norm(d, axis=-1, keepdims=True)


def _primary_rays(intrinsics, cam_to_world, height, width, offset=None):
  """Frame-major SoA rays of every view/frame: ``o, d`` ``(3, T·V·H·W)`` and frame bounds.

  Camera-space directions come from ``geometry.camera_rays`` (pixel centres) with an identity
  pose, or through ``pixel corner + offset`` when ``offset`` (2,) is given (supersampling).
  """
  v_count, t_count = intrinsics.shape[:2]
  p = height * width
  o = np.empty((3, t_count, v_count, p))
  d = np.empty((3, t_count, v_count, p))
  for v in range(v_count):
    for t in range(t_count):
      if offset is None:
        _, d_cam = cameras.camera_rays(intrinsics[v, t], np.eye(4), height, width)
        d_cam = d_cam.reshape(p, 3).T
      else:
        xy = (cameras.pixel_centers(height, width, np.float64) - 0.5 + offset).reshape(p, 2)
        _, d_cam = _rays_through(intrinsics[v, t][None].repeat(p, 0), np.eye(4)[None].repeat(p, 0), xy)
        d_cam = d_cam.T
      d[:, t, v] = cam_to_world[v, t, :3, :3] @ d_cam
      o[:, t, v] = cam_to_world[v, t, :3, 3][:, None]
  frames = np.repeat(np.arange(t_count), v_count * p)
  return o.reshape(3, -1), d.reshape(3, -1), frames, _frame_bounds(frames, t_count)


def _frames_of(scene: Scene, frames: slice) -> Scene:
  """The scene restricted to a contiguous range of frames (object poses sliced, room shared)."""
  objects = tuple(dataclasses.replace(obj, centres=obj.centres[frames], rotations=obj.rotations[frames])
                  for obj in scene.objects)
  return Scene(scene.room, objects, len(range(*frames.indices(scene.num_frames))))


def _render_views(scene: Scene, intrinsics, cam_to_world, height, width, supersample, texture_filter="nearest"):
  """Renders every view and frame, in chunks of whole frames of at most ``_MAX_CHUNK_RAYS`` rays.

  A render that fits one chunk is one ``_render_frames`` call; otherwise each chunk renders the
  scene restricted to its frames (``_frames_of``) with the same per-frame arithmetic.

  Returns:
    ``(video (V,T,H,W,3) uint8, depth (V,T,H,W) float64, owner (V,T,H,W) int32)``; pixels whose ray
    hits nothing (``MISS``, cameras outside the room) are black with depth 0.
  """
  v_count, t_count = intrinsics.shape[:2]
  step = max(1, _MAX_CHUNK_RAYS // (v_count * height * width))
  if step >= t_count:
    return _render_frames(scene, intrinsics, cam_to_world, height, width, supersample, texture_filter)
  video = np.empty((v_count, t_count, height, width, 3), np.uint8)
  depth = np.empty((v_count, t_count, height, width))
  owner = np.empty((v_count, t_count, height, width), np.int32)
  for start in range(0, t_count, step):
    chunk = slice(start, min(start + step, t_count))
    video[:, chunk], depth[:, chunk], owner[:, chunk] = _render_frames(
        _frames_of(scene, chunk), intrinsics[:, chunk], cam_to_world[:, chunk], height, width, supersample,
        texture_filter)
  return video, depth, owner


def _pixel_footprint(intrinsics, d, forward, dist, owner, height, width, supersample) -> np.ndarray:
  """``(R,)`` metres a pixel (a sub-pixel when supersampling) spans across each frame-major ray at its hit.

  ``dist · cos^1.5(α) / f``: ``α`` the ray's angle to the optical axis (``cos α = d · forward``),
  ``f`` the focal length in pixels (``fx``; square pixels); 0 where the ray hits nothing.
  """
  inv_f = np.repeat((1.0 / intrinsics[:, :, 0, 0]).T.reshape(-1), height * width)
  cos_axis = np.maximum((d * forward).sum(axis=0), 0.0)
  return np.where(owner == MISS, 0.0, dist) * cos_axis ** 1.5 * inv_f / supersample


def _render_frames(scene: Scene, intrinsics, cam_to_world, height, width, supersample, texture_filter):
  """``_render_views`` of the frames of ``scene`` in one pass (all rays at once)."""
  if texture_filter not in TEXTURE_FILTERS:
    raise ValueError(f"unknown texture filter {texture_filter!r}; expected one of {TEXTURE_FILTERS}")
  trilinear = texture_filter == "trilinear"
  v_count, t_count = intrinsics.shape[:2]
  o, d, frames, bounds = _primary_rays(intrinsics, cam_to_world, height, width)
  dist, owner = _cast_sorted(scene, o, d, bounds)
  forward = np.repeat(cam_to_world[:, :, :3, 2].transpose(2, 1, 0), height * width, axis=-1).reshape(3, -1)
  depth = np.where(owner == MISS, 0.0, dist) * (d * forward).sum(axis=0)  # no surface: depth 0 (and black).
  if supersample <= 1:
    footprint = _pixel_footprint(intrinsics, d, forward, dist, owner, height, width, 1) if trilinear else None
    rgb = _shade(scene, o, d, frames, dist, owner, footprint)
  else:
    rgb = np.zeros((dist.size, 3), np.float32)
    for oy in (np.arange(supersample) + 0.5) / supersample:
      for ox in (np.arange(supersample) + 0.5) / supersample:
        o_s, d_s, _, _ = _primary_rays(intrinsics, cam_to_world, height, width, np.array([ox, oy]))
        dist_s, owner_s = _cast_sorted(scene, o_s, d_s, bounds)
        footprint = (_pixel_footprint(intrinsics, d_s, forward, dist_s, owner_s, height, width, supersample)
                     if trilinear else None)
        rgb += _shade(scene, o_s, d_s, frames, dist_s, owner_s, footprint)
    rgb /= supersample * supersample
  shape = (t_count, v_count, height, width)
  video = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8).reshape(shape + (3,)).transpose(1, 0, 2, 3, 4)
  return (np.ascontiguousarray(video), np.ascontiguousarray(depth.reshape(shape).transpose(1, 0, 2, 3)),
          np.ascontiguousarray(owner.reshape(shape).transpose(1, 0, 2, 3)))


# --------------------------------------------------------------------------------------------------
# Tracks.


def points_world(scene: Scene, owners: np.ndarray, local: np.ndarray) -> np.ndarray:
  """World paths ``(T, N, 3)`` of points attached to their owners (0 = room: local = world)."""
  t_count = scene.num_frames
  out = np.broadcast_to(local[None], (t_count,) + local.shape).copy()
  for k, obj in enumerate(scene.objects):
    m = owners == k + 1
    if m.any():
      out[:, m] = np.einsum("tij,nj->tni", obj.rotations, local[m]) + obj.centres[:, None]
  return out


def _owner_local(scene: Scene, owners: np.ndarray, frames: np.ndarray, world: np.ndarray) -> np.ndarray:
  """Object-local coordinates ``(R, 3)`` of world points ``(R, 3)`` on their owners at ``frames`` (room: world)."""
  local = world.copy()
  for k, obj in enumerate(scene.objects):
    mk = owners == k + 1
    if mk.any():
      local[mk] = np.einsum("rji,rj->ri", obj.rotations[frames[mk]], world[mk] - obj.centres[frames[mk]])
  return local


def _track(scene: Scene, intrinsics, world_to_camera, points, owners, depth, depth_test: bool = True):
  """Projections and visibility of world paths ``points`` (T, N, 3) in every view and frame.

  All inputs are the (float32-representable) values the record stores, in float64. Without
  ``depth_test`` only the ray-cast occlusion test decides (not the 1 % agreement with ``depth`` at
  the containing pixel, which a record's points must meet).

  Returns:
    ``(tracks (V,T,N,2) float64, visible (V,T,N) bool)``.
  """
  v_count, t_count, height, width = depth.shape
  n = points.shape[1]
  xy, z = cameras.project_points(points[None], intrinsics, world_to_camera)  # (V,T,N,2), (V,T,N)
  inside = (z > _NEAR) & (xy[..., 0] >= 0) & (xy[..., 0] < width) & (xy[..., 1] >= 0) & (xy[..., 1] < height)
  visible = np.zeros((v_count, t_count, n), bool)
  idx = np.nonzero(inside)
  if idx[0].size:
    vi, ti, ni = idx
    col = np.clip(np.floor(xy[vi, ti, ni, 0]).astype(np.int64), 0, width - 1)
    row = np.clip(np.floor(xy[vi, ti, ni, 1]).astype(np.int64), 0, height - 1)
    pix_depth = depth[vi, ti, row, col]
    zz = z[vi, ti, ni]
    depth_ok = np.abs(zz - pix_depth) <= _DEPTH_REL_TOL * pix_depth
    c2w = cameras.invert_rigid(world_to_camera[vi, ti])
    centre = c2w[:, :3, 3]
    target = points[ti, ni]
    ray = target - centre
    length = np.linalg.norm(ray, axis=-1)
    dist, hit = cast_rays(scene, centre, ray / length[:, None], ti)
    self_hit = (hit == owners[ni]) & (np.abs(dist - length) <= _SELF_HIT_REL_TOL * length + 1e-7)
    visible[vi, ti, ni] = (depth_ok | (not depth_test)) & self_hit
  return xy, visible


def _stored_world_to_camera(cam_to_world) -> np.ndarray:
  """The float32 ``world_to_camera`` a record stores for float64 poses ``cam_to_world = [A | b]``.

  ``[Aᵀ | −A⁻¹b]``: for a rigid pose that is ``geometry.invert_rigid`` (to float64 rounding), and
  unlike ``invert_rigid`` it also inverts ``invert_rigid(world_to_camera)`` of a stored float32
  camera exactly (whose rotation is orthonormal only to float32 precision, so ``A⁻¹ ≠ Aᵀ`` there),
  so a record's own cameras map back to the very values it stores.
  """
  c2w = np.asarray(cam_to_world, np.float64)
  rot = c2w[..., :3, :3]
  w2c = np.zeros(c2w.shape)
  w2c[..., :3, :3] = np.swapaxes(rot, -1, -2)
  w2c[..., :3, 3] = -np.linalg.solve(rot, c2w[..., :3, 3:])[..., 0]
  w2c[..., 3, 3] = 1.0
  return w2c.astype(np.float32)


def _render_stored(scene: Scene, k32: np.ndarray, w2c32: np.ndarray, height: int, width: int, supersample: int,
                   texture_filter: str = "nearest"):
  """``_render_views`` from the cameras exactly as a record stores them (float32 ``K`` and ``world_to_camera``).

  Rendering from the stored values (not from the float64 poses they were rounded from) makes a
  record a function of the cameras it stores, so re-rendering from a record's own cameras
  (``render_scene_views``) reproduces it bit for bit.
  """
  c2w = cameras.invert_rigid(w2c32.astype(np.float64))
  return _render_views(scene, k32.astype(np.float64), c2w, height, width, supersample, texture_filter)


def _tracked_record(scene: Scene, k32, w2c32, video, depth32, owners, pts32) -> dict[str, np.ndarray]:
  """The schema record of rendered views plus the tracks/visibility of the points ``pts32`` (T, N, 3)."""
  tracks, visible = _track(scene, k32.astype(np.float64), w2c32.astype(np.float64), pts32.astype(np.float64),
                           owners, depth32.astype(np.float64))
  return {
      "video": video,
      "intrinsics": k32,
      "world_to_camera": w2c32,
      "depth": depth32,
      "tracks": tracks.astype(np.float32),
      "visible": visible,
      "points_3d": pts32,
  }


def _record_for_cameras(scene: Scene, intrinsics, cam_to_world, height: int, width: int, owners: np.ndarray,
                        pts32: np.ndarray, supersample: int, texture_filter: str = "nearest") -> dict[str, np.ndarray]:
  """Renders ``scene`` from float64-given cameras and tracks the float32 world paths ``pts32``."""
  k32 = np.asarray(intrinsics, np.float32)
  w2c32 = _stored_world_to_camera(cam_to_world)
  video, depth, _ = _render_stored(scene, k32, w2c32, height, width, supersample, texture_filter)
  return _tracked_record(scene, k32, w2c32, video, depth.astype(np.float32), owners, pts32)


def render_record(
    scene: Scene,
    intrinsics: np.ndarray,
    cam_to_world: np.ndarray,
    height: int,
    width: int,
    point_owners: np.ndarray,
    point_local: np.ndarray,
    *,
    supersample: int = 1,
) -> dict[str, np.ndarray]:
  """Renders an explicitly constructed scene and tracks given surface points.

  Args:
    scene: the scene (``T`` frames).
    intrinsics: ``(V, T, 3, 3)`` pixel intrinsics for ``height × width`` images.
    cam_to_world: ``(V, T, 4, 4)`` OpenCV camera-to-world poses. Camera centres belong inside the
      room; from outside it the near walls are transparent and rays that miss the room are black
      with depth 0 (``_intersect_room``).
    height, width: image size in pixels.
    point_owners: ``(N,)`` int owner id of each point (0 = room, k+1 = ``scene.objects[k]``).
    point_local: ``(N, 3)`` point coordinates in the owner's local frame (world for the room),
      metres; they should lie on the owner's surface for the visibility test to find them.
    supersample: ``s >= 1``: colour averages an ``s × s`` sub-pixel grid (depth/tracks unaffected).

  Returns:
    A schema record (``data.schema``): video, intrinsics, world_to_camera, depth, tracks,
    visible, points_3d (float32 / uint8 / bool). Everything is computed from the stored float32
    cameras and points (tracks are their projections; the images are rendered from them).
  """
  owners = np.asarray(point_owners, np.int64)
  pts32 = points_world(scene, owners, np.asarray(point_local, np.float64)).astype(np.float32)
  return _record_for_cameras(scene, intrinsics, cam_to_world, height, width, owners, pts32, supersample)


# --------------------------------------------------------------------------------------------------
# Random scenes.


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
  """A uniformly random rotation matrix (QR of a Gaussian matrix with sign fix)."""
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))
  if np.linalg.det(q) < 0:
    q[:, 0] = -q[:, 0]
  return q


def _random_object(rng: np.random.Generator, num_frames: int, texture: np.ndarray) -> SceneObject:
  """A random object on a smooth random path (two sinusoids per axis) spinning about a fixed axis."""
  kind = KINDS[int(rng.integers(len(KINDS)))]
  if kind == "sphere":
    size = np.array([rng.uniform(0.3, 0.65)])
  elif kind == "box":
    size = rng.uniform(0.2, 0.45, size=3)
  else:
    size = np.array([rng.uniform(0.3, 0.65), rng.uniform(0.25, 0.55)])
  tau = np.linspace(0.0, 1.0, num_frames)
  radius, azimuth = 0.6 * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
  base = np.array([radius * np.cos(azimuth), rng.uniform(-0.7, 0.2), radius * np.sin(azimuth)])
  amp = rng.uniform(0.0, 0.2, size=(2, 3))
  freq = rng.uniform(0.3, 1.0, size=(2, 3))
  phase = rng.uniform(0, 2 * np.pi, size=(2, 3))
  wave = np.sin(2 * np.pi * freq[None] * tau[:, None, None] + phase[None])  # (T, 2, 3)
  centres = base + (amp[None] * (wave - np.sin(phase)[None])).sum(axis=1)
  axis = rng.normal(size=3)
  axis /= np.linalg.norm(axis)
  angle = rng.uniform(-np.pi, np.pi) * tau
  spin = trajectories._rotation_about_axis(axis, angle)  # pylint: disable=protected-access
  rotations = spin @ _random_rotation(rng)
  return SceneObject(kind, size, texture, centres, rotations)


def _camera_ok(c2w: np.ndarray) -> bool:
  centres = c2w[:, :3, 3]
  inside = np.all((centres > _ROOM_LO + _CAMERA_ROOM_MARGIN) & (centres < _ROOM_HI - _CAMERA_ROOM_MARGIN))
  return bool(inside and np.all(np.hypot(centres[:, 0], centres[:, 2]) >= _CAMERA_MIN_RADIUS))


def _random_cameras(rng: np.random.Generator, num_views: int, num_frames: int, height: int, width: int):
  """``num_views`` cameras around the scene centre on random preset trajectories.

  Views come in pairs: an even view ``2k`` starts at its own place around the room (the starts of the
  even views spread over a random arc), and the odd view ``2k + 1`` starts at **the same camera**
  (pose and intrinsics of view ``2k`` at frame 0) and follows another random preset. A reference →
  target pair of such views is the novel-view task as ReCamMaster poses it and as ``evaluate`` scores
  it (the target trajectory begins at the reference camera); pairs across pairs are wide-baseline.

  Returns:
    ``(intrinsics (V,T,3,3), cam_to_world (V,T,4,4), names)``.
  """
  az0 = rng.uniform(0, 2 * np.pi)
  span = rng.uniform(np.pi / 2, 2 * np.pi)
  starts = (num_views + 1) // 2
  ks, poses, names = [], [], []
  for v in range(num_views):
    if v % 2 == 0:
      azimuth = az0 + span * (v // 2) / starts + rng.normal(scale=0.15)
      radius = rng.uniform(2.8, 3.8)
      eye = np.array([radius * np.cos(azimuth), rng.uniform(-1.8, -0.3), radius * np.sin(azimuth)])
      target = _SCENE_CENTRE + rng.normal(scale=0.2, size=3)
      start = cameras.invert_rigid(cameras.look_at(eye, target))
      distance = float(np.linalg.norm(target - eye))
      fov = rng.uniform(45.0, 70.0)
    for _ in range(10):
      name = trajectories.TRAJECTORY_NAMES[int(rng.integers(len(trajectories.TRAJECTORY_NAMES)))]
      kind = name.partition("_")[0]
      scale = rng.uniform(0.5, 1.0)
      magnitude = {
          "pan": trajectories.DEFAULT_PAN_DEGREES * scale,
          "tilt": trajectories.DEFAULT_TILT_DEGREES * scale,
          "arc": trajectories.DEFAULT_ARC_DEGREES * 1.5 * scale,
      }.get(kind, trajectories.DEFAULT_TRANSLATION_FRACTION * distance * scale)
      c2w = trajectories.preset_trajectory(name, num_frames, start_cam_to_world=start, look_at_point=target,
                                           magnitude=magnitude)
      if _camera_ok(c2w):
        break
    else:
      name, c2w = "static", trajectories.preset_trajectory("static", num_frames, start_cam_to_world=start)
    ks.append(np.broadcast_to(cameras.intrinsics_from_fov(height, width, fov).astype(np.float64),
                              (num_frames, 3, 3)))
    poses.append(c2w)
    names.append(name)
  return np.stack(ks), np.stack(poses), names


def random_scene(rng: np.random.Generator, num_frames: int, style: str = "default") -> Scene:
  """A random room with 2–6 moving foreground objects, textured with random photographs.

  ``style`` (a ``STYLES`` name) picks the texture resolution only; the draws from ``rng`` and the
  geometry are the same for every style.
  """
  texs = [image for _, image in textures_lib.load_textures(STYLES[style].texture_side)]
  pick = lambda: texs[int(rng.integers(len(texs)))]
  room = Room(_ROOM_LO.copy(), _ROOM_HI.copy(), tuple(pick() for _ in range(6)), tile=float(rng.uniform(2.5, 4.0)))
  count = int(rng.integers(2, 7))
  return Scene(room, tuple(_random_object(rng, num_frames, pick()) for _ in range(count)), num_frames)


def _sample_points(rng, scene, intrinsics, w2c64, depth, owner_map, count, fg_share):
  """Samples ``count`` tracked points uniformly over rendered image area (see module docstring).

  Returns:
    ``(owners (N,) int64, points (T, N, 3) float32)`` with every point visible somewhere.
  """
  v_count, t_count, height, width = depth.shape
  c2w = cameras.invert_rigid(w2c64)
  wanted = {True: int(round(fg_share * count))}
  wanted[False] = count - wanted[True]
  got = {True: [], False: []}  # lists of (owners, points32) chunks
  have = {True: 0, False: 0}
  pixel_sets = {True: np.flatnonzero(owner_map > 0), False: np.flatnonzero(owner_map == 0)}
  for round_index in range(8):
    for fg in (True, False):
      need = wanted[fg] - have[fg]
      pixels = pixel_sets[fg]
      if need <= 0 or pixels.size == 0:
        continue
      m = 2 * need + 8
      flat = pixels[rng.integers(pixels.size, size=m)]
      vi, ti, row, col = np.unravel_index(flat, owner_map.shape)
      # Random sub-pixel positions first; later rounds use pixel centres, which always pass.
      offset = rng.uniform(size=(m, 2)) if round_index < 3 else np.full((m, 2), 0.5)
      xy = np.stack([col + offset[:, 0], row + offset[:, 1]], axis=-1)
      origins, dirs = _rays_through(intrinsics[vi, ti], c2w[vi, ti], xy)
      dist, hit = cast_rays(scene, origins, dirs, ti)
      keep = (hit != MISS) & ((hit > 0) == fg)
      if not keep.any():
        continue
      hit, ti = hit[keep], ti[keep]
      world = origins[keep] + dist[keep, None] * dirs[keep]
      local = _owner_local(scene, hit, ti, world)
      pts = points_world(scene, hit.astype(np.int64), local).astype(np.float32)
      _, vis = _track(scene, intrinsics, w2c64, pts.astype(np.float64), hit.astype(np.int64), depth)
      ok = vis.any(axis=(0, 1))
      take = np.nonzero(ok)[0][:need]
      if take.size:
        got[fg].append((hit[take].astype(np.int64), pts[:, take]))
        have[fg] += take.size
    if have[True] + have[False] >= count:
      break
    # After a few rounds, hand a class's shortfall to the other (e.g. foreground barely in view).
    if round_index >= 2 and have[True] < wanted[True]:
      wanted[False], wanted[True] = count - have[True], have[True]
    if pixel_sets[False].size == 0 and have[False] < wanted[False]:
      wanted[True], wanted[False] = count - have[False], have[False]
  chunks = got[True] + got[False]
  if not chunks or sum(c[0].size for c in chunks) < count:
    raise RuntimeError(f"render_scene: could only find {sum(c[0].size for c in chunks)} of {count} visible points")
  owners = np.concatenate([c[0] for c in chunks])
  points = np.concatenate([c[1] for c in chunks], axis=1)
  order = rng.permutation(owners.size)[:count]
  return owners[order], points[:, order]


def _check_int(name: str, value, minimum: int, caller: str = "render_scene") -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{caller}: {name} must be an int, got {type(value).__name__} {value!r}")
  if value < minimum:
    raise ValueError(f"{caller}: {name} must be >= {minimum}, got {value}")
  return int(value)


def _check_style(style, caller: str) -> RenderStyle:
  if not isinstance(style, str) or style not in STYLES:
    raise ValueError(f"{caller}: style must be one of {sorted(STYLES)}, got {style!r}")
  return STYLES[style]


@dataclasses.dataclass(frozen=True)
class _RandomScene:
  """Everything a seed determines: the scene, its own cameras and their renders, the tracked points.

  Attributes:
    scene: the random scene.
    intrinsics, world_to_camera: ``(V, T, 3, 3)`` / ``(V, T, 4, 4)`` float32 cameras as stored.
    video, depth: ``(V, T, H, W, 3)`` uint8 / ``(V, T, H, W)`` float32 renders from those cameras.
    owners: ``(N,)`` int64 owner id of each tracked point.
    points_3d: ``(T, N, 3)`` float32 world paths of the tracked points.
    style: the render style the scene's textures and renders use (``STYLES``).
  """
  scene: Scene
  intrinsics: np.ndarray
  world_to_camera: np.ndarray
  video: np.ndarray
  depth: np.ndarray
  owners: np.ndarray
  points_3d: np.ndarray
  style: RenderStyle = STYLES["default"]


def _random_scene_and_points(seed, num_views, num_frames, height, width, num_tracks, caller: str,
                             style: str = "default") -> _RandomScene:
  """The shared part of ``render_scene`` / ``render_scene_views``: validate, then draw in RNG order.

  ``np.random.default_rng(seed)`` is consumed by the scene, then the cameras, then the point
  sampling, which needs the renders of the scene's own views (points are drawn over their image
  area and must be visible in one of them); so the points depend on every size argument.
  """
  seed = _check_int("seed", seed, 0, caller)
  num_views = _check_int("num_views", num_views, 1, caller)
  num_frames = _check_int("num_frames", num_frames, 1, caller)
  height = _check_int("height", height, 1, caller)
  width = _check_int("width", width, 1, caller)
  num_tracks = _check_int("num_tracks", num_tracks, 0, caller)
  render_style = _check_style(style, caller)
  rng = np.random.default_rng(seed)
  scene = random_scene(rng, num_frames, style)
  intrinsics, cam_to_world, _ = _random_cameras(rng, num_views, num_frames, height, width)
  k32 = intrinsics.astype(np.float32)
  w2c32 = _stored_world_to_camera(cam_to_world)
  video, depth, owner_map = _render_stored(scene, k32, w2c32, height, width, 1, render_style.texture_filter)
  depth32 = depth.astype(np.float32)
  if num_tracks:
    owners, pts32 = _sample_points(rng, scene, k32.astype(np.float64), w2c32.astype(np.float64),
                                   depth32.astype(np.float64), owner_map, num_tracks, FOREGROUND_SHARE)
  else:
    owners, pts32 = np.zeros((0,), np.int64), np.zeros((num_frames, 0, 3), np.float32)
  return _RandomScene(scene, k32, w2c32, video, depth32, owners, pts32, render_style)


def render_scene(
    seed: int,
    *,
    num_views: int = 4,
    num_frames: int = 16,
    height: int = 64,
    width: int = 64,
    num_tracks: int = 256,
    style: str = "default",
) -> dict[str, np.ndarray]:
  """Renders one random multi-view dynamic scene with exact ground truth (module docstring).

  Args:
    seed: ``>= 0``; the scene, cameras and points are a deterministic function of
      ``(seed, num_views, num_frames, height, width, num_tracks)`` (``np.random.default_rng(seed)``)
      and of the textures that load on this machine.
    num_views: ``V >= 1`` synchronised cameras.
    num_frames: ``T >= 1`` frames.
    height, width: image size ``H, W >= 1`` pixels.
    num_tracks: ``N >= 0`` tracked points (half on foreground objects when they are in view).
    style: a ``STYLES`` name: ``"default"`` or ``"paper"`` (high-resolution mip-mapped textures for
      480×832 frames); it changes ``video`` only.

  Returns:
    A record that passes ``data.schema.validate_record``: video ``(V,T,H,W,3)`` uint8, intrinsics
    ``(V,T,3,3)``, world_to_camera ``(V,T,4,4)`` (OpenCV, metres), depth ``(V,T,H,W)`` (camera z,
    metres), tracks ``(V,T,N,2)`` (pixels, corner origin), visible ``(V,T,N)`` bool, points_3d
    ``(T,N,3)`` (world, metres); float fields float32. Every point is visible in some (v, t); for
    each visible (v, t, n) the projection equals ``tracks`` and its camera z is within 1 % of
    ``depth`` at the pixel containing it.

  Raises:
    ValueError: an argument is not an int or is out of range, or an unknown style (the message names it).
  """
  s = _random_scene_and_points(seed, num_views, num_frames, height, width, num_tracks, "render_scene", style)
  return _tracked_record(s.scene, s.intrinsics, s.world_to_camera, s.video, s.depth, s.owners, s.points_3d)


def render_scene_views(
    seed: int,
    intrinsics: np.ndarray,
    cam_to_world: np.ndarray,
    *,
    num_views: int,
    num_frames: int,
    height: int,
    width: int,
    num_tracks: int,
    supersample: int = 1,
    style: str = "default",
) -> dict[str, np.ndarray]:
  """``render_scene(seed, ...)``'s scene and tracked points, seen from other cameras.

  Ground truth for novel views (e.g. a target view along ``geometry.preset_trajectory`` started at
  a record's reference camera): the same scene and the same tracked points (``points_3d``
  identical, same order) re-rendered from ``V'`` given cameras, with ``tracks`` / ``visible`` for
  those cameras. Passing a record's own cameras (``intrinsics`` and
  ``geometry.invert_rigid(world_to_camera)``, in float64) reproduces ``render_scene``'s record
  exactly, every field.

  Cameras outside the room (extreme trajectories): the room's walls are seen only from inside, so
  from outside the near walls are transparent and the inner faces of the far walls (and any object
  in between) are seen; a ray that misses the room's box hits nothing and its pixel is black with
  ``depth`` 0, where no point is visible. The record stays schema-valid; a point is visible exactly
  as for cameras inside (in front, in the image, first hit along its ray, within the depth test).

  Cost: the seed's own ``num_views`` views are rendered first (the points are drawn from those
  renders, so this is ``render_scene``'s cost minus its final tracking), then the ``V'`` new
  views are ray-cast (``supersample²`` casts per pixel for colour) and the points tracked in them.
  At the default size (V=4, T=16, 64×64, N=256), measured in CPU time of one core: about 0.2 s
  (``render_scene`` itself: 0.2 s) + 0.05 s per new view, and with ``supersample = s > 1``
  another 0.035 s per new view for each of the ``s²`` colour samples (s = 4: +0.57 s per view).

  Args:
    seed: the scene's seed (``render_scene``'s; ``synthetic_dataset.scene_seed(split, index)`` for
      dataset scenes).
    intrinsics: ``(V', T, 3, 3)`` pixel intrinsics for ``height × width`` images (``V' >= 1``).
    cam_to_world: ``(V', T, 4, 4)`` rigid OpenCV camera-to-world poses in the scene's world frame
      (metres; a record's cameras are ``geometry.invert_rigid(world_to_camera)``).
    num_views, num_frames, height, width, num_tracks: the sizes of the ``render_scene`` call whose
      scene and points are wanted (all of them matter: the point sampling depends on them); the
      new views have the same ``T``, ``H × W`` and ``N``.
    supersample: ``s >= 1``: colour averages an ``s × s`` sub-pixel grid; depth, tracks and
      visibility are those of ``s = 1``. ``render_scene`` uses 1.
    style: ``render_scene``'s style of the scene (``synthetic_dataset.record_sizes`` includes it for
      configs that are not in the default style); the new views are rendered in it too.

  Returns:
    A schema record (``render_scene``'s fields and dtypes) of ``V'`` views: video, intrinsics and
    world_to_camera (the given cameras in float32; everything is rendered and projected from
    these stored values), depth, tracks (projections of ``points_3d`` with the stored cameras,
    also where not visible), visible, and ``points_3d`` equal to ``render_scene``'s. Points need
    not be visible in any new view.

  Raises:
    ValueError: a size argument or style as in ``render_scene``; cameras of the wrong shape (``T``
      must be ``num_frames``), non-finite, or poses that are not rigid; a bad ``supersample``.
  """
  caller = "render_scene_views"
  supersample = _check_int("supersample", supersample, 1, caller)
  k, c2w = _checked_cameras(intrinsics, cam_to_world, num_frames, caller)
  s = _random_scene_and_points(seed, num_views, num_frames, height, width, num_tracks, caller, style)
  return _record_for_cameras(s.scene, k, c2w, height, width, s.owners, s.points_3d, supersample,
                             s.style.texture_filter)


def _checked_cameras(intrinsics, cam_to_world, num_frames, caller: str) -> tuple[np.ndarray, np.ndarray]:
  """``(V', T, 3, 3)`` intrinsics and rigid ``(V', T, 4, 4)`` poses as float64, or a ValueError naming ``caller``."""
  k = np.asarray(intrinsics, np.float64)
  c2w = np.asarray(cam_to_world, np.float64)
  if k.ndim != 4 or k.shape[0] < 1 or k.shape[2:] != (3, 3) or not np.all(np.isfinite(k)):
    raise ValueError(f"{caller}: intrinsics must be a finite (V', T, 3, 3) array, got shape {k.shape}")
  if c2w.shape != k.shape[:2] + (4, 4) or not np.all(np.isfinite(c2w)):
    raise ValueError(f"{caller}: cam_to_world must be a finite (V', T, 4, 4) array matching intrinsics "
                     f"{k.shape[:2]}, got shape {c2w.shape}")
  if k.shape[1] != _check_int("num_frames", num_frames, 1, caller):
    raise ValueError(f"{caller}: the cameras have {k.shape[1]} frames, num_frames is {num_frames!r}")
  rot = c2w[..., :3, :3]
  if not (np.allclose(rot @ np.swapaxes(rot, -1, -2), np.eye(3), atol=1e-5) and np.all(np.linalg.det(rot) > 0)
          and np.allclose(c2w[..., 3, :], [0.0, 0.0, 0.0, 1.0])):
    raise ValueError(f"{caller}: cam_to_world must be rigid (orthonormal rotation, det +1, last row [0, 0, 0, 1])")
  return k, c2w


@dataclasses.dataclass(frozen=True)
class NovelView:
  """A reference camera and a novel target camera of a seeded scene (``render_novel_view``).

  Attributes:
    record: a 2-view schema record with ``render_scene_views``' fields over the scene's ``T``
      frames: view 0 the reference camera (re-rendered from the record's own camera, so equal to
      that view of the dataset record), view 1 the target camera; ``points_3d`` / ``tracks`` /
      ``visible`` are the scene's own tracked points.
    query_tracks: ``(2, T, Q, 2)`` float32 pixels ``(x, y)`` (corner origin) of the query points in
      both views at every frame (also where not visible; NaN for a query whose ray hit nothing), or
      ``None`` when no query points were given.
    query_visible: ``(2, T, Q)`` bool visibility of the query points, or ``None``: in front of the
      camera, inside the image and the first surface along the ray from the camera centre (the
      ray-cast test of ``render_scene``'s points, without their 1 % depth-map test at the containing
      pixel, which would hide a query point on a steep surface between pixel centres).
  """
  record: dict[str, np.ndarray]
  query_tracks: np.ndarray | None = None
  query_visible: np.ndarray | None = None


def render_novel_view(
    seed: int,
    reference_intrinsics: np.ndarray,
    reference_cam_to_world: np.ndarray,
    frames: np.ndarray,
    target_cam_to_world: np.ndarray,
    *,
    num_views: int,
    num_frames: int,
    height: int,
    width: int,
    num_tracks: int,
    query_points: np.ndarray | None = None,
    supersample: int = 1,
    style: str = "default",
) -> NovelView:
  """Ground truth of a novel view of a seeded scene: a reference camera and a target path relative to it.

  The target camera path is given as the generation models take it: camera-to-world poses
  **relative to the reference camera at window frame** ``frames[0]``; in the scene's world frame
  the target pose at window frame ``i`` is ``reference_cam_to_world[frames[0]] @ target_cam_to_world[i]``.
  Record frames outside the window (before it, between strided window frames, after it) hold the
  pose of the latest window frame at or before them (the first one before the window). The target
  camera has the reference's intrinsics at every frame. Both views are rendered with
  ``render_scene_views`` (view 0 with the reference's own cameras, so it reproduces the record's
  view exactly); ``pipeline.window_example(novel.record, config, views=(0, 1), start=frames[0])``
  turns the result into a (reference, ground-truth target) example.

  Query points (optional) are arbitrary pixels of the reference view: each becomes the surface
  point first hit by the ray through it at its frame, attached to that surface (it moves with its
  object), and is projected and visibility-tested in both views at every frame like the scene's
  tracked points (visibility: ``NovelView.query_visible``).

  Args:
    seed: the scene's ``render_scene`` seed (``synthetic_dataset.scene_seed(split, index)``).
    reference_intrinsics: ``(T, 3, 3)`` pixel intrinsics of the reference view (record pixels).
    reference_cam_to_world: ``(T, 4, 4)`` rigid OpenCV camera-to-world poses of the reference view
      in the scene's world frame, metres (a record's ``geometry.invert_rigid(world_to_camera[v])``
      in float64).
    frames: ``(F,)`` strictly increasing int record frames of the window, in ``[0, T)``.
    target_cam_to_world: ``(F, 4, 4)`` rigid target poses relative to the reference camera at
      ``frames[0]`` (identity = the reference camera's frame-0 pose).
    num_views, num_frames, height, width, num_tracks: ``render_scene``'s sizes of the scene
      (``synthetic_dataset.record_sizes``); ``T == num_frames``.
    query_points: optional ``(Q, 3)`` ``(t, x, y)``: integer record frame ``t`` in ``[0, T)`` and
      continuous pixel ``(x, y)`` of the reference view (corner origin, centres at +0.5).
    supersample: colour samples per pixel side (``render_scene_views``).
    style: the scene's ``render_scene`` style (part of ``synthetic_dataset.record_sizes`` for
      configs not in the default style).

  Returns:
    A ``NovelView`` (record and, with query points, their tracks and visibility).

  Raises:
    ValueError: malformed cameras, frames or query points (the message names the argument), or a
      size argument or style as in ``render_scene``.
  """
  caller = "render_novel_view"
  supersample = _check_int("supersample", supersample, 1, caller)
  k = np.asarray(reference_intrinsics, np.float64)
  ref = np.asarray(reference_cam_to_world, np.float64)
  if k.ndim != 3 or k.shape[1:] != (3, 3) or ref.shape != k.shape[:1] + (4, 4):
    raise ValueError(f"{caller}: reference intrinsics (T, 3, 3) and cam_to_world (T, 4, 4) expected, got "
                     f"{k.shape} and {ref.shape}")
  t = k.shape[0]
  frames = np.asarray(frames)
  if (frames.ndim != 1 or frames.size < 1 or not np.issubdtype(frames.dtype, np.integer)
      or np.any(np.diff(frames) <= 0) or frames[0] < 0 or frames[-1] >= t):
    raise ValueError(f"{caller}: frames must be strictly increasing ints in [0, {t}), got {frames.tolist()}")
  rel = np.asarray(target_cam_to_world, np.float64)
  if rel.shape != (frames.size, 4, 4) or not np.all(np.isfinite(rel)):
    raise ValueError(f"{caller}: target_cam_to_world must be a finite ({frames.size}, 4, 4) array (one pose per "
                     f"window frame), got shape {rel.shape}")
  world = ref[frames[0]] @ rel
  position = np.clip(np.searchsorted(frames, np.arange(t), side="right") - 1, 0, frames.size - 1)
  k, c2w = _checked_cameras(np.stack([k, k]), np.stack([ref, world[position]]), num_frames, caller)
  s = _random_scene_and_points(seed, num_views, num_frames, height, width, num_tracks, caller, style)
  record = _record_for_cameras(s.scene, k, c2w, height, width, s.owners, s.points_3d, supersample,
                               s.style.texture_filter)
  if query_points is None:
    return NovelView(record)
  q = np.asarray(query_points, np.float64)
  if q.ndim != 2 or q.shape[1] != 3 or not np.all(np.isfinite(q)):
    raise ValueError(f"{caller}: query_points must be a finite (Q, 3) (t, x, y) array, got shape {q.shape}")
  if np.any(q[:, 0] != np.round(q[:, 0])) or np.any((q[:, 0] < 0) | (q[:, 0] >= t)):
    raise ValueError(f"{caller}: query frames must be integers in [0, {t}), got {q[:, 0].tolist()}")
  if not q.shape[0]:
    return NovelView(record, np.zeros((2, t, 0, 2), np.float32), np.zeros((2, t, 0), bool))
  qt = q[:, 0].astype(np.int64)
  k_stored = record["intrinsics"].astype(np.float64)  # rays and projections use the cameras as stored
  w2c_stored = record["world_to_camera"].astype(np.float64)
  origins, dirs = _rays_through(k_stored[0, qt], cameras.invert_rigid(w2c_stored[0, qt]), q[:, 1:])
  dist, hit = cast_rays(s.scene, origins, dirs, qt)
  miss = hit == MISS
  owners = np.where(miss, 0, hit).astype(np.int64)
  hits = origins + np.where(miss, 0.0, dist)[:, None] * dirs
  points = points_world(s.scene, owners, _owner_local(s.scene, owners, qt, hits)).astype(np.float32)
  tracks, visible = _track(s.scene, k_stored, w2c_stored, points.astype(np.float64), owners,
                           record["depth"].astype(np.float64), depth_test=False)
  tracks[:, :, miss] = np.nan
  visible[:, :, miss] = False
  return NovelView(record, tracks.astype(np.float32), visible)
