"""Operating-system protections for the untrusted child, detected at run time.

Each protection is tried where the platform allows it and reported either way, so a user on a
machine without (say) Landlock knows exactly what is and is not enforced:

* ``namespaces``: the worker moves itself into fresh network, PID, IPC and mount namespaces (no
  network at all; the job's processes cannot see or signal anything outside; killing them all is
  one call; no SysV/POSIX IPC object is shared with the host).
* ``view``: the child is chrooted into a read-only tmpfs that holds only what it may read (the
  standard library, allow-listed packages, the shared libraries their extension modules load,
  ``/dev/null``, ``/dev/zero``, ``/dev/urandom``) and a fresh size-capped tmpfs as its working
  directory, replaced after every job. Nothing else of the host exists for it: no other file, no
  metadata, no socket path.
* ``landlock``: the same allow-list again, enforced by the kernel on inodes; TCP is denied; signals
  and abstract Unix sockets cannot leave the domain.
* ``seccomp``: no new processes, no exec, no signals, no ptrace, no non-Unix sockets, no SysV or
  POSIX message-queue IPC, no memfd, no inotify/fanotify.
* ``uid_drop``: the child runs as an unprivileged uid of its own worker, with no capabilities, so
  ``RLIMIT_NPROC`` bounds its threads.
* ``rlimits``: CPU seconds, address space, file size, open files, processes, no core dumps.

Stdlib-only apart from the optional ``pyseccomp``: the sandbox worker imports it by path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import sys
from dataclasses import dataclass, field

NOBODY_UID = 65534
_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUTS = 0x04000000
_F_SETPIPE_SZ = 1031
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_CLONE_THREAD = 0x00010000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 32, 4096, 16384
_MS_PRIVATE = 1 << 18
_MNT_DETACH = 2
JOB_DIR_INODES = 4096
JOB_UID_BASE = 0x40000000  # + the worker's host pid: a uid no other live worker uses

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


@dataclass
class LandlockRuleset:
    """A ruleset built once in the worker; each child only calls ``restrict_self``."""

    fd: int
    abi: int
    net: bool
    scoped: bool

    @classmethod
    def build(cls, read_paths: list[str], write_paths: list[str], list_paths: tuple[str, ...] = ()) -> LandlockRuleset:
        """Read (and execute) beneath ``read_paths``, everything beneath ``write_paths``, and only
        list the entries of ``list_paths`` (an import path's folder, without its other packages)."""
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
        rules = ([(p, read_dir) for p in read_paths] + [(p, _fs_rights(abi)) for p in write_paths]
                 + [(p, _FS_READ_DIR) for p in list_paths])
        for path, rights in rules:
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
              "acct", "settimeofday", "clock_settime",
              # kernel objects that could outlive the job or be shared between jobs
              "shmget", "shmat", "shmctl", "shmdt", "msgget", "msgsnd", "msgrcv", "msgctl", "semget",
              "semop", "semtimedop", "semctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
              "mq_notify", "mq_getsetattr", "memfd_create", "memfd_secret", "inotify_init", "inotify_init1",
              "fanotify_init", "fanotify_mark", "quotactl", "syslog", "mknod", "mknodat", "chown",
              "fchown", "lchown", "fchownat", "open_tree", "move_mount", "fsopen", "fsmount", "fspick",
              "mount_setattr", "landlock_create_ruleset", "seccomp", "personality", "vhangup",
              "lookup_dcookie", "nfsservctl", "uselib", "sysfs",
              # another process's scheduling (the child waiting for the next job), host load and memory
              "sched_setscheduler", "sched_setparam", "sched_setattr", "ioprio_set", "sysinfo"]
    for name in denied:
        try:
            flt.add_rule(sc.ERRNO(errno.EPERM), name)
        except (OSError, ValueError):
            continue  # syscall absent on this architecture
    # glibc falls back from clone3 to clone on ENOSYS; clone is allowed for threads only.
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
    flt.add_rule(sc.ERRNO(errno.EACCES), "socket", sc.Arg(0, sc.NE, 1))  # AF_UNIX only
    # prlimit64(pid, resource, new, old): the child's own limits only; it may read any of them and
    # set RLIMIT_CPU (it lowers its own to the job's limit; the hard limit stops anything higher).
    flt.add_rule(sc.ERRNO(errno.EPERM), "prlimit64", sc.Arg(0, sc.NE, 0))
    flt.add_rule(sc.ERRNO(errno.EPERM), "prlimit64", sc.Arg(1, sc.NE, resource.RLIMIT_CPU), sc.Arg(2, sc.NE, 0))
    flt.add_rule(sc.ERRNO(errno.EPERM), "setrlimit")
    flt.add_rule(sc.ERRNO(errno.EPERM), "fcntl", sc.Arg(1, sc.EQ, _F_SETPIPE_SZ))  # pipe buffers are kernel memory
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
    """Move this process into new network, IPC, UTS, mount and PID namespaces.

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
    net = _unshare(_CLONE_NEWNET) and _unshare(_CLONE_NEWIPC)
    if _unshare(_CLONE_NEWUTS):
        _libc.sethostname(b"codegym", ctypes.c_size_t(7))
    if _unshare(_CLONE_NEWNS):
        _libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)  # our mounts stay ours
    pid = _unshare(_CLONE_NEWPID)
    return net, pid


def set_last_pid(value: int) -> bool:
    """Where the next pid of this PID namespace is counted from: the worker resets it around every
    child so that the pids and thread ids a job sees do not count an earlier job's threads."""
    try:
        with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
            fh.write(str(value))
        return True
    except OSError:
        return False


def die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        _libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)


def apply_rlimits(cpu_s: int, memory_mb: int, file_mb: int, open_files: int, tasks: int) -> None:
    """Set hard limits; ``tasks`` bounds processes plus threads of the job's uid (it takes
    effect once the child has dropped root)."""
    limits = [
        (resource.RLIMIT_CPU, cpu_s),
        (resource.RLIMIT_FSIZE, file_mb << 20),
        (resource.RLIMIT_NOFILE, open_files),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, tasks),
        (resource.RLIMIT_MEMLOCK, 0),
        (resource.RLIMIT_MSGQUEUE, 0),
    ]
    if memory_mb > 0:
        limits.append((resource.RLIMIT_AS, memory_mb << 20))
    for which, value in limits:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            soft, hard = resource.getrlimit(which)
            if hard == resource.RLIM_INFINITY or value < hard:
                resource.setrlimit(which, (value, hard))


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def arg(text):
        return text.encode() if text is not None else None

    _check(_libc.mount(arg(source), arg(target), arg(fstype), ctypes.c_ulong(flags), arg(data)),
           "mount(%s)" % target)


def _mirror_parents(root: str, path: str) -> None:
    """Create ``root + path``'s parent directories, recreating host symlinks met on the way
    (``/lib -> usr/lib``) so that paths resolve inside the view as they do on the host."""
    current = "/"
    for part in [p for p in path.split("/") if p][:-1]:
        nxt = os.path.join(current, part)
        inside = root + nxt
        if os.path.islink(nxt):
            if not os.path.lexists(inside):
                os.symlink(os.readlink(nxt), inside)
            current = os.path.realpath(nxt)
            _mirror_parents(root, current + "/x")
            if not os.path.isdir(root + current):
                os.mkdir(root + current, 0o755)
        else:
            if not os.path.isdir(inside):
                os.mkdir(inside, 0o755)
            current = nxt


def _bind(root: str, path: str, writable: bool = False, device: bool = False) -> None:
    """Make ``path`` (as the host names it) appear at the same place inside the view."""
    _mirror_parents(root, path)
    real = os.path.realpath(path)
    if real != path and os.path.islink(path):
        link = root + os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if not os.path.lexists(link):
            os.symlink(os.readlink(path), link)
        _mirror_parents(root, real)
    target = root + real
    if os.path.lexists(target):
        return
    if os.path.isdir(real):
        os.mkdir(target, 0o755)
    else:
        open(target, "w").close()
    _mount(real, target, None, _MS_BIND | _MS_REC)
    flags = _MS_REMOUNT | _MS_BIND | _MS_NOSUID | (0 if writable else _MS_RDONLY) | (0 if device else _MS_NODEV)
    _mount(None, target, None, flags)


def build_view(read_paths: list[str], hidden: list[str], devices: list[str], owner: int) -> str:
    """Build the child's root in this process's (private) mount namespace: a tmpfs holding
    read-only bind mounts of ``read_paths``, empty read-only directories over ``hidden`` (the
    site-packages inside the stdlib), ``devices`` and an empty ``/tmp`` for the job's tmpfs.
    Returns the root (named after ``owner``, the worker's host pid, so that a folder left by a
    killed worker can be recognised); raises OSError where mounting is not allowed."""
    root = make_private_dir("codegym-view-%d-" % owner)
    _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=0755")
    old_umask = os.umask(0o022)
    try:
        for path in read_paths:
            if os.path.exists(path):
                _bind(root, path)
        for path in hidden:
            target = root + os.path.realpath(path)
            if os.path.isdir(target):
                _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_RDONLY, "size=4k,mode=0755")
        for path in devices:
            if os.path.exists(path):
                _bind(root, path, writable=path == "/dev/null", device=True)
        os.mkdir(root + "/tmp", 0o755)
    finally:
        os.umask(old_umask)
    _mount(None, root, None, _MS_REMOUNT | _MS_NOSUID | _MS_NODEV | _MS_RDONLY)
    return root


def mount_job_dir(root: str, size_mb: int, uid: int, replace: bool) -> None:
    """Mount (``replace``: unmount the old one first) the job's working directory: a fresh
    tmpfs owned by the job's uid, capped in bytes and inodes."""
    target = root + "/tmp"
    if replace:
        _check(_libc.umount2(target.encode(), _MNT_DETACH), "umount(%s)" % target)
    _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV,
           "size=%dk,nr_inodes=%d,mode=0700,uid=%d,gid=%d" % (max(size_mb, 1) << 10, JOB_DIR_INODES, uid, uid))


def make_private_dir(prefix: str) -> str:
    """A new 0700 directory under /tmp (tempfile's mkdtemp, without importing tempfile into the
    worker whose memory every fork copies)."""
    while True:
        path = os.path.join("/tmp", prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue


def remove_stale_views() -> None:
    """Remove the (empty, on the host) view folders of workers that were killed: the owner's pid
    is in the name, and a live worker with that pid keeps its folder."""
    import glob

    for path in glob.glob("/tmp/codegym-view-*-*"):
        try:
            owner = int(os.path.basename(path).split("-")[2])
            with open("/proc/%d/cmdline" % owner, "rb") as fh:
                if b"_worker.py" in fh.read():
                    continue
        except (ValueError, IndexError):
            continue
        except OSError:
            pass  # no such process
        try:
            os.rmdir(path)
        except OSError:
            pass


def remove_tree(top: str) -> None:
    """Remove a tree of any depth (the fallback without a view; Python's rmtree recurses)."""
    import subprocess

    subprocess.run(["rm", "-rf", "--one-file-system", top], check=False)


def remove_view(root: str) -> None:
    _libc.umount2(root.encode(), _MNT_DETACH)
    try:
        os.rmdir(root)
    except OSError:
        pass


def enter_view(root: str) -> None:
    """chroot into the view (the child is still privileged here) and start in ``/tmp``."""
    os.chroot(root)
    os.chdir("/tmp")


def shared_libraries(paths: list[str]) -> list[str]:
    """The shared libraries (as ``ldd`` names them) that the extension modules under ``paths``
    load: the view must hold them for ``import sqlite3`` to work as it does on the host."""
    import subprocess

    objects = []
    for top in paths:
        if os.path.isfile(top):
            continue
        for folder, _, files in os.walk(top):
            objects += [os.path.join(folder, f) for f in files if ".so" in f]
    libraries: set[str] = set()
    for start in range(0, len(objects), 64):
        try:
            listing = subprocess.run(["ldd", *objects[start:start + 64]], capture_output=True, text=True,
                                     timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired):
            return []
        for line in listing.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
                libraries.add(os.path.normpath(parts[parts.index("=>") + 1]))
            elif parts and parts[0].startswith("/") and not parts[0].endswith(":"):
                libraries.add(os.path.normpath(parts[0]))
    return sorted(libraries)


def view_contents(allowed_packages: tuple[str, ...]) -> dict:
    """What the child may read, computed on the trusted side from this interpreter's real paths:
    ``read`` (directories and files), ``hidden`` (site-packages folders inside the stdlib),
    ``devices`` and ``sys_path`` (the child's import path)."""
    stdlib = os.path.realpath(os.path.dirname(os.__file__))
    import_dirs = [os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)]
    stdlib_dirs = [stdlib] + [p for p in import_dirs if p.startswith(stdlib + os.sep)
                              and not p.endswith(("site-packages", "dist-packages"))]
    packages, package_sites = [], []
    for site in import_dirs:
        if not site.endswith(("site-packages", "dist-packages")):
            continue
        for entry in sorted(os.listdir(site)):
            base = entry.split("-")[0].split(".")[0]
            if base in allowed_packages and not entry.endswith(".pth"):
                packages.append(os.path.realpath(os.path.join(site, entry)))
                if site not in package_sites:
                    package_sites.append(site)
    hidden = [os.path.join(stdlib, name) for name in ("site-packages", "dist-packages")
              if os.path.isdir(os.path.join(stdlib, name))]
    extras = [p for p in ("/etc/ld.so.cache", "/etc/localtime", "/usr/share/zoneinfo") if os.path.exists(p)]
    libraries = shared_libraries(list(dict.fromkeys(stdlib_dirs[1:] + packages)))
    return {"read": list(dict.fromkeys([stdlib] + packages + libraries + extras)), "hidden": hidden,
            "devices": ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"],
            "sys_path": list(dict.fromkeys(stdlib_dirs + package_sites))}


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def tree_readable_by_others(path: str) -> bool:
    """Whether an unprivileged user could traverse to and read ``path`` (not so under /root)."""
    import stat

    current = path
    while True:
        try:
            mode = os.stat(current).st_mode
        except OSError:
            return False
        if not mode & (stat.S_IXOTH if stat.S_ISDIR(mode) else stat.S_IROTH):
            return False
        parent = os.path.dirname(current)
        if parent == current:
            return True
        current = parent


def drop_privileges(uid: int, keep_read_search: bool = False) -> None:
    """Become ``uid``/``uid`` with no supplementary groups; every capability goes with root,
    except, with ``keep_read_search``, CAP_DAC_READ_SEARCH (only without a view, for a standard
    library that other users cannot reach; Landlock still limits reads to the allow-list)."""
    if keep_read_search:
        _check(_libc.prctl(8, 1, 0, 0, 0), "prctl(KEEPCAPS)")  # PR_SET_KEEPCAPS
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
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
    view: bool = False
    landlock_abi: int = 0
    landlock_net: bool = False
    landlock_scoped: bool = False
    seccomp: bool = False
    uid_drop: bool = False
    rlimits: bool = True
    notes: list[str] = field(default_factory=list)
