"""The trusted side of the sandbox: worker pool, job protocol, verdicts, cache."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import reprlib
import select
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from . import _codec, _isolation
from .compare import normalise_output, stdout_matches, values_equal
from .testcases import TestCase, call_key, evaluate_assert, plan_assert, plan_check

_WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxdict = 8

STATUSES = ("passed", "wrong_answer", "runtime_error", "timeout", "memory_limit", "output_limit",
            "syntax_error", "killed", "forbidden")


@dataclass
class TestOutcome:
    """What happened to one test."""

    passed: bool
    status: str
    message: str = ""
    output: str | None = None  # call/stdio tests: canonical form of what the program produced

    __test__ = False


@dataclass
class RunResult:
    """The verdict on one program: computed on the trusted side from plain data."""

    passed: bool
    compiled: bool
    status: str
    tests: list[TestOutcome] = field(default_factory=list)
    wall_s: float = 0.0
    cached: bool = False

    @property
    def pass_fraction(self) -> float:
        return sum(t.passed for t in self.tests) / len(self.tests) if self.tests else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program under test)."""


class _Dead(BaseException):
    """The child ended before answering (BaseException: a check's ``except Exception`` must
    not swallow it)."""


class _NeedsInteraction(BaseException):
    """A check made a call that was not prefetched: rerun with an interactive child."""


class _Worker:
    """One pre-warmed worker process, driven over length-prefixed JSON frames."""

    def __init__(self, config: dict):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", _WORKER_SCRIPT], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                     close_fds=True, start_new_session=True)
        site_paths = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
        config = {**config, "site_paths": site_paths}
        self.send(config)
        self.protections = self.receive(timeout=30)["protections"]

    def send(self, message: dict) -> None:
        data = json.dumps(message, separators=(",", ":")).encode()
        try:
            self.proc.stdin.write(struct.pack(">I", len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            raise SandboxError("sandbox worker is gone") from err

    def receive(self, timeout: float) -> dict:
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise SandboxError("sandbox worker did not answer within %.0f s" % timeout)
        header = self.proc.stdout.read(4)
        if len(header) < 4:
            raise SandboxError("sandbox worker exited")
        (size,) = struct.unpack(">I", header)
        return json.loads(self.proc.stdout.read(size))

    def close(self) -> None:
        """End of input lets the worker remove its job directory; kill it if it lingers."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class _instance_or_class:
    """Descriptor: the method receives the instance, or the class when called on the class."""

    def __init__(self, func):
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj, cls):
        target = obj if obj is not None else cls
        return lambda *args, **kwargs: self.func(target, *args, **kwargs)


class Sandbox:
    """Runs untrusted programs against tests in isolated, restricted child processes.

    Arguments:
        timeout_s: wall-clock limit for one program with all of its tests.
        memory_mb: address-space limit of the child (0 for none).
        workers: pre-warmed worker processes (default: the core count).
        allowed_packages: third-party packages the program may import (read access granted).
        preload: modules imported in the worker before forking, so children start with them.
        output_limit: bytes of output (stdout, stderr, results) before the child is killed.
        cache_size: identical (program, tests) requests served from memory; 0 disables.
        namespaces, drop_uid: turn individual protections off (for debugging only).
    """

    def __init__(self, timeout_s: float = 2.0, memory_mb: int = 512, workers: int | None = None,
                 allowed_packages: Sequence[str] = ("numpy",), preload: Sequence[str] = (),
                 output_limit: int = 1 << 20, cache_size: int = 10_000, namespaces: bool = True,
                 drop_uid: bool = True):
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.output_limit = int(output_limit)
        self.workers = int(workers or os.cpu_count() or 1)
        bpf = _isolation.seccomp_program()
        self._config = {"allowed_packages": list(allowed_packages), "preload": list(preload),
                        "namespaces": namespaces, "drop_uid": drop_uid, "seccomp_bpf": bpf.hex() if bpf else ""}
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, RunResult] = OrderedDict()
        self._cache_size = cache_size
        self._pool: ThreadPoolExecutor | None = None
        self.executions = 0
        self.cache_hits = 0
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.close()
        while not self._idle.empty():
            self._idle.get_nowait()

    def _acquire(self) -> _Worker:
        if self._closed:
            raise SandboxError("sandbox is closed")
        with self._lock:
            if self._idle.empty() and len(self._all) < self.workers:
                worker = _Worker(self._config)
                self._all.append(worker)
                return worker
        return self._idle.get()

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if healthy and not self._closed:
            self._idle.put(worker)
            return
        worker.close()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)

    @_instance_or_class
    def protections(self_or_cls) -> dict:
        """Which protections are active on this machine (probed by starting a worker)."""
        if isinstance(self_or_cls, type):
            with self_or_cls(workers=1) as sandbox:
                return sandbox.protections()
        worker = self_or_cls._acquire()
        try:
            return dict(worker.protections)
        finally:
            self_or_cls._release(worker, True)

    # -- running -------------------------------------------------------------------------------
    def run(self, program: str, tests: Sequence[TestCase]) -> RunResult:
        """Run ``program`` against ``tests`` in one isolated child; never raises for bad code."""
        tests = list(tests)
        if not isinstance(program, str):
            raise TypeError("program must be a string")
        if not tests:
            raise ValueError("no tests to run")
        key = self._cache_key(program, tests)
        if key is not None:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    self.cache_hits += 1
                    return RunResult(**{**hit.__dict__, "cached": True})
        result = self._execute(program, tests)
        if key is not None:
            with self._lock:
                self._cache[key] = result
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return result

    def run_batch(self, items: Iterable[tuple[str, Sequence[TestCase]]]) -> list[RunResult]:
        """Run many (program, tests) pairs in parallel; results keep the input order."""
        items = list(items)
        if len(items) <= 1:
            return [self.run(p, t) for p, t in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="codegym-sandbox")
        return list(self._pool.map(lambda item: self.run(*item), items))

    def _cache_key(self, program: str, tests: list[TestCase]) -> str | None:
        if not self._cache_size:
            return None
        digest = hashlib.sha256()
        digest.update(json.dumps([program, self.timeout_s, self.memory_mb, self.output_limit,
                                  [t.to_dict() for t in tests]], sort_keys=True, default=repr).encode())
        return digest.hexdigest()

    def _execute(self, program: str, tests: list[TestCase], interactive: bool = False) -> RunResult:
        """One child for the program. Checks first run on prefetched literal calls; a check that
        needs any other call reruns the program in a child that answers calls one by one."""
        kinds = {t.kind for t in tests}
        if "stdio" in kinds and kinds != {"stdio"}:
            raise ValueError("stdio tests cannot be mixed with function tests in one run")
        requests, slices = [], []
        for test in tests:
            start = len(requests)
            if test.kind == "call":
                requests.append({"call": test.fn, "args": _codec.encode(list(test.args))})
            elif test.kind == "assert":
                requests.extend({"expr": call} for call in plan_assert(test.source).calls)
            elif test.kind == "stdio":
                requests.append({"stdin": test.stdin})
            else:
                requests.extend({"call": test.fn, "args": _codec.encode(list(args))}
                                for args in plan_check(test.source, test.fn))
            slices.append((start, len(requests)))
        interactive = interactive and "check" in kinds
        job = {"op": "job", "program": program, "requests": requests, "interactive": interactive,
               "kind": "stdio" if kinds == {"stdio"} else "function", "timeout_s": self.timeout_s,
               "memory_mb": self.memory_mb, "output_limit": self.output_limit}
        started = time.monotonic()
        worker = self._acquire()
        healthy = rerun = False
        session = _JobSession(worker, self.timeout_s)
        try:
            session.start(job)
            answers = session.answers
            outcomes = []
            for test, (start, stop) in zip(tests, slices):
                if test.kind == "check":
                    prefetched = {call_key(args): index for index, args in
                                  enumerate(plan_check(test.source, test.fn), start)}
                    outcomes.append(session.run_check(test, prefetched, interactive))
                else:
                    outcomes.append(_judge(test, answers[start:stop] if session.loaded else None, session))
            session.end()
            healthy = True
        except _NeedsInteraction:
            session.end()
            healthy = rerun = True
        finally:
            self._release(worker, healthy)
            with self._lock:
                self.executions += 1
        if rerun:
            return self._execute(program, tests, interactive=True)
        return _summarise(session, outcomes, time.monotonic() - started)


class _JobSession:
    """One program's conversation with its worker; collects answers and the final report."""

    def __init__(self, worker: _Worker, timeout_s: float):
        self.worker = worker
        self.patience = timeout_s + 10.0
        self.compiled = False
        self.loaded = False
        self.load_error = ""
        self.answers: list[dict | None] = []
        self.final: dict | None = None
        self.memory = self.forbidden = self.protocol_error = False
        self.calls = 0

    def _absorb(self, reply: dict) -> None:
        for line in reply.get("lines", []):
            self._absorb_line(line)
        if not reply.get("alive", False):
            self.final = reply

    def _absorb_line(self, line: str) -> None:
        try:
            message = _codec.parse_line(line)
        except _codec.DecodeError:
            self.protocol_error = True
            return
        if not isinstance(message, dict):
            self.protocol_error = True
        elif "compiled" in message and not self.answers and not self.loaded:
            self.compiled = message["compiled"] is True
            self.loaded = self.compiled
            self.load_error = str(message.get("error", ""))[:300]
        elif "load_error" in message:
            self.loaded = False
            self.load_error = str(message["load_error"])[:300]
            self.memory = self.memory or message.get("memory") is True
            self.forbidden = self.forbidden or message.get("forbidden") is True
        elif "done" in message:
            pass
        elif message.get("i") == len(self.answers):
            self.answers.append(message)
            self.memory = self.memory or message.get("memory") is True
            self.forbidden = self.forbidden or message.get("forbidden") is True
        else:
            self.protocol_error = True

    def start(self, job: dict) -> None:
        self.worker.send(job)
        self._absorb(self.worker.receive(self.patience))

    def end(self) -> None:
        if self.final is None:
            self.worker.send({"op": "end"})
            self._absorb(self.worker.receive(self.patience))

    def call(self, fn: str, args: tuple) -> Any:
        if self.final is not None or not self.loaded:
            raise _Dead()
        expected_index = len(self.answers)
        line = json.dumps({"call": fn, "args": _codec.encode(list(args))}, separators=(",", ":"))
        self.worker.send({"op": "call", "line": line})
        self._absorb(self.worker.receive(self.patience))
        if len(self.answers) <= expected_index:
            raise _Dead()
        return _answer_value(self.answers[expected_index])

    def run_check(self, test: TestCase, prefetched: dict[str, int], interactive: bool) -> TestOutcome:
        namespace: dict[str, Any] = {"__name__": "__check__"}
        exec(_compiled_check(test.setup, test.source), namespace)

        def candidate(*args):
            index = prefetched.get(call_key(args))
            if index is not None:
                if index >= len(self.answers):
                    raise _Dead()
                return _answer_value(self.answers[index])
            if not interactive:
                raise _NeedsInteraction()
            return self.call(test.fn, args)

        namespace[test.fn] = candidate  # the check may call the entry point by name too

        try:
            namespace["check"](candidate)
        except _Dead:
            return TestOutcome(False, self.process_status() or "runtime_error", self.load_error or "program ended")
        except _CandidateError as err:
            return TestOutcome(False, err.status, err.message)
        except AssertionError as err:
            return TestOutcome(False, "wrong_answer", ("check failed %s" % err)[:300])
        except Exception as err:  # noqa: BLE001 - the check itself failed on the decoded values
            return TestOutcome(False, "wrong_answer", ("check raised %s: %s" % (type(err).__name__, err))[:300])
        return TestOutcome(True, "passed")

    def process_status(self) -> str | None:
        final = self.final or {}
        if final.get("output_overflow"):
            return "output_limit"
        if final.get("timed_out") or final.get("signal") == 24:  # SIGXCPU
            return "timeout"
        if self.memory:
            return "memory_limit"
        if self.forbidden or self.protocol_error or final.get("signal") == 31:  # SIGSYS
            return "forbidden"
        if final.get("signal") is not None:
            return "killed"
        return None


class _CandidateError(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _answer_value(answer: dict) -> Any:
    if answer.get("ok") is not True:
        if answer.get("memory") is True:
            status = "memory_limit"
        elif answer.get("forbidden") is True:
            status = "forbidden"
        elif answer.get("unencodable") is True:
            status = "wrong_answer"  # it returned something no builtin value can equal
        else:
            status = "runtime_error"
        raise _CandidateError(status, str(answer.get("error", ""))[:300])
    try:
        return _codec.from_wire(answer.get("value"))
    except _codec.DecodeError as err:
        raise _CandidateError("runtime_error", "undecodable result: %s" % err) from err


@lru_cache(maxsize=1024)
def _compiled_check(setup: str, source: str):
    return compile(setup + "\n\n" + source, "<check>", "exec")


def _judge(test: TestCase, answers: list[dict] | None, session: _JobSession) -> TestOutcome:
    """Decide one non-interactive test from the child's answers (None: program never loaded)."""
    if answers is None:
        return TestOutcome(False, session.process_status() or "runtime_error", session.load_error)
    needed = 1 if test.kind != "assert" else len(plan_assert(test.source).calls)
    if len(answers) < needed:
        return TestOutcome(False, session.process_status() or "runtime_error", "program ended before answering")
    try:
        values = [_answer_value(answer) for answer in answers]
    except _CandidateError as err:
        return TestOutcome(False, err.status, err.message)
    try:
        output = None
        if test.kind == "call":
            ok = values_equal(values[0], test.expected, test.float_tol)
            detail = "got %s, expected %s" % (_SHORT.repr(values[0]), _SHORT.repr(test.expected))
            output = _codec.dumps(values[0])
        elif test.kind == "stdio":
            got = values[0] if isinstance(values[0], str) else ""
            ok = stdout_matches(got, test.expected_stdout)
            detail = "got %s, expected %s" % (_SHORT.repr(got), _SHORT.repr(test.expected_stdout))
            output = json.dumps(normalise_output(got))
        else:
            ok = evaluate_assert(plan_assert(test.source), values)
            detail = "%s failed; calls returned %s" % (test.describe(120), _SHORT.repr(values))
    except Exception as err:  # noqa: BLE001 - e.g. comparing unorderable decoded values
        return TestOutcome(False, "wrong_answer", ("%s: %s" % (type(err).__name__, err))[:300])
    return TestOutcome(True, "passed", output=output) if ok else TestOutcome(False, "wrong_answer", detail, output)


def _summarise(session: _JobSession, outcomes: list[TestOutcome], wall_s: float) -> RunResult:
    passed = bool(outcomes) and all(o.passed for o in outcomes) and not session.protocol_error
    if passed:
        status = "passed"
    elif not session.compiled:
        status = "syntax_error" if session.final and session.final.get("signal") is None else (
            session.process_status() or "killed")
    else:
        failing = [o.status for o in outcomes if not o.passed]
        status = session.process_status() or (failing[0] if failing else "forbidden")
    if session.protocol_error:
        outcomes = [TestOutcome(False, "forbidden", "program tampered with the result channel")
                    if o.passed else o for o in outcomes]
    return RunResult(passed=passed, compiled=session.compiled, status=status, tests=outcomes, wall_s=wall_s)
