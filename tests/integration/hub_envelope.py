"""
hub_envelope - the hub between milterhub-mta (the MTA) and 1-3
milterhub-testmilter children, envelope stages (design §2.1, §2.2):
status order, the parallel barrier, accept retiring only its child,
per-recipient merge, reply codes, several messages on one connection.

Each scenario pins one row of the contract and is named after it. The
helpers at the top (hub configuration, child logs) are shared by
hub_content, hub_negotiation and hub_failures.
"""

from common import MESSAGE_EVENTS, ORDER, eq, ok, register, stage, test, on

# ------------------------------------------------------------------ helpers

A, B, C = "<a@example.org>", "<b@example.org>", "<c@example.org>"
BAD, GOOD = "<bad@example.net>", "<good@example.net>"
# Events of one session as a child logs them (abort/quit aside).
EVENTS = ORDER
# A full one-message session with the simulator's 4 default headers.
FULL = ["connect", "helo", "mail", "rcpt", "data", "header", "header", "header", "header",
        "eoh", "body", "eom"]
FULL_UNKNOWN = FULL[:2] + ["unknown"] + FULL[2:]
# Short timeouts for failure scenarios: whichever of them a stage uses, it is 1 s.
FAST_TIMEOUTS = {"connect": 1, "write": 1, "read": 1, "eom": 1}


def lua(value):
    """A Python value as Lua source."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join("%s = %s" % (k, lua(v)) for k, v in value.items()) + " }"
    s = str(value)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def spec_of(child):
    return child if isinstance(child, str) else child.spec


def start_hub(env, *chain, manager=None, listen=None):
    """Start milterhub with one `milter` block per element of `chain`, in
    order. An element is a TestMilter, a socket spec, or a pair
    (TestMilter|spec, {options}) with options such as fallback, timeouts,
    evaluate, enabled. `manager`: extra keys for the manager block.
    Children are named child1, child2, ... Returns the hub's Proc (.spec).

    The one place that knows how to start the hub: harness.Env.hub."""
    listen = listen or env.unix_spec()  # unique: a test may start two hubs
    text = "manager %s\n" % lua(dict({"listen": listen}, **(manager or {})))
    for i, item in enumerate(chain, 1):
        child, opts = item if isinstance(item, tuple) else (item, {})
        text += 'milter "child%d" %s\n' % (i, lua(dict({"socket": spec_of(child)}, **opts)))
    env.note("milterhub.lua:\n" + text)
    return env.hub(text, listen=listen)


def hub_mta(env, hub, *args, rc=0, timeout=60.0):
    """Run the simulator against the hub; the parsed report."""
    return env.mta(hub.spec, *args, rc=rc, timeout=timeout)


def events(tm, conn=None):
    """The session events a child logged (optneg, abort, quit, close aside)."""
    return [c for c in tm.cmds(conn) if c in EVENTS]


def events_and_aborts(tm):
    return [c for c in tm.cmds() if c in EVENTS + ["abort"]]


def message_slices(tm):
    """The child's log cut at each MAIL: a list (one per MAIL it got) of the
    message commands from that MAIL up to the next (abort included)."""
    out = []
    for c in tm.cmds():
        if c == "mail":
            out.append(["mail"])
        elif out and c in MESSAGE_EVENTS + ["abort"]:
            out[-1].append(c)
    return out


def three(env, middle_args=(), first_args=(), last_args=()):
    """Three children; the middle one gets `middle_args`."""
    return (env.testmilter(*first_args), env.testmilter(*middle_args),
            env.testmilter(*last_args))


def no_events_after(tm, event, allowed=()):
    """Assert the child got no session event after its first `event`."""
    cmds = events(tm)
    ok(event in cmds, "child never got %s: %r" % (event, cmds))
    rest = [c for c in cmds[cmds.index(event) + 1:] if c not in allowed]
    eq(rest, [], "events the child got after %s" % event)


# ------------------------------------------------------------------ 2.2 all continue

@test
def hub_all_continue_three_children_each_see_every_stage_and_mta_gets_accept(env):
    tms = three(env)
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub, "--unknown", "XFOO bar")
    eq(r["result"], "accept", "result")
    eq(r["error"], None, "error")
    eq([s["reply"] for s in r["stages"]], ["continue"] * len(r["stages"]), "stage replies")
    for i, tm in enumerate(tms, 1):
        eq(events(tm), FULL_UNKNOWN, "events child %d saw" % i)
        eq(tm.first("helo")["helo"], "mx.example.net", "helo child %d saw" % i)
        eq(tm.first("rcpt")["args"][0], "<rcpt@example.org>", "rcpt child %d saw" % i)
        eq(tm.first("unknown")["line"], "XFOO bar", "unknown line child %d saw" % i)
        eq(tm.first("eom")["headers"], 4, "header count at eom, child %d" % i)
        eq(len(tm.all("optneg")), 1, "negotiations of child %d" % i)


# ------------------------------------------------------------------ reject at each envelope stage

# stage -> (what the MTA reports: result, and which events nobody may get after it)
REJECT_STAGES = ["connect", "helo", "mail", "rcpt", "data", "unknown"]


def make_reject_at(stage_name, with_reply):
    action = "reply:550:5.7.1:no at %s" % stage_name if with_reply else "reject"
    text = "550 5.7.1 no at %s" % stage_name if with_reply else None

    def t(env):
        tms = three(env, middle_args=on(stage_name, action))
        hub = start_hub(env, *tms)
        r = hub_mta(env, hub, "--unknown", "XFOO bar")
        st = stage(r, stage_name)
        eq(st["reply"], "reject", "%s stage reply the MTA got" % stage_name)
        eq(st.get("text"), text, "%s stage reply text" % stage_name)
        first, middle, last = tms
        if stage_name in ("connect", "helo"):
            eq(r["result"], "not-sent", "result (connection refused)")
            for i, tm in enumerate(tms, 1):
                ok("mail" not in events(tm), "child %d got MAIL after a %s reject" % (i, stage_name))
        elif stage_name == "unknown":
            # 'r' to 'U' only chooses that command's error (milter-protocol.md §6.3).
            eq(r["result"], "accept", "result (an unknown-command reject ends nothing)")
            for i, tm in enumerate(tms, 1):
                eq(events(tm), FULL_UNKNOWN, "events child %d saw" % i)
        else:
            eq(r["result"], "reject", "result")
            if with_reply:
                eq(r["reply"], text, "reply the MTA got")
            # design §2.2: the others are aborted; nobody gets content.
            for i, tm in (1, first), (3, last):
                cmds = tm.cmds()
                ok(stage_name in cmds, "child %d never got %s: %r" % (i, stage_name, cmds))
                after = [c for c in cmds[cmds.index(stage_name) + 1:] if c in MESSAGE_EVENTS]
                eq(after, [], "message events child %d got after the %s reject" % (i, stage_name))
                if stage_name in ("mail", "data"):
                    ok("abort" in cmds[cmds.index(stage_name):],
                       "child %d got no ABORT after the merged %s reject: %r" % (i, stage_name, cmds))
            for i, tm in enumerate(tms, 1):
                ok("eom" not in tm.cmds(), "child %d got EOM of a rejected message" % i)
    register("hub_%s_at_%s_by_one_child_of_three_%s" % (
        "reply_550" if with_reply else "reject", stage_name,
        "reaches_the_mta_with_its_text" if with_reply else "rejects"), t)


for _s in REJECT_STAGES:
    make_reject_at(_s, False)
    make_reject_at(_s, True)


# ------------------------------------------------------------------ accept retires only that child

def make_accept_retires_at_connection_stage(stage_name):
    def t(env):
        tms = three(env, middle_args=on(stage_name, "accept"))
        hub = start_hub(env, *tms)
        r = hub_mta(env, hub, "--messages", "2")
        eq(r["result"], "accept", "result")
        eq(stage(r, stage_name)["reply"], "continue",
           "%s reply (one child's accept is not the MTA's accept)" % stage_name)
        eq([m["result"] for m in r["messages"]], ["accept", "accept"], "message results")
        first, middle, last = tms
        no_events_after(middle, stage_name)
        full2 = FULL[:2] + FULL[2:] + FULL[2:]
        eq(events(first), full2, "events child 1 saw")
        eq(events(last), full2, "events child 3 saw")
    register("hub_accept_at_%s_retires_only_that_child_for_the_connection" % stage_name, t)


for _s in ("connect", "helo"):
    make_accept_retires_at_connection_stage(_s)


@test
def hub_accept_at_mail_retires_that_child_for_the_transaction_and_it_gets_the_next_mail(env):
    tms = three(env, middle_args=on("mail:first@example.net", "accept"))
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub, "--messages", "2", "--from", "<first@example.net>",
                "--from", "<second@example.net>")
    eq([m["result"] for m in r["messages"]], ["accept", "accept"], "message results")
    eq(stage(r, "mail", 1)["reply"], "continue", "mail reply of message 1")
    first, middle, last = tms
    eq([e["args"][0] for e in middle.all("mail")], ["<first@example.net>", "<second@example.net>"],
       "MAILs the accepting child was offered")
    mids = [[c for c in m if c != "abort"] for m in message_slices(middle)]
    eq(mids[0], ["mail"], "message 1 events of the child that accepted at MAIL")
    eq(mids[1], FULL[2:], "message 2 events of that child")
    for i, tm in (1, first), (3, last):
        eq(events(tm), FULL + FULL[2:], "events child %d saw" % i)


@test
def hub_accept_at_rcpt_retires_that_child_for_the_transaction_only(env):
    tms = three(env, middle_args=on("rcpt", "accept"))
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub, "--rcpt", A, "--rcpt", C)
    eq(r["result"], "accept", "result")
    eq([x["reply"] for x in r["rcpts"]], ["continue", "continue"], "rcpt replies the MTA got")
    eq(r["recipients"], [A, C], "recipients")
    first, middle, last = tms
    eq([e["args"][0] for e in middle.all("rcpt")], [A], "RCPTs the accepting child got")
    no_events_after(middle, "rcpt")
    for i, tm in (1, first), (3, last):
        eq([e["args"][0] for e in tm.all("rcpt")], [A, C], "RCPTs child %d got" % i)
        eq(events(tm), FULL[:4] + ["rcpt"] + FULL[4:], "events child %d saw" % i)


@test
def hub_accept_at_data_retires_that_child_for_the_transaction_only(env):
    tms = three(env, middle_args=on("data", "accept"))
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result")
    eq(stage(r, "data")["reply"], "continue", "data reply the MTA got")
    first, middle, last = tms
    no_events_after(middle, "data")
    for i, tm in (1, first), (3, last):
        eq(events(tm), FULL, "events child %d saw" % i)


def make_all_accept(stage_name):
    def t(env):
        tms = [env.testmilter(*on(stage_name, "accept")) for _ in range(3)]
        hub = start_hub(env, *tms)
        r = hub_mta(env, hub)
        eq(stage(r, stage_name)["reply"], "accept", "%s reply when every child accepted" % stage_name)
        eq(r["result"], "accept", "result")
        for i, tm in enumerate(tms, 1):
            no_events_after(tm, stage_name)
    register("hub_all_children_accept_at_%s_mta_gets_accept" % stage_name, t)


for _s in ("connect", "helo", "mail", "rcpt", "data"):
    make_all_accept(_s)


@test
def hub_accept_by_every_child_at_different_stages_mta_gets_accept_at_the_last(env):
    # child 1 accepts at connect (connection), 2 at mail, 3 at rcpt: the MTA
    # sees continue until the last participating child accepted.
    tms = [env.testmilter(*on("connect", "accept")), env.testmilter(*on("mail", "accept")),
           env.testmilter(*on("rcpt", "accept"))]
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub)
    eq([(s["stage"], s["reply"]) for s in r["stages"]][:4],
       [("connect", "continue"), ("helo", "continue"), ("mail", "continue"), ("rcpt", "accept")],
       "stage replies")
    eq(r["result"], "accept", "result")


# ------------------------------------------------------------------ per-recipient merge

@test
def hub_rcpt_reject_by_one_child_refuses_only_that_recipient(env):
    tms = three(env, middle_args=on("rcpt:b@example.org", "reply:550:5.1.1:no such user"))
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub, "--rcpt", A, "--rcpt", B, "--rcpt", C)
    eq([(x["rcpt"], x["reply"], x["text"]) for x in r["rcpts"]],
       [(A, "continue", None), (B, "reject", "550 5.1.1 no such user"), (C, "continue", None)],
       "rcpts")
    eq(r["recipients"], [A, C], "accepted recipients")
    eq(r["result"], "accept", "result")
    for i, tm in enumerate(tms, 1):
        eq([e["args"][0] for e in tm.all("rcpt")], [A, B, C], "RCPTs child %d got" % i)
        eq(events(tm), FULL[:4] + ["rcpt", "rcpt"] + FULL[4:], "events child %d saw" % i)
        cmds = tm.cmds()
        ok("abort" not in cmds[:cmds.index("eom")], "child %d got ABORT before EOM: %r" % (i, cmds))


@test
def hub_rcpt_tempfail_by_one_child_refuses_only_that_recipient(env):
    tms = three(env, last_args=on("rcpt:a@example.org", "tempfail"))
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub, "--rcpt", A, "--rcpt", C)
    eq([(x["rcpt"], x["reply"]) for x in r["rcpts"]], [(A, "tempfail"), (C, "continue")], "rcpts")
    eq((r["result"], r["recipients"]), ("accept", [C]), "(result, recipients)")


@test
def hub_rcpt_refused_by_different_children_leaves_only_the_rest(env):
    tms = three(env, first_args=on("rcpt:a@example.org", "reject"),
                last_args=on("rcpt:b@example.org", "tempfail"))
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub, "--rcpt", A, "--rcpt", B, "--rcpt", C)
    eq([x["reply"] for x in r["rcpts"]], ["reject", "tempfail", "continue"], "rcpt replies")
    eq((r["result"], r["recipients"]), ("accept", [C]), "(result, recipients)")
    for i, tm in enumerate(tms, 1):
        ok("eom" in tm.cmds(), "child %d got no EOM" % i)


@test
def hub_child_that_refused_every_recipient_it_saw_is_dropped_at_data_with_abort(env):
    # The refusals of an evaluation-mode child do not reach the MTA (design
    # §2.6), so the message goes on; that child refused every recipient it
    # saw and must be dropped from the message at DATA with ABORT (§2.2).
    refuser = env.testmilter(*on("rcpt", "reject"))
    others = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, others[0], (refuser, {"evaluate": True}), others[1])
    r = hub_mta(env, hub, "--rcpt", A, "--rcpt", C)
    eq(r["result"], "accept", "result")
    eq(r["recipients"], [A, C], "recipients")
    eq([e["args"][0] for e in refuser.all("rcpt")], [A, C], "RCPTs the refusing child saw")
    cmds = refuser.cmds()
    for cmd in ("data", "header", "eoh", "body", "eom"):
        ok(cmd not in cmds, "the child that refused every recipient got %s: %r" % (cmd, cmds))
    last_rcpt = len(cmds) - 1 - cmds[::-1].index("rcpt")
    ok("abort" in cmds[last_rcpt:], "the child that refused every recipient got no ABORT: %r" % cmds)
    for i, tm in enumerate(others, 1):
        eq(events(tm), FULL[:4] + ["rcpt"] + FULL[4:], "events of another child (%d)" % i)


@test
def hub_rcpt_discard_by_one_child_discards_the_message(env):
    tms = three(env, middle_args=on("rcpt:b@example.org", "discard"))
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub, "--rcpt", A, "--rcpt", B, "--rcpt", C)
    eq(r["result"], "discard", "result")
    for i, tm in enumerate(tms, 1):
        ok("eom" not in tm.cmds(), "child %d got EOM of a discarded message" % i)


# ------------------------------------------------------------------ status order

# (test name, stage, answer of child 1, answer of child 2, what the MTA must get)
ORDER_CASES = [
    ("hub_discard_wins_over_reject_at_mail_reject_first", "mail", "reject", "discard", "discard"),
    ("hub_discard_wins_over_reject_at_mail_discard_first", "mail", "discard", "reject", "discard"),
    ("hub_discard_wins_over_reject_at_rcpt_reject_first", "rcpt", "reject", "discard", "discard"),
    ("hub_discard_wins_over_reject_at_rcpt_discard_first", "rcpt", "discard", "reject", "discard"),
    ("hub_discard_wins_over_reject_at_data", "data", "reject", "discard", "discard"),
    ("hub_reject_wins_over_tempfail_at_mail_tempfail_first", "mail", "tempfail", "reject", "reject"),
    ("hub_reject_wins_over_tempfail_at_mail_reject_first", "mail", "reject", "tempfail", "reject"),
    ("hub_reject_wins_over_tempfail_at_rcpt", "rcpt", "tempfail", "reject", "reject"),
    ("hub_reject_wins_over_tempfail_at_data", "data", "tempfail", "reject", "reject"),
    ("hub_tempfail_wins_over_continue_at_mail", "mail", "continue", "tempfail", "tempfail"),
    ("hub_continue_wins_over_accept_at_mail", "mail", "accept", "continue", "continue"),
]


def make_order(name, stage_name, a1, a2, want):
    def t(env):
        t1, t2 = env.testmilter(*on(stage_name, a1)), env.testmilter(*on(stage_name, a2))
        hub = start_hub(env, t1, t2)
        r = hub_mta(env, hub)
        eq(stage(r, stage_name)["reply"], want, "%s reply for (%s, %s)" % (stage_name, a1, a2))
        # A refused only recipient ends the message with that refusal.
        eq(r["result"], "accept" if want == "continue" else want, "result")
        if want == "discard":
            for i, tm in (1, t1), (2, t2):
                ok("eom" not in tm.cmds(), "child %d got EOM of a discarded message" % i)
    register(name, t)


for _c in ORDER_CASES:
    make_order(*_c)


# ------------------------------------------------------------------ reply codes (design §2.1)

@test
def hub_reply_code_5xx_passed_when_the_merged_status_is_reject(env):
    # child 1 plain reject, child 2 a 5xx text: the class matches, the text wins.
    t1 = env.testmilter(*on("mail", "reject"))
    t2 = env.testmilter(*on("mail", "reply:550:5.7.1:go away"))
    hub = start_hub(env, t1, t2)
    r = hub_mta(env, hub)
    eq((stage(r, "mail")["reply"], stage(r, "mail").get("text")), ("reject", "550 5.7.1 go away"),
       "mail (reply, text)")
    eq((r["result"], r["reply"]), ("reject", "550 5.7.1 go away"), "(result, reply)")


@test
def hub_reply_code_4xx_passed_when_the_merged_status_is_tempfail(env):
    t1 = env.testmilter(*on("rcpt", "tempfail"))
    t2 = env.testmilter(*on("rcpt", "reply:451:4.7.1:try later"))
    hub = start_hub(env, t1, t2)
    r = hub_mta(env, hub)
    eq([(x["reply"], x["text"]) for x in r["rcpts"]], [("tempfail", "451 4.7.1 try later")], "rcpts")


@test
def hub_reply_code_4xx_not_passed_when_another_child_rejects(env):
    # child A's 4xx has class tempfail, the merged status is reject: plain reject.
    t1 = env.testmilter(*on("mail", "reply:451:4.7.1:try later"))
    t2 = env.testmilter(*on("mail", "reject"))
    hub = start_hub(env, t1, t2)
    r = hub_mta(env, hub)
    eq((stage(r, "mail")["reply"], stage(r, "mail").get("text")), ("reject", None),
       "mail (reply, text)")
    eq((r["result"], r["reply"]), ("reject", None), "(result, reply)")


@test
def hub_reply_code_5xx_not_passed_when_another_child_discards(env):
    t1 = env.testmilter(*on("rcpt", "reply:550:5.7.1:no"))
    t2 = env.testmilter(*on("rcpt", "discard"))
    hub = start_hub(env, t1, t2)
    r = hub_mta(env, hub)
    eq((r["result"], r["reply"]), ("discard", None), "(result, reply)")


def make_first_text_wins(slow_first):
    def t(env):
        # The slower child answers last; chain order, not arrival, decides.
        d1 = ("delay:300",) if slow_first else ()
        d2 = () if slow_first else ("delay:300",)
        t1 = env.testmilter(*on("mail", *d1, "reply:550:5.7.1:first in chain"))
        t2 = env.testmilter(*on("mail", *d2, "reply:554:5.7.1:second in chain"))
        t3 = env.testmilter()
        hub = start_hub(env, t3, t1, t2)
        r = hub_mta(env, hub)
        eq(stage(r, "mail").get("text"), "550 5.7.1 first in chain", "mail reply text")
        eq(r["reply"], "550 5.7.1 first in chain", "reply")
    register("hub_two_5xx_texts_first_in_chain_order_wins_%s" % (
        "when_it_answers_last" if slow_first else "when_it_answers_first"), t)


make_first_text_wins(True)
make_first_text_wins(False)


@test
def hub_reply_code_at_connect_reaches_the_mta(env):
    tms = three(env, last_args=on("connect", "reply:554:5.7.1:go away"))
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub)
    eq((stage(r, "connect")["reply"], stage(r, "connect").get("text")),
       ("reject", "554 5.7.1 go away"), "connect (reply, text)")
    eq(r["result"], "not-sent", "result")


# ------------------------------------------------------------------ several messages

@test
def hub_second_message_accepted_after_the_first_rejected_by_sender(env):
    bad_child = env.testmilter(*on("mail:bad@example.net", "reject"))
    others = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, others[0], bad_child, others[1])
    r = hub_mta(env, hub, "--messages", "2", "--from", BAD, "--from", GOOD)
    eq([(m["result"], m["sender"]) for m in r["messages"]], [("reject", BAD), ("accept", GOOD)],
       "message (result, sender)")
    eq(r["result"], "accept", "result (the last message)")
    # design §2.2: a non-continue at MAIL excludes that child from this transaction only.
    eq([e["args"][0] for e in bad_child.all("mail")], [BAD, GOOD], "MAILs the rejecting child got")
    eq([c for c in message_slices(bad_child)[1] if c != "abort"], FULL[2:],
       "message 2 events of the child that rejected message 1")
    for i, tm in enumerate(others, 1):
        sl = message_slices(tm)
        eq(len(sl), 2, "MAILs another child (%d) got" % i)
        eq(sl[0][:1], ["mail"], "message 1 of another child")
        ok("abort" in sl[0] and "rcpt" not in sl[0],
           "message 1 of another child (%d) is not MAIL then ABORT: %r" % (i, sl[0]))
        eq([c for c in sl[1] if c != "abort"], FULL[2:], "message 2 events of another child (%d)" % i)


@test
def hub_reject_at_eom_in_message_1_does_not_leak_into_message_2(env):
    # design §2.5: merged statuses must not leak from one message into the next.
    # The rejecting child accepts message 2 at MAIL, the others continue.
    rejecter = env.testmilter(*on("mail:good@example.net", "accept"),
                              *on("eom", "reply:550:5.7.1:bad content"))
    others = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, rejecter, *others)
    r = hub_mta(env, hub, "--messages", "2", "--from", BAD, "--from", GOOD)
    eq([(m["result"], m["reply"]) for m in r["messages"]],
       [("reject", "550 5.7.1 bad content"), ("accept", None)], "message (result, reply)")
    for i, tm in enumerate(others, 1):
        sl = message_slices(tm)
        eq(len(sl), 2, "MAILs child %d got" % (i + 1))
        ok("eom" not in sl[0], "child %d was replayed message 1 after child 1 rejected it: %r"
           % (i + 1, sl[0]))
        eq([c for c in sl[1] if c != "abort"], FULL[2:], "message 2 events of child %d" % (i + 1))


@test
def hub_tempfail_in_message_1_does_not_leak_into_message_2(env):
    rejecter = env.testmilter(*on("mail:good@example.net", "continue"), *on("mail", "tempfail"))
    hub = start_hub(env, env.testmilter(), rejecter)
    r = hub_mta(env, hub, "--messages", "3", "--from", BAD, "--from", GOOD, "--from", GOOD)
    eq([m["result"] for m in r["messages"]], ["tempfail", "accept", "accept"], "message results")
    eq([m["reply"] for m in r["messages"]], [None, None, None], "message replies")


@test
def hub_reject_at_data_aborts_the_other_children_and_the_next_message_runs(env):
    # The MTA ends message 1 at DATA: the other children of the transaction
    # get ABORT and no content; message 2 runs through all of them.
    rejecter = env.testmilter(*on("mail:good@example.net", "accept"), *on("data", "reject"))
    others = [env.testmilter(), env.testmilter()]
    hub = start_hub(env, others[0], rejecter, others[1])
    r = hub_mta(env, hub, "--messages", "2", "--from", BAD, "--from", GOOD)
    eq([m["result"] for m in r["messages"]], ["reject", "accept"], "message results")
    for i, tm in enumerate(others, 1):
        sl = message_slices(tm)
        eq(len(sl), 2, "MAILs another child (%d) got" % i)
        eq([c for c in sl[0] if c != "abort"], ["mail", "rcpt", "data"],
           "message 1 of another child (%d)" % i)
        ok("abort" in sl[0], "another child (%d) got no ABORT in message 1: %r" % (i, sl[0]))
        eq([c for c in sl[1] if c != "abort"], FULL[2:], "message 2 events of another child (%d)" % i)
        eq(tm.all("eom")[0]["headers"], 4, "headers at EOM of message 2, child %d" % i)


@test
def hub_reject_during_content_aborts_the_later_children_and_the_next_message_runs(env):
    # child 1 (streamed live) rejects at a header of message 1; child 2 would
    # be replayed at EOM: it must get ABORT and none of message 1's content.
    first = env.testmilter(*on("mail:good@example.net", "accept"), *on("header:Subject", "reject"))
    second = env.testmilter()
    hub = start_hub(env, first, second)
    r = hub_mta(env, hub, "--messages", "2", "--from", BAD, "--from", GOOD)
    eq([m["result"] for m in r["messages"]], ["reject", "accept"], "message results")
    sl = message_slices(second)
    eq(len(sl), 2, "MAILs child 2 got")
    eq([c for c in sl[0] if c != "abort"], ["mail", "rcpt", "data"], "message 1 of child 2")
    ok("abort" in sl[0], "child 2 got no ABORT in message 1: %r" % sl[0])
    eq([c for c in sl[1] if c != "abort"], FULL[2:], "message 2 of child 2")


@test
def hub_unknown_command_reaches_every_child_and_a_tempfail_text_is_passed(env):
    tms = three(env, first_args=on("unknown", "reply:451:4.5.1:not now"))
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub, "--unknown", "XFOO bar")
    eq((stage(r, "unknown")["reply"], stage(r, "unknown").get("text")),
       ("tempfail", "451 4.5.1 not now"), "unknown (reply, text)")
    for i, tm in enumerate(tms, 1):
        eq(tm.first("unknown")["line"], "XFOO bar", "unknown line child %d got" % i)
    eq(r["result"], "accept", "result")


@test
def hub_rcpt_4xx_text_of_one_child_and_5xx_of_another_for_the_same_recipient_gives_the_5xx(env):
    t1 = env.testmilter(*on("rcpt:b@example.org", "reply:451:4.7.1:later"))
    t2 = env.testmilter(*on("rcpt:b@example.org", "reply:550:5.1.1:unknown user"))
    hub = start_hub(env, t1, t2)
    r = hub_mta(env, hub, "--rcpt", A, "--rcpt", B, "--rcpt", C)
    eq([(x["reply"], x["text"]) for x in r["rcpts"]],
       [("continue", None), ("reject", "550 5.1.1 unknown user"), ("continue", None)], "rcpts")
    eq((r["result"], r["recipients"]), ("accept", [A, C]), "(result, recipients)")


@test
def hub_sendmail_flavour_reject_at_eom_in_message_1_does_not_leak_into_message_2(env):
    # Sendmail sends no ABORT after a finished message: the hub must reset the
    # transaction at the end of message 1 by itself (design §2.5).
    rejecter = env.testmilter(*on("mail:good@example.net", "accept"),
                              *on("eom", "reply:550:5.7.1:bad content"))
    other = env.testmilter(*on("eom", "add-header:X-Other:1"))
    hub = start_hub(env, rejecter, other)
    r = hub_mta(env, hub, "--sendmail", "--messages", "3", "--from", BAD, "--from", GOOD)
    eq([(m["result"], m["reply"]) for m in r["messages"]],
       [("reject", "550 5.7.1 bad content"), ("accept", None), ("accept", None)],
       "message (result, reply)")
    eq([[h for h in m["headers"] if h[0] == "X-Other"] for m in r["messages"]][1:],
       [[["X-Other", "1"]], [["X-Other", "1"]]], "X-Other headers of messages 2 and 3")
    eq([e["headers"] for e in other.all("eom")], [4, 4], "header counts at the other child's EOMs")


@test
def hub_message_with_every_recipient_refused_leaves_no_state_for_message_2(env):
    refuser = env.testmilter(*on("mail:good@example.net", "accept"), *on("rcpt", "reject"))
    other = env.testmilter()
    hub = start_hub(env, refuser, other)
    r = hub_mta(env, hub, "--messages", "2", "--from", BAD, "--from", GOOD)
    eq([m["result"] for m in r["messages"]], ["reject", "accept"], "message results")
    sl = message_slices(other)
    eq([c for c in sl[0] if c != "abort"], ["mail", "rcpt"], "message 1 of the other child")
    eq([c for c in sl[1] if c != "abort"], FULL[2:], "message 2 of the other child")


@test
def hub_progress_at_an_envelope_stage_is_harmless(env):
    tms = [env.testmilter(*on("mail", "progress", "continue")), env.testmilter()]
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    for i, tm in enumerate(tms, 1):
        eq(events(tm), FULL, "events child %d saw" % i)


@test
def hub_quarantine_at_rcpt_holds_the_message(env):
    # Postfix takes 'q' at any stage (milter-protocol.md §7.2).
    tms = [env.testmilter(*on("rcpt", "quarantine:held at rcpt")), env.testmilter()]
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub)
    eq((r["result"], r["quarantine"]), ("accept", "held at rcpt"), "(result, quarantine)")
