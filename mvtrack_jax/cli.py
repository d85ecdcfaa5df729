"""What every ``python -m mvtrack_jax.…`` command shares: quiet logs by default, then ``absl.app.run``.

Commands log WARNING and above unless asked for more: ``--verbosity=0`` (or ``-v 0``) shows absl,
Orbax and grain INFO lines again, ``--verbosity=1`` adds debug output. Each command still prints its
own one-line result (what it wrote and where) on stdout. Subprocesses that JAX would flag
(``os.fork() was called``) are ffmpeg and other programs started with fork + exec, which never run
JAX in the child; that warning is silenced for them (``data.video_io``).
"""

from __future__ import annotations

from typing import Any, Callable

from absl import app
from absl import flags
from absl import logging

QUIET_VERBOSITY = logging.WARNING  # absl verbosity -1


def run(main: Callable[[list[str]], Any]) -> None:
  """``absl.app.run(main)`` with WARNING as the default log level (``--verbosity`` / ``-v`` overrides it).

  absl sets INFO when the flag is absent, after parsing; the level is lowered again inside ``main``.
  """
  def quiet_main(argv):
    if not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(QUIET_VERBOSITY)
    return main(argv)
  app.run(quiet_main)
