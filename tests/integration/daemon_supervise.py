"""
daemon_supervise - child milters the daemon starts and keeps running
(issue 5 item 4): a milter block with `command` is started by the master,
health-checked (connect + negotiate) before sessions use it, its output
logged, restarted with a growing delay when it dies, and while it is down
sessions get its fallback at once instead of waiting for a connect timeout.
A reload keeps an unchanged one running and stops a removed one; a stop
stops them all; as root it runs as its `user`.
"""

import json
import os
import pwd
import re
import signal
import time

import harness
from common import eq, ok, test, SLOW
from daemon_workers import wait_for, wait_log, status, rewrite


def supervised(env, name, spec, log, fallback="tempfail", extra="", args=()):
    argv = [env.testmilter_bin, "--listen", spec, "--log", log] + list(args)
    return ('milter "%s" { socket = "%s", fallback = "%s",\n'
            '  command = { %s },\n  health_interval = 0.5, restart_delay = 1%s }\n'
            % (name, spec, fallback, ", ".join('"%s"' % a for a in argv), extra))


def child(env, hub, name):
    for c in status(env, hub)["children"]:
        if c["name"] == name:
            return c
    raise AssertionError("no child %r in status" % name)


def wait_up(env, hub, name, not_pid=None, timeout=10.0):
    return wait_for("%s to be up%s" % (name, " with a new pid" if not_pid else ""),
                    lambda: (lambda c: c if c["state"] == "up" and c["pid"] != not_pid else None)
                    (child(env, hub, name)), timeout)


def sessions_in(log):
    try:
        with open(log) as f:
            return sum(1 for ln in f if json.loads(ln).get("cmd") == "optneg")
    except FileNotFoundError:
        return 0


@test
def supervised_milter_is_started_checked_logged_and_used(env):
    spec, log = env.unix_spec("tm.sock"), env.path("tm.log")
    hub = env.hub(supervised(env, "tm", spec, log))
    c = wait_up(env, hub, "tm")
    ok(c["pid"] > 0 and os.path.exists("/proc/%d" % c["pid"]), "its process runs: %r" % c)
    wait_log(hub, r"child tm started: pid %d: .*milterhub-testmilter --listen" % c["pid"])
    # The testmilter's own stderr line, logged by the master under the child's name.
    wait_log(hub, r"child tm\[%d\]: .*listening on" % c["pid"])
    wait_log(hub, r"child tm\[%d\] is up" % c["pid"])
    checks = sessions_in(log)  # health checks negotiate too
    eq(env.mta(hub.spec)["result"], "accept", "a session through the supervised milter")
    ok(sessions_in(log) >= checks + 1, "the milter saw the session")
    r = env.ctl(hub, "children")
    ok(re.search(r"^tm\s+up\s+on\s+1\s+0\s+pid %d, 0 restarts" % c["pid"], r.stdout, re.M),
       "children table:\n%s" % r.stdout)


@test
def killed_supervised_milter_restarts_with_backoff_and_sessions_get_its_fallback_at_once(env):
    spec, log = env.unix_spec("tm.sock"), env.path("tm.log")
    hub = env.hub(supervised(env, "tm", spec, log, fallback="tempfail",
                             extra=", restart_delay = 1.5, timeouts = { connect = 5 }"))
    first = wait_up(env, hub, "tm")["pid"]
    t_kill = time.monotonic()
    os.kill(first, signal.SIGKILL)
    wait_for("tm to be marked down", lambda: child(env, hub, "tm")["state"] != "up")
    # While it is down: the fallback, without the 5 s connect timeout.
    r = env.mta(hub.spec)
    eq(r["stages"][0]["reply"], "tempfail", "connect reply while the milter is down")
    ok(r["_elapsed"] < 1.0 * SLOW, "the fallback took %.2fs (no connect timeout)" % r["_elapsed"])
    wait_log(hub, r"child tm\[%d\] killed by SIGKILL.*restarting in 1.5 s" % first)
    second = wait_up(env, hub, "tm", not_pid=first)["pid"]
    d1 = time.monotonic() - t_kill
    ok(d1 >= 1.4, "restarted %.2fs after the kill, restart_delay is 1.5" % d1)
    eq(child(env, hub, "tm")["restarts"], 1, "restarts")
    eq(env.mta(hub.spec)["result"], "accept", "sessions use it again once it is up")
    # A second quick death: the delay doubles.
    t_kill = time.monotonic()
    os.kill(second, signal.SIGKILL)
    wait_log(hub, r"child tm\[%d\] killed by SIGKILL.*restarting in 3 s" % second)
    wait_up(env, hub, "tm", not_pid=second, timeout=15)
    d2 = time.monotonic() - t_kill
    ok(d2 >= 2.9, "second restart after %.2fs, expected the doubled delay of 3 s" % d2)
    st = status(env, hub)
    ok(st["children"][0]["fallbacks"] >= 1, "fallbacks counted: %r" % st["children"][0])


@test
def hung_supervised_milter_is_marked_down_killed_and_restarted(env):
    spec, log = env.unix_spec("tm.sock"), env.path("tm.log")
    hub = env.hub(supervised(env, "tm", spec, log,
                             extra=", timeouts = { connect = 0.3, read = 0.3 }"))
    pid = wait_up(env, hub, "tm")["pid"]
    os.kill(pid, signal.SIGSTOP)  # alive but answering nothing
    try:
        wait_log(hub, r"child tm\[%d\] is down" % pid, timeout=10)
        r = env.mta(hub.spec)
        eq(r["stages"][0]["reply"], "tempfail", "connect reply while it hangs")
        wait_up(env, hub, "tm", not_pid=pid, timeout=15)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    ok(not os.path.exists("/proc/%d/stat" % pid) or "Z" in open("/proc/%d/stat" % pid).read(),
       "the hung process was killed")


@test
def reload_keeps_an_unchanged_supervised_milter_and_stops_a_removed_one(env):
    s1, l1 = env.unix_spec("a.sock"), env.path("a.log")
    s2, l2 = env.unix_spec("b.sock"), env.path("b.log")
    spec = env.unix_spec("hub.sock")
    head = 'manager { listen = "%s", control = "%s" }\n' % (spec, env.unix_spec("ctl.sock"))
    hub = env.hub(head + supervised(env, "a", s1, l1) + supervised(env, "b", s2, l2), listen=spec)
    pa = wait_up(env, hub, "a")["pid"]
    pb = wait_up(env, hub, "b")["pid"]
    rewrite(hub, head + supervised(env, "a", s1, l1))
    eq(env.ctl(hub, "reload").returncode, 0, "reload")
    wait_for("b's process to end", lambda: not os.path.exists("/proc/%d/cmdline" % pb)
             or open("/proc/%d/stat" % pb).read().rpartition(")")[2].split()[0] == "Z")
    eq(child(env, hub, "a")["pid"], pa, "a kept its process over the reload")
    eq([c["name"] for c in status(env, hub)["children"]], ["a"], "children after the reload")


@test
def stop_ends_the_supervised_milters_too(env):
    spec, log = env.unix_spec("tm.sock"), env.path("tm.log")
    hub = env.hub(supervised(env, "tm", spec, log))
    pid = wait_up(env, hub, "tm")["pid"]
    eq(hub.stop(), 0, "exit status")
    ok(not os.path.exists("/proc/%d/cmdline" % pid), "the supervised milter outlived the daemon")


@test
def supervised_milter_with_a_command_that_cannot_run_stays_down_and_sessions_go_on(env):
    spec = env.unix_spec("tm.sock")
    hub = env.hub('milter "broken" { socket = "%s", fallback = "accept", '
                  'command = { "/nonexistent/milter" }, restart_delay = 0.2 }\n' % spec)
    wait_log(hub, r"child broken.*(exited|cannot)")
    ok(child(env, hub, "broken")["state"] != "up", "a milter that cannot start is not up")
    r = env.mta(hub.spec)
    eq(r["result"], "accept", "the session got the fallback accept")
    ok(r["_elapsed"] < 1.0 * SLOW, "took %.2fs" % r["_elapsed"])


@test
def as_root_a_supervised_milter_runs_as_its_user(env):
    if os.geteuid() != 0:
        harness.skip("needs root")
    os.chmod(env.tmp, 0o777)
    spec, log = env.unix_spec("tm.sock"), env.path("tm.log")
    hub = env.hub(supervised(env, "tm", spec, log, extra=', user = "nobody"'))
    pid = wait_up(env, hub, "tm")["pid"]
    with open("/proc/%d/status" % pid) as f:
        uids = re.search(r"^Uid:\s+(.*)$", f.read(), re.M).group(1).split()
    eq(set(int(u) for u in uids), {pwd.getpwnam("nobody").pw_uid}, "the milter's uids")
