"""Batching across independent searches: the generate calls of several threads, one engine call.

A tree search asks for a handful of sequences at a time, too few to keep a CPU or GPU busy. The
benchmark runs several problems at once, one per *slot* (a thread), and a
:class:`LockstepBatcher` merges their calls: a round is sent to the backend once every live slot
has submitted a call or left. So a round holds exactly one call per live slot, and what a round
contains depends only on what each slot asked, never on thread timing: with a fixed number of
slots and fixed seeds, a run is reproducible.

Usage::

    batcher = LockstepBatcher(backend, slots=8)
    # in slot i's thread:
    with batcher.client(i) as backend_i:   # leaves the batcher on exit, even on error
        ...                                # backend_i.generate(...) blocks until its round ran
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .base import Backend, GenerationOutput, GenerationRequest, Usage, WrappedBackend


class LockstepBatcher:
    """Merges the calls of ``slots`` cooperating threads into one backend call per round."""

    def __init__(self, backend: Backend, slots: int):
        if slots < 1:
            raise ValueError("a batcher needs at least one slot")
        self.backend = backend
        self._condition = threading.Condition()
        self._live = set(range(slots))
        self._pending: dict[int, list[GenerationRequest]] = {}
        self._answers: dict[int, GenerationOutput | BaseException] = {}
        self.round_sizes: list[int] = []  # requests per merged call, for benchmarks

    def client(self, slot: int) -> SlotBackend:
        if slot not in self._live:
            raise ValueError("slot %d is not live (0 <= slot < slots, and a slot leaves only once)" % slot)
        return SlotBackend(self, slot)

    def leave(self, slot: int) -> None:
        with self._condition:
            self._live.discard(slot)
            round_ = self._take_round()
        self._run(round_)

    def submit(self, slot: int, requests: list[GenerationRequest]) -> GenerationOutput:
        with self._condition:
            if slot not in self._live:
                raise RuntimeError("slot %d has left the batcher" % slot)
            self._pending[slot] = requests
            round_ = self._take_round()
        self._run(round_)
        with self._condition:
            while slot not in self._answers:
                self._condition.wait()
            answer = self._answers.pop(slot)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _take_round(self) -> dict[int, list[GenerationRequest]] | None:
        """The pending calls, once every live slot has one (call with the lock held)."""
        if not self._pending or set(self._pending) != self._live:
            return None
        round_, self._pending = dict(sorted(self._pending.items())), {}
        return round_

    def _run(self, round_: dict[int, list[GenerationRequest]] | None) -> None:
        if round_ is None:
            return
        merged = [request for requests in round_.values() for request in requests]
        answers: dict[int, GenerationOutput | BaseException] = {}
        try:
            output = self.backend.generate(merged) if merged else GenerationOutput(results=[])
            start = 0
            for slot, requests in round_.items():
                end = start + len(requests)
                rows, prompt_tokens = output.results[start:end], output.prompt_tokens[start:end]
                start = end
                answers[slot] = GenerationOutput(results=rows, usage=_usage(rows, prompt_tokens),
                                                 prompt_tokens=prompt_tokens)
        except BaseException as error:  # every slot of the round sees the failure
            answers = dict.fromkeys(round_, error)
        with self._condition:
            self.round_sizes.append(len(merged))
            self._answers.update(answers)
            self._condition.notify_all()


def _usage(rows: list[list], prompt_tokens: list[int]) -> Usage:
    """One slot's share of a merged call."""
    completions = [c for row in rows for c in row]
    return Usage(calls=1, completions=len(completions), generated_tokens=sum(c.tokens for c in completions),
                 cache_hits=sum(c.cached for c in completions), prompt_tokens=sum(prompt_tokens))


class SlotBackend(WrappedBackend):
    """One slot's view of a :class:`LockstepBatcher`: a backend whose calls join the next round."""

    def __init__(self, batcher: LockstepBatcher, slot: int):
        super().__init__(batcher.backend)
        self.batcher, self.slot = batcher, slot

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationOutput:
        return self._record(self.batcher.submit(self.slot, list(requests)))

    def close(self) -> None:
        self.batcher.leave(self.slot)
