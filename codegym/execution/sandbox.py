"""The trusted side of the sandbox: worker pool, job protocol, verdicts, cache."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import queue
import reprlib
import select
import signal
import socket
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
from .testcases import AssertPlan, TestCase, call_key, evaluate_assert, plan_assert, plan_check, shadowed_names

_WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")


class _ShortRepr(reprlib.Repr):
    """Short, never-failing text for messages: a correct answer must not fail because building
    the got-vs-expected text failed (``repr(2**20000)`` raises ValueError)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = 80
        self.maxlist = self.maxtuple = self.maxset = self.maxdict = 8

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 10_000:
            return "<int of %d bits>" % x.bit_length()
        return super().repr_int(x, level)

    def repr(self, x: Any) -> str:
        try:
            return super().repr(x)
        except Exception:  # noqa: BLE001
            return "<%s>" % type(x).__name__


_SHORT = _ShortRepr()

STATUSES = ("passed", "wrong_answer", "runtime_error", "timeout_cpu", "timeout_wall", "memory_limit",
            "output_limit", "syntax_error", "killed", "forbidden")
CLOCKS = ("cpu", "wall")


@dataclass
class TestOutcome:
    """What happened to one test."""

    passed: bool
    status: str
    message: str = ""
    output: str | None = None  # call/stdio tests: canonical form of what the program produced
    seconds: float | None = None  # wall time from the previous test's last answer to this one's

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
    cpu_s: float | None = None  # the program's CPU time, all threads (None: its worker never reported)
    time_limit_s: float = 0.0  # the limit this run had (CPU seconds, or wall seconds with clock="wall")

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
    """One pre-warmed worker process, driven over a ``SOCK_SEQPACKET`` socket. It never receives
    a job's payload: it only hands out the pipe ends of fresh children and says how they ended."""

    def __init__(self, config: dict):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "LANG": "C.UTF-8"}
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen([sys.executable, "-I", "-S", _WORKER_SCRIPT, str(theirs.fileno())],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, env=env, pass_fds=(theirs.fileno(),),
                                         start_new_session=True)
        finally:
            theirs.close()
        self.sock = ours
        self.views: list[str] = []
        self.send({**config, "job_uid": _isolation.JOB_UID_BASE + self.proc.pid})
        hello = self.receive(timeout=60)
        self.protections, self.views = hello["protections"], hello.get("views", [])

    def send(self, message: dict) -> None:
        try:
            self.sock.send(json.dumps(message, separators=(",", ":")).encode())
        except OSError as err:
            raise SandboxError("sandbox worker is gone") from err

    def _wait_readable(self, timeout: float) -> None:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise SandboxError("sandbox worker did not answer within %.0f s" % timeout)

    def receive(self, timeout: float) -> dict:
        self._wait_readable(timeout)
        data = self.sock.recv(1 << 16)
        if not data:
            raise SandboxError("sandbox worker exited")
        return json.loads(data)

    def spawn(self, cpu_s: float | None, wall_s: float) -> tuple[int, list[int]]:
        """A fresh restricted child, which the worker kills after ``cpu_s`` of CPU time or ``wall_s``
        of wall time: its pid and [command write, result read, output read] fds."""
        self.send({"op": "spawn", "cpu_s": cpu_s, "wall_s": wall_s})
        self._wait_readable(30)
        data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 3)
        if not data or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            raise SandboxError("sandbox worker exited")
        return json.loads(data)["pid"], fds

    def close(self) -> None:
        """Closing the socket lets the worker unmount its view and exit; kill it if it lingers."""
        self.sock.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
        for view in self.views:
            try:
                os.rmdir(view)  # left on the host only when the worker was killed
            except OSError:
                pass

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.proc.kill()
        self.proc.wait()


@lru_cache(maxsize=8)
def _view_contents(allowed_packages: tuple[str, ...]) -> dict:
    return _isolation.view_contents(allowed_packages)


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
        timeout_s: the default time limit T of one program with all of its tests; ``run`` takes
            one per run (the judge and environments pass limits calibrated from the reference
            solution, see :mod:`codegym.limits`).
        clock: what T counts. "cpu" (default): the program's CPU time, user + system, all threads
            (status ``timeout_cpu``), so a verdict does not depend on how busy the machine is; a
            wall cap of ``wall_factor * T + wall_extra_s`` ends programs that sleep or block
            (``timeout_wall``). "wall": wall time (``timeout_wall``), the old way, which a loaded
            machine turns into wrong verdicts.
        memory_mb: address-space limit of the child (0 for none).
        workers: pre-warmed worker processes (default: the core count).
        allowed_packages: third-party packages the program may import (read access granted).
        preload: modules imported in the worker before forking, so children start with them.
        output_limit: bytes of stdout+stderr before the child is killed; the result channel may
            carry twice that (a stdio answer is the captured stdout, JSON-escaped).
        disk_mb: size of the job's working directory (a fresh tmpfs per job).
        max_threads: processes plus threads the child may run at once.
        cache_size: identical (program, tests, limit) requests served from memory; 0 disables.
        namespaces, drop_uid: turn individual protections off (for debugging only).
    """

    def __init__(self, timeout_s: float = 2.0, memory_mb: int = 512, workers: int | None = None,
                 allowed_packages: Sequence[str] = ("numpy",), preload: Sequence[str] = (),
                 output_limit: int = 1 << 20, disk_mb: int = 64, max_threads: int = 64,
                 cache_size: int = 10_000, namespaces: bool = True, drop_uid: bool = True,
                 clock: str = "cpu", wall_factor: float = 3.0, wall_extra_s: float = 1.0):
        if clock not in CLOCKS:
            raise ValueError("clock must be 'cpu' or 'wall', not %r" % (clock,))
        if wall_factor < 1 or wall_extra_s < 0:
            raise ValueError("need wall_factor >= 1 and wall_extra_s >= 0")
        self.clock, self.wall_factor, self.wall_extra_s = clock, float(wall_factor), float(wall_extra_s)
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if output_limit <= 0 or disk_mb <= 0 or max_threads <= 0:
            raise ValueError("output_limit, disk_mb and max_threads must be positive")
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.output_limit = int(output_limit)
        self.workers = int(workers or os.cpu_count() or 1)
        bpf = _isolation.seccomp_program()
        _isolation.remove_stale_views()
        limits = {"memory_mb": self.memory_mb, "output_limit": self.output_limit,
                  "disk_mb": int(disk_mb), "tasks": int(max_threads)}
        self._config = {"limits": limits, "view": _view_contents(tuple(allowed_packages)), "preload": list(preload),
                        "namespaces": namespaces, "drop_uid": drop_uid, "seccomp_bpf": bpf.hex() if bpf else ""}
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
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
        for _ in range(self.workers):
            self._idle.put(None)  # wakes every caller still waiting for a worker: it finds the sandbox closed

    def _acquire(self) -> _Worker:
        while True:
            if self._closed:
                raise SandboxError("sandbox is closed")
            with self._lock:
                if self._idle.empty() and len(self._all) < self.workers:
                    worker = _Worker(self._config)
                    self._all.append(worker)
                    return worker
            worker = self._idle.get()
            if worker is not None:
                return worker
            # None: a broken worker's place came free (or the sandbox closed); look again

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if healthy and not self._closed:
            self._idle.put(worker)
            return
        worker.close()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        self._idle.put(None)  # a caller waiting for a worker starts a new one instead

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
    def wall_cap(self, timeout_s: float) -> float:
        """The wall-clock time a run with limit ``timeout_s`` may take: the caller is answered
        within this plus about a second, whatever the program does."""
        return self.wall_factor * timeout_s + self.wall_extra_s if self.clock == "cpu" else timeout_s

    def run(self, program: str, tests: Sequence[TestCase], cache: bool = True,
            timeout_s: float | None = None) -> RunResult:
        """Run ``program`` against ``tests`` in one isolated child; never raises for bad code.
        ``cache=False`` neither reads nor stores the result cache (the judge's hidden tests);
        ``timeout_s`` is this run's limit (default: the sandbox's)."""
        tests = list(tests)
        if not isinstance(program, str):
            raise TypeError("program must be a string")
        if not tests:
            raise ValueError("no tests to run")
        limit = self.timeout_s if timeout_s is None else float(timeout_s)
        if not limit > 0:
            raise ValueError("timeout_s must be positive")
        key = self._cache_key(program, tests, limit) if cache else None
        if key is not None:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    self.cache_hits += 1
                    return RunResult(**{**hit.__dict__, "cached": True})
        result = self._execute(program, tests, limit)
        if key is not None:
            with self._lock:
                self._cache[key] = result
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return result

    def run_batch(self, items: Iterable[tuple[str, Sequence[TestCase]]], cache: bool = True,
                  timeouts: Sequence[float | None] | None = None) -> list[RunResult]:
        """Run many (program, tests) pairs in parallel, each with its limit from ``timeouts``
        (default: the sandbox's); results keep the input order."""
        items = list(items)
        limits = list(timeouts) if timeouts is not None else [None] * len(items)
        if len(limits) != len(items):
            raise ValueError("timeouts needs one limit per item")
        if len(items) <= 1:
            return [self.run(p, t, cache, limit) for (p, t), limit in zip(items, limits)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="codegym-sandbox")
        return list(self._pool.map(lambda item, limit: self.run(*item, cache, limit), items, limits))

    def _cache_key(self, program: str, tests: list[TestCase], limit: float) -> str | None:
        if not self._cache_size:
            return None
        digest = hashlib.sha256()
        digest.update(json.dumps([program, limit, self.clock, self.wall_factor, self.wall_extra_s, self.memory_mb,
                                  self.output_limit, [t.to_dict() for t in tests]], sort_keys=True,
                                 default=repr).encode())
        return digest.hexdigest()

    def _execute(self, program: str, tests: list[TestCase], limit: float, sequential: bool = False,
                 spent: float = 0.0) -> RunResult:
        """One child for the program, two ways of asking it.

        Up front (the usual case): every value the tests need is computed in one round trip, in
        test order, and a check's literal calls are prefetched; only the last test may continue
        with live calls. Sequential: nothing up front, every program call made live when the test
        reaches it, in exactly plain Python's order; used when an assert calls the program where
        Python may skip or repeat the call, and for a rerun when a check's calls leave the
        prefetched order. The wall clock starts once a worker is free (waiting for one is not
        the program's time). A rerun gets the CPU limit afresh (its answers are the verdict's) and
        what is left of the wall cap (``spent``: wall seconds the first run used)."""
        kinds = {t.kind for t in tests}
        if "stdio" in kinds and kinds != {"stdio"}:
            raise ValueError("stdio tests cannot be mixed with function tests in one run")
        shadowed = shadowed_names(program, tests)
        plans = {t.source: plan_assert(t.source, shadowed) for t in tests if t.kind == "assert"}
        # A program function used as a value (``map(is_prime, xs)``) becomes a live proxy too.
        sequential = sequential or any(plan.proxies or any(c.isidentifier() for c in plan.calls)
                                       for plan in plans.values())
        requests, slices = [], []
        for test in tests:
            start = len(requests)
            if test.kind == "stdio":
                requests.append({"stdin": test.stdin})
            elif sequential:
                pass
            elif test.kind == "call":
                requests.append(_call_request(test))
            elif test.kind == "assert":
                requests.extend({"expr": call} for call in plans[test.source].calls)
            else:
                requests.extend({"call": test.fn, "args": _codec.encode(list(args))}
                                for args in plan_check(test.source, test.fn))
            slices.append((start, len(requests)))
        # Live calls only come from checks (after their prefetched calls) and sequential runs; any
        # other child answers up front and closes its pipes at once.
        cpu_s = limit if self.clock == "cpu" else None
        job = {"program": program, "requests": requests, "interactive": sequential or "check" in kinds,
               "kind": "stdio" if kinds == {"stdio"} else "function", "output_limit": self.output_limit,
               "cpu_s": cpu_s}
        worker = self._acquire()
        started = time.monotonic()
        healthy = rerun = False
        session = _JobSession(worker, cpu_s, max(self.wall_cap(limit) - spent, 0.001), self.output_limit)
        try:
            session.start(job)
            outcomes, ends = [], []
            for index, (test, (start, stop)) in enumerate(zip(tests, slices)):
                last = index == len(tests) - 1
                answered = len(session.answers)
                if test.kind == "check":
                    outcomes.append(session.run_check(test, start, stop, live=sequential or last))
                else:
                    answers = _LiveAnswers(session, test, plans.get(test.source)) if sequential and test.kind != "stdio" \
                        else session.answers[start:stop] if len(session.answers) >= stop else None
                    outcomes.append(_judge(test, answers, session, plans.get(test.source)))
                ends.append(len(session.answers) - 1 if len(session.answers) > answered else stop - 1)
            session.end()
            session.time_tests(outcomes, ends)
            healthy = not session.worker_broken
        except _NeedsInteraction:
            session.end()
            healthy = not session.worker_broken
            rerun = True
        finally:
            session.close()
            self._release(worker, healthy)
            with self._lock:
                self.executions += 1
        if rerun:
            return self._execute(program, tests, limit, sequential=True, spent=spent + time.monotonic() - started)
        return _summarise(session, outcomes, spent + time.monotonic() - started, limit)


def _call_request(test: TestCase) -> dict:
    return {"call": test.fn, "args": _codec.encode(list(test.args))}


class _LiveAnswers:
    """A test's answers, asked of the child one by one when the judge reaches them."""

    def __init__(self, session: _JobSession, test: TestCase, plan: AssertPlan | None):
        self.session, self.test, self.plan = session, test, plan

    def __getitem__(self, index: int) -> dict:
        if self.test.kind == "call":
            return self.session.request(_call_request(self.test))
        return self.session.request({"expr": self.plan.calls[index]})


_EXIT_OUTPUT_LIMIT = 120  # the child's exit code when its captured stdout overflows (_worker.py)
_GRACE_S = 1.0  # after the deadline, the worker has this long to report the child's end


class _JobSession:
    """One program's run: the trusted side feeds the child its job and reads its answers directly
    (the worker only spawns and reaps), under byte caps and a deadline."""

    def __init__(self, worker: _Worker, cpu_s: float | None, wall_s: float, output_limit: int):
        self.worker = worker
        self.cpu_s, self.wall_s = cpu_s, wall_s
        self.output_limit = output_limit
        self.result_limit = 2 * output_limit + 4096
        self.compiled = False
        self.loaded = False
        self.done = self.interactive = False
        self.load_error = ""
        self.answers: list[dict | None] = []
        self.answer_times: list[float] = []  # when each answer arrived (time.monotonic)
        self.loaded_at = 0.0
        self.final: dict | None = None
        self.memory = self.forbidden = self.protocol_error = self.overflow = False
        self.worker_broken = False
        self.pid = 0
        self.fds: dict[str, int] = {}
        self.open_pipes: set[int] = set()
        self.buffer = b""
        self.result_bytes = self.stdio_bytes = 0
        self.stdio_tail = b""
        self.kill_sent = False

    def _absorb_line(self, line: bytes) -> None:
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
            self.loaded_at = time.monotonic()
            self.load_error = str(message.get("error", ""))[:300]
        elif "load_error" in message:
            self.loaded = False
            self.load_error = str(message["load_error"])[:300]
            self.memory = self.memory or message.get("memory") is True
            self.forbidden = self.forbidden or message.get("forbidden") is True
        elif "done" in message:
            self.protocol_error = self.protocol_error or self.done
            self.done = True
        elif self.done and not self.interactive:
            self.protocol_error = True  # nothing may follow the last answer of an up-front job
        elif message.get("i") == len(self.answers):
            self.answers.append(message)
            self.answer_times.append(time.monotonic())
            self.memory = self.memory or message.get("memory") is True
            self.forbidden = self.forbidden or message.get("forbidden") is True
        else:
            self.protocol_error = True

    # -- transport -----------------------------------------------------------------------------
    def start(self, job: dict) -> None:
        self.interactive = job["interactive"]
        self.pid, (command, result, output) = self.worker.spawn(self.cpu_s, self.wall_s)
        self.fds = {"command": command, "result": result, "output": output}
        self.open_pipes = {result, output}
        self.deadline = time.monotonic() + self.wall_s + _GRACE_S
        data = json.dumps(job, separators=(",", ":")).encode()
        self._write(struct.pack(">I", len(data)) + data)
        if job["interactive"]:
            self._pump(lambda: self.done)
        else:
            self._finish()

    def _finish(self) -> None:
        """Read to the end of both pipes (the child closes them after its last answer, or exits):
        forged extra lines show up as duplicates. Then end the child and wait for the worker's
        report, which carries the job's CPU time (waiting costs no measurable latency)."""
        self._pump(lambda: self.done and not self.open_pipes)
        if self.final is None and self.done and not self.open_pipes:
            self.kill()
            self._pump(lambda: False)

    def _write(self, data: bytes) -> None:
        fd = self.fds.get("command", -1)
        if fd < 0:
            return
        os.set_blocking(fd, False)
        view = memoryview(data)
        while view and self.final is None:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                self._pump(lambda: True, writable=fd)
            except OSError:  # the child is gone; its end is reported by the worker
                return

    def _pump(self, enough, writable: int = -1) -> None:
        """Read answers and output until ``enough()``, the child's end, or (when ``writable`` is
        given) until that fd can take more input."""
        poller = select.poll()
        for name in ("result", "output"):
            if self.fds.get(name, -1) >= 0:
                poller.register(self.fds[name], select.POLLIN)
        poller.register(self.worker.sock.fileno(), select.POLLIN)
        if writable >= 0:
            poller.register(writable, select.POLLOUT)
        while self.final is None:
            if writable < 0 and enough():
                return
            left = self.deadline - time.monotonic()
            if left <= 0:
                self._abandon()
                return
            for fd, _ in poller.poll(left * 1000 + 1):
                if fd == writable:
                    return
                if fd == self.worker.sock.fileno():
                    self._ended(self.worker.receive(0))
                    return
                if not self._read(fd):
                    poller.unregister(fd)

    def _read(self, fd: int) -> bool:
        """Take one chunk from a pipe; False at end of file."""
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            self.open_pipes.discard(fd)
            return False
        if fd == self.fds.get("result"):
            self.result_bytes += len(chunk)
            if self.result_bytes > self.result_limit:
                self.overflow = True
                self.buffer = b""
                self.kill()
                return True
            *lines, self.buffer = (self.buffer + chunk).split(b"\n")
            for line in lines:
                self._absorb_line(line)
        else:
            self.stdio_bytes += len(chunk)
            self.stdio_tail = (self.stdio_tail + chunk)[-2000:]
            if self.stdio_bytes > self.output_limit:
                self.overflow = True
                self.kill()
        return True

    def _ended(self, report: dict) -> None:
        """The worker has reaped the child: take what is left in the pipes (the child and all
        its threads are gone, so they end promptly), then close them."""
        self.final = report
        for name in ("result", "output"):
            fd = self.fds.get(name, -1)
            if fd < 0:
                continue
            os.set_blocking(fd, False)
            try:
                while self.result_bytes <= self.result_limit and self.stdio_bytes <= self.output_limit:
                    if not self._read(fd):
                        break
            except BlockingIOError:
                pass
        if self.buffer and not self.overflow:
            self._absorb_line(self.buffer)
        self.buffer = b""
        self.close()

    def _abandon(self) -> None:
        """The worker missed its deadline: it is broken, not the program. Kill it; the verdict is
        a timeout and the pool starts a new worker."""
        self.worker_broken = True
        self.worker.kill()
        self.final = {"timed_out": "wall", "exit_code": None, "signal": None}
        self.close()

    def kill(self) -> None:
        if not self.kill_sent and self.final is None:
            self.kill_sent = True
            try:
                self.worker.send({"op": "kill", "pid": self.pid})
            except SandboxError:
                self._abandon()

    def end(self) -> None:
        """No more calls: the end of the command pipe lets an interactive child finish."""
        if self.final is None and self.fds.get("command", -1) >= 0:
            os.close(self.fds.pop("command"))
            self._finish()
        if self.final is None:
            self.kill()
            self._pump(lambda: False)

    def close(self) -> None:
        for fd in self.fds.values():
            if fd >= 0:
                os.close(fd)
        self.fds = {}

    def time_tests(self, outcomes: list[TestOutcome], ends: list[int]) -> None:
        """Each test's ``seconds``: from the previous test's last answer (or the program's load)
        to its own last answer, as the trusted side saw them arrive."""
        previous = self.loaded_at
        for outcome, end in zip(outcomes, ends):
            if previous and 0 <= end < len(self.answer_times):
                outcome.seconds = max(self.answer_times[end] - previous, 0.0)
                previous = self.answer_times[end]

    def request(self, request: dict) -> dict:
        """One live request (a call or an expression), answered by the child: its answer."""
        if self.final is not None or not self.loaded:
            raise _Dead()
        expected_index = len(self.answers)
        self._write(json.dumps(request, separators=(",", ":")).encode() + b"\n")
        self._pump(lambda: len(self.answers) > expected_index)
        if len(self.answers) <= expected_index:
            raise _Dead()
        return self.answers[expected_index]

    def call(self, fn: str, args: tuple, kwargs: dict) -> Any:
        """One live call of the program's ``fn``, answered by the child."""
        request = {"call": fn, "args": _codec.encode(list(args))}
        if kwargs:
            request["kwargs"] = _codec.encode(kwargs)
        return _call_result(self.request(request), args)

    def proxy(self, fn: str):
        """A stand-in for the program's ``fn`` on the trusted side: each call is a live call."""
        return lambda *args, **kwargs: self.call(fn, args, kwargs)

    def run_check(self, test: TestCase, start: int, stop: int, live: bool) -> TestOutcome:
        """Run a trusted ``check(candidate)`` whose candidate calls are answered by the child:
        from the prefetched answers [start, stop) while the calls follow the prefetched sequence
        exactly, then live (when ``live``). Calls that leave the sequence mean a rerun, and so does
        a passing check that is not the last test and left prefetched calls unused (the child made
        calls Python would not have, before the later tests).

        The sandbox's own signals (rerun, child gone, unusable answer) are remembered where they
        are raised: a check's bare ``except:`` may swallow them, but they still decide."""
        namespace: dict[str, Any] = {"__name__": "__check__"}
        exec(_compiled_check(test.setup, test.source), namespace)
        expected = [call_key(args) for args in plan_check(test.source, test.fn)][:stop - start]
        cursor = 0
        raised: list[BaseException] = []

        def answer(*args, **kwargs):
            nonlocal cursor
            if cursor < len(expected):
                if kwargs or call_key(args) != expected[cursor]:
                    raise _NeedsInteraction()
                index = start + cursor
                cursor += 1
                if index >= len(self.answers):
                    raise _Dead()
                return _call_result(self.answers[index], args)
            if not live:
                raise _NeedsInteraction()
            return self.call(test.fn, args, kwargs)

        def candidate(*args, **kwargs):
            try:
                return answer(*args, **kwargs)
            except (_NeedsInteraction, _Dead, _CandidateError) as err:
                raised.append(err)
                raise

        namespace[test.fn] = candidate  # the check may call the entry point by name too
        try:
            namespace["check"](candidate)
            outcome = TestOutcome(True, "passed")
        except (_NeedsInteraction, _Dead, _CandidateError):
            outcome = None
        except Exception as err:  # noqa: BLE001 - an assertion, or the program's own exception
            outcome = _failed(err, "check failed")
        unused = cursor < len(expected) and not live and outcome is not None and outcome.passed
        if unused or any(isinstance(err, _NeedsInteraction) for err in raised):
            raise _NeedsInteraction()  # (unused: later tests would meet state Python never made)
        for err in raised:
            if isinstance(err, _Dead):
                return TestOutcome(False, self.process_status() or "runtime_error", self.load_error or "program ended")
            return TestOutcome(False, err.status, err.message)
        return outcome

    def process_status(self) -> str | None:
        final = self.final or {}
        if self.overflow or final.get("exit_code") == _EXIT_OUTPUT_LIMIT:
            return "output_limit"
        if final.get("timed_out") == "cpu" or final.get("signal") == signal.SIGXCPU:
            return "timeout_cpu"
        if final.get("timed_out"):
            return "timeout_wall"
        if self.memory:
            return "memory_limit"
        if self.forbidden or self.protocol_error or final.get("signal") == 31:  # SIGSYS
            return "forbidden"
        if final.get("signal") is not None:
            return "killed"
        return None


class _CandidateError(BaseException):
    """The program's answer cannot be used as a value (unencodable or undecodable). A
    BaseException, so a check's ``except Exception`` cannot mistake it for a raised exception."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class ProgramError(Exception):
    """Stands for an exception the program raised whose class is not a builtin."""


def _program_exception(answer: dict) -> Exception:
    """The exception the program raised, rebuilt on the trusted side as the same builtin class
    where there is one (so a check's ``except ValueError`` behaves as with a real call)."""
    message = str(answer.get("error", ""))[:300]
    status = "memory_limit" if answer.get("memory") is True else (
        "forbidden" if answer.get("forbidden") is True else "runtime_error")
    cls = getattr(builtins, str(answer.get("type") or ""), None)
    try:
        args = _codec.from_wire(answer["args"]) if "args" in answer else [message.split(": ", 1)[-1]]
        error = cls(*args) if isinstance(cls, type) and issubclass(cls, Exception) else ProgramError(message)
    except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError needs five arguments
        error = ProgramError(message)
    error.codegym_status, error.codegym_message = status, message
    return error


def _answer_value(answer: dict) -> Any:
    if answer.get("ok") is not True:
        if answer.get("unencodable") is True:
            raise _CandidateError("wrong_answer", str(answer.get("error", ""))[:300])
        raise _program_exception(answer)
    try:
        return _codec.from_wire(answer.get("value"))
    except _codec.DecodeError as err:
        raise _CandidateError("runtime_error", "undecodable result: %s" % err) from err


def _call_result(answer: dict, args: tuple) -> Any:
    """A call's value as the caller would see it: arguments changed in place by the program are
    changed here too, and a returned argument is that very object."""
    if answer.get("ok") is True and "args_after" in answer:
        try:
            after = _codec.from_wire(answer["args_after"])
        except _codec.DecodeError as err:
            raise _CandidateError("runtime_error", "undecodable arguments: %s" % err) from err
        for mine, theirs in zip(args, after):
            if type(theirs) is not type(mine):
                continue
            if isinstance(mine, (list, bytearray)):
                mine[:] = theirs
            elif isinstance(mine, (dict, set)):
                mine.clear()
                mine.update(theirs)
    value = _answer_value(answer)
    index = answer.get("returns_arg")
    if type(index) is int and 0 <= index < len(args):
        return args[index]
    return value


def _failed(err: BaseException, what: str) -> TestOutcome:
    status = getattr(err, "codegym_status", None)
    if status is not None:  # the program's own exception, surfacing through the test
        return TestOutcome(False, status, getattr(err, "codegym_message", "")[:300])
    try:
        text = "%s %s: %s" % (what, type(err).__name__, err)
    except Exception:  # noqa: BLE001
        text = "%s %s" % (what, type(err).__name__)
    return TestOutcome(False, "wrong_answer", text[:300])


class _Results:
    """``__r`` of an assert predicate: answer i is fetched (sequential runs) and decoded when the
    predicate first reaches it, once. A program function used as a value (``map(is_prime, xs)``)
    becomes a proxy whose calls are made live."""

    def __init__(self, answers, plan: AssertPlan, session: _JobSession):
        self.answers, self.plan, self.session = answers, plan, session
        self.values: dict[int, Any] = {}

    def __getitem__(self, index: int) -> Any:
        if index not in self.values:
            answer = self.answers[index]
            if answer.get("ok") is True and answer.get("callable") is True:
                self.values[index] = self.session.proxy(self.plan.calls[index])
            else:
                self.values[index] = _answer_value(answer)
        return self.values[index]


@lru_cache(maxsize=1024)
def _compiled_check(setup: str, source: str):
    return compile(setup + "\n\n" + source, "<check>", "exec")


def _judge(test: TestCase, answers, session: _JobSession, plan: AssertPlan | None) -> TestOutcome:
    """Decide a call, assert or stdio test from the child's answers (a list, or answers fetched
    live; None when the child ended before answering)."""
    if not session.loaded:
        return TestOutcome(False, session.process_status() or "runtime_error", session.load_error)
    if answers is None:
        return TestOutcome(False, session.process_status() or "runtime_error", "program ended before answering")
    output = None
    try:
        if test.kind == "assert":
            proxies = {name: session.proxy(name) for name in plan.proxies}
            if evaluate_assert(plan, _Results(answers, plan, session), proxies):
                return TestOutcome(True, "passed")
            return TestOutcome(False, "wrong_answer", "%s failed" % test.describe(120))
        value = _answer_value(answers[0])
        if test.kind == "call":
            output = _codec.dumps(value)
            if values_equal(value, test.expected, test.float_tol):
                return TestOutcome(True, "passed", output=output)
            return TestOutcome(False, "wrong_answer", "got %s, expected %s" % (_SHORT.repr(value), _SHORT.repr(test.expected)),
                               output)
        got = value if isinstance(value, str) else ""
        output = json.dumps(normalise_output(got))
        if stdout_matches(got, test.expected_stdout):
            return TestOutcome(True, "passed", output=output)
        return TestOutcome(False, "wrong_answer", "got %s, expected %s" % (_SHORT.repr(got), _SHORT.repr(test.expected_stdout)),
                           output)
    except _Dead:
        return TestOutcome(False, session.process_status() or "runtime_error", "program ended")
    except _CandidateError as err:
        return TestOutcome(False, err.status, err.message, output)
    except Exception as err:  # noqa: BLE001 - the program's exception, or e.g. unorderable values
        return _failed(err, "")


def _summarise(session: _JobSession, outcomes: list[TestOutcome], wall_s: float, limit: float) -> RunResult:
    # A program that went past its CPU limit or the wall cap does not pass, even if every answer
    # came in time (it spun or slept after its last one): passed means within the limits.
    over = bool((session.final or {}).get("timed_out"))
    passed = bool(outcomes) and all(o.passed for o in outcomes) and not session.protocol_error and not over
    if passed:
        status = "passed"
    elif not session.compiled:
        final = session.final or {}
        status = "syntax_error" if final.get("signal") is None and not final.get("timed_out") else (
            session.process_status() or "killed")
    else:
        failing = [o.status for o in outcomes if not o.passed]
        status = session.process_status() or (failing[0] if failing else "forbidden")
    if session.protocol_error:
        outcomes = [TestOutcome(False, "forbidden", "program tampered with the result channel")
                    if o.passed else o for o in outcomes]
    cpu_s = (session.final or {}).get("cpu_s")
    return RunResult(passed=passed, compiled=session.compiled, status=status, tests=outcomes, wall_s=wall_s,
                     cpu_s=cpu_s if isinstance(cpu_s, float) else None, time_limit_s=limit)
