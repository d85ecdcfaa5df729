"""Helpers the tests share (imported by test modules; tests never import each other): configs as the entry points
see them, running a command in-process, and schema-valid records and MultiCamVideo scenes written in the real
on-disk formats. Fixtures live in ``conftest.py``; helpers that need torch / diffusers in ``reference_helpers.py``."""

import contextlib
import importlib.util
import io
import json
import os
import pathlib
import shutil
import sys

from absl import flags
import filelock
import ml_collections
import numpy as np

from mvtrack_jax import cli
from mvtrack_jax import run_config
from mvtrack_jax.data import schema
from mvtrack_jax.data import video_io
from mvtrack_jax.geometry import cameras as geometry
from mvtrack_jax.inference import novel_view

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_env(devices: int) -> dict:
  """The environment of a ``python`` subprocess on ``devices`` host CPU devices: this process's (so the suite's
  XLA flags carry over), the repository importable, the CPU platform."""
  xla = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), f"--xla_force_host_platform_device_count={devices}"]))
  return dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", XLA_FLAGS=xla)


def shared_dir(tmp_path_factory, worker_id: str, name: str, build) -> pathlib.Path:
  """``<this run's temporary folder>/<name>``, filled by ``build(path)`` once per pytest run.

  A session or module fixture runs once per xdist worker; for an expensive one (training runs, exports) the first
  worker to ask builds the folder under a file lock while the others wait, then all of them read it. A build that
  raised leaves no marker, so the next one to ask rebuilds it from an empty folder. ``worker_id`` is xdist's fixture
  ("master" without xdist: the run's own temporary folder).
  """
  root = tmp_path_factory.getbasetemp()
  if worker_id != "master":
    root = root.parent  # pytest-N/, shared by this run's popen-gwK/ worker folders
  path, done = root / name, root / f"{name}.built"
  with filelock.FileLock(str(root / f"{name}.lock")):
    if not done.exists():
      shutil.rmtree(path, ignore_errors=True)
      path.mkdir()
      build(path)
      done.touch()
  return path


def config_module(name: str, arg: str | None = None):
  """``(module, get_config(arg))`` of ``configs/<name>`` as written (not completed by the schema)."""
  spec = importlib.util.spec_from_file_location(f"configs_{name[:-3]}", os.path.join(REPO, "configs", name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module, module.get_config(arg)


def load_config(name: str, arg: str | None = None):
  """``get_config(arg)`` of ``configs/<name>``, validated and completed as every entry point sees it
  (``run_config.complete``)."""
  return run_config.complete(config_module(name, arg)[1])


@contextlib.contextmanager
def _command_flags(module, args):
  """``module``'s flags defined on absl's ``FLAGS`` and ``sys.argv`` set as ``python -m module args`` would
  (``--config.x`` overrides are read from it), both undone afterwards."""
  names, was_parsed, saved_argv = set(flags.FLAGS), flags.FLAGS.is_parsed(), sys.argv
  sys.argv = [module.__name__, *args]
  try:
    module.define_flags()
    yield sys.argv
  finally:
    sys.argv = saved_argv
    for name in set(flags.FLAGS) - names:
      delattr(flags.FLAGS, name)
    if not was_parsed:
      flags.FLAGS.unparse_flags()


def run_cli(module, *args):
  """Runs ``module.main`` in this process as ``python -m module args`` would, flags parsed from ``args`` by absl
  (``module.define_flags()``), so a command's fail-fast checks are tested through its entry point in well under a
  second (a subprocess pays seconds of imports). Exceptions propagate (see ``run_command`` for the user's view)."""
  with _command_flags(module, args) as argv:
    return module.main(flags.FLAGS(argv))


def run_command(module, *args) -> tuple[int, str, str]:
  """``(exit code, stdout, stderr)`` of ``python -m module args`` run in this process as ``cli.run`` runs it: flag
  parsing (``cli.parse_flags``) and ``main`` under the project's user-error handling (``cli.guarded``)."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _command_flags(module, args) as argv:
    try:
      cli.guarded(module.main)(cli.parse_flags(argv))
      code = 0
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else 1
  return code, out.getvalue(), err.getvalue()


F = np.diag([1.0, -1.0, 1.0, 1.0])


def tiny_record(seed=0, num_views=3, num_frames=6, height=32, width=32, num_tracks=32):
  """A schema-valid record: moving random points seen by look-at cameras on a circle (no occlusion)."""
  rng = np.random.default_rng(seed)
  angles = np.linspace(0, np.pi / 2, num_views) + rng.uniform(0, 0.2)
  eyes = np.stack([3 * np.sin(angles), -0.5 * np.ones_like(angles), -3 * np.cos(angles)], -1)
  w2c_views = geometry.look_at(eyes, np.zeros(3))
  # Slight per-frame camera motion so cameras differ over time.
  w2c = np.stack([np.stack([geometry.look_at(e + [0.05 * t, 0, 0], np.zeros(3)) for t in range(num_frames)])
                  for e in eyes])
  del w2c_views
  k = geometry.intrinsics_from_fov(height, width, 60.0).astype(np.float64)
  intr = np.broadcast_to(k, (num_views, num_frames, 3, 3))
  start = rng.uniform(-0.8, 0.8, (num_tracks, 3))
  vel = rng.uniform(-0.05, 0.05, (num_tracks, 3))
  pts = start[None] + np.arange(num_frames)[:, None, None] * vel[None]
  xy, z = geometry.project_points(pts[None], intr, w2c)
  visible = (z > 0) & (xy[..., 0] >= 0) & (xy[..., 0] <= width) & (xy[..., 1] >= 0) & (xy[..., 1] <= height)
  # Smooth frames (H.264 keeps them within a few levels), different per view and frame.
  ys, xs = np.mgrid[0:height, 0:width] / 4.0
  phase = np.arange(num_views)[:, None, None, None, None] + 0.5 * np.arange(num_frames)[None, :, None, None, None]
  chan = np.arange(3) * 2.1
  video = (127 + 100 * np.sin(xs[..., None] * 0.7 + ys[..., None] * 0.3 + chan + phase)).astype(np.uint8)
  return schema.validate_record({
      "video": video, "intrinsics": intr, "world_to_camera": w2c, "tracks": xy, "visible": visible,
      "points_3d": pts}, source="tiny_record")


def opencv_to_unreal_string(c2w_cv):
  """Independent inverse of the reader's conversion (right-handed OpenCV world → Unreal json text)."""
  m = F @ c2w_cv  # back to Unreal's left-handed world axes
  m = m.copy()
  m[:3, 3] *= 100.0  # m → cm
  m[:3, 1] *= -1.0  # camera down → up
  ue = np.zeros((4, 4))
  ue[:, [1, 2, 0, 3]] = m  # right/up/forward → forward/right/up
  rows = ue.T  # column-vector → row-vector convention
  return "".join("[" + " ".join(f"{v:.9g}" for v in row) + "] " for row in rows)


def write_multicam_scene(scene_dir, w2c, video, names=None, drop_frame=None, drop_camera=None):
  """Writes ``videos/camXX.mp4`` and ``cameras/camera_extrinsics.json`` for (V, T) cameras."""
  v, t = w2c.shape[:2]
  names = names or [f"cam{j + 1:02d}" for j in range(v)]
  os.makedirs(os.path.join(scene_dir, "videos"), exist_ok=True)
  os.makedirs(os.path.join(scene_dir, "cameras"), exist_ok=True)
  for j, name in enumerate(names):
    video_io.write_video(os.path.join(scene_dir, "videos", f"{name}.mp4"), video[j], fps=15)
  c2w = geometry.invert_rigid(w2c)
  data = {}
  for i in range(t):
    if i == drop_frame:
      continue
    data[f"frame{i}"] = {name: opencv_to_unreal_string(c2w[j, i]) for j, name in enumerate(names)
                         if (i, name) != drop_camera}
  with open(os.path.join(scene_dir, "cameras", "camera_extrinsics.json"), "w") as f:
    json.dump(data, f)
  return names


class FakeTextEncoder:
  """Stands in for ``models.text_encoder.UMT5TextEncoder``: ``1 + words`` rows of width ``dim`` per prompt (the
  closing "</s>"), deterministic values; ``calls`` lists the prompts of each ``encode``."""

  source, max_length = "fake-umt5", 16

  def __init__(self, dim: int = 8, scale: float = 1.0):
    self.dim, self.scale, self.calls = dim, scale, []

  def encode(self, prompts):
    self.calls.append(list(prompts))
    return [self.scale * np.random.default_rng(sum(map(ord, p))).normal(size=(1 + len(p.split()), self.dim)).astype(
        np.float32) for p in prompts]


def with_text(pipeline, text_cache: str, encoder: FakeTextEncoder | None = None):
  """``pipeline``'s model as if trained with text: ``text.cache = text_cache`` and a zero null context, with
  ``encoder`` as its text encoder (the pipeline caches the encoder it builds: here it is given instead)."""
  config = ml_collections.ConfigDict(pipeline.config.to_dict())
  config.text.cache = str(text_cache)
  null = np.zeros((pipeline.model.context_length, pipeline.dit.config.text_dim), np.float32)
  texted = novel_view.NovelViewPipeline(config, dict(pipeline.params, text={"null_context": null}), step=pipeline.step,
                                        source=f"{pipeline.source} (with text)")
  if encoder is not None:
    texted.__dict__["text_encoder"] = encoder
  return texted
