"""Puts ``tests/`` on ``sys.path``: the benchmarks use the tests' fair-esm reference, ``tests/esm_reference.py``.

A benchmark that needs it imports this module first (``import _paths  # noqa: F401``);
``benchmarks/`` itself is on the path because the benchmark runs as a script from there.
"""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
# Appended, not prepended: nothing in tests/ may shadow an installed module.
if str(TESTS) not in sys.path:
    sys.path.append(str(TESTS))
