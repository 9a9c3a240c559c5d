"""
details - the points docs/tools.md settles under "Details the contract above
leaves open": error strings, skip/accept/quarantine at unusual stages, 421,
Sendmail's 'A' and macro lists, the hidden Received: header, --body and
--message-file line handling, Postfix's header-index quirk, and the
testmilter's close reasons and exit statuses.
"""

import re

from common import RCPT, eq, ok, stage, stages, header_list, test, on

A, B = "<a@example.org>", "<b@example.org>"


@test
def modification_outside_eom_is_an_unexpected_reply_with_a_detail(env):
    tm = env.testmilter(*on("rcpt", "add-header:X-A:1", "continue"))
    r = env.mta(tm, rc=3)
    eq((r["result"], r["error"]), ("error", "unexpected reply"), "(result, error)")
    st = stage(r, "rcpt")
    eq(st["reply"], "error", "rcpt stage reply")
    ok(st.get("detail"), "failing stage has no detail: %r" % st)


@test
def timeout_and_close_stages_carry_a_detail(env):
    tm = env.testmilter(*on("data", "close"))
    r = env.mta(tm, rc=3)
    ok(stage(r, "data").get("detail"), "data stage without detail: %r" % stage(r, "data"))
    eq(tm.first("close")["reason"], "action", "testmilter close reason for the close action")


@test
def rcpt_accept_accepts_later_recipients_unasked(env):
    tm = env.testmilter(*on("rcpt:a@example.org", "accept"), *on("rcpt", "reject"))
    r = env.mta(tm, "--rcpt", A, "--rcpt", B)
    eq([(x["rcpt"], x["reply"]) for x in r["rcpts"]], [(A, "accept"), (B, "none")], "rcpts")
    eq(r["recipients"], [A, B], "recipients")
    eq(r["result"], "accept", "result")
    eq(len(tm.all("rcpt")), 1, "rcpts the milter got")


@test
def skip_at_a_header_skips_the_remaining_headers(env):
    tm = env.testmilter(*on("header:To", "skip"))
    r = env.mta(tm)
    eq([h["name"] for h in tm.all("header")], ["From", "To"], "headers the milter got")
    ok("eoh" in tm.cmds(), "eoh not sent after a header skip")
    eq(r["result"], "accept", "result")


@test
def quarantine_at_connect_is_ignored(env):
    tm = env.testmilter(*on("connect", "quarantine:early", "continue"))
    r = env.mta(tm)
    eq((r["result"], r["error"], r["quarantine"]), ("accept", None, None),
       "(result, error, quarantine)")


@test
def reply_421_ends_the_smtp_session(env):
    tm = env.testmilter(*on("mail", "reply:421:4.7.0:closing"))
    r = env.mta(tm, "--messages", "2")
    eq([m["result"] for m in r["messages"]], ["tempfail", "not-sent"], "message results")
    eq(r["messages"][0]["reply"], "421 4.7.0 closing", "reply of message 1")
    cmds = tm.cmds()
    eq(len(tm.all("mail")), 1, "MAILs the milter got")
    eq(cmds[-3:], ["abort", "quit", "close"], "end of the milter log")


@test
def connect_reject_carries_the_reply_text_into_every_message(env):
    tm = env.testmilter(*on("connect", "reply:554:5.7.1:go away"))
    r = env.mta(tm, "--messages", "2")
    eq([(m["result"], m["reply"]) for m in r["messages"]],
       [("not-sent", "554 5.7.1 go away")] * 2, "messages")
    eq(r["reply"], "554 5.7.1 go away", "report reply")
    ok("quit" not in tm.cmds(), "Postfix flavour sent 'Q' after a connect reject: %r" % tm.cmds())


@test
def connect_reject_in_sendmail_flavour_sends_quit(env):
    tm = env.testmilter(*on("connect", "reject"))
    env.mta(tm, "--sendmail")
    ok("quit" in tm.cmds(), "Sendmail flavour sent no 'Q' after a connect reject: %r" % tm.cmds())


@test
def connect_accept_accepts_every_message_with_all_recipients(env):
    tm = env.testmilter(*on("connect", "accept"))
    r = env.mta(tm, "--messages", "2", "--rcpt", A, "--rcpt", B)
    eq([(m["result"], m["recipients"]) for m in r["messages"]], [("accept", [A, B])] * 2,
       "messages")


@test
def sendmail_flavour_aborts_a_message_whose_recipients_were_all_refused(env):
    tm = env.testmilter(*on("rcpt", "reject"))
    r = env.mta(tm, "--sendmail")
    eq(r["result"], "reject", "result")
    ok("abort" in tm.cmds(), "no 'A' after every recipient was refused: %r" % tm.cmds())


@test
def macro_option_is_sent_even_when_the_list_lacks_it(env):
    tm = env.testmilter()
    env.mta(tm, "--macro", "connect:{client_connections}=3", "--macro", "connect:client_connections=4")
    m = tm.first("connect")["macros"]
    vals = [v for k, v in m.items() if k.strip("{}") == "client_connections"]
    eq(vals, ["4"], "client_connections (last --macro wins)")


@test
def empty_macro_list_means_the_defaults(env):
    tm = env.testmilter("--negotiate", "macros=rcpt:")
    env.mta(tm)
    eq(sorted(tm.first("rcpt")["macros"]), ["{rcpt_addr}"], "rcpt macros with an empty list")


@test
def sendmail_flavour_uses_sendmails_macro_lists(env):
    tm = env.testmilter()
    r = env.mta(tm, "--sendmail")
    c = tm.first("connect")["macros"]
    eq({k: c.get(k) for k in ("j", "{daemon_name}", "{if_name}", "{if_addr}")},
       {"j": "mta.example.org", "{daemon_name}": "mta.example.org",
        "{if_name}": "mta.example.org", "{if_addr}": "127.0.0.1"}, "connect macros")
    ok(tm.first("mail")["macros"].get("i"), "no i at MAIL in Sendmail flavour")
    msgid = [h[1] for h in header_list(r) if h[0] == "Message-ID"][0]
    eq(tm.first("eom")["macros"].get("{msg_id}"), msgid, "{msg_id} at eom")


@test
def hidden_received_header_names_helo_client_queue_id_and_recipient(env):
    tm = env.testmilter()
    r = env.mta(tm, "--helo", "hello.example.com")
    qid = tm.first("data")["macros"]["i"]
    ok(re.fullmatch(r"[0-9A-Fa-f]{10}", qid), "queue id %r is not 10 hex digits" % qid)
    name, value = header_list(r)[0]
    eq(name, "Received", "first header")
    want = (r"from hello\.example\.com \(mx\.example\.net \[192\.0\.2\.1\]\)\n\t"
            r"by mta\.example\.org \(Postfix\) with ESMTP id %s\n\tfor <rcpt@example\.org>; .+"
            % qid)
    ok(re.fullmatch(want, value, re.S), "Received value %r" % value)


@test
def body_option_escapes_and_final_line_end(env):
    tm = env.testmilter()
    r = env.mta(tm, "--body", "a\\tb\\r\\nback\\\\slash\\nlast")
    eq(r["body"], "a\tb\r\nback\\slash\r\nlast\r\n", "body")


@test
def message_file_lf_lines_become_crlf_and_mbox_from_is_skipped(env):
    path = env.path("lf.eml")
    with open(path, "wb") as f:
        f.write(b"From someone@example.net Mon Jan  1 00:00:00 2024\n"
                b"Subject: lf\nX-A: 1\nnot a header line\nsecond\nno end")
    tm = env.testmilter()
    r = env.mta(tm, "--message-file", path)
    eq([h["name"] for h in tm.all("header")], ["Subject", "X-A"], "headers")
    eq(r["body"], "not a header line\r\nsecond\r\nno end\r\n", "body")


@test
def header_option_escapes_fold_with_lf(env):
    tm = env.testmilter()
    env.mta(tm, "--header", "X-F: one\\n\\ttwo")
    eq(tm.first("header")["value"], "one\n\ttwo", "folded header value")


@test
def changed_header_takes_the_milters_spelling_of_the_name(env):
    tm = env.testmilter(*on("eom", "chg-header:SUBJECT:1:x"))
    r = env.mta(tm)
    eq(header_list(r)[3], ("SUBJECT", "x"), "changed header")


@test
def header_inserted_at_the_top_is_skipped_by_change_indexes(env):
    # Postfix skips the first header (the one it hid); after an insert at
    # index 0 that is the inserted header, so index 1 names the original.
    tm = env.testmilter(*on("eom", "ins-header:0:Subject:top", "chg-header:Subject:1:changed"))
    r = env.mta(tm)
    subj = [h for h in header_list(r) if h[0] == "Subject"]
    eq(subj, [("Subject", "top"), ("Subject", "changed")], "Subject headers")
    eq(header_list(r)[0], ("Subject", "top"), "top header")


@test
def replacement_body_lines_are_terminated_with_crlf(env):
    tm = env.testmilter(*on("eom", "repl-body:no end"))
    r = env.mta(tm)
    eq(r["body"], "no end\r\n", "body")


@test
def del_rcpt_compares_case_insensitively_without_brackets(env):
    tm = env.testmilter(*on("eom", "del-rcpt:RCPT@Example.ORG"))
    r = env.mta(tm, "--rcpt", RCPT, "--rcpt", A)
    eq(r["recipients"], [A], "recipients")


@test
def load_concurrency_defaults_to_1(env):
    tm = env.testmilter()
    res = env.mta_run("--sessions", "5", socket=tm.spec)
    eq(res.returncode, 0, "exit status")
    log = tm.log()
    # One at a time: each connection closes before the next negotiates.
    order = [(e["conn"], e["cmd"]) for e in log if e["cmd"] in ("optneg", "close")]
    eq(order, [(c, x) for c in range(1, 6) for x in ("optneg", "close")], "connection order")


@test
def load_failures_are_counted_by_reason_on_stderr(env):
    tm = env.testmilter(*on("mail", "close"), log=False)
    res = env.mta_run("--sessions", "10", "--concurrency", "2", socket=tm.spec)
    eq(res.returncode, 3, "exit status")
    ok(re.search(r"milterhub-mta: 10 session\(s\) failed: closed", res.stderr),
       "stderr %r" % res.stderr[-300:])


@test
def concurrency_without_sessions_is_bad_usage(env):
    eq(env.mta_run("--concurrency", "5", socket=env.unix_spec()).returncode, 1, "exit status")


@test
def testmilter_bad_usage_exits_1_and_unopenable_socket_exits_2(env):
    r = env.run("milterhub-testmilter", [env.testmilter_bin, "--listen", env.unix_spec(),
                                         "--on", "bogus=reject"], timeout=10)
    eq(r.returncode, 1, "exit status for an unknown stage")
    r = env.run("milterhub-testmilter", [env.testmilter_bin, "--listen", env.unix_spec(),
                                         "--on", "abort=reject"], timeout=10)
    eq(r.returncode, 1, "exit status for a decision at abort")
    r = env.run("milterhub-testmilter", [env.testmilter_bin, "--listen",
                                         "unix:" + env.path("no", "such", "dir.sock")], timeout=10)
    eq(r.returncode, 2, "exit status for a socket that cannot be opened")


@test
def testmilter_logs_open_connections_as_shutdown_at_sigterm(env):
    tm = env.testmilter(*on("eom", "hang"))
    import subprocess
    import time
    p = subprocess.Popen([env.mta_bin, "--socket", tm.spec, "--json", "--timeout", "30"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while "eom" not in tm.cmds(settle=0) and time.monotonic() < deadline:
            time.sleep(0.02)
        eq(tm.proc.stop(), 0, "testmilter exit status")
        eq([e["reason"] for e in tm.log(settle=0) if e["cmd"] == "close"], ["shutdown"],
           "close reasons")
    finally:
        p.kill()
        p.wait()


@test
def testmilter_refuses_actions_not_offered(env):
    # 'skip' requests SKIP even when a v2 MTA did not offer it: the milter closes.
    tm = env.testmilter("--negotiate", "skip")
    res = env.mta_run("--version", "2", socket=tm.spec)
    eq(res.returncode, 2, "mta exit status when the milter refuses the offer")
    ok(tm.proc.stderr(), "the testmilter logged nothing about the mismatch")
