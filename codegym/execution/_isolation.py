"""Operating-system protections for the untrusted child, detected at run time.

Each protection is tried where the platform allows it and reported either way, so a user on a
machine without (say) Landlock knows exactly what is and is not enforced:

* ``namespaces``: the worker moves itself into fresh network and PID namespaces (no network at
  all; the job's processes cannot see or signal anything outside; killing them all is one call).
* ``landlock``: the child may read only the standard library and allow-listed packages, and
  write only its own temporary directory; TCP is denied; signals cannot leave the domain.
* ``seccomp``: no new processes, no exec, no signals, no ptrace, no non-Unix sockets.
* ``uid_drop``: the child runs as an unprivileged user.
* ``rlimits``: CPU seconds, address space, file size, open files, no core dumps.

Stdlib-only apart from the optional ``pyseccomp``: the sandbox worker imports it by path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import sys
import sysconfig
from dataclasses import dataclass, field

NOBODY_UID = 65534
_CLONE_NEWNS = 0x00020000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_CLONE_THREAD = 0x00010000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

# Filesystem access rights by ABI version (linux/landlock.h).
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_ABI1 = (1 << 13) - 1
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1, 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, "%s: %s" % (what, os.strerror(code)))
    return result


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is unavailable."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                            ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def _fs_rights(abi: int) -> int:
    rights = _FS_ABI1
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def stdlib_read_paths(allowed_packages: tuple[str, ...]) -> list[str]:
    """Paths the child may read: the stdlib (site-packages excluded) plus allowed packages."""
    paths: set[str] = set()
    site_dirs = {os.path.realpath(p) for p in (sysconfig.get_paths()["purelib"],
                                                 sysconfig.get_paths()["platlib"])}
    for key in ("stdlib", "platstdlib"):
        root = os.path.realpath(sysconfig.get_paths()[key])
        if not os.path.isdir(root):
            continue
        for entry in os.scandir(root):
            full = os.path.realpath(entry.path)
            if full in site_dirs or entry.name in ("site-packages", "dist-packages"):
                continue
            paths.add(full)
    for site in site_dirs:
        if not os.path.isdir(site):
            continue
        for entry in os.scandir(site):
            base = entry.name.split("-")[0].split(".")[0]
            if base in allowed_packages and not entry.name.endswith(".pth"):
                paths.add(os.path.realpath(entry.path))
    return sorted(paths)


@dataclass
class LandlockRuleset:
    """A ruleset built once in the worker; each child only calls ``restrict_self``."""

    fd: int
    abi: int
    net: bool
    scoped: bool

    @classmethod
    def build(cls, read_paths: list[str], write_paths: list[str]) -> LandlockRuleset:
        abi = landlock_abi()
        if abi < 1:
            raise OSError(errno.ENOSYS, "Landlock is not available")
        attr = _RulesetAttr(handled_access_fs=_fs_rights(abi))
        size = 8
        if abi >= 4:
            attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
            size = 16
        if abi >= 6:
            attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
            size = 24
        fd = _check(_libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr),
                                  ctypes.c_size_t(size), ctypes.c_uint32(0)), "landlock_create_ruleset")
        read_dir = _FS_READ_FILE | _FS_READ_DIR | _FS_EXECUTE
        for path, rights in [(p, read_dir) for p in read_paths] + [(p, _fs_rights(abi)) for p in write_paths]:
            if not os.path.exists(path):
                continue
            if not os.path.isdir(path):
                rights &= _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE
            path_fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(allowed_access=rights, parent_fd=path_fd)
                _check(_libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(fd),
                                     ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule),
                                     ctypes.c_uint32(0)), "landlock_add_rule(%s)" % path)
            finally:
                os.close(path_fd)
        return cls(fd=fd, abi=abi, net=abi >= 4, scoped=abi >= 6)

    def restrict_self(self) -> None:
        _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        _check(_libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(self.fd), ctypes.c_uint32(0)),
               "landlock_restrict_self")


def seccomp_program() -> bytes | None:
    """Compile, once, the BPF program denying process creation, exec, signals, tracing and
    non-Unix sockets. None when ``pyseccomp`` or ``libseccomp`` is missing.

    Compiled on the trusted side so that the worker (whose memory every fork copies) stays small
    and each child installs it with a single ``prctl``."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError):
        return None
    flt = sc.SyscallFilter(sc.ALLOW)
    denied = ["fork", "vfork", "execve", "execveat", "kill", "tkill", "tgkill", "rt_sigqueueinfo",
              "rt_tgsigqueueinfo", "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "ptrace",
              "process_vm_readv", "process_vm_writev", "kcmp", "mount", "umount2", "unshare", "setns",
              "pivot_root", "chroot", "reboot", "swapon", "swapoff", "init_module", "finit_module",
              "delete_module", "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
              "userfaultfd", "io_uring_setup", "setpriority", "sched_setaffinity", "setsid",
              "setpgid", "open_by_handle_at", "name_to_handle_at", "capset", "ioperm", "iopl", "kexec_load",
              "acct", "settimeofday", "clock_settime"]
    for name in denied:
        try:
            flt.add_rule(sc.ERRNO(errno.EPERM), name)
        except (OSError, ValueError):
            continue  # syscall absent on this architecture
    # glibc falls back from clone3 to clone on ENOSYS; clone is allowed for threads only.
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
    flt.add_rule(sc.ERRNO(errno.EACCES), "socket", sc.Arg(0, sc.NE, 1))  # AF_UNIX only
    flt.add_rule(sc.ERRNO(errno.EPERM), "prlimit64", sc.Arg(0, sc.NE, 0))
    import tempfile

    with tempfile.TemporaryFile() as fh:
        flt.export_bpf(fh)
        fh.seek(0)
        return fh.read()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class SeccompFilter:
    """A compiled BPF program, installed in the child with one prctl."""

    def __init__(self, program: bytes):
        if not program or len(program) % 8:
            raise ValueError("malformed seccomp program")
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // 8, ctypes.addressof(self._buffer))

    def load(self) -> None:
        _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        _check(_libc.prctl(22, 2, ctypes.byref(self._fprog), 0, 0), "prctl(SET_SECCOMP)")


def _unshare(flags: int) -> bool:
    return _libc.unshare(ctypes.c_int(flags)) == 0


def enter_namespaces() -> tuple[bool, bool]:
    """Move this process into new network and PID namespaces.

    Returns (network isolated, pid namespace pending). With a pending PID namespace the
    caller must fork: the child becomes PID 1 of the new namespace.
    """
    if not sys.platform.startswith("linux"):
        return False, False
    if os.geteuid() != 0:
        uid, gid = os.geteuid(), os.getegid()
        if not _unshare(_CLONE_NEWUSER):
            return False, False
        try:
            with open("/proc/self/setgroups", "w") as fh:
                fh.write("deny")
            with open("/proc/self/uid_map", "w") as fh:
                fh.write("%d %d 1" % (uid, uid))
            with open("/proc/self/gid_map", "w") as fh:
                fh.write("%d %d 1" % (gid, gid))
        except OSError:
            return False, False
    net = _unshare(_CLONE_NEWNET)
    pid = _unshare(_CLONE_NEWPID)
    return net, pid


def die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        _libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)


def apply_rlimits(cpu_s: int, memory_mb: int, file_mb: int, open_files: int) -> None:
    limits = [
        (resource.RLIMIT_CPU, cpu_s),
        (resource.RLIMIT_FSIZE, file_mb << 20),
        (resource.RLIMIT_NOFILE, open_files),
        (resource.RLIMIT_CORE, 0),
    ]
    if memory_mb > 0:
        limits.append((resource.RLIMIT_AS, memory_mb << 20))
    if hasattr(resource, "RLIMIT_NPROC") and os.geteuid() != 0:
        limits.append((resource.RLIMIT_NPROC, 256))
    for which, value in limits:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            soft, hard = resource.getrlimit(which)
            if hard == resource.RLIM_INFINITY or value < hard:
                resource.setrlimit(which, (value, hard))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def tree_readable_by_others(paths: list[str]) -> bool:
    """Whether an unprivileged user could traverse to and read every path (e.g. not under /root)."""
    import stat

    for path in paths:
        current = path
        while True:
            try:
                mode = os.stat(current).st_mode
            except OSError:
                return False
            needed = stat.S_IXOTH if stat.S_ISDIR(mode) else stat.S_IROTH
            if not mode & needed:
                return False
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
    return True


def drop_privileges(keep_read_search: bool) -> None:
    """Become uid/gid 65534. With ``keep_read_search`` the child keeps only
    CAP_DAC_READ_SEARCH, so it can still import a standard library installed where others may
    not read (e.g. under /root); Landlock still limits reads to the allow-list."""
    if keep_read_search:
        _check(_libc.prctl(8, 1, 0, 0, 0), "prctl(KEEPCAPS)")  # PR_SET_KEEPCAPS
    os.setgroups([])
    os.setgid(NOBODY_UID)
    os.setuid(NOBODY_UID)
    if keep_read_search:
        read_search = 1 << 2  # CAP_DAC_READ_SEARCH
        header = _CapHeader(version=0x20080522, pid=0)
        data = (_CapData * 2)(_CapData(read_search, read_search, 0), _CapData(0, 0, 0))
        _check(_libc.capset(ctypes.byref(header), data), "capset")


@dataclass
class Protections:
    """What a worker managed to set up; reported by ``Sandbox.protections()``."""

    namespaces: bool = False
    pid_namespace: bool = False
    landlock_abi: int = 0
    landlock_net: bool = False
    landlock_scoped: bool = False
    seccomp: bool = False
    uid_drop: bool = False
    rlimits: bool = True
    notes: list[str] = field(default_factory=list)
