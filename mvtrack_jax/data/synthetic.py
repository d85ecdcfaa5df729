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

Memory: rays are cast in chunks of whole frames of at most ``raytrace._MAX_CHUNK_RAYS`` (2²¹) rays, so a
480×832 × 2-view × 81-frame scene (65 M rays) peaks at about 2.8 GB, not tens. The arithmetic is per
frame, so chunked renders equal one-pass ones bit for bit, and a render that fits one chunk (every
default-size or tiny scene) runs the single-pass code it always ran.

Public API: ``render_scene`` (a random scene from a seed → record), ``render_scene_views`` (that
scene and its tracked points from other cameras: novel-view ground truth), ``render_novel_view``
(a reference view and a target path given relative to it, as generation takes cameras, with optional
query pixels tracked: the ground truth of ``evaluate`` and ``generate``), and for explicitly
constructed scenes ``Scene``/``Room``/``SceneObject``/``render_record``. The scene types, ray casting, texture
filtering and shading are ``data.raytrace``; this module builds random scenes on it, tracks points and makes
records.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mvtrack_jax.data import raytrace
from mvtrack_jax.data import textures as textures_lib
from mvtrack_jax.data.raytrace import KINDS, MISS, STYLES, RenderStyle, Room, Scene, SceneObject
from mvtrack_jax.geometry import cameras
from mvtrack_jax.geometry import trajectories

FOREGROUND_SHARE = 0.5  # default share of tracked points on foreground objects.

# Visibility tolerances. The schema's depth test allows 1 %; we keep a margin so float32 storage
# of points, cameras and depth cannot flip a borderline point.
_DEPTH_REL_TOL = 0.0099
_SELF_HIT_REL_TOL = 1e-4

# Random-scene layout (metres, world gravity +y).
_ROOM_LO = np.array([-7.0, -5.0, -7.0])
_ROOM_HI = np.array([7.0, 1.3, 7.0])
_SCENE_CENTRE = np.array([0.0, -0.2, 0.0])
_CAMERA_MIN_RADIUS = 2.2  # horizontal distance from the room axis that cameras never get under.
_CAMERA_ROOM_MARGIN = 0.5

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
  inside = (z > raytrace.NEAR) & (xy[..., 0] >= 0) & (xy[..., 0] < width) & (xy[..., 1] >= 0) & (xy[..., 1] < height)
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
    dist, hit = raytrace.cast_rays(scene, centre, ray / length[:, None], ti)
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
  return raytrace.render_views(scene, k32.astype(np.float64), c2w, height, width, supersample, texture_filter)


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
      origins, dirs = raytrace.rays_through(intrinsics[vi, ti], c2w[vi, ti], xy)
      dist, hit = raytrace.cast_rays(scene, origins, dirs, ti)
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
  origins, dirs = raytrace.rays_through(k_stored[0, qt], cameras.invert_rigid(w2c_stored[0, qt]), q[:, 1:])
  dist, hit = raytrace.cast_rays(s.scene, origins, dirs, qt)
  miss = hit == MISS
  owners = np.where(miss, 0, hit).astype(np.int64)
  hits = origins + np.where(miss, 0.0, dist)[:, None] * dirs
  points = points_world(s.scene, owners, _owner_local(s.scene, owners, qt, hits)).astype(np.float32)
  tracks, visible = _track(s.scene, k_stored, w2c_stored, points.astype(np.float64), owners,
                           record["depth"].astype(np.float64), depth_test=False)
  tracks[:, :, miss] = np.nan
  visible[:, :, miss] = False
  return NovelView(record, tracks.astype(np.float32), visible)
