"""A user's mistake ends in one ``error:`` line naming the flag, field or file, exit code 2 (usage) or 1 (a path that
cannot be used), no traceback and nothing written (``mvtrack_jax.cli.run``)."""

import importlib
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mvtrack_jax import checkpoint_format
from mvtrack_jax.errors import UserError
from tests.helpers import run_command

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(tmp_path, *args, env=None):
  return subprocess.run([sys.executable, "-m", "mvtrack_jax.train", *args], cwd=REPO, capture_output=True, text=True,
                        timeout=120, env=dict(os.environ, PYTHONPATH=REPO, **(env or {})))


TRAIN = ["--config=configs/default.py:test", "--workdir={tmp}/out"]
GENERATE = ["--checkpoint={tmp}", "--reference=dataset:test:0", "--trajectory=arc_left", "--out={tmp}/out"]
# (command, arguments, exit code, the one line's pattern). {tmp} is a folder holding a_file (a file), full/ (a folder
# with a file in it), misspelt.py (the demo config with a misspelt field), garbage.mp4 and bad.npz (a clip that is not
# one); {ckpt} is a tiny exported model; {tmp}/out must not exist afterwards.
CASES = [
    ("train", ["--config=configs/nope.py", "--workdir={tmp}/out"], 2,
     r"--config: \[Errno 2\] No such file or directory: 'configs/nope.py'"),
    ("train", TRAIN + ["--config.data.heigth=32"], 2,
     r"a --config. override names no field of the config: 'heigth' — Did you mean \"height\""),
    ("train", ["--config=configs/default.py:test", "--workdir={tmp}/a_file"], 1, r"--workdir .*a_file: is a file"),
    ("train", ["--config={tmp}/misspelt.py:test", "--workdir={tmp}/out"], 2,
     r"invalid config: --config.data.heigth: no such field \(did you mean 'height'\?\)"),
    ("train", TRAIN + ["--config.num_train_steps=-1"], 2,
     r"invalid config: --config.num_train_steps: got -1; should be greater than or equal to 1"),
    ("train", TRAIN + ["--config.optimizer.learning_rate=nan"], 2,
     r"invalid config: --config.optimizer.learning_rate: got nan; should be a finite number"),
    ("train", TRAIN + ["--config.keep_checkpoints=0"], 2,
     r"invalid config: --config.keep_checkpoints: got 0; should be greater than or equal to 1 \(0 would delete"),
    ("train", TRAIN + ["--config.data.height=-4"], 2, r"invalid config: --config.data.height: got -4"),
    ("train", TRAIN + ["--config.batch_size=abc"], 2, r"flag --config.batch_size=abc: invalid literal for int"),
    ("train", TRAIN + ["--nope=1"], 2, r"Unknown command line flag 'nope'"),
    ("train", TRAIN + ["extra"], 2, r"unexpected arguments: \['extra'\]"),
    ("train", ["--config=configs/default.py:test"], 2, r"--config and --workdir are required"),
    ("train", ["--config=configs/mvtrack4gen_recammaster.py:smoke", "--workdir={tmp}/out"], 2,
     r"--config.autoencoder.path is empty but source\(s\) \['multicamvideo', 'synthetic'\] have no latent cache.*"
     r"python -m mvtrack_jax.convert.standins --out W"),
    ("generate", ["--checkpoint={tmp}/none"] + GENERATE[1:], 1, r"--checkpoint .*none: expected an export directory"),
    ("generate", GENERATE + ["--trajectory=cam09", "--magnitude=10"], 2,
     r"--trajectory cam09 is ReCamMaster's released trajectory \(arc_left, fixed size\): --magnitude"),
    ("generate", GENERATE[:1] + ["--reference={tmp}/missing.mp4"] + GENERATE[2:], 1,
     r"--reference .*missing.mp4: no such file"),
    ("generate", GENERATE[:3] + ["--out={tmp}/a_file"], 1, r"--out .*a_file: is a file, not a folder"),
    ("generate", GENERATE[:3] + ["--out={tmp}/full"], 1, r"--out .*full: not empty \(1 entries, e.g. thing\); pass "
                                                         r"--overwrite"),
    ("generate", GENERATE[:2] + ["--trajectory={tmp}/cams.json"] + GENERATE[3:], 1,
     r"--trajectory .*cams.json: no such file"),
    ("generate", GENERATE + ["--query_points={tmp}/q.npy"], 1, r"--query_points .*q.npy: no such file"),
    ("generate", GENERATE + ["--steps=0"], 2, r"--steps 0: expected an integer >= 1"),
    ("generate", GENERATE + ["--frame_stride=0"], 2, r"--frame_stride 0: expected an integer >= 1 \(source frames"),
    ("generate", GENERATE + ["--fov=200"], 2, r"--fov 200.0: expected a horizontal field of view in \(0, 180\)"),
    ("generate", GENERATE + ["--resize=squash"], 2, r"flag --resize=squash: value should be one of <crop\|pad\|stretch>"),
    ("generate", GENERATE + ["--resize=pad"], 2, r"--resize pad: expected crop for dataset:test:0"),
    ("generate", GENERATE[1:], 2, r"--checkpoint is required"),
    ("generate", ["--checkpoint={ckpt}", "--reference={tmp}/garbage.mp4"] + GENERATE[2:], 1,
     r".*garbage.mp4: cannot open video \(corrupt or not a video file\)"),
    ("generate", ["--checkpoint={ckpt}", "--reference={tmp}/bad.npz"] + GENERATE[2:], 2, r".*bad.npz.*video"),
    ("generate", GENERATE[:2] + ["--trajectory=spiral"] + GENERATE[3:], 2,
     r"--trajectory 'spiral': expected one of static, pan_right, pan_left"),
    ("evaluate", ["--checkpoint={tmp}/none", "--out={tmp}/out"], 1, r"--checkpoint .*none: expected an export"),
    ("evaluate", ["--checkpoint={ckpt}", "--out={tmp}/out", "--videos={tmp}/novideos"], 1,
     r"--videos .*novideos: not a directory"),
    ("evaluate", ["--checkpoint={ckpt}", "--out={tmp}/a_file"], 1, r"--out .*a_file: is a file, not a folder"),
    ("evaluate", ["--out={tmp}/out"], 2, r"--checkpoint and --out are required"),
    ("export", ["--workdir={tmp}/none", "--out={tmp}/out"], 1, r"--workdir .*none: no such folder"),
    ("export", ["--workdir={tmp}", "--out={tmp}/out", "--format=onnx"], 2,
     r"flag --format=onnx: value should be one of <orbax\|diffusers\|diffsynth>"),
    ("export", ["--workdir={tmp}"], 2, r"--workdir and --out are required"),
    ("probe", ["--checkpoint={tmp}/none", "--out={tmp}/out"], 1, r"--checkpoint .*none: expected an export"),
    ("probe", ["--checkpoint={tmp}", "--out={tmp}/out", "--layers=x"], 2, r"--layers/--grid_steps must be integers"),
    ("compare", ["--checkpoint={tmp}/none", "--out={tmp}/out"], 1, r"--checkpoint .*none: expected an export"),
    ("replicate", ["--compare={tmp}/none", "--compare={tmp}/full", "--out={tmp}/out"], 1,
     r"--compare: .*none/evaluate/metrics.json does not exist; expected the output folder of python -m "
     r"mvtrack_jax.compare"),
    ("replicate", ["--compare={tmp}/full", "--out={tmp}/out"], 2, r"--compare: got 1 folder\(s\); a replication needs "
                                                                  r"at least 2 seeds"),
    ("replicate", ["--out={tmp}/out"], 2, r"--compare \(one per seed\) and --out are required"),
    ("data.encode_latents", ["--config=configs/default.py:test", "--out={tmp}/out"], 2,
     r"--config.autoencoder.kind: got 'pixel'; the latent cache is for the Wan VAE \(expected 'wan'\)"),
    ("data.encode_latents", ["--config=configs/default.py:test", "--out={tmp}/a_file"], 1,
     r"--out .*a_file: is a file, not a folder"),
    ("data.encode_text", ["--config=configs/default.py:test", "--out={tmp}/out", "--captions={tmp}/none.json"], 1,
     r"--captions .*none.json: no such file"),
    ("data.encode_image", ["--config=configs/default.py:test", "--out={tmp}/out"], 2,
     r"--config.image.encoder is empty"),
    ("data.preview", ["--out={tmp}/out", "--npz={tmp}/none.npz"], 1, r"--npz .*none.npz: no such file"),
    ("data.convert_kubric", ["--out={tmp}/out"], 2, r"--input and --out are required"),
    ("convert.standins", ["--out={tmp}/a_file"], 1, r"--out .*a_file: is a file, not a folder"),
    ("bench", ["--config=configs/default.py:test", "--steps=x"], 2, r"flag --steps=x: invalid literal for int"),
    ("bench", [], 2, r"--config is required"),
]


@pytest.mark.parametrize("command,args,code,message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_mistake_ends_in_one_line(tiny_checkpoint, tmp_path, command, args, code, message):
  """Every command, run as ``python -m`` runs it (``cli.parse_flags`` + ``cli.guarded``, in this process): exit code 1
  (a file or folder that cannot be used) or 2 (usage, a flag or config value), one ``error:`` line naming the flag,
  field or file (a usage error adds one pointer to --help), no traceback, nothing written."""
  (tmp_path / "a_file").write_text("x")
  (tmp_path / "full").mkdir()
  (tmp_path / "full" / "thing").write_text("y")
  (tmp_path / "garbage.mp4").write_bytes(b"not a video" * 50)
  np.savez(tmp_path / "bad.npz", video=np.zeros((2, 4, 8, 8), np.uint8))  # no channel axis, no cameras
  with open(os.path.join(REPO, "configs", "default.py"), encoding="utf-8") as f:
    (tmp_path / "misspelt.py").write_text(f.read().replace("  return c\n", "  c.data.heigth = 32\n  return c\n"))
  before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
  module = importlib.import_module(f"mvtrack_jax.{command}")
  got, stdout, stderr = run_command(module, *(a.format(tmp=tmp_path, ckpt=tiny_checkpoint) for a in args))
  lines = stderr.strip().splitlines()
  assert got == code, stderr[-2000:]
  assert lines and re.match("error: " + message, lines[0]), stderr[-2000:]
  assert len(lines) == 1 or (len(lines) == 2 and re.fullmatch(r"\(python -m \S+ --help lists the flags\)", lines[1])), \
      stderr[-2000:]
  assert "Traceback" not in stderr and stdout == ""
  assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written or removed


def test_a_mistake_in_a_real_process_ends_in_one_line(tmp_path):
  """The same through ``python -m`` (``cli.run``): absl's own flag errors used to print two lines and exit 1."""
  proc = _train(tmp_path, "--config=configs/default.py:test", f"--workdir={tmp_path / 'run'}", "--nope=1")
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.splitlines() == ["error: Unknown command line flag 'nope'",
                                      "(python -m mvtrack_jax.train --help lists the flags)"]
  assert not (tmp_path / "run").exists()


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
    checkpoint_format.load_exported(export)
