"""Attacks on the sandbox by failure class: no job learns from another, nothing reaches the host,
the trusted side stays bounded, verdicts equal real Python's.

Every attack asserts the same four things: the program does not pass; the caller is answered
within ``timeout_s + 1 s``; nothing is left behind; the next job in the same worker is unaffected.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

import psutil
import pytest

from codegym.execution import Sandbox, TestCase

TIMEOUT_S = 2.0
ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = [TestCase.call("add", [1, 2], 3), TestCase.from_assert("assert add(2, 2) == 4")]


@pytest.fixture(scope="module")
def one_worker():
    """One worker, so consecutive jobs run in the same worker, back to back."""
    with Sandbox(timeout_s=TIMEOUT_S, memory_mb=256, workers=1, cache_size=0) as sandbox:
        yield sandbox


def _host_ipc() -> tuple[str, ...]:
    lines = []
    for kind in ("shm", "msg", "sem"):
        try:
            with open("/proc/sysvipc/%s" % kind) as fh:
                lines += fh.read().splitlines()[1:]
        except OSError:
            pass
    return tuple(lines)


def _attack(sandbox: Sandbox, program: str, tests=ADD_TESTS, statuses: set[str] | None = None):
    """Run one attack and check the four guarantees; returns the result."""
    ipc_before = _host_ipc()
    started = time.monotonic()
    result = sandbox.run(program, tests)
    elapsed = time.monotonic() - started
    assert not result.passed, result
    assert statuses is None or result.status in statuses, (result.status, result.tests)
    assert elapsed < sandbox.wall_cap(sandbox.timeout_s) + 1.0, elapsed
    for worker in sandbox._all:
        assert worker.proc.poll() is None
        alive = [p for p in psutil.Process(worker.proc.pid).children(recursive=True)
                 if p.status() != psutil.STATUS_ZOMBIE]
        assert len(alive) <= 3, [p.cmdline() for p in alive]  # the zygote and its two ready children
    assert _host_ipc() == ipc_before
    assert sandbox.run(ADD, ADD_TESTS).passed  # the next job in the same worker is unaffected
    return result


# -- 1. cross-job leakage ------------------------------------------------------------------------

# Searches its own address space (safely: write(2) from an unmapped address fails with EFAULT
# instead of crashing) and every Python object for a token, given XOR-masked so that the search
# itself never puts the plain token in memory.
MEMORY_SEARCH = """
import ctypes, gc, os
MASKED = bytes.fromhex(%r)
UNMASK = bytes(b ^ 0x5A for b in range(256))
libc = ctypes.CDLL(None, use_errno=True)
libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
libc.sbrk.restype = ctypes.c_void_p
r, w = os.pipe()
os.set_blocking(r, False)
os.set_blocking(w, False)

def readable(address, size):
    written = libc.write(w, address, size)
    data = os.read(r, 1 << 17) if written > 0 else b""  # always drain, even a partial copy
    return data if written == size else b""

def hits():
    found = 0
    for obj in gc.get_objects():
        text = obj if isinstance(obj, bytes) else obj.encode(errors="ignore") if isinstance(obj, str) else b""
        if MASKED in text.translate(UNMASK):
            found += 1
    starts = sorted({id(o) >> 20 for o in gc.get_objects()})
    brk = (libc.sbrk(0) or 0) >> 20
    windows = sorted(set(starts) | set(range(max(brk - 64, 0), brk + 1)))
    for mib in windows:
        for page in range(mib << 20, (mib + 1) << 20, 1 << 16):
            chunk = readable(page, 1 << 16)
            if not chunk:
                chunk = b"".join(readable(p, 4096) for p in range(page, page + (1 << 16), 4096))
            if chunk and MASKED in chunk.translate(UNMASK):
                found += 1
    return found

def add(a, b):
    return hits()
"""

# Leaves the answer everywhere a later job might look.
PLANT = """
import ctypes, os, socket
SECRET = %r
libc = ctypes.CDLL(None, use_errno=True)
planted = []
def attempt(name, fn):
    try:
        fn(); planted.append(name)
    except Exception:
        pass
attempt("file", lambda: open("/tmp/answer", "w").write(SECRET))
attempt("cwd", lambda: open("answer", "w").write(SECRET))
attempt("xattr", lambda: os.setxattr(".", "user.answer", SECRET.encode()))
def shm():
    key = libc.shmget(0x5EC4E7, 4096, 0o1666)
    if key < 0: raise OSError(ctypes.get_errno(), "shmget")
attempt("shm", shm)
def mq():
    if libc.mq_open(b"/answer", 0o100 | 2, 0o666, None) < 0: raise OSError(ctypes.get_errno(), "mq_open")
attempt("mq", mq)
_keep = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
attempt("abstract", lambda: _keep.bind(b"\\0codegym-answer"))
def add(a, b):
    return a + b
"""

# Looks everywhere PLANT leaves things; reports what it found.
SEEK = """
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
found = []
def look(name, fn):
    try:
        if fn(): found.append(name)
    except Exception:
        pass
look("file", lambda: open("/tmp/answer").read())
look("cwd", lambda: open("answer").read())
look("listing", lambda: os.listdir("/tmp") or os.listdir("."))
look("xattr", lambda: os.getxattr(".", "user.answer"))
look("shm", lambda: libc.shmget(0x5EC4E7, 0, 0) >= 0)
look("mq", lambda: libc.mq_open(b"/answer", 0) >= 0)
def abstract():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(b"\\0codegym-answer")
    return True
look("abstract", abstract)
def add(a, b):
    return found
"""


def _mask(token: str) -> str:
    return bytes(b ^ 0x5A for b in token.encode()).hex()


def _secret_job(token: str, kind: str) -> tuple[str, list[TestCase]]:
    """A correct job whose program, requests and answers all carry ``token``, as each test kind."""
    program = "def secret(key):\n    return key + %r\n" % token[len(token) // 2:]
    head, tail = token[:len(token) // 2], token[len(token) // 2:]
    if kind == "call":
        return program, [TestCase.call("secret", [head], token)]
    if kind == "assert":
        return program, [TestCase.from_assert("assert secret(%r) == %r" % (head, token))]
    if kind == "check":
        return program, [TestCase.from_check("def check(candidate):\n    assert candidate(%r) == %r\n" % (head, token),
                                             "secret")]
    return "print(input() + %r)\n" % tail, [TestCase.stdio(head + "\n", token + "\n")]


def test_a_job_never_finds_the_previous_jobs_program_or_answers(one_worker):
    """Hundreds of (correct job, then a wrong job searching its memory for the first job's
    program, requests and answers) pairs in one worker, every test kind."""
    rounds = int(os.environ.get("CODEGYM_CROSS_JOB_ROUNDS", "200"))
    kinds = ["call", "assert", "check", "stdio"]
    for round_ in range(rounds):
        token = "answer-%s" % uuid.uuid4().hex
        program, tests = _secret_job(token, kinds[round_ % 4])
        assert one_worker.run(program, tests).passed
        searcher = one_worker.run(MEMORY_SEARCH % _mask(token), [TestCase.call("add", [0, 0], 0)])
        assert searcher.passed, (round_, kinds[round_ % 4], searcher.tests[0].message)  # hits() == 0
        if round_ % 50 == 0:  # the search itself works: it finds a token in its own heap
            probe = MEMORY_SEARCH % _mask(token) + "KEEP = %r\n" % token
            assert not one_worker.run(probe, [TestCase.call("add", [0, 0], 0)]).passed


def test_kernel_objects_and_files_do_not_outlive_a_job(one_worker, tmp_path):
    secret = "answer-%s" % uuid.uuid4().hex
    for _ in range(20):
        assert one_worker.run(PLANT % secret, ADD_TESTS).passed
        seeker = one_worker.run(SEEK, [TestCase.call("add", [1, 2], [])])
        assert seeker.passed, seeker.tests[0].message
    with Sandbox(timeout_s=TIMEOUT_S, workers=1, cache_size=0) as other:  # nor in another Sandbox
        seeker = other.run(SEEK, [TestCase.call("add", [1, 2], [])])
        assert seeker.passed, seeker.tests[0].message


def test_hidden_outputs_never_reach_the_next_jobs_feedback(one_worker):
    hidden = TestCase.call("add", [123456789, 987654321], 1111111110)
    assert one_worker.run(ADD, [hidden]).passed
    wrong = one_worker.run("def add(a, b):\n    return 0\n", [TestCase.call("add", [1, 1], 2)])
    assert "1111111110" not in repr(wrong)


# -- 2. the trusted side stays bounded -----------------------------------------------------------

FORGE = """
import os, time
def add(a, b):
    os.write(4, %s)
    os._exit(0)
"""


@pytest.mark.parametrize("container", ["S", "D", "L", "T", "F"])
def test_colliding_hashes_decode_in_bounded_time(one_worker, container):
    modulus = (1 << 61) - 1
    members = ",".join('["I","%x"]' % (modulus * k + 7) for k in range(1, 60001))
    if container == "D":
        members = ",".join('[["I","%x"],0]' % (modulus * k + 7) for k in range(1, 60001))
    line = '{"compiled":true}\\n{"i":0,"ok":true,"value":["%s",%s]}\\n' % (container, members)
    program = "def add(a, b):\n    import os\n    os.write(4, %r.encode())\n    os._exit(0)\n" % line
    tests = [TestCase.from_assert("assert len(set(add(1, 2))) == 60000")]
    _attack(one_worker, program, tests)


def test_result_channel_counts_against_output_limit(one_worker):
    me = psutil.Process()
    rss_before = me.memory_info().rss
    program = ("import os\ndef add(a, b):\n    line = b'{\"x\":\"' + b'y' * 1000000 + b'\"}\\n'\n"
               "    for _ in range(100):\n        os.write(4, line)\n    return 3\n")
    _attack(one_worker, program, statuses={"output_limit"})
    assert me.memory_info().rss - rss_before < 64 << 20


@pytest.mark.parametrize("program", [
    "import os, time\ndef add(a, b):\n    for fd in (1, 2, 3, 4): os.close(fd)\n    time.sleep(100)\n",
    "import os, time\nfor fd in (1, 2, 3, 4): os.close(fd)\ntime.sleep(100)\n",
    "import os, time, threading\ndef add(a, b):\n    os.close(4)\n    threading.Thread(target=time.sleep, args=(100,)).start()\n"
    "    return 3\n",
])
def test_closed_pipes_and_sleep_still_answer_in_time(one_worker, program):
    _attack(one_worker, program, statuses={"timeout_wall", "runtime_error"})


def test_deep_tree_and_full_disk_are_cleaned_up(one_worker):
    # Landlock checks each mkdir against every folder above it: 4,095 levels (the inode cap) take ~1 s.
    deep = ("import os\ndef add(a, b):\n    try:\n        while True:\n            os.mkdir('d'); os.chdir('d')\n"
            "    except OSError:\n        return -1\n")
    _attack(one_worker, deep, statuses={"wrong_answer", "timeout_cpu"})
    full = ("def add(a, b):\n    with open('big', 'wb') as fh:\n        for _ in range(1000): fh.write(b'x' * (1 << 20))\n"
            "    return a + b\n")
    _attack(one_worker, full, statuses={"runtime_error"})
    left = one_worker.run("import os\ndef add(a, b):\n    return os.listdir('.')\n", [TestCase.call("add", [1, 2], [])])
    assert left.passed, left.tests[0].message


def test_nothing_the_program_does_makes_run_raise(one_worker):
    programs = [
        "import os\nos.write(4, b'\\xff\\xfe not json\\n')\ndef add(a, b): return 3\n",
        "import os\nos.write(4, b'[' * 100000 + b'\\n')\ndef add(a, b): return 3\n",
        "import os\ndef add(a, b):\n    os.write(4, b'{\"i\":0,\"ok\":true,\"value\":[\"X\",\"nan\"]}\\n')\n    os._exit(0)\n",
        "import os\ndef add(a, b):\n    os.write(4, b'{\"compiled\":true}' * 10)\n    return 3\n",
        "def add(a, b):\n    raise SystemExit(0)\n",
        "class E(Exception):\n    def __str__(self): raise RuntimeError\ndef add(a, b):\n    raise E\n",
        "class E(BaseException):\n    pass\ndef add(a, b):\n    raise E\n",
    ]
    for program in programs:
        _attack(one_worker, program)


# -- 3. nothing outside the job is reachable or observable ---------------------------------------

def test_host_unix_sockets_are_unreachable(one_worker, tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    path = str(private / "sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(5)
    server.setblocking(False)
    try:
        program = ("import socket\ndef add(a, b):\n    s = socket.socket(socket.AF_UNIX)\n    s.connect(%r)\n"
                   "    return a + b\n" % path)
        _attack(one_worker, program, statuses={"runtime_error", "forbidden"})
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_host_files_and_metadata_are_invisible(one_worker, tmp_path):
    # The root holds only the top folders of what the view exposes (wherever this
    # interpreter lives on the host), the devices and /tmp.
    view = one_worker._config["view"]
    exposed = sorted({path.split("/")[1] for path in view["read"] + view["devices"]} | {"tmp"})
    probes = [
        "os.stat(%r)" % str(tmp_path),
        "os.listdir('/')[0] == 'nonexistent' or [p for p in os.listdir('/') if p not in %r]" % (exposed,),
        "{'proc', 'sys', 'run', 'boot', 'srv', 'mnt'} & set(os.listdir('/'))",
        "open('/etc/hostname').read()",
        "os.listdir('/proc')",
        "os.listdir('/sys')",
        "os.listdir('/dev')[5]",
        "open('/etc/passwd').read()",
    ]
    for probe in probes:
        program = "import os\ndef add(a, b):\n    if %s: return a + b\n    return 0\n" % probe
        _attack(one_worker, program)


@pytest.mark.parametrize("program", [
    "import os\nfd = os.memfd_create('x')\ndef add(a, b): return a + b\n",
    "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.shmget(0, 1 << 30, 0o1600) >= 0\n"
    "def add(a, b): return a + b\n",
    "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.inotify_init() >= 0\n"
    "def add(a, b): return a + b\n",
    "import threading, time\nts = [threading.Thread(target=time.sleep, args=(5,)) for _ in range(500)]\n"
    "for t in ts: t.start()\ndef add(a, b): return a + b\n",
    "import mmap\nm = mmap.mmap(-1, 1 << 30)\nm.write(b'x' * (1 << 30))\ndef add(a, b): return a + b\n",
    "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\nx = bytearray(1 << 31)\n"
    "def add(a, b): return a + b\n",
])
def test_every_way_to_hold_a_resource_is_bounded(one_worker, program):
    _attack(one_worker, program, statuses={"runtime_error", "forbidden", "memory_limit"})


def test_threads_are_capped_per_job():
    with Sandbox(timeout_s=TIMEOUT_S, workers=1, cache_size=0, max_threads=8) as sandbox:
        program = ("import threading, time\ndef add(a, b):\n    n = 0\n    try:\n        for _ in range(100):\n"
                   "            threading.Thread(target=time.sleep, args=(2,), daemon=True).start(); n += 1\n"
                   "    except RuntimeError:\n        pass\n    return n\n")
        result = sandbox.run(program, [TestCase.call("add", [1, 2], 0)])
        assert 0 < int(result.tests[0].message.split("got ")[1].split(",")[0]) < 8


# -- 4. verdicts equal plain Python's --------------------------------------------------------------

PRIME = "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))\n"
NOT_PRIME = "def is_prime(n):\n    return n % 2 == 0\n"


@pytest.mark.parametrize("source", [
    "assert all(is_prime(p) for p in [2, 3, 5, 7])",
    "assert [is_prime(n) for n in range(5)] == [False, False, True, True, False]",
    "assert not any(is_prime(n) for n in (4, 6, 8))",
    "assert (lambda k: is_prime(k))(13)",
    "assert sum(1 for n in range(20) if is_prime(n)) == 8",
    "assert is_prime(2) or is_prime(undefined_name)",
])
def test_asserts_binding_their_own_names(one_worker, source):
    assert one_worker.run(PRIME, [TestCase.from_assert(source)]).passed
    if "undefined" not in source:
        assert not one_worker.run(NOT_PRIME, [TestCase.from_assert(source)]).passed


def test_program_globals_used_as_values_in_asserts(one_worker):
    program = "DATA = [1, 2, 3]\ndef double(x):\n    return 2 * x\n"
    assert one_worker.run(program, [TestCase.from_assert("assert [double(x) for x in DATA] == [2, 4, 6]")]).passed


CHECKS = {
    "expects_exception": ("def check(candidate):\n    try:\n        candidate(-1)\n    except ValueError:\n"
                          "        return\n    raise AssertionError('no ValueError')\n",
                          "def f(x):\n    if x < 0: raise ValueError('negative')\n    return x\n",
                          "def f(x):\n    return x\n"),
    "unencodable_is_not_an_exception": ("def check(candidate):\n    try:\n        candidate(1)\n    except Exception:\n"
                                        "        return\n    raise AssertionError('no exception')\n",
                                        "def f(x):\n    raise TypeError\n",
                                        "def f(x):\n    return object()\n"),
    "mutates_in_place": ("def check(candidate):\n    xs = [3, 1, 2]\n    candidate(xs)\n    assert xs == [1, 2, 3]\n",
                         "def f(xs):\n    xs.sort()\n", "def f(xs):\n    return sorted(xs)\n"),
    "must_not_mutate": ("def check(candidate):\n    xs = [3, 1, 2]\n    assert candidate(xs) == [1, 2, 3]\n"
                        "    assert xs == [3, 1, 2]\n",
                        "def f(xs):\n    return sorted(xs)\n", "def f(xs):\n    xs.sort()\n    return xs\n"),
    "identity": ("def check(candidate):\n    xs = [1]\n    assert candidate(xs) is xs\n",
                 "def f(xs):\n    xs.append(2)\n    return xs\n", "def f(xs):\n    return list(xs) + [2]\n"),
    "stateful_repeated_call": ("def check(candidate):\n    for expected in (1, 2, 3):\n        assert candidate(0) == expected\n",
                               "n = 0\ndef f(x):\n    global n\n    n += 1\n    return n\n",
                               "def f(x):\n    return 1\n"),
    "stateful_literal_calls": ("def check(candidate):\n    assert candidate(0) == 1\n    assert candidate(0) == 2\n",
                               "n = 0\ndef f(x):\n    global n\n    n += 1\n    return n\n",
                               "def f(x):\n    return 1\n"),
    "keyword_call": ("def check(candidate):\n    assert candidate(2, power=3) == 8\n",
                     "def f(x, power=2):\n    return x ** power\n", "def f(x, power=2):\n    return x * power\n"),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_check_proxy_behaves_like_a_real_call(one_worker, name):
    check, right, wrong = CHECKS[name]
    test = TestCase.from_check(check, "f")
    result = one_worker.run(right, [test])
    assert result.passed, result.tests
    assert not one_worker.run(wrong, [test]).passed


def test_huge_correct_answers_pass(one_worker):
    program = "def f():\n    return 2 ** 20000\n"
    assert one_worker.run(program, [TestCase.call("f", [], 2 ** 20000)]).passed
    assert one_worker.run(program, [TestCase.from_assert("assert f() == 2 ** 20000")]).passed
    wrong = one_worker.run(program, [TestCase.call("f", [], 2 ** 20000 + 1)])
    assert not wrong.passed and "bits" in wrong.tests[0].message


# -- found by the attack review ------------------------------------------------------------------

@pytest.mark.parametrize(("program", "source"), [
    ("def similar(a, b):\n    return 'garbage'\nset = lambda *a: 0\n", "assert set(similar((3, 4), (4, 5))) == set((4,))"),
    ("def area(r):\n    return 0\ndef round(x, n=0):\n    return 3.14\n", "assert round(area(1), 2) == 3.14"),
    ("def f(x):\n    return 9\nabs = lambda x: 0\n", "assert abs(f(2) - 0.5) < 1e-9"),
    ("import builtins\nbuiltins.bin = lambda n: '0bWRONG'\ndef to_bin(n):\n    return 'WRONG'\n",
     "assert to_bin(5) == bin(5)[2:]"),
    ("import numpy as np\ndef f():\n    return np.array([1, 2])\n", "assert f() == [1, 2]"),
    ("class I(int):\n    pass\ndef f():\n    return I(3)\n", "assert type(f()) == int"),
    ("class L(list):\n    pass\ndef f():\n    return L([1, 2])\n", "assert type(f()) is list"),
])
def test_redefined_builtins_and_foreign_types_do_not_pass(one_worker, program, source):
    _attack(one_worker, program, [TestCase.from_assert(source, entry_point="f")])


def test_a_job_cannot_signal_the_next_through_pids_or_scheduling(one_worker):
    sender = ("import os, threading\nfor _ in range(%d):\n    t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
              "try:\n    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nexcept OSError:\n    pass\n"
              "def f():\n    return 1\n")
    receiver = ("import os, threading\ndef f():\n    ids = []\n"
                "    t = threading.Thread(target=lambda: ids.append(threading.get_native_id()))\n"
                "    t.start(); t.join()\n    return [os.getpid(), ids[0], os.sched_getscheduler(0)]\n")
    # A sender that keeps starting threads until it is killed, racing whatever the worker forks.
    racer = ("import threading\ndef churn():\n    while True:\n        t = threading.Thread(target=lambda: None)\n"
             "        t.start(); t.join()\nthreading.Thread(target=churn, daemon=True).start()\ndef f():\n    return 1\n")
    seen = set()
    for program in [sender % threads for threads in (0, 7, 300, 1200)] + [racer] * 8:
        assert one_worker.run(program, [TestCase.call("f", [], 1)]).passed
        result = one_worker.run(receiver, [TestCase.call("f", [], [])])
        seen.add(result.tests[0].output)
    assert len(seen) == 1, seen  # the next job sees the same pids and policy whatever came before


def test_host_identity_and_load_are_hidden(one_worker):
    program = ("import os, socket\ndef f():\n    out = [socket.gethostname()]\n"
               "    for probe in (os.getloadavg, lambda: os.sysconf('SC_PHYS_PAGES')):\n"
               "        try:\n            out.append(probe())\n        except (OSError, ValueError):\n"
               "            out.append(None)\n    return out\n")
    result = one_worker.run(program, [TestCase.call("f", [], [])])
    assert result.tests[0].output.startswith('["L","codegym",null'), result.tests[0].output


def test_rerun_keeps_the_first_deadline(one_worker):
    # The source lists candidate(2) first but calls candidate(1) first: the prefetch is wrong, the
    # program reruns, and the rerun must not get a wall deadline of its own.
    check = ("def check(candidate):\n    def later():\n        return candidate(2) == 2\n"
             "    assert candidate(1) == 1\n    assert later()\n")
    program = "import time\ntime.sleep(%.2f)\ndef f(x):\n    return x\n" % (one_worker.wall_cap(TIMEOUT_S) * 0.6)
    _attack(one_worker, program, [TestCase.from_check(check, "f")], statuses={"timeout_wall"})


def test_nested_large_tuples_decode_in_bounded_time(one_worker):
    program = ("import os\ndef add(a, b):\n    x = tuple(range(20000))\n    for _ in range(60):\n"
               "        x = (x,) + tuple(range(70))\n    return x\n")
    _attack(one_worker, program, [TestCase.from_assert("assert len(set(add(1, 2))) == 0")])


def test_pipe_buffers_cannot_grow(one_worker):
    program = ("import fcntl, os\nr, w = os.pipe()\nfcntl.fcntl(w, 1031, 1 << 20)\ndef add(a, b):\n    return a + b\n")
    _attack(one_worker, program, statuses={"runtime_error", "forbidden"})


@pytest.mark.parametrize(("program", "tests"), [
    ("def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, n))\n",
     [TestCase.from_assert("assert all(map(is_prime, [2, 3, 5]))")]),
    ("class Solution:\n    def twice(self, x):\n        return 2 * x\n",
     [TestCase.from_assert("assert Solution().twice(3) == 6")]),
    ("def f(n):\n    return (i * i for i in range(n))\n", [TestCase.from_assert("assert list(f(3)) == [0, 1, 4]")]),
    ("def f(n):\n    return range(n)\n", [TestCase.from_assert("assert f(5)[2] == 2 and len(f(5)) == 5")]),
    ("def f(b):\n    b[0] = 65\n    return bytes(b)\n", [TestCase.from_assert("assert f(bytearray(b'xy')) == b'Ay'")]),
    ("import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))\n", [TestCase.stdio("1 2\n", "3\n")]),
    ("import threading\ndef main():\n    print(sum(map(int, input().split())))\nthreading.Thread(target=main).start()\n",
     [TestCase.stdio("1 2\n", "3\n")]),
    ("print(sum(map(int, input().split())))\nexit()\n", [TestCase.stdio("1 2\n", "3\n")]),
])
def test_honest_programs_found_failing_now_pass(one_worker, program, tests):
    result = one_worker.run(program, tests)
    assert result.passed, result.tests


def test_without_namespaces_the_fallback_still_runs_and_restricts():
    """The path for machines with no mount namespaces: no view, the allow-list read in place."""
    with Sandbox(timeout_s=TIMEOUT_S, workers=1, cache_size=0, namespaces=False) as sandbox:
        assert not sandbox.protections()["view"]
        numpy_program = "import numpy\ndef add(a, b):\n    return int(numpy.add(a, b))\n"
        assert sandbox.run(numpy_program, ADD_TESTS).passed
        for probe in ("open('/etc/passwd').read()", "open(%r).read()" % os.path.abspath(__file__), "import torch"):
            assert not sandbox.run(probe + "\n" + ADD, ADD_TESTS).passed
        writer = "def f():\n    open('x', 'w').write('1')\n    return open('x').read()  # %d\n"
        assert all(sandbox.run(writer % i, [TestCase.call("f", [], "1")]).passed for i in range(4))  # fresh folders


# -- found by the second attack review -----------------------------------------------------------

COUNTER = "n = 0\ndef f(x):\n    global n\n    n += 1\n    return n\n"


def _check(body: str) -> TestCase:
    return TestCase.from_check("def check(candidate):\n" + "".join("    %s\n" % line for line in body.splitlines()), "f")


@pytest.mark.parametrize("tests", [
    [_check("y = 1\nassert candidate(y) == 2"), TestCase.call("f", [0], 1)],
    [TestCase.from_assert("assert all(f(x) == x + 1 for x in [1, 2])"), TestCase.from_assert("assert f(0) == 1")],
    [_check("assert candidate(1) == 1\nif False:\n    candidate(1)"), TestCase.from_assert("assert f(5) == 3")],
    [TestCase.from_assert("assert all(f(0) == 1 for _ in [1, 2, 3])")],
    [TestCase.from_assert("assert f(0) == 1"), _check("for _ in range(2):\n    assert candidate(0) == 1")],
])
def test_program_calls_run_in_plain_pythons_order(one_worker, tests):
    """A stateful program sees its calls in the order and number plain Python makes them; each of
    these passes only if calls run out of order, or once where Python makes several."""
    _attack(one_worker, COUNTER, tests)


def test_short_circuited_calls_are_not_made(one_worker):
    tests = [TestCase.from_assert("assert f(1) == 1 or f(2) == 2"), TestCase.from_assert("assert f(0) == 2")]
    assert one_worker.run(COUNTER, tests).passed


@pytest.mark.parametrize("program", ["def f(x):\n    return x\n", "def f(x):\n    return object()\n",
                                     "import os\ndef f(x):\n    os._exit(0)\n"])
def test_a_bare_except_in_a_check_cannot_swallow_the_sandboxs_signals(one_worker, program):
    check = _check("raised = False\ntry:\n    candidate(1)\nexcept:\n    raised = True\nassert raised")
    _attack(one_worker, program, [check, TestCase.from_assert("assert f(2) is not None")])


def test_huge_ranges_and_repeated_reads_stay_bounded(one_worker):
    _attack(one_worker, "def f():\n    return range(10 ** 15)\n", [TestCase.from_assert("assert sum(f()) == 0")])
    program = "def f(n):\n    return list(range(n))\n"
    _attack(one_worker, program, [TestCase.from_assert("assert all(x in f(150000) for x in range(200)) and False")])
