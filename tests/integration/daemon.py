"""
daemon - the milterhub process itself (design §3, §4; issue 3 item 1):
--check-config on good and bad files (exit status, FILE:LINE and key in the
message), --show-config loading back, an unusable socket exiting 1 with a
clear message, the unix socket's mode, stale socket removal, TCP listening
in both spec forms, SIGTERM exiting 0 and removing its socket, SIGHUP
reloading it, and the start-up line naming the children in chain order.
"""

import os
import re
import socket
import stat
import time

from common import eq, ok, test, free_port, SLOW

GOOD = """\
manager { listen = "unix:/run/milterhub-test/never-used.sock", fallback = "accept" }
milter "dkim" { socket = "inet:8891@127.0.0.1" }
milter "spam" { socket = "unix:/run/spamass.sock", fallback = "tempfail",
                timeouts = { connect = 5, write = 7, read = 7, eom = 297 },
                evaluate = false, enabled = true }
"""

# (name, config text, line of the error, strings the message must hold)
BAD = [
    ("syntax", 'milter "a" { socket = "unix:/a"\nmilter "b" { socket = "unix:/b" }\n',
     2, ["'}' expected"]),
    ("unknown_manager_key", '\nmanager { lisen = "unix:/x" }\n', 2,
     ["manager", "unknown key 'lisen'"]),
    ("unknown_milter_key", 'manager { }\nmilter "spam" {\n  sockt = "unix:/a" }\n', 2,
     ['milter "spam"', "unknown key 'sockt'"]),
    ("wrong_type", 'milter "a" { socket = "unix:/a", evaluate = "yes" }\n', 1,
     ["key 'evaluate'", "boolean"]),
    ("duplicate", 'milter "a" { socket = "unix:/a" }\nmilter "a" { socket = "unix:/b" }\n', 2,
     ['milter "a"', "duplicate"]),
    ("bad_socket", '\n\nmilter "a" { socket = "inet:x@127.0.0.1" }\n', 3,
     ["key 'socket'", "inet:x@127.0.0.1"]),
    ("bad_fallback", 'manager { fallback = "maybe" }\n', 1, ["key 'fallback'", "maybe"]),
    ("negative_timeout", 'milter "a" { socket = "unix:/a", timeouts = { eom = -1 } }\n', 1,
     ["key 'timeouts.eom'"]),
    ("unknown_condition", 'manager { }\nmilter "grey" {\n  socket = "unix:/g",\n'
     '  when = { "s25r", "no-such-condition" } }\n', 4,
     ['milter "grey"', "key 'when'", "unknown condition 'no-such-condition'"]),
    ("bad_condition_option", 'condition "grey-s25r" {\n  type = "s25r",\n'
     '  whitelst = { "example.com" } }\n', 3, ["unknown key 'whitelst'"]),
]


def write(env, name, text):
    path = env.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


def hub_run(env, *args):
    return env.run("milterhub", [env.hub_bin] + [str(a) for a in args], timeout=30)


def hub_log_line(proc, pattern, wait=5.0):
    """The first stderr line of proc matching pattern (waits, bounded)."""
    deadline = time.monotonic() + wait * SLOW
    while True:
        for line in proc.stderr().splitlines():
            if re.search(pattern, line):
                return line
        if time.monotonic() >= deadline:
            raise AssertionError("no stderr line of %s matches %r; stderr:\n%s"
                                 % (proc.label, pattern, proc.stderr()[-2000:]))
        time.sleep(0.02)


@test
def milterhub_check_config_accepts_a_good_file(env):
    path = write(env, "good.lua", GOOD)
    r = hub_run(env, "--check-config", path)
    eq(r.returncode, 0, "exit status of --check-config on a good file")
    eq(r.stdout, "%s: ok\n" % path, "stdout")


@test
def milterhub_check_config_refuses_bad_files_naming_file_line_and_key(env):
    for name, text, line, wants in BAD:
        path = write(env, name + ".lua", text)
        r = hub_run(env, "--check-config", path)
        eq(r.returncode, 1, "exit status of --check-config on %s" % name)
        eq(r.stdout, "", "stdout of --check-config on %s" % name)
        where = "%s:%d:" % (path, line)
        ok(where in r.stderr, "%s: message lacks %r: %r" % (name, where, r.stderr))
        for w in wants:
            ok(w in r.stderr, "%s: message lacks %r: %r" % (name, w, r.stderr))


@test
def milterhub_running_on_a_bad_config_exits_1(env):
    path = write(env, "bad.lua", 'milter "spam" { sockt = "unix:/a" }\n')
    r = hub_run(env, "-c", path)
    eq(r.returncode, 1, "exit status")
    ok("%s:1:" % path in r.stderr and "sockt" in r.stderr, "message: %r" % r.stderr)


@test
def milterhub_show_config_prints_every_default_and_loads_back(env):
    r = hub_run(env, "--show-config")
    eq(r.returncode, 0, "exit status of --show-config without a file")
    for want in ['listen = "inet:10025@127.0.0.1"', 'socket_mode = "0660"',
                 'fallback = "accept"', 'body_memory_limit = "4M"', "mta_timeout = 600"]:
        ok(want in r.stdout, "defaults lack %r:\n%s" % (want, r.stdout))
    path = write(env, "good.lua", GOOD)
    r = hub_run(env, "--show-config", path)
    eq(r.returncode, 0, "exit status of --show-config FILE")
    ok("timeouts = { connect = 5, write = 7, read = 7, eom = 297 }" in r.stdout,
       "milter defaults missing:\n" + r.stdout)
    ok(r.stdout.index('milter "dkim"') < r.stdout.index('milter "spam"'), "chain order")
    shown = write(env, "shown.lua", r.stdout)
    r2 = hub_run(env, "--check-config", shown)
    eq(r2.returncode, 0, "the shown config loads back (%s)" % r2.stderr)
    r3 = hub_run(env, "--show-config", shown)
    eq(r3.stdout.split("\n", 1)[1], r.stdout.split("\n", 1)[1], "show of the shown config")


@test
def milterhub_bad_usage_exits_1(env):
    eq(hub_run(env, "--no-such-option").returncode, 1, "unknown option")
    eq(hub_run(env, "-c").returncode, 1, "-c without FILE")
    r = hub_run(env, "-h")
    eq(r.returncode, 0, "-h")
    ok("--check-config" in r.stdout, "usage text")


@test
def milterhub_unusable_socket_exits_1_with_a_clear_message(env):
    # A regular file where the unix socket should be: never removed.
    regular = env.path("not-a-socket")
    open(regular, "w").close()
    path = write(env, "c1.lua", 'manager { listen = "unix:%s" }\n' % regular)
    r = hub_run(env, "-c", path)
    eq(r.returncode, 1, "exit status for a regular file in the way")
    ok("cannot listen on unix:%s" % regular in r.stderr, "message: %r" % r.stderr)
    ok(os.path.isfile(regular), "the regular file must survive")
    # A directory that does not exist.
    path = write(env, "c2.lua", 'manager { listen = "unix:%s/no/such/dir/h.sock" }\n' % env.tmp)
    r = hub_run(env, "-c", path)
    eq(r.returncode, 1, "exit status for a missing directory")
    ok("cannot listen on" in r.stderr, "message: %r" % r.stderr)
    # A TCP port someone else listens on.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        port = s.getsockname()[1]
        path = write(env, "c3.lua", 'manager { listen = "inet:%d@127.0.0.1" }\n' % port)
        r = hub_run(env, "-c", path)
        eq(r.returncode, 1, "exit status for a busy port")
        ok("cannot listen on inet:%d@127.0.0.1" % port in r.stderr, "message: %r" % r.stderr)
    finally:
        s.close()


@test
def milterhub_sigterm_exits_0_and_removes_its_unix_socket(env):
    hub = env.hub("")
    sock_path = hub.spec.partition(":")[2]
    ok(os.path.exists(sock_path), "socket file while running")
    eq(hub.stop(), 0, "exit status after SIGTERM")
    ok(not os.path.exists(sock_path), "socket file %s still there after exit" % sock_path)


@test
def milterhub_sigterm_waits_for_open_sessions_then_exits_0(env):
    hub = env.hub("")
    sock_path = hub.spec.partition(":")[2]
    c = socket.socket(socket.AF_UNIX)
    c.connect(sock_path)
    try:
        hub_log_line(hub, r"started")
        os.kill(hub.pid, 15)
        hub_log_line(hub, r"SIGTERM: stopping")
        ok(not os.path.exists(sock_path), "socket removed as soon as accepting stops")
        time.sleep(0.2)
        ok(hub.popen.poll() is None, "exited while a session was open")
    finally:
        c.close()
    eq(hub.popen.wait(timeout=5 * SLOW), 0, "exit status once the session ended")


@test
def milterhub_unix_socket_gets_mode_0660_or_socket_mode(env):
    hub = env.hub("")
    mode = stat.S_IMODE(os.stat(hub.spec.partition(":")[2]).st_mode)
    eq(oct(mode), oct(0o660), "default mode of the unix socket")
    spec = env.unix_spec("hub600.sock")
    hub2 = env.hub('manager { listen = "%s", socket_mode = "0600" }\n' % spec, listen=spec)
    mode = stat.S_IMODE(os.stat(hub2.spec.partition(":")[2]).st_mode)
    eq(oct(mode), oct(0o600), "socket_mode = \"0600\"")


@test
def milterhub_stale_unix_socket_is_replaced(env):
    spec = env.unix_spec("stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(spec.partition(":")[2])
    s.close()  # the file stays, nobody listens: stale
    env.hub("", listen=spec)


@test
def milterhub_listens_on_tcp_in_both_spec_forms(env):
    for spec in ("inet:%d@127.0.0.1" % free_port(), "inet:127.0.0.1:%d" % free_port()):
        hub = env.hub('manager { listen = "%s" }\n' % spec, listen=spec)
        line = hub_log_line(hub, r"listening on")
        ok("inet:" in line, "start line: %r" % line)


@test
def milterhub_start_line_lists_children_in_chain_order(env):
    hub = env.hub('milter "zeta" { socket = "unix:/run/z.sock" }\n'
                  'milter "alpha" { socket = "inet:8891@127.0.0.1", enabled = false }\n'
                  'milter "mid" { socket = "unix:/run/m.sock", evaluate = true }\n')
    line = hub_log_line(hub, r"listening on")
    ok(hub.spec in line, "start line lacks the socket %s: %r" % (hub.spec, line))
    names = re.findall(r"\b(zeta|alpha|mid) \[", line)
    eq(names, ["zeta", "alpha", "mid"], "children in the start line, in order")
    ok("disabled" in line and "evaluate" in line, "flags in the start line: %r" % line)


@test
def milterhub_sighup_reloads_and_the_hub_keeps_running(env):
    hub = env.hub("")
    hub_log_line(hub, r"started")
    os.kill(hub.pid, 1)
    hub_log_line(hub, r"reloaded .*generation 2")
    ok(hub.popen.poll() is None, "milterhub exited on SIGHUP")
    ok(os.path.exists(hub.spec.partition(":")[2]), "socket gone after SIGHUP")
