"""Command-line tools around the spec: ``python -m rnnspec.tools.report`` (merge and diff
conformance reports) and the mutation runner."""
