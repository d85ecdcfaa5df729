"""Wan 3D RoPE: band split, interleaved pairs, novel-view positions."""

import jax.numpy as jnp
import numpy as np
import pytest

from mvtrack_jax.models import rope


def test_band_dims():
  assert rope.rope_band_dims(128) == (44, 42, 42)
  assert rope.rope_band_dims(20) == (8, 6, 6)
  assert rope.rope_band_dims(16) == (8, 4, 4)
  with pytest.raises(ValueError, match="even"):
    rope.rope_band_dims(21)


def test_token_positions_layouts():
  pos = rope.token_positions(2, 2, 3)
  assert pos.shape == (12, 3)
  np.testing.assert_array_equal(pos[:4], [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0]])  # (f, h, w) row-major
  distinct = rope.token_positions(2, 2, 3, with_reference=True, rope_mode="distinct")
  shared = rope.token_positions(2, 2, 3, with_reference=True, rope_mode="shared")
  np.testing.assert_array_equal(distinct[12:, 0], pos[:, 0] + 2)  # ReCamMaster: frames 2..3
  np.testing.assert_array_equal(shared[12:], pos)  # ReDirector: frames 0..1 again
  with pytest.raises(ValueError, match="rope_mode"):
    rope.token_positions(1, 1, 1, with_reference=True, rope_mode="bogus")


def test_apply_rope_is_complex_rotation_of_interleaved_pairs():
  """Reference: pairs (x[2i], x[2i+1]) as complex numbers times exp(i·pos·θ^(−2j/n)) per band."""
  d = 20
  pos = rope.token_positions(3, 2, 2)
  cos, sin = rope.rope_angles(pos, d)
  x = np.random.default_rng(0).standard_normal((2, len(pos), 3, d)).astype(np.float32)
  out = np.asarray(rope.apply_rope(jnp.asarray(x), jnp.asarray(cos), jnp.asarray(sin)))
  z = x[..., 0::2].astype(np.float64) + 1j * x[..., 1::2]
  angles = []
  for axis, n in enumerate(rope.rope_band_dims(d)):
    angles.append(pos[:, axis:axis + 1] * 10000.0 ** (-np.arange(0, n, 2) / n))
  rot = z * np.exp(1j * np.concatenate(angles, -1))[None, :, None, :]
  expected = np.stack([rot.real, rot.imag], -1).reshape(x.shape)
  np.testing.assert_allclose(out, expected, atol=2e-6)
  # Relative: q·k depends only on the position difference.
  q, k = x[0, 0, 0], x[0, 1, 0]
  def dot(pq, pk):
    c, s = rope.rope_angles(np.array([pq, pk]), d)
    r = np.asarray(rope.apply_rope(jnp.asarray(np.stack([q, k])[None, :, None]), jnp.asarray(c), jnp.asarray(s)))
    return float(r[0, 0, 0] @ r[0, 1, 0])
  assert abs(dot([1, 2, 3], [4, 0, 1]) - dot([3, 5, 4], [6, 3, 2])) < 1e-4


def test_apply_rope_shape_errors_and_dtype():
  cos, sin = rope.rope_angles(rope.token_positions(1, 1, 2), 8)
  x = jnp.ones((1, 2, 1, 8), jnp.bfloat16)
  assert rope.apply_rope(x, jnp.asarray(cos), jnp.asarray(sin)).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="apply_rope"):
    rope.apply_rope(jnp.ones((1, 3, 1, 8)), jnp.asarray(cos), jnp.asarray(sin))


@pytest.mark.parametrize("with_reference,mode", [(False, "distinct"), (True, "distinct"), (True, "shared")])
def test_rope_tables_equal_per_token_angles(with_reference, mode):
  cos, sin = rope.rope_tables(3, 2, 4, 20, with_reference=with_reference, rope_mode=mode)
  ref_cos, ref_sin = rope.rope_angles(rope.token_positions(3, 2, 4, with_reference=with_reference, rope_mode=mode), 20)
  np.testing.assert_array_equal(np.asarray(cos), ref_cos)
  np.testing.assert_array_equal(np.asarray(sin), ref_sin)


def test_reference_frames_of_a_short_clip_start_at_the_training_length():
  """A model trained on 5 token frames keeps the reference at 5.. on a 3-frame clip (it used to start at 3, where
  the target sat in training); a longer clip than that keeps the views apart; shared mode ignores it."""
  pos = rope.token_positions(3, 1, 1, with_reference=True, rope_mode="distinct", reference_offset=5)
  assert pos[:, 0].tolist() == [0, 1, 2, 5, 6, 7]
  assert rope.token_positions(6, 1, 1, with_reference=True, reference_offset=5)[6:, 0].tolist() == list(range(6, 12))
  assert rope.token_positions(3, 1, 1, with_reference=True, rope_mode="shared", reference_offset=5)[3:, 0].tolist() == [
      0, 1, 2]
  cos, sin = rope.rope_tables(3, 2, 4, 20, with_reference=True, reference_offset=5)
  ref_cos, ref_sin = rope.rope_angles(rope.token_positions(3, 2, 4, with_reference=True, reference_offset=5), 20)
  np.testing.assert_array_equal(np.asarray(cos), ref_cos)
  np.testing.assert_array_equal(np.asarray(sin), ref_sin)
