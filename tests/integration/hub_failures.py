"""
hub_failures - children that fail and an MTA that misbehaves (design §2.5,
§2.6, issue 3 "Bad input"): a child that hangs, closes, sends garbage or
cannot be reached gets its own fallback as its answer, within its timeout,
and the others go on; no child left → the manager's fallback; an
evaluation-mode child changes nothing for anyone; a malformed packet from
the MTA closes that session only; an ABORT, QUIT or EOF from the MTA (sent
by hand: RawMta) reaches every child; a silent MTA is dropped after
mta_timeout; a slow child never holds up another session; many concurrent
sessions do not fail.
"""

import json
import socket
import struct
import threading
import time

from common import eq, ok, register, stage, test, on, free_port, SLOW
from hub_envelope import (FAST_TIMEOUTS, FULL, FULL_UNKNOWN, start_hub, hub_mta, events,
                          no_events_after)

HANG_STAGES = ["connect", "helo", "unknown", "mail", "rcpt", "data", "header", "eoh", "body", "eom"]
TIMEOUT = 1.0  # FAST_TIMEOUTS: every child timeout is 1 s
# Envelope stages where the MTA is answered at that very stage.
ENVELOPE = ("connect", "helo", "unknown", "mail", "rcpt", "data")


def fallback_expectation(r, stage_name, status):
    """Assert what the MTA got when the failing child's answer at
    `stage_name` is `status` (tempfail or reject) and the other child
    continues."""
    if stage_name in ENVELOPE:
        eq(stage(r, stage_name)["reply"] if stage_name != "rcpt" else r["rcpts"][0]["reply"],
           status, "%s reply the MTA got" % stage_name)
    if stage_name in ("connect", "helo"):
        eq(r["result"], "not-sent", "result")
    elif stage_name == "unknown":
        eq(r["result"], "accept", "result (an unknown command's answer ends nothing)")
    else:
        eq(r["result"], status, "result")
        replies = [s["reply"] for s in r["stages"] if s["reply"] != "continue"]
        eq(replies[:1], [status], "first non-continue reply the MTA got")


# ------------------------------------------------------------------ hang → fallback within the timeout

def make_hang(stage_name, fallback):
    def t(env):
        hung = env.testmilter(*on(stage_name, "hang"))
        other = env.testmilter()
        hub = start_hub(env, (hung, {"timeouts": FAST_TIMEOUTS, "fallback": fallback}), other)
        r = hub_mta(env, hub, "--unknown", "XFOO")
        el = r["_elapsed"]
        ok(el < (TIMEOUT + 1.5) * SLOW, "a child hung at %s with a 1 s timeout: the session took %.2fs"
           % (stage_name, el))
        ok(el >= TIMEOUT * 0.9, "session took %.2fs: the hung child was not waited for" % el)
        eq(r["error"], None, "error (the hub must answer, not the MTA time out)")
        no_events_after(hung, stage_name)
        if fallback == "accept":
            eq(r["result"], "accept", "result")
            eq(events(other), FULL_UNKNOWN, "events the other child saw")
        else:
            fallback_expectation(r, stage_name, fallback)
    register("hub_child_hung_at_%s_gets_fallback_%s_within_its_timeout" % (stage_name, fallback), t)


for _s in HANG_STAGES:
    make_hang(_s, "accept")
    make_hang(_s, "tempfail")


@test
def hub_child_hung_at_eom_in_the_replayed_position_gets_its_fallback_within_its_timeout(env):
    other = env.testmilter(*on("eom", "add-header:X-One:1"))
    hung = env.testmilter(*on("eom", "hang"))
    hub = start_hub(env, other, (hung, {"timeouts": {"eom": 1}, "fallback": "reject"}))
    r = hub_mta(env, hub)
    ok(r["_elapsed"] < 2.5 * SLOW, "session took %.2fs" % r["_elapsed"])
    eq((r["result"], r["error"]), ("reject", None), "(result, error)")


@test
def hub_slow_children_at_an_envelope_stage_cost_the_slowest_not_the_sum(env):
    # design §2.2: parallel barrier. Three children each delay 600 ms at MAIL.
    tms = [env.testmilter(*on("mail", "delay:600")) for _ in range(3)]
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result")
    ok(r["_elapsed"] < 1.5 * SLOW,
       "3 children x 600 ms at MAIL took %.2fs (sequential?)" % r["_elapsed"])


def make_write_stall(position):
    def t(env):
        # An NR-body child is written the body without replies; this one stops
        # reading for 5 s after the first chunk. Only the write timeout (1 s)
        # can bound that wait (design §2.5: write 7 s by default).
        body = ("w" * 1022 + "\r\n") * 4096  # 4 MiB
        path = env.path("msg.eml")
        with open(path, "w") as f:
            f.write("Subject: stall\r\n\r\n" + body)
        stall = env.testmilter("--negotiate", "nr-body", *on("body", "delay:5000"))
        other = env.testmilter()
        opts = {"fallback": "tempfail", "timeouts": {"connect": 5, "write": 1, "read": 10, "eom": 10}}
        chain = [(stall, opts), other]
        if position == 2:
            chain.reverse()
        hub = start_hub(env, *chain)
        r = hub_mta(env, hub, "--message-file", path)
        eq((r["result"], r["error"]), ("tempfail", None), "(result, error)")
        ok(r["_elapsed"] < 3.0 * SLOW, "a child not reading for 5 s with a 1 s write timeout: "
           "the session took %.2fs" % r["_elapsed"])
    register("hub_child_that_stops_reading_in_position_%d_gets_its_fallback_at_the_write_timeout"
             % position, t)


make_write_stall(1)
make_write_stall(2)


# ------------------------------------------------------------------ close, garbage, malformed replies

@test
def hub_child_closing_at_rcpt_gets_fallback_accept_and_the_others_are_unaffected(env):
    dead = env.testmilter(*on("rcpt", "close"))
    others = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, others[0], (dead, {"fallback": "accept"}), others[1])
    r = hub_mta(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    no_events_after(dead, "rcpt")
    for i, tm in enumerate(others, 1):
        eq(events(tm), FULL, "events of another child (%d)" % i)


@test
def hub_child_closing_at_rcpt_with_fallback_reject_refuses_only_that_recipient(env):
    dead = env.testmilter(*on("rcpt", "close"))
    other = env.testmilter()
    hub = start_hub(env, (dead, {"fallback": "reject"}), other)
    r = hub_mta(env, hub, "--rcpt", "<a@example.org>", "--rcpt", "<c@example.org>")
    eq([x["reply"] for x in r["rcpts"]], ["reject", "continue"], "rcpt replies")
    eq((r["result"], r["recipients"]), ("accept", ["<c@example.org>"]), "(result, recipients)")
    eq([e["args"][0] for e in dead.all("rcpt")], ["<a@example.org>"], "RCPTs the dead child got")
    eq(events(other), FULL[:4] + ["rcpt"] + FULL[4:], "events of the other child")


@test
def hub_child_closing_at_eom_gets_fallback_tempfail(env):
    one = env.testmilter()
    dead = env.testmilter(*on("eom", "close"))
    hub = start_hub(env, one, (dead, {"fallback": "tempfail"}))
    r = hub_mta(env, hub)
    eq((r["result"], r["error"]), ("tempfail", None), "(result, error)")


@test
def hub_child_closing_at_connect_gets_fallback_tempfail_at_connect(env):
    dead = env.testmilter(*on("connect", "close"))
    hub = start_hub(env, env.testmilter(), (dead, {"fallback": "tempfail"}))
    r = hub_mta(env, hub)
    eq(stage(r, "connect")["reply"], "tempfail", "connect reply")
    eq(r["result"], "not-sent", "result")


def make_garbage(stage_name, fallback):
    def t(env):
        bad = env.testmilter(*on(stage_name, "garbage"))
        other = env.testmilter()
        hub = start_hub(env, (bad, {"fallback": fallback}), other)
        r = hub_mta(env, hub)
        eq(r["error"], None, "error")
        no_events_after(bad, stage_name)
        if fallback == "accept":
            eq(r["result"], "accept", "result")
            eq(events(other), FULL, "events the other child saw")
        else:
            fallback_expectation(r, stage_name, fallback)
    register("hub_child_sending_garbage_at_%s_gets_fallback_%s" % (stage_name, fallback), t)


for _s, _f in [("mail", "accept"), ("mail", "tempfail"), ("rcpt", "reject"), ("header", "accept"),
               ("eom", "reject"), ("eom", "accept")]:
    make_garbage(_s, _f)


@test
def hub_child_modifying_outside_eom_gets_its_fallback(env):
    # A modification at MAIL is malformed from a child (milter-protocol.md §3).
    bad = env.testmilter(*on("mail", "add-header:X-Bad:1", "continue"))
    other = env.testmilter()
    hub = start_hub(env, (bad, {"fallback": "tempfail"}), other)
    r = hub_mta(env, hub)
    eq(stage(r, "mail")["reply"], "tempfail", "mail reply")
    eq(r["modifications"], [], "modifications")


@test
def hub_child_reply_code_of_class_2xx_is_malformed_and_gets_its_fallback(env):
    bad = env.testmilter(*on("mail", "reply:250:2.0.0:fine"))
    other = env.testmilter()
    hub = start_hub(env, (bad, {"fallback": "tempfail"}), other)
    r = hub_mta(env, hub)
    eq((stage(r, "mail")["reply"], stage(r, "mail").get("text")), ("tempfail", None), "mail reply")
    eq(r["result"], "tempfail", "result")


# ------------------------------------------------------------------ unreachable children

@test
def hub_unreachable_child_with_fallback_accept_lets_mail_through_at_once(env):
    missing = "unix:" + env.path("nobody-listens.sock")
    tms = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, tms[0], (missing, {"fallback": "accept"}), tms[1])
    r = hub_mta(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    ok(r["_elapsed"] < 1.0 * SLOW,
       "session with an unreachable child took %.2fs (retry?)" % r["_elapsed"])
    for i, tm in enumerate(tms, 1):
        eq(events(tm), FULL, "events child %d saw" % i)


@test
def hub_unreachable_child_with_fallback_tempfail_tempfails_at_connect_at_once(env):
    missing = "unix:" + env.path("nobody-listens.sock")
    tm = env.testmilter()
    hub = start_hub(env, tm, (missing, {"fallback": "tempfail"}))
    r = hub_mta(env, hub)
    eq(stage(r, "connect")["reply"], "tempfail", "connect reply")
    eq(r["result"], "not-sent", "result")
    ok(r["_elapsed"] < 1.0 * SLOW, "session took %.2fs (retry?)" % r["_elapsed"])


@test
def hub_child_with_a_stale_socket_file_counts_as_unreachable(env):
    path = env.path("stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)  # the file exists, nobody listens: ECONNREFUSED
    s.close()
    tm = env.testmilter()
    hub = start_hub(env, ("unix:" + path, {"fallback": "accept"}), tm)
    r = hub_mta(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    eq(events(tm), FULL, "events of the reachable child")
    ok(r["_elapsed"] < 1.0 * SLOW, "session took %.2fs" % r["_elapsed"])


@test
def hub_unreachable_child_does_not_stall_20_sessions(env):
    missing = "unix:" + env.path("nobody-listens.sock")
    tm = env.testmilter(log=False)
    hub = start_hub(env, (missing, {"fallback": "accept"}), tm)
    res = env.mta_run("--sessions", "20", "--concurrency", "5", socket=hub.spec)
    eq(res.returncode, 0, "exit status")
    s = json.loads(res.stdout)
    eq((s["ok"], s["failed"], s["results"].get("accept")), (20, 0, 20), "(ok, failed, accept)")
    ok(res.elapsed < 3.0 * SLOW, "20 sessions took %.2fs" % res.elapsed)


def make_silent_listener(env):
    """A unix socket that listens but never accepts: connect() succeeds, the
    'O' reply never comes."""
    path = env.path("silent.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(16)
    return s, "unix:" + path


@test
def hub_child_that_never_answers_negotiation_gets_its_fallback_within_its_timeout(env):
    lst, spec = make_silent_listener(env)
    try:
        tm = env.testmilter()
        hub = start_hub(env, tm, (spec, {"fallback": "tempfail", "timeouts": FAST_TIMEOUTS}))
        r = hub_mta(env, hub)
        eq(stage(r, "connect")["reply"], "tempfail", "connect reply")
        eq((r["result"], r["error"]), ("not-sent", None), "(result, error)")
        ok(r["_elapsed"] < 2.5 * SLOW, "session took %.2fs with 1 s child timeouts" % r["_elapsed"])
    finally:
        lst.close()


@test
def hub_child_that_never_answers_negotiation_with_fallback_accept_lets_mail_through(env):
    lst, spec = make_silent_listener(env)
    try:
        tm = env.testmilter()
        hub = start_hub(env, (spec, {"fallback": "accept", "timeouts": FAST_TIMEOUTS}), tm)
        r = hub_mta(env, hub)
        eq((r["result"], r["error"]), ("accept", None), "(result, error)")
        eq(events(tm), FULL, "events of the other child")
        ok(r["_elapsed"] < 2.5 * SLOW, "session took %.2fs with 1 s child timeouts" % r["_elapsed"])
    finally:
        lst.close()


@test
def hub_child_failing_negotiation_gets_its_fallback(env):
    # The testmilter closes when asked for actions the hub did not offer.
    bad = env.testmilter("--negotiate", "actions=0x400")
    hub = start_hub(env, env.testmilter(), (bad, {"fallback": "reject"}))
    r = hub_mta(env, hub)
    eq(stage(r, "connect")["reply"], "reject", "connect reply")


@test
def hub_unreachable_tcp_child_with_fallback_accept_lets_mail_through_at_once(env):
    tm = env.testmilter()
    hub = start_hub(env, ("inet:%d@127.0.0.1" % free_port(), {"fallback": "accept"}), tm)
    r = hub_mta(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    ok(r["_elapsed"] < 1.0 * SLOW, "session took %.2fs" % r["_elapsed"])


# ------------------------------------------------------------------ manager fallback

@test
def hub_no_child_configured_uses_the_manager_fallback_tempfail(env):
    hub = start_hub(env, manager={"fallback": "tempfail"})
    r = hub_mta(env, hub)
    eq(stage(r, "connect")["reply"], "tempfail", "connect reply")
    eq(r["result"], "not-sent", "result")


@test
def hub_only_child_disabled_uses_the_manager_fallback_reject_and_is_never_contacted(env):
    tm = env.testmilter()
    hub = start_hub(env, (tm, {"enabled": False}), manager={"fallback": "reject"})
    r = hub_mta(env, hub)
    eq(stage(r, "connect")["reply"], "reject", "connect reply")
    eq(r["result"], "not-sent", "result")
    eq(tm.cmds(settle=0.3), [], "what the disabled child got")


@test
def hub_no_child_configured_default_manager_fallback_accepts(env):
    hub = start_hub(env)
    r = hub_mta(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")


@test
def hub_disabled_child_is_left_out_of_the_chain(env):
    off = env.testmilter(*on("mail", "reject"))
    tm = env.testmilter()
    hub = start_hub(env, (off, {"enabled": False}), tm)
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result")
    eq(off.cmds(settle=0.3), [], "what the disabled child got")
    eq(events(tm), FULL, "events of the enabled child")


@test
def hub_no_child_left_after_a_failure_uses_the_manager_fallback_for_the_next_message(env):
    # The only child dies at MAIL of message 1: its own fallback (accept)
    # answers that; for message 2 no child is left: the manager's fallback.
    dead = env.testmilter(*on("mail", "close"))
    hub = start_hub(env, (dead, {"fallback": "accept"}), manager={"fallback": "tempfail"})
    r = hub_mta(env, hub, "--messages", "2")
    eq([m["result"] for m in r["messages"]], ["accept", "tempfail"], "message results")
    eq(stage(r, "mail", 2)["reply"], "tempfail", "mail reply of message 2")


@test
def hub_every_child_accepting_is_accept_not_the_manager_fallback(env):
    tm = env.testmilter(*on("connect", "accept"))
    hub = start_hub(env, tm, manager={"fallback": "tempfail"})
    r = hub_mta(env, hub, "--messages", "2")
    eq(stage(r, "connect")["reply"], "accept", "connect reply")
    eq([m["result"] for m in r["messages"]], ["accept", "accept"], "message results")


# ------------------------------------------------------------------ evaluation mode (design §2.6)

EVAL_CASES = [(s, "reject") for s in HANG_STAGES] + [("mail", "discard"), ("rcpt", "tempfail"),
                                                      ("eom", "discard"), ("rcpt", "discard")]


def make_eval(stage_name, action):
    def t(env):
        # A reject with a reply code: neither the status nor the text may pass.
        ev = env.testmilter(*on(stage_name, "reply:550:5.7.1:evaluated" if action == "reject"
                                else action))
        others = [env.testmilter(), env.testmilter()]
        hub = start_hub(env, (ev, {"evaluate": True}), *others)
        r = hub_mta(env, hub, "--unknown", "XFOO")
        eq((r["result"], r["reply"], r["error"]), ("accept", None, None), "(result, reply, error)")
        eq(sorted({s["reply"] for s in r["stages"]}), ["continue"], "replies the MTA got")
        for i, tm in enumerate(others, 2):
            eq(events(tm), FULL_UNKNOWN, "events child %d saw" % i)
            eq(tm.first("eom")["headers"], 4, "header count at child %d's EOM" % i)
        ok(stage_name in ev.cmds(), "the evaluation child never got %s" % stage_name)
    register("hub_evaluation_child_first_%s_at_%s_changes_nothing_for_the_others"
             % (action, stage_name), t)


for _s, _a in EVAL_CASES:
    make_eval(_s, _a)


# ------------------------------------------------------------------ bad input from the MTA

def _read_frame(sock):
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            raise AssertionError("hub closed the connection during negotiation")
        head += chunk
    n = struct.unpack(">I", head)[0]
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            raise AssertionError("hub closed the connection inside a packet")
        body += chunk
    return body


def _closed_within(sock, seconds):
    """True when the peer closes (EOF or reset) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not data:
            return True
    return False


OPTNEG = struct.pack(">IcIII", 13, b"O", 6, 0x1FF, 0x1FFFFF)
BAD_INPUT = {
    "unknown_command": (True, b"\x00\x00\x00\x01Z"),
    "zero_length": (True, b"\x00\x00\x00\x00"),
    "oversized_length": (True, b"\x7f\xff\xff\xff" + b"C" + b"x" * 64),
    "eom_before_connect": (True, b"\x00\x00\x00\x01E"),
    "garbage_instead_of_negotiation": (False, b"\x00\x00\x00\x01Z"),
}


def make_bad_input(name):
    negotiate_first, garbage = BAD_INPUT[name]

    def t(env):
        # A normal session is in progress (its child takes 1 s at EOM) while
        # another connection sends garbage: only the latter is closed.
        slow = env.testmilter(*on("eom", "delay:1000"))
        hub = start_hub(env, slow)
        result = {}

        def normal():
            try:
                result["r"] = hub_mta(env, hub)
            except AssertionError as e:
                result["e"] = e
        th = threading.Thread(target=normal)
        th.start()
        time.sleep(0.3)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(5)
            s.connect(hub.spec.split(":", 1)[1])
            if negotiate_first:
                s.sendall(OPTNEG)
                reply = _read_frame(s)
                eq(reply[:1], b"O", "the hub's answer to 'O'")
            s.sendall(garbage)
            ok(_closed_within(s, 3.0 * SLOW), "the hub did not close a session that sent %s" % name)
        finally:
            s.close()
        th.join(30)
        if "e" in result:
            raise result["e"]
        eq((result["r"]["result"], result["r"]["error"]), ("accept", None),
           "concurrent normal session (result, error)")
        r2 = hub_mta(env, hub)
        eq(r2["result"], "accept", "a session after the bad one")
    register("hub_malformed_packet_from_the_mta_%s_closes_only_that_session" % name, t)


for _n in BAD_INPUT:
    make_bad_input(_n)


# ------------------------------------------------------------------ a raw MTA (ABORT, QUIT, EOF)

MESSAGE_EVENTS_A = ["mail", "rcpt", "data", "header", "eoh", "body", "eom", "abort"]


class RawMta:
    """Speaks the MTA side by hand: for an ABORT or QUIT where the simulator
    would not send one. Commands are sent without macro packets (legal)."""

    DECISIONS = b"acrtdy"

    def __init__(self, hub):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10 * SLOW)
        self.s.connect(hub.spec.split(":", 1)[1])

    def send(self, code, payload=b""):
        self.s.sendall(struct.pack(">I", len(payload) + 1) + code + payload)

    def ask(self, code, payload=b""):
        """Send a command and return the codes of the replies up to its decision."""
        self.send(code, payload)
        codes = []
        while True:
            f = _read_frame(self.s)
            codes.append(f[:1])
            if f[:1] in (b"O",) or f[:1] in [bytes([c]) for c in self.DECISIONS]:
                return codes

    def negotiate(self):
        eq(self.ask(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF))[-1], b"O", "hub's 'O'")

    def connect(self):
        eq(self.ask(b"C", b"mx.example.net\0" + b"4" + struct.pack(">H", 54321) + b"192.0.2.1\0")[-1],
           b"c", "connect reply")
        eq(self.ask(b"H", b"mx.example.net\0")[-1], b"c", "helo reply")

    def envelope(self, sender=b"<s@example.net>", rcpt=b"<r@example.org>"):
        eq(self.ask(b"M", sender + b"\0")[-1], b"c", "mail reply")
        eq(self.ask(b"R", rcpt + b"\0")[-1], b"c", "rcpt reply")

    def content(self):
        eq(self.ask(b"T")[-1], b"c", "data reply")
        eq(self.ask(b"L", b"Subject\0raw\0")[-1], b"c", "header reply")
        eq(self.ask(b"N")[-1], b"c", "eoh reply")
        eq(self.ask(b"B", b"body\r\n")[-1], b"c", "body reply")
        return self.ask(b"E")

    def close(self):
        self.s.close()


@test
def hub_abort_from_the_mta_mid_envelope_reaches_every_child_and_the_next_message_runs(env):
    tms = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, *tms)
    m = RawMta(hub)
    try:
        m.negotiate()
        m.connect()
        m.envelope()
        m.send(b"A")
        m.envelope(b"<s2@example.net>")
        eq(m.content()[-1], b"c", "eom decision of message 2")
        m.send(b"Q")
        ok(_closed_within(m.s, 3.0 * SLOW), "hub did not close after QUIT")
    finally:
        m.close()
    for i, tm in enumerate(tms, 1):
        cmds = [c for c in tm.cmds() if c in MESSAGE_EVENTS_A]
        eq(cmds[:3], ["mail", "rcpt", "abort"], "message 1 of child %d" % i)
        eq([c for c in cmds[3:] if c != "abort"],
           ["mail", "rcpt", "data", "header", "eoh", "body", "eom"], "message 2 of child %d" % i)
        eq(tm.all("mail")[1]["args"][0], "<s2@example.net>", "second MAIL child %d got" % i)


@test
def hub_abort_from_the_mta_mid_content_reaches_the_live_and_the_replayed_child(env):
    tms = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, *tms)
    m = RawMta(hub)
    try:
        m.negotiate()
        m.connect()
        m.envelope()
        eq(m.ask(b"T")[-1], b"c", "data reply")
        eq(m.ask(b"L", b"Subject\0first\0")[-1], b"c", "header reply")
        m.send(b"A")
        m.envelope(b"<s2@example.net>")
        eq(m.content()[-1], b"c", "eom decision of message 2")
        m.send(b"Q")
        ok(_closed_within(m.s, 3.0 * SLOW), "hub did not close after QUIT")
    finally:
        m.close()
    for i, tm in enumerate(tms, 1):
        cmds = [c for c in tm.cmds() if c in MESSAGE_EVENTS_A]
        first = cmds[:cmds.index("mail", 1)]
        ok("abort" in first, "child %d got no ABORT for message 1: %r" % (i, first))
        ok("eom" not in first, "child %d got EOM of the aborted message: %r" % (i, first))
        eq([e["value"] for e in tm.all("header")], ["first", "raw"] if i == 1 else ["raw"],
           "header values child %d got" % i)
        eq(tm.all("eom")[-1]["headers"], 1, "header count at child %d's EOM of message 2" % i)


@test
def hub_mta_closing_mid_message_closes_every_child_connection(env):
    tms = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, *tms)
    m = RawMta(hub)
    try:
        m.negotiate()
        m.connect()
        m.envelope()
    finally:
        m.close()
    for i, tm in enumerate(tms, 1):
        log = tm.log(settle=3.0)
        eq(len([e for e in log if e["cmd"] == "close"]), 1,
           "close lines of child %d (connection left open)" % i)
    eq(hub_mta(env, hub)["result"], "accept", "a session afterwards")


@test
def hub_quit_from_the_mta_mid_message_is_passed_on_and_ends_the_session(env):
    tms = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, *tms)
    m = RawMta(hub)
    try:
        m.negotiate()
        m.connect()
        m.envelope()
        m.send(b"Q")
        ok(_closed_within(m.s, 3.0 * SLOW), "hub did not close after QUIT")
    finally:
        m.close()
    for i, tm in enumerate(tms, 1):
        ok("eom" not in tm.cmds() and "close" in tm.cmds(), "child %d: %r" % (i, tm.cmds()))


@test
def hub_silent_mta_is_dropped_after_mta_timeout_and_its_children_closed(env):
    tm = env.testmilter()
    hub = start_hub(env, tm, manager={"mta_timeout": 1})
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.connect(hub.spec.split(":", 1)[1])
        s.sendall(OPTNEG)
        eq(_read_frame(s)[:1], b"O", "the hub's answer to 'O'")
        t0 = time.monotonic()
        ok(_closed_within(s, 3.0 * SLOW), "the hub kept a silent MTA connection open")
        el = time.monotonic() - t0
        ok(0.8 <= el < 2.5 * SLOW, "closed after %.2fs with mta_timeout = 1" % el)
    finally:
        s.close()
    log = tm.log()
    conns = {e["conn"] for e in log}
    eq(conns, {e["conn"] for e in log if e["cmd"] == "close"}, "child connections left open")
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "a session afterwards")


# ------------------------------------------------------------------ concurrency and load

@test
def hub_a_slow_child_in_one_session_does_not_hold_up_another_session(env):
    # design §2.5: no blocking wait in the event loop.
    tm = env.testmilter(*on("mail:slow@example.net", "delay:2000"))
    hub = start_hub(env, tm)
    result = {}

    def slow():
        try:
            result["r"] = hub_mta(env, hub, "--from", "<slow@example.net>")
        except AssertionError as e:
            result["e"] = e
    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)
    fast = hub_mta(env, hub, "--from", "<fast@example.net>")
    th.join(30)
    eq(fast["result"], "accept", "result of the fast session")
    ok(fast["_elapsed"] < 1.0 * SLOW, "the fast session took %.2fs while another waited for its child"
       % fast["_elapsed"])
    if "e" in result:
        raise result["e"]
    eq(result["r"]["result"], "accept", "result of the slow session")


@test
def hub_200_sessions_at_concurrency_20_through_two_children_without_failures(env):
    one = env.testmilter()
    two = env.testmilter(log=False)
    hub = start_hub(env, one, two)
    res = env.mta_run("--sessions", "200", "--concurrency", "20", socket=hub.spec, timeout=60)
    try:
        s = json.loads(res.stdout)
    except ValueError:
        raise AssertionError("load --json output is not JSON: %r" % res.stdout[:400])
    eq((s["sessions"], s["ok"], s["failed"]), (200, 200, 0), "(sessions, ok, failed)")
    eq(s["results"].get("accept"), 200, "results.accept")
    eq(res.returncode, 0, "exit status")
    eq(len(one.all("eom", settle=5.0)), 200, "EOMs child 1 got")


@test
def hub_200_sessions_with_a_child_closing_at_rcpt_all_succeed_on_its_fallback(env):
    good = env.testmilter(log=False)
    dead = env.testmilter(*on("rcpt", "close"), log=False)
    hub = start_hub(env, good, (dead, {"fallback": "accept"}))
    res = env.mta_run("--sessions", "200", "--concurrency", "20", socket=hub.spec, timeout=60)
    s = json.loads(res.stdout)
    eq((s["ok"], s["failed"], s["results"].get("accept")), (200, 0, 200), "(ok, failed, accept)")


@test
def hub_20_concurrent_sessions_with_a_hung_child_all_answer_within_its_timeout(env):
    good = env.testmilter(log=False)
    hung = env.testmilter(*on("mail", "hang"), log=False)
    hub = start_hub(env, good, (hung, {"fallback": "tempfail", "timeouts": FAST_TIMEOUTS}))
    res = env.mta_run("--sessions", "20", "--concurrency", "20", socket=hub.spec, timeout=60)
    s = json.loads(res.stdout)
    eq((s["ok"], s["failed"], s["results"].get("tempfail")), (20, 0, 20), "(ok, failed, tempfail)")
    ok(res.elapsed < 2.5 * SLOW,
       "20 concurrent sessions with a 1 s child timeout took %.2fs" % res.elapsed)


@test
def hub_over_tcp_has_no_nagle_stalls(env):
    # design §7: TCP_NODELAY and one write per macro packet + command. With
    # Nagle + delayed ACK every step would cost ~40 ms: 5 messages ≈ 2 s.
    tms = [env.testmilter(listen="inet:%d@127.0.0.1" % free_port()) for _ in range(2)]
    hub = start_hub(env, *tms, listen="inet:%d@127.0.0.1" % free_port())
    r = hub_mta(env, hub, "--messages", "5")
    eq([m["result"] for m in r["messages"]], ["accept"] * 5, "message results")
    ok(r["_elapsed"] < 0.5 * SLOW, "5 messages over TCP took %.2fs (Nagle?)" % r["_elapsed"])
