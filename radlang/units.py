"""Units for settings. A setting declares a dimension; the checker converts to the canonical unit
and rejects a unit of another dimension (E303)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

# dimension -> {unit: factor to the canonical unit (the first one)}
DIMENSIONS: dict[str, dict[str, float]] = {
    "length": {"mm": 1.0, "cm": 10.0, "um": 1e-3, "m": 1000.0},
    "intensity": {"HU": 1.0},
    "angle": {"deg": 1.0},
    "time": {"s": 1.0, "ms": 1e-3},
    "volume": {"mL": 1.0, "ml": 1.0},
    "fraction": {"%": 0.01},
    "voxels": {"vox": 1.0, "px": 1.0},
}
ALL_UNITS = {u: d for d, us in DIMENSIONS.items() for u in us}


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str

    def __str__(self):
        return f"{self.value:g}{self.unit}"


def _a(noun: str) -> str:
    """The noun with its indefinite article: `a length`, `an intensity`."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _converter(dimension: str, allow_plain: bool = True):
    units = DIMENSIONS[dimension]
    a_dim = _a(dimension)

    def convert(v):
        if isinstance(v, Quantity):
            if v.unit not in ALL_UNITS:
                raise PydanticCustomError("unit", "unknown unit `{unit}`; {a_dim} takes {allowed}",
                                          {"unit": v.unit, "a_dim": a_dim, "allowed": ", ".join(units)})
            if v.unit not in units:
                raise PydanticCustomError("unit", "`{q}` is {a_got}, but this setting is {a_dim} ({allowed})",
                                          {"q": str(v), "a_got": _a(ALL_UNITS[v.unit]), "a_dim": a_dim, "allowed": ", ".join(units)})
            return v.value * units[v.unit]
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)) and not allow_plain:
            raise PydanticCustomError("unit", "{a_dim} needs a unit ({allowed})", {"a_dim": a_dim, "allowed": ", ".join(units)})
        return v

    return convert


def _plain(v):
    if isinstance(v, Quantity):
        raise PydanticCustomError("unit", "`{q}` has a unit, but this setting is a plain number", {"q": str(v)})
    return v


Length = Annotated[float, BeforeValidator(_converter("length"))]
"""A length in mm. Accepts `2mm`, `0.2cm`, or a plain number taken as mm."""
Intensity = Annotated[float, BeforeValidator(_converter("intensity"))]
"""An intensity: `25HU` or a plain number (arbitrary MR units)."""
Angle = Annotated[float, BeforeValidator(_converter("angle"))]
Fraction = Annotated[float, BeforeValidator(_converter("fraction"))]
Plain = Annotated[float, BeforeValidator(_plain)]
PlainInt = Annotated[int, BeforeValidator(_plain)]
