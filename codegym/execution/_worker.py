"""The sandbox worker ("zygote") and the untrusted child it forks for each program.

Started by :class:`codegym.execution.Sandbox` as ``python -I -S _worker.py FD`` (stdlib only,
imported by path); FD is a ``SOCK_SEQPACKET`` socket to the trusted side.

Why it is built this way: a forked child inherits its parent's memory. So the worker never sees a
job: no program, no request, no answer ever enters it. It forks pristine children ahead of time
(restrictions already applied, blocked reading their command pipe), hands the trusted side their
pipe ends over the socket (``SCM_RIGHTS``) and reports how each child ended. The trusted side writes
the job into the child and reads its answers itself. What the worker holds is the same before and
after any job, so a job cannot find an earlier job's program, tests or answers in its memory.

Protocol on the socket, one JSON datagram per message:
  <- configuration (first message)          -> {"protections", "view"}
  <- {"op": "spawn", "cpu_s", "wall_s"}      -> {"pid"} + fds [command write, result read, output read]
  <- {"op": "kill", "pid"}                   (optional: end the running child now)
                                             -> {"exited": true, "exit_code", "signal", "timed_out",
                                                 "wall_s", "cpu_s"}
The worker ends the child when its CPU time (all threads, from the kernel's clock of the process)
passes ``cpu_s`` ("timed_out": "cpu"; a null ``cpu_s`` means no CPU limit) or its wall time passes
``wall_s`` ("timed_out": "wall"). ``cpu_s`` in the reply is what the job used (rusage at reaping,
less what the child had used before it was handed out).
The child reads a 4-byte big-endian length and a JSON job ``{"program", "requests", "kind",
"interactive", "output_limit", "cpu_s"}`` on fd 3, then (interactive jobs) one JSON request per line. It
writes one JSON line per answer on fd 4: ``{"compiled"}``, ``{"i", "ok", "value"|"error"}``,
``{"done"}``; its stdout and stderr go to fd 1 and 2.
"""

from __future__ import annotations

import fcntl
import gc
import io
import json
import math
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _codec  # noqa: E402
import _isolation  # noqa: E402

EXIT_OUTPUT_LIMIT = 120
_MIN_CPU_CHECK_S = 0.002  # the finest interval at which the worker looks at a child's CPU clock
_NEUTRAL_PID = 1000  # pids of the worker's namespace restart here after every job

# ----------------------------------------------------------------------------------------------
# The untrusted child: everything below ``_child_main`` runs after the restrictions apply.


class _CappedBytes(io.BytesIO):
    """The bytes under a stdio test's ``sys.stdout``; exceeding the cap ends the child with a
    known code."""

    def __init__(self, limit: int):
        super().__init__()
        self._left = limit

    def write(self, data) -> int:
        self._left -= len(data)
        if self._left < 0:
            os._exit(EXIT_OUTPUT_LIMIT)
        return super().write(data)


def _exit(code=None):
    """``exit()`` and ``quit()``, which ``site`` would define (the worker runs with ``-S``)."""
    raise SystemExit(code)


def _answer(out_fd: int, message: dict) -> None:
    data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
    while data:
        data = data[os.write(out_fd, data):]


def _error_text(err: BaseException) -> str:
    try:
        text = "%s: %s" % (type(err).__name__, err)
    except BaseException:  # noqa: BLE001 - str() of an exception is untrusted code too
        text = type(err).__name__
    return text[:300]


def _error(index: int, err: BaseException) -> dict:
    """A raised exception as data: its text, the nearest builtin class it derives from and its
    arguments (so the trusted side can raise an exception that ``except ValueError`` catches)."""
    builtin = next((c.__name__ for c in type(err).__mro__ if c.__module__ == "builtins"), "")
    answer = {"i": index, "ok": False, "error": _error_text(err), "memory": isinstance(err, MemoryError),
              "forbidden": isinstance(err, PermissionError), "type": builtin}
    try:
        answer["args"] = _codec.encode(list(BaseException.__getattribute__(err, "args")))
    except BaseException:  # noqa: BLE001 - arguments that cannot travel: the text only
        pass
    return answer


def _evaluate(request: dict, namespace: dict, program_code, output_limit: int, args: list):
    if "expr" in request:
        return eval(compile(request["expr"], "<test>", "eval"), namespace)
    if "call" in request:
        kwargs = _codec.from_wire(request["kwargs"]) if "kwargs" in request else {}
        return namespace[request["call"]](*args, **kwargs)
    # As a script: text streams with a ``.buffer``, ``__main__``, and at the end the non-daemon
    # threads joined, ``atexit`` handlers run and stdout flushed, as the interpreter does at exit.
    stdin, stdout = sys.stdin, sys.stdout
    captured = _CappedBytes(output_limit)
    sys.stdin = io.TextIOWrapper(io.BytesIO(request["stdin"].encode()), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(captured, encoding="utf-8", write_through=True)
    sys.__stdout__, sys.__stdin__ = sys.stdout, sys.stdin
    try:
        try:
            exec(program_code, {"__name__": "__main__", "__builtins__": __builtins__, "__file__": "/tmp/main.py"})
            _at_exit()
        except SystemExit as stop:
            _at_exit()
            if stop.code not in (None, 0):
                raise
        sys.stdout.flush()
        return captured.getvalue().decode("utf-8", "replace")
    finally:
        sys.stdin, sys.stdout = stdin, stdout


def _at_exit() -> None:
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    import atexit

    atexit._run_exitfuncs()


def _run_one(index: int, request: dict, namespace: dict, code, output_limit: int) -> dict:
    try:
        args = _codec.from_wire(request["args"]) if "call" in request else []
        value = _evaluate(request, namespace, code, output_limit, args)
    except BaseException as err:  # noqa: BLE001 - any failure of untrusted code is data
        return _error(index, err)
    if "expr" in request and request["expr"].isidentifier() and callable(value):
        return {"i": index, "ok": True, "callable": True}  # a program function used as a value
    try:
        answer = {"i": index, "ok": True, "value": _codec.encode(value)}
        if "call" in request:
            # What a real call would show the caller beyond the return value: arguments changed
            # in place, and a return value that *is* one of the arguments.
            if any(isinstance(arg, _codec.MUTABLE_TYPES) for arg in args):
                answer["args_after"] = _codec.encode(args)
            same = [k for k, arg in enumerate(args) if arg is value and isinstance(arg, _codec.MUTABLE_TYPES)]
            if same:
                answer["returns_arg"] = same[0]
        return answer
    except _codec.UnencodableError as err:
        return {"i": index, "ok": False, "error": "UnencodableResult: %s" % err, "unencodable": True}
    except BaseException as err:  # noqa: BLE001 - e.g. a __index__ that raises while encoding
        return _error(index, err)


def _serve(job: dict, cmd_fd: int, out_fd: int) -> None:
    program = job["program"]
    try:
        code = compile(program, "<program>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as err:
        _answer(out_fd, {"compiled": False, "error": _error_text(err)})
        return
    _answer(out_fd, {"compiled": True})
    namespace = {"__name__": "__codegym__", "__builtins__": __builtins__}
    if job["kind"] == "function":
        try:
            exec(code, namespace)
        except BaseException as err:  # noqa: BLE001 - any failure of untrusted code is data
            _answer(out_fd, {"load_error": _error_text(err), "memory": isinstance(err, MemoryError),
                             "forbidden": isinstance(err, PermissionError)})
            return
    for index, request in enumerate(job["requests"]):
        _answer(out_fd, _run_one(index, request, namespace, code, job["output_limit"]))
    _answer(out_fd, {"done": True})
    if job["interactive"]:  # live calls until the trusted side closes the command pipe
        reader = os.fdopen(cmd_fd, "rb", buffering=0)
        index = len(job["requests"])
        for raw in iter(reader.readline, b""):
            _answer(out_fd, _run_one(index, json.loads(raw), namespace, code, job["output_limit"]))
            index += 1
    for fd in (out_fd, 1, 2):  # end of file tells the trusted side that nothing more can come
        os.close(fd)


_WARM_UP = json.dumps({"program": "def f(a, b):\n    return [a + b, {'k': (a, b)}]\n", "kind": "function",
                       "requests": [{"call": "f", "args": ["L", 1, 2]}], "interactive": False})


def _warm_up() -> None:
    """Do a job's work once on made-up data while waiting: the copy-on-write page faults that the
    parser, compiler, codec and JSON would take on a fresh fork are taken now, not on the job's
    clock. Nothing of it is kept."""
    job = json.loads(_WARM_UP)
    namespace = {"__name__": "__codegym__", "__builtins__": __builtins__}
    exec(compile(job["program"], "<program>", "exec"), namespace)
    json.dumps(_run_one(0, job["requests"][0], namespace, None, 0), separators=(",", ":"))


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _child_main(cmd_fd: int, out_fd: int, stdio_fd: int, slot: _Slot, worker: Worker) -> None:
    """Restrict this fresh child, then wait for its job. Everything that can be prepared once
    (environment, import path, stdout wrapper, Landlock ruleset) was prepared in the worker."""
    os.setsid()
    # Descriptors: 0 /dev/null, 1-2 output pipe, 3 command pipe, 4 result pipe; all others closed.
    ruleset = slot.ruleset.fd if slot.ruleset is not None else -1
    kept = [fcntl.fcntl(fd, fcntl.F_DUPFD, 1000) if fd >= 0 else -1 for fd in (cmd_fd, out_fd, stdio_fd, ruleset)]
    os.dup2(worker.devnull, 0)
    os.dup2(kept[2], 1)
    os.dup2(kept[2], 2)
    os.dup2(kept[0], 3)
    os.dup2(kept[1], 4)
    if kept[3] >= 0:
        os.dup2(kept[3], 5)
    os.closerange(6 if kept[3] >= 0 else 5, 1 << 16)
    _isolation.apply_rlimits(**worker.rlimits)
    if slot.view is not None:
        _isolation.enter_view(slot.view)
    else:
        os.chdir(slot.job_dir)
    if slot.ruleset is not None:
        slot.ruleset.fd = 5
        slot.ruleset.restrict_self()
        os.close(5)
    if worker.job_uid is not None:
        _isolation.drop_privileges(worker.job_uid, worker.keep_read_search)
    if worker.seccomp is not None:
        worker.seccomp.load()
    _warm_up()
    # Only now, restricted, does the child learn what it is to run.
    (size,) = struct.unpack(">I", _read_exact(3, 4))
    job = json.loads(_read_exact(3, size))
    if job.get("cpu_s") is not None:
        # The kernel's backstop, should the worker's watch ever miss: SIGXCPU a second after the
        # job's CPU limit, SIGKILL a second later (a program may catch SIGXCPU, not raise the hard limit).
        backstop = math.ceil(time.process_time() + float(job["cpu_s"])) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (backstop, backstop + 1))
    _serve(job, 3, 4)


# ----------------------------------------------------------------------------------------------
# The trusted worker.


_IDLE_CHILD_CPU_S = 3600


def _process_cpu_clock(pid: int) -> int:
    """The clock id of a process's CPU time, all threads together (Linux: CPUCLOCK_SCHED of the
    thread group), which ``clock_gettime`` reads without stopping it."""
    return ((~pid) << 3) | 2


class _Slot:
    """A place for one child: its own view (or job directory) and, once forked, the child."""

    def __init__(self, view: str | None, job_dir: str, pid_base: int):
        self.view, self.job_dir, self.pid_base = view, job_dir, pid_base
        self.mounted = False
        self.ruleset: _isolation.LandlockRuleset | None = None
        self.child: tuple[int, list[int]] | None = None


class Worker:
    """Forks restricted children ahead of time and hands them out; never holds a job's payload.

    With seccomp active a job is exactly one process (no fork), so both slots keep a child ready:
    the one that just ran is replaced (fresh directory, new fork) right after its end is reported,
    while the trusted side reads the verdict and the other slot's child runs the next job."""

    def __init__(self, config: dict, protections: _isolation.Protections):
        self.protections = protections
        self.limits = config["limits"]
        root = os.geteuid() == 0
        self.job_uid = config["job_uid"] if root and config.get("drop_uid", True) else None
        protections.uid_drop = self.job_uid is not None
        contents = config["view"]
        views: list[str | None] = [None, None]
        if config.get("namespaces", True) and protections.namespaces:
            try:
                owner = config["job_uid"] - _isolation.JOB_UID_BASE  # the worker's pid on the host
                views = [_isolation.build_view(contents["read"], contents["hidden"], contents["devices"], owner)
                         for _ in range(2)]
                protections.view = True
            except OSError as err:
                protections.notes.append("no filesystem view (%s): the child sees the host's files, "
                                         "limited by Landlock and permissions" % err)
        self.jobs_root = "" if protections.view else _isolation.make_private_dir("codegym-jobs-")
        if self.jobs_root:
            os.chmod(self.jobs_root, 0o711)
        self.slots = [_Slot(view, "/tmp" if view else os.path.join(self.jobs_root, str(k)), _NEUTRAL_PID + 1000 * (k + 1))
                      for k, view in enumerate(views)]
        self.pid_counter = protections.pid_namespace and _isolation.set_last_pid(_NEUTRAL_PID)
        if protections.pid_namespace and not self.pid_counter:
            protections.notes.append("ns_last_pid not writable: a job's pids count earlier jobs' threads")
        self.read_paths = contents["read"] + contents["devices"]  # read in place when there is no view
        self.sys_path = contents["sys_path"]
        self.landlock = False
        try:
            probe = _isolation.LandlockRuleset.build(["/dev/null"], [])
            os.close(probe.fd)
            self.landlock = True
            protections.landlock_abi, protections.landlock_net = probe.abi, probe.net
            protections.landlock_scoped = probe.scoped
        except OSError as err:
            protections.notes.append("landlock unavailable: %s" % err)
        program = bytes.fromhex(config.get("seccomp_bpf") or "")
        self.seccomp = _isolation.SeccompFilter(program) if program else None
        protections.seccomp = self.seccomp is not None
        if self.seccomp is None:
            protections.notes.append("seccomp unavailable (pyseccomp or libseccomp missing)")
        if self.job_uid is None:
            protections.notes.append("not root: the child keeps this user's uid, and RLIMIT_NPROC counts "
                                     "all of this user's processes")
        # Without a view the child reads the standard library in place; where other users cannot
        # reach it (under /root), it keeps CAP_DAC_READ_SEARCH, which lets it traverse any folder
        # (host sockets become connectable): only the view removes that need.
        self.keep_read_search = (self.job_uid is not None and not protections.view
                                 and not _isolation.tree_readable_by_others(contents["sys_path"][0]))
        if self.keep_read_search:
            protections.notes.append("no view and the standard library is not readable by other users: the "
                                     "child keeps CAP_DAC_READ_SEARCH, limited by Landlock")
        for module in config.get("preload", ()):
            try:
                __import__(module)
            except ImportError as err:
                protections.notes.append("preload %s failed: %s" % (module, err))
        # RLIMIT_CPU here only bounds a child that is never handed out; a child lowers its own once it
        # reads its job (_child_main).
        self.rlimits = {"cpu_s": _IDLE_CHILD_CPU_S, "memory_mb": self.limits["memory_mb"],
                        "file_mb": min(16, self.limits["disk_mb"]), "open_files": 64,
                        "tasks": self.limits["tasks"] + 1}  # + the next child, waiting in the other slot
        self.devnull = os.open(os.devnull, os.O_RDONLY)
        # What every child would otherwise set up for itself (each write in a fresh fork copies a page).
        home = "/tmp" if protections.view else self.slots[0].job_dir
        os.environ.clear()
        os.environ.update({"HOME": home, "TMPDIR": home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        sys.path[:] = contents["sys_path"]
        sys.stdout = sys.stderr = io.TextIOWrapper(io.FileIO(1, "wb", closefd=False), write_through=True)
        import builtins

        builtins.exit = builtins.quit = _exit
        self.turn = 0
        self.cores = max(len(os.sched_getaffinity(0)), 1)

    # -- per job -------------------------------------------------------------------------------
    def reset(self, slot: _Slot) -> None:
        """A fresh, empty working directory for the slot's next child, with its Landlock ruleset.

        With a view: a new tmpfs (whatever the last job left, files, a tree thousands deep,
        modes, xattrs, times, is gone in O(1)); the ruleset, built once, covers the view's root:
        reads are limited to what the view holds, and writes by its read-only mounts to the job's
        tmpfs. Without one: a new folder, and a new ruleset, since a rule names a folder's inode."""
        if slot.view is not None:
            _isolation.mount_job_dir(slot.view, self.limits["disk_mb"], self.job_uid or os.geteuid(), slot.mounted)
            slot.mounted = True
            if self.landlock and slot.ruleset is None:
                slot.ruleset = _isolation.LandlockRuleset.build([], [slot.view])
            return
        if os.path.lexists(slot.job_dir):
            _isolation.remove_tree(slot.job_dir)
        os.mkdir(slot.job_dir, 0o700)
        if self.job_uid is not None:
            os.chown(slot.job_dir, self.job_uid, self.job_uid)
        if slot.ruleset is not None:
            os.close(slot.ruleset.fd)
        if self.landlock:
            slot.ruleset = _isolation.LandlockRuleset.build(self.read_paths, [slot.job_dir, "/dev/null"],
                                                            tuple(self.sys_path))

    def prepare(self, slot: _Slot) -> None:
        """Fork the slot's child now, so that a job's latency does not include fork and setup."""
        if self.pid_counter:
            _isolation.set_last_pid(slot.pid_base)  # the same pid for every child of this slot
        cmd_read, cmd_write = os.pipe()
        out_read, out_write = os.pipe()
        stdio_read, stdio_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _child_main(cmd_read, out_write, stdio_write, slot, self)
            except BaseException:  # noqa: BLE001
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        for fd in (cmd_read, out_write, stdio_write):
            os.close(fd)
        slot.child = (pid, [cmd_write, out_read, stdio_read])

    def run_child(self, cpu_s: float | None, wall_s: float) -> None:
        slot, other = self.slots[self.turn], self.slots[1 - self.turn]
        self.turn = 1 - self.turn
        overlap = self.seccomp is not None
        pid, fds = slot.child
        slot.child = None
        clock = _process_cpu_clock(pid)
        cpu_before = time.clock_gettime(clock)  # the child's fork and warm-up, not the job's
        started = time.monotonic()
        deadline = started + wall_s
        pidfd = os.pidfd_open(pid)
        socket.send_fds(self.sock, [json.dumps({"pid": pid}).encode()], fds)
        for fd in fds:
            os.close(fd)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(self.sock.fileno(), select.POLLIN)
        timed_out = None
        killed = closing = False
        while True:
            wait = deadline - time.monotonic()
            if wait <= 0:
                timed_out = "wall"
                break
            if cpu_s is not None:
                try:
                    cpu_left = cpu_s - (time.clock_gettime(clock) - cpu_before)
                except OSError:  # already gone: the pidfd says so
                    cpu_left = cpu_s
                if cpu_left <= 0:
                    timed_out = "cpu"
                    break
                # CPU time grows at most `cores` times as fast as wall time: look again before
                # the limit could have been reached.
                wait = min(wait, max(cpu_left / self.cores, _MIN_CPU_CHECK_S))
            ready = {fd for fd, _ in poller.poll(wait * 1000 + 1)}
            if pidfd in ready:
                break
            if self.sock.fileno() in ready:
                message = self.sock.recv(1 << 16)
                if not message:
                    closing = True
                    break
                request = json.loads(message)
                if request.get("op") == "kill" and request.get("pid") == pid:  # not a late one for an earlier job
                    killed = True
                    break
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status, usage = os.wait4(pid, 0)
        os.close(pidfd)
        if self.pid_counter:
            _isolation.set_last_pid(_NEUTRAL_PID)  # forget how many threads the job made
        if not overlap:
            self.reap_all()
        exited = os.WIFEXITED(status)
        term_signal = None if exited else os.WTERMSIG(status)
        used = max(usage.ru_utime + usage.ru_stime - cpu_before, 0.0)
        if term_signal == signal.SIGXCPU or (cpu_s is not None and used > cpu_s):
            timed_out = "cpu"  # past the limit, whoever ended it (this loop, the kernel's backstop, an exit)
        ended_by_us = (timed_out or killed or closing) and term_signal == signal.SIGKILL
        reply = {"exited": True, "exit_code": os.WEXITSTATUS(status) if exited else None,
                 "signal": None if exited or ended_by_us else term_signal, "timed_out": timed_out,
                 "wall_s": time.monotonic() - started, "cpu_s": used}
        if closing:
            raise EOFError
        self.sock.send(json.dumps(reply).encode())
        self.reset(slot)
        # Fork the slot's next child now, while no job runs (a running job's threads would take pids
        # between our reset of the counter and the fork, and the next job would see how many) and
        # while the trusted side reads the verdict.
        self.prepare(slot if overlap else other)

    def reap_all(self) -> None:
        """Without seccomp a job may have forked: kill and reap everything left in our namespace."""
        if self.protections.pid_namespace:
            try:
                os.kill(-1, signal.SIGKILL)  # as PID 1: every other process in our namespace
            except ProcessLookupError:
                pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return

    def serve(self, sock: socket.socket) -> None:
        self.sock = sock
        for slot in self.slots:
            self.reset(slot)
        for slot in self.slots if self.seccomp is not None else self.slots[:1]:
            self.prepare(slot)
        while True:
            message = sock.recv(1 << 16)
            if not message:
                return
            request = json.loads(message)
            if request.get("op") == "spawn":
                cpu_s = request.get("cpu_s")
                try:
                    self.run_child(None if cpu_s is None else float(cpu_s), float(request["wall_s"]))
                except EOFError:
                    return

    def close(self) -> None:
        for slot in self.slots:
            if slot.child is not None:
                try:
                    os.kill(slot.child[0], signal.SIGKILL)
                    os.waitpid(slot.child[0], 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
            if slot.view is not None:
                _isolation.remove_view(slot.view)
        if self.jobs_root:
            _isolation.remove_tree(self.jobs_root)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    config = json.loads(sock.recv(1 << 22))
    protections = _isolation.Protections()
    # No parent-death signal here: it would fire when the *thread* that started us exits.
    # The trusted side's death closes the socket, which ends the loop below.
    if config.get("namespaces", True):
        net, pid_pending = _isolation.enter_namespaces()
        protections.namespaces = net
        if pid_pending:
            child = os.fork()
            if child:  # the outer process only waits; the child is PID 1 of the new namespace
                sock.close()
                os.waitpid(child, 0)
                os._exit(0)
            _isolation.die_with_parent()
            protections.pid_namespace = os.getpid() == 1
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    worker = Worker(config, protections)
    gc.freeze()  # children then share the worker's heap instead of copying it on first touch
    views = [slot.view for slot in worker.slots if slot.view]
    sock.send(json.dumps({"protections": protections.__dict__, "views": views}).encode())
    try:
        worker.serve(sock)
    finally:
        worker.close()


if __name__ == "__main__":
    main()
