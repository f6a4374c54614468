"""Array backends for the pricing functions: numpy by default, torch when any input is a torch tensor.

The pricing formulas are written once against the small namespace below, so the same function prices numpy
arrays (float64, CPU) and torch tensors (any dtype and device the caller chose, CPU or CUDA). torch is imported
only when a tensor is passed, so numpy users never pay for it.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy.special import ndtr

_INV_SQRT_2 = 1.0 / np.sqrt(2.0)

NUMPY = SimpleNamespace(
    name="numpy",
    exp=np.exp,
    log=np.log,
    sqrt=np.sqrt,
    ndtr=ndtr,
    where=np.where,
    abs=np.abs,
    maximum=np.maximum,
    minimum=np.minimum,
)


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "torch"


def _torch_namespace() -> SimpleNamespace:
    import torch

    return SimpleNamespace(
        name="torch",
        exp=torch.exp,
        log=torch.log,
        sqrt=torch.sqrt,
        # torch.special.ndtr computes 0.5 (1 + erf) and underflows to 0 below about -8; erfc keeps the tail
        ndtr=lambda x: 0.5 * torch.special.erfc(-x * _INV_SQRT_2),
        where=torch.where,
        abs=torch.abs,
        maximum=torch.maximum,
        minimum=torch.minimum,
    )


def as_arrays(floats: tuple[Any, ...], flags: tuple[Any, ...] = ()) -> tuple[SimpleNamespace, tuple, tuple]:
    """Pick the backend and convert every value to it.

    numpy: ``floats`` become float64 arrays, ``flags`` boolean arrays. torch (when any value is a tensor):
    tensors with the dtype and device of the first floating-point tensor (float64 when none is), flags as
    boolean tensors on that device. Returns ``(namespace, converted floats, converted flags)``.
    """
    tensors = [v for v in (*floats, *flags) if _is_tensor(v)]
    if not tensors:
        return (
            NUMPY,
            tuple(np.asarray(v, dtype=float) for v in floats),
            tuple(np.asarray(v).astype(bool) for v in flags),
        )
    import torch

    like = next((t for t in tensors if t.is_floating_point()), tensors[0])
    dtype = like.dtype if like.is_floating_point() else torch.float64
    return (
        _torch_namespace(),
        tuple(torch.as_tensor(v, dtype=dtype, device=like.device) for v in floats),
        tuple(torch.as_tensor(v, device=like.device).to(torch.bool) for v in flags),
    )
