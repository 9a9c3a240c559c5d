"""
stats_log - the reference's statistics log lines at the `statistics` log
level (issue 6 item 3), so log analyzers written for milter manager keep
working. On stderr each line reads `milterhub[pid]: STATS [id] MESSAGE`:

  [milter][end][<state>][<status>][<elapsed>](<id>): <child>
  [session][end][<state>][<status>][<elapsed>](<id>)
  [session][disconnected][<elapsed>](<id>)
  [sessions][finished] <total>(+<delta>) <processing>     (no [id]; per worker)
  [milter][header][add](<id>): <name>=<value>: <child>

status: accept reject temporary-failure discard pass stop; elapsed: %g
seconds. Threshold `statistics` shows these, warnings and errors but no
info lines; `warn` hides them.
"""

import os
import re
import signal
import threading
import time

from common import eq, ok, test, on, SLOW
from hub_envelope import FAST_TIMEOUTS, start_hub, hub_mta
from hub_failures import RawMta, _closed_within

NUM = r"([0-9][0-9.e+-]*)"  # %g
FINISHED = r"\]: STATS \[sessions\]\[finished\] (\d+)\(\+(\d+)\) (\d+)$"


def stats_manager(**extra):
    return dict({"log_level": "statistics"}, **extra)


def lines(hub, pattern):
    """The hub's stderr lines matching `pattern`: their match objects."""
    out = []
    for ln in hub.stderr().splitlines():
        m = re.search(pattern, ln)
        if m:
            out.append(m)
    return out


def wait_lines(hub, pattern, n=1, timeout=10.0):
    """Wait until at least n lines match; the match objects."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        got = lines(hub, pattern)
        if len(got) >= n:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError("%d line(s) matching %r wanted, got %d; stderr:\n%s"
                                 % (n, pattern, len(got), hub.stderr()[-4000:]))
        time.sleep(0.05)


def stats_line(tag_re):
    """A statistics line with a session id in brackets: group 1 is that id."""
    return r"STATS \[(\d+)\] " + tag_re


def milter_end(state, status, child):
    return stats_line(r"\[milter\]\[end\]\[%s\]\[%s\]\[%s\]\(\1\): %s$"
                      % (re.escape(state), re.escape(status), NUM, re.escape(child)))


def session_end(state, status):
    return stats_line(r"\[session\]\[end\]\[%s\]\[%s\]\[%s\]\(\1\)$"
                      % (re.escape(state), re.escape(status), NUM))


def one_session(hub, child_lines, state, status):
    """Assert the one session's [session][end] line and each child's
    [milter][end] line (child_lines: child -> (state, status)), all with the
    same id. Returns the id."""
    sess = wait_lines(hub, session_end(state, status))
    eq(len(lines(hub, r"\[session\]\[end\]")), 1, "[session][end] lines")
    sid = sess[0].group(1)
    for child, (cstate, cstatus) in child_lines.items():
        got = wait_lines(hub, milter_end(cstate, cstatus, child))
        eq([m.group(1) for m in got], [sid], "session id of %s's [milter][end] line" % child)
    eq(len(lines(hub, r"\[milter\]\[end\]")), len(child_lines), "[milter][end] lines")
    return sid


def no_info(hub):
    infos = [ln for ln in hub.stderr().splitlines() if re.search(r"\]: INFO ", ln)]
    eq(infos, [], "INFO lines with log_level = \"statistics\"")


# ------------------------------------------------------------------ each status


@test
def stats_log_accept_at_eom_names_state_status_and_elapsed(env):
    tm = env.testmilter(*on("eom", "accept"))
    hub = start_hub(env, tm, manager=stats_manager())
    eq(hub_mta(env, hub)["result"], "accept", "result")
    one_session(hub, {"child1": ("end-of-message", "accept")}, "end-of-message", "accept")
    el = float(lines(hub, milter_end("end-of-message", "accept", "child1"))[0].group(2))
    ok(0 <= el < 5 * SLOW, "elapsed %g" % el)
    no_info(hub)


@test
def stats_log_reject_at_rcpt_is_the_childs_reject(env):
    tm = env.testmilter(*on("rcpt", "reject"))
    hub = start_hub(env, tm, manager=stats_manager())
    r = hub_mta(env, hub)
    eq(r["rcpts"][0]["reply"], "reject", "rcpt reply")
    # The session's result: a refused recipient ends nothing (the MTA then aborts).
    sid = one_session(hub, {"child1": ("envelope-recipient", "reject")}, "abort", "pass")
    eq(len(lines(hub, r"\[session\]\[disconnected\]")), 0, "[session][disconnected] after QUIT")
    ok(sid, "session id")


@test
def stats_log_tempfail_at_mail_is_temporary_failure(env):
    tm = env.testmilter(*on("mail", "tempfail"))
    hub = start_hub(env, tm, manager=stats_manager())
    eq(hub_mta(env, hub)["result"], "tempfail", "result")
    one_session(hub, {"child1": ("envelope-from", "temporary-failure")}, "envelope-from",
                "temporary-failure")


@test
def stats_log_discard_at_eom(env):
    tm = env.testmilter(*on("eom", "discard"))
    hub = start_hub(env, tm, manager=stats_manager())
    eq(hub_mta(env, hub)["result"], "discard", "result")
    one_session(hub, {"child1": ("end-of-message", "discard")}, "end-of-message", "discard")


@test
def stats_log_all_continue_is_pass(env):
    hub = start_hub(env, env.testmilter(), manager=stats_manager())
    eq(hub_mta(env, hub)["result"], "accept", "result")
    # Every answer continue: nothing decided, the MTA accepts by default.
    one_session(hub, {"child1": ("end-of-message", "pass")}, "end-of-message", "pass")


@test
def stats_log_child_timing_out_logs_its_fallback_after_the_timeout(env):
    hung = env.testmilter(*on("mail", "hang"))
    other = env.testmilter()
    hub = start_hub(env, (hung, {"timeouts": FAST_TIMEOUTS, "fallback": "tempfail"}), other,
                    manager=stats_manager())
    eq(hub_mta(env, hub)["result"], "tempfail", "result")
    one_session(hub, {"child1": ("envelope-from", "temporary-failure"),
                      "child2": ("envelope-from", "pass")}, "envelope-from", "temporary-failure")
    el = float(lines(hub, milter_end("envelope-from", "temporary-failure", "child1"))[0].group(2))
    ok(0.9 <= el < 3.0 * SLOW, "the timed-out child's elapsed: %g" % el)


# ------------------------------------------------------------------ evaluation mode, headers


@test
def stats_log_evaluation_child_reject_is_its_real_answer_and_headers_of_both_are_logged(env):
    normal = env.testmilter(*on("eom", "add-header:X-One:1", "accept"))
    judge = env.testmilter(*on("eom", "add-header:X-Eval:spam 0.9", "reject"))
    hub = start_hub(env, normal, (judge, {"evaluate": True}), manager=stats_manager())
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result (an evaluation child's reject counts as accept)")
    eq([(m["name"], m["value"]) for m in r["modifications"] if m["op"] == "add-header"],
       [("X-One", "1")], "headers the MTA got")
    sid = one_session(hub, {"child1": ("end-of-message", "accept"),
                            "child2": ("end-of-message", "reject")}, "end-of-message", "accept")
    added = wait_lines(hub, stats_line(r"\[milter\]\[header\]\[add\]\(\1\): (.*)$"), 2)
    eq([(m.group(1), m.group(2)) for m in added],
       [(sid, "X-One=1: child1"), (sid, "X-Eval=spam 0.9: child2")], "[milter][header][add] lines")


@test
def stats_log_header_add_line_of_a_folded_value_stays_one_line(env):
    tm = env.testmilter(*on("eom", "add-header:X-Fold:first\\n\\tsecond"))
    hub = start_hub(env, tm, manager=stats_manager())
    eq(hub_mta(env, hub)["result"], "accept", "result")
    added = wait_lines(hub, stats_line(r"\[milter\]\[header\]\[add\]\(\1\): (.*)$"))
    eq(added[0].group(2), "X-Fold=first\\n\\tsecond: child1", "the line (LF and TAB escaped)")


# ------------------------------------------------------------------ the MTA going away


@test
def stats_log_mta_disconnecting_after_connect_logs_disconnected(env):
    tm = env.testmilter()
    hub = start_hub(env, tm, manager=stats_manager())
    m = RawMta(hub)
    try:
        m.negotiate()
        eq(m.ask(b"C", b"mx.example.net\0" + b"4" + b"\xd4\x31" + b"192.0.2.1\0")[-1], b"c",
           "connect reply")
    finally:
        m.close()
    disc = wait_lines(hub, stats_line(r"\[session\]\[disconnected\]\[%s\]\(\1\)$" % NUM))
    sid = one_session(hub, {"child1": ("connect", "pass")}, "connect", "pass")
    eq(disc[0].group(1), sid, "session id of [session][disconnected]")


@test
def stats_log_mta_disconnecting_mid_transaction_stops_the_children_in_it(env):
    # child1 left the transaction at MAIL (accept); child2 was still in it.
    done = env.testmilter(*on("mail", "accept"))
    cut = env.testmilter()
    hub = start_hub(env, done, cut, manager=stats_manager())
    m = RawMta(hub)
    try:
        m.negotiate()
        m.connect()
        m.envelope()
    finally:
        m.close()
    wait_lines(hub, stats_line(r"\[session\]\[disconnected\]"))
    one_session(hub, {"child1": ("envelope-from", "accept"),
                      "child2": ("envelope-recipient", "stop")}, "envelope-recipient", "pass")


@test
def stats_log_shutdown_while_a_child_works_stops_it_and_the_session(env):
    # The MTA waits for the end-of-message answer of a child that hangs
    # (eom timeout 30 s) when the daemon stops (drain 1 s): cut short.
    hung = env.testmilter(*on("eom", "hang"))
    hub = start_hub(env, (hung, {"timeouts": {"eom": 30}}),
                    manager=stats_manager(drain_timeout=1, workers=1))
    m = RawMta(hub)
    try:
        m.negotiate()
        m.connect()
        m.envelope()
        eq(m.ask(b"T")[-1], b"c", "data reply")
        eq(m.ask(b"L", b"Subject\0raw\0")[-1], b"c", "header reply")
        eq(m.ask(b"N")[-1], b"c", "eoh reply")
        m.send(b"E")
        deadline = time.monotonic() + 5 * SLOW
        while "eom" not in [e["cmd"] for e in hung.log(settle=0)]:
            ok(time.monotonic() < deadline, "the child never got 'E'")
            time.sleep(0.05)
        os.kill(hub.pid, signal.SIGTERM)
        eq(hub.popen.wait(timeout=10 * SLOW), 0, "the daemon's exit status")
    finally:
        m.close()
    one_session(hub, {"child1": ("end-of-message", "stop")}, "end-of-message", "stop")
    eq(len(lines(hub, r"\[session\]\[disconnected\]")), 0, "[session][disconnected]")
    eq([m.groups() for m in lines(hub, FINISHED)], [("1", "1", "0")], "[sessions][finished]")


@test
def stats_log_quit_mid_message_stops_the_children_still_in_it_without_disconnected(env):
    tm = env.testmilter()
    hub = start_hub(env, tm, manager=stats_manager())
    m = RawMta(hub)
    try:
        m.negotiate()
        m.connect()
        m.envelope()
        m.send(b"Q")
        ok(_closed_within(m.s, 3.0 * SLOW), "hub did not close after QUIT")
    finally:
        m.close()
    one_session(hub, {"child1": ("envelope-recipient", "stop")}, "envelope-recipient", "pass")
    eq(len(lines(hub, r"\[session\]\[disconnected\]")), 0, "[session][disconnected] after QUIT")


@test
def stats_log_quit_nc_ends_one_smtp_session_and_the_next_gets_its_own_lines(env):
    tm = env.testmilter()
    hub = start_hub(env, tm, manager=stats_manager(workers=1))
    m = RawMta(hub)
    try:
        m.negotiate()
        m.connect()
        m.envelope()
        eq(m.content()[-1], b"c", "eom decision")
        m.send(b"A")  # Postfix's reset after a message: no "abort" state
        m.send(b"K")
        m.connect()
        m.send(b"Q")
        ok(_closed_within(m.s, 3.0 * SLOW), "hub did not close after QUIT")
    finally:
        m.close()
    first = wait_lines(hub, session_end("end-of-message", "pass"))
    second = wait_lines(hub, session_end("helo", "pass"))
    eq(first[0].group(1), second[0].group(1), "one connection, one session id")
    eq(len(lines(hub, r"\[session\]\[end\]")), 2, "[session][end] lines")
    eq([x.group(2) for x in lines(hub, stats_line(r"\[milter\]\[end\]\[([a-z-]+)\]\[pass\]"))],
       ["end-of-message", "helo"], "child1's [milter][end] states, one per SMTP session")
    wait_lines(hub, r"\[sessions\]\[finished\] 2\(")
    eq([x.groups() for x in lines(hub, FINISHED)], [("1", "1", "1"), ("2", "1", "0")],
       "[sessions][finished] (the connection is in progress after 'K')")
    eq(len(lines(hub, r"\[session\]\[disconnected\]")), 0, "[session][disconnected]")


# ------------------------------------------------------------------ [sessions][finished]

@test
def stats_log_sessions_finished_totals_add_up(env):
    tm = env.testmilter()
    hub = start_hub(env, tm, manager=stats_manager(workers=1))
    for _ in range(3):
        eq(hub_mta(env, hub)["result"], "accept", "result")
    wait_lines(hub, r"\[sessions\]\[finished\] 3\(")
    # 4 more at once: one line per loop iteration in which some ended.
    threads = [threading.Thread(target=hub_mta, args=(env, hub)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_lines(hub, r"\[sessions\]\[finished\] 7\(")
    got = [tuple(int(x) for x in m.groups()) for m in lines(hub, FINISHED)]
    prev = 0
    for total, delta, processing in got:
        eq(total, prev + delta, "total after %d: %r" % (prev, got))
        ok(delta >= 1 and 0 <= processing <= 4, "line %r" % ((total, delta, processing),))
        prev = total
    eq(got[-1][0], 7, "last total")
    eq(len(lines(hub, r"\[session\]\[end\]")), 7, "[session][end] lines")
    eq(got[-1][2], 0, "sessions in progress at the last line")


# ------------------------------------------------------------------ thresholds


@test
def stats_log_level_statistics_hides_info_and_warn_hides_statistics(env):
    tm = env.testmilter(*on("eom", "add-header:X-One:1"))
    hub = start_hub(env, tm, manager=stats_manager())
    hub_mta(env, hub)
    wait_lines(hub, r"\[sessions\]\[finished\]")
    no_info(hub)
    ok(lines(hub, r"\]: STATS \[\d+\] \[milter\]\[header\]\[add\]"), "header line at statistics")

    tm2 = env.testmilter(*on("eom", "add-header:X-One:1"))
    quiet = start_hub(env, tm2, manager={"log_level": "warn"})
    eq(hub_mta(env, quiet)["result"], "accept", "result")
    time.sleep(0.5 * SLOW)
    eq([ln for ln in quiet.stderr().splitlines() if re.search(r"\]: (STATS|INFO) ", ln)], [],
       "STATS or INFO lines with log_level = \"warn\"")

    tm3 = env.testmilter()
    chatty = start_hub(env, tm3, manager={"log_level": "info"})
    hub_mta(env, chatty)
    wait_lines(chatty, session_end("end-of-message", "pass"))
    ok(lines(chatty, r"\]: INFO "), "INFO lines with log_level = \"info\"")
