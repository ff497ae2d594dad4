"""bfloat16 rounding without ml_dtypes (spec/runners.py): nearest, ties to even."""

import numpy as np
import pytest

from rnnspec.spec.runners import bfloat16_rounded


def test_hand_values():
    x = np.array([1.0, 1.00390625, 1.01171875, 1.0078125, -3.0078125, 0.0, 65280.0], np.float32)
    # 1 + 2^-8 is a tie between 1 and 1 + 2^-7: to even (1); 1 + 3*2^-8 goes up to 1 + 2^-6
    want = np.array([1.0, 1.0, 1.015625, 1.0078125, -3.0, 0.0, 65280.0], np.float32)
    np.testing.assert_array_equal(bfloat16_rounded(x), want)


def test_agrees_with_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(100_000) * rng.choice([1e-3, 1.0, 1e3], 100_000)).astype(np.float32)
    np.testing.assert_array_equal(bfloat16_rounded(x).view(np.uint32),
                                  x.astype(ml_dtypes.bfloat16).astype(np.float32).view(np.uint32))
