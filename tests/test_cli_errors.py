"""A user's mistake ends in one ``error:`` line naming the flag, field or file, exit code 2 (usage) or 1 (a path that
cannot be used), no traceback and nothing written (``mvtrack_jax.cli.run``)."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from mvtrack_jax.errors import UserError
from mvtrack_jax.inference import checkpoint as checkpoint_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(tmp_path, *args, env=None):
  return subprocess.run([sys.executable, "-m", "mvtrack_jax.train", *args], cwd=REPO, capture_output=True, text=True,
                        timeout=120, env=dict(os.environ, PYTHONPATH=REPO, **(env or {})))


@pytest.mark.parametrize("case,code,message", [
    ("missing_config", 2, r"error: --config: \[Errno 2\] No such file or directory: 'configs/nope.py'"),
    ("misspelt_override", 2, r'error: a --config. override names no field of the config: heigth — Did you mean '
                             r'"height"'),
    ("workdir_is_a_file", 1, r"error: --workdir .*a_file: is a file, not a folder"),
    ("misspelt_in_file", 2, r"error: invalid config: --config.data.heigth: no such field \(did you mean 'height'\?\)"),
    ("bad_value", 2, r"error: invalid config: --config.num_train_steps: got -1; should be greater than or equal to 1"),
    ("nan_learning_rate", 2, r"error: invalid config: --config.optimizer.learning_rate: got nan; should be a finite "
                             r"number"),
    ("no_checkpoints_kept", 2, r"error: invalid config: --config.keep_checkpoints: got 0; should be greater than or "
                               r"equal to 1 \(0 would delete every checkpoint\)"),
])
def test_train_mistakes_end_in_one_line(tmp_path, case, code, message):
  (tmp_path / "a_file").write_text("x")
  workdir = tmp_path / "a_file" if case == "workdir_is_a_file" else tmp_path / "run"
  # A copy of the demo config with a misspelt field (the config file, not an override, names it).
  with open(os.path.join(REPO, "configs", "default.py"), encoding="utf-8") as f:
    source = f.read().replace("  return c\n", "  c.data.heigth = 32\n  return c\n")
  (tmp_path / "misspelt.py").write_text(source)
  args = {"missing_config": ["--config=configs/nope.py"],
          "misspelt_in_file": [f"--config={tmp_path / 'misspelt.py'}:test"],
          "misspelt_override": ["--config=configs/default.py:test", "--config.data.heigth=32"],
          "workdir_is_a_file": ["--config=configs/default.py:test"],
          "bad_value": ["--config=configs/default.py:test", "--config.num_train_steps=-1"],
          "nan_learning_rate": ["--config=configs/default.py:test", "--config.optimizer.learning_rate=nan"],
          "no_checkpoints_kept": ["--config=configs/default.py:test", "--config.keep_checkpoints=0"]}[case]
  proc = _train(tmp_path, *args, f"--workdir={workdir}")
  assert proc.returncode == code, proc.stderr[-2000:]
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and re.match(message, lines[0]), proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr and proc.stdout == ""
  assert not (tmp_path / "run").exists()  # nothing written, nothing deleted


def test_traceback_switch_shows_the_traceback(tmp_path):
  proc = _train(tmp_path, "--config=configs/default.py:test", "--config.num_train_steps=-1",
                f"--workdir={tmp_path / 'run'}", env={"MVTRACK_TRACEBACK": "1"})
  assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


@pytest.mark.parametrize("module,own", [("mvtrack_jax.data.encode_latents", ()),
                                        ("mvtrack_jax.data.encode_text", ("--captions",)),
                                        ("mvtrack_jax.data.encode_image", ())])
def test_help_of_the_cache_encoders_lists_every_flag(module, own):
  """The flags the three encoders share are defined in mvtrack_jax.cli; absl's --help listed none of them."""
  proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, PYTHONPATH=REPO))
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]  # (absl's --help exits 1)
  for flag in ("--config", "--out", "--splits", "--[no]progress", "--source") + own:
    assert flag in proc.stdout, (flag, proc.stdout[-1500:])


def test_a_damaged_export_config_names_the_file(tiny_checkpoint, tmp_path):
  export = tmp_path / "export"
  shutil.copytree(tiny_checkpoint, export)
  (export / "config.json").write_text('{"model": ')
  with pytest.raises(UserError, match=r"export/config.json: not valid JSON .*export it again"):
    checkpoint_lib.load_exported(export)
