"""Captions files (ReCamMaster's metadata.csv layout) and the rule matching a row to a video."""

import pytest

from mvtrack_jax.data import captions as captions_lib


def _write(path, rows):
  path.write_text("file_name,text\n" + "".join(f'{f},"{t}"\n' for f, t in rows))
  return str(path)


def test_read_captions_and_matching_rules(tmp_path):
  good = _write(tmp_path / "a.csv", [("train/0", "x"), ("./train/0", "x"), ("10", "ten")])  # same caption twice: fine
  captions = captions_lib.read_captions(good)
  assert captions_lib.caption_for(captions, "train/0") == "x"
  assert captions_lib.caption_for(captions, "validation/0") is None  # whole components: "0" ≠ "train/0"
  assert captions_lib.caption_for(captions, "/data/10") == "ten" and captions_lib.caption_for(captions, "/data/110") is None
  (tmp_path / "b.csv").write_text("name,caption\nx,y\n")
  with pytest.raises(ValueError, match=r"no column\(s\) \['file_name', 'text'\]"):
    captions_lib.read_captions(str(tmp_path / "b.csv"))
  (tmp_path / "c.csv").write_text("file_name,text\nx,y\nz,\n")
  with pytest.raises(ValueError, match="line 3: empty text"):
    captions_lib.read_captions(str(tmp_path / "c.csv"))
  (tmp_path / "d.csv").write_text("file_name,text\nx,y\nx,w\n")
  with pytest.raises(ValueError, match="line 3: 'x' already has another caption"):
    captions_lib.read_captions(str(tmp_path / "d.csv"))
  with pytest.raises(FileNotFoundError, match="--captions"):
    captions_lib.read_captions(str(tmp_path / "missing.csv"))
