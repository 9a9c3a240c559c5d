"""
postfix_hub - interop with a real MTA: Debian's Postfix (a private instance per test, on
loopback, tests/lib/postfix.py) with smtpd_milters pointing at milterhub, and behind the hub
Debian's opendkim (signing) and libmilter_milter (tests/interop/libmilter_milter.c).

Registered into tests/interop/run.py by importing this module. What each test proves:

  hub scenarios (issue 3, "Interop with a real MTA")
    postfix_hub_libmilter_then_opendkim_sign_final_message
        delivered mail carries X-Libmilter, the Subject libmilter changed, and a
        DKIM-Signature that verifies (opendkim -t, public key from TestDNSData): opendkim
        behind the hub signed the message with libmilter's modifications applied;
    postfix_hub_rcpt_reject_refuses_only_that_rcpt_over_tcp
        the libmilter child's 550 5.1.1 for <reject@example.org> reaches the SMTP client for
        that recipient only; the other recipient is delivered (hub on TCP, Postfix form);
    postfix_hub_dead_child_fallback_accept_delivers
    postfix_hub_dead_child_fallback_tempfail_gives_4xx
        a child whose socket has nothing listening: fallback accept lets mail through (the
        live child still acts), fallback tempfail makes Postfix answer 4xx and deliver nothing;
    postfix_hub_several_messages_on_one_connection
        four transactions on one SMTP connection (Postfix aborts between them): a normal one,
        one whose only recipient is refused, one with a refused and an accepted recipient,
        and one with a 5.4 MB body (above the hub's 4 MiB memory limit): each delivered
        message is signed over libmilter's changes and verifies.

  harness self-checks (no hub: Postfix talks to the milters directly)
    postfix_direct_testmilter, postfix_direct_libmilter_then_opendkim (Postfix's own milter
    chain: the reference result the hub scenarios must equal), postfix_direct_dead_milter_4xx.

Skipped (with the reason) only when postfix/opendkim binaries are absent: scripts/install-deps
installs them, so in CI these run.
"""

import os
import re
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "..", "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)

import harness  # noqa: E402
from harness import eq, ok, skip, test  # noqa: E402
import postfix  # noqa: E402
from postfix import Postfix  # noqa: E402

OPENDKIM = "/usr/sbin/opendkim"
GENKEY = "/usr/sbin/opendkim-genkey"
SENDER = "<sender@example.org>"
OKR, OKR2, REJ = "<ok@example.org>", "<ok2@example.org>", "<reject@example.org>"


# ------------------------------------------------------------------ peers

def require_opendkim():
    missing = [p for p in (OPENDKIM, GENKEY) if not os.access(p, os.X_OK)]
    if missing:
        skip("opendkim not installed (%s missing; scripts/install-deps installs opendkim, "
             "opendkim-tools)" % ", ".join(missing))


def libmilter(env, spec):
    """libmilter_milter on `spec`; its unix socket is made connectable by user postfix
    (libmilter creates it with the process umask)."""
    exe = os.path.join(env.build, "tests/interop/libmilter_milter")
    if not os.access(exe, os.X_OK):
        skip("libmilter_milter not built (needs libmilter-dev): " + exe)
    # libmilter takes seconds to stop on SIGTERM: SIGKILL after 1 s.
    env.start("libmilter_milter", postfix.world_writable_umask([exe, spec]), ready=spec,
              grace=1.0, wrap=False)
    return spec


class Dkim:
    """A signing key for example.org, selector test, in env.tmp/dkim."""

    def __init__(self, env):
        require_opendkim()
        self.env = env
        self.dir = env.path("dkim")
        os.mkdir(self.dir)
        r = env.run("opendkim-genkey", [GENKEY, "-D", self.dir, "-d", "example.org",
                                        "-s", "test", "-b", "1024"], wrap=False)
        eq(r.returncode, 0, "opendkim-genkey exit status (stderr: %s)" % r.stderr.strip())
        self.key = os.path.join(self.dir, "test.private")
        with open(os.path.join(self.dir, "test.txt")) as f:
            # test._domainkey IN TXT ( "v=DKIM1; h=sha256; k=rsa; " "p=..." ) ; comment
            self.txt = "".join(re.findall(r'"([^"]*)"', f.read()))
        ok(self.txt.startswith("v=DKIM1") and "p=" in self.txt,
           "unexpected opendkim-genkey TXT record: %r" % self.txt)

    def signer(self, spec, label="opendkim"):
        """Start opendkim signing for example.org on `spec` (Sendmail form: local:/path,
        unix:/path or inet:PORT@127.0.0.1). Unix socket mode 0666 (UMask 000)."""
        n = len([p for p in self.env.procs if p.label.startswith("opendkim")]) + 1
        conf = os.path.join(self.dir, "sign%d.conf" % n)
        sock = spec.replace("unix:", "local:", 1) if spec.startswith("unix:") else spec
        with open(conf, "w") as f:
            f.write("Syslog no\nBackground no\nMode s\nDomain example.org\nSelector test\n"
                    "KeyFile %s\nRequireSafeKeys no\nInternalHosts 127.0.0.1\n"
                    "Socket %s\nUMask 000\nCanonicalization relaxed/simple\n"
                    "PidFile %s\n" % (self.key, sock, os.path.join(self.dir, "od%d.pid" % n)))
        # -f: foreground. opendkim is a libmilter program: slow on SIGTERM.
        self.env.start(label, [OPENDKIM, "-f", "-x", conf], ready=spec, grace=1.0, wrap=False)
        return spec

    def verify(self, text):
        """Verify the DKIM signature of message `text` offline (opendkim -t, the public key
        from TestDNSData: no DNS query). Returns (passed, output)."""
        path = os.path.join(self.dir, "verify-%d.eml" % len(self.env.runs))
        with open(path, "w") as f:
            f.write(text)
        dns = os.path.join(self.dir, "dns.txt")
        with open(dns, "w") as f:
            f.write("test._domainkey.example.org %s\n" % self.txt)
        conf = os.path.join(self.dir, "verify.conf")
        with open(conf, "w") as f:
            f.write("Syslog no\nMode v\nTestDNSData file:%s\n" % dns)
        r = self.env.run("opendkim -t", [OPENDKIM, "-x", conf, "-vv", "-t", path],
                         timeout=20, wrap=False)
        out = (r.stdout + r.stderr).strip()
        passed = r.returncode == 0 and re.search(
            r"verification \(s=test, d=example\.org[^)]*\) succeeded", out) is not None
        return passed, out


def dead_socket(env, name="dead.sock"):
    """A unix socket path that exists but where nothing listens (connect: ECONNREFUSED)."""
    path = env.path(name)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    os.chmod(path, 0o666)  # refused for lack of a listener, not for permissions
    return "unix:" + path


def hub(env, children, listen=None):
    """Start milterhub with `children` = [(name, spec, fallback or None)] in chain order,
    listening on `listen` (default: a unix socket in env.tmp, mode 0666 so Postfix's smtpd,
    running as user postfix, can connect). Returns the hub's Proc (.spec)."""
    spec = listen or env.unix_spec("hub.sock")
    lines = []
    if spec.startswith("unix:"):
        lines.append('manager { listen = "%s", socket_mode = "0666" }' % spec)
    else:
        lines.append('manager { listen = "%s" }' % spec)
    for name, child, fallback in children:
        extra = ', fallback = "%s"' % fallback if fallback else ""
        lines.append('milter "%s" { socket = "%s"%s }' % (name, child, extra))
    return env.hub("\n".join(lines) + "\n", listen=spec)


def postfix_for(env, milters):
    """Start a private Postfix whose smtpd_milters are `milters`."""
    postfix.require_postfix()
    return Postfix(env, milters=milters).start()


# ------------------------------------------------------------ assertions

def check_signed_final_message(dkim, m):
    eq(m.header("X-Libmilter"), ["yes"], "X-Libmilter header(s) of the delivered message")
    eq(m.header("Subject"), ["changed by libmilter"], "Subject of the delivered message")
    sigs = m.header("DKIM-Signature")
    eq(len(sigs), 1, "DKIM-Signature headers of the delivered message (headers: %r)"
       % [h[0] for h in m.headers])
    ok("d=example.org" in sigs[0] and "s=test" in sigs[0],
       "DKIM-Signature without d=example.org; s=test: %r" % sigs[0])
    passed, out = dkim.verify(m.text)
    ok(passed, "the delivered message's DKIM signature does not verify (opendkim signed "
       "something else than what Postfix delivered?):\n" + out)


def check_hub_answered(pf, h):
    """Postfix talked milter with the hub without trouble (milter_default_action = tempfail
    would hide a hub failure behind a 4xx) and the hub still runs."""
    eq(pf.milter_warnings(), [], "Postfix's warnings about its milter (the hub)")
    ok(h.popen.poll() is None, "milterhub exited (status %s)" % h.popen.returncode)


def code_class(code):
    return None if code is None else code // 100


# ------------------------------------------------------------- self-checks

@test
def postfix_direct_testmilter(env):
    """Harness self-check: Postfix -> milterhub-testmilter directly (unix socket 0666)."""
    postfix.require_postfix()
    tm = env.testmilter("--on", "rcpt:<reject@example.org>=reply:550:5.7.1:go away",
                        "--on", "eom=add-header:X-Testmilter:seen")
    pf = postfix_for(env, tm.spec)
    r = pf.send(SENDER, [OKR, REJ])
    eq(r.rcpt_codes[OKR][0], 250, "RCPT %s (%r)" % (OKR, r))
    eq(r.rcpt_codes[REJ], (550, "5.7.1 go away"), "RCPT %s" % REJ)
    eq(r.data_code, 250, "DATA (%r)" % r)
    m = pf.delivered(1)[0]
    eq(m.rcpts, [OKR], "delivered recipients")
    eq(m.header("X-Testmilter"), ["seen"], "X-Testmilter")
    ok("connect" in tm.cmds() and "eom" in tm.cmds(), "testmilter log: %r" % tm.cmds())
    eq(pf.milter_warnings(), [], "Postfix's warnings about its milter")
    pf.stop()


@test
def postfix_direct_libmilter_then_opendkim(env):
    """Harness self-check and reference: Postfix's own chain libmilter_milter, opendkim —
    what the hub in front of the same two must reproduce."""
    postfix.require_postfix()
    dkim = Dkim(env)
    lm = libmilter(env, env.unix_spec("lm.sock"))
    od = dkim.signer(env.unix_spec("dkim.sock"))
    pf = postfix_for(env, [lm, od])
    r = pf.send(SENDER, [OKR, REJ])
    eq(r.rcpt_codes[REJ], (550, "5.1.1 no such user here"), "RCPT %s" % REJ)
    eq(r.data_code, 250, "DATA (%r)" % r)
    m = pf.delivered(1)[0]
    eq(m.rcpts, [OKR], "delivered recipients")
    check_signed_final_message(dkim, m)
    eq(pf.milter_warnings(), [], "Postfix's warnings about its milters")
    pf.stop()


@test
def postfix_direct_dead_milter_4xx(env):
    """Harness self-check: milter_default_action = tempfail turns an unreachable milter
    into 4xx, nothing delivered."""
    postfix.require_postfix()
    pf = postfix_for(env, dead_socket(env))
    r = pf.send(SENDER, [OKR])
    bad = r.first_failure()
    ok(bad is not None, "every SMTP reply was 2xx though the only milter is dead: %r" % r)
    eq(code_class(bad[0]), 4, "first non-2xx SMTP reply (%r)" % r)
    eq(r.data_code, None, "DATA reached (%r)" % r)
    eq(pf.delivered(0, timeout=0), [], "delivered messages")
    ok(pf.wait_milter_warning("Connection refused"),
       "no 'Connection refused' milter warning in the maillog (check_hub_answered relies on "
       "such warnings):\n" + pf.log_tail())
    pf.stop()


# -------------------------------------------------------- hub scenarios

@test
def postfix_hub_libmilter_then_opendkim_sign_final_message(env):
    postfix.require_postfix()
    dkim = Dkim(env)
    lm = libmilter(env, env.unix_spec("lm.sock"))
    od = dkim.signer(env.unix_spec("dkim.sock"))
    h = hub(env, [("libmilter", lm, None), ("opendkim", od, None)])
    pf = postfix_for(env, h.spec)
    r = pf.send(SENDER, [OKR])
    eq(r.rcpt_codes[OKR][0], 250, "RCPT %s (%r)" % (OKR, r))
    eq(r.data_code, 250, "DATA (%r)" % r)
    m = pf.delivered(1)[0]
    eq(m.rcpts, [OKR], "delivered recipients")
    check_signed_final_message(dkim, m)
    check_hub_answered(pf, h)
    pf.stop()


@test
def postfix_hub_rcpt_reject_refuses_only_that_rcpt_over_tcp(env):
    postfix.require_postfix()
    dkim = Dkim(env)
    lm = libmilter(env, "inet:%d@127.0.0.1" % harness.free_port())
    od = dkim.signer("inet:%d@127.0.0.1" % harness.free_port())
    port = harness.free_port()
    h = hub(env, [("libmilter", lm, None), ("opendkim", od, None)],
            listen="inet:%d@127.0.0.1" % port)
    pf = postfix_for(env, "inet:127.0.0.1:%d" % port)  # Postfix form
    r = pf.send(SENDER, [OKR, REJ, OKR2])
    eq(r.rcpt_codes[OKR][0], 250, "RCPT %s (%r)" % (OKR, r))
    eq(r.rcpt_codes[REJ], (550, "5.1.1 no such user here"), "RCPT %s" % REJ)
    eq(r.rcpt_codes[OKR2][0], 250, "RCPT %s (%r)" % (OKR2, r))
    eq(r.data_code, 250, "DATA (%r)" % r)
    m = pf.delivered(1)[0]
    eq(sorted(m.rcpts), sorted([OKR, OKR2]), "delivered recipients (Postfix's order varies)")
    check_signed_final_message(dkim, m)
    check_hub_answered(pf, h)
    pf.stop()


@test
def postfix_hub_dead_child_fallback_accept_delivers(env):
    postfix.require_postfix()
    lm = libmilter(env, env.unix_spec("lm.sock"))
    h = hub(env, [("dead", dead_socket(env), "accept"), ("libmilter", lm, None)])
    pf = postfix_for(env, h.spec)
    r = pf.send(SENDER, [OKR, REJ])
    eq(r.rcpt_codes[OKR][0], 250, "RCPT %s (%r)" % (OKR, r))
    eq(r.rcpt_codes[REJ], (550, "5.1.1 no such user here"), "RCPT %s (the live child)" % REJ)
    eq(r.data_code, 250, "DATA (%r)" % r)
    m = pf.delivered(1)[0]
    eq(m.rcpts, [OKR], "delivered recipients")
    eq(m.header("X-Libmilter"), ["yes"], "X-Libmilter (the live child still acts)")
    check_hub_answered(pf, h)
    pf.stop()


@test
def postfix_hub_dead_child_fallback_tempfail_gives_4xx(env):
    postfix.require_postfix()
    lm = libmilter(env, env.unix_spec("lm.sock"))
    h = hub(env, [("libmilter", lm, None), ("dead", dead_socket(env), "tempfail")])
    pf = postfix_for(env, h.spec)
    r = pf.send(SENDER, [OKR])
    bad = r.first_failure()
    ok(bad is not None,
       "every SMTP reply was 2xx though a child with fallback tempfail is dead: %r" % r)
    eq(code_class(bad[0]), 4, "first non-2xx SMTP reply (%r)" % r)
    time.sleep(0.2)  # a wrongly accepted message would be relayed within milliseconds
    eq(pf.delivered(0, timeout=0), [], "delivered messages")
    check_hub_answered(pf, h)
    pf.stop()


@test
def postfix_hub_several_messages_on_one_connection(env):
    postfix.require_postfix()
    dkim = Dkim(env)
    lm = libmilter(env, env.unix_spec("lm.sock"))
    od = dkim.signer(env.unix_spec("dkim.sock"))
    h = hub(env, [("libmilter", lm, None), ("opendkim", od, None)])
    pf = postfix_for(env, h.spec)
    big = ("y" * 76 + "\n") * 70000  # 5.4 MB: above the hub's default 4 MiB in memory
    conn = pf.smtp()
    r1 = pf.send(SENDER, [OKR], conn=conn, subject="first")
    r2 = pf.send(SENDER, [REJ], conn=conn, subject="nobody")
    r3 = pf.send(SENDER, [REJ, OKR2], conn=conn, subject="third")
    r4 = pf.send(SENDER, [OKR], conn=conn, subject="big", body=big)
    conn.quit()
    eq(r1.data_code, 250, "DATA of message 1 (%r)" % r1)
    eq(r2.rcpt_codes[REJ], (550, "5.1.1 no such user here"), "RCPT of message 2")
    eq(r2.data_code, None, "DATA of message 2 (no recipient left)")
    eq(r3.rcpt_codes[REJ], (550, "5.1.1 no such user here"), "RCPT %s of message 3" % REJ)
    eq(r3.data_code, 250, "DATA of message 3 (%r)" % r3)
    eq(r4.data_code, 250, "DATA of message 4 (%r)" % r4)
    ms = pf.delivered(3)
    eq(len(ms), 3, "delivered messages")
    by_rcpts = sorted((m.rcpts, len(m.body)) for m in ms)
    eq([x[0] for x in by_rcpts], sorted([[OKR], [OKR], [OKR2]]), "delivered recipients")
    ok(max(x[1] for x in by_rcpts) >= len(big), "the big body was not delivered whole: %r"
       % [x[1] for x in by_rcpts])
    for m in ms:
        check_signed_final_message(dkim, m)
    check_hub_answered(pf, h)
    pf.stop()
