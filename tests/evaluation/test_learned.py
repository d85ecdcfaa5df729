"""Tests of the learned-metric hook: clear errors without weights, user callables when plugged in."""

import numpy as np
import pytest

from mvtrack_jax.evaluation import learned


@pytest.fixture(autouse=True)
def _clean_registry():
  before = dict(learned._REGISTRY)
  yield
  learned._REGISTRY.clear()
  learned._REGISTRY.update(before)


def _video(t=2):
  return np.zeros((t, 8, 8, 3), np.uint8)


def test_unregistered_known_metric_names_the_missing_weights():
  with pytest.raises(learned.LearnedMetricUnavailableError, match=r"met3r.*MASt3R.*FeatUp.*register_learned_metric"):
    learned.compute_learned_metric("met3r", _video(), _video())
  with pytest.raises(learned.LearnedMetricUnavailableError, match="MUSIQ"):
    learned.compute_learned_metric("vbench_imaging_quality", _video())
  with pytest.raises(KeyError, match="unknown learned metric 'fid'"):
    learned.compute_learned_metric("fid", _video())


def test_registered_callable_receives_videos_and_weights(tmp_path):
  ckpt = tmp_path / "mast3r.pth"
  ckpt.write_bytes(b"weights")
  calls = {}

  def fake_met3r(generated, reference, *, weights, scale=1.0):
    calls.update(shape=generated.shape, ref=reference.shape, weights=weights)
    return scale * float(np.mean(np.abs(generated.astype(float) - reference.astype(float))))

  learned.register_learned_metric("met3r", fake_met3r, weights={"mast3r": str(ckpt)})
  assert "met3r" in learned.available_learned_metrics()
  gen = _video()
  gen[0] = 4
  out = learned.compute_learned_metric("met3r", gen, _video(), scale=0.5)
  assert out == {"met3r": 1.0}
  assert calls["weights"] == {"mast3r": str(ckpt)} and calls["shape"] == (2, 8, 8, 3)
  assert learned.describe("met3r").higher_is_better is False
  with pytest.raises(ValueError, match="already registered"):
    learned.register_learned_metric("met3r", fake_met3r)


def test_registration_and_result_validation(tmp_path):
  with pytest.raises(FileNotFoundError, match="dino="):
    learned.register_learned_metric("vbench_subject_consistency", lambda g, r: 1.0,
                                    weights={"dino": str(tmp_path / "missing.pth")})
  with pytest.raises(TypeError, match="callable"):
    learned.register_learned_metric("lpips", "not a function")
  learned.register_learned_metric("custom", lambda g, r: {"a": 1, "b": np.float32(2.5)})
  assert learned.compute_learned_metric("custom", _video()) == {"a": 1.0, "b": 2.5}
  learned.register_learned_metric("broken", lambda g, r: "high")
  with pytest.raises(ValueError, match="expected a number"):
    learned.compute_learned_metric("broken", _video())
  learned.register_learned_metric("nan", lambda g, r: float("nan"))
  with pytest.raises(ValueError, match="NaN"):
    learned.compute_learned_metric("nan", _video())
  with pytest.raises(ValueError, match="generated has shape"):
    learned.compute_learned_metric("custom", np.zeros((8, 8, 3), np.uint8))


def frame_count(generated, reference):
  """A plug-in following the contract, importable as tests.evaluation.test_learned:frame_count."""
  return {"frames": generated.shape[0], "reference_frames": 0 if reference is None else reference.shape[0]}


def test_register_from_env(monkeypatch):
  monkeypatch.setenv(learned.ENV_VAR, "count=tests.evaluation.test_learned:frame_count, ")
  assert learned.register_from_env() == ["count"]
  assert learned.compute_learned_metric("count", _video(3), _video(5)) == {"frames": 3.0, "reference_frames": 5.0}
  with pytest.raises(ValueError, match="malformed"):
    learned.register_from_spec("met3r")
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    learned.register_from_spec("x=numpy:nope")
