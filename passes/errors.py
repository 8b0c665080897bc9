"""Exceptions raised by the batching rewrite.

Every error carries the op name, the function and the source location taken
from the module's ``loc`` so a user can find the line that produced the op.
"""
from __future__ import annotations

import re


class BatchingError(Exception):
    """Base class of every error raised while batching a module."""


class UnsupportedOpError(BatchingError, NotImplementedError):
    """An op has no batching rule (or a rule cannot handle this use of it)."""

    def __init__(self, op_name: str, func_name: str | None, location: str,
                 reason: str | None = None):
        self.op_name = op_name
        self.func_name = func_name
        self.location = location
        self.reason = reason
        self.call_sites: list[str] = []
        super().__init__(self._message())

    def _message(self) -> str:
        where = f" in function @{self.func_name}" if self.func_name else ""
        what = self.reason or "no batching rule"
        calls = "".join(f", called from {c}" for c in self.call_sites)
        return f"cannot batch '{self.op_name}'{where}: {what} at {self.location}{calls}"

    def add_call_site(self, location: str):
        """Records the call (outermost last) through which the op was reached,
        so the message leads back to the user's source line."""
        self.call_sites.append(location)
        self.args = (self._message(),)


class VerificationError(BatchingError):
    """A module failed MLIR verification (input or produced by the rewrite)."""

    def __init__(self, stage: str, diagnostics: str):
        self.stage = stage
        self.diagnostics = diagnostics
        super().__init__(f"{stage} module failed verification: {diagnostics}")


class AxisSpecError(BatchingError, ValueError):
    """in_axes / out_axes / axis_size do not fit the function or its values.

    ``result_index`` is set when the problem is the out_axes of one result;
    ``out_of_range`` = (axis, rank of the batched result) when that axis is
    out of range."""

    def __init__(self, message: str, result_index: int | None = None,
                 out_of_range: tuple[int, int] | None = None):
        self.result_index = result_index
        self.out_of_range = out_of_range
        super().__init__(message)


_FILE_LINE_COL = re.compile(r'"([^"]+)":(\d+):(\d+)')
_NAME = re.compile(r'loc\("([^"]*)"')


def format_location(loc) -> str:
    """A short rendering of an MLIR location: the innermost source position
    (``file:line:col``) and the name jax gives the op, e.g.
    ``model.py:12:8 (jit(f)/dot_general)``; the raw location otherwise."""
    text = " ".join(str(loc).split())
    pos = _FILE_LINE_COL.search(text)
    name = _NAME.match(text)
    if pos is None:
        return text
    where = f"{pos.group(1)}:{pos.group(2)}:{pos.group(3)}"
    return f"{where} ({name.group(1)})" if name and name.group(1) != pos.group(1) else where


class Declined(Exception):
    """Raised by ``FunctionBatcher.decline``: a rule has no vectorized form for
    this use of its op. The engine catches it and batches the op per lane
    (or raises UnsupportedOpError under strict); it never reaches users."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why
