"""The floor of the camera columns' pose estimators on a synthetic clip with exact cameras.

Run::

  .venv/bin/python -m benchmarks.pose_bench                                  # 480×832, 81 frames (paper size)
  .venv/bin/python -m benchmarks.pose_bench --height=240 --width=416 --frames=25

Renders the ground-truth video of one synthetic scene (``data.synthetic``, ``paper`` style, seed ``--seed``,
the cameras of ``render_scene``'s first view) twice — as it is (its objects move and spin) and with every object
frozen at its first pose (a static scene) — and estimates its camera path with each ``--methods`` estimator
(``evaluation.clip_metrics.camera_metrics``: ``colmap`` is CamI2V's structure-from-motion protocol, ``sift`` /
``flow`` this project's two-view estimator). Prints per clip and estimator CamI2V's mean rotation error (degrees),
ReDirector's rotation and translation errors, the fraction of frames posed and the wall seconds. This is the
``gt_video`` column of ``evaluate``: the error the estimator itself makes, below which no model can score.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
import time

from absl import app
from absl import flags
import numpy as np

from mvtrack_jax.data import synthetic
from mvtrack_jax.evaluation import clip_metrics
from mvtrack_jax.geometry import invert_rigid

FLAGS = flags.FLAGS
flags.DEFINE_integer("height", 480, "Frame height.")
flags.DEFINE_integer("width", 832, "Frame width.")
flags.DEFINE_integer("frames", 81, "Frames.")
flags.DEFINE_integer("seed", 3, "Scene seed.")
flags.DEFINE_list("methods", ["colmap", "sift"], "Estimators (evaluation.clip_metrics.POSE_METHODS).")


def _clips(seed: int, frames: int, height: int, width: int):
  """``{name: (video, intrinsics, cam_to_world)}``: the scene as rendered, and with its objects frozen."""
  record = synthetic.render_scene(seed, num_views=1, num_frames=frames, height=height, width=width, num_tracks=0,
                                  style="paper")
  k, w2c = record["intrinsics"][:1], record["world_to_camera"][:1]
  scene = synthetic.random_scene(np.random.default_rng(seed), frames, "paper")
  still = dataclasses.replace(scene, objects=tuple(
      dataclasses.replace(o, centres=np.repeat(o.centres[:1], frames, 0), rotations=np.repeat(o.rotations[:1], frames, 0))
      for o in scene.objects))
  c2w = invert_rigid(w2c.astype(np.float64))
  static = synthetic.render_record(still, k, c2w, height, width, np.zeros((0,), np.int64),
                                   np.zeros((0, 3), np.float32))
  return {"dynamic (objects move)": (record["video"][0], k[0], c2w[0]),
          "static (objects frozen)": (static["video"][0], k[0], c2w[0])}


def main(argv):
  del argv
  print(f"pose estimators on a synthetic {FLAGS.height}x{FLAGS.width} clip of {FLAGS.frames} frames, seed {FLAGS.seed}; "
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}")
  print("| clip | estimator | mRotErr ° (CamI2V) | RotErr ° (ReDirector) | TransErr (ReDirector) | posed | seconds |")
  print("|---|---|---|---|---|---|---|")
  for name, (video, k, c2w) in _clips(FLAGS.seed, FLAGS.frames, FLAGS.height, FLAGS.width).items():
    example = {"target_cam_to_world": np.linalg.inv(c2w[0]) @ c2w, "target_intrinsics": k}
    for method in FLAGS.methods:
      start = time.time()
      m = clip_metrics.camera_metrics(video, example, method)
      print(f"| {name} | {method} | {m['m_rot_err_deg']:.3f} | {m['redirector_rot_err_deg']:.3f} | "
            f"{m['redirector_trans_err']:.4f} | {m['pose_valid']:.2f} | {time.time() - start:.0f} |", flush=True)


if __name__ == "__main__":
  app.run(main)
