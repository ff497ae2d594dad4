"""Command-line tools around the spec: ``python -m tools.report`` (merge and diff
conformance reports) and the mutation runner."""
