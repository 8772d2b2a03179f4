"""The README and docs/ stay true to the code: every config file they name
exists and builds with the argument given (``file.py:arg``), every
``--config.field`` override they write and every config field they name
in backticks exists in a shipped config, and every script they run
exists."""

import glob
import importlib
import os
import re

import pytest

from tests.test_configs import recipe_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(REPO, "README.md"),
        *sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))]
# Ours are <method>_<data>.py; openai/consistency_models_cifar10's, which
# docs/recipes.md cites, are cifar10_*.py.
CONFIG = re.compile(r"configs/(?!cifar10_)([a-z0-9_]+)\.py"
                    r"(?::(\w+(?:=[\w.]+)?(?:,\w+(?:=[\w.]+)?)*))?")
OVERRIDE = re.compile(r"--config\.([a-z0-9_.]+)=")
SCRIPT = re.compile(r"(?:scripts|benchmarks)/[a-z0-9_]+\.(?:py|sh)")
# `group.field` in backticks, for the config groups every config has.
GROUPS = ("data", "model", "diffusion", "train", "optim", "loss", "sample",
          "eval", "edit", "search", "teacher", "curriculum", "target", "ect",
          "scm", "lcm", "diffusion_model", "trigflow", "vp", "augment",
          "tcm", "meanflow", "shortcut", "linear")
FIELD = re.compile(r"`((?:%s)\.(?!py`|sh`|md`)[a-z0-9_]+)(?:=[^`]*)?`"
                   % "|".join(GROUPS))


def _text():
  return {os.path.relpath(p, REPO): open(p, encoding="utf-8").read()
          for p in DOCS}


def _config_names():
  return sorted({m.group(1) for text in _text().values()
                 for m in CONFIG.finditer(text)})


def _all_fields():
  """Dotted field names of every shipped config at every argument."""
  fields = set()
  for path in glob.glob(os.path.join(REPO, "configs", "*.py")):
    name = os.path.splitext(os.path.basename(path))[0]
    if name in ("__init__", "base"):
      continue
    module = importlib.import_module(f"configs.{name}")
    for arg in recipe_args(module):
      config = module.get_config(arg)
      fields |= set(_flatten(config.to_dict()))
  return fields


def _flatten(tree, prefix=""):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _flatten(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


def test_named_configs_exist_and_build_with_their_argument():
  named = [(doc, m.group(1), m.group(2)) for doc, text in _text().items()
           for m in CONFIG.finditer(text) if m.group(1) != "base"]
  assert len(named) > 30
  for doc, name, arg in named:
    assert os.path.isfile(os.path.join(REPO, "configs", f"{name}.py")), (
        f"{doc} names configs/{name}.py, which does not exist")
    module = importlib.import_module(f"configs.{name}")
    module.get_config(arg)  # an unknown :arg raises


def test_overrides_and_fields_named_exist():
  fields = _all_fields()
  missing = []
  for doc, text in _text().items():
    for m in OVERRIDE.finditer(text):
      if m.group(1) not in fields:
        missing.append(f"{doc}: --config.{m.group(1)}")
    for m in FIELD.finditer(text):
      if m.group(1) not in fields:
        missing.append(f"{doc}: `{m.group(1)}`")
  assert not missing, missing


def test_scripts_named_exist():
  for doc, text in _text().items():
    for m in SCRIPT.finditer(text):
      assert os.path.isfile(os.path.join(REPO, m.group(0))), (
          f"{doc} names {m.group(0)}, which does not exist")


@pytest.mark.parametrize("target", ["quickstart", "test", "test-quality",
                                    "test-mutations"])
def test_make_targets_named_exist(target):
  makefile = open(os.path.join(REPO, "Makefile"), encoding="utf-8").read()
  assert re.search(rf"^{re.escape(target)}:", makefile, re.M)
  assert f"make {target}" in _text()["README.md"]


DOC_NAME = re.compile(r"\b([\w/-]+\.md)\b")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)|<img src=\"([^\"]+)\"")


def test_links_and_pictures_resolve_and_no_document_outside_is_cited():
  """Every relative link and picture of the README and docs/ names a file
  in the repository, and every .md document the text names is in it."""
  missing = []
  for rel, text in _text().items():
    for match in LINK.finditer(text):
      target = match.group(1) or match.group(2)
      if "://" in target:
        continue
      path = os.path.join(REPO, os.path.dirname(rel), target)
      if not os.path.exists(path):
        missing.append(f"{rel}: {target}")
    # A document named in the text (``name.md``) is one of the repository's.
    for name in set(DOC_NAME.findall(text)):
      if not any(os.path.exists(os.path.join(REPO, d, name))
                 for d in ("", os.path.dirname(rel), "docs")):
        missing.append(f"{rel}: cites {name}, which is not in the repository")
    if "../" in text:
      missing.append(f"{rel}: names a path outside the repository (../)")
  assert not missing, missing
  # Each document of docs/ is linked from the README.
  readme = _text()["README.md"]
  for path in glob.glob(os.path.join(REPO, "docs", "*.md")):
    assert f"(docs/{os.path.basename(path)})" in readme, path
