"""tools/namespace_imports.py: old-style imports become ``rnnspec.``, nothing else changes, twice is once.

namespace_imports: skip-file (the examples below are old-style on purpose)
"""

import runpy
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "namespace_imports.py"
ns = runpy.run_path(str(SCRIPT))   # a script: it must run before the package is installed


@pytest.fixture
def tree(tmp_path):
    for pkg, mods in {"spec": ["adapter", "report"], "reference": ["cells", "layer"],
                      "tools": ["report", "mutation"], "faults": ["plugin", "catalogue"]}.items():
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
        for m in mods:
            (tmp_path / pkg / f"{m}.py").write_text("")
    return tmp_path


def run(tree, name, text):
    path = tree / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    assert ns["main"](["--root", str(tree), str(path)]) == 0
    first = path.read_text()
    assert ns["main"](["--root", str(tree), "--check", str(path)]) == 0, "not idempotent"
    return first


def test_python_imports(tree):
    out = run(tree, "x.py", """\
        import os
        import reference
        import reference as ref
        import reference.cells as cells
        import spec.adapter
        from spec import adapter, report
        from spec.report import environment  # from spec import x
        from reference.layer import (run_layer,
                                     merge)
        from faults import get
        if True:
            from tools.mutation import run_suite
        code = "from spec import adapter; print(adapter.KERAS_MAJOR)"
        cmd = ["python", "-m", "tools.mutation", "-p", "faults.plugin", "spec.json", "spec/test_x.py"]
        skip = importorskip("spec.adapter")
        value = reference.run_layer(spec)   # code that is not an import stays
        def f():
            yield from spec
    """)
    assert out == textwrap.dedent("""\
        import os
        from rnnspec import reference
        from rnnspec import reference as ref
        import rnnspec.reference.cells as cells
        from rnnspec import spec; import rnnspec.spec.adapter
        from rnnspec.spec import adapter, report
        from rnnspec.spec.report import environment  # from rnnspec.spec import x
        from rnnspec.reference.layer import (run_layer,
                                     merge)
        from rnnspec.faults import get
        if True:
            from rnnspec.tools.mutation import run_suite
        code = "from rnnspec.spec import adapter; print(adapter.KERAS_MAJOR)"
        cmd = ["python", "-m", "rnnspec.tools.mutation", "-p", "rnnspec.faults.plugin", "spec.json", "spec/test_x.py"]
        skip = importorskip("rnnspec.spec.adapter")
        value = reference.run_layer(spec)   # code that is not an import stays
        def f():
            yield from spec
    """)
    compile(out, "x.py", "exec")


def test_text_files(tree):
    out = run(tree, "tox.ini", """\
        commands =
            python -m tools.report merge reports/*.json --exclude spec.json -o docs/matrix.md
            python -c 'from spec import adapter'
            pytest -p faults.plugin spec/test_structure.py
        see `spec.adapter.subject` and reference/cells.py
        old style: `from spec import adapter` <!-- namespace_imports: keep -->
    """)
    assert out == textwrap.dedent("""\
        commands =
            python -m rnnspec.tools.report merge reports/*.json --exclude spec.json -o docs/matrix.md
            python -c 'from rnnspec.spec import adapter'
            pytest -p rnnspec.faults.plugin spec/test_structure.py
        see `rnnspec.spec.adapter.subject` and reference/cells.py
        old style: `from spec import adapter` <!-- namespace_imports: keep -->
    """)


def test_new_modules_are_found_on_disk(tree):
    (tree / "tools" / "brand_new.py").write_text("")
    assert run(tree, "run.sh", "python -m tools.brand_new\n") == "python -m rnnspec.tools.brand_new\n"


def test_the_tree_is_already_rewritten():
    """This checkout names no module the old way (rerun the script after merging an old-style branch)."""
    assert ns["main"](["--check"]) == 0
