"""
harness - the small runner behind tests/integration and tests/interop.

Standard library only. A test is a function taking one Env, registered with
@test (or register() for generated tests). Each test gets its own Env:

  env.tmp                 a fresh temporary directory (short path: unix sockets)
  env.start(label, argv, ready=SPEC)
                          start a process (stderr to a file in env.tmp); when
                          `ready` is a socket spec, wait until it listens
                          (bounded; the error names the process and quotes
                          its stderr)
  env.testmilter(...)     start milterhub-testmilter on a fresh socket with --log
  env.hub(config_text, listen=None, env=None)
                          write milterhub.lua and start milterhub -c on it;
                          returns the Proc (.spec, .config_path); `env`:
                          extra environment variables (e.g. MILTERHUB_NOW)
  env.mta(...)            run milterhub-mta --json, check its exit status,
                          return the parsed report
  env.run(label, argv)    run any command to completion, stderr remembered
  env.cleanup(fn)         call fn() when the test ends (e.g. stop a server thread)

Every process an Env started is stopped when the test ends, whatever happened:
SIGTERM, then SIGKILL after the process's grace period. A process killed
by the runner's own exit (Ctrl-C) is stopped the same way.

Runner: main(default_build=None) parses `--build DIR [--filter SUBSTR]
[--jobs N] [--list]`, runs the selected tests in parallel threads and prints
  ok - NAME
  not ok - NAME          followed by '#'-indented assertion message and the
                         tails of the stderr of the processes of that test
  ok - NAME # SKIP reason
then a '# passed=… failed=… skipped=… elapsed=…s' summary; exits 0 iff
nothing failed.

Environment: MH_WRAP (e.g. "valgrind --error-exitcode=99 --leak-check=full")
prefixes every tool command; MH_KEEP=1 keeps the temporary directories.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# ---------------------------------------------------------------- registry

REGISTRY = []  # list of (name, function)
_NAMES = set()


class Skip(Exception):
    """Raise (or call skip()) to report the test as skipped with a reason."""


def skip(reason):
    raise Skip(reason)


def register(name, fn):
    if name in _NAMES:
        raise ValueError("duplicate test name: " + name)
    _NAMES.add(name)
    REGISTRY.append((name, fn))
    return fn


def test(fn_or_name=None):
    """@test or @test("explicit_name"): register a test function."""
    if callable(fn_or_name):
        return register(fn_or_name.__name__, fn_or_name)

    def deco(fn):
        return register(fn_or_name or fn.__name__, fn)
    return deco


# ------------------------------------------------------------- assertions

def eq(got, want, what="value"):
    if got != want:
        raise AssertionError("%s: expected %r, got %r" % (what, want, got))


def ok(cond, msg):
    if not cond:
        raise AssertionError(msg)


def fnv1a64(data):
    """FNV-1a 64-bit of bytes, as an int."""
    h = 0xcbf29ce484222325
    prime = 0x100000001b3
    mask = 0xFFFFFFFFFFFFFFFF
    for b in data:
        h = ((h ^ b) * prime) & mask
    return h


# ------------------------------------------------------- global process set

_LIVE = set()
_LIVE_LOCK = threading.Lock()

WRAP = shlex.split(os.environ.get("MH_WRAP", ""))
# Start-up and reply waits stretch when the tools run under valgrind & co.
SLOW = 10.0 if WRAP else 1.0


def _signal_group(popen, sig):
    # Each process is started in its own session: its process group id is
    # its pid, so this reaches its children (e.g. under MH_WRAP) too.
    try:
        os.killpg(popen.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            popen.send_signal(sig)
        except ProcessLookupError:
            pass


def _stop(popen, grace):
    """SIGTERM, wait `grace` seconds, then SIGKILL. Returns the exit status."""
    if popen.poll() is None:
        _signal_group(popen, signal.SIGTERM)
        try:
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(popen, signal.SIGKILL)
            popen.wait()
    # Leftover children of an exited leader.
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return popen.returncode


def stop_all():
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        _stop(p.popen, p.grace)


# -------------------------------------------------------------- socket specs

def parse_spec(spec):
    """Return ('unix', path) or ('tcp', host, port) for a socket spec."""
    kind, _, rest = spec.partition(":")
    if kind in ("unix", "local"):
        return ("unix", rest)
    if kind in ("inet", "inet6"):
        if "@" in rest:
            port, _, host = rest.partition("@")
        else:
            host, _, port = rest.rpartition(":")
        return ("tcp", host.strip("[]"), int(port))
    raise ValueError("bad socket spec: " + spec)


def _unix_listening(path):
    try:
        with open("/proc/net/unix") as f:
            for line in f:
                cols = line.split()
                # Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 = listening
                if len(cols) >= 8 and cols[7] == path and int(cols[3], 16) & 0x10000:
                    return True
    except OSError:
        return os.path.exists(path)
    return False


def _tcp_listening(port):
    """Look the port up in /proc/net/tcp{,6} (state 0A) instead of connecting:
    a probe connection would show up in the testmilter's log."""
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                found_table = True
                next(f)
                for line in f:
                    cols = line.split()
                    local, state = cols[1], cols[3]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    if not found_table:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False
    return False


def spec_listening(spec):
    p = parse_spec(spec)
    if p[0] == "unix":
        return _unix_listening(p[1])
    return _tcp_listening(p[2])


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ------------------------------------------------------------------ process

class Proc:
    """A process an Env started; stderr goes to a file."""

    def __init__(self, label, argv, popen, stderr_path, grace, expect_rc=None):
        self.label, self.argv, self.popen = label, argv, popen
        self.stderr_path, self.grace = stderr_path, grace
        self.expect_rc = expect_rc  # exit status required after SIGTERM, None: any

    @property
    def pid(self):
        return self.popen.pid

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        rc = _stop(self.popen, self.grace)
        with _LIVE_LOCK:
            _LIVE.discard(self)
        return rc


class Ran:
    """A finished command: argv, returncode, stdout (str), stderr (str), elapsed."""

    def __init__(self, label, argv, rc, out, err, elapsed):
        self.label, self.argv, self.returncode = label, argv, rc
        self.stdout, self.stderr, self.elapsed = out, err, elapsed


def _tail(text, n=12):
    lines = text.rstrip("\n").splitlines()
    return lines[-n:]


# ---------------------------------------------------------------- testmilter

class TestMilter:
    """A running milterhub-testmilter: its socket spec, process and log."""

    def __init__(self, proc, spec, log_path):
        self.proc, self.spec, self.log_path = proc, spec, log_path

    def log(self, settle=3.0):
        """The parsed --log lines. Waits (bounded) until every connection
        that appears in the log has its 'close' line, so a test reads
        the complete story of the sessions that already ended."""
        deadline = time.monotonic() + settle * SLOW
        while True:
            entries = self._read()
            conns = {e.get("conn") for e in entries}
            closed = {e.get("conn") for e in entries if e.get("cmd") == "close"}
            if conns <= closed or time.monotonic() >= deadline:
                return entries
            time.sleep(0.02)

    def _read(self):
        entries = []
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return entries
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise AssertionError("testmilter log line is not JSON: %r" % line[:200])
        return entries

    def raw_lines(self, settle=3.0):
        """The log lines as text (e.g. to see duplicate JSON keys)."""
        self.log(settle)
        with open(self.log_path, "rb") as f:
            return [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]

    def cmds(self, conn=None, settle=3.0):
        """The 'cmd' of every log line (of one connection if given)."""
        return [e["cmd"] for e in self.log(settle)
                if conn is None or e.get("conn") == conn]

    def first(self, cmd, settle=3.0):
        for e in self.log(settle):
            if e.get("cmd") == cmd:
                return e
        raise AssertionError("testmilter log has no %r line (cmds: %r)"
                             % (cmd, [e.get("cmd") for e in self.log(0)]))

    def all(self, cmd, settle=3.0):
        return [e for e in self.log(settle) if e.get("cmd") == cmd]


# ----------------------------------------------------------------- the Env

class Env:
    """Everything one test needs; close() releases it all."""

    def __init__(self, name, build):
        self.name, self.build = name, build
        self.tmp = tempfile.mkdtemp(prefix="mh-")  # short: sun_path is 108 bytes
        self.procs = []
        self.runs = []
        self.notes = []
        self.cleanups = []  # functions called by close(), last registered first
        self._n = 0

    # paths and specs
    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def tool(self, rel):
        p = os.path.join(self.build, rel)
        if not os.access(p, os.X_OK):
            skip("not built: " + p)
        return p

    @property
    def mta_bin(self):
        return self.tool("tools/mta/milterhub-mta")

    @property
    def testmilter_bin(self):
        return self.tool("tools/testmilter/milterhub-testmilter")

    def unix_spec(self, name=None):
        self._n += 1
        return "unix:" + self.path(name or "m%d.sock" % self._n)

    def cleanup(self, fn):
        """Call fn() when the test ends (close()), e.g. to stop a thread the test started."""
        self.cleanups.append(fn)

    def note(self, text):
        """Extra lines printed under 'not ok' when the test fails."""
        self.notes.append(text)

    # processes
    def start(self, label, argv, ready=None, grace=2.0, wait=5.0, wrap=True, expect_rc=None,
              env=None):
        """Start argv in the background. `expect_rc`: the exit status the
        process must give when stopped at the end of a passing test.
        `env`: variables added to this process's environment."""
        if wrap and WRAP:
            grace *= SLOW
        argv = (WRAP if wrap else []) + list(argv)
        self._n += 1
        err_path = self.path("%s.%d.stderr" % (re.sub(r"\W", "_", label), self._n))
        errf = open(err_path, "wb")
        try:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=errf, stderr=errf, start_new_session=True,
                                     env=dict(os.environ, **env) if env else None)
        finally:
            errf.close()
        proc = Proc(label, argv, popen, err_path, grace, expect_rc)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        self.procs.append(proc)
        if ready:
            deadline = time.monotonic() + wait * SLOW
            while not spec_listening(ready):
                if popen.poll() is not None:
                    raise AssertionError(
                        "%s (pid %d) exited with status %s before listening on %s; stderr:\n%s"
                        % (label, popen.pid, popen.returncode, ready,
                           "\n".join(_tail(proc.stderr()))))
                if time.monotonic() >= deadline:
                    raise AssertionError(
                        "%s (pid %d) did not listen on %s within %.1fs; stderr:\n%s"
                        % (label, popen.pid, ready, wait * SLOW,
                           "\n".join(_tail(proc.stderr()))))
                time.sleep(0.01)
        return proc

    def testmilter(self, *args, listen=None, log=True, label="milterhub-testmilter"):
        """Start the testmilter with `args` (e.g. "--on", "rcpt=reject")."""
        spec = listen or self.unix_spec()
        log_path = self.path("testmilter.%d.log" % (self._n + 1)) if log else None
        argv = [self.testmilter_bin, "--listen", spec]
        if log_path:
            argv += ["--log", log_path]
        argv += [str(a) for a in args]
        # docs/tools.md: SIGTERM/SIGINT exit 0 (under MH_WRAP also: no valgrind error).
        proc = self.start(label, argv, ready=spec, expect_rc=0)
        return TestMilter(proc, spec, log_path)

    @property
    def hub_bin(self):
        return self.tool("milterhub")

    def hub(self, config_text, listen=None, args=(), label="milterhub", expect_rc=0, wait=5.0,
            env=None, control=True):
        """Write `config_text` to TMP/milterhub.N.lua and start `BUILD/milterhub -c FILE`.

        `listen` is the hub's socket spec (default: a fresh unix socket in
        env.tmp). When config_text has no `manager` block, the line
        `manager { listen = "LISTEN" }` is put in front of it; when it has
        one, that block must name the same `listen`. Unless the manager
        block names a `control` socket (or control=False), one in env.tmp is
        added, so no test touches the default /run/milterhub/control.sock.
        Waits until the hub listens (bounded; a hub that exits first fails
        the test with its stderr). `args` are extra command-line arguments.
        The hub must exit with `expect_rc` (0) on the SIGTERM at the end of
        the test. `env`: extra environment variables for the hub (e.g.
        MILTERHUB_NOW).

        Returns the Proc, with extra attributes: .spec (the listen spec,
        for env.mta(hub.spec, ...)), .config_path and .control (the
        control socket spec, or None).
        """
        spec = listen or self.unix_spec("hub.sock")
        text = config_text
        if not re.search(r"^\s*manager\b", text, re.M):
            text = 'manager { listen = "%s" }\n' % spec + text
        ctl = None
        m = re.search(r'\bcontrol\s*=\s*"([^"]*)"', text)
        if m:
            ctl = m.group(1)
        elif control:
            ctl = self.unix_spec("control.%d.sock" % (self._n + 1))
            text = re.sub(r"^(\s*manager\s*\{)", r'\1 control = "%s",' % ctl, text, count=1,
                          flags=re.M)
        self._n += 1
        config_path = self.path("milterhub.%d.lua" % self._n)
        with open(config_path, "w") as f:
            f.write(text)
        argv = [self.hub_bin, "-c", config_path] + [str(a) for a in args]
        proc = self.start(label, argv, ready=spec, wait=wait, expect_rc=expect_rc, env=env)
        proc.spec, proc.config_path, proc.control = spec, config_path, ctl
        return proc

    @property
    def ctl_bin(self):
        return self.tool("milterhubctl")

    def ctl(self, hub, *args, timeout=60.0):
        """Run `milterhubctl --socket HUB.control ARGS...`; returns the Ran."""
        spec = hub.control if hasattr(hub, "control") else hub
        return self.run("milterhubctl", [self.ctl_bin, "--socket", spec] + [str(a) for a in args],
                        timeout=timeout)

    def run(self, label, argv, timeout=60.0, wrap=True, stdin_data=None):
        argv = (WRAP if wrap else []) + [str(a) for a in argv]
        t0 = time.monotonic()
        try:
            cp = subprocess.run(argv, input=stdin_data, capture_output=True,
                                timeout=timeout * SLOW, start_new_session=True)
        except subprocess.TimeoutExpired as e:
            r = Ran(label, argv, None, (e.stdout or b"").decode("utf-8", "replace"),
                    (e.stderr or b"").decode("utf-8", "replace"), time.monotonic() - t0)
            self.runs.append(r)
            raise AssertionError("%s did not finish within %.0fs: %s"
                                 % (label, timeout * SLOW, shlex.join(argv)))
        r = Ran(label, argv, cp.returncode, cp.stdout.decode("utf-8", "replace"),
                cp.stderr.decode("utf-8", "replace"), time.monotonic() - t0)
        self.runs.append(r)
        return r

    def mta_run(self, *args, socket=None, json_out=True, timeout=60.0):
        argv = [self.mta_bin]
        if socket:
            argv += ["--socket", socket]
        argv += [str(a) for a in args]
        if json_out:
            argv.append("--json")
        return self.run("milterhub-mta", argv, timeout=timeout)

    def mta(self, milter, *args, rc=0, timeout=60.0):
        """Run milterhub-mta --json against `milter` (a TestMilter or a spec);
        assert its exit status is `rc` and return the parsed report."""
        spec = milter.spec if isinstance(milter, TestMilter) else milter
        r = self.mta_run(*args, socket=spec, timeout=timeout)
        if r.returncode != rc:
            raise AssertionError("milterhub-mta exited %s, expected %d\n  command: %s\n  stdout: %s"
                                 % (r.returncode, rc, shlex.join(r.argv), r.stdout[:600]))
        try:
            report = json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError("milterhub-mta --json printed no valid JSON (%s): %r"
                                 % (e, r.stdout[:600]))
        report["_elapsed"] = r.elapsed
        return report

    # teardown
    def stop_checked(self):
        """Stop every process; fail if one did not exit as expected."""
        bad = []
        for p in reversed(self.procs):
            already = p.popen.poll()
            rc = p.stop()
            if p.expect_rc is not None and rc != p.expect_rc:
                how = "had exited with status %s during the test" % rc if already is not None \
                    else "exited with status %s on SIGTERM" % rc
                bad.append("%s (pid %d) %s, expected %d" % (p.label, p.pid, how, p.expect_rc))
        if bad:
            raise AssertionError("\n".join(bad))

    def close(self, keep=False):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception:  # noqa: BLE001 - the processes must still be stopped
                pass
        for p in reversed(self.procs):
            p.stop()
        if not keep and not os.environ.get("MH_KEEP"):
            subprocess.run(["rm", "-rf", self.tmp])

    def diagnostics(self):
        lines = []
        for text in self.notes:
            lines += text.splitlines()
        for p in self.procs:
            err = _tail(p.stderr())
            if err:
                lines.append("--- stderr of %s (pid %d): %s" % (p.label, p.pid, shlex.join(p.argv)[:300]))
                lines += ["  " + s for s in err]
        for r in self.runs[-3:]:
            lines.append("--- %s exited %s (%.2fs): %s" % (r.label, r.returncode, r.elapsed,
                                                         shlex.join(r.argv)[:400]))
            lines += ["  " + s for s in _tail(r.stderr)]
        return lines


# --------------------------------------------------------- report helpers

def stages(report, name=None, message=None):
    """Stage entries of a report (top-level, whole session), filtered."""
    return [s for s in report.get("stages", [])
            if (name is None or s.get("stage") == name)
            and (message is None or s.get("message") == message)]


def stage(report, name, message=None):
    """The single stage entry with that name; fails if not exactly one."""
    found = stages(report, name, message)
    if len(found) != 1:
        raise AssertionError("expected one %r stage in the report, found %d: %r"
                             % (name, len(found), [s.get("stage") for s in report.get("stages", [])]))
    return found[0]


def stage_names(report, message=None):
    return [s.get("stage") for s in stages(report, message=message)]


def header_list(report):
    return [tuple(h) for h in report.get("headers", [])]


# ------------------------------------------------------------------ runner

def _run_one(name, fn, build):
    env = Env(name, build)
    status, lines = "ok", []
    try:
        fn(env)
        env.stop_checked()
    except Skip as e:
        status, lines = "skip", [str(e)]
    except Exception as e:  # AssertionError and anything unexpected
        status = "fail"
        if isinstance(e, AssertionError):
            msg = str(e) or "assertion failed"
        else:
            msg = "%s: %s" % (type(e).__name__, e)
        lines = msg.splitlines()
        tb = traceback.extract_tb(e.__traceback__)
        here = [f for f in tb if os.path.dirname(os.path.realpath(f.filename))
                != os.path.dirname(os.path.realpath(__file__))]
        if here:
            f = here[-1]
            lines.append("at %s:%d: %s" % (os.path.basename(f.filename), f.lineno, f.line))
        try:
            lines += env.diagnostics()
        except Exception:
            pass
    finally:
        try:
            env.close(keep=(status == "fail" and bool(os.environ.get("MH_KEEP"))))
        except Exception as e:  # cleanup trouble must not hide the result
            lines.append("cleanup: %r" % e)
    return status, lines


def main(argv=None, title="tests"):
    ap = argparse.ArgumentParser(description="milterhub " + title)
    ap.add_argument("--build", required=True, help="meson build directory")
    ap.add_argument("--filter", default=None, help="run tests whose name contains SUBSTR")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("MH_JOBS", "0")) or
                    (4 if WRAP else max(8, 4 * (os.cpu_count() or 2))))
    ap.add_argument("--list", action="store_true", help="list test names and exit")
    args = ap.parse_args(argv)
    build = os.path.abspath(args.build)
    selected = [(n, f) for n, f in REGISTRY if not args.filter or args.filter in n]
    if args.list:
        for n, _ in selected:
            print(n)
        return 0

    def on_signal(signum, frame):
        stop_all()
        os._exit(130)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    t0 = time.monotonic()
    counts = {"ok": 0, "fail": 0, "skip": 0}
    print("1..%d" % len(selected), flush=True)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [(n, pool.submit(_run_one, n, f, build)) for n, f in selected]
            for n, fut in futures:
                status, lines = fut.result()
                counts[status] += 1
                if status == "ok":
                    print("ok - " + n)
                elif status == "skip":
                    print("ok - %s # SKIP %s" % (n, " ".join(lines)))
                else:
                    print("not ok - " + n)
                    for s in lines:
                        print("#   " + s)
                sys.stdout.flush()
    finally:
        stop_all()
    print("# passed=%d failed=%d skipped=%d total=%d elapsed=%.1fs"
          % (counts["ok"], counts["fail"], counts["skip"], len(selected), time.monotonic() - t0))
    return 0 if counts["fail"] == 0 else 1
