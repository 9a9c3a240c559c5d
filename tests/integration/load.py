"""
load - load mode (docs/tools.md "Load mode"): N sessions over C concurrent
connections; a reject is not a failure; failures give exit 3.
"""

import json
import re

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
