"""Every Python snippet of the README runs as written, and says what it returns.

A snippet line ``expression   # value`` is checked: the value in the comment (a Python literal,
or integers separated by commas) must be what the expression evaluates to; ``# SomeError: ...``
means the line must raise that error. The pytest-plugin snippet is run as a test file.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

import fxflops

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
SNIPPETS = BLOCK.findall(README.read_text())
PLUGIN_SNIPPETS = [s for s in SNIPPETS if "def test_" in s]
LIBRARY_SNIPPETS = [s for s in SNIPPETS if "def test_" not in s]


def _expected(comment: str) -> tuple[str, Any] | None:
    """("raises", name) or ("equals", value) from a line's comment, or None (prose)."""
    error = re.match(r"([A-Z]\w*Error):", comment)
    if error:
        return "raises", error.group(1)
    try:
        return "equals", ast.literal_eval(comment)
    except (ValueError, SyntaxError):
        pass
    numbers = re.match(r"(\d+(?:, \d+)*)(?:[,:]|\s|$)", comment)
    if numbers:
        values = tuple(int(n) for n in numbers.group(1).split(", "))
        return "equals", values[0] if len(values) == 1 else values
    return None


def _run(snippet: str) -> int:
    """Execute ``snippet`` line by line (statements may span lines); return how many values it checked."""
    namespace: dict[str, Any] = {}
    tree = ast.parse(snippet)
    lines = snippet.splitlines()
    checked = 0
    for statement in tree.body:
        source = ast.get_source_segment(snippet, statement) or ""
        last_line = lines[statement.end_lineno - 1]
        comment = last_line.split("#", 1)[1].strip() if "#" in last_line else ""
        expected = _expected(comment) if isinstance(statement, ast.Expr) and comment else None
        code = source.split("#", 1)[0] if "\n" not in source else source
        if expected is None:
            exec(compile(code, "README.md", "exec"), namespace)
            continue
        kind, value = expected
        checked += 1
        if kind == "raises":
            with pytest.raises(getattr(fxflops, value)):
                eval(compile(code.strip(), "README.md", "eval"), namespace)
        else:
            assert eval(compile(code.strip(), "README.md", "eval"), namespace) == value, code
    return checked


def test_the_readme_has_snippets() -> None:
    # quick start, uncounted ops, Hugging Face, generation, formula, training, roofline, budgets, rules
    assert len(SNIPPETS) == 9


@pytest.mark.parametrize("index", range(len(LIBRARY_SNIPPETS)))
def test_library_snippet_runs_and_returns_what_it_says(index: int) -> None:
    assert _run(LIBRARY_SNIPPETS[index]) >= 1  # every snippet states at least one result


def test_plugin_snippet_passes_as_a_test_file(pytester: pytest.Pytester) -> None:
    (snippet,) = PLUGIN_SNIPPETS
    pytester.makepyfile(test_mlp=snippet)
    result = pytester.runpytest_inprocess("-p", "no:hypothesispytest", "-p", "no:benchmark", "--flops-update")
    result.assert_outcomes(passed=3)
    result = pytester.runpytest_inprocess("-p", "no:hypothesispytest", "-p", "no:benchmark")
    result.assert_outcomes(passed=3)
