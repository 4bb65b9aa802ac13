"""Imports run one way: the model knows nothing of search, training or applications, and
search reaches the model only through the decode-step interface."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nmt"
MODEL = {"layers", "attention", "encoder", "decoder", "model", "decode_step"}
ABOVE_THE_MODEL = {"search", "training", "translation", "translate_io", "cli", "serve", "plot",
                   "ablate", "checkpoint", "evaluation", "policy", "batching"}
MODEL_INTERNALS = {"attention", "encoder", "decoder"}


def nmt_imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nmt"):
            names.add(node.module.split(".")[1] if "." in node.module else node.names[0].name)
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("nmt."))
    return names


@pytest.mark.parametrize("module", sorted(MODEL))
def test_the_model_imports_nothing_above_it(module):
    assert not nmt_imports(module) & ABOVE_THE_MODEL


def test_search_reaches_the_model_only_through_the_decode_step_interface():
    assert not nmt_imports("search") & MODEL_INTERNALS
    assert "decode_step" in nmt_imports("search")
