"""Module-level types for codec tests (decoding imports them by ``module:qualname``)."""

from __future__ import annotations

import dataclasses

import pydantic


class Line(pydantic.BaseModel):
    """An order line."""

    sku: str
    qty: int


class Order(pydantic.BaseModel):
    """An order with nested models and a tuple field."""

    id: int
    tags: tuple[str, ...]
    lines: list[Line]
    note: str | None = None


@dataclasses.dataclass
class Point:
    """A dataclass that is not a pydantic model."""

    x: int = 0
