"""Schema validation: every rule raises a RecordError naming the source and the field."""

import numpy as np
import pytest

from mvtrack_jax import geometry
from mvtrack_jax.data.schema import RecordError, record_dims, validate_record


def _record(v=2, t=3, h=8, w=10, n=4) -> dict:
  rng = np.random.default_rng(0)
  k = geometry.intrinsics_from_fov(h, w, 60.0)
  w2c = geometry.look_at(np.array([0.0, 0.0, -3.0]), np.zeros(3)).astype(np.float32)
  points = rng.normal(scale=0.2, size=(t, n, 3)).astype(np.float32)
  tracks, z = geometry.project_points(points[None], np.broadcast_to(k, (v, t, 3, 3)), np.broadcast_to(w2c, (v, t, 4, 4)))
  return {
      "video": rng.integers(0, 256, size=(v, t, h, w, 3), dtype=np.uint8),
      "intrinsics": np.broadcast_to(k, (v, t, 3, 3)).copy(),
      "world_to_camera": np.broadcast_to(w2c, (v, t, 4, 4)).copy(),
      "depth": np.full((v, t, h, w), 3.0, np.float32),
      "tracks": tracks.astype(np.float32),
      "visible": np.ones((v, t, n), bool),
      "points_3d": points,
  }


def test_valid_record_passes_with_canonical_dtypes():
  rec = _record()
  rec["intrinsics"] = rec["intrinsics"].astype(np.float64)
  out = validate_record(rec, "clip.npz")
  assert out["intrinsics"].dtype == np.float32
  assert record_dims(out) == {"V": 2, "T": 3, "H": 8, "W": 10, "N": 4}
  # Depth is optional; N = 0 (no tracks) is allowed.
  rec.pop("depth")
  rec["tracks"] = np.zeros((2, 3, 0, 2), np.float32)
  rec["visible"] = np.zeros((2, 3, 0), bool)
  rec["points_3d"] = np.zeros((3, 0, 3), np.float32)
  validate_record(rec, "clip.npz")


@pytest.mark.parametrize(
    "field, mutate, message",
    [
        ("video", lambda r: r.pop("video"), "missing"),
        ("extra", lambda r: r.__setitem__("extra", np.zeros(1)), "unknown"),
        ("video", lambda r: r.__setitem__("video", r["video"].astype(np.float32)), "uint8"),
        ("intrinsics", lambda r: r.__setitem__("intrinsics", r["intrinsics"][:, :2]), "shape"),
        ("tracks", lambda r: r.__setitem__("tracks", r["tracks"][:, :2]), "shape"),
        ("points_3d", lambda r: r.__setitem__("points_3d", r["points_3d"][:, :3]), "N=4"),
        ("visible", lambda r: r.__setitem__("visible", r["visible"].astype(np.uint8)), "bool"),
        ("depth", lambda r: r["depth"].__setitem__((0, 1, 2, 3), np.nan), "non-finite"),
        ("world_to_camera", lambda r: r["world_to_camera"].__setitem__((1, 2, 0, 0), np.inf), "non-finite"),
        ("world_to_camera", lambda r: r["world_to_camera"].__setitem__((1, 2, slice(0, 3), 0), 0.0), "rigid"),
        ("world_to_camera", lambda r: r["world_to_camera"].__setitem__((0, 0, 3, 2), 1.0), "last row"),
        ("intrinsics", lambda r: r["intrinsics"].__setitem__((0, 0, 0, 0), 0.0), "focal"),
        ("tracks", lambda r: r["tracks"].__setitem__((1, 2, 3, 0), 10.5), "outside"),
        ("depth", lambda r: r["depth"].__setitem__((0, 0, 0, 0), -1.0), "negative"),
    ],
)
def test_bad_records_name_source_and_field(field, mutate, message):
  rec = _record()
  mutate(rec)
  with pytest.raises(RecordError, match=message) as err:
    validate_record(rec, "scenes/s1.npz")
  assert err.value.field == field
  assert str(err.value).startswith(f"scenes/s1.npz: field '{field}'")


def test_invisible_tracks_may_leave_the_image():
  rec = _record()
  rec["tracks"][1, 2, 3] = [-50.0, 400.0]
  rec["visible"][1, 2, 3] = False
  validate_record(rec, "clip")
