"""
daemon_workers - the production daemon's processes (issue 5 items 1-3, 5;
design §3): master + N workers sharing the socket; reload under load with 0
failed sessions and the new configuration used at once; a bad configuration
refused with the old one kept (SIGHUP and milterhubctl reload); a SIGKILLed
worker replaced with failures bounded to its sessions; enable/disable
reaching every worker and surviving a reload; stop draining; pid file;
daemonize; SIGUSR1 reopening the log file; and, as root, workers running as
the configured user with the socket's mode and group.
"""

import grp
import json
import os
import pwd
import re
import signal
import socket
import stat
import struct
import threading
import time

import harness
from common import eq, ok, test, free_port, SLOW


# ------------------------------------------------------------------ helpers

def children_of(pid):
    """Pids whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(d))
    return sorted(out)


def wait_for(what, pred, timeout=10.0):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for: %s" % what)
        time.sleep(0.05)


def status(env, hub):
    r = env.ctl(hub, "status", "--json")
    eq(r.returncode, 0, "milterhubctl status --json exit status (stderr: %s)" % r.stderr.strip())
    return json.loads(r.stdout)


def running_workers(st, gen=None):
    return [w for w in st["workers"] if w["state"] == "running"
            and (gen is None or w["generation"] == gen)]


def log_lines(hub, pattern):
    return [ln for ln in hub.stderr().splitlines() if re.search(pattern, ln)]


def wait_log(hub, pattern, timeout=10.0):
    return wait_for("a log line matching %r in %s's stderr" % (pattern, hub.label),
                    lambda: log_lines(hub, pattern), timeout)[0]


def config(hub_spec, children, manager_extra=""):
    """children: list of (name, socket spec, extra Lua)."""
    text = 'manager { listen = "%s"%s }\n' % (hub_spec, manager_extra)
    for name, spec, extra in children:
        text += 'milter "%s" { socket = "%s"%s }\n' % (name, spec, extra)
    return text


def rewrite(hub, text):
    with open(hub.config_path + ".new", "w") as f:
        f.write(text)
    os.rename(hub.config_path + ".new", hub.config_path)


def saw_sessions(tm):
    """Sessions (negotiations) a testmilter has seen so far."""
    return len(tm.all("optneg", settle=0.5))


class Background:
    """Run milterhub-mta in load mode in a thread; .result() is its JSON."""

    def __init__(self, env, hub, sessions, concurrency, *extra):
        self.r = None
        self.exc = None

        def run():
            try:
                self.r = env.mta_run("--sessions", sessions, "--concurrency", concurrency,
                                     *extra, socket=hub.spec, timeout=120)
            except Exception as e:  # noqa: BLE001 - reported by result()
                self.exc = e
        self.t = threading.Thread(target=run, daemon=True)
        self.t.start()

    def result(self):
        self.t.join(150 * SLOW)
        if self.exc:
            raise self.exc
        ok(self.r is not None, "the load run did not finish")
        try:
            return json.loads(self.r.stdout), self.r
        except ValueError:
            raise AssertionError("load mode printed no JSON: %r / %r"
                                 % (self.r.stdout[:300], self.r.stderr[-600:]))


# ------------------------------------------------------------------ workers

@test
def workers_n_processes_share_the_socket_and_count_every_session(env):
    tm = env.testmilter()
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [("a", tm.spec, "")], ", workers = 3"), listen=spec)
    kids = wait_for("3 worker processes", lambda: len(children_of(hub.pid)) == 3 and
                    children_of(hub.pid))
    st = status(env, hub)
    eq(sorted(w["pid"] for w in running_workers(st)), kids, "workers in status = the master's children")
    eq(st["workers_configured"], 3, "workers_configured")
    rep = env.mta(hub.spec, "--sessions", 300, "--concurrency", 12)
    eq(rep["failed"], 0, "failed sessions through 3 workers")
    st = status(env, hub)
    eq(st["sessions_total"], 300, "sessions_total in status")
    eq(sum(w["sessions_total"] for w in st["workers"]), 300, "per-worker totals add up")
    eq(st["children"][0]["sessions"], 300, "sessions child a took part in")
    eq(saw_sessions(tm), 300, "sessions the child saw")


@test
def workers_default_to_the_number_of_cores(env):
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, []), listen=spec)
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    st = status(env, hub)
    eq(st["workers_configured"], min(os.cpu_count(), 64), "default workers (online CPUs)")
    ok(n >= 1, "cpus")


# ------------------------------------------------------------------ reload

@test
def reload_under_load_5_times_fails_no_session_and_new_sessions_use_the_new_config(env):
    a = env.testmilter(label="testmilter-a")
    b = env.testmilter(label="testmilter-b")
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [("c", a.spec, "")], ", workers = 2"), listen=spec)
    load = Background(env, hub, 4000, 16)
    gens = []
    for i in range(5):
        time.sleep(0.25)
        target = b if i % 2 == 0 else a
        rewrite(hub, config(spec, [("c", target.spec, "")], ", workers = 2"))
        r = env.ctl(hub, "reload")
        eq(r.returncode, 0, "milterhubctl reload %d (stderr: %s)" % (i + 1, r.stderr.strip()))
        ok("generation %d" % (i + 2) in r.stdout, "reload answer names the generation: %r"
           % r.stdout)
        gens.append(i + 2)
    rep, ran = load.result()
    eq(rep["failed"], 0, "failed sessions during 5 reloads (stderr: %s)" % ran.stderr[-400:])
    eq(rep["sessions"], 4000, "sessions run")
    # The last reload pointed child "c" at b: a new session goes there, not to a.
    before_a, before_b = saw_sessions(a), saw_sessions(b)
    ok(before_a > 0 and before_b > 0, "both configurations served sessions (a %d, b %d)"
       % (before_a, before_b))
    env.mta(hub.spec)
    eq(saw_sessions(b), before_b + 1, "a new session reached the new config's child")
    eq(saw_sessions(a), before_a, "the old config's child got nothing after the reload")
    st = status(env, hub)
    eq(st["generation"], 6, "generation after 5 reloads")
    wait_for("old workers to finish and exit",
             lambda: all(w["generation"] == 6 for w in status(env, hub)["workers"]))
    eq(len(running_workers(status(env, hub), 6)), 2, "workers of the new generation")


@test
def reload_keeps_the_socket_so_no_connection_is_refused(env):
    tm = env.testmilter()
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [("a", tm.spec, "")], ", workers = 2"), listen=spec)
    ino = os.stat(spec.partition(":")[2]).st_ino
    for _ in range(3):
        eq(env.ctl(hub, "reload").returncode, 0, "reload")
    eq(os.stat(spec.partition(":")[2]).st_ino, ino, "the socket file is the same one")
    eq(env.mta(hub.spec)["result"], "accept", "a session after the reloads")


@test
def reload_with_a_bad_config_keeps_the_old_one_and_ctl_reports_the_error(env):
    tm = env.testmilter("--on", "rcpt=reject")
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [("a", tm.spec, "")]), listen=spec)
    with open(hub.config_path, "a") as f:
        f.write('milter "b" { sockt = "unix:/x" }\n')
    r = env.ctl(hub, "reload")
    eq(r.returncode, 1, "milterhubctl reload exit status on a bad config")
    ok(re.search(r"%s:\d+:.*unknown key 'sockt'" % re.escape(hub.config_path), r.stderr),
       "ctl names file, line and key: %r" % r.stderr)
    ok("generation 1 keeps running" in r.stderr, "ctl says the old one runs: %r" % r.stderr)
    wait_log(hub, r"reload refused.*unknown key 'sockt'")
    eq(env.mta(hub.spec)["result"], "reject", "the old configuration still answers")
    # SIGHUP with the same bad file: logged, still running.
    os.kill(hub.pid, signal.SIGHUP)
    wait_log(hub, r"SIGHUP: reload refused")
    ok(hub.popen.poll() is None, "milterhub exited after a bad SIGHUP reload")
    eq(status(env, hub)["generation"], 1, "generation after two refused reloads")


@test
def reload_by_sighup_starts_a_new_generation(env):
    a = env.testmilter(label="testmilter-a")
    b = env.testmilter(label="testmilter-b")
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [("x", a.spec, "")], ", workers = 1"), listen=spec)
    rewrite(hub, config(spec, [("x", b.spec, "")], ", workers = 1"))
    os.kill(hub.pid, signal.SIGHUP)
    wait_log(hub, r"reloaded .*generation 2")
    env.mta(hub.spec)
    eq(saw_sessions(b), 1, "the session after SIGHUP went to the new child")
    eq(saw_sessions(a), 0, "the old child got nothing")


@test
def reload_lets_an_open_session_finish_on_the_old_worker(env):
    tm = env.testmilter("--on", "eom=delay:1500")
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [("a", tm.spec, "")], ", workers = 1"), listen=spec)
    old = children_of(hub.pid)
    load = Background(env, hub, 1, 1)
    wait_for("the session to reach the child", lambda: saw_sessions(tm) == 1)
    eq(env.ctl(hub, "reload").returncode, 0, "reload")
    rep, _ = load.result()
    eq(rep["failed"], 0, "the session open during the reload failed")
    wait_for("the old worker to exit", lambda: not set(old) & set(children_of(hub.pid)))


# ------------------------------------------------------------------ worker death

@test
def sigkill_of_a_worker_under_load_restarts_it_and_bounds_failures(env):
    tm = env.testmilter("--on", "rcpt=delay:20")
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [("a", tm.spec, "")], ", workers = 2"), listen=spec)
    kids = wait_for("2 workers", lambda: len(children_of(hub.pid)) == 2 and children_of(hub.pid))
    conc = 10
    load = Background(env, hub, 1500, conc)
    wait_for("load to be under way", lambda: status(env, hub)["sessions_total"] > 100)
    os.kill(kids[0], signal.SIGKILL)
    wait_log(hub, r"worker %d was killed by signal 9.*restarting it" % kids[0])
    rep, _ = load.result()
    ok(rep["failed"] <= conc, "failures %d exceed the sessions that can be in flight (%d)"
       % (rep["failed"], conc))
    eq(rep["ok"] + rep["failed"], 1500, "sessions accounted for")
    st = status(env, hub)
    eq(len(running_workers(st)), 2, "workers running after the restart")
    ok(kids[0] not in [w["pid"] for w in st["workers"]], "the killed worker is gone")
    eq(st["worker_restarts"], 1, "worker_restarts")
    eq(env.mta(hub.spec)["result"], "accept", "a session after the restart")


# ------------------------------------------------------------------ enable / disable

@test
def ctl_disable_and_enable_reach_every_worker_and_survive_a_reload(env):
    a = env.testmilter(label="testmilter-a")
    b = env.testmilter("--on", "rcpt=reject", label="testmilter-b")
    spec = env.unix_spec("hub.sock")
    text = config(spec, [("a", a.spec, ""), ("b", b.spec, ", enabled = false")],
                  ", workers = 2")
    hub = env.hub(text, listen=spec)
    r = env.ctl(hub, "disable", "a")
    eq(r.returncode, 0, "disable a")
    ok("survive" in r.stdout or "kept across reloads" in r.stdout, "answer says it is kept: %r"
       % r.stdout)
    rep = env.mta(hub.spec, "--sessions", 60, "--concurrency", 6)
    eq(rep["failed"], 0, "failed")
    eq(saw_sessions(a), 0, "a disabled child was used")
    st = status(env, hub)
    busy = [w for w in st["workers"] if w["sessions_total"] > 0]
    eq(len(busy), 2, "both workers served sessions (%r)" % st["workers"])
    eq(st["children"][0]["override"], "disabled", "status shows the override")
    eq(env.ctl(hub, "enable", "b").returncode, 0, "enable b (enabled = false in the file)")
    rep = env.mta(hub.spec, "--sessions", 40, "--concurrency", 6)
    eq(rep["results"].get("reject", 0), 40, "every session met b's reject: %r" % rep["results"])
    eq(env.ctl(hub, "reload").returncode, 0, "reload")
    env.mta(hub.spec, "--sessions", 10, "--concurrency", 2)
    eq(saw_sessions(a), 0, "a used after a reload: the disable did not survive it")
    eq(saw_sessions(b), 50, "b not used after the reload: the enable did not survive it")
    eq(env.ctl(hub, "enable", "a").returncode, 0, "enable a again")
    env.mta(hub.spec)
    eq(saw_sessions(a), 1, "a after enable")


@test
def ctl_enable_of_an_unknown_milter_is_an_error_naming_the_known_ones(env):
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [("a", "inet:1@127.0.0.1", ""), ("b", "inet:2@127.0.0.1", "")]),
                  listen=spec)
    r = env.ctl(hub, "disable", "nosuch")
    eq(r.returncode, 1, "exit status")
    ok("nosuch" in r.stderr and "a, b" in r.stderr, "message: %r" % r.stderr)


@test
def ctl_status_and_children_print_readable_tables(env):
    tm = env.testmilter()
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [("dkim", tm.spec, "")], ", workers = 2"), listen=spec)
    env.mta(hub.spec)
    r = env.ctl(hub, "status")
    eq(r.returncode, 0, "status")
    for pat in (r"running, pid %d, up " % hub.pid, r"generation 1", r"sessions: \d+ open, 1 since",
                r"workers: 2 of 2 running", r"dkim\s+-\s+on\s+1\s+0"):
        ok(re.search(pat, r.stdout), "status lacks %r:\n%s" % (pat, r.stdout))
    r = env.ctl(hub, "children")
    ok(re.search(r"^dkim\s+-\s+on\s+1\s+0", r.stdout, re.M), "children:\n%s" % r.stdout)


# ------------------------------------------------------------------ stop

class OpenSession:
    """An MTA connection that negotiated and then waits (raw protocol)."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(10 * SLOW)
        self.s.connect(path)
        self.s.sendall(struct.pack(">IcIII", 13, b"O", 6, 0x1ff, 0))
        n = struct.unpack(">I", self._recv(4))[0]
        self._recv(n)

    def _recv(self, n):
        data = b""
        while len(data) < n:
            chunk = self.s.recv(n - len(data))
            if not chunk:
                raise AssertionError("hub closed the connection")
            data += chunk
        return data

    def quit(self):
        self.s.sendall(struct.pack(">Ic", 1, b"Q"))
        self.s.close()


@test
def ctl_stop_drains_open_sessions_then_the_daemon_exits_0(env):
    tm = env.testmilter()
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [("a", tm.spec, "")], ", workers = 2"), listen=spec)
    sess = OpenSession(spec.partition(":")[2])
    wait_for("the session to be counted", lambda: status(env, hub)["sessions_open"] == 1)
    res = {}
    t = threading.Thread(target=lambda: res.setdefault("r", env.ctl(hub, "stop")), daemon=True)
    t.start()
    wait_log(hub, r"milterhubctl stop: stopping; 2 workers finish 1 sessions")
    time.sleep(0.3)
    ok(hub.popen.poll() is None, "exited while a session was open")
    ok("r" not in res, "milterhubctl stop returned before the daemon exited")
    ok(not os.path.exists(spec.partition(":")[2]), "socket file still there while draining")
    sess.quit()
    eq(hub.popen.wait(timeout=10 * SLOW), 0, "exit status after the drain")
    t.join(10 * SLOW)
    eq(res["r"].returncode, 0, "milterhubctl stop exit status")
    ok("stopping: 1 sessions finishing" in res["r"].stdout, "stop answer: %r" % res["r"].stdout)
    ok(not os.path.exists(hub.control.partition(":")[2]), "control socket removed at exit")


@test
def drain_timeout_bounds_the_stop(env):
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [], ", workers = 1, drain_timeout = 0.5"), listen=spec)
    sess = OpenSession(spec.partition(":")[2])
    t0 = time.monotonic()
    os.kill(hub.pid, signal.SIGTERM)
    eq(hub.popen.wait(timeout=10 * SLOW), 0, "exit status")
    el = time.monotonic() - t0
    ok(0.4 <= el < 3 * SLOW, "stop took %.2fs with drain_timeout = 0.5" % el)
    sess.s.close()


# ------------------------------------------------------------------ service chores

@test
def pid_file_holds_the_master_pid_and_a_second_instance_refuses_to_start(env):
    pidf = env.path("milterhub.pid")
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [], ', workers = 1, pid_file = "%s"' % pidf), listen=spec)
    with open(pidf) as f:
        eq(f.read().strip(), str(hub.pid), "pid file content")
    spec2 = env.unix_spec("hub2.sock")
    path2 = env.path("second.lua")
    with open(path2, "w") as f:
        f.write(config(spec2, [], ', workers = 1, pid_file = "%s", control = "%s"'
                       % (pidf, env.unix_spec("ctl2.sock"))))
    r = env.run("milterhub", [env.hub_bin, "-c", path2], timeout=20)
    eq(r.returncode, 1, "exit status of a second instance")
    ok("already running as pid %d" % hub.pid in r.stderr, "message: %r" % r.stderr)
    eq(hub.stop(), 0, "exit status")
    ok(not os.path.exists(pidf), "pid file removed at exit")


@test
def daemonize_detaches_and_reports_start_failures_to_the_shell(env):
    pidf = env.path("d.pid")
    logf = env.path("d.log")
    spec = env.unix_spec("hub.sock")
    ctl = env.unix_spec("ctl.sock")
    path = env.path("d.lua")
    with open(path, "w") as f:
        f.write(config(spec, [], ', workers = 1, daemonize = true, pid_file = "%s", log = "%s",'
                       ' control = "%s"' % (pidf, logf, ctl)))
    pid = None
    try:
        r = env.run("milterhub", [env.hub_bin, "-c", path], timeout=20, wrap=False)
        eq(r.returncode, 0, "exit status of the starting shell command (stderr %r)" % r.stderr)
        pid = int(open(pidf).read())
        ok(os.path.exists("/proc/%d" % pid), "daemon running")
        ok(harness.spec_listening(spec), "daemon listening")
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rpartition(")")[2].split()
        eq(int(fields[3]), pid, "the daemon leads its own session (setsid)")
        # A second start on the same socket: the shell gets exit 1 and why.
        path2 = env.path("d2.lua")
        with open(path2, "w") as f:
            f.write(config(spec, [], ', workers = 1, daemonize = true, control = "%s"'
                           % env.unix_spec("ctl2.sock")))
        r2 = env.run("milterhub", [env.hub_bin, "-c", path2], timeout=20, wrap=False)
        eq(r2.returncode, 1, "exit status when the daemon cannot start")
        ok("cannot listen on" in r2.stderr, "reason on stderr: %r" % r2.stderr)
        r3 = env.ctl(ctl, "stop")
        eq(r3.returncode, 0, "milterhubctl stop")
        wait_for("the daemon to exit", lambda: not os.path.exists("/proc/%d" % pid))
    finally:
        # Whatever failed above, no daemon outlives the test (it is in its own session).
        if pid is None and os.path.exists(pidf):
            try:
                pid = int(open(pidf).read())
            except ValueError:
                pass
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    ok(re.search(r"started with", open(logf).read()), "log file has the start line")


@test
def sigusr1_reopens_the_log_file_in_master_and_workers(env):
    logf = env.path("hub.log")
    tm = env.testmilter()
    spec = env.unix_spec("hub.sock")
    hub = env.hub(config(spec, [("a", tm.spec, "")], ', workers = 2, log = "%s"' % logf),
                  listen=spec)
    wait_for("the start line in the log file",
             lambda: os.path.exists(logf) and "started with" in open(logf).read())
    os.rename(logf, logf + ".1")
    os.kill(hub.pid, signal.SIGUSR1)
    wait_for("a new log file", lambda: os.path.exists(logf))
    wait_for("the reopen line", lambda: "log reopened" in open(logf).read())
    time.sleep(0.2)  # the workers reopen on their own signal
    env.mta(hub.spec, "--sessions", 20, "--concurrency", 4)
    wait_for("session lines from the workers in the new file",
             lambda: re.search(r"\[session\]\[end\]", open(logf).read()))
    ok(not re.search(r"\[session\]\[end\]", open(logf + ".1").read()),
       "sessions after the reopen were logged to the old file")


@test
def as_root_workers_run_as_user_and_the_socket_has_mode_and_group(env):
    if os.geteuid() != 0:
        harness.skip("needs root")
    spec = env.unix_spec("hub.sock")
    os.chmod(env.tmp, 0o755)
    hub = env.hub(config(spec, [], ', workers = 2, user = "nobody", group = "nogroup",'
                         ' socket_mode = "0640", socket_group = "mail"'), listen=spec)
    st = os.stat(spec.partition(":")[2])
    eq(oct(stat.S_IMODE(st.st_mode)), oct(0o640), "socket mode")
    eq(st.st_gid, grp.getgrnam("mail").gr_gid, "socket group")
    nobody = pwd.getpwnam("nobody")
    kids = wait_for("2 workers", lambda: len(children_of(hub.pid)) == 2 and children_of(hub.pid))
    def ids(pid, key):
        with open("/proc/%d/status" % pid) as f:
            return set(int(v) for v in re.search(r"^%s:\s+(.*)$" % key, f.read(), re.M)
                       .group(1).split())
    for pid in kids:
        # A worker drops root right after its fork, before its first session.
        wait_for("worker %d to become nobody" % pid, lambda: ids(pid, "Uid") == {nobody.pw_uid})
        eq(ids(pid, "Gid"), {grp.getgrnam("nogroup").gr_gid}, "worker %d gids" % pid)
        eq(ids(pid, "Groups"), {grp.getgrnam("nogroup").gr_gid}, "worker %d groups" % pid)
    with open("/proc/%d/status" % hub.pid) as f:
        ok(re.search(r"^Uid:\s+0\s", f.read(), re.M), "the master keeps root")
    eq(env.mta(hub.spec)["result"], "accept", "a session through workers running as nobody")
