"""
stats_http - statistics a postmaster can read (issue 6 items 1, 2, 4; design
§5): a scripted run (N sessions; child "filter" refusing M recipients and
adding an X-Spam-Flag to the rest; child "slow" timing out at MAIL K times)
gives exact counters in /stats and in /metrics; /metrics passes `promtool
check metrics`; counters keep counting across a reload and a worker restart;
`milterhubctl stats` prints them as a table and as the same JSON.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request

import harness
from common import eq, ok, test, free_port, SLOW
from daemon_workers import children_of, wait_for, rewrite

N, M, K = 20, 5, 3  # sessions; of them refused at RCPT by "filter"; timing out at MAIL in "slow"


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10 * SLOW) as r:
        return r.status, r.headers, r.read().decode("utf-8")


def stats(port):
    return json.loads(get(port, "/stats")[2])


def milter(st, name):
    for m in st["milters"]:
        if m["name"] == name:
            return m
    raise AssertionError("no milter %r in /stats: %r" % (name, [m["name"] for m in st["milters"]]))


def metric(text, name, **labels):
    """The value of one sample of /metrics (labels in any order), or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(3))
    return None


def start(env, workers=2, extra=""):
    flt = env.testmilter("--on", "rcpt:bad@example.org=reject",
                         "--on", "eom=add-header:X-Spam-Flag:YES", label="testmilter-filter")
    slow = env.testmilter("--on", "mail:slow@example.net=hang", label="testmilter-slow")
    port = free_port()
    spec = env.unix_spec("hub.sock")
    text = ('manager { listen = "%s", workers = %d, stats = "inet:%d@127.0.0.1"%s }\n'
            'milter "filter" { socket = "%s" }\n'
            'milter "slow" { socket = "%s", timeouts = { read = 0.5 } }\n'
            % (spec, workers, port, extra, flt.spec, slow.spec))
    hub = env.hub(text, listen=spec)
    return hub, port, text


def scripted_run(env, hub):
    """N sessions: M with the refused recipient, K from the slow sender, the rest plain."""
    for _ in range(M):
        env.mta(hub.spec, "--rcpt", "<bad@example.org>")
    for _ in range(K):
        env.mta(hub.spec, "--from", "<slow@example.net>")
    r = env.mta(hub.spec, "--sessions", N - M - K, "--concurrency", 4)
    eq(r["failed"], 0, "failed sessions in the plain part")


@test
def stats_counters_are_exact_in_stats_json_and_in_metrics(env):
    hub, port, _ = start(env)
    scripted_run(env, hub)
    st = stats(port)
    eq(st["sessions"]["total"], N, "sessions.total")
    eq(st["sessions"]["open"], 0, "sessions.open")
    # At concurrency 4; a closing session may still count in one worker while
    # the MTA's next one opens in another: a little above 4 is honest.
    ok(1 <= st["sessions"]["max"] <= 8, "sessions.max %r" % st["sessions"]["max"])
    eq(st["messages"], N, "messages")
    eq(st["recipients"], N, "recipients")
    eq(st["results"]["reject"], M, "results.reject (every recipient refused)")
    eq(st["results"]["pass"], N - M, "results.pass (nobody decided at end-of-message)")
    eq(sum(st["results"].values()), N, "results add up to the messages")
    eq(st["replies"]["envelope-recipient"].get("reject", 0), M, "replies to RCPT: reject")

    f = milter(st, "filter")
    eq(f["sessions"], N, "filter.sessions")
    eq(f["answers"]["envelope-recipient"]["reject"], M, "filter rejected at RCPT")
    eq(f["answers"]["envelope-recipient"]["continue"], N - M, "filter continued at RCPT")
    eq(f["answers"]["connect"]["continue"], N, "filter's CONNECT answers")
    eq(f["headers"]["spam"]["yes"], N - M, "X-Spam-Flag: YES counted per message it reached")
    eq(f["fallbacks"], {}, "filter never failed")
    eq(f["latency"]["envelope-recipient"]["count"], N, "filter RCPT latency observations")
    eq(sum(f["latency"]["envelope-recipient"]["buckets"]), N, "buckets add up")

    s = milter(st, "slow")
    eq(s["fallbacks"]["envelope-from"]["timeout"], K, "slow timed out at MAIL")
    eq(sum(sum(v.values()) for v in s["fallbacks"].values()), K, "slow's fallbacks, all stages")
    eq(s["answers"]["envelope-from"]["continue"], N - K, "slow's MAIL answers")
    eq(s["answers"]["envelope-recipient"]["continue"], N - K, "slow's RCPT answers")
    eq(s["state"], "unsupervised", "state of a milter the daemon does not start")

    code, headers, text = get(port, "/metrics")
    eq(code, 200, "/metrics status")
    ok(headers["Content-Type"].startswith("text/plain; version=0.0.4"), "content type")
    for name, labels, want in [
            ("milterhub_sessions_total", {}, N),
            ("milterhub_messages_total", {}, N),
            ("milterhub_recipients_total", {}, N),
            ("milterhub_results_total", {"result": "reject"}, M),
            ("milterhub_results_total", {"result": "pass"}, N - M),
            ("milterhub_milter_sessions_total", {"milter": "filter"}, N),
            ("milterhub_milter_answers_total",
             {"milter": "filter", "stage": "envelope-recipient", "status": "reject"}, M),
            ("milterhub_milter_fallbacks_total",
             {"milter": "slow", "stage": "envelope-from", "reason": "timeout"}, K),
            ("milterhub_milter_header_results_total",
             {"milter": "filter", "kind": "spam", "result": "yes"}, N - M),
            ("milterhub_milter_latency_seconds_count",
             {"milter": "filter", "stage": "envelope-recipient"}, N),
            ("milterhub_milter_latency_seconds_bucket",
             {"milter": "filter", "stage": "envelope-recipient", "le": "+Inf"}, N)]:
        eq(metric(text, name, **labels), want, "%s%r in /metrics" % (name, labels))


@test
def stats_metrics_pass_promtool_check(env):
    promtool = shutil.which("promtool")
    if promtool is None:
        harness.skip("promtool not installed (Debian package prometheus; scripts/install-deps)")
    hub, port, _ = start(env)
    scripted_run(env, hub)
    text = get(port, "/metrics")[2]
    r = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=60)
    eq(r.returncode, 0, "promtool check metrics exit status: %s" % (r.stdout + r.stderr)[-800:])
    eq((r.stdout + r.stderr).decode().strip(), "", "promtool's complaints")


@test
def stats_counters_keep_counting_across_a_reload_and_a_worker_restart(env):
    hub, port, text = start(env)
    scripted_run(env, hub)
    rewrite(hub, text.replace("read = 0.5", "read = 0.6"))
    r = env.ctl(hub, "reload")
    eq(r.returncode, 0, "reload")
    env.mta(hub.spec, "--sessions", 10, "--concurrency", 2)
    wait_for("the old generation's workers to exit",
             lambda: len(children_of(hub.pid)) == 2)
    victim = children_of(hub.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for("the killed worker to be replaced",
             lambda: victim not in children_of(hub.pid) and len(children_of(hub.pid)) == 2)
    env.mta(hub.spec, "--sessions", 10, "--concurrency", 2)
    st = stats(port)
    eq(st["sessions"]["total"], N + 20, "sessions.total after a reload and a worker restart")
    eq(milter(st, "filter")["sessions"], N + 20, "filter.sessions, one name across generations")
    eq(milter(st, "slow")["fallbacks"]["envelope-from"]["timeout"], K, "slow's timeouts kept")
    eq(st["worker_restarts"], 1, "worker_restarts")
    eq(st["generation"], 2, "generation")


@test
def stats_milterhubctl_stats_prints_a_table_and_the_same_json(env):
    hub, port, _ = start(env, workers=1)
    scripted_run(env, hub)
    r = env.ctl(hub, "stats")
    eq(r.returncode, 0, "milterhubctl stats (stderr %s)" % r.stderr)
    ok(re.search(r"^filter\b", r.stdout, re.M) and re.search(r"^slow\b", r.stdout, re.M),
       "a row per milter:\n" + r.stdout)
    ok(str(N) in r.stdout, "the session total in the table:\n" + r.stdout)
    r = env.ctl(hub, "stats", "--json")
    eq(r.returncode, 0, "milterhubctl stats --json")
    js = json.loads(r.stdout)
    eq(js["sessions"]["total"], N, "sessions.total by milterhubctl")
    eq(milter(js, "filter")["answers"], milter(stats(port), "filter")["answers"],
       "the same answers as /stats")


@test
def stats_endpoint_answers_404_elsewhere_and_is_loopback_only_by_config(env):
    hub, port, _ = start(env, workers=1)
    try:
        get(port, "/nope")
        raise AssertionError("/nope answered 200")
    except urllib.error.HTTPError as e:
        eq(e.code, 404, "status of an unknown path")
    code, headers, body = get(port, "/")
    eq(code, 200, "/ status")
    ok(headers["Content-Type"].startswith("text/html"), "/ content type")
    ok("http://" not in body and "https://" not in body, "the page names no external host")


@test
def stats_endpoint_without_a_host_listens_on_loopback_only(env):
    port = free_port()
    spec = env.unix_spec("hub.sock")
    hub = env.hub('manager { listen = "%s", workers = 1, stats = "inet:%d" }\n' % (spec, port),
                  listen=spec)
    wait_for("the statistics endpoint", lambda: harness.spec_listening("inet:%d@127.0.0.1" % port))
    # /proc/net/tcp: local address of the listening socket (state 0A), little-endian hex.
    with open("/proc/net/tcp") as f:
        rows = [ln.split() for ln in f.read().splitlines()[1:]]
    local = [r[1] for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == port]
    eq(local, ["0100007F:%04X" % port], "listening address of stats = \"inet:PORT\"")
    eq(stats(port)["generation"], 1, "/stats answers on 127.0.0.1")
