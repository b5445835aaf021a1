"""Mutation check of the promotion gate: do the gate's tests notice a one-operator change?

Each mutant makes one change to ``src/gemini_sft/gate.py`` -- flips a comparison, ``and``/``or``
or ``+``/``-``/``*``/``/``, drops a ``not`` or unary minus, changes a number or boolean constant,
negates the condition of an ``if`` (statement or expression), or makes a ``return`` give None --
and runs ``tests/test_gate.py`` against it. A mutant the tests fail on is *killed*; one they pass on *survived* and is
printed with its line, so a reader can add the test that notices it.

Usage: ``python tools/mutate_gate.py [--module PATH] [--tests PATH] [--jobs N]`` (``make mutate``).
Not part of CI: a run takes a few minutes.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMPARISON_FLIPS: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.In: ast.NotIn, ast.NotIn: ast.In,
}
ARITHMETIC_FLIPS: dict[type, type] = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
BOOLEAN_FLIPS: dict[type, type] = {ast.And: ast.Or, ast.Or: ast.And}

# Runs the tests with the mutant installed as gemini_sft.gate (argv: mutant file, test path).
RUNNER = """
import importlib.util, sys
import gemini_sft
spec = importlib.util.spec_from_file_location("gemini_sft.gate", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["gemini_sft.gate"] = module
spec.loader.exec_module(module)
gemini_sft.gate = module
import pytest
sys.exit(pytest.main(["-q", "-x", "-p", "no:cacheprovider", "--no-header", sys.argv[2]]))
"""


@dataclass(frozen=True)
class Mutant:
    """One operator change: where, and what became what."""

    index: int
    line: int
    change: str


def _sites(tree: ast.AST) -> list[tuple[ast.AST, str, int]]:
    """Every mutable spot: (node, kind, sub-position) in a deterministic order."""
    sites: list[tuple[ast.AST, str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sites += [(node, "compare", i) for i, op in enumerate(node.ops) if type(op) in COMPARISON_FLIPS]
        elif isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC_FLIPS:
            sites.append((node, "binop", 0))
        elif isinstance(node, ast.BoolOp):
            sites.append((node, "boolop", 0))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            sites.append((node, "unary", 0))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            sites.append((node, "constant", 0))
        elif isinstance(node, (ast.If, ast.IfExp)):
            sites.append((node, "condition", 0))
        elif isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
            sites.append((node, "return", 0))
    return sites


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _mutate(node: ast.AST, kind: str, position: int) -> str:
    """Change ``node`` in place; returns a description of the change."""
    if kind == "condition":
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
        return "condition negated"
    if kind == "return":
        node.value = ast.Constant(value=None)
        return "returns None"
    if kind == "compare":
        old = node.ops[position]
        node.ops[position] = COMPARISON_FLIPS[type(old)]()
        return f"{type(old).__name__} -> {type(node.ops[position]).__name__}"
    if kind == "binop":
        old = node.op
        node.op = ARITHMETIC_FLIPS[type(old)]()
        return f"{type(old).__name__} -> {type(node.op).__name__}"
    if kind == "boolop":
        old = node.op
        node.op = BOOLEAN_FLIPS[type(old)]()
        return f"{type(old).__name__} -> {type(node.op).__name__}"
    if kind == "unary":
        return ("not x" if isinstance(node.op, ast.Not) else "-x") + " -> x"
    value = node.value
    if isinstance(value, bool):
        node.value = not value
    elif value == 0:
        node.value = type(value)(1)
    else:
        node.value = type(value)(0) if isinstance(value, int) else value + 1.0
    return f"{value!r} -> {node.value!r}"


class _DropOperator(ast.NodeTransformer):
    """Replaces one unary operation (``not x``, ``-x``) by its operand."""

    def __init__(self, target: ast.AST) -> None:
        self.target = target

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        return node.operand if node is self.target else node


def mutants(source: str) -> list[tuple[Mutant, str]]:
    """Every one-operator mutant of ``source`` as (description, mutated source).

    Docstrings and other strings are left alone: only operators and number/boolean constants change.
    """
    tree = ast.parse(source)
    count = len(_sites(tree))
    result: list[tuple[Mutant, str]] = []
    for index in range(count):
        mutated = copy.deepcopy(tree)
        node, kind, position = _sites(mutated)[index]
        change = _mutate(node, kind, position)
        if kind == "unary":
            mutated = _DropOperator(node).visit(mutated)
        ast.fix_missing_locations(mutated)
        try:
            text = ast.unparse(mutated)
        except (ValueError, TypeError):
            continue
        result.append((Mutant(index, getattr(node, "lineno", 0), change), text))
    return result


def _run(mutant_source: str, tests: Path, python: str) -> bool:
    """True when the tests fail against the mutant (the mutant is killed)."""
    with tempfile.NamedTemporaryFile("w", suffix="_gate.py", delete=False, encoding="utf-8") as handle:
        handle.write(mutant_source)
        path = handle.name
    try:
        completed = subprocess.run(
            [python, "-c", RUNNER, path, str(tests)], cwd=ROOT, capture_output=True, timeout=300,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    except subprocess.TimeoutExpired:
        return True  # a mutant that hangs the tests is noticed
    finally:
        os.unlink(path)
    return completed.returncode != 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", type=Path, default=ROOT / "src/gemini_sft/gate.py", help="module to mutate")
    parser.add_argument("--tests", type=Path, default=ROOT / "tests/test_gate.py", help="tests to run per mutant")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    args = parser.parse_args(argv)

    source = args.module.read_text(encoding="utf-8")
    if _run(ast.unparse(ast.parse(source)), args.tests, sys.executable):
        print("the tests fail on the unmutated module; fix them first", file=sys.stderr)
        return 2
    all_mutants = mutants(source)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(lambda item: _run(item[1], args.tests, sys.executable), all_mutants))
    survivors = [mutant for (mutant, _), killed in zip(all_mutants, outcomes) if not killed]
    lines = source.splitlines()
    print(f"{args.module.name}: {len(all_mutants)} mutants, {len(all_mutants) - len(survivors)} killed, "
          f"{len(survivors)} survived")
    for mutant in sorted(survivors, key=lambda m: (m.line, m.index)):
        text = lines[mutant.line - 1].strip() if 0 < mutant.line <= len(lines) else ""
        print(f"  survived: line {mutant.line}: {mutant.change}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
