"""Captions files: ReCamMaster's ``metadata.csv`` layout, and which row captions which video.

A CSV whose header names the columns ``file_name`` and ``text`` (others are ignored). A row's ``file_name`` is
matched against the end of a video's path, compared by whole path components (so
``train/f18_aperture10/scene1/videos/cam01.mp4``, ``scene1/videos/cam01.mp4`` and an absolute path all name the
same video, and ``0`` does not name ``10``); a row naming a folder captions every video below it that has no row
of its own. ``data.encode_text`` caches the captions of a training set; ``evaluate --captions`` captions the
videos it generates from.
"""

from __future__ import annotations

import csv
import os
from typing import Mapping

from mvtrack_jax import errors


def _parts(name: str) -> tuple[str, ...]:
  return tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))


def read_captions(path: str) -> dict[tuple[str, ...], str]:
  """``{path components of file_name: text}`` of a captions CSV (module docstring).

  Raises:
    FileNotFoundError: no such file. ValueError: no ``file_name``/``text`` columns, an empty
      ``file_name`` or ``text`` (naming the line), or one name with two different captions.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--captions {path!r}: no such file (expected a metadata.csv with file_name,text columns)")
  captions: dict[tuple[str, ...], str] = {}
  with open(path, newline="", encoding="utf-8") as fh:
    reader = csv.DictReader(fh)
    missing = [c for c in ("file_name", "text") if c not in (reader.fieldnames or [])]
    if missing:
      raise errors.UserError(f"--captions {path}: no column(s) {missing} in the header {reader.fieldnames}; expected "
                             "ReCamMaster's metadata.csv layout (file_name,text)")
    for row in reader:
      line = reader.line_num
      key, text = _parts(row["file_name"] or ""), (row["text"] or "").strip()
      if not key or not text:
        raise errors.UserError(f"--captions {path}, line {line}: empty {'file_name' if not key else 'text'}")
      if captions.get(key, text) != text:
        raise errors.UserError(f"--captions {path}, line {line}: {row['file_name']!r} already has another caption")
      captions[key] = text
  return captions


def caption_for(captions: Mapping[tuple[str, ...], str], name: str) -> str | None:
  """The caption of the view called ``name``: the row naming the longest tail of ``name`` itself,
  else of its nearest folder (module docstring); None when no row matches."""
  parts = _parts(name)
  for end in range(len(parts), 0, -1):
    for start in range(end):
      text = captions.get(parts[start:end])
      if text is not None:
        return text
  return None
