"""What every ``python -m mvtrack_jax.…`` command shares: quiet logs by default, then ``absl.app.run``.

Commands log WARNING and above unless asked for more: ``--verbosity=0`` (or ``-v 0``) shows absl,
Orbax and grain INFO lines again, ``--verbosity=1`` adds debug output. Each command still prints its
own one-line result (what it wrote and where) on stdout. Subprocesses that JAX would flag
(``os.fork() was called``) are ffmpeg and other programs started with fork + exec, which never run
JAX in the child; that warning is silenced for them (``data.video_io``).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from mvtrack_jax import errors

QUIET_VERBOSITY = logging.WARNING  # absl verbosity -1


TRACEBACK_ENV = "MVTRACK_TRACEBACK"  # set to 1: user errors show their traceback too
EXIT_RUNTIME = 1
EXIT_USAGE = 2
# OS errors about a path the user named (the project's messages name the flag; the OS's name the path), and files
# the user named that cannot be used (a corrupt video).
PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
               errors.InputFileError)


def _show_traceback() -> bool:
  return os.environ.get(TRACEBACK_ENV, "") not in ("", "0") or flags.FLAGS["verbosity"].value >= 1


def _module_name() -> str:
  spec = getattr(sys.modules.get("__main__"), "__spec__", None)
  return spec.name if spec is not None and spec.name else os.path.basename(sys.argv[0] if sys.argv else "command")


def run(main: Callable[[list[str]], Any]) -> None:
  """``absl.app.run(main)`` with WARNING as the default log level (``--verbosity`` / ``-v`` overrides it) and a
  user's mistake reported in one line (``guarded``; a flag that does not parse too: ``parse_flags``)."""
  app.run(guarded(main), flags_parser=parse_flags)


def guarded(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
  """``main`` with the project's handling of a user's mistake (what ``run`` runs; tests call it in-process).

  absl sets INFO when ``--verbosity`` is absent, after parsing; the level is lowered again inside ``main``.
  A user's mistake — ``errors.UserError`` (a flag, config field or file named in the message) or
  ``app.UsageError`` — ends as one ``error: …`` line on stderr (a usage error adds a pointer to
  ``--help`` instead of absl's printout of the module docstring) and exit code 2; ``--verbosity=1`` or
  ``MVTRACK_TRACEBACK=1`` re-raises it with its traceback. An OS error about a path (``PATH_ERRORS``: a missing
  input, an output folder that is not empty or not writable, a corrupt video) ends the same way with exit
  code 1. Every other exception keeps its traceback.
  """

  def quiet_main(argv):
    if not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(QUIET_VERBOSITY)
    try:
      return main(argv)
    except (errors.UserError, app.UsageError) as e:
      if _show_traceback():
        raise
      hint = f"\n(python -m {_module_name()} --help lists the flags)" if isinstance(e, app.UsageError) else ""
      print(f"error: {e}{hint}", file=sys.stderr)
      sys.exit(EXIT_USAGE)
    except PATH_ERRORS as e:
      if _show_traceback():
        raise
      print(f"error: {e}", file=sys.stderr)
      sys.exit(EXIT_RUNTIME)

  return quiet_main


def _one_line(e: BaseException) -> str:
  """The message of ``e`` on one line, unwrapped from exceptions wrapping exceptions (ml_collections raises
  ``AttributeError(KeyError("'x'\\nDid you mean ..."))``)."""
  message: Any = e
  while isinstance(message, BaseException) and message.args:
    message = message.args[0]
  text = str(message).strip()
  if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":  # a KeyError's quoted repr
    text = text[1:-1]
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  return " — ".join(lines) if lines else type(e).__name__


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with each failure in one ``error:`` line and exit code 2 (``MVTRACK_TRACEBACK=1`` shows
  the traceback): a flag that does not exist or does not parse (absl's message names it; absl itself printed
  "FATAL Flags parsing error" and exited 1), and a misspelt ``--config.`` override (ml_collections raises an
  ``AttributeError`` naming the field and the nearest valid one)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
      raise
    print(f"error: {_one_line(e)}\n(python -m {_module_name()} --help lists the flags)", file=sys.stderr)
    sys.exit(EXIT_USAGE)
  except (AttributeError, KeyError) as e:
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
      raise
    print(f"error: a --config. override names no field of the config: {_one_line(e)}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def loaded_config(holder: Any) -> Any:
  """The config of a ``config_flags`` flag (holder or ``FLAGS[name]``), as loaded (entry points then validate it
  with ``run_config.complete``).

  Raises:
    errors.UserError: naming ``--config`` when its file did not load (ml_collections defers that failure to the
      first use of the config, as an ``OSError`` of many lines).
  """
  config = holder.value
  try:
    config.keys()
  except OSError as e:
    cause = str(e).strip().splitlines()
    raise errors.UserError(f"--config: {cause[-1].strip() if cause else e}") from None
  return config


def define_cache_flags(config_needs: str, *, dtype: bool = True) -> None:
  """The flags every feature-cache encoder shares (``data.encode_latents`` / ``encode_text`` / ``encode_image``):
  ``--config`` (a training config; ``config_needs`` says which of its fields the encoder reads), ``--out``,
  ``--splits``, ``--progress``, ``--source`` and, with ``dtype``, ``--dtype`` of the record files."""
  config_flags.DEFINE_config_file("config", None, f"Training config (configs/*.py) with {config_needs}.",
                                  lock_config=True)
  flags.DEFINE_string("out", None, "Cache folder (created; an existing one is resumed).")
  flags.DEFINE_list("splits", None, "Splits to encode (default: the train split, and the eval split of the "
                    "evaluation source).")
  if dtype:
    flags.DEFINE_enum("dtype", "float16", ["float16", "float32"], "dtype of the record files.")
  flags.DEFINE_boolean("progress", True, "Show a progress bar.")
  flags.DEFINE_string("source", None, "A data.mixture entry to encode (default: the primary source).")
  # absl's --help lists the flags of the program's own module: these, defined here, are made its own too.
  main_module = sys.argv[0] if sys.argv else "__main__"
  for name in ("config", "out", "splits", "progress", "source") + (("dtype",) if dtype else ()):
    flags.FLAGS.register_key_flag_for_module(main_module, flags.FLAGS[name])
