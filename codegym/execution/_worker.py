"""The sandbox worker ("zygote") and the untrusted child it forks for each program.

Started by :class:`codegym.execution.Sandbox` as ``python -I _worker.py`` (stdlib only, imported by
path). The worker never holds expected outputs or test code that decides a verdict: it only
receives programs and the calls to make, forks a restricted child per program, relays the
child's plain-data answers to the trusted side and cleans up after it.

Protocol with the trusted side, on this process's stdin/stdout: 4-byte big-endian length, JSON.
  -> {"op": "job", "program", "requests", "interactive", "timeout_s", "memory_mb", "output_limit"}
  <- {"lines": [...], "alive": bool, ... final fields when not alive}
  -> {"op": "call", "line"} (interactive jobs only)     <- same reply shape
  -> {"op": "end"}                                      <- final fields
Child lines (JSON, one per answer): {"compiled"}, {"i", "ok", "value"|"error"}, {"done"}.
"""

from __future__ import annotations

import fcntl
import gc
import io
import json
import os
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _codec  # noqa: E402
import _isolation  # noqa: E402

EXIT_OUTPUT_LIMIT = 120
MAX_LINE = 16 << 20


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _send(fd: int, message: dict) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    payload = struct.pack(">I", len(data)) + data
    while payload:
        payload = payload[os.write(fd, payload):]


def _receive(fd: int) -> dict:
    (size,) = struct.unpack(">I", _read_exact(fd, 4))
    return json.loads(_read_exact(fd, size))


# ----------------------------------------------------------------------------------------------
# The untrusted child: everything below ``_child_main`` runs after the restrictions apply.


class _CappedStdout(io.StringIO):
    """Captured stdout of a stdio test; exceeding the cap ends the child with a known code."""

    def __init__(self, limit: int):
        super().__init__()
        self._left = limit

    def write(self, text: str) -> int:
        self._left -= len(text)
        if self._left < 0:
            os._exit(EXIT_OUTPUT_LIMIT)
        return super().write(text)


def _answer(out_fd: int, message: dict) -> None:
    data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
    while data:
        data = data[os.write(out_fd, data):]


def _error_text(err: BaseException) -> str:
    return ("%s: %s" % (type(err).__name__, err))[:300]


def _evaluate(request: dict, namespace: dict, program_code, output_limit: int):
    if "expr" in request:
        return eval(compile(request["expr"], "<test>", "eval"), namespace)
    if "call" in request:
        args = _codec.from_wire(request["args"])
        return namespace[request["call"]](*args)
    stdin, stdout = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = io.StringIO(request["stdin"]), _CappedStdout(output_limit)
    try:
        try:
            exec(program_code, {"__name__": "__main__", "__builtins__": __builtins__})
        except SystemExit as stop:
            if stop.code not in (None, 0):
                raise
        return sys.stdout.getvalue()
    finally:
        sys.stdin, sys.stdout = stdin, stdout


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
    if not job["interactive"]:
        return
    reader = os.fdopen(cmd_fd, "rb", buffering=0)
    index = len(job["requests"])
    for raw in iter(reader.readline, b""):
        _answer(out_fd, _run_one(index, json.loads(raw), namespace, code, job["output_limit"]))
        index += 1


def _run_one(index: int, request: dict, namespace: dict, code, output_limit: int) -> dict:
    try:
        value = _evaluate(request, namespace, code, output_limit)
    except BaseException as err:  # noqa: BLE001
        return {"i": index, "ok": False, "error": _error_text(err), "memory": isinstance(err, MemoryError),
                "forbidden": isinstance(err, PermissionError)}
    try:
        return {"i": index, "ok": True, "value": _codec.encode(value)}
    except _codec.UnencodableError as err:
        return {"i": index, "ok": False, "error": "UnencodableResult: %s" % err, "unencodable": True}


def _child_main(job: dict, cmd_fd: int, out_fd: int, stdio_fd: int, workdir: str, worker) -> None:
    os.setsid()
    # Move the descriptors the child keeps to 3..6 and close every other one (close_range).
    ruleset = worker.landlock.fd if worker.landlock is not None else -1
    kept = [fcntl.fcntl(fd, fcntl.F_DUPFD, 1000) if fd >= 0 else -1
            for fd in (cmd_fd, out_fd, stdio_fd, ruleset)]
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(stdio_fd, 1)
    os.dup2(stdio_fd, 2)
    for target, fd in enumerate(kept, start=3):
        if fd >= 0:
            os.dup2(fd, target)
    os.closerange(3 + len(kept), 1 << 16)
    cmd_fd, out_fd = 3, 4
    if worker.landlock is not None:
        worker.landlock.fd = 6
    _isolation.apply_rlimits(cpu_s=int(job["timeout_s"]) + 1, memory_mb=job["memory_mb"],
                             file_mb=16, open_files=64)
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update({"HOME": workdir, "TMPDIR": workdir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    tempfile.tempdir = workdir
    if worker.landlock is not None:
        worker.landlock.restrict_self()
        os.close(worker.landlock.fd)
    if worker.drop_uid:
        _isolation.drop_privileges(worker.keep_read_search)
    if worker.seccomp is not None:
        worker.seccomp.load()
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    sys.stderr = sys.stdout
    _serve(job, cmd_fd, out_fd)


# ----------------------------------------------------------------------------------------------
# The trusted worker.


class Worker:
    def __init__(self, config: dict, protections: _isolation.Protections):
        self.protections = protections
        self.jobs_root = tempfile.mkdtemp(prefix="codegym-jobs-")
        os.chmod(self.jobs_root, 0o711)
        self.drop_uid = os.geteuid() == 0 and config.get("drop_uid", True)
        self.landlock = None
        self.seccomp = None
        self.protections.uid_drop = self.drop_uid
        read_paths = _isolation.stdlib_read_paths(tuple(config.get("allowed_packages", ())))
        read_paths += ["/dev/urandom", "/dev/zero", "/dev/null"]
        try:
            self.landlock = _isolation.LandlockRuleset.build(read_paths, [self.jobs_root, "/dev/null"])
            self.protections.landlock_abi = self.landlock.abi
            self.protections.landlock_net = self.landlock.net
            self.protections.landlock_scoped = self.landlock.scoped
        except OSError as err:
            self.protections.notes.append("landlock unavailable: %s" % err)
        program = bytes.fromhex(config.get("seccomp_bpf") or "")
        self.seccomp = _isolation.SeccompFilter(program) if program else None
        self.protections.seccomp = self.seccomp is not None
        if self.seccomp is None:
            self.protections.notes.append("seccomp unavailable (pyseccomp or libseccomp missing)")
        self.keep_read_search = False
        if self.drop_uid and not _isolation.tree_readable_by_others(read_paths[:1]):
            # The stdlib lives where uid 65534 cannot read. Keeping CAP_DAC_READ_SEARCH is only
            # safe with Landlock (reads stay on the allow-list) and seccomp (no open_by_handle_at).
            self.keep_read_search = self.landlock is not None and self.seccomp is not None
            self.drop_uid = self.keep_read_search
            self.protections.uid_drop = self.drop_uid
            self.protections.notes.append(
                "the standard library is not readable by other users: "
                + ("the child keeps CAP_DAC_READ_SEARCH, limited by Landlock" if self.drop_uid
                   else "the child keeps running as root"))
        for module in config.get("preload", ()):
            try:
                __import__(module)
            except ImportError as err:
                self.protections.notes.append("preload %s failed: %s" % (module, err))

    def run_job(self, job: dict, inbox: int, outbox: int) -> None:
        started = time.monotonic()
        workdir = tempfile.mkdtemp(dir=self.jobs_root)
        if self.drop_uid:
            os.chown(workdir, _isolation.NOBODY_UID, _isolation.NOBODY_UID)
        cmd_read, cmd_write = os.pipe()
        out_read, out_write = os.pipe()
        stdio_read, stdio_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(cmd_write)
                os.close(out_read)
                os.close(stdio_read)
                _child_main(job, cmd_read, out_write, stdio_write, workdir, self)
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        for fd in (cmd_read, out_write, stdio_write):
            os.close(fd)
        session = _ChildSession(pid, out_read, stdio_read, cmd_write, started + job["timeout_s"],
                                job["output_limit"])
        reply = None
        try:
            # Non-interactive jobs are read to the child's exit, so that any line forged on the
            # result channel shows up as a duplicate answer on the trusted side.
            reply = session.collect("done" if job["interactive"] else "exit")
            while job["interactive"] and reply["alive"]:
                _send(outbox, reply)
                command = _receive(inbox)
                if command["op"] == "end":
                    break
                session.send_line(command["line"])
                reply = session.collect("answer")
        finally:
            final = session.finish()
            shutil.rmtree(workdir, ignore_errors=True)
        if not reply["alive"]:
            final["lines"] = reply["lines"] + final["lines"]
        final["wall_s"] = time.monotonic() - started
        _send(outbox, final)
        self.reap_orphans()

    def reap_orphans(self) -> None:
        if self.protections.pid_namespace:
            try:
                os.kill(-1, signal.SIGKILL)  # as PID 1: every other process in our namespace
            except ProcessLookupError:
                pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


class _ChildSession:
    """Reads one child's answers and output under a deadline and byte caps."""

    def __init__(self, pid, out_fd, stdio_fd, cmd_fd, deadline, output_limit):
        self.pid, self.out_fd, self.stdio_fd, self.cmd_fd = pid, out_fd, stdio_fd, cmd_fd
        self.deadline, self.output_limit = deadline, output_limit
        self.buffer = b""
        self.stdio_bytes = 0
        self.stdio_tail = b""
        self.timed_out = self.overflow = False
        self.status = None

    def send_line(self, line: str) -> None:
        try:
            os.write(self.cmd_fd, line.encode() + b"\n")
        except OSError:
            pass

    def _pop_lines(self) -> list[str]:
        *complete, self.buffer = self.buffer.split(b"\n")
        return [raw.decode("utf-8", "replace") for raw in complete]

    def collect(self, until: str) -> dict:
        """Read answer lines until a {"done"} line ("done"), one line ("answer") or the child's
        exit ("exit"); death, the deadline or an output overflow end the wait early."""
        lines: list[str] = []
        open_fds = [self.out_fd, self.stdio_fd]
        while self.status is None:
            lines += self._pop_lines()
            if until == "answer" and lines:
                return {"lines": lines, "alive": True}
            if until == "done" and any(line.startswith('{"done"') for line in lines):
                return {"lines": lines, "alive": True}
            if len(self.buffer) > MAX_LINE:
                self.overflow = True
                self._kill()
                break
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.timed_out = True
                self._kill()
                break
            if not open_fds:
                self._wait()
                break
            ready, _, _ = select.select(open_fds, [], [], left)
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    open_fds.remove(fd)
                elif fd == self.stdio_fd:
                    self._note_output(chunk)
                else:
                    self.buffer += chunk
        reply = self.finish()
        reply["lines"] = lines + reply["lines"]
        return reply

    def _note_output(self, chunk: bytes) -> None:
        self.stdio_bytes += len(chunk)
        self.stdio_tail = (self.stdio_tail + chunk)[-2000:]
        if self.stdio_bytes > self.output_limit:
            self.overflow = True
            self._kill()

    def _kill(self) -> None:
        for target in (-self.pid, self.pid):
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._wait()

    def _wait(self) -> None:
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)

    def finish(self) -> dict:
        """Kill the child if still running, drain what it wrote, close the pipes, report."""
        reaped = self.status is None  # still running at the end: its exit status is our kill
        if reaped:
            self._kill()
        if self.out_fd >= 0:
            os.set_blocking(self.out_fd, False)  # a surviving grandchild may hold the pipe open
            while len(self.buffer) <= MAX_LINE:
                try:
                    chunk = os.read(self.out_fd, 1 << 16)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                self.buffer += chunk
        lines = self._pop_lines() + ([self.buffer.decode("utf-8", "replace")] if self.buffer else [])
        self.buffer = b""
        for fd in (self.out_fd, self.stdio_fd, self.cmd_fd):
            if fd >= 0:
                os.close(fd)
        self.out_fd = self.stdio_fd = self.cmd_fd = -1
        status = self.status
        return {
            "alive": False,
            "lines": lines,
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) and not reaped else None,
            "timed_out": self.timed_out,
            "output_overflow": self.overflow or (os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_OUTPUT_LIMIT),
            "output_tail": self.stdio_tail.decode("utf-8", "replace")[-500:],
        }


def main() -> None:
    inbox = os.dup(0)
    outbox = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # stray prints from here on go to stderr, never into the protocol
    config = _receive(inbox)
    sys.path.extend(config.get("site_paths", []))
    protections = _isolation.Protections()
    # No parent-death signal here: it would fire when the *thread* that started us exits.
    # The trusted side's death closes our stdin, which ends the loop below.
    if config.get("namespaces", True):
        net, pid_pending = _isolation.enter_namespaces()
        protections.namespaces = net
        if pid_pending:
            child = os.fork()
            if child:  # the outer process only waits; the child is PID 1 of the new namespace
                os.close(inbox)
                os.close(outbox)
                _, status = os.waitpid(child, 0)
                os._exit(0)
            _isolation.die_with_parent()
            protections.pid_namespace = os.getpid() == 1
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    worker = Worker(config, protections)
    gc.freeze()  # children then share the worker's heap instead of copying it on first touch
    _send(outbox, {"protections": protections.__dict__})
    try:
        while True:
            try:
                job = _receive(inbox)
            except EOFError:
                break
            worker.run_job(job, inbox, outbox)
    finally:
        shutil.rmtree(worker.jobs_root, ignore_errors=True)


if __name__ == "__main__":
    main()
