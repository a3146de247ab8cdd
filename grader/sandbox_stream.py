"""A sandbox's calls in flight: batches sent in one request, their answers settled as they stream back.

``Batch`` is what ``Sandbox.run`` takes: the calls of one function, encoded once. A
``Stream`` follows one request: which call answers next (``Order``, the rule the worker
follows too), until when its answer may come, which call the worker last named as
running, and what to do when the worker hangs, dies or sends garbage: settle the
failing call, or have the batch resent, one answer per message, when the call that
failed cannot be told (the answers before it may have been lost with the worker).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Collection, Sequence

import numpy as np

from grader.sandbox_process import MiB, SandboxError, Worker
from grader.sandbox_protocol import Answer, EncodedCalls, Malformed, encode_calls, read_answer, read_results

if TYPE_CHECKING:
    from grader.sandbox import CallResult

HEADER_CAP = 4 * MiB  # the worker caps every message and list and sends waiting answers past 1 MiB: far smaller
FLUSH_AFTER = 0.01  # s: the worker sends waiting answers once the oldest is this old, or a call has run this long
SLACK = 0.25  # s beyond a call's timeout before its answer is given up on: the worker's sending may lag the call


@dataclass(frozen=True)
class Order:
    """Which call of a batch runs after which: the rule the worker follows too (``worker.run_batch``)."""

    ends: tuple[int, ...]  # for each call, the index just past its group
    stop_on: frozenset[str]

    def first(self) -> int | None:
        return 0 if self.ends else None

    def after(self, k: int, status: str) -> int | None:
        """The call after call ``k`` ended with ``status``, or None when the batch is over."""
        if status in ("timeout", "crashed") or status in self.stop_on:
            return None
        following = k + 1 if status == "ok" else self.ends[k]
        return following if following < len(self.ends) else None

    def sizes(self, first: int) -> list[int]:
        """The sizes of the groups from call ``first`` (the start of a group) on."""
        starts = [first, *sorted(set(self.ends[first:]))]
        return [b - a for a, b in zip(starts, starts[1:])]


@dataclass(frozen=True)
class Batch:
    """Calls of one function to run in a row, encoded once: ``Batch.of`` checks and makes one.

    ``groups``: the sizes of consecutive runs of calls; a call that is not ok skips the rest
    of its run. ``stop_on``: statuses (of "error", "missing", "forbidden") that end the batch.
    """

    function: str
    calls: EncodedCalls
    n_outputs: int | None
    timeout: float
    order: Order

    @staticmethod
    def of(function: str, calls: Sequence[Sequence[tuple[str, np.ndarray | int | float]]], n_outputs: int | None,
           timeout: float, groups: Sequence[int] | None = None, stop_on: Collection[str] = ()) -> Batch:
        sizes = [1] * len(calls) if groups is None else list(groups)
        if (not (n_outputs is None or (type(n_outputs) is int and n_outputs >= 1)) or not timeout > 0
                or any(type(n) is not int or n < 1 for n in sizes) or sum(sizes) != len(calls)
                or not set(stop_on) <= {"error", "missing", "forbidden"}):
            raise SandboxError(f"call_many({function!r}): n_outputs={n_outputs!r}, timeout={timeout!r}, "
                               f"groups={groups!r} and stop_on={stop_on!r} are not valid for {len(calls)} calls")
        ends = tuple(end for n, end in zip(sizes, itertools.accumulate(sizes)) for _ in range(n))
        return Batch(function, encode_calls(calls), n_outputs, float(timeout), Order(ends, frozenset(stop_on)))

    def header(self, first_id: int, first: int, each: bool) -> str:
        """This batch's part of a request, from call ``first`` on, whose id is ``first_id``."""
        return '{"id": %d, "function": %s, "n_outputs": %s, "groups": %s, "stop_on": %s, "each": %s, "calls": %s}' % (
            first_id, json.dumps(self.function), json.dumps(self.n_outputs), json.dumps(self.order.sizes(first)),
            json.dumps(sorted(self.order.stop_on)), "true" if each else "false", self.calls.json_from(first))


class Progress:
    """One batch of a run: its results so far and the call to make next (None: the batch is done)."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.results: list[CallResult] = []
        self.next: int | None = batch.order.first()
        self.base = 0  # call k's answer has id base + k in the request that sent it
        self.each = False  # resend asking for one answer per message: the last worker failed at a call it did not name

    def settle(self, result: CallResult) -> None:
        assert self.next is not None
        self.results.append(result)
        self.next = self.batch.order.after(self.next, result.status)


class Stream:
    """One ``calls`` request in flight: which answer comes next, and until when it may come."""

    def __init__(self, worker: Worker, todo: list[Progress], start: float, max_elements: int,
                 result: Callable[[Answer, float, str], CallResult],
                 failure: Callable[[Worker, str, float, float], CallResult], stop: Callable[[], None]) -> None:
        """``result`` makes a call's result of an answer (and its time limit and printout), ``failure``
        the result of the call the worker failed at (hung, died or sent garbage); ``stop`` stops the worker."""
        self.worker, self.todo, self.max_elements = worker, todo, max_elements
        self.result, self.failure, self.stop = result, failure, stop
        self.mark = start  # when the last message came (the request went out): the next is due a timeout later
        self.running: int | None = None  # the call the worker last named as running
        self.live = True  # False once the worker was stopped: what is left goes to a new one
        self.at = 0  # todo[:at] are done

    @property
    def finished(self) -> bool:
        return self._expected() is None

    def _expected(self) -> Progress | None:
        """The batch whose next call answers next: the first one not done (they are answered in order)."""
        while self.at < len(self.todo) and self.todo[self.at].next is None:
            self.at += 1
        return self.todo[self.at] if self.at < len(self.todo) else None

    def step(self) -> None:
        """Read the next message and settle the calls it answers, or settle the call it failed at."""
        p = self._expected()
        assert p is not None and self.live
        cap = HEADER_CAP + 8 * self.max_elements
        reply = self.worker.receive(self.mark + p.batch.timeout + SLACK, cap)
        now = time.monotonic()
        if isinstance(reply, str):
            return self.fail(p, reply)
        try:
            running, answers, values = read_results(reply)
            self._settle(answers, values)
            if not self.live:
                return
            p = self._expected()
            if running is not None and (p is None or running != p.base + (p.next or 0)):
                raise Malformed("the worker named another call as running")
        except Malformed:
            if p is not None:
                return self.fail(p, "malformed")
            self.stop()  # garbage after the last answer: nothing to settle, but the pipe is spoilt
            self.live = False
            return
        self.running = running
        if answers:  # only an answer moves the deadline: messages without one cannot keep a hung call alive
            self.mark = now

    def _settle(self, answers: list, values: np.ndarray) -> None:
        # what was printed goes with the first answer: a message naming a running call only keeps it
        stdout, pos, limit = self.worker.output.take() if answers else "", 0, self.max_elements
        for raw in answers:
            p = self._expected()
            if p is None or not self.live:
                raise Malformed("more answers than calls")
            k = p.next or 0
            answer, pos = read_answer(raw, p.base + k, p.batch.n_outputs, p.batch.calls.names[k], values, pos, limit)
            result = self.result(answer, p.batch.timeout, stdout)
            stdout = ""
            p.settle(result)
            if result.status == "timeout":  # over its time by the worker's own clock; the worker runs on
                self.stop()
                self.live = False
                return
        if pos != len(values):
            raise Malformed("output values that no answer claims")

    def fail(self, p: Progress, failure: str, known: bool = False) -> None:
        """The worker hung, died or sent garbage while ``p``'s next call was due.

        Unless that call is known to be the one that was running (the worker named it, or
        answers one call per message), the answers waiting in the worker were lost with it
        and the failure may belong to a later call: the batch is then resent from that
        call to a new worker, which answers each call at once.
        """
        self.live = False
        k = p.next or 0
        if not (known or p.each or self.running == p.base + k):
            self.stop()
            p.each = True
            return
        p.settle(self.failure(self.worker, failure, p.batch.timeout, time.monotonic() - self.mark))
