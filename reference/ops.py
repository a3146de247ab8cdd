"""The op registry: every op a spec may use, declared once.

Each record holds the NumPy forward, the hand-derived NumPy vector-Jacobian
product (VJP), the torch forward (called only by the self-check, with the torch
module passed in, so this package never imports torch), where the op is not
differentiable (``kink``: the distance of its arguments from such a point, so
sampling can stay away), and sample arguments for the registry-wide test.

A VJP takes the cotangent ``g`` (shape of the output), the forward output and
the arguments, and returns one cotangent per argument (``None`` for an argument
that is not differentiable, such as the size given to ``eye``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from reference.errors import EvaluationError

Array = np.ndarray
Sample = tuple[tuple[Array, ...], dict[str, Any]]
INF = math.inf
GELU_C = math.sqrt(2.0 / math.pi)
GELU_A = 0.044715


@dataclass(frozen=True)
class Related:
    """A function students confuse with an op (a different formula, a derivative with a factor dropped).

    Never used to compute an expected value: the diagnoses re-evaluate a graph with
    the op replaced by it, to say "your answer is the exact GELU" when the numbers
    prove it.
    """

    name: str  # what the student computed, as a student would say it
    forward: Callable[..., Array]
    vjp: Callable[..., tuple[Array | None, ...]]


@dataclass(frozen=True)
class PerArgVjp:
    """A VJP written as one function per argument, ``(g, out, *args, **params) -> cotangent``.

    Called, it returns every argument's cotangent, like any VJP; a backward pass that
    knows which arguments lie on the path calls only their functions (the exponent of
    ``x ** 2`` or the factor of ``5 * x`` needs no cotangent).
    """

    each: tuple[Callable[..., Array], ...]

    def __call__(self, g: Array, out: Array, *args: Array, **params: Any) -> tuple[Array, ...]:
        return tuple([f(g, out, *args, **params) for f in self.each])


@dataclass(frozen=True)
class Op:
    """One differentiable operation."""

    name: str
    n_args: int | None  # None: any number of arguments (the matrix literal)
    forward: Callable[..., Array]
    vjp: Callable[..., tuple[Array | None, ...]]
    torch: Callable[..., Any]  # (torch_module, *args, **params) -> tensor
    samples: Callable[[np.random.Generator], list[Sample]]
    params: Mapping[str, Any] = field(default_factory=dict)  # name -> default
    kink: Callable[..., float] | None = None
    kink_where: str = ""
    nondiff_args: frozenset[int] = frozenset()
    doc: str = ""
    # the VJP multiplies by a local derivative of the one argument, a factor a student may
    # forget or apply twice on the chain-rule path (the diagnoses try both)
    chain_factor: bool = False
    related: tuple[Related, ...] = ()


# --- helpers ---------------------------------------------------------------


# The helpers below run for every op application of every trial, on small arrays, so
# they call the ufuncs' reductions (np.add.reduce, np.minimum.reduce) rather than the
# np.sum / np.min wrappers or the array methods, which cost more than the arithmetic;
# the values are the same, as the wrappers call the same reductions.


def _min_abs(x: Array) -> float:
    x = np.asarray(x)
    return float(np.minimum.reduce(np.abs(x), axis=None)) if x.size else INF


def _in_positive_domain(x: Array) -> float:
    """Infinitely far from trouble while x > 0 (any positive value is differentiable), else 0."""
    return INF if np.logical_and.reduce(np.greater(x, 0), axis=None) else 0.0


def unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """Sum a broadcast cotangent back down to the argument's shape."""
    if g.shape == shape:  # the common case: nothing was broadcast
        return g
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g.reshape(shape)


def _expand(g: Array, x: Array, axis: int | None) -> Array:
    """The cotangent of a reduction repeated over the reduced axis: a new array of ``x``'s shape."""
    out = np.empty(x.shape)
    out[...] = g if axis is None else np.expand_dims(g, axis)  # np.broadcast_to costs more than this copy
    return out


def _as_int(n: Array, what: str) -> int:
    value = float(np.asarray(n))
    if value != round(value) or value < 0:
        raise EvaluationError(f"{what} needs a non-negative whole number, got {value!r}")
    return int(round(value))


def _sigmoid(x: Array) -> Array:
    # Two branches so that neither exp can overflow for large |x|.
    e = np.exp(-np.abs(x))
    d = 1.0 + e
    return np.where(x >= 0, 1.0 / d, e / d)


def _softmax(x: Array, axis: int) -> Array:
    e = np.exp(x - np.maximum.reduce(x, axis=axis, keepdims=True))
    return e / np.add.reduce(e, axis=axis, keepdims=True)


def _logsumexp(x: Array, axis: int | None) -> Array:
    m = np.maximum.reduce(x, axis=axis, keepdims=True)
    out = m + np.log(np.add.reduce(np.exp(x - m), axis=axis, keepdims=True))
    return out.reshape(()) if axis is None else out.squeeze(axis=axis)


def _top_gap(x: Array, axis: int | None) -> float:
    """Smallest gap between the largest and second-largest entry: max is kinked at ties."""
    v = x.reshape(-1) if axis is None else np.moveaxis(x, axis, -1)
    if v.shape[-1] < 2:
        return INF
    s = np.sort(v, axis=-1)
    return float(np.min(s[..., -1] - s[..., -2]))


def _log_base(a: Array) -> Array:
    """log(a) inside d(a ** b)/db: NaN for a < 0, where a ** b is not real for b near a whole
    number, so the derivative does not exist (torch says NaN too); 0 at a = 0, as torch has it."""
    return np.where(a > 0, np.log(np.where(a > 0, a, 1.0)), np.where(a == 0, 0.0, np.nan))


def _pow_kink(a: Array, b: Array) -> float:
    # Whole exponents >= 1 are smooth everywhere; whole exponents <= 0 have a
    # pole at 0; any other exponent needs a > 0 to be real and differentiable.
    if _whole(b):
        return INF if np.logical_and.reduce(np.greater_equal(b, 1), axis=None) else _min_abs(a)
    return _in_positive_domain(a)


def _whole(b: Array) -> bool:
    """Whether every entry of ``b`` equals ``np.rint(b)``: a whole number, or an infinity."""
    if np.ndim(b) == 0:  # the usual constant exponent (x ** 2), without NumPy's cost per call
        v = float(b)
        return v.is_integer() or math.isinf(v)
    return bool(np.logical_and.reduce(np.equal(b, np.rint(b)), axis=None))


def _as_2d(a: Array, b: Array) -> tuple[Array, Array]:
    """The operands of ``a @ b`` as matrices: a vector on the left is a row, on the right a column."""
    return (a if a.ndim == 2 else a.reshape(1, -1)), (b if b.ndim == 2 else b.reshape(-1, 1))


def _matmul(a: Array, b: Array) -> Array:
    if not (1 <= a.ndim <= 2 and 1 <= b.ndim <= 2):
        raise EvaluationError(f"@ takes vectors and matrices only, got shapes {a.shape} @ {b.shape}"
                              + ("; multiply a scalar with *" if 0 in (a.ndim, b.ndim) else ""))
    if a.shape[-1] != b.shape[0]:  # the inner sizes, a vector being a row on the left and a column on the right
        raise EvaluationError(f"shapes {a.shape} @ {b.shape} do not fit: inner sizes {a.shape[-1]} and "
                              f"{b.shape[0]} differ")
    return np.asarray(np.matmul(a, b))


def _matmul_vjp_a(g: Array, out: Array, a: Array, b: Array) -> Array:
    a2, b2 = _as_2d(a, b)  # the forward has checked the shapes
    return (g.reshape(a2.shape[0], b2.shape[1]) @ b2.T).reshape(a.shape)


def _matmul_vjp_b(g: Array, out: Array, a: Array, b: Array) -> Array:
    a2, b2 = _as_2d(a, b)
    return (a2.T @ g.reshape(a2.shape[0], b2.shape[1])).reshape(b.shape)


def _diag_forward(a: Array) -> Array:
    if a.ndim not in (1, 2):
        raise EvaluationError(f"diag takes a vector or a matrix, got shape {a.shape}")
    return np.diag(a).copy()


def _diag_vjp(g: Array, out: Array, a: Array) -> tuple[Array]:
    if a.ndim == 1:
        return (np.diag(g).copy(),)
    ga = np.zeros_like(a)
    idx = np.arange(g.shape[0])
    ga[idx, idx] = g
    return (ga,)


def _check_vectors(name: str, *xs: Array) -> None:
    if any(x.ndim != 1 for x in xs):
        raise EvaluationError(f"{name} takes vectors, got shapes {[x.shape for x in xs]}")


def _dot(a: Array, b: Array) -> Array:
    _check_vectors("dot", a, b)
    return np.asarray(np.dot(a, b))


def _outer(a: Array, b: Array) -> Array:
    _check_vectors("outer", a, b)
    return np.outer(a, b)


def _stack(*xs: Array, shape: tuple[int, ...]) -> Array:
    if any(np.size(x) != 1 or np.ndim(x) != 0 for x in xs):
        raise EvaluationError("every entry of a matrix literal must be a scalar")
    return np.array([float(x) for x in xs], dtype=np.float64).reshape(shape)


def _torch_stack(t: Any, *xs: Any, shape: tuple[int, ...]) -> Any:
    return t.stack([x.reshape(()) for x in xs]).reshape(shape)


def _torch_max(t: Any, x: Any, axis: int | None = None) -> Any:
    return x.max() if axis is None else t.amax(x, dim=axis)


def _torch_reduce(fn: str) -> Callable[..., Any]:
    def call(t: Any, x: Any, axis: int | None = None) -> Any:
        return getattr(t, fn)(x) if axis is None else getattr(t, fn)(x, dim=axis)

    return call


def _gelu(x: Array) -> Array:
    return 0.5 * x * (1.0 + np.tanh(GELU_C * (x + GELU_A * x**3)))


def _gelu_grad(x: Array, inner: bool = True) -> Array:
    t = np.tanh(GELU_C * (x + GELU_A * x**3))
    inner_factor = (1.0 + 3.0 * GELU_A * x**2) if inner else 1.0  # d/dx of the tanh's argument, over GELU_C
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * GELU_C * inner_factor


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu_exact(x: Array) -> Array:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _gelu_exact_grad(x: Array) -> Array:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)


GELU_RELATED = (
    Related("the exact GELU x·Φ(x) (with the normal CDF), not the tanh approximation asked here",
            _gelu_exact, lambda g, o, a: (g * _gelu_exact_grad(a),)),
    Related("the tanh-GELU derivative without the inner factor (1 + 3·0.044715·x²), the derivative of "
            "the tanh's argument", _gelu, lambda g, o, a: (g * _gelu_grad(a, inner=False),)),
)


# --- sample arguments for the registry-wide test ---------------------------

SHAPES: tuple[tuple[int, ...], ...] = ((), (4,), (3, 2))


def _draw(rng: np.random.Generator, shape: tuple[int, ...], positive: bool = False) -> Array:
    x = rng.normal(size=shape)
    return np.abs(x) + 0.5 if positive else x


def _unary(positive: bool = False, **params: Any) -> Callable[[np.random.Generator], list[Sample]]:
    return lambda rng: [((_draw(rng, s, positive),), dict(params)) for s in SHAPES]


def _wide_unary(rng: np.random.Generator) -> list[Sample]:
    """Also large magnitudes, where naive or thresholded formulas part from the exact function."""
    # 20.2 and 20.6 sit where torch's softplus switches to its linear branch
    wide = np.array([-35.0, -20.4, 17.0, 20.2, 20.6, 33.0]) + rng.uniform(-0.05, 0.05, size=6)
    return _unary()(rng) + [((wide,), {})]


def _binary(positive_b: bool = False) -> Callable[[np.random.Generator], list[Sample]]:
    pairs = [((), ()), ((4,), (4,)), ((3, 2), (3, 2)), ((3, 2), (2,)), ((), (3,)), ((3, 1), (1, 2))]
    return lambda rng: [((_draw(rng, a), _draw(rng, b, positive_b)), {}) for a, b in pairs]


def _reduce_samples(rng: np.random.Generator) -> list[Sample]:
    return [
        ((_draw(rng, (5,)),), {}),
        ((_draw(rng, (3, 4)),), {}),
        ((_draw(rng, (3, 4)),), {"axis": 0}),
        ((_draw(rng, (3, 4)),), {"axis": 1}),
    ]


def _matmul_samples(rng: np.random.Generator) -> list[Sample]:
    pairs = [((3, 4), (4,)), ((4,), (4, 2)), ((3, 4), (4, 2)), ((4,), (4,))]
    return [((_draw(rng, a), _draw(rng, b)), {}) for a, b in pairs]


def _pow_samples(rng: np.random.Generator) -> list[Sample]:
    base = _draw(rng, (4,), positive=True)
    return [
        ((_draw(rng, (4,)), np.array(2.0)), {}),
        ((_draw(rng, (3, 2)), np.array(3.0)), {}),
        ((base, np.array(0.5)), {}),
        ((base, _draw(rng, (4,))), {}),
    ]


def _square_samples(rng: np.random.Generator) -> list[Sample]:
    return [((_draw(rng, (n, n)) + 3.0 * np.eye(n),), {}) for n in (1, 3)]


def _vector_pair(rng: np.random.Generator) -> list[Sample]:
    return [((_draw(rng, (3,)), _draw(rng, (4,) if i else (3,))), {}) for i in range(2)]


# --- the registry -----------------------------------------------------------


def _registry() -> dict[str, Op]:
    ops = [
        # arithmetic (broadcasting like NumPy; cotangents are summed back)
        Op("add", 2, np.add, PerArgVjp((lambda g, o, a, b: unbroadcast(g, a.shape),
                                        lambda g, o, a, b: unbroadcast(g, b.shape))),
           lambda t, a, b: a + b, _binary(), doc="a + b"),
        Op("sub", 2, np.subtract, PerArgVjp((lambda g, o, a, b: unbroadcast(g, a.shape),
                                             lambda g, o, a, b: unbroadcast(-g, b.shape))),
           lambda t, a, b: a - b, _binary(), doc="a - b"),
        Op("mul", 2, np.multiply,
           PerArgVjp((lambda g, o, a, b: unbroadcast(g * b, a.shape), lambda g, o, a, b: unbroadcast(g * a, b.shape))),
           lambda t, a, b: a * b, _binary(), doc="a * b"),
        Op("div", 2, np.divide,
           PerArgVjp((lambda g, o, a, b: unbroadcast(g / b, a.shape),
                      lambda g, o, a, b: unbroadcast(-g * o / b, b.shape))),
           lambda t, a, b: a / b, _binary(positive_b=True),
           kink=lambda a, b: _min_abs(b), kink_where="a / b at b = 0", doc="a / b"),
        Op("pow", 2, np.power,
           PerArgVjp((lambda g, o, a, b: unbroadcast(g * b * np.power(a, b - 1.0), a.shape),
                      lambda g, o, a, b: unbroadcast(g * o * _log_base(a), b.shape))),
           lambda t, a, b: a**b, _pow_samples,
           kink=_pow_kink, kink_where="a ** b at a = 0 (and a < 0 for non-integer b)", doc="a ** b"),
        Op("matmul", 2, _matmul, PerArgVjp((_matmul_vjp_a, _matmul_vjp_b)), lambda t, a, b: a @ b, _matmul_samples,
           doc="a @ b (vectors and matrices)"),
        Op("neg", 1, np.negative, lambda g, o, a: (-g,), lambda t, a: -a, _unary(), doc="-a"),
        Op("transpose", 1, lambda a: a.T.copy(), lambda g, o, a: (g.T,), lambda t, a: a.t() if a.ndim == 2 else a,
           _unary(), doc="a.T"),
        # reductions: axis=None reduces everything
        Op("sum", 1, lambda a, axis=None: np.asarray(np.add.reduce(a, axis=axis)),
           lambda g, o, a, axis=None: (_expand(g, a, axis),),
           _torch_reduce("sum"), _reduce_samples, params={"axis": None}, doc="sum(a, axis=None)"),
        Op("mean", 1, lambda a, axis=None: np.asarray(a.mean(axis=axis)),
           lambda g, o, a, axis=None: (_expand(g, a, axis) * (o.size / a.size),),
           _torch_reduce("mean"), _reduce_samples, params={"axis": None}, doc="mean(a, axis=None)"),
        Op("max", 1, lambda a, axis=None: np.asarray(np.maximum.reduce(a, axis=axis)),
           lambda g, o, a, axis=None: (_expand(g, a, axis) * (a == _expand(o, a, axis)),),
           _torch_max, _reduce_samples, params={"axis": None},
           kink=lambda a, axis=None: _top_gap(a, axis), kink_where="max at a tie", doc="max(a, axis=None)"),
        Op("logsumexp", 1, lambda a, axis=None: _logsumexp(a, axis),
           lambda g, o, a, axis=None: (_expand(g, a, axis) * np.exp(a - _expand(o, a, axis)),),
           lambda t, a, axis=None: t.logsumexp(a.reshape(-1), dim=0) if axis is None else t.logsumexp(a, dim=axis),
           _reduce_samples, params={"axis": None}, doc="log(sum(exp(a), axis)), computed stably"),
        Op("softmax", 1, lambda a, axis=-1: _softmax(a, axis),
           lambda g, o, a, axis=-1: (o * (g - np.add.reduce(g * o, axis=axis, keepdims=True)),),
           lambda t, a, axis=-1: t.softmax(a, dim=axis),
           lambda rng: [((_draw(rng, (4,)),), {}), ((_draw(rng, (3, 2)),), {"axis": 0})],
           params={"axis": -1}, doc="exp(a) / sum(exp(a)) along axis (default last), computed stably",
           chain_factor=True),
        # element-wise functions
        Op("exp", 1, np.exp, lambda g, o, a: (g * o,), lambda t, a: t.exp(a), _unary(), chain_factor=True),
        Op("log", 1, np.log, lambda g, o, a: (g / a,), lambda t, a: t.log(a), _unary(positive=True),
           kink=lambda a: _in_positive_domain(a), kink_where="log at a <= 0", chain_factor=True),
        Op("sqrt", 1, np.sqrt, lambda g, o, a: (g / (2.0 * o),), lambda t, a: t.sqrt(a), _unary(positive=True),
           kink=lambda a: _in_positive_domain(a), kink_where="sqrt at a <= 0", chain_factor=True),
        Op("tanh", 1, np.tanh, lambda g, o, a: (g * (1.0 - o**2),), lambda t, a: t.tanh(a), _unary(),
           chain_factor=True),
        Op("cosh", 1, np.cosh, lambda g, o, a: (g * np.sinh(a),), lambda t, a: t.cosh(a), _unary(), chain_factor=True),
        Op("cos", 1, np.cos, lambda g, o, a: (-g * np.sin(a),), lambda t, a: t.cos(a), _unary(), chain_factor=True),
        Op("sin", 1, np.sin, lambda g, o, a: (g * np.cos(a),), lambda t, a: t.sin(a), _unary(), chain_factor=True),
        Op("sigmoid", 1, _sigmoid, lambda g, o, a: (g * o * (1.0 - o),), lambda t, a: t.sigmoid(a), _wide_unary,
           doc="logistic 1 / (1 + exp(-a)), computed stably", chain_factor=True),
        Op("relu", 1, lambda a: np.maximum(a, 0.0), lambda g, o, a: (g * (a > 0),), lambda t, a: t.relu(a),
           _unary(), kink=_min_abs, kink_where="relu at 0", chain_factor=True),
        Op("leaky_relu", 1, lambda a, slope=0.01: np.where(a > 0, a, slope * a),
           lambda g, o, a, slope=0.01: (g * np.where(a > 0, 1.0, slope),),
           lambda t, a, slope=0.01: t.nn.functional.leaky_relu(a, slope), _unary(slope=0.2),
           params={"slope": 0.01}, kink=lambda a, slope=0.01: _min_abs(a), kink_where="leaky_relu at 0",
           doc="a for a > 0, slope * a otherwise (slope=0.01)", chain_factor=True),
        Op("softplus", 1, lambda a: np.logaddexp(0.0, a), lambda g, o, a: (g * _sigmoid(a),),
           # not torch's softplus: above its threshold (20) it returns a itself, off by 2e-9
           lambda t, a: t.logaddexp(t.zeros_like(a), a), _wide_unary, doc="log(1 + exp(a)), computed stably",
           chain_factor=True),
        Op("gelu", 1, _gelu, lambda g, o, a: (g * _gelu_grad(a),),
           lambda t, a: t.nn.functional.gelu(a, approximate="tanh"), _unary(),
           doc="0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))), the tanh approximation",
           chain_factor=True, related=GELU_RELATED),
        Op("sign", 1, np.sign, lambda g, o, a: (np.zeros_like(a),), lambda t, a: t.sign(a), _unary(),
           kink=_min_abs, kink_where="sign at 0"),
        Op("abs", 1, np.abs, lambda g, o, a: (g * np.sign(a),), lambda t, a: t.abs(a), _unary(),
           kink=_min_abs, kink_where="abs at 0", chain_factor=True),
        Op("maximum", 2, np.maximum,
           PerArgVjp((lambda g, o, a, b: unbroadcast(g * (a > b), a.shape),
                      lambda g, o, a, b: unbroadcast(g * (a < b), b.shape))),
           lambda t, a, b: t.maximum(a, b), _binary(),
           kink=lambda a, b: _min_abs(np.subtract(a, b)), kink_where="maximum where a = b",
           doc="element-wise larger of a and b"),
        # linear algebra
        Op("dot", 2, _dot, PerArgVjp((lambda g, o, a, b: g * b, lambda g, o, a, b: g * a)),
           lambda t, a, b: t.dot(a, b), _vector_pair_same,
           doc="inner product of two vectors"),
        Op("outer", 2, _outer, PerArgVjp((lambda g, o, a, b: g @ b, lambda g, o, a, b: g.T @ a)),
           lambda t, a, b: t.outer(a, b), _vector_pair,
           doc="outer product a b^T of two vectors"),
        Op("diag", 1, _diag_forward, _diag_vjp, lambda t, a: t.diag(a),
           lambda rng: [((_draw(rng, (4,)),), {}), ((_draw(rng, (3, 3)),), {}), ((_draw(rng, (3, 2)),), {})],
           doc="vector -> diagonal matrix; matrix -> its diagonal"),
        Op("eye", 1, lambda n: np.eye(_as_int(n, "eye")), lambda g, o, n: (None,),
           lambda t, n: t.eye(int(n.item()), dtype=t.float64), lambda rng: [((np.array(3.0),), {})],
           nondiff_args=frozenset({0}), doc="the n x n identity (n a dimension or a whole number)"),
        Op("inv", 1, np.linalg.inv, lambda g, o, a: (-o.T @ g @ o.T,), lambda t, a: t.linalg.inv(a),
           _square_samples, kink=lambda a: float(np.linalg.svd(a, compute_uv=False)[-1]),
           kink_where="inv of a singular matrix", doc="matrix inverse"),
        Op("stack", None, _stack, lambda g, o, *xs, shape: tuple(np.asarray(v) for v in g.reshape(-1)),
           _torch_stack,
           lambda rng: [(tuple(_draw(rng, ()) for _ in range(4)), {"shape": (2, 2)}),
                        (tuple(_draw(rng, ()) for _ in range(3)), {"shape": (3,)})],
           params={"shape": ()}, doc="[[a, b], [c, d]]: a matrix or vector literal of scalar expressions"),
    ]
    return {op.name: op for op in ops}


def _vector_pair_same(rng: np.random.Generator) -> list[Sample]:
    return [((_draw(rng, (n,)), _draw(rng, (n,))), {}) for n in (1, 4)]


OPS: Mapping[str, Op] = _registry()

# Ops that the parser produces from Python syntax rather than a call by name.
SYNTAX_OPS = frozenset({"add", "sub", "mul", "div", "pow", "matmul", "neg", "transpose", "stack"})


def callable_names() -> list[str]:
    """Names a spec may call as functions, sorted."""
    return sorted(name for name in OPS if name not in SYNTAX_OPS)
