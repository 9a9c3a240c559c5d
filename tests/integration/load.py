"""
load - load mode (docs/tools.md "Load mode"): N sessions over C concurrent
connections; a reject is not a failure; failures give exit 3.
"""

import json
import re
import time

from common import eq, ok, test, on, SLOW

LINE = re.compile(r"^sessions=(\d+) ok=(\d+) failed=(\d+) elapsed=([\d.]+)s rate=([\d.]+)/s "
                  r"latency_ms p50=([\d.]+) p90=([\d.]+) p99=([\d.]+) max=([\d.]+)$")


def summary(env, r):
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError("load --json output is not JSON: %r" % r.stdout[:400])


@test
def load_2000_sessions_at_concurrency_50_without_failures(env):
    tm = env.testmilter(log=False)
    r = env.mta_run("--sessions", "2000", "--concurrency", "50", socket=tm.spec, timeout=90)
    eq(r.returncode, 0, "exit status")
    s = summary(env, r)
    eq((s["sessions"], s["ok"], s["failed"]), (2000, 2000, 0), "(sessions, ok, failed)")
    ok(s["elapsed_s"] > 0 and s["rate"] > 0, "elapsed_s %r rate %r" % (s["elapsed_s"], s["rate"]))
    lat = s["latency_ms"]
    ok(0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], "latency order %r" % lat)
    eq(s["results"].get("accept"), 2000, "results.accept")


@test
def load_text_summary_has_the_documented_shape(env):
    tm = env.testmilter(log=False)
    r = env.mta_run("--sessions", "200", "--concurrency", "10", socket=tm.spec, json_out=False)
    eq(r.returncode, 0, "exit status")
    line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    m = LINE.match(line)
    ok(m, "summary line %r does not match the documented format" % line)
    eq((int(m.group(1)), int(m.group(2)), int(m.group(3))), (200, 200, 0), "(sessions, ok, failed)")


@test
def load_rejects_are_not_failures(env):
    tm = env.testmilter(*on("rcpt", "reject"), log=False)
    r = env.mta_run("--sessions", "300", "--concurrency", "20", socket=tm.spec)
    eq(r.returncode, 0, "exit status")
    s = summary(env, r)
    eq((s["ok"], s["failed"]), (300, 0), "(ok, failed)")
    eq(s["results"].get("reject"), 300, "results.reject")


@test
def load_counts_milter_errors_as_failures_and_exits_3(env):
    tm = env.testmilter(*on("mail", "close"), log=False)
    r = env.mta_run("--sessions", "100", "--concurrency", "10", socket=tm.spec)
    eq(r.returncode, 3, "exit status")
    s = summary(env, r)
    eq((s["sessions"], s["ok"], s["failed"]), (100, 0, 100), "(sessions, ok, failed)")


@test
def load_against_a_missing_milter_fails_every_session(env):
    r = env.mta_run("--sessions", "20", "--concurrency", "5", socket="unix:" + env.path("none.sock"))
    ok(r.returncode in (2, 3), "exit status %r" % r.returncode)
    if r.returncode == 3:
        eq(summary(env, r)["failed"], 20, "failed")


@test
def load_sessions_each_get_their_own_milter_connection(env):
    tm = env.testmilter()
    r = env.mta_run("--sessions", "40", "--concurrency", "8", socket=tm.spec)
    eq(r.returncode, 0, "exit status")
    log = tm.log()
    eq(len({e["conn"] for e in log}), 40, "distinct milter connections")
    eq(len([e for e in log if e["cmd"] == "eom"]), 40, "eoms")
    eq(len([e for e in log if e["cmd"] == "optneg"]), 40, "negotiations")


@test
def load_counts_timeouts_as_failures(env):
    tm = env.testmilter(*on("eom", "hang"), log=False)
    r = env.mta_run("--sessions", "20", "--concurrency", "20", "--timeout", "1", socket=tm.spec)
    eq(r.returncode, 3, "exit status")
    s = summary(env, r)
    eq((s["ok"], s["failed"]), (0, 20), "(ok, failed)")
    ok(r.elapsed < 5 * SLOW, "20 concurrent hung sessions took %.1fs with --timeout 1" % r.elapsed)


# ------------------------------------------------------------------ --rate

@test
def load_rate_paces_starts_and_reports_the_offered_rate(env):
    tm = env.testmilter(log=False)
    r = env.mta_run("--sessions", "200", "--concurrency", "200", "--rate", "400",
                    socket=tm.spec, timeout=90)
    eq(r.returncode, 0, "exit status")
    s = summary(env, r)
    eq((s["sessions"], s["ok"], s["failed"]), (200, 200, 0), "(sessions, ok, failed)")
    eq(s["offered_rate"], 400, "offered_rate")
    eq(s["late_starts"], 0, "late_starts")
    # Start 200 is due 199/400 s after start 1: the run cannot be shorter.
    ok(s["elapsed_s"] >= 0.45, "200 sessions at 400/s took only %.3fs" % s["elapsed_s"])
    ok(s["rate"] <= 440, "achieved rate %r above the offered 400/s" % s["rate"])


@test
def load_rate_counts_starts_that_waited_for_the_concurrency_cap(env):
    # Each session lasts >= 200 ms; at 100/s with one slot nearly every start waits.
    tm = env.testmilter(*on("helo", "delay:200"), log=False)
    r = env.mta_run("--sessions", "10", "--concurrency", "1", "--rate", "100",
                    socket=tm.spec, timeout=90)
    eq(r.returncode, 0, "exit status")
    s = summary(env, r)
    eq((s["ok"], s["failed"]), (10, 0), "(ok, failed)")
    eq(s["late_starts"], 9, "late_starts")
    eq(s["peak_open"], 1, "peak_open")
    ok(s["elapsed_s"] >= 2.0, "10 serialised 200 ms sessions took only %.3fs" % s["elapsed_s"])


@test
def load_rate_text_line_gains_offered_rate_and_late_starts(env):
    tm = env.testmilter(log=False)
    r = env.mta_run("--sessions", "20", "--rate", "1000", socket=tm.spec, json_out=False)
    eq(r.returncode, 0, "exit status")
    line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    m = re.match(LINE.pattern[:-1] + r" offered_rate=([\d.]+)/s late_starts=(\d+)$", line)
    ok(m, "summary line %r lacks offered_rate/late_starts" % line)
    eq(float(m.group(10)), 1000.0, "offered_rate")


@test
def load_only_options_need_sessions(env):
    tm = env.testmilter(log=False)
    for opt in (["--rate", "10"], ["--hold", "1"]):
        r = env.mta_run(*opt, socket=tm.spec)
        eq(r.returncode, 1, "exit status of %s without --sessions" % " ".join(opt))


# ------------------------------------------------------------------ --hold

def max_open_connections(log):
    """The most connections a testmilter had open at once, from its log order."""
    open_now, peak = set(), 0
    for e in log:
        if e["cmd"] == "close":
            open_now.discard(e["conn"])
        else:
            open_now.add(e["conn"])
            peak = max(peak, len(open_now))
    return peak


@test
def load_hold_keeps_every_session_open_at_once(env):
    tm = env.testmilter()
    r = env.mta_run("--sessions", "300", "--concurrency", "300", "--hold", "1",
                    socket=tm.spec, timeout=90)
    eq(r.returncode, 0, "exit status")
    s = summary(env, r)
    eq((s["ok"], s["failed"]), (300, 0), "(ok, failed)")
    eq(s["peak_open"], 300, "peak_open")
    ok(1.0 <= s["elapsed_s"] < 1.0 + 4 * SLOW, "elapsed %.3fs with --hold 1" % s["elapsed_s"])
    ok(s["latency_ms"]["p50"] >= 1000, "p50 %r below the 1 s hold" % s["latency_ms"]["p50"])
    log = tm.log()
    eq(max_open_connections(log), 300, "connections the milter had open at once")
    # The pause is after HELO and before MAIL: every HELO precedes every MAIL.
    cmds = [e["cmd"] for e in log]
    last_helo = max(i for i, c in enumerate(cmds) if c == "helo")
    first_mail = min(i for i, c in enumerate(cmds) if c == "mail")
    ok(last_helo < first_mail, "a MAIL (line %d) before the last HELO (line %d)"
       % (first_mail, last_helo))


@test
def load_hold_longer_than_the_timeout_is_not_a_timeout(env):
    tm = env.testmilter(log=False)
    r = env.mta_run("--sessions", "5", "--concurrency", "5", "--hold", "1.5", "--timeout", "1",
                    socket=tm.spec, timeout=90)
    eq(r.returncode, 0, "exit status")
    eq(summary(env, r)["failed"], 0, "failed")


# ------------------------------------------------------------ chain mode

MILTER_CMDS = ["connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom"]


def read_until_closed(path, nclose, settle=3.0):
    """The JSON lines of a log, once it has nclose 'close' lines ('A' and 'Q'
    are never answered, so the milters may log them after the MTA exited)."""
    deadline = time.monotonic() + settle * SLOW
    while True:
        with open(path) as f:
            lines = [json.loads(x) for x in f if x.strip()]
        if sum(e["cmd"] == "close" for e in lines) >= nclose or time.monotonic() >= deadline:
            return lines
        time.sleep(0.02)


def chain_run(env, milters, *args, rc=0):
    argv = [env.mta_bin]
    for tm in milters:
        argv += ["--socket", tm.spec]
    argv += [str(a) for a in args] + ["--json"]
    r = env.run("milterhub-mta", argv)
    eq(r.returncode, rc, "exit status (stderr %r)" % r.stderr[-300:])
    return json.loads(r.stdout)


@test
def chain_offers_envelope_events_milter_by_milter_and_content_milter_after_milter(env):
    shared = env.path("chain.log")
    m1 = env.testmilter("--log", shared, *on("eom", "add-header:X-First:1"), log=False)
    m2 = env.testmilter("--log", shared, log=False)
    rep = chain_run(env, [m1, m2])
    eq(rep["result"], "accept", "result")
    eq([m["socket"] for m in rep["milters"]], [m1.spec, m2.spec], "milters[].socket")
    ok(all(m["negotiated"] for m in rep["milters"]), "both negotiated: %r" % rep["milters"])
    seq = [(s["stage"], s["milter"]) for s in rep["stages"]]
    env_part = [(st, k) for st in ["connect", "helo", "mail", "rcpt", "data"] for k in (1, 2)]
    eq(seq[:10], env_part, "envelope stages: each event to milter 1, then milter 2")
    content = seq[10:]
    k1 = [st for st, k in content if k == 1]
    eq(content[:len(k1)], [(st, 1) for st in k1], "milter 1 gets the whole content first")
    eq(k1[-3:], ["eoh", "body", "eom"], "milter 1 content")
    # One log shared by both milters: each line is written before it is answered, and
    # the MTA waits for each answer, so the file's order is the wire order.
    lines = read_until_closed(shared, 2)
    cmds = [e["cmd"] for e in lines if e["cmd"] in MILTER_CMDS]
    want = [c for c in ["connect", "helo", "mail", "rcpt", "data"] for _ in (1, 2)]
    want += ["header"] * 4 + ["eoh", "body", "eom"] + ["header"] * 5 + ["eoh", "body", "eom"]
    eq(cmds, want, "commands in the shared log, in order")
    # Postfix sends each milter the message as the earlier ones left it.
    names = [e["name"] for e in lines if e["cmd"] == "header"]
    eq(names[4:], ["From", "To", "Subject", "Message-ID", "X-First"], "milter 2's headers")
    ok(["X-First", "1"] in rep["headers"], "X-First in the final message: %r" % rep["headers"])
    for tm in (m1, m2):
        eq(tm.proc.popen.poll(), None, "milter still running")
    eq(sorted(e["cmd"] for e in lines if e["cmd"] in ("abort", "quit")),
       ["abort", "abort", "quit", "quit"], "'A' and 'Q' to both milters")


@test
def chain_reject_at_rcpt_from_the_first_milter_is_not_offered_to_the_second(env):
    m1 = env.testmilter(*on("rcpt:<b@example.org>", "reject"))
    m2 = env.testmilter()
    rep = chain_run(env, [m1, m2], "--rcpt", "<a@example.org>", "--rcpt", "<b@example.org>",
                    "--rcpt", "<c@example.org>")
    eq(rep["result"], "accept", "result")
    eq(rep["recipients"], ["<a@example.org>", "<c@example.org>"], "recipients")
    eq([(x["rcpt"], x["reply"]) for x in rep["rcpts"]],
       [("<a@example.org>", "continue"), ("<b@example.org>", "reject"),
        ("<c@example.org>", "continue")], "rcpts (merged)")
    seen2 = [e["args"][0] for e in m2.all("rcpt")]
    eq(seen2, ["<a@example.org>", "<c@example.org>"], "recipients milter 2 was asked about")
    eq(len(m1.all("rcpt")), 3, "milter 1 saw every RCPT")
    eq(len(m2.all("eom")), 1, "milter 2 still gets the message")


@test
def chain_accept_at_connect_retires_only_that_milter(env):
    m1 = env.testmilter(*on("connect", "accept"))
    m2 = env.testmilter()
    rep = chain_run(env, [m1, m2])
    eq(rep["result"], "accept", "result")
    eq([c for c in m1.cmds() if c != "optneg"], ["connect", "close"],
       "milter 1: nothing after its accept (closed without 'Q', as Postfix)")
    cmds2 = m2.cmds()
    for c in MILTER_CMDS:
        ok(c in cmds2, "milter 2 got no %r: %r" % (c, cmds2))
    eq(cmds2[-2:], ["quit", "close"], "milter 2 ends with 'Q'")


@test
def chain_reject_at_mail_ends_the_stage_and_both_get_abort(env):
    m1 = env.testmilter(*on("mail", "reject"))
    m2 = env.testmilter()
    rep = chain_run(env, [m1, m2])
    eq(rep["result"], "reject", "result")
    ok("mail" not in m2.cmds(), "milter 2 was asked about MAIL: %r" % m2.cmds())
    ok("abort" in m2.cmds() and "abort" in m1.cmds(), "'A' to both milters")


@test
def chain_accept_at_mail_from_every_milter_accepts_the_message(env):
    m1 = env.testmilter(*on("mail", "accept"))
    m2 = env.testmilter(*on("mail", "accept"))
    rep = chain_run(env, [m1, m2])
    eq(rep["result"], "accept", "result")
    for tm in (m1, m2):
        ok("rcpt" not in tm.cmds(), "a milter that accepted got RCPT: %r" % tm.cmds())


@test
def chain_a_failing_second_milter_fails_the_session(env):
    m1 = env.testmilter()
    m2 = env.testmilter(*on("data", "close"))
    rep = chain_run(env, [m1, m2], rc=3)
    eq(rep["result"], "error", "result")
    eq(rep["error"], "closed", "error")


@test
def chain_an_unreachable_milter_is_exit_2(env):
    m1 = env.testmilter(log=False)
    r = env.mta_run("--socket", m1.spec, socket="unix:" + env.path("none.sock"))
    eq(r.returncode, 2, "exit status")


@test
def chain_rejects_the_sendmail_flavour(env):
    m1 = env.testmilter(log=False)
    r = env.mta_run("--socket", m1.spec, "--sendmail", socket=m1.spec)
    eq(r.returncode, 1, "exit status")


@test
def load_chain_of_three_milters_500_sessions_without_failures(env):
    ms = [env.testmilter(log=(i == 2)) for i in range(3)]
    args = []
    for tm in ms[1:]:
        args += ["--socket", tm.spec]
    r = env.mta_run("--sessions", "500", "--concurrency", "50", *args, socket=ms[0].spec,
                    timeout=90)
    eq(r.returncode, 0, "exit status (stderr %r)" % r.stderr[-300:])
    s = summary(env, r)
    eq((s["sessions"], s["ok"], s["failed"]), (500, 500, 0), "(sessions, ok, failed)")
    eq(len(ms[2].all("eom")), 500, "eoms at the last milter")
