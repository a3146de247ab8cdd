"""One test set over the whole op registry: forward and VJP against torch, VJP against finite differences."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from grader.torch_eval import check_forward_torch, check_op_torch, check_vjp_torch
from reference.gradcheck import Mismatch, check_op_fd, check_op_samples, compare_arrays, kink_distance
from reference.ops import OPS, Op, PerArgVjp

NAMES = sorted(OPS)
KINKED = sorted(name for name, op in OPS.items() if op.kink is not None)


def _rng(name: str) -> np.random.Generator:
    # One fixed stream per op, so a failure reproduces and ops do not shift each other's draws.
    return np.random.default_rng(zlib.crc32(name.encode()))


def _report(mismatches: list[Mismatch]) -> str:
    return "\n".join(str(m) for m in mismatches)


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_torch(name: str) -> None:
    op, rng = OPS[name], _rng(name)
    found = [check_forward_torch(op, args, params) for args, params in op.samples(rng)]
    mismatches = [m for m in found if m is not None]
    assert not mismatches, _report(mismatches)


@pytest.mark.parametrize("name", NAMES)
def test_vjp_matches_torch(name: str) -> None:
    op, rng = OPS[name], _rng(name)
    mismatches = [m for args, params in op.samples(rng) for m in check_vjp_torch(op, args, params, rng)]
    assert not mismatches, _report(mismatches)


@pytest.mark.parametrize("name", NAMES)
def test_vjp_matches_finite_differences(name: str) -> None:
    mismatches = check_op_samples(OPS[name], _rng(name))
    assert not mismatches, _report(mismatches)


@pytest.mark.parametrize("name", KINKED)
def test_samples_avoid_kinks(name: str) -> None:
    op = OPS[name]
    distances = [kink_distance(op, sample) for sample in op.samples(_rng(name))]
    assert all(d > 0 for d in distances), f"{name} samples at kink distances {distances}"


WRONG_VJPS = [
    pytest.param(dataclasses.replace(OPS["tanh"], vjp=lambda g, o, a: (g * (1 - o),)), 0, id="tanh"),
    pytest.param(dataclasses.replace(OPS["mul"], vjp=lambda g, o, a, b: (g * b, -g * a)), 1, id="mul"),
]


@pytest.mark.parametrize(("op", "wrong_input"), WRONG_VJPS)
def test_a_wrong_vjp_is_caught(op: Op, wrong_input: int) -> None:
    x = np.array([0.3, -1.2, 0.8, 2.0])
    args = (x,) if op.n_args == 1 else (x, np.array([1.5, 0.4, -0.7, -2.0]))
    rng = np.random.default_rng(0)
    by_fd = check_op_fd(op, args, {}, rng)
    by_torch = check_op_torch(op, args, {}, rng)
    expected = f"vjp of {op.name} w.r.t. input {wrong_input}"
    for mismatches in (by_fd, by_torch):
        assert [m.label.startswith(expected) for m in mismatches] == [True], _report(mismatches)
        assert str(mismatches[0]).startswith(expected)


def test_compare_arrays_never_broadcasts() -> None:
    found = compare_arrays("answer", np.ones((4, 4)), np.ones(4), rtol=1e-5, atol=1e-6)
    assert found is not None and "shape (4, 4) but expected shape (4,)" in str(found)


def test_compare_arrays_matches_nan_only_with_nan_in_the_same_place() -> None:
    nan = np.nan
    assert compare_arrays("a", np.array([nan, 1.0]), np.array([nan, 1.0]), rtol=1e-5, atol=1e-6) is None
    found = compare_arrays("a", np.array([nan, 1.0]), np.array([1.0, nan]), rtol=1e-5, atol=1e-6)
    assert found is not None and found.index == (0,)


@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5, -1.0, 0.0, -0.0, -2.5, np.inf, -np.inf, np.nan, 2.0**53 + 2])
def test_pow_kink_of_a_scalar_exponent_is_that_of_the_same_exponent_as_an_array(exponent: float) -> None:
    # a 0-d exponent takes a shortcut past NumPy; it must decide as the array path does
    pow_ = OPS["pow"]
    for base in (np.array([0.5, -2.0, 3.0]), np.array([0.0, 1.0]), np.array([2.0, 4.0])):
        assert pow_.kink(base, np.asarray(exponent)) == pow_.kink(base, np.asarray([exponent]))


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if isinstance(op.vjp, PerArgVjp)))
def test_a_per_argument_vjp_is_its_functions_called_in_order(name: str) -> None:
    op = OPS[name]
    for args, params in op.samples(_rng(name)):
        out = np.asarray(op.forward(*args, **params))
        g = _rng(name + "g").normal(size=out.shape)
        whole = op.vjp(g, out, *args, **params)
        assert len(whole) == len(args) == len(op.vjp.each)
        for ct, each in zip(whole, op.vjp.each):
            np.testing.assert_array_equal(ct, each(g, out, *args, **params))
