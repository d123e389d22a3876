"""torch's global state as d3dface's models and optimisers are written for, whatever a caller
set around a call (a notebook's ``torch.no_grad()``, ``torch.set_default_dtype(float64)``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["torch_as_written"]


class _Float32Default:
    """torch's default dtype set to float32 while at least one call holds it, then back to
    the caller's (torch keeps one default for all threads, so concurrent calls share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._callers = torch.float32

    def __enter__(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._callers = torch.get_default_dtype()
                torch.set_default_dtype(torch.float32)
            self._holders += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                torch.set_default_dtype(self._callers)


_FLOAT32_DEFAULT = _Float32Default()


@contextmanager
def torch_as_written() -> Iterator[None]:
    """torch as d3dface's models and optimisers are written for, whatever the caller set
    around a call: float32 by default (after ``torch.set_default_dtype(torch.float64)``; a
    model built then would hold float64 weights), gradients on (inside ``torch.no_grad()``)
    and inference mode off (inside ``torch.inference_mode()``); the fit and stage 2 optimise
    with autograd. A context manager and a decorator; the caller's settings come back after."""
    with _FLOAT32_DEFAULT, torch.inference_mode(False), torch.enable_grad():
        yield
