"""Devices and TF32 policies that the equivalence properties run on.

Every equivalence property is instantiated once per entry of
:data:`DEVICE_PARAMS`: always the CPU; on a GPU twice, once with TF32 off
(full float32: the numerics are checked at the tight GPU tolerance) and once
with the framework's default (TF32 on for torch's cuDNN and JAX's matmuls:
checked at the loose TF32 tolerance, which still sees gate order, masks and
ordering but not a 1e-3 numerical error). An absent GPU is a skip with its
reason, never a silent drop, and the report shows it.
"""

import pytest

from rnnspec.spec import adapter

TF32_TABLE_KEY = {"off": "off", "default": "on"}


def _gpu_skip():
    seen = adapter.devices()
    return pytest.mark.skipif("gpu" not in seen,
                              reason=f"no GPU visible to the {adapter.BACKEND} backend (devices: {seen})")


DEVICE_PARAMS = [
    pytest.param(("cpu", "off"), id="cpu"),
    pytest.param(("gpu", "off"), id="gpu-tf32off", marks=[_gpu_skip(), pytest.mark.gpu]),
    pytest.param(("gpu", "default"), id="gpu-tf32default", marks=[_gpu_skip(), pytest.mark.gpu]),
]


def pool_params(pool_name, devices=None):
    """``(device, entry)`` parameters: every entry of the named pool on every device.

    Where a device is absent, one skipped parameter per device stands for all
    its entries, with the reason, instead of one skip per entry.
    """
    from rnnspec.spec.pool import entries
    params = []
    for dev in devices or DEVICE_PARAMS:
        where, _ = dev.values[0]
        if where == "gpu" and "gpu" not in adapter.devices():
            params.append(pytest.param(dev.values[0], None, id=dev.id, marks=dev.marks))
            continue
        params += [pytest.param(dev.values[0], e, id=f"{dev.id}-{e!r}", marks=dev.marks)
                   for e in entries(pool_name)]
    return params
