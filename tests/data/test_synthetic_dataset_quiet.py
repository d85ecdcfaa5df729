"""Building and reading the synthetic dataset is quiet: TFDS's known-harmless warnings are dropped, others are not."""

import logging
import pickle

from absl import logging as absl_logging
from tensorflow_datasets.core.utils import file_utils

from mvtrack_jax.data import synthetic_dataset as sd

# A custom config (no registered one has these sizes), as the demo's dataset is.
SMALL = dict(num_views=1, num_frames=2, height=8, width=8, num_tracks=4, num_train=2, num_validation=1, num_test=1)


def test_build_read_and_unpickle_log_no_tfds_notice_at_quiet_verbosity(tmp_path, caplog):
  caplog.set_level(logging.WARNING)  # the CLIs' default verbosity
  train = sd.load_split("train", data_dir=str(tmp_path), config=SMALL)       # builds
  validation = sd.load_split("validation", data_dir=str(tmp_path), config=SMALL)  # reads
  assert len(pickle.loads(pickle.dumps(train))) == 2 and len(validation) == 1  # as a grain worker gets it
  warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  assert not [w for w in warnings if "custom data configuration" in w or "has no dataset_info.json" in w], warnings


def test_other_tfds_warnings_still_show(tmp_path, caplog):
  """The filter drops two message templates of TFDS's own modules and nothing else: here TFDS's warning of a
  variant folder without ``features.json`` (a different argument of the same template) passes."""
  caplog.set_level(logging.WARNING)
  variant = tmp_path / "1.0.0"
  variant.mkdir()
  (variant / "dataset_info.json").write_text("{}")
  with sd._without_known_tfds_notices():  # pylint: disable=protected-access
    assert not file_utils.is_valid_variant_dir(variant)
    absl_logging.warning("Using custom data configuration: %s", "logged outside TFDS")
  messages = [r.getMessage() for r in caplog.records]
  assert any("has no features.json" in m for m in messages), messages
  assert "Using custom data configuration: logged outside TFDS" in messages, messages
