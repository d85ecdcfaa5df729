"""End to end: ``python -m mvtrack_jax.probe`` on the tiny untrained checkpoint."""

import csv
import json
import os

import numpy as np
import pytest

from mvtrack_jax.evaluation import probe_run
from mvtrack_jax.evaluation import probe as probe_lib


def test_probe_cli_end_to_end(tiny_checkpoint, tmp_path, capsys):
  out = str(tmp_path / "probe")
  record = probe_run.run_probe(tiny_checkpoint, out, split="test", layers=[0, 2], grid_steps=(0, 40),
                               num_batches=1, batch_size=2, progress=False)
  assert sorted(os.listdir(out)) == sorted(
      ["probe.json", "probe_table.csv"] + [f"heatmap_{kind}.png" for kind in probe_lib.KINDS])
  loaded = json.loads((tmp_path / "probe" / "probe.json").read_text())
  assert loaded == json.loads(json.dumps(record))
  assert loaded["checkpoint"]["step"] == 0
  settings = loaded["settings"]
  assert settings["layers"] == [0, 2] and settings["num_batches"] == 1 and settings["num_examples"] == 2
  assert settings["timesteps"][0] == pytest.approx(1000.0) and 0 < settings["timesteps"][1] < 1000
  for kind in probe_lib.KINDS:
    tables = loaded["tables"][kind]
    for name in probe_lib.METRICS + ("harmonic_mean", "count"):
      table = np.asarray(tables[name], np.float64)  # None (no valid entry) → nan fails isfinite
      assert table.shape == (2, 2) and np.isfinite(table).all(), (kind, name, tables[name])
    assert (np.asarray(tables["count"]) > 0).all()
    acc = np.asarray(tables["accuracy"])
    assert ((acc >= 0) & (acc <= 100)).all()
    assert sorted(loaded["top_layers"][kind]) == [0, 2]
  with open(os.path.join(out, "probe_table.csv")) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == len(probe_lib.KINDS) * 2 * 2
  assert all(row["accuracy"] != "" for row in rows)


def test_probe_cli_rejects_bad_layers(tiny_checkpoint, tmp_path):
  with pytest.raises(ValueError, match="layers"):
    probe_run.run_probe(tiny_checkpoint, str(tmp_path / "x"), layers=[7], num_batches=1, progress=False)
  with pytest.raises(ValueError, match="grid_steps"):
    probe_run.run_probe(tiny_checkpoint, str(tmp_path / "x"), grid_steps=(50,), num_batches=1, progress=False)


def test_pad_batch_masks_padding():
  batch = {"track_mask": np.ones((1, 3), bool), "tracks": np.arange(6, dtype=np.float32).reshape(1, 3, 2)}
  padded = probe_run._pad_batch(batch, 3)
  assert padded["track_mask"].tolist() == [[True] * 3, [False] * 3, [False] * 3]
  np.testing.assert_array_equal(padded["tracks"][2], batch["tracks"][0])
  assert probe_run._pad_batch(batch, 1) is batch
