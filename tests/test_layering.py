"""The package's layering, checked on every import of every module (parsed with ``ast``, nothing is imported).

Layers, bottom to top (docs/design.md, "Layering"); a module may import its own layer and the layers below:

0. leaves: ``errors``, ``checkpoint_format``, ``drawing``, ``tapvid``, ``geometry``, ``diffusion``
1. ``data`` (the library: schema, readers, pipeline, sources, the synthetic renderer, video and feature-cache I/O)
2. ``models``
3. ``losses``; ``convert`` (checkpoint files, the weight-name table, config and state-dict conversion, the
   pretrained-init policy); ``builders`` (config
   → model objects, reading the weights the config names); ``run_config`` (the run config's schema, which checks
   blocks by building the data/model/loss dataclasses that own them)
4. ``training`` and ``inference``, which never import each other
5. ``evaluation``
6. entry points (``python -m mvtrack_jax.<name>``), never imported by any module, not even another entry point;
   the offline tools' wing (cache encoders, preview, converters, stand-in writers) and ``cli``, which entry
   points and tools share.

No edge breaks this; the test fails on any that does, and ``test_an_upward_import_is_caught`` shows it can fail.
"""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "mvtrack_jax"

ENTRY_POINTS = {"train", "generate", "evaluate", "probe", "compare", "replicate", "export", "bench"}
TOOLS = {"data.encode_image", "data.encode_latents", "data.encode_text", "data.preview", "data.convert_kubric",
         "data.build_synthetic",
         "convert.standins", "cli"}
RANKS = {"errors": 0, "checkpoint_format": 0, "drawing": 0, "tapvid": 0, "geometry": 0, "diffusion": 0,
         "data": 1, "models": 2, "losses": 3, "convert": 3, "builders": 3, "run_config": 3,
         "training": 4, "inference": 4, "evaluation": 5}
SIBLINGS = {frozenset({"training", "inference"})}
TOP = 6

def module_names() -> list[str]:
  names = []
  for root, _, files in os.walk(os.path.join(REPO, PACKAGE)):
    for f in files:
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(root, f), os.path.join(REPO, PACKAGE))[:-3].replace(os.sep, ".")
        names.append(rel.removesuffix(".__init__").removesuffix("__init__"))
  return sorted(n for n in names if n)


def rank(name: str) -> int:
  if name in ENTRY_POINTS or name in TOOLS:
    return TOP
  return RANKS[name.split(".")[0]]


def imports_of(source: str, name: str) -> set[str]:
  """Project modules ``name`` imports (``mvtrack_jax.x.y`` → ``x.y``; ``from mvtrack_jax.x import y`` → ``x.y`` when
  ``y`` is a module, else ``x``), anywhere in the file (function-level imports included)."""
  known = set(module_names())
  found = set()
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.startswith(PACKAGE + "."):
          found.add(alias.name[len(PACKAGE) + 1:])
    elif isinstance(node, ast.ImportFrom) and node.module and (node.module == PACKAGE or
                                                                node.module.startswith(PACKAGE + ".")):
      base = node.module[len(PACKAGE) + 1:] if node.module != PACKAGE else ""
      for alias in node.names:
        full = f"{base}.{alias.name}" if base else alias.name
        found.add(full if full in known else base)
  found.discard("")
  found.discard(name)
  return found


def violation(importer: str, imported: str) -> str | None:
  """Why ``importer → imported`` breaks the layering, or None."""
  if imported in ENTRY_POINTS:
    return "imports an entry point"
  top_a, top_b = importer.split(".")[0], imported.split(".")[0]
  if frozenset({top_a, top_b}) in SIBLINGS and top_a != top_b:
    return f"{top_a} and {top_b} never import each other"
  if rank(imported) > rank(importer):
    return f"imports a higher layer ({rank(importer)} → {rank(imported)})"
  return None


def all_edges() -> dict[tuple[str, str], str]:
  edges = {}
  for name in module_names():
    path = os.path.join(REPO, PACKAGE, *name.split(".")) + ".py"
    if not os.path.exists(path):
      path = os.path.join(REPO, PACKAGE, *name.split("."), "__init__.py")
    with open(path, encoding="utf-8") as f:
      source = f.read()
    for imported in imports_of(source, name):
      why = violation(name, imported)
      if why:
        edges[(name, imported)] = why
  return edges


def test_every_module_has_a_layer():
  for name in module_names():
    rank(name)  # KeyError: a new top-level package needs a layer


def test_no_import_breaks_the_layering():
  edges = all_edges()
  assert not edges, "upward imports: " + "; ".join(f"{a} → {b}: {why}" for (a, b), why in sorted(edges.items()))


@pytest.mark.parametrize("importer,source,why", [
    ("models.wan", "from mvtrack_jax.training import trainer\n", "higher layer"),
    ("data.pipeline", "def f():\n  import mvtrack_jax.evaluation.camera\n", "higher layer"),
    ("inference.novel_view", "from mvtrack_jax.training import train_state\n", "never import each other"),
    ("compare", "from mvtrack_jax import evaluate\n", "entry point"),
])
def test_an_upward_import_is_caught(importer, source, why):
  found = [violation(importer, imported) for imported in imports_of(source, importer)]
  assert any(w and why in w for w in found), found
