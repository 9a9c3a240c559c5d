"""
daemon_control - milterhubctl, the client of the control socket (issue 5),
against everything but the real master: no daemon (no socket file), a stale
socket file, a fake control server in a thread speaking the wire protocol of
src/daemon/mh_control.h (ok/error answers, the request line it receives, a
held `stop` connection, silence, garbage), a root-owned 0600 socket seen by
user nobody, the `control` key of a -c config, and usage errors (64, no
connection). Exit status: 0 ok, 1 error answer, 2 no usable answer, 64 usage.
Tests against the real milterhub master live with the master's tests.
"""

import os
import socket
import threading
import time

from common import eq, ok, skip, test, SLOW


class FakeControl:
    """A control server in a thread: accepts on a unix socket, reads one line,
    writes `answer` (bytes; None: say nothing), keeps the connection `hold`
    seconds, closes. `requests` collects the lines received (with "\\n")."""

    def __init__(self, env, answer=b"ok\n", hold=0.0, name="control.sock"):
        self.path = env.path(name)
        self.spec = "unix:" + self.path
        self.answer, self.hold = answer, hold
        self.requests = []
        self.accepted = 0
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        env.note("fake control server on %s: requests %r" % (self.path, self.requests))

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.settimeout(5.0 * SLOW)
                data = b""
                try:
                    while b"\n" not in data and len(data) < 4096:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                self.requests.append(data.decode("utf-8", "replace"))
                if self.answer is not None:
                    try:
                        conn.sendall(self.answer)
                    except OSError:
                        pass
                self._stop.wait(self.hold)

    def close(self):
        self._stop.set()
        self.sock.close()
        self.thread.join(timeout=10)


def fake(env, **kw):
    f = FakeControl(env, **kw)
    _FAKES.setdefault(id(env), []).append(f)
    return f


_FAKES = {}


def with_fake(fn):
    """Close the fake servers a test made, whatever happened."""
    def run(env):
        try:
            fn(env)
        finally:
            for f in _FAKES.pop(id(env), []):
                f.close()
    run.__name__ = fn.__name__
    return run


def ctl(env, spec, *args, timeout=60.0):
    return env.ctl(spec, *args, timeout=timeout)


def expect(r, rc, stdout=None, stderr=None, stderr_has=()):
    what = "milterhubctl %s" % " ".join(r.argv[1:])
    eq(r.returncode, rc, "exit status of " + what + " (stderr: %r)" % r.stderr)
    if stdout is not None:
        eq(r.stdout, stdout, "stdout of " + what)
    if stderr is not None:
        eq(r.stderr, stderr, "stderr of " + what)
    for s in stderr_has:
        ok(s in r.stderr, "stderr of %s should hold %r: %r" % (what, s, r.stderr))


# ------------------------------------------------------- no daemon at all

@test
def ctl_without_socket_file_says_not_running(env):
    spec = env.unix_spec("nothing-here.sock")
    r = ctl(env, spec, "status")
    expect(r, 2, stdout="", stderr="milterhubctl: milterhub is not running "
           "(no control socket at %s)\n" % spec[5:])


@test
def ctl_stale_socket_file_says_not_running(env):
    path = env.path("stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # never listened: connect() is refused
    r = ctl(env, "unix:" + path, "reload")
    expect(r, 2, stdout="", stderr="milterhubctl: milterhub is not running "
           "(stale control socket at %s)\n" % path)


# ------------------------------------------------- a fake control server

@test
@with_fake
def ctl_ok_answer_goes_to_stdout(env):
    f = fake(env, answer=b"ok\nmilterhub 0.1.0: up\n3 children\n")
    r = ctl(env, f.spec, "status")
    expect(r, 0, stdout="milterhub 0.1.0: up\n3 children\n", stderr="")
    eq(f.requests, ["status\n"], "request lines the server received")


@test
@with_fake
def ctl_status_json_sends_one_line_of_words(env):
    body = b'{"workers": 2, "children": []}\n'
    f = fake(env, answer=b"ok\n" + body)
    r = ctl(env, f.spec, "status", "--json")
    expect(r, 0, stdout=body.decode(), stderr="")
    eq(f.requests, ["status --json\n"], "request line")


@test
@with_fake
def ctl_error_answer_goes_to_stderr_with_exit_1(env):
    f = fake(env, answer=b"error\nunknown child 'spam'\n")
    r = ctl(env, f.spec, "enable", "spam")
    expect(r, 1, stdout="", stderr="milterhubctl: unknown child 'spam'\n")
    eq(f.requests, ["enable spam\n"], "request line")


@test
@with_fake
def ctl_multi_line_error_is_prefixed_line_by_line(env):
    f = fake(env, answer=b"error\nreload failed\nmilterhub.lua:3: unknown key 'sockt'\n")
    r = ctl(env, f.spec, "reload")
    expect(r, 1, stdout="", stderr="milterhubctl: reload failed\n"
           "milterhubctl: milterhub.lua:3: unknown key 'sockt'\n")


@test
@with_fake
def ctl_busy_server_is_an_error(env):
    f = fake(env, answer=b"error\nbusy\n")
    r = ctl(env, f.spec, "children")
    expect(r, 1, stdout="", stderr="milterhubctl: busy\n")


@test
@with_fake
def ctl_empty_ok_body_prints_nothing(env):
    f = fake(env, answer=b"ok\n")
    r = ctl(env, f.spec, "disable", "dkim")
    expect(r, 0, stdout="", stderr="")
    eq(f.requests, ["disable dkim\n"], "request line")


@test
@with_fake
def ctl_every_command_sends_its_request_line(env):
    f = fake(env, answer=b"ok\n")
    cases = [(["status"], "status\n"), (["status", "--json"], "status --json\n"),
             (["children"], "children\n"), (["children", "--json"], "children --json\n"),
             (["enable", "spam"], "enable spam\n"), (["disable", "spam"], "disable spam\n"),
             (["reload"], "reload\n"), (["stop"], "stop\n")]
    for args, _ in cases:
        expect(ctl(env, f.spec, *args), 0, stdout="")
    eq(f.requests, [line for _, line in cases], "request lines, in order")


@test
@with_fake
def ctl_stop_waits_until_the_daemon_closes(env):
    f = fake(env, answer=b"ok\nstopping: draining 1 session\n", hold=1.5)
    r = ctl(env, f.spec, "stop")
    expect(r, 0, stdout="stopping: draining 1 session\n", stderr="")
    ok(r.elapsed >= 1.4, "stop returned after %.2fs, before the server closed (1.5s)"
       % r.elapsed)


@test
@with_fake
def ctl_silent_server_times_out_with_exit_2(env):
    f = fake(env, answer=None, hold=10.0)
    r = ctl(env, f.spec, "--timeout", "1", "status")
    expect(r, 2, stdout="", stderr="milterhubctl: no answer from milterhub within 1 s\n")
    ok(r.elapsed < 5.0 * SLOW, "timed out after %.2fs, want about 1s" % r.elapsed)


@test
@with_fake
def ctl_stop_that_never_closes_times_out(env):
    f = fake(env, answer=b"ok\nstopping\n", hold=10.0)
    r = ctl(env, f.spec, "--timeout", "1", "stop")
    eq(r.returncode, 2, "exit status (stderr %r)" % r.stderr)
    eq(r.stdout, "stopping\n", "the body is printed as it arrives")
    ok("within 1 s" in r.stderr, "stderr names the deadline: %r" % r.stderr)


@test
@with_fake
def ctl_garbled_or_missing_answer_is_exit_2(env):
    f = fake(env, answer=b"hello\n")
    r = ctl(env, f.spec, "status")
    expect(r, 2, stdout="", stderr_has=["unexpected answer from milterhub"])
    f.answer = b""
    r = ctl(env, f.spec, "status")
    expect(r, 2, stdout="", stderr="milterhubctl: milterhub closed the connection "
           "without answering\n")


# ---------------------------------------------------- permission denied

@test
@with_fake
def ctl_permission_denied_on_a_0600_root_socket(env):
    if os.geteuid() != 0:
        skip("needs root (runs milterhubctl as user nobody)")
    f = fake(env, answer=b"ok\n")
    os.chmod(env.tmp, 0o755)  # nobody may reach the socket, not connect to it
    os.chmod(f.path, 0o600)
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            env.ctl_bin, "--socket", f.spec, "status"]
    r = env.run("milterhubctl as nobody", argv, timeout=30, wrap=False)
    expect(r, 2, stdout="", stderr="milterhubctl: permission denied on %s (the control "
           "socket is mode 0600 by default: run milterhubctl as root or as milterhub's "
           "user)\n" % f.path)
    eq(f.accepted, 0, "connections the server accepted")


# -------------------------------------------------------- -c CONFIG

@test
@with_fake
def ctl_config_file_names_the_control_socket(env):
    f = fake(env, answer=b"ok\nfrom the config's socket\n")
    conf = env.path("milterhub.lua")
    with open(conf, "w") as fp:
        fp.write('manager { listen = "unix:%s", control = "%s" }\n'
                 % (env.path("hub.sock"), f.spec))
    r = env.run("milterhubctl", [env.ctl_bin, "-c", conf, "children", "--json"], timeout=30)
    expect(r, 0, stdout="from the config's socket\n", stderr="")
    eq(f.requests, ["children --json\n"], "request line")


@test
def ctl_config_without_control_key_uses_the_default_socket(env):
    if os.path.exists("/run/milterhub/control.sock"):
        skip("a milterhub control socket exists at /run/milterhub/control.sock")
    conf = env.path("milterhub.lua")
    with open(conf, "w") as fp:
        fp.write('manager { listen = "unix:%s" }\n' % env.path("hub.sock"))
    r = env.run("milterhubctl", [env.ctl_bin, "-c", conf, "status"], timeout=30)
    expect(r, 2, stdout="", stderr="milterhubctl: milterhub is not running "
           "(no control socket at /run/milterhub/control.sock)\n")


@test
def ctl_bad_config_file_is_exit_2_with_its_message(env):
    conf = env.path("broken.lua")
    with open(conf, "w") as fp:
        fp.write('manager {\n  contrl = "unix:/x" }\n')
    r = env.run("milterhubctl", [env.ctl_bin, "-c", conf, "status"], timeout=30)
    expect(r, 2, stdout="", stderr_has=[conf, "contrl"])
    r = env.run("milterhubctl", [env.ctl_bin, "-c", env.path("missing.lua"), "status"],
                timeout=30)
    expect(r, 2, stdout="", stderr_has=["missing.lua"])


# ------------------------------------------------------------ usage

@test
@with_fake
def ctl_usage_errors_exit_64_without_connecting(env):
    f = fake(env, answer=b"ok\n")
    bad = [["frobnicate"], [], ["enable"], ["enable", "a", "b"], ["disable"],
           ["status", "--xml"], ["reload", "now"], ["stop", "-f"], ["--timeout", "0", "status"],
           ["--timeout", "x", "status"], ["--bogus", "status"]]
    for args in bad:
        r = ctl(env, f.spec, *args)
        eq(r.returncode, 64, "exit status of milterhubctl %s" % " ".join(args))
        eq(r.stdout, "", "stdout of milterhubctl %s" % " ".join(args))
        ok("usage: milterhubctl" in r.stderr, "usage on stderr for %r: %r" % (args, r.stderr))
    r = env.run("milterhubctl", [env.ctl_bin, "--socket", f.spec, "-c", "x.lua", "status"])
    eq(r.returncode, 64, "--socket and -c together")
    time.sleep(0.2)
    eq(f.accepted, 0, "connections the server accepted")


@test
@with_fake
def ctl_help_prints_usage_without_connecting(env):
    f = fake(env, answer=b"ok\n")
    for args in (["help"], ["-h"], ["--help"]):
        r = ctl(env, f.spec, *args)
        eq(r.returncode, 0, "exit status of milterhubctl %s" % " ".join(args))
        ok(r.stdout.startswith("usage: milterhubctl"), "usage on stdout: %r" % r.stdout[:200])
        for cmd in ("status", "children", "enable", "disable", "reload", "stop"):
            ok(cmd in r.stdout, "usage names %r" % cmd)
    eq(f.accepted, 0, "connections the server accepted")
