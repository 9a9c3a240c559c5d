"""
stats_page - the status page on "/" (issue 6 item 2; design §5), rendered by
a real browser: milterhub with children "accepter" (accepts at CONNECT) and
"rejecter" (rejects every RCPT) runs N sessions; once the master's history
has sampled them, headless Chromium loads http://127.0.0.1:PORT/ and its DOM
must hold a card per configured milter with its four graphs (outcomes and
latency, last hour and day), the sessions graphs, and numbers equal to the
totals /stats reports; the page names no other host and needs no script.
Screenshots as a phone (412x915) and a desktop (1280x900) are left in the
build directory: BUILD/stats-page.png and BUILD/stats-page-desktop.png.
"""

import html.parser
import json
import os
import re
import urllib.request

import harness
from common import eq, ok, test, free_port, SLOW
from daemon_workers import wait_for

CHROMIUM = "/usr/bin/chromium"
N = 30  # sessions


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10 * SLOW) as r:
        return r.status, r.headers, r.read().decode("utf-8")


class PageDom(html.parser.HTMLParser):
    """What the tests look at in a page: data-stat numbers (global, and per
    milter section), data-graph names (same split) and the sections' order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stats, self.graphs = {}, []
        self.milters = {}  # name -> {"stats": {}, "graphs": [], "id": ..., "badge": {...}}
        self.order = []
        self._section = None  # (name, depth of its <section>)
        self._depth = 0  # of <section> elements only: other end tags may be left out
        self._stat = None  # data-stat of the element whose text is being read
        self._text = ""

    def _scope(self):
        return self.milters[self._section[0]] if self._section else None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self._depth += 1
        if tag == "section" and "data-milter" in a:
            name = a["data-milter"]
            self.milters[name] = {"stats": {}, "graphs": [], "id": a.get("id"),
                                  "class": a.get("class"), "badge": None}
            self.order.append(name)
            self._section = (name, self._depth)
        sc = self._scope()
        if "data-graph" in a:
            ok(tag == "svg" and a.get("class") == "graph",
               "data-graph on <%s class=%r>" % (tag, a.get("class")))
            (sc["graphs"] if sc else self.graphs).append(a["data-graph"])
        if "data-state" in a and sc is not None:
            sc["badge"] = a
        if "data-stat" in a:
            self._stat, self._text = a["data-stat"], ""

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_data(self, data):
        if self._stat is not None:
            self._text += data

    def handle_endtag(self, tag):
        if self._stat is not None:
            sc = self._scope()
            (sc["stats"] if sc else self.stats)[self._stat] = self._text.strip()
            self._stat = None
        if tag == "section":
            if self._section and self._depth == self._section[1]:
                self._section = None
            self._depth -= 1


def chromium(env, *args):
    """Run headless Chromium (not under MH_WRAP) and return the Ran."""
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage",
            "--user-data-dir=" + env.path("chromium")] + list(args)
    r = env.run("chromium", argv, timeout=90, wrap=False)
    eq(r.returncode, 0, "chromium exit status (stderr: %s)" % r.stderr[-600:])
    return r


def answers(m, status):
    """A milter's answers with `status`, summed over stages (as the page sums them)."""
    return sum(by.get(status, 0) for by in m.get("answers", {}).values())


def section_html(page, name):
    m = re.search(r'<section class="milter" id="milter-%s" data-milter="%s">(.*?)</section>'
                  % (re.escape(name), re.escape(name)), page, re.S)
    return m.group(1) if m else ""


def sampled(port):
    """The page once the history holds a point with rejecter's rejects: its
    hour line of rejects leaves the zero line (y 118.0 in the viewBox)."""
    page = get(port, "/")[2]
    sec = section_html(page, "rejecter")
    m = re.search(r'data-graph="outcomes-hour".*?<path class="s reject" d="([^"]*)"', sec, re.S)
    if m and any(float(y) < 118.0 for y in re.findall(r"[ML][\d.]+ ([\d.]+)", m.group(1))):
        return page
    return None


@test
def stats_page_shows_each_milter_with_graphs_and_the_totals_of_stats(env):
    if not os.access(CHROMIUM, os.X_OK):
        harness.skip("no %s (scripts/install-deps installs chromium)" % CHROMIUM)
    acc = env.testmilter("--on", "connect=accept", label="testmilter-accepter")
    rej = env.testmilter("--on", "rcpt=reject", label="testmilter-rejecter")
    port = free_port()
    spec = env.unix_spec("hub.sock")
    hub = env.hub('manager { listen = "%s", workers = 2, stats = "inet:%d@127.0.0.1" }\n'
                  'milter "accepter" { socket = "%s" }\n'
                  'milter "rejecter" { socket = "%s" }\n' % (spec, port, acc.spec, rej.spec),
                  listen=spec)
    wait_for("the statistics listener", lambda: harness.spec_listening(
        "inet:%d@127.0.0.1" % port))
    r = env.mta(hub.spec, "--sessions", N, "--concurrency", 4)
    eq(r["failed"], 0, "failed sessions")

    st = json.loads(get(port, "/stats")[2])
    eq(st["sessions"]["total"], N, "/stats sessions.total")
    by_name = {m["name"]: m for m in st["milters"]}
    eq(sorted(by_name), ["accepter", "rejecter"], "milters in /stats")
    eq(answers(by_name["accepter"], "accept"), N, "accepter's accepts in /stats")
    eq(answers(by_name["rejecter"], "reject"), N, "rejecter's rejects in /stats")

    # The master samples every 10 s: wait for a point that holds the sessions.
    page = wait_for("a history sample with the sessions on the page", lambda: sampled(port),
                    timeout=30)
    code, headers, _ = get(port, "/")
    eq(code, 200, "/ status")
    ok(headers["Content-Type"].startswith("text/html"), "content type %r"
       % headers["Content-Type"])
    ok(page.startswith("<!DOCTYPE html>"), "an HTML5 document")
    for bad in ("http://", "https://", "<script", "//fonts.", "@import"):
        ok(bad not in page, "the page contains %r" % bad)
    ok('name="viewport"' in page, "viewport meta for phones")

    dom_text = chromium(env, "--dump-dom", "http://127.0.0.1:%d/" % port).stdout
    dom = PageDom()
    dom.feed(dom_text)
    dom.close()
    eq(dom.order, ["accepter", "rejecter"], "milter cards, in chain order")
    for name in dom.order:
        card = dom.milters[name]
        eq(card["id"], "milter-" + name, "id of %s's card" % name)
        eq(card["class"], "milter", "class of %s's card" % name)
        eq(sorted(card["graphs"]), ["latency-day", "latency-hour", "outcomes-day",
                                    "outcomes-hour"], "graphs of %s" % name)
        ok(card["badge"] is not None, "%s has a health badge" % name)
        eq(card["badge"]["data-state"], by_name[name]["state"], "%s's state" % name)
        eq(card["badge"]["data-enabled"], "1" if by_name[name]["enabled"] else "0",
           "%s enabled" % name)
    eq(sorted(dom.graphs), ["sessions-day", "sessions-hour"], "graphs outside the cards")

    # Numbers: exactly the totals of /stats (nothing runs between the two reads).
    want = {"sessions_total": st["sessions"]["total"], "sessions_open": st["sessions"]["open"],
            "sessions_max": st["sessions"]["max"], "messages": st["messages"],
            "recipients": st["recipients"], "workers": st["workers"],
            "generation": st["generation"]}
    for res, n in st["results"].items():
        want["result_" + res] = n
    for k, v in want.items():
        eq(dom.stats.get(k), str(v), "page data-stat %s" % k)
    for name, m in by_name.items():
        got = dom.milters[name]["stats"]
        mwant = {"sessions": m["sessions"], "restarts": m["restarts"],
                 "fallbacks": sum(sum(v.values()) for v in m.get("fallbacks", {}).values())}
        for status in ("accept", "reject", "tempfail", "discard"):
            mwant[status] = answers(m, status)
        for k, v in mwant.items():
            eq(got.get(k), str(v), "%s's data-stat %s" % (name, k))
    eq(dom.milters["accepter"]["stats"]["accept"], str(N), "accepter's accepts on the page")
    eq(dom.milters["rejecter"]["stats"]["reject"], str(N), "rejecter's rejects on the page")

    # What a postmaster sees: a phone and a desktop screenshot, kept in the build dir.
    for png, size in (("stats-page.png", "412,915"), ("stats-page-desktop.png", "1280,900")):
        path = os.path.join(env.build, png)
        if os.path.exists(path):
            os.unlink(path)
        chromium(env, "--hide-scrollbars", "--screenshot=" + path, "--window-size=" + size,
                 "http://127.0.0.1:%d/" % port)
        ok(os.path.exists(path), "no screenshot %s" % path)
        with open(path, "rb") as f:
            head = f.read(8)
        eq(head, b"\x89PNG\r\n\x1a\n", "%s is a PNG" % png)
        ok(os.path.getsize(path) > 20000, "%s is only %d bytes" % (png, os.path.getsize(path)))
