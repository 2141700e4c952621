"""docs/SECURITY.md cannot rot: its table keeps 40+ rows, and every test a row names exists.

The test files are read with `ast` (not imported), so this stays fast and needs no browser or
Redis. A case in brackets (`test_x[alg_none]`) must appear literally in that test's module: it is
the parametrize id, or the input as written in the parameter list.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "SECURITY.md"
AREAS = {"HTTP", "WebSocket", "SSE", "Redis", "process"}
ROW = re.compile(r"^\|\s*(\d+)\s*\|(.*)\|\s*$")
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[([^`]+)\])?`")


@dataclass(frozen=True)
class Row:
    number: int
    area: str
    bad_input: str
    outcome: str
    tests: tuple[tuple[str, str, str | None], ...]


def rows() -> list[Row]:
    found = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        cells = [cell.strip() for cell in match.group(2).split("|")]
        assert len(cells) == 4, f"row {match.group(1)} does not have 5 columns (a | inside a cell?): {line}"
        area, bad_input, outcome, tests = cells
        found.append(Row(int(match.group(1)), area, bad_input, outcome, tuple(TEST_ID.findall(tests))))
    return found


@cache
def _module(path: str) -> tuple[frozenset[str], str]:
    source = (ROOT / path).read_text(encoding="utf-8")
    tree = ast.parse(source)
    names = frozenset(node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))
    return names, source


def test_the_table_has_at_least_40_numbered_rows_over_every_area() -> None:
    table = rows()
    assert len(table) >= 40
    assert [row.number for row in table] == list(range(1, len(table) + 1))
    areas = set()
    for row in table:
        named = {area.strip() for area in row.area.split(",")}
        assert named <= AREAS, f"row {row.number}: unknown area {row.area!r}"
        areas |= named
        assert row.bad_input and row.outcome, f"row {row.number} is missing its input or outcome"
        assert row.tests, f"row {row.number} names no test as `tests/path.py::test_name`"
    assert areas == AREAS


@pytest.mark.parametrize("row", rows(), ids=lambda row: str(row.number))
def test_every_test_a_row_names_exists(row: Row) -> None:
    for path, name, case in row.tests:
        assert (ROOT / path).is_file(), f"row {row.number}: no file {path}"
        functions, source = _module(path)
        assert name.startswith("test_") and name in functions, f"row {row.number}: no test {name} in {path}"
        if case is not None:
            assert case in source, f"row {row.number}: case [{case}] is not in {path}"
