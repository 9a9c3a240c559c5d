"""
sendmail_hub - interop with a real Sendmail (Debian's sendmail-bin 8.17, unpacked by
scripts/install-deps into /opt/milterhub-test/sendmail, a private instance per test on
loopback: tests/lib/sendmail.py) whose INPUT_MAIL_FILTER points at milterhub; behind the hub
Debian's opendkim (signing) and libmilter_milter (tests/interop/libmilter_milter.c), set up
exactly as in postfix_hub.py (imported).

Registered into tests/interop/run.py by importing this module. Sendmail's wire habits that
differ from Postfix: no 'A' (abort) after each message (the next 'M' or the QUIT follows the
'E' directly), its default macro set (j _ {daemon_name} {if_name} {if_addr} at connect, i
{mail_mailer} ... at MAIL, {rcpt_mailer} {rcpt_host} {rcpt_addr} at RCPT, {msg_id} at end of
message), its own timeouts (T=C:5s;S:10s;R:20s;E:60s), F=T (tempfail when the hub is away).

    sendmail_hub_libmilter_then_opendkim_sign
        a message through Sendmail -> hub (libmilter_milter, opendkim) -> smtp-sink arrives
        with X-Libmilter, libmilter's Subject and a DKIM-Signature that verifies;
    sendmail_hub_rcpt_reject_one_of_three
        libmilter's 550 5.1.1 for <reject@example.org> reaches the client for that RCPT only,
        a testmilter child's reply for <bad@example.org> too; the others are delivered, signed;
    sendmail_hub_two_messages_one_session_no_abort
        two transactions on one SMTP connection (Sendmail sends no abort between them): both
        delivered, both signed over libmilter's changes, the hub saw one session with two
        messages;
    sendmail_hub_slow_child_answered_within_sendmail_timeouts
        Sendmail with T=R:6s;E:6s; a child that never answers the end of message gets its
        fallback after the hub's timeouts.eom (2 s) and the chain goes on: Sendmail gets its
        answer in time and delivers the signed message;
  and in each: the hub logged no protocol error or warning (only the expected timeout in the
  last one), it counted the sessions and messages (milterhubctl stats --json, no fallback,
  no malformed MTA packet; the [session][end] log lines), Sendmail never answered 4xx.

  self-checks (no hub)
    sendmail_direct_testmilter_wire_habits: Sendmail -> milterhub-testmilter directly, two
        messages on one connection: its log shows 'mail' right after the first 'eom' (no
        abort at all) and Sendmail's default connect macros; per-recipient reply honoured;
    sendmail_direct_dead_milter_tempfails: F=T with nothing listening -> 451 4.3.2, nothing
        delivered, and the 4xx shows in Sendmail's traffic log (what the hub tests check).

Skipped (with the reason) when the unpacked Sendmail, Postfix's smtp-sink or opendkim are
missing.
"""

import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "..", "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import harness  # noqa: E402
from harness import eq, ok, test  # noqa: E402
import sendmail  # noqa: E402
from sendmail import Sendmail  # noqa: E402
from postfix_hub import Dkim, check_signed_final_message, dead_socket, hub, libmilter  # noqa: E402

SENDER = "<sender@example.org>"
OKR, OKR2, REJ, BAD = ("<ok@example.org>", "<ok2@example.org>", "<reject@example.org>",
                       "<bad@example.org>")
# Sendmail puts the address in front of a milter's reply text ("<addr>... text").
LM_REJ = (550, "5.1.1 <reject@example.org>... no such user here")


def chain(env, extra=()):
    """Signing key, libmilter_milter and opendkim on unix sockets, the hub in front of them
    (plus `extra` children first), Sendmail pointed at the hub. Returns (dkim, hub, sm)."""
    sendmail.require_sendmail()
    dkim = Dkim(env)
    lm = libmilter(env, env.unix_spec("lm.sock"))
    od = dkim.signer(env.unix_spec("dkim.sock"))
    h = hub(env, list(extra) + [("libmilter", lm, None), ("opendkim", od, None)])
    sm = Sendmail(env, milters=h.spec).start()
    ok(sm.startup_seconds < 5.0, "Sendmail took %.1fs to listen (a DNS/hostname stall?)"
       % sm.startup_seconds)
    return dkim, h, sm


def hub_log(h):
    return h.stderr()


def wait_session_ends(h, n, timeout=10.0):
    """[session][end] lines of the hub's log, once there are `n` (bounded wait: the hub
    logs them when Sendmail closes its milter connection)."""
    deadline = time.monotonic() + timeout * harness.SLOW
    while True:
        ends = [ln for ln in hub_log(h).splitlines() if "[session][end]" in ln]
        if len(ends) >= n or time.monotonic() >= deadline:
            return ends
        time.sleep(0.05)


def sendmail_said_4xx(sm):
    """Sendmail answered 4xx somewhere in its SMTP traffic log (-X)."""
    return re.search(r"^\d+ >>> 4\d\d ", sm.log(), re.M) is not None


def check_hub_clean(env, h, sm, sessions, messages, fallbacks=None, allow=None):
    """The hub is alive, logged no protocol trouble, and counted `sessions` SMTP sessions
    with `messages` messages (its [session][end] lines and milterhubctl stats --json), no
    child fell back; Sendmail never answered 4xx and did not complain about its milter."""
    ok(h.popen.poll() is None, "milterhub exited (status %s)" % h.popen.returncode)
    ends = wait_session_ends(h, sessions)
    eq(len(ends), sessions, "[session][end] lines in the hub's log:\n  " + "\n  ".join(ends))
    for ln in ends:
        ok(re.search(r"\[session\]\[end\]\[[a-z-]+\]\[(accept|pass)\]", ln),
           "hub session did not end with accept/pass: " + ln)
    bad = [ln for ln in hub_log(h).splitlines()
           if re.search(r"protocol|malformed|unexpected|bogus|invalid|timeout|timed out|"
                        r"\b(warn|warning|err|error|crit)\b", ln, re.I)
           and not (allow and re.search(allow, ln))]
    eq(bad, [], "warnings/errors in the hub's log")
    r = env.ctl(h, "stats", "--json")
    eq(r.returncode, 0, "milterhubctl stats --json exit status (%s)" % r.stderr.strip())
    st = json.loads(r.stdout)
    env.note("hub stats: " + r.stdout[:1500])
    eq(st["sessions"]["total"], sessions, "sessions counted by the hub (stats --json)")
    eq(st["sessions"]["open"], 0, "sessions still open in the hub's count")
    eq(st["messages"], messages, "messages counted by the hub (stats --json)")
    eq(st["mta_malformed"], 0, "malformed MTA packets counted by the hub")
    want = {m["name"]: {} for m in st["milters"]}
    want.update(fallbacks or {})
    eq({m["name"]: m["fallbacks"] for m in st["milters"]}, want, "children's fallbacks")
    # Sendmail's side: no 4xx in the SMTP traffic (F=T turns a milter failure into
    # 451 4.3.2), no milter complaint on its stderr.
    ok(not sendmail_said_4xx(sm),
       "Sendmail answered 4xx (a milter failure?):\n" + sm.log_tail())
    ok("ilter" not in sm.daemon.stderr(), "Sendmail complained about its milter:\n"
       + sm.daemon.stderr()[-1500:])


# -------------------------------------------------------------- tests

@test
def sendmail_hub_libmilter_then_opendkim_sign(env):
    dkim, h, sm = chain(env)
    r = sm.send(SENDER, [OKR])
    eq(r.greeting[0], 220, "banner (%r)" % r)
    eq(r.rcpt_codes[OKR][0], 250, "RCPT %s (%r)" % (OKR, r))
    eq(r.data_code, 250, "DATA (%r)\n%s" % (r, sm.log_tail()))
    m = sm.delivered(1)[0]
    eq(m.rcpts, [OKR], "delivered recipients")
    check_signed_final_message(dkim, m)
    check_hub_clean(env, h, sm, 1, 1)
    sm.stop()


@test
def sendmail_hub_rcpt_reject_one_of_three(env):
    sendmail.require_sendmail()
    tm = env.testmilter("--on", "rcpt:bad@example.org=reply:550:5.7.1:bad is refused here")
    dkim, h, sm = chain(env, extra=[("testmilter", tm.spec, None)])
    r = sm.send(SENDER, [OKR, REJ, BAD, OKR2])
    eq(r.rcpt_codes[OKR][0], 250, "RCPT %s (%r)" % (OKR, r))
    eq(r.rcpt_codes[REJ], LM_REJ, "RCPT %s (libmilter child)" % REJ)
    eq(r.rcpt_codes[BAD], (550, "5.7.1 <bad@example.org>... bad is refused here"),
       "RCPT %s (testmilter child)" % BAD)
    eq(r.rcpt_codes[OKR2][0], 250, "RCPT %s (%r)" % (OKR2, r))
    eq(r.data_code, 250, "DATA (%r)" % r)
    m = sm.delivered(1)[0]
    eq(sorted(m.rcpts), sorted([OKR, OKR2]), "delivered recipients")
    check_signed_final_message(dkim, m)
    check_hub_clean(env, h, sm, 1, 1)
    # Sendmail's default macros went through the hub to its children.
    rc = [e for e in tm.all("rcpt", settle=0) if e.get("args", [None])[0] == OKR]
    eq(len(rc), 1, "testmilter's RCPT %s entries" % OKR)
    eq(rc[0].get("macros", {}).get("{rcpt_mailer}"), "relay", "{rcpt_mailer} at RCPT")
    eom = tm.first("eom", settle=0).get("macros", {})
    ok(eom.get("{msg_id}", "").startswith("<"), "{msg_id} at end of message: %r" % eom)
    mail = tm.first("mail", settle=0).get("macros", {})
    ok(mail.get("i"), "queue id macro i at MAIL: %r" % mail)
    sm.stop()


@test
def sendmail_hub_two_messages_one_session_no_abort(env):
    dkim, h, sm = chain(env)
    conn = sm.smtp()
    r1 = sm.send(SENDER, [OKR], conn=conn, subject="first")
    r2 = sm.send(SENDER, [REJ, OKR2], conn=conn, subject="second")
    conn.quit()
    eq(r1.data_code, 250, "DATA of message 1 (%r)" % r1)
    eq(r2.rcpt_codes[REJ], LM_REJ, "RCPT %s of message 2" % REJ)
    eq(r2.data_code, 250, "DATA of message 2 (%r)" % r2)
    ms = sm.delivered(2)
    eq(len(ms), 2, "delivered messages")
    eq(sorted(m.rcpts for m in ms), sorted([[OKR], [OKR2]]), "delivered recipients")
    for m in ms:
        check_signed_final_message(dkim, m)
    check_hub_clean(env, h, sm, 1, 2)
    sm.stop()


@test
def sendmail_direct_testmilter_wire_habits(env):
    """Reference, no hub: what Sendmail itself sends a milter, seen by milterhub-testmilter
    -- two messages on one connection with no abort between them, its default macros."""
    sendmail.require_sendmail()
    tm = env.testmilter("--on", "rcpt:bad@example.org=reply:550:5.7.1:go away",
                        "--on", "eom=add-header:X-Testmilter:seen")
    sm = Sendmail(env, milters=tm.spec).start()
    conn = sm.smtp()
    r1 = sm.send(SENDER, [OKR, BAD], conn=conn, subject="first")
    r2 = sm.send(SENDER, [OKR2], conn=conn, subject="second")
    conn.quit()
    eq(r1.rcpt_codes[BAD], (550, "5.7.1 <bad@example.org>... go away"), "RCPT %s" % BAD)
    eq((r1.data_code, r2.data_code), (250, 250), "DATA replies (%r, %r)" % (r1, r2))
    ms = sm.delivered(2)
    eq(sorted(m.rcpts for m in ms), sorted([[OKR], [OKR2]]), "delivered recipients")
    for m in ms:
        eq(m.header("X-Testmilter"), ["seen"], "X-Testmilter")
    cmds = tm.cmds()
    env.note("testmilter saw: %r" % cmds)
    i = cmds.index("eom")
    eq(cmds[i + 1], "mail", "the command after the first message's end (Sendmail sends no "
       "abort between messages): %r" % cmds)
    eq(cmds.count("abort"), 0, "aborts Sendmail sent: %r" % cmds)
    conn_macros = tm.first("connect", settle=0).get("macros", {})
    for name in ("j", "_", "{daemon_name}"):
        ok(name in conn_macros, "Sendmail's connect macros lack %s: %r" % (name, conn_macros))
    sm.stop()


@test
def sendmail_direct_dead_milter_tempfails(env):
    """Self-check of F=T and of the 4xx detector the hub scenarios rely on: nothing listens
    on the milter socket -> Sendmail answers 451 4.3.2, delivers nothing."""
    sendmail.require_sendmail()
    sm = Sendmail(env, milters=dead_socket(env)).start()
    r = sm.send(SENDER, [OKR])
    bad = r.first_failure()
    ok(bad is not None and bad[0] // 100 == 4, "no 4xx though the milter is dead: %r" % r)
    eq(r.data_code, None, "DATA reached (%r)" % r)
    ok(sendmail_said_4xx(sm), "the 4xx is not in Sendmail's traffic log:\n" + sm.log_tail())
    time.sleep(0.2)
    eq(sm.delivered(0, timeout=0), [], "delivered messages")
    sm.stop()


@test
def sendmail_hub_slow_child_answered_within_sendmail_timeouts(env):
    """Sendmail's own milter timeouts (here T=R:6s;E:6s, tighter than its defaults) are
    kept: a child that never answers the end of message gets its fallback after the hub's
    timeouts.eom (2 s), the chain goes on (libmilter, opendkim sign), Sendmail gets its
    answer in time (no 451 4.3.2 from F=T) and delivers."""
    sendmail.require_sendmail()
    tm = env.testmilter("--on", "eom=hang")
    dkim = Dkim(env)
    lm = libmilter(env, env.unix_spec("lm.sock"))
    od = dkim.signer(env.unix_spec("dkim.sock"))
    spec = env.unix_spec("hub.sock")
    h = env.hub('manager { listen = "%s", socket_mode = "0666" }\n'
                'milter "slow" { socket = "%s", fallback = "accept", timeouts = { eom = 2 } }\n'
                'milter "libmilter" { socket = "%s" }\n'
                'milter "opendkim" { socket = "%s" }\n' % (spec, tm.spec, lm, od), listen=spec)
    sm = Sendmail(env, milters=h.spec, milter_timeouts="C:5s;S:6s;R:6s;E:6s").start()
    t0 = time.monotonic()
    r = sm.send(SENDER, [OKR])
    took = time.monotonic() - t0
    eq(r.data_code, 250, "DATA (%r)\n%s" % (r, sm.log_tail()))
    ok(1.5 <= took < 6.0, "the transaction took %.1fs (the hub's eom timeout is 2 s, "
       "Sendmail's 6 s)" % took)
    m = sm.delivered(1)[0]
    check_signed_final_message(dkim, m)
    check_hub_clean(env, h, sm, 1, 1, fallbacks={"slow": {"end-of-message": {"timeout": 1}}},
                    allow=r"\bslow\b")
    sm.stop()
