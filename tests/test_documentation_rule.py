"""The rule of what the reference follows (issue #10): data checks, no Keras needed.

Every known divergence says which documentation it contradicts (the docstring sentence,
quoted) or why it is a divergence where the documentation is silent; every undocumented
convention names the reference code that implements it and the claims that check it.
"""

import fnmatch
import tomllib
from pathlib import Path

from rnnspec.spec import arguments

DATA = Path(arguments.__file__).resolve().parent / "data"
ROOT = DATA.parent.parent


def _load(name, table):
    return tomllib.loads((DATA / name).read_text())[table]


def test_every_divergence_quotes_what_it_contradicts_or_says_why_undocumented():
    for d in _load("divergences.toml", "divergence"):
        assert ("contradicts" in d) != ("undocumented" in d), \
            f"divergence {d['id']}: give `contradicts` (a quoted docstring sentence) or `undocumented`"
        if "contradicts" in d:
            assert '"' in d["contradicts"] and "docstring" in d["contradicts"].lower() \
                or "article" in d["contradicts"].lower(), d["id"]


def test_every_undocumented_convention_names_its_reference_and_claims():
    ids = arguments.spec_claim_ids()
    divergence_ids = {d["id"] for d in _load("divergences.toml", "divergence")}
    for c in _load("undocumented.toml", "convention"):
        assert {"id", "statement", "silent", "reference", "claims", "keras"} <= set(c), c.get("id")
        path = c["reference"].split(":")[0]
        assert (ROOT / path).is_file(), f"{c['id']}: {path} does not exist"
        for pattern in c["claims"]:
            assert any(fnmatch.fnmatchcase(i, pattern) for i in ids), f"{c['id']}: {pattern} matches no claim"
        if "divergence" in c:
            assert c["divergence"] in divergence_ids, c["id"]
