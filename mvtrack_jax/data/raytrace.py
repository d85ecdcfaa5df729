"""The synthetic dataset's renderer core: scene types (a textured room and rigid textured objects over time), ray
casting against them, texture filtering (nearest texel, or trilinear over mip-maps) and shading, and rendering
whole views. ``data.synthetic`` builds random scenes, tracks points and assembles records on top of it (its module
docstring describes the scenes, render styles, filtering and memory bounds).

Conventions: world metres with gravity along +y; OpenCV cameras (``cam_to_world`` ``(T, 4, 4)``, intrinsics
``(T, 3, 3)`` pixels, corner origin, pixel centres at +0.5); videos ``(T, H, W, 3)`` uint8.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mvtrack_jax.data import textures as textures_lib
from mvtrack_jax.geometry import cameras

KINDS = ("sphere", "box", "card")
MISS = -1  # owner id of a ray that hits nothing (only possible from a camera outside the room).
NEAR = 1e-4  # metres: hits closer than this along a ray are ignored.

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
  """Ray length ``(R,)`` to the first hit beyond ``NEAR`` (inf when missed); local SoA unit rays."""
  with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
    if obj.kind == "sphere":
      r = float(obj.size[0])
      b = o[0] * d[0] + o[1] * d[1] + o[2] * d[2]
      c = o[0] * o[0] + o[1] * o[1] + o[2] * o[2] - r * r
      disc = b * b - c
      sq = np.sqrt(np.maximum(disc, 0.0))
      near, far = -b - sq, -b + sq
      s = np.where(near > NEAR, near, np.where(far > NEAR, far, np.inf))
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
      ok = (t_near <= t_far) & (t_far > NEAR)
      return np.where(ok, np.where(t_near > NEAR, t_near, t_far), np.inf)
    if obj.kind == "card":
      hx, hy = float(obj.size[0]), float(obj.size[1])
      s = -o[2] / d[2]
      ok = np.isfinite(s) & (s > NEAR) & (np.abs(o[0] + s * d[0]) <= hx) & (np.abs(o[1] + s * d[1]) <= hy)
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
  return np.where((t_enter <= t_exit) & (t_exit > NEAR), t_exit, np.inf)


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


def rays_through(intrinsics, cam_to_world, xy) -> tuple[np.ndarray, np.ndarray]:
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
        _, d_cam = rays_through(intrinsics[v, t][None].repeat(p, 0), np.eye(4)[None].repeat(p, 0), xy)
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


def render_views(scene: Scene, intrinsics, cam_to_world, height, width, supersample, texture_filter="nearest"):
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
  """``render_views`` of the frames of ``scene`` in one pass (all rays at once)."""
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


