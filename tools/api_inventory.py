"""Write the inventory of the documented recurrent API of the installed Keras, and its coverage.

    python -m rnnspec.tools.api_inventory [--env NAME] [--out docs/contract] [--report R.json]

Reads, from the installed Keras (``spec/inventory.py``), every constructor
and call argument of SimpleRNN, LSTM, GRU, RNN, Bidirectional, SimpleRNNCell,
LSTMCell, GRUCell and StackedRNNCells from three sources (signature,
docstring, ``get_config()``), and writes ``<out>/<env>.json`` and
``<out>/<env>.md``: each argument with its documented sentences, the sources
that name it, and its entry in the argument map (``spec/data/arguments.toml``:
the claims, or the out-of-scope reason). With ``--report``, a conformance
report of the same environment, the Markdown also gives each argument's
coverage in that run (exercised with two values, or not).

The names the sources disagree on are listed first: documented but not
accepted under that name, accepted but undocumented, configured only.
"""

import argparse
import json
import os
from pathlib import Path


def _row_status(report, cls, arg):
    if not report:
        return ""
    for row in (report.get("arguments") or {}).get("rows", []):
        if row["class"] == cls and row["argument"] == arg:
            return row["status"]
    return ""


def render(env, inv, report=None, env_of=None):
    """The Markdown page of one environment (``env_of``: its environment dict, for the map's ``when``)."""
    from rnnspec.spec import arguments, inventory
    lines = [f"# The documented recurrent API of {env}", "",
             "Written by `python -m rnnspec.tools.api_inventory` from the installed Keras: each argument "
             "with the sources that name it (signature, docstring, `get_config()`), its documented "
             "sentences, and what `spec/data/arguments.toml` maps it to.", ""]
    cov = (report or {}).get("arguments")
    if cov:
        lines += [f"Coverage in the report of this environment: {cov['mapped']}/{cov['documented']} documented "
                  f"arguments mapped; {cov['exercised']}/{cov['in_scope']} in scope exercised with two values "
                  f"({', '.join(f'{n} {s}' for s, n in sorted(cov['counts'].items()))}).", ""]
    disagree = inventory.single_source(inv)
    lines += ["## Where the sources disagree", ""]
    if disagree:
        lines += ["| class | argument | named by |", "| --- | --- | --- |"]
        lines += [f"| {c} | `{a}` | {', '.join(s) or 'none'} |" for c, a, s in disagree]
    else:
        lines.append("Nowhere.")
    for cls, c in inv.items():
        lines += ["", f"## {cls}", "", "| argument | where | sources | map | coverage | documented |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for arg, rec in c["arguments"].items():
            entry = arguments.entry_for(cls, arg, rec["where"], env_of)
            mapped = ("**unmapped**" if entry is None else
                      f"out of scope: {entry['out_of_scope']}" if "out_of_scope" in entry else
                      "<br>".join(f"`{p}`" for p in entry["claims"]))
            text = rec["text"].replace("|", "\\|")
            lines.append(f"| `{arg}` | {rec['where']} | {', '.join(rec['sources'])} | {mapped} | "
                         f"{_row_status(report, cls, arg)} | {text} |")
        for where, prose in c["prose"].items():
            lines += ["", f"{cls} {where} arguments (prose): {prose}"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=os.environ.get("RNNSPEC_ENV", "local"))
    parser.add_argument("--out", default="docs/contract")
    parser.add_argument("--report", default=None, help="a conformance report of this environment")
    args = parser.parse_args(argv)
    from rnnspec.spec import adapter, inventory
    inv = inventory.inventory(adapter.keras)
    report = json.loads(Path(args.report).read_text()) if args.report else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.env}.json").write_text(json.dumps(
        {"environment": {"keras": adapter.KERAS_VERSION, "backend": adapter.BACKEND}, "classes": inv},
        indent=1, sort_keys=True) + "\n")
    from rnnspec.spec.report import environment
    (out / f"{args.env}.md").write_text(render(args.env, inv, report, environment()))
    documented = inventory.documented(inv)
    print(f"{args.env}: {len(documented)} documented arguments in {len(inv)} classes; "
          f"{len(inventory.single_source(inv))} named by only some sources -> {out}/{args.env}.md")


if __name__ == "__main__":
    main()
