"""10,000 executions in a row leave nothing behind (processes, zombies, fds, temp dirs, memory)."""

from __future__ import annotations

import os

import psutil

from codegym.execution import Sandbox, TestCase

TESTS = [TestCase.call("f", [3], 9), TestCase.from_assert("assert f(2) == 4")]
PROGRAMS = [
    ("def f(x):\n    return x * x  # %d\n", True),
    ("def f(x):\n    return x + %d\n", False),
    ("def f(x):\n    raise ValueError(%d)\n", False),
    ("import os\ndef f(x):\n    os._exit(%d %% 3)\n", False),
    ("def f(x):\n    return [0] * (10 ** 10) or %d\n", False),
    ("import threading, time\nthreading.Thread(target=time.sleep, args=(5,)).start()\n"
     "def f(x):\n    return x * x  # %d\n", True),
    ("def f(x):\n    while True: pass  # %d\n", False),
]
TIMEOUT_EVERY = 200  # one program in two hundred spins until the deadline


def _program(i: int) -> tuple[str, bool]:
    if i % TIMEOUT_EVERY == 0:
        template, ok = PROGRAMS[-1]
    else:
        template, ok = PROGRAMS[i % (len(PROGRAMS) - 1)]
    return template % i, ok


def test_ten_thousand_executions_leak_nothing():
    total = int(os.environ.get("CODEGYM_SOAK_RUNS", "10000"))
    me = psutil.Process()
    processes_before = {p.pid for p in me.children(recursive=True)}  # other tests' sandboxes
    with Sandbox(timeout_s=0.5, memory_mb=256, workers=2, cache_size=0) as sandbox:
        sandbox.run_batch([(_program(i)[0], TESTS) for i in range(1, 200)])  # warm up
        fds_before, rss_before = me.num_fds(), me.memory_info().rss
        for chunk in range(0, total, 500):
            batch = [_program(i) for i in range(chunk, min(total, chunk + 500))]
            results = sandbox.run_batch([(program, TESTS) for program, _ in batch])
            wrong = [(chunk + i, r.status, r.tests) for i, ((_, ok), r) in enumerate(zip(batch, results)) if r.passed != ok]
            assert not wrong, wrong[:5]
            assert all(r.status == "timeout_cpu" for (p, _), r in zip(batch, results) if "while True" in p)
        assert sandbox.executions >= total
        views = [view for worker in sandbox._all for view in worker.views]
        for worker in sandbox._all:
            tree = psutil.Process(worker.proc.pid).children(recursive=True)
            assert len(tree) <= 3, [p.cmdline() for p in tree]  # the PID-1 zygote and two ready children
            assert not [p for p in tree if p.status() == psutil.STATUS_ZOMBIE]
        assert me.num_fds() <= fds_before + 2
        assert me.memory_info().rss - rss_before < 50 << 20
    assert {p.pid for p in me.children(recursive=True)} <= processes_before  # no zombie either
    assert not [view for view in views if os.path.exists(view)]  # this sandbox's own folders only
