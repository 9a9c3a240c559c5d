"""
decisions - every decision at every stage it is legal at (milter-protocol.md
§3, §6.3; docs/tools.md "On the wire"), Postfix flavour: the stage's reply,
the message result, the reply text, and which events the milter still got.
"""

from common import (ORDER, MESSAGE_EVENTS, RCPT, eq, ok, register, stage, stage_names,
                    test, events_after, on)

REPLY5 = "550 5.7.1 rejected by testmilter"
REPLY4 = "451 4.7.1 try again later"

# action given to the testmilter -> (stage reply, result, text)
DECISIONS = {
    "continue": ("continue", "accept", None),
    "accept": ("accept", "accept", None),
    "reject": ("reject", "reject", None),
    "tempfail": ("tempfail", "tempfail", None),
    "discard": ("discard", "discard", None),
    "reply5xx": ("reject", "reject", REPLY5),
    "reply4xx": ("tempfail", "tempfail", REPLY4),
}
ACTION = {"reply5xx": "reply:550:5.7.1:rejected by testmilter",
          "reply4xx": "reply:451:4.7.1:try again later"}

STAGES = ["connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom", "unknown"]


def legal(stage_name, decision):
    # 'd' only for message-level commands (milter-protocol.md §3).
    if decision == "discard" and stage_name in ("connect", "helo", "unknown"):
        return False
    # U: the command is rejected anyway, the milter only picks the code (§6.3).
    if decision in ("accept",) and stage_name == "unknown":
        return False
    return True


def verb(decision, stage_name):
    if decision == "continue":
        return "continue_at_%s_goes_on_to_the_end" % stage_name
    if stage_name in ("connect", "helo"):
        if decision == "accept":
            return "accept_at_%s_sends_no_more_events" % stage_name
        return "%s_at_%s_ends_the_session_before_any_message" % (decision, stage_name)
    if stage_name == "unknown":
        return "%s_at_unknown_refuses_only_that_command" % decision
    if stage_name == "rcpt" and decision in ("reject", "tempfail", "reply5xx", "reply4xx"):
        return "%s_of_the_only_recipient_sends_no_data" % decision
    return "%s_at_%s_ends_the_message" % (decision, stage_name)


def make(stage_name, decision):
    reply, result, text = DECISIONS[decision]
    action = ACTION.get(decision, decision)

    def t(env):
        tm = env.testmilter(*on(stage_name, action))
        args = ["--unknown", "XFOO bar"]
        r = env.mta(tm, *args)
        st = stage(r, stage_name) if stage_name != "header" else \
            [s for s in r["stages"] if s["stage"] == "header"][0]
        eq(st.get("reply"), reply, "%s stage reply" % stage_name)
        eq(st.get("text"), text, "%s stage text" % stage_name)
        cmds = tm.cmds()
        names = stage_names(r)

        if stage_name in ("connect", "helo") and decision != "continue":
            # The session ends: no message reaches the milter.
            eq(r["result"], "accept" if decision == "accept" else "not-sent", "result")
            ok("mail" not in cmds, "milter got MAIL after %s at %s: %r" % (decision, stage_name, cmds))
            ok("mail" not in names, "report has a mail stage after %s at %s: %r"
               % (decision, stage_name, names))
            if stage_name == "connect":
                ok("helo" not in cmds, "milter got HELO after %s at connect: %r" % (decision, cmds))
            return

        eq(r["result"], "accept" if stage_name == "unknown" else result, "result")
        if text is not None and stage_name != "unknown":
            eq(r.get("reply"), text, "report reply")

        if stage_name == "unknown" or decision == "continue":
            # Only that command (or nothing) refused: the message runs to eom.
            eq(r["result"], "accept", "result")
            for ev in MESSAGE_EVENTS:
                ok(ev in cmds, "milter did not get %s: %r" % (ev, cmds))
            eq(r["recipients"], [RCPT], "recipients")
            return

        # The message ended at this stage: no later event of it was sent.
        later = events_after(cmds, stage_name)
        ok(later == [], "milter got %r after %s at %s (log: %r)" % (later, decision, stage_name, cmds))
        after = ORDER[ORDER.index(stage_name) + 1:]
        ok(not [n for n in names if n in after],
           "report lists stages after %s at %s: %r" % (decision, stage_name, names))
        if stage_name == "header":
            eq(cmds.count("header"), 1, "headers sent after a decision at the first header")
        if stage_name == "rcpt":
            eq(r["rcpts"][0].get("reply"), reply, "rcpts[0].reply")
            eq(r["rcpts"][0].get("text"), text, "rcpts[0].text")
        # Postfix flavour: 'A' after every message, then 'Q'.
        ok("abort" in cmds[cmds.index(stage_name):], "no abort after the message: %r" % cmds)

    register(verb(decision, stage_name), t)


for _s in STAGES:
    for _d in DECISIONS:
        if legal(_s, _d):
            make(_s, _d)


@test
def reply_without_xcode_leaves_the_enhanced_code_out(env):
    tm = env.testmilter(*on("mail", "reply:550::no such sender"))
    r = env.mta(tm)
    eq(stage(r, "mail").get("text"), "550 no such sender", "mail stage text")
    eq(r["result"], "reject", "result")
    eq(r["reply"], "550 no such sender", "reply")


@test
def multi_line_reply_code_reaches_the_report_whole(env):
    # reply TEXT with "\n": a multi-line reply as smfi_setmlreply builds it,
    # "550-" on all lines but the last, joined by CRLF (milter-protocol.md §3.1).
    tm = env.testmilter(*on("rcpt", "reply:550:5.7.1:first line\\nsecond line\\nlast line"))
    r = env.mta(tm)
    want = "550-5.7.1 first line\r\n550-5.7.1 second line\r\n550 5.7.1 last line"
    eq(stage(r, "rcpt").get("text"), want, "multi-line rcpt reply text")
    eq(r["rcpts"][0].get("text"), want, "rcpts[0].text")
    eq(r["reply"], want, "report reply")
    eq(r["result"], "reject", "result")


@test
def delay_shorter_than_timeout_is_waited_for(env):
    tm = env.testmilter(*on("rcpt", "delay:300", "reject"))
    r = env.mta(tm, "--timeout", "2")
    eq(stage(r, "rcpt")["reply"], "reject", "rcpt reply after delay")
    eq(r["result"], "reject", "result")
    ok(r["_elapsed"] >= 0.3, "finished in %.2fs, before the 300 ms delay" % r["_elapsed"])


@test
def actions_run_in_order_until_a_decision(env):
    # The add-header after the decision is never sent.
    tm = env.testmilter(*on("eom", "add-header:X-First:1", "accept", "add-header:X-Never:2"))
    r = env.mta(tm)
    eq(stage(r, "eom")["reply"], "accept", "eom reply")
    eq([m["name"] for m in r["modifications"]], ["X-First"], "modifications")


@test
def header_qualified_rule_applies_only_to_that_header(env):
    tm = env.testmilter(*on("header:Subject", "reject"))
    r = env.mta(tm)
    hs = [(s.get("arg"), s.get("reply")) for s in r["stages"] if s["stage"] == "header"]
    eq(hs, [("From", "continue"), ("To", "continue"), ("Subject", "reject")], "header stages")
    eq(r["result"], "reject", "result")
    ok("eoh" not in tm.cmds(), "eoh sent after the header reject")


@test
def skip_at_body_stops_the_body_and_goes_to_eom(env):
    body = ("x" * 78 + "\r\n") * 3000  # 240000 bytes: four chunks
    path = env.path("msg.eml")
    with open(path, "w", newline="") as f:
        f.write("From: sender@example.net\r\nSubject: big\r\n\r\n" + body)
    tm = env.testmilter(*on("body", "skip"))
    r = env.mta(tm, "--message-file", path)
    bodies = [s for s in r["stages"] if s["stage"] == "body"]
    eq([s["reply"] for s in bodies], ["skip"], "body stage replies")
    eq(stage(r, "eom")["reply"], "continue", "eom reply")
    eq(r["result"], "accept", "result")
    eq(len(tm.all("body")), 1, "body chunks the milter got")
    eq(r["body"], body, "body kept intact by the MTA")


@test
def progress_at_eom_is_counted_and_the_decision_follows(env):
    tm = env.testmilter(*on("eom", "progress", "progress", "accept"))
    r = env.mta(tm)
    st = stage(r, "eom")
    eq(st.get("progress"), 2, "eom progress count")
    eq(st["reply"], "accept", "eom reply")
    eq(r["result"], "accept", "result")


@test
def progress_restarts_the_eom_timeout(env):
    # 3 x 700 ms > --timeout 1, but no single wait exceeds it.
    tm = env.testmilter(*on("eom", "delay:700", "progress", "delay:700", "progress", "delay:700", "reject"))
    r = env.mta(tm, "--timeout", "1")
    eq(r["error"], None, "error")
    eq(stage(r, "eom")["reply"], "reject", "eom reply")
    eq(r["result"], "reject", "result")


@test
def progress_before_an_envelope_decision_is_accepted_in_postfix_flavour(env):
    # Postfix takes 'p' for any answered command (milter-protocol.md §3, §7.2).
    tm = env.testmilter(*on("rcpt", "progress", "tempfail"))
    r = env.mta(tm)
    eq(stage(r, "rcpt")["reply"], "tempfail", "rcpt reply")
    eq(r["result"], "tempfail", "result")
    eq(r["error"], None, "error")
