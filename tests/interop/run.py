#!/usr/bin/env python3
"""
run.py - milterhub interop suite: our tools against real third-party peers.

  - milterhub-mta against libmilter_milter (a milter on Debian's libmilter,
    tests/interop/libmilter_milter.c), over unix and TCP sockets;
  - Sendmail's miltertest running tests/interop/testmilter.lua against
    milterhub-testmilter;
  - Debian's Postfix (private instances) with milterhub in front of opendkim and
    libmilter_milter: tests/interop/postfix_hub.py, registered by importing it below.

  tests/interop/run.py --build BUILD_DIR [--filter SUBSTR] [--jobs N] [--list]

MH_WRAP prefixes our tools only (not libmilter_milter, not miltertest).
"""

import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import harness  # noqa: E402
from harness import eq, ok, skip, stage, stage_names, test, free_port  # noqa: E402

LUA = os.path.join(HERE, "testmilter.lua")
OKR, REJ = "<ok@example.org>", "<reject@example.org>"
REJ_TEXT = "550 5.1.1 no such user here"
# libmilter asks the MTA not to send events the milter has no callback for.
NO_BITS_WANTED = {"connect": 0x1, "helo": 0x2, "mail": 0x4, "header": 0x20, "eoh": 0x40,
                  "body": 0x10, "unknown": 0x100, "data": 0x200}


def libmilter(env, spec):
    exe = os.path.join(env.build, "tests/interop/libmilter_milter")
    if not os.access(exe, os.X_OK):
        skip("libmilter_milter not built (needs libmilter-dev): " + exe)
    # libmilter takes seconds to stop on SIGTERM: SIGKILL after 1 s.
    env.start("libmilter_milter", [exe, spec], ready=spec, grace=1.0, wrap=False)
    return spec


def check_libmilter_session(r, flavour="postfix"):
    eq(r["error"], None, "error")
    eq(r["result"], "accept", "result")
    n = r["negotiated"]
    eq(n["version"], 6, "negotiated version")
    eq(n["actions"], 0x11, "negotiated actions (ADDHDRS|CHGHDRS as registered)")
    eq(n["protocol"] & ~0x1FFFFF, 0, "negotiated protocol bits beyond SMFI_CURR_PROT")
    for ev, bit in NO_BITS_WANTED.items():
        eq(n["protocol"] & bit, bit, "NO bit for %s (no callback) in protocol 0x%x" % (ev, n["protocol"]))
        ok(ev not in stage_names(r), "%s sent though libmilter asked not to (%s)" % (ev, flavour))
    eq(n["protocol"] & 0x8, 0, "NORCPT set though the milter has an envrcpt callback")
    eq([(x["rcpt"], x["reply"], x["text"]) for x in r["rcpts"]],
       [(OKR, "continue", None), (REJ, "reject", REJ_TEXT)], "rcpts")
    eq(r["recipients"], [OKR], "accepted recipients")
    eq(stage(r, "eom")["reply"], "accept", "eom reply")
    hdrs = [tuple(h) for h in r["headers"]]
    eq(hdrs[-1], ("X-Libmilter", "yes"), "last header")
    eq([h for h in hdrs if h[0] == "Subject"], [("Subject", "changed by libmilter")], "Subject")
    ops = [m["op"] for m in r["modifications"]]
    eq(sorted(ops), ["add-header", "chg-header"], "modification ops")


def session(env, spec, *extra):
    return env.mta(spec, "--rcpt", OKR, "--rcpt", REJ, *extra)


@test
def libmilter_over_unix_adds_header_changes_subject_rejects_one_rcpt(env):
    spec = libmilter(env, env.unix_spec())
    check_libmilter_session(session(env, spec))


@test
def libmilter_over_tcp_sendmail_form(env):
    port = free_port()
    spec = libmilter(env, "inet:%d@127.0.0.1" % port)
    check_libmilter_session(session(env, spec))


@test
def libmilter_over_tcp_reached_with_postfix_form(env):
    port = free_port()
    libmilter(env, "inet:%d@127.0.0.1" % port)
    check_libmilter_session(session(env, "inet:127.0.0.1:%d" % port))


@test
def libmilter_in_sendmail_flavour(env):
    spec = libmilter(env, env.unix_spec())
    check_libmilter_session(session(env, spec, "--sendmail"), "sendmail")


@test
def libmilter_three_messages_on_one_connection(env):
    # Postfix flavour sends 'A' after each message; libmilter must stay in step.
    spec = libmilter(env, env.unix_spec())
    r = session(env, spec, "--messages", "3")
    eq(len(r["messages"]), 3, "messages")
    for i, m in enumerate(r["messages"], 1):
        eq(m["result"], "accept", "result of message %d" % i)
        eq(m["recipients"], [OKR], "recipients of message %d" % i)
        eq([tuple(h) for h in m["headers"] if h[0] == "X-Libmilter"], [("X-Libmilter", "yes")],
           "X-Libmilter in message %d" % i)


@test
def libmilter_multi_line_subject_and_large_body(env):
    spec = libmilter(env, env.unix_spec())
    path = env.path("m.eml")
    body = ("z" * 70 + "\r\n") * 4000  # 288000 bytes, five chunks (body not registered: not sent)
    with open(path, "w", newline="") as f:
        f.write("From: a@example.net\r\nSubject: old\r\n folded\r\n\r\n" + body)
    r = env.mta(spec, "--message-file", path, "--rcpt", OKR)
    eq(r["result"], "accept", "result")
    eq([tuple(h) for h in r["headers"] if h[0] == "Subject"], [("Subject", "changed by libmilter")],
       "Subject")
    eq(r["body"], body, "body")


@test
def libmilter_under_load(env):
    spec = libmilter(env, env.unix_spec())
    res = env.mta_run("--sessions", "300", "--concurrency", "20", "--rcpt", OKR, "--rcpt", REJ,
                      socket=spec, timeout=90)
    eq(res.returncode, 0, "exit status")
    import json
    s = json.loads(res.stdout)
    eq((s["sessions"], s["ok"], s["failed"]), (300, 300, 0), "(sessions, ok, failed)")


def lua_args(path):
    """The testmilter options of the script's ARGS = { "...", ... } table."""
    with open(path) as f:
        text = f.read()
    m = re.search(r"^ARGS\s*=\s*\{(.*?)^\}", text, re.S | re.M)
    if not m:
        return None
    out = []
    for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)):
        out.append(re.sub(r"\\(.)", lambda x: {"n": "\n", "t": "\t"}.get(x.group(1), x.group(1)), lit))
    return out


@test
def miltertest_script_passes_against_testmilter(env):
    if not shutil.which("miltertest"):
        skip("miltertest not installed")
    if not os.path.exists(LUA):
        skip("tests/interop/testmilter.lua not written yet (testmilter's author)")
    args = lua_args(LUA)
    if args is None:
        raise AssertionError("no ARGS = { ... } table in " + LUA)
    spec = env.unix_spec()
    tm = env.testmilter(*args, listen=spec)
    r = env.run("miltertest", ["miltertest", "-D", "MILTER=" + spec, "-D", "LOG=" + tm.log_path,
                               "-s", LUA], timeout=60, wrap=False)
    if r.returncode != 0:
        out = (r.stdout + r.stderr).splitlines()[-15:]
        raise AssertionError("miltertest exited %s%s" % (r.returncode,
                             "".join("\n  " + s for s in out) or " (no output)"))


import postfix_hub  # noqa: E402,F401  (registers the Postfix interop tests)
import sendmail_hub  # noqa: E402,F401  (registers the Sendmail interop tests)

TOOLS = ["tools/mta/milterhub-mta", "tools/testmilter/milterhub-testmilter"]

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--build" in args and "--list" not in args:
        i = args.index("--build") + 1
        build = args[i] if i < len(args) else ""
        missing = [t for t in TOOLS if not os.access(os.path.join(build, t), os.X_OK)]
        if missing:
            print("Bail out! not built in %s: %s" % (build, ", ".join(missing)))
            sys.exit(1)
    sys.exit(harness.main(args, title="interop tests"))
