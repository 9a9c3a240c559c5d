"""
sendmail - how --sendmail differs from the default Postfix flavour
(docs/tools.md "Sendmail flavour"): no 'A' after a finished message, 'D'
only when it holds a pair, continue after 'E' counts as accept; edits are
applied the same way.
"""

from common import RCPT, eq, ok, header_list, test, on


@test
def postfix_flavour_aborts_after_every_message(env):
    tm = env.testmilter()
    env.mta(tm, "--messages", "2")
    cmds = tm.cmds()
    eq([c for c in cmds if c in ("mail", "eom", "abort")],
       ["mail", "eom", "abort", "mail", "eom", "abort"], "mail/eom/abort order")


@test
def sendmail_flavour_sends_no_abort_after_a_finished_message(env):
    tm = env.testmilter()
    r = env.mta(tm, "--sendmail", "--messages", "2")
    eq([m["result"] for m in r["messages"]], ["accept", "accept"], "message results")
    cmds = tm.cmds()
    ok("abort" not in cmds, "abort sent in Sendmail flavour: %r" % cmds)
    eq(cmds.count("eom"), 2, "eoms")
    ok("quit" in cmds, "no quit: %r" % cmds)


@test
def sendmail_flavour_sends_no_empty_macro_packet(env):
    tm = env.testmilter()
    env.mta(tm, "--sendmail")
    ok("macros" not in tm.first("helo"), "helo got a 'D' with no pair: %r" % tm.first("helo"))
    ok(tm.first("connect").get("macros"), "connect macros missing in Sendmail flavour")


@test
def sendmail_flavour_continue_at_eom_is_accept(env):
    tm = env.testmilter(*on("eom", "continue"))
    r = env.mta(tm, "--sendmail")
    eq(r["result"], "accept", "result")
    eq(r["stages"][-1]["stage"], "eom", "last stage")


@test
def sendmail_flavour_rcpt_reject_refuses_only_that_recipient(env):
    tm = env.testmilter(*on("rcpt:b@example.org", "reject"))
    r = env.mta(tm, "--sendmail", "--rcpt", RCPT, "--rcpt", "<b@example.org>")
    eq([x["reply"] for x in r["rcpts"]], ["continue", "reject"], "rcpt replies")
    eq(r["recipients"], [RCPT], "recipients")
    eq(r["result"], "accept", "result")


@test
def sendmail_flavour_applies_edits_like_postfix(env):
    acts = ["add-header:X-A:1", "ins-header:0:X-Top:t", "chg-header:Subject:1:new",
            "add-rcpt:<c@example.org>", "repl-body:new body\\n"]
    tm = env.testmilter(*on("eom", *acts))
    pf = env.mta(tm)
    tm2 = env.testmilter(*on("eom", *acts))
    sm = env.mta(tm2, "--sendmail")
    strip = lambda r: [h for h in header_list(r) if h[0] != "Message-ID"]  # noqa: E731
    eq(strip(sm)[0:1], [("X-Top", "t")], "first header in Sendmail flavour")
    eq([h[0] for h in strip(sm)], [h[0] for h in strip(pf)], "header names, Sendmail vs Postfix")
    eq(sm["recipients"], pf["recipients"], "recipients, Sendmail vs Postfix")
    eq(sm["body"], "new body\r\n", "body")


@test
def sendmail_flavour_mail_reject_then_next_message(env):
    tm = env.testmilter(*on("mail", "reject"))
    r = env.mta(tm, "--sendmail", "--messages", "2")
    eq([m["result"] for m in r["messages"]], ["reject", "reject"], "results")
    eq(len(tm.all("mail")), 2, "MAILs the milter got")
