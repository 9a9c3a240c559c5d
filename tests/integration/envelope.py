"""
envelope - what the milter receives for the envelope (connect, helo, mail,
rcpt, unknown) and the Postfix default macros, per-recipient decisions and
several messages per connection (docs/tools.md "On the wire").
"""

from common import (CLIENT_ADDR, CLIENT_NAME, CLIENT_PORT, CONNECT_MACROS, MESSAGE_EVENTS, RCPT,
                    SENDER, eq, ok, stage, stages, stage_names, test, on)

A, B, C = "<a@example.org>", "<reject@example.org>", "<c@example.org>"


@test
def connect_carries_client_name_family_port_and_address(env):
    tm = env.testmilter()
    r = env.mta(tm)
    c = tm.first("connect")
    eq((c["hostname"], c["family"], c["port"], c["address"]),
       (CLIENT_NAME, "4", CLIENT_PORT, CLIENT_ADDR), "connect (hostname, family, port, address)")
    eq(r["result"], "accept", "result")


@test
def connect_from_an_ipv6_client_has_family_6(env):
    tm = env.testmilter()
    env.mta(tm, "--client-addr", "2001:db8::25", "--client-name", "v6.example.net",
            "--client-port", "2525")
    c = tm.first("connect")
    eq((c["hostname"], c["family"], c["port"], c["address"]),
       ("v6.example.net", "6", 2525, "2001:db8::25"), "connect (hostname, family, port, address)")


@test
def helo_defaults_to_the_client_name_and_follows_helo(env):
    tm = env.testmilter()
    env.mta(tm)
    eq(tm.first("helo")["helo"], CLIENT_NAME, "default helo")
    tm2 = env.testmilter()
    env.mta(tm2, "--helo", "greeting.example.com")
    eq(tm2.first("helo")["helo"], "greeting.example.com", "helo")


@test
def mail_and_rcpt_args_start_with_the_address(env):
    tm = env.testmilter()
    env.mta(tm, "--from", "<s@example.com>", "--rcpt", A, "--rcpt", C)
    eq(tm.first("mail")["args"][0], "<s@example.com>", "mail args[0]")
    eq([e["args"][0] for e in tm.all("rcpt")], [A, C], "rcpt args[0]")


@test
def default_session_sends_every_event_in_order_then_abort_and_quit(env):
    tm = env.testmilter()
    r = env.mta(tm)
    cmds = tm.cmds()
    eq(cmds, ["optneg", "connect", "helo", "mail", "rcpt", "data", "header", "header", "header",
              "header", "eoh", "body", "eom", "abort", "quit", "close"], "milter log")
    eq(tm.first("close").get("reason"), "quit", "close reason")
    eq(stage_names(r), ["connect", "helo", "mail", "rcpt", "data", "header", "header", "header",
                        "header", "eoh", "body", "eom"], "report stages")
    eq([s.get("arg") for s in stages(r, "header")], ["From", "To", "Subject", "Message-ID"],
       "header stage args")
    eq(stage(r, "rcpt").get("arg"), RCPT, "rcpt stage arg")


@test
def unknown_command_reaches_the_milter_whole(env):
    tm = env.testmilter()
    r = env.mta(tm, "--unknown", "XFOO bar baz")
    eq(tm.first("unknown")["line"], "XFOO bar baz", "unknown line")
    cmds = tm.cmds()
    ok(cmds.index("helo") < cmds.index("unknown") < cmds.index("mail"),
       "unknown not between helo and mail: %r" % cmds)
    eq(stage(r, "unknown")["reply"], "continue", "unknown reply")


@test
def rcpt_reject_refuses_only_that_recipient(env):
    tm = env.testmilter(*on("rcpt:reject@example.org", "reply:550:5.1.1:no such user"))
    r = env.mta(tm, "--rcpt", A, "--rcpt", B, "--rcpt", C)
    eq([(x["rcpt"], x["reply"], x["text"]) for x in r["rcpts"]],
       [(A, "continue", None), (B, "reject", "550 5.1.1 no such user"), (C, "continue", None)],
       "rcpts")
    eq(r["recipients"], [A, C], "accepted recipients")
    eq(r["result"], "accept", "result")
    cmds = tm.cmds()
    eq(cmds.count("rcpt"), 3, "rcpts the milter got")
    ok("data" in cmds and "eom" in cmds, "message did not go on after the refused rcpt: %r" % cmds)
    ok("abort" not in cmds[:cmds.index("eom")], "abort sent after a recipient reject: %r" % cmds)


@test
def rcpt_qualifier_matches_without_brackets_and_case(env):
    tm = env.testmilter(*on("rcpt:REJECT@Example.ORG", "tempfail"))
    r = env.mta(tm, "--rcpt", A, "--rcpt", B)
    eq([x["reply"] for x in r["rcpts"]], ["continue", "tempfail"], "rcpt replies")
    eq(r["recipients"], [A], "accepted recipients")


@test
def qualified_rule_wins_over_the_plain_rule(env):
    tm = env.testmilter(*on("rcpt", "reject"), *on("rcpt:a@example.org", "continue"))
    r = env.mta(tm, "--rcpt", B, "--rcpt", A, "--rcpt", C)
    eq([x["reply"] for x in r["rcpts"]], ["reject", "continue", "reject"], "rcpt replies")
    eq(r["recipients"], [A], "accepted recipients")
    eq(r["result"], "accept", "result")


@test
def all_recipients_refused_sends_no_data_and_takes_the_last_refusal(env):
    tm = env.testmilter(*on("rcpt:a@example.org", "reject"), *on("rcpt:c@example.org", "tempfail"))
    r = env.mta(tm, "--rcpt", A, "--rcpt", C)
    eq(r["result"], "tempfail", "result (last recipient's refusal)")
    eq(r["recipients"], [], "recipients")
    ok("data" not in tm.cmds(), "data sent with every recipient refused")
    tm2 = env.testmilter(*on("rcpt:a@example.org", "tempfail"), *on("rcpt:c@example.org", "reject"))
    r2 = env.mta(tm2, "--rcpt", A, "--rcpt", C)
    eq(r2["result"], "reject", "result (last recipient's refusal)")


@test
def next_message_is_sent_after_a_mail_reject(env):
    tm = env.testmilter(*on("mail", "reject"))
    r = env.mta(tm, "--messages", "2")
    eq([m["result"] for m in r["messages"]], ["reject", "reject"], "message results")
    eq(len(tm.all("mail")), 2, "MAILs the milter got")
    eq(len(tm.all("abort")), 2, "aborts after the two rejected messages")
    ok("rcpt" not in tm.cmds(), "rcpt sent after MAIL reject")
    eq(r["result"], "reject", "result")


@test
def second_message_accepted_after_the_first_rejected_at_mail(env):
    bad, good = "<bad@example.net>", "<good@example.net>"
    tm = env.testmilter(*on("mail:bad@example.net", "reject"))
    r = env.mta(tm, "--messages", "2", "--from", bad, "--from", good)
    eq([(m["result"], m["sender"]) for m in r["messages"]],
       [("reject", bad), ("accept", good)], "message (result, sender)")
    eq(r["result"], "accept", "result (the last message)")
    eq([e["args"][0] for e in tm.all("mail")], [bad, good], "MAILs the milter got")
    cmds = [c for c in tm.cmds() if c in MESSAGE_EVENTS + ["abort"]]
    second = cmds.index("mail", 1)
    eq(cmds[:second], ["mail", "abort"], "first message: MAIL, then ABORT")
    eq([c for c in cmds[second:] if c in ("mail", "rcpt", "data", "eom")],
       ["mail", "rcpt", "data", "eom"], "second message: MAIL RCPT DATA EOM")
    eq([s.get("message") for s in stages(r, "rcpt") + stages(r, "data") + stages(r, "eom")],
       [2, 2, 2], "message numbers of the rcpt, data and eom stages")


@test
def each_message_has_its_own_sender_and_the_last_from_repeats(env):
    tm = env.testmilter()
    r = env.mta(tm, "--messages", "3", "--from", "<one@example.net>", "--from", "<two@example.net>")
    want = ["<one@example.net>", "<two@example.net>", "<two@example.net>"]
    eq([m["sender"] for m in r["messages"]], want, "messages[k].sender")
    eq(r["sender"], want[-1], "top-level sender (the last message)")
    eq([e["args"][0] for e in tm.all("mail")], want, "MAIL args[0]")
    eq([e["macros"].get("{mail_addr}") for e in tm.all("mail")],
       [a.strip("<>") for a in want], "{mail_addr} at each MAIL")
    eq([[h[1] for h in m["headers"] if h[0] == "From"] for m in r["messages"]],
       [[a.strip("<>")] for a in want], "default From: of each message")
    eq([s.get("arg") for s in stages(r, "mail")], want, "mail stage args")


@test
def messages_2_runs_two_transactions_on_one_connection(env):
    tm = env.testmilter()
    r = env.mta(tm, "--messages", "2")
    eq(len(r["messages"]), 2, "messages in the report")
    eq([m["result"] for m in r["messages"]], ["accept", "accept"], "message results")
    log = tm.log()
    eq({e["conn"] for e in log}, {1}, "connections")
    cmds = [e["cmd"] for e in log]
    eq(cmds.count("connect"), 1, "connects")
    eq(cmds.count("optneg"), 1, "negotiations")
    eq(cmds.count("mail"), 2, "mails")
    eq(cmds.count("eom"), 2, "eoms")
    # Postfix flavour: 'A' after every message.
    eq([c for c in cmds if c in ("eom", "abort")], ["eom", "abort", "eom", "abort"], "eom/abort order")
    eq([s.get("message") for s in stages(r, "mail")], [1, 2], "message numbers of the mail stages")
    for i, m in enumerate(r["messages"], 1):
        ok(all(s.get("stage") not in ("connect", "helo") for s in m["stages"]),
           "message %d holds session stages" % i)
        eq([s["stage"] for s in m["stages"]][0], "mail", "first stage of message %d" % i)
    ids = [h[1] for m in r["messages"] for h in m["headers"] if h[0] == "Message-ID"]
    eq(len(set(ids)), 2, "distinct Message-IDs %r" % ids)


@test
def connect_reject_sends_none_of_the_messages(env):
    tm = env.testmilter(*on("connect", "reject"))
    r = env.mta(tm, "--messages", "2")
    eq(r["result"], "not-sent", "result")
    eq([m["result"] for m in r["messages"]], ["not-sent", "not-sent"], "message results")
    ok("mail" not in tm.cmds(), "mail sent after connect reject")


@test
def default_macros_are_postfix_defaults_with_values(env):
    tm = env.testmilter()
    env.mta(tm)
    eq(tm.first("connect")["macros"], CONNECT_MACROS, "connect macros")
    eq(tm.first("helo").get("macros", {}), {}, "helo macros (no TLS: none has a value)")
    mail = tm.first("mail")["macros"]
    eq(sorted(mail), ["{mail_addr}"], "mail macro names (no i before DATA, no auth)")
    ok("sender@example.net" in mail["{mail_addr}"], "{mail_addr} = %r" % mail["{mail_addr}"])
    rcpt = tm.first("rcpt")["macros"]
    eq(sorted(rcpt), ["{rcpt_addr}"], "rcpt macro names")
    ok("rcpt@example.org" in rcpt["{rcpt_addr}"], "{rcpt_addr} = %r" % rcpt["{rcpt_addr}"])
    qid = tm.first("data")["macros"].get("i")
    ok(qid, "no queue id i at DATA")
    eq(tm.first("data")["macros"], {"i": qid}, "data macros")
    for h in tm.all("header"):
        eq(h["macros"], {"i": qid}, "macros of the 'L' (EOH list) before header %s" % h["name"])
    eq(tm.first("eoh")["macros"], {"i": qid}, "eoh macros")
    eq(tm.first("body")["macros"], {"i": qid}, "macros of the 'B' (EOM list) before body")
    eq(tm.first("eom")["macros"], {"i": qid}, "eom macros")


@test
def auth_sets_auth_type_and_authen_at_mail(env):
    tm = env.testmilter()
    env.mta(tm, "--auth", "alice")
    m = tm.first("mail")["macros"]
    eq((m.get("{auth_type}"), m.get("{auth_authen}")), ("PLAIN", "alice"), "auth macros")


@test
def macro_option_adds_and_overrides_values(env):
    tm = env.testmilter()
    env.mta(tm, "--macro", "connect:j=other.example.org", "--macro", "mail:{mail_host}=relay.example",
            "--macro", "eom:i=QID42")
    eq(tm.first("connect")["macros"].get("j"), "other.example.org", "overridden j")
    eq(tm.first("mail")["macros"].get("{mail_host}"), "relay.example", "added {mail_host}")
    eq(tm.first("eom")["macros"].get("i"), "QID42", "overridden i at eom")


@test
def connect_macros_follow_the_client_options(env):
    tm = env.testmilter("--negotiate",
                        "macros=connect:{client_addr} {client_port} {client_name} {client_ptr} _")
    env.mta(tm, "--client-name", "host.example.com", "--client-addr", "198.51.100.7",
            "--client-port", "4000")
    m = tm.first("connect")["macros"]
    eq((m.get("{client_addr}"), m.get("{client_port}"), m.get("{client_name}"), m.get("_")),
       ("198.51.100.7", "4000", "host.example.com", "host.example.com [198.51.100.7]"),
       "client macros")
    ok(m.get("{client_ptr}"), "no {client_ptr}")


@test
def top_level_message_fields_repeat_the_last_message(env):
    tm = env.testmilter(*on("rcpt:b@example.org", "reject"))
    r = env.mta(tm, "--messages", "2", "--rcpt", A, "--rcpt", "<b@example.org>")
    last = r["messages"][-1]
    for key in ("result", "reply", "rcpts", "modifications", "sender", "recipients", "headers",
                "body", "quarantine"):
        eq(r[key], last[key], "top-level %s vs messages[-1]" % key)
    session_stages = [s for s in r["stages"] if s["stage"] in ("connect", "helo", "unknown")]
    ok(all("message" not in s for s in session_stages), "session stages carry a message number")
    msg_stages = [s for s in r["stages"] if s["stage"] not in ("connect", "helo", "unknown")]
    ok(all(s.get("message") in (1, 2) for s in msg_stages), "message stages without a number")
    strip = lambda ss: [(x["stage"], x.get("arg"), x["reply"]) for x in ss]  # noqa: E731
    eq(strip(last["stages"]), strip([s for s in msg_stages if s["message"] == 2]),
       "messages[1].stages vs the top-level stages of message 2")


@test
def queue_id_is_the_same_within_a_message_and_new_for_the_next(env):
    tm = env.testmilter()
    env.mta(tm, "--messages", "2")
    ids = [(e["cmd"], e["macros"].get("i")) for e in tm.log()
           if e["cmd"] in ("data", "eoh", "eom") and "macros" in e]
    first, second = ids[:3], ids[3:]
    eq(len({i for _, i in first}), 1, "queue ids within message 1: %r" % first)
    eq(len({i for _, i in second}), 1, "queue ids within message 2: %r" % second)
    ok(first[0][1] != second[0][1], "same queue id for both messages: %r" % ids)


@test
def ipv6_client_addr_macro_has_the_ipv6_prefix(env):
    # Postfix: {client_addr} of an IPv6 client is "IPv6:..." (milter-protocol.md §5.2).
    tm = env.testmilter("--negotiate", "macros=connect:{client_addr}")
    env.mta(tm, "--client-addr", "2001:db8::25")
    eq(tm.first("connect")["macros"], {"{client_addr}": "IPv6:2001:db8::25"}, "connect macros")
    eq(tm.first("connect")["address"], "2001:db8::25", "connect address (no prefix)")


@test
def default_to_header_is_the_first_recipient_without_brackets(env):
    tm = env.testmilter()
    r = env.mta(tm, "--rcpt", "<first@example.org>", "--rcpt", "<second@example.org>")
    eq([h["value"] for h in tm.all("header") if h["name"] == "To"], ["first@example.org"],
       "To header the milter got")
    eq([h[1] for h in r["headers"] if h[0] == "To"], ["first@example.org"], "To in the report")
