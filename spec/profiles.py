"""Example budgets relative to the active Hypothesis profile."""

from hypothesis import settings


def scaled_examples(factor):
    """``factor`` times the active profile's max_examples.

    For properties whose examples are cheap (cached graphs, fresh data), so
    that every profile keeps its proportions: dev stays quick, thorough long.
    """
    return max(1, int(settings().max_examples * factor))


def examples_per_entry(factor, pool_name):
    """``factor`` times max_examples, spread over every entry of the named pool (at least one each)."""
    from rnnspec.spec.pool import named_pool
    return max(1, -(-scaled_examples(factor) // len(named_pool(pool_name))))
