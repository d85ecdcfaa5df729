r"""The demo's experiment over several seeds: mean ± 95 % interval of every headline metric (``make replicate``).

Example (what ``make replicate`` runs after training both arms and comparing them once per seed)::

  python -m mvtrack_jax.replicate --compare out/replicate/seed0/compare --compare out/replicate/seed1/compare \
      --compare out/replicate/seed2/compare --out out/replicate

Each ``--compare`` folder is one seed's ``python -m mvtrack_jax.compare`` output (``evaluate/metrics.json``,
``summary.json``), all of the same models, split, scenes, trajectories and Euler steps, with distinct sampling
seeds (the folders' own records say which; a repeat is refused, since it would count one run twice). Writes
``<out>/replication.json`` (every seed's value and the intervals) and ``<out>/replication.md`` (the table, which
the command also prints): per trajectory family (the dataset's recorded target view, the preset trajectories,
all), PSNR, SSIM, camera errors, the matched epipolar proxy, head AJ and cross-view attention PCK of both models
and the model-free baselines, with the paired difference of the first two models
(``evaluation.replication`` gives the statistics).
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from absl import app
from absl import flags

from mvtrack_jax import cli
from mvtrack_jax import errors
from mvtrack_jax.data import video_io
from mvtrack_jax.evaluation import replication

FLAGS = flags.FLAGS
# What every seed's comparison must share for its numbers to be repeats of one experiment.
SAME_SETTINGS = ("split", "num_scenes", "trajectories", "steps", "pose_method", "resolution")


def _read_json(path: str) -> dict[str, Any]:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except FileNotFoundError:
    raise errors.InputFileError(f"--compare: {path} does not exist; expected the output folder of "
                                "python -m mvtrack_jax.compare") from None
  except (OSError, ValueError) as e:
    raise errors.InputFileError(f"--compare: cannot read {path} ({e})") from None


def run(compare_dirs: Sequence[str], out: str) -> dict[str, Any]:
  """The command (module docstring); returns the ``replication.json`` record.

  Raises:
    errors.InputFileError: a folder without a readable ``evaluate/metrics.json`` / ``summary.json``.
    errors.UserError: fewer than 2 folders, or folders whose settings, models or seeds do not make one replication.
  """
  if len(compare_dirs) < 2:
    raise errors.UserError(f"--compare: got {len(compare_dirs)} folder(s); a replication needs at least 2 seeds")
  video_io.check_output_dir(out)
  evals = [_read_json(os.path.join(d, "evaluate", "metrics.json")) for d in compare_dirs]
  summaries = [_read_json(os.path.join(d, "summary.json")) for d in compare_dirs]
  first = evals[0]
  for d, record in zip(compare_dirs[1:], evals[1:]):
    differ = [k for k in SAME_SETTINGS if record.get(k) != first.get(k)]
    if differ or list(record["checkpoints"]) != list(first["checkpoints"]):
      raise errors.UserError(
          f"--compare: {d} is not a repeat of {compare_dirs[0]}: "
          + (f"{differ} differ" if differ else f"models {list(record['checkpoints'])} vs {list(first['checkpoints'])}"))
  seeds = [int(record["seed"]) for record in evals]
  if len(set(seeds)) != len(seeds):
    raise errors.UserError(f"--compare: the folders' sampling seeds {seeds} repeat; each seed once (compare --seed)")
  models = list(first["checkpoints"])
  per_seed = [replication.seed_means(e, s) for e, s in zip(evals, summaries)]
  record = replication.aggregate(per_seed, models, seeds)
  record["settings"] = {k: first.get(k) for k in SAME_SETTINGS}
  record["compare"] = [os.path.abspath(d) for d in compare_dirs]
  record["checkpoints"] = [{m: e["checkpoints"][m]["source"] for m in models} for e in evals]
  text = replication.markdown(record)
  for name, body in (("replication.json", json.dumps(record, indent=2, allow_nan=False) + "\n"),
                     ("replication.md", "# Replication\n\n" + text)):
    with video_io.atomic_output(os.path.join(out, name)) as tmp:
      with open(tmp, "w", encoding="utf-8") as f:
        f.write(body)
  return record


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program)."""
  flags.DEFINE_multi_string("compare", None, "A compare output folder of one seed; repeat, one per seed.")
  flags.DEFINE_string("out", None, "Output folder (replication.json, replication.md).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.compare or not FLAGS.out:
    raise app.UsageError("--compare (one per seed) and --out are required")
  record = run(FLAGS.compare, FLAGS.out)
  print(replication.markdown(record), end="")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
