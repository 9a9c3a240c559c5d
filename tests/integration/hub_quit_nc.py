"""
hub_quit_nc - 'K' (SMFIC_QUIT_NC) from the MTA (milter-protocol.md §6.4):
like QUIT, but the MTA keeps the socket and the next SMTP session starts at
'C' without renegotiation. The hub quits its children and connects fresh
ones with the same offer; a 'C' that arrives before they are ready is held
and run afterwards. Spoken by hand (RawMta): the simulator never sends 'K'.
"""

import socket
import struct
import time

from common import eq, ok, test, on, SLOW
from hub_envelope import start_hub
from hub_failures import RawMta, _closed_within, _read_frame

FIRST_NAME = b"first.example.net"
SECOND_NAME = b"second.example.com"
# Every code a milter may send before its decision (modifications, progress).
MODIFICATIONS = set(b"+-2behimpq")
DECISIONS = set(RawMta.DECISIONS)
ANSWER_LIMIT = 2.0  # seconds the hub may take to answer the 'C' after 'K'

SESSION_EVENTS = ["connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom"]


def connect_payload(name, addr=b"192.0.2.1", port=54321):
    return name + b"\0" + b"4" + struct.pack(">H", port) + addr + b"\0"


def frame(code, payload=b""):
    return struct.pack(">I", len(payload) + 1) + code + payload


class KMta(RawMta):
    """RawMta that records every answer and checks each is a well-formed
    reply sequence: modifications (EOM only), then exactly one decision."""

    def __init__(self, hub):
        RawMta.__init__(self, hub)
        self.answers = []  # (command, [reply codes])

    def read_answer(self, what, limit=None):
        """Read the replies to one command up to its decision; fail (not
        hang) when none comes within `limit` seconds."""
        old = self.s.gettimeout()
        if limit is not None:
            self.s.settimeout(limit * SLOW)
        codes = []
        t0 = time.monotonic()
        try:
            while True:
                f = _read_frame(self.s)
                codes.append(f[:1])
                if f[:1] == b"O" or f[0] in DECISIONS:
                    break
        except socket.timeout:
            raise AssertionError("no decision for %s within %.1fs (replies so far: %r)"
                                 % (what, time.monotonic() - t0, codes))
        finally:
            self.s.settimeout(old)
        self.answers.append((what, codes))
        for c in codes[:-1]:
            ok(what == "E" and c[0] in MODIFICATIONS,
               "reply %r before the decision for %s (all: %r)" % (c, what, codes))
        ok(codes[-1][0] in DECISIONS, "answer to %s is no decision: %r" % (what, codes))
        return codes

    def cmd(self, code, payload=b"", limit=None):
        self.send(code, payload)
        return self.read_answer(code.decode(), limit)

    def expect(self, code, payload, want, what):
        got = self.cmd(code, payload)[-1]
        ok(got in want, "%s: decision %r, want one of %r" % (what, got, want))
        return got

    def session(self, name, sender=b"<s@example.net>", rcpt=b"<r@example.org>",
                connect_sent=False, connect_limit=None):
        """C (unless already sent), H, M, R, T, header, N, B, E: returns the
        codes answering 'E'."""
        if not connect_sent:
            self.send(b"C", connect_payload(name))
        eq(self.read_answer("C", connect_limit)[-1], b"c", "connect reply (%s)" % name.decode())
        self.expect(b"H", name + b"\0", (b"c",), "helo reply")
        self.message(sender, rcpt)
        return self.answers[-1][1]

    def message(self, sender=b"<s@example.net>", rcpt=b"<r@example.org>", subject=b"k"):
        self.expect(b"M", sender + b"\0", (b"c",), "mail reply")
        self.expect(b"R", rcpt + b"\0", (b"c",), "rcpt reply")
        self.expect(b"T", b"", (b"c",), "data reply")
        self.expect(b"L", b"Subject\0" + subject + b"\0", (b"c",), "header reply")
        self.expect(b"N", b"", (b"c",), "eoh reply")
        self.expect(b"B", b"body\r\n", (b"c",), "body reply")
        return self.cmd(b"E")

    def quit_nc_then_connect(self, name):
        """'K' and the next 'C' in one write: the 'C' reaches the hub while
        its new children are still negotiating (the held-'C' path)."""
        self.s.sendall(frame(b"K") + frame(b"C", connect_payload(name)))

    def quit(self):
        self.send(b"Q")
        ok(_closed_within(self.s, 3.0 * SLOW), "hub did not close after QUIT")


def conns(tm):
    """The child's log grouped by connection: {conn: [entries]}."""
    out = {}
    for e in tm.log(settle=5.0):
        out.setdefault(e["conn"], []).append(e)
    return out


def cmds_of(entries):
    return [e["cmd"] for e in entries]


def events_of(entries):
    """The session events of one connection, a run of headers as one."""
    out = []
    for c in cmds_of(entries):
        if c in SESSION_EVENTS and not (c == "header" and out[-1:] == ["header"]):
            out.append(c)
    return out


def assert_quit_and_closed(entries, what):
    cmds = cmds_of(entries)
    ok("quit" in cmds, "%s got no QUIT: %r" % (what, cmds))
    closes = [e for e in entries if e["cmd"] == "close"]
    eq([e.get("reason") for e in closes], ["quit"], "close lines of %s" % what)
    eq(cmds[-2:], ["quit", "close"], "last lines of %s" % what)


def assert_two_sessions(tm, i, first_name=FIRST_NAME, second_name=SECOND_NAME):
    """Child `i` had exactly two connections: the first session's one
    (connect with `first_name`, ended by QUIT) and the second's."""
    by = conns(tm)
    eq(sorted(by), [1, 2], "connections of child %d" % i)
    one, two = by[1], by[2]
    eq([e["hostname"] for e in one if e["cmd"] == "connect"], [first_name.decode()],
       "connect hostname(s) child %d got on conn 1" % i)
    eq([e["hostname"] for e in two if e["cmd"] == "connect"], [second_name.decode()],
       "connect hostname(s) child %d got on conn 2 (the session after 'K')" % i)
    assert_quit_and_closed(one, "child %d conn 1" % i)
    eq(cmds_of(two)[:2], ["optneg", "connect"], "start of child %d conn 2" % i)
    return one, two


# ------------------------------------------------------------------ tests

@test
def hub_quit_nc_starts_a_new_session_without_renegotiation(env):
    tms = [env.testmilter(*on("eom", "add-header:X-One:1")), env.testmilter()]
    hub = start_hub(env, *tms)
    m = KMta(hub)
    try:
        m.negotiate()
        eom1 = m.session(FIRST_NAME)
        ok(b"h" in eom1 and eom1[-1] in (b"c", b"a"),
           "first EOM answer (want the X-One header, then continue/accept): %r" % eom1)
        m.quit_nc_then_connect(SECOND_NAME)  # no wait between 'K' and 'C'
        eom2 = m.session(SECOND_NAME, connect_sent=True, connect_limit=ANSWER_LIMIT)
        ok(eom2[-1] in (b"c", b"a"), "second EOM decision %r, want continue/accept" % eom2[-1])
        ok(b"h" in eom2, "second EOM answer lacks child 1's X-One header: %r" % eom2)
        m.quit()
    finally:
        m.close()
    for what, codes in m.answers:
        ok(codes[-1] != b"O", "the hub answered %s with 'O' (renegotiation)" % what)
    for i, tm in enumerate(tms, 1):
        one, two = assert_two_sessions(tm, i)
        eq(events_of(one), SESSION_EVENTS, "session events child %d got on conn 1" % i)
        eq(events_of(two), SESSION_EVENTS, "session events child %d got on conn 2" % i)
        # Child 2 sees the message as child 1 left it (its X-One) in both sessions.
        want = ["k"] if i == 1 else ["k", "1"]
        eq([e["value"] for e in one if e["cmd"] == "header"], want, "headers on conn 1, child %d" % i)
        eq([e["value"] for e in two if e["cmd"] == "header"], want, "headers on conn 2, child %d" % i)
        assert_quit_and_closed(two, "child %d conn 2" % i)


@test
def hub_quit_nc_then_reject_applies_to_the_new_session_only(env):
    picky = env.testmilter(*on("mail:bad@x", "reject"))
    other = env.testmilter()
    hub = start_hub(env, picky, other)
    m = KMta(hub)
    try:
        m.negotiate()
        m.send(b"C", connect_payload(FIRST_NAME))
        eq(m.read_answer("C")[-1], b"c", "connect reply (session 1)")
        m.expect(b"H", FIRST_NAME + b"\0", (b"c",), "helo reply (session 1)")
        m.expect(b"M", b"<bad@x>\0", (b"r",), "mail reply for <bad@x> (session 1)")
        m.quit_nc_then_connect(SECOND_NAME)
        eom = m.session(SECOND_NAME, sender=b"<good@x>", connect_sent=True,
                        connect_limit=ANSWER_LIMIT)
        ok(eom[-1] in (b"c", b"a"), "EOM decision of session 2 (<good@x>): %r" % eom)
        m.quit()
    finally:
        m.close()
    one, two = assert_two_sessions(picky, 1)
    eq([e["args"][0] for e in one if e["cmd"] == "mail"], ["<bad@x>"], "MAIL child 1 got on conn 1")
    eq([e["args"][0] for e in two if e["cmd"] == "mail"], ["<good@x>"], "MAIL child 1 got on conn 2")
    eq(events_of(two), SESSION_EVENTS, "events child 1 got on conn 2")
    one, two = assert_two_sessions(other, 2)
    eq(events_of(two), SESSION_EVENTS, "events child 2 got on conn 2")
    eq([e["args"][0] for e in two if e["cmd"] == "mail"], ["<good@x>"], "MAIL child 2 got on conn 2")


@test
def hub_quit_nc_mid_transaction_answers_the_next_connect_at_once_and_the_new_session_works(env):
    tms = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, *tms)
    m = KMta(hub)
    try:
        m.negotiate()
        m.send(b"C", connect_payload(FIRST_NAME))
        eq(m.read_answer("C")[-1], b"c", "connect reply (session 1)")
        m.expect(b"H", FIRST_NAME + b"\0", (b"c",), "helo reply (session 1)")
        m.expect(b"M", b"<s1@example.net>\0", (b"c",), "mail reply (session 1)")
        m.expect(b"R", b"<r1@example.org>\0", (b"c",), "rcpt reply (session 1)")
        t0 = time.monotonic()
        m.quit_nc_then_connect(SECOND_NAME)
        eq(m.read_answer("C after 'K' mid-transaction", ANSWER_LIMIT)[-1], b"c",
           "connect reply (session 2)")
        el = time.monotonic() - t0
        ok(el < ANSWER_LIMIT * SLOW, "'C' after 'K' answered after %.2fs" % el)
        m.expect(b"H", SECOND_NAME + b"\0", (b"c",), "helo reply (session 2)")
        eom = m.message(b"<s2@example.net>", b"<r2@example.org>")
        ok(eom[-1] in (b"c", b"a"), "EOM decision of session 2: %r" % eom)
        m.quit()
    finally:
        m.close()
    for i, tm in enumerate(tms, 1):
        one, two = assert_two_sessions(tm, i)
        eq(events_of(one), ["connect", "helo", "mail", "rcpt"],
           "session events child %d got on conn 1 (cut by 'K')" % i)
        eq(events_of(two), SESSION_EVENTS,
           "session events child %d got on conn 2" % i)
        eq([e["args"][0] for e in two if e["cmd"] in ("mail", "rcpt")],
           ["<s2@example.net>", "<r2@example.org>"], "envelope child %d got on conn 2" % i)


@test
def hub_quit_nc_then_a_late_connect_runs_on_the_ready_children(env):
    # The other path: the new children are ready before the 'C' comes.
    tms = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, *tms)
    m = KMta(hub)
    try:
        m.negotiate()
        eq(m.session(FIRST_NAME)[-1] in (b"c", b"a"), True, "EOM decision of session 1")
        m.send(b"K")
        time.sleep(0.5 * SLOW)
        eq(m.session(SECOND_NAME, connect_limit=ANSWER_LIMIT)[-1] in (b"c", b"a"), True,
           "EOM decision of session 2")
        m.quit()
    finally:
        m.close()
    for i, tm in enumerate(tms, 1):
        _, two = assert_two_sessions(tm, i)
        eq(events_of(two), SESSION_EVENTS,
           "session events child %d got on conn 2" % i)


@test
def hub_quit_nc_three_times_on_one_connection_gives_four_clean_sessions(env):
    tms = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, *tms)
    names = [b"s%d.example.net" % n for n in range(1, 5)]
    m = KMta(hub)
    try:
        m.negotiate()
        eq(m.session(names[0])[-1] in (b"c", b"a"), True, "EOM decision of session 1")
        for n in names[1:]:
            m.quit_nc_then_connect(n)
            eq(m.session(n, connect_sent=True, connect_limit=ANSWER_LIMIT)[-1] in (b"c", b"a"),
               True, "EOM decision of session %s" % n.decode())
        m.quit()
    finally:
        m.close()
    for i, tm in enumerate(tms, 1):
        by = conns(tm)
        eq(sorted(by), [1, 2, 3, 4], "connections of child %d" % i)
        for c, n in zip(sorted(by), names):
            eq([e["hostname"] for e in by[c] if e["cmd"] == "connect"], [n.decode()],
               "connect hostname child %d got on conn %d" % (i, c))
            assert_quit_and_closed(by[c], "child %d conn %d" % (i, c))


def macro_frame(stage, pairs):
    payload = stage
    for k, v in pairs:
        payload += k + b"\0" + v + b"\0"
    return frame(b"D", payload)


@test
def hub_quit_nc_held_connect_carries_its_own_macros_to_the_new_children(env):
    # A real MTA sends 'D' (stage C) right before 'C'; when that 'C' is held
    # until the new children are ready, its macros must still be the new ones.
    tms = [env.testmilter(), env.testmilter("--negotiate", "macros=connect:{client_addr} _")]
    hub = start_hub(env, *tms)
    m = KMta(hub)
    first = [(b"{client_addr}", b"192.0.2.1"), (b"_", b"first.example.net [192.0.2.1]")]
    second = [(b"{client_addr}", b"198.51.100.7"), (b"_", b"second.example.com [198.51.100.7]")]
    try:
        m.negotiate()
        m.s.sendall(macro_frame(b"C", first))
        eom = m.session(FIRST_NAME)
        ok(eom[-1] in (b"c", b"a"), "EOM decision of session 1: %r" % eom)
        m.s.sendall(frame(b"K") + macro_frame(b"C", second)
                    + frame(b"C", connect_payload(SECOND_NAME, b"198.51.100.7")))
        eom = m.session(SECOND_NAME, connect_sent=True, connect_limit=ANSWER_LIMIT)
        ok(eom[-1] in (b"c", b"a"), "EOM decision of session 2: %r" % eom)
        m.quit()
    finally:
        m.close()
    for i, tm in enumerate(tms, 1):
        one, two = assert_two_sessions(tm, i)
        c1 = [e for e in one if e["cmd"] == "connect"][0]
        c2 = [e for e in two if e["cmd"] == "connect"][0]
        eq(c2["address"], "198.51.100.7", "connect address child %d got on conn 2" % i)
        m1 = {k.strip("{}"): v for k, v in (c1.get("macros") or {}).items()}
        m2 = {k.strip("{}"): v for k, v in (c2.get("macros") or {}).items()}
        # Child 1 has no list: the defaults (with _, without {client_addr}).
        eq(m1.get("_"), "first.example.net [192.0.2.1]", "_ child %d got on conn 1 (%r)" % (i, m1))
        if i == 2:
            eq(m1.get("client_addr"), "192.0.2.1", "{client_addr} child 2 got on conn 1 (%r)" % m1)
            eq(m2.get("client_addr"), "198.51.100.7",
               "{client_addr} child 2 got with the held 'C' on conn 2 (%r)" % m2)
        eq(m2.get("_"), "second.example.com [198.51.100.7]",
           "_ child %d got with the held 'C' on conn 2" % i)
