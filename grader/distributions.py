"""The input distributions a spec may ask for, each declared once.

A record holds its options with their defaults, a check of those options (for
``grade validate``), and the draw itself. ``scale`` options accept a number or a
``[low, high]`` range; a range is drawn log-uniformly once per trial, so that the
trials of one question see inputs of very different magnitudes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from reference.errors import SamplingError

Shape = tuple[int, ...]
Options = Mapping[str, Any]
MAX_CONDITION_TRIES = 50


@dataclass(frozen=True)
class Distribution:
    name: str
    options: Mapping[str, Any]  # option -> default (``None``: required)
    check: Callable[[Options], list[str]]
    draw: Callable[[np.random.Generator, Shape, Options], np.ndarray]
    doc: str


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_scale(v: Any, name: str = "scale") -> list[str]:
    if _is_number(v) and v > 0:
        return []
    if isinstance(v, list) and len(v) == 2 and all(_is_number(x) and x > 0 for x in v) and v[0] <= v[1]:
        return []
    return [f"{name} must be a positive number or a range [low, high] of positive numbers, got {v!r}"]


def draw_scale(rng: np.random.Generator, v: float | list[float]) -> float:
    if isinstance(v, list):
        low, high = math.log(v[0]), math.log(v[1])
        # what rng.uniform(low, high) computes, without its cost per call for a single number
        return math.exp(low + (high - low) * rng.random())
    return float(v)


def _check_normal(o: Options) -> list[str]:
    bad = [] if _is_number(o["mean"]) else [f"mean must be a number, got {o['mean']!r}"]
    return bad + _check_scale(o["scale"])


def _draw_normal(rng: np.random.Generator, shape: Shape, o: Options) -> np.ndarray:
    # the same numbers as mean + scale * rng.standard_normal(shape), in one call instead of three
    return rng.normal(o["mean"], draw_scale(rng, o["scale"]), shape)


def _check_uniform(o: Options) -> list[str]:
    if not (_is_number(o["low"]) and _is_number(o["high"])):
        return [f"low and high must be numbers, got {o['low']!r} and {o['high']!r}"]
    return [] if o["low"] < o["high"] else [f"low must be below high, got [{o['low']}, {o['high']}]"]


def _draw_uniform(rng: np.random.Generator, shape: Shape, o: Options) -> np.ndarray:
    return rng.uniform(o["low"], o["high"], size=shape)


def _check_labels(o: Options) -> list[str]:
    v = o["values"]
    if isinstance(v, list) and len(v) >= 2 and all(_is_number(x) for x in v) and len(set(v)) == len(v):
        return []
    return [f"values must be a list of at least two distinct numbers, such as [0, 1] or [-1, 1]; got {v!r}"]


def _draw_labels(rng: np.random.Generator, shape: Shape, o: Options) -> np.ndarray:
    return rng.choice(np.asarray(o["values"], dtype=np.float64), size=shape)


def _check_simplex(o: Options) -> list[str]:
    c = o["concentration"]
    return [] if _is_number(c) and c > 0 else [f"concentration must be a positive number, got {c!r}"]


def _draw_simplex(rng: np.random.Generator, shape: Shape, o: Options) -> np.ndarray:
    if not shape:
        raise SamplingError("a probability vector (simplex) needs at least one axis")
    return rng.dirichlet(np.full(shape[-1], float(o["concentration"])), size=shape[:-1])


def _check_rank(o: Options) -> list[str]:
    c = o["max_condition"]
    bad = [] if _is_number(c) and c > 1 else [f"max_condition must be a number above 1, got {c!r}"]
    return bad + _check_scale(o["scale"])


def _draw_full_rank(rng: np.random.Generator, shape: Shape, o: Options) -> np.ndarray:
    if len(shape) != 2 or shape[0] < shape[1]:
        raise SamplingError(f"a full-column-rank matrix needs shape (rows, cols) with rows >= cols, got {shape}")
    scale = draw_scale(rng, o["scale"])
    for _ in range(MAX_CONDITION_TRIES):
        m = scale * rng.standard_normal(shape)
        # The condition bound keeps U (U^T U)^-1 U^T well defined to ~1e-13,
        # far inside any grading tolerance.
        if np.linalg.cond(m) <= o["max_condition"]:
            return m
    raise SamplingError(f"no {shape} matrix with condition number <= {o['max_condition']} "
                        f"in {MAX_CONDITION_TRIES} draws; raise max_condition")


def _check_fixed(o: Options) -> list[str]:
    try:
        arr = np.asarray(o["value"], dtype=np.float64)
    except (TypeError, ValueError):
        return [f"value must be a number or a (nested) list of numbers, got {o['value']!r}"]
    return [] if np.all(np.isfinite(arr)) else ["value must be finite"]


def fixed_value(value: Any, shape: Shape) -> np.ndarray:
    """``value`` as a new float64 array of ``shape``, broadcast if it is smaller."""
    value = np.asarray(value, dtype=np.float64)
    if value.shape == shape:  # an example held fixed: nothing to broadcast, and broadcast_to is slow
        return value.copy()
    try:
        return np.broadcast_to(value, shape).copy()
    except ValueError:
        raise SamplingError(f"fixed value of shape {value.shape} does not fit shape {shape}") from None


def _draw_fixed(rng: np.random.Generator, shape: Shape, o: Options) -> np.ndarray:
    return fixed_value(o["value"], shape)


DISTRIBUTIONS: Mapping[str, Distribution] = {
    d.name: d
    for d in (
        Distribution("normal", {"mean": 0.0, "scale": 1.0}, _check_normal, _draw_normal,
                     "mean + scale * N(0, 1)"),
        Distribution("uniform", {"low": -1.0, "high": 1.0}, _check_uniform, _draw_uniform,
                     "uniform on [low, high)"),
        Distribution("labels", {"values": [0, 1]}, _check_labels, _draw_labels,
                     "each entry one of `values`, uniformly (class labels such as {0, 1} or {-1, +1})"),
        Distribution("simplex", {"concentration": 1.0}, _check_simplex, _draw_simplex,
                     "probability vectors along the last axis (Dirichlet)"),
        Distribution("full_column_rank", {"scale": 1.0, "max_condition": 100.0}, _check_rank, _draw_full_rank,
                     "a (rows, cols) matrix, rows >= cols, with condition number <= max_condition"),
        Distribution("fixed", {"value": None}, _check_fixed, _draw_fixed,
                     "always `value` (broadcast to the shape)"),
    )
}
