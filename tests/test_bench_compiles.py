"""The benchmarks in bench/ are not collected by the default run (``testpaths``), so nothing
else notices when one stops compiling: a merge once left conflict markers in
bench/test_bench_equivalence.py for several commits. Each bench module must at least compile."""

from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_bench_module_compiles(path):
    compile(path.read_text(), str(path), "exec")
