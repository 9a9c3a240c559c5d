"""
modifications - every modification at eom and the message as Postfix would
hold it afterwards (milter-protocol.md §3.2-3.3; docs/tools.md: the hidden
Received: header at the top counts for insert indexes; edits via mh_message).
"""

from common import RCPT, SENDER, BODY, eq, ok, header_list, test, on

ONE_HEADERS = ["--header", "X-Dup: one", "--header", "Subject: s", "--header", "X-Dup: two"]


def names(report):
    return [h[0] for h in header_list(report)]


def edited(env, *eom_actions, args=(), negotiate=()):
    tm_args = []
    for n in negotiate:
        tm_args += ["--negotiate", n]
    tm = env.testmilter(*on("eom", *(eom_actions or ("continue",))), *tm_args)
    r = env.mta(tm, *args)
    eq(r["error"], None, "error")
    eq(r["result"], "accept", "result")
    return r, tm


@test
def unmodified_message_holds_hidden_received_then_default_headers(env):
    r, _ = edited(env)
    eq(names(r), ["Received", "From", "To", "Subject", "Message-ID"], "header names")
    eq(header_list(r)[1:4], [("From", "sender@example.net"), ("To", "rcpt@example.org"),
                             ("Subject", "milterhub test")], "headers")
    ok(header_list(r)[4][1].endswith(".milterhub-mta@example.net>"), "Message-ID %r" % (header_list(r)[4],))
    eq(r["modifications"], [], "modifications")
    eq(r["body"], BODY, "body")
    eq(r["sender"], SENDER, "sender")
    eq(r["recipients"], [RCPT], "recipients")
    eq(r["quarantine"], None, "quarantine")


@test
def add_header_at_eom_appends_after_the_last_header(env):
    r, _ = edited(env, "add-header:X-A:1")
    eq(r["modifications"], [{"op": "add-header", "name": "X-A", "value": "1"}], "modifications")
    eq(names(r), ["Received", "From", "To", "Subject", "Message-ID", "X-A"], "header names")
    eq(header_list(r)[-1], ("X-A", "1"), "added header")


@test
def add_headers_keep_request_order(env):
    r, _ = edited(env, "add-header:X-A:1", "add-header:X-B:2", "add-header:X-A:3")
    eq(header_list(r)[-3:], [("X-A", "1"), ("X-B", "2"), ("X-A", "3")], "added headers")


@test
def ins_header_index_0_goes_above_the_hidden_received(env):
    r, _ = edited(env, "ins-header:0:X-Top:v")
    eq(r["modifications"], [{"op": "ins-header", "index": 0, "name": "X-Top", "value": "v"}],
       "modifications")
    eq(names(r), ["X-Top", "Received", "From", "To", "Subject", "Message-ID"], "header names")
    eq(header_list(r)[0], ("X-Top", "v"), "inserted header")


@test
def ins_header_index_1_goes_right_below_the_hidden_received(env):
    r, _ = edited(env, "ins-header:1:X-One:v")
    eq(names(r), ["Received", "X-One", "From", "To", "Subject", "Message-ID"], "header names")


@test
def ins_header_index_n_goes_after_the_nth_header_counting_received(env):
    r, _ = edited(env, "ins-header:3:X-Three:v")
    eq(names(r), ["Received", "From", "To", "X-Three", "Subject", "Message-ID"], "header names")


@test
def ins_header_index_beyond_the_end_appends(env):
    r, _ = edited(env, "ins-header:99:X-End:v")
    eq(names(r), ["Received", "From", "To", "Subject", "Message-ID", "X-End"], "header names")


@test
def chg_header_changes_the_value_of_subject(env):
    r, _ = edited(env, "chg-header:Subject:1:changed subject")
    eq(r["modifications"], [{"op": "chg-header", "name": "Subject", "index": 1,
                             "value": "changed subject"}], "modifications")
    eq(header_list(r)[3], ("Subject", "changed subject"), "Subject")
    eq(names(r), ["Received", "From", "To", "Subject", "Message-ID"], "header names")


@test
def chg_header_changes_only_the_nth_instance(env):
    r, _ = edited(env, "chg-header:X-Dup:2:changed", args=ONE_HEADERS)
    eq(header_list(r)[1:], [("X-Dup", "one"), ("Subject", "s"), ("X-Dup", "changed")], "headers")


@test
def chg_header_index_0_is_treated_as_1(env):
    r, _ = edited(env, "chg-header:X-Dup:0:first", args=ONE_HEADERS)
    eq(header_list(r)[1:], [("X-Dup", "first"), ("Subject", "s"), ("X-Dup", "two")], "headers")


@test
def chg_header_name_matches_case_insensitively(env):
    r, _ = edited(env, "chg-header:x-dup:2:changed", args=ONE_HEADERS)
    eq([h[1] for h in header_list(r)[1:]], ["one", "s", "changed"], "header values")


@test
def chg_header_with_empty_value_deletes_that_instance(env):
    r, _ = edited(env, "chg-header:X-Dup:1:", args=ONE_HEADERS)
    eq(header_list(r)[1:], [("Subject", "s"), ("X-Dup", "two")], "headers")


@test
def delete_shifts_later_instance_indexes_as_postfix_does(env):
    # After deleting X-Dup #1, index 1 names the former second instance.
    r, _ = edited(env, "chg-header:X-Dup:1:", "chg-header:X-Dup:1:was two", args=ONE_HEADERS)
    eq(header_list(r)[1:], [("Subject", "s"), ("X-Dup", "was two")], "headers")


@test
def chg_header_of_a_missing_instance_appends_it(env):
    r, _ = edited(env, "chg-header:X-Dup:3:three", args=ONE_HEADERS)
    eq(header_list(r)[1:], [("X-Dup", "one"), ("Subject", "s"), ("X-Dup", "two"),
                            ("X-Dup", "three")], "headers")


@test
def delete_of_a_missing_header_changes_nothing(env):
    r, _ = edited(env, "chg-header:X-None:1:", args=ONE_HEADERS)
    eq(header_list(r)[1:], [("X-Dup", "one"), ("Subject", "s"), ("X-Dup", "two")], "headers")


@test
def added_header_value_gets_the_mta_space_without_leadspc(env):
    # The MTA inserts one space after "Name:"; the report removes one again.
    r, _ = edited(env, "add-header:X-Sp: two")
    eq(header_list(r)[-1], ("X-Sp", " two"), "header added with a leading space, no leadspc")


@test
def added_header_value_is_raw_with_leadspc(env):
    r, _ = edited(env, "add-header:X-Sp: one", "add-header:X-None:tight", negotiate=["leadspc"])
    eq(header_list(r)[-2:], [("X-Sp", "one"), ("X-None", "tight")], "headers added with leadspc")


@test
def add_rcpt_adds_a_recipient(env):
    r, _ = edited(env, "add-rcpt:<new@example.org>")
    eq(r["modifications"], [{"op": "add-rcpt", "rcpt": "<new@example.org>", "args": None}],
       "modifications")
    eq(r["recipients"], [RCPT, "<new@example.org>"], "recipients")


@test
def add_rcpt_par_adds_a_recipient_with_esmtp_args(env):
    r, _ = edited(env, "add-rcpt-par:<par@example.org>:NOTIFY=NEVER")
    eq(r["modifications"], [{"op": "add-rcpt", "rcpt": "<par@example.org>", "args": "NOTIFY=NEVER"}],
       "modifications")
    eq(r["recipients"], [RCPT, "<par@example.org>"], "recipients")


@test
def del_rcpt_removes_that_recipient_only(env):
    r, _ = edited(env, "del-rcpt:<rcpt@example.org>",
                  args=["--rcpt", RCPT, "--rcpt", "<other@example.org>"])
    eq(r["modifications"], [{"op": "del-rcpt", "rcpt": "<rcpt@example.org>"}], "modifications")
    eq(r["recipients"], ["<other@example.org>"], "recipients")


@test
def chg_from_replaces_the_envelope_sender(env):
    r, _ = edited(env, "chg-from:<bounce@example.net>")
    eq(r["modifications"], [{"op": "chg-from", "addr": "<bounce@example.net>", "args": None}],
       "modifications")
    eq(r["sender"], "<bounce@example.net>", "sender")


@test
def repl_body_replaces_the_whole_body_with_crlf_lines(env):
    r, _ = edited(env, "repl-body:line one\\nline two\\n")
    new = "line one\r\nline two\r\n"
    eq(r["modifications"], [{"op": "repl-body", "len": len(new)}], "modifications")
    eq(r["body"], new, "body")


@test
def quarantine_at_eom_holds_the_message_with_the_reason(env):
    r, _ = edited(env, "quarantine:suspicious attachment")
    eq(r["modifications"], [{"op": "quarantine", "reason": "suspicious attachment"}], "modifications")
    eq(r["quarantine"], "suspicious attachment", "quarantine")


@test
def quarantine_before_eom_is_accepted_in_postfix_flavour(env):
    # Postfix accepts 'q' at any stage (milter-protocol.md §3).
    tm = env.testmilter(*on("rcpt", "quarantine:early", "continue"))
    r = env.mta(tm)
    eq(r["error"], None, "error")
    eq(r["result"], "accept", "result")
    eq(r["quarantine"], "early", "quarantine")


@test
def every_modification_at_once_in_request_order(env):
    acts = ["add-header:X-A:1", "ins-header:0:X-Top:t", "chg-header:Subject:1:new",
            "add-rcpt:<c@example.org>", "del-rcpt:<rcpt@example.org>",
            "chg-from:<s@example.net>", "repl-body:replaced\\n", "quarantine:why"]
    r, _ = edited(env, *acts, args=["--rcpt", RCPT, "--rcpt", "<b@example.org>"])
    eq([m["op"] for m in r["modifications"]],
       ["add-header", "ins-header", "chg-header", "add-rcpt", "del-rcpt", "chg-from",
        "repl-body", "quarantine"], "modification ops")
    eq(names(r), ["X-Top", "Received", "From", "To", "Subject", "Message-ID", "X-A"], "header names")
    eq(header_list(r)[4], ("Subject", "new"), "Subject")
    eq(r["recipients"], ["<b@example.org>", "<c@example.org>"], "recipients")
    eq(r["sender"], "<s@example.net>", "sender")
    eq(r["body"], "replaced\r\n", "body")
    eq(r["quarantine"], "why", "quarantine")


@test
def modifications_of_one_message_do_not_leak_into_the_next(env):
    tm = env.testmilter(*on("eom", "add-header:X-A:1", "add-rcpt:<c@example.org>"))
    r = env.mta(tm, "--messages", "2")
    eq(len(r["messages"]), 2, "messages")
    for i, m in enumerate(r["messages"], 1):
        eq([h for h in m["headers"] if h[0] == "X-A"], [["X-A", "1"]], "X-A in message %d" % i)
        eq(m["recipients"], [RCPT, "<c@example.org>"], "recipients of message %d" % i)
        eq(len(m["modifications"]), 2, "modifications of message %d" % i)


@test
def hidden_received_header_is_the_simulators_own(env):
    r, tm = edited(env)
    rec = header_list(r)[0]
    eq(rec[0], "Received", "first header")
    ok(rec[1].startswith("from "), "Received value %r does not start with 'from '" % rec[1])
    ok("Received" not in [h["name"] for h in tm.all("header")], "Received sent to the milter")


@test
def repl_body_larger_than_one_packet_arrives_whole(env):
    text = "".join("%05d replaced line of the new body\\n" % i for i in range(3000))
    new = text.replace("\\n", "\r\n")
    ok(len(new) > 65535, "replacement too small for the test")
    r, _ = edited(env, "repl-body:" + text)
    eq(len(r["body"]), len(new), "body length")
    eq(r["body"], new, "body")
    eq(sum(m["len"] for m in r["modifications"] if m["op"] == "repl-body"), len(new),
       "repl-body lengths")


@test
def reply_payload_above_max_payload_is_an_error(env):
    tm = env.testmilter(*on("eom", "add-header:X-Long:" + "v" * 200, "accept"))
    r = env.mta(tm, "--max-payload", "100", rc=3)
    eq(r["result"], "error", "result")
    ok(r["error"] and r["error"] not in ("timeout", "closed"), "error %r" % r["error"])


@test
def chg_header_with_leadspc_stores_the_value_raw(env):
    r, _ = edited(env, "chg-header:Subject:1:  two spaces", negotiate=["leadspc"])
    eq(header_list(r)[3], ("Subject", " two spaces"), "Subject (raw '  two spaces', one removed)")
