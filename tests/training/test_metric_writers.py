"""The progress bar and the logs share one terminal: log lines go above the bar, never into its line."""

import io
import logging
import re
import sys

import pytest
from absl import flags
from absl import logging as absl_logging

from mvtrack_jax.training import metric_writers


@pytest.mark.parametrize("kind", ["absl", "stream"])
def test_log_lines_are_written_above_the_progress_bar(tmp_path, monkeypatch, kind):
  """A WARNING logged while the bar is shown starts a line of its own (the bar is cleared, the line written, the
  bar redrawn below it) instead of following the bar's text on the bar's line; the handler gets its stream back.

  ``absl`` is what the CLIs run (``absl.app.run`` puts an ``ABSLHandler`` on the root logger, flags parsed),
  ``stream`` a ``logging.basicConfig`` handler."""
  terminal = io.StringIO()
  monkeypatch.setattr(sys, "stderr", terminal)  # the handler and the bar both write to "the terminal"
  if kind == "absl":
    monkeypatch.setitem(vars(flags.FLAGS), "__flags_parsed", True)  # as under app.run: write to the handler's stream
    handler = absl_logging.ABSLHandler(absl_logging.PythonFormatter())
    writer = handler.python_handler
    log, prefix = absl_logging.warning, r"W\d{4} [\d:.]+ +\d+ \S+:\d+\] "
  else:
    handler = writer = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    log, prefix = logging.getLogger("some.library").warning, r"WARNING:some\.library:"
  logging.root.addHandler(handler)
  try:
    metrics = metric_writers.MetricWriter(str(tmp_path), total_steps=3, enabled=True, tensorboard=False,
                                          progress_bar=True)
    metrics.advance()
    log("a warning while the bar is shown")
    metrics.advance(2)
    metrics.close()
  finally:
    logging.root.removeHandler(handler)
  out = terminal.getvalue()
  head, _, tail = out.partition("a warning while the bar is shown")
  line_start = head[max(head.rfind("\r"), head.rfind("\n")) + 1:]  # what precedes the message on its line
  assert re.fullmatch(prefix, line_start), repr(out)
  assert tail.startswith("\n") and "train:" in tail, repr(out)     # the bar comes back below the line
  assert writer.stream is terminal


def test_status_is_shown_after_the_bar_and_cleared(tmp_path, monkeypatch):
  """While the first step compiles the bar cannot move; the trainer says why on it."""
  terminal = io.StringIO()
  monkeypatch.setattr(sys, "stderr", terminal)
  metrics = metric_writers.MetricWriter(str(tmp_path), total_steps=3, enabled=True, tensorboard=False,
                                        progress_bar=True)
  metrics.status("compiling the train step…")
  assert terminal.getvalue().rstrip().endswith(", compiling the train step…]"), repr(terminal.getvalue())
  metrics.status("")
  metrics.advance()
  metrics.close()
  assert "compiling" not in terminal.getvalue().split("\r")[-1]  # the last drawing of the bar
