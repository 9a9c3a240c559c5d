"""
hub_content - the content chain through the hub (design §2.3): every child
gets the whole message in chain order and sees the modifications of the
children before it; modifications reach the MTA as issued, in chain order;
the message the simulator holds afterwards is what Postfix would hold.
Also: leading-space conversion per child (§2.4), progress, skip, bodies
above the memory limit, evaluation-mode modifications dropped (§2.6).
"""

import random

from common import BODY, eq, ok, header_list, stage, stages, test, on, fnv1a64, register, skip
from harness import WRAP
from hub_envelope import FULL, start_hub, hub_mta

LEADSPC = 0x100000
MSG_HEADERS = ["--header", "From: s@example.net", "--header", "Subject: s",
               "--header", "X-Dup: one"]


def fnv_of(entry):
    v = entry["body_fnv"]
    return int(v, 16) if isinstance(v, str) else v


def seen_headers(tm):
    return [(h["name"], h["value"]) for h in tm.all("header")]


def write_file(env, data, name="msg.eml"):
    path = env.path(name)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return path


# ------------------------------------------------------------------ the chain

@test
def hub_content_chain_child_2_sees_child_1s_added_and_changed_headers_and_replaced_body(env):
    new_body = "replaced by one\r\nsecond line\r\n"
    one = env.testmilter(*on("eom", "add-header:X-One:1", "chg-header:Subject:1:changed by one",
                             "repl-body:replaced by one\\nsecond line\\n"))
    two = env.testmilter()
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    # child 1 streamed live: the original message
    eq(seen_headers(one)[:3], [("From", "sender@example.net"), ("To", "rcpt@example.org"),
                               ("Subject", "milterhub test")], "headers child 1 saw")
    eq((one.first("eom")["body_len"], fnv_of(one.first("eom"))),
       (len(BODY), fnv1a64(BODY.encode())), "body child 1 saw (len, fnv)")
    # child 2 replayed: the message as modified by child 1
    h2 = seen_headers(two)
    eq([n for n, _ in h2], ["From", "To", "Subject", "Message-ID", "X-One"], "header names child 2 saw")
    eq(h2[2], ("Subject", "changed by one"), "Subject child 2 saw")
    eq(h2[4], ("X-One", "1"), "added header child 2 saw")
    eom2 = two.first("eom")
    eq(eom2["headers"], 5, "header count at child 2's EOM")
    eq((eom2["body_len"], fnv_of(eom2)), (len(new_body), fnv1a64(new_body.encode())),
       "body child 2 saw (len, fnv of child 1's replacement)")
    eq(sum(b["len"] for b in two.all("body")), len(new_body), "body bytes child 2 got")
    eq(r["body"], new_body, "report body")
    eq([h[0] for h in header_list(r)], ["Received", "From", "To", "Subject", "Message-ID", "X-One"],
       "report header names")
    eq(header_list(r)[3], ("Subject", "changed by one"), "report Subject")


@test
def hub_final_message_equals_what_postfix_would_hold_after_three_children(env):
    # Indexes of later children refer to the message as the earlier ones left
    # it (design §2.3): child 2 inserts below child 1's insert and changes the
    # X-Dup child 1 added; child 3 sees all of it.
    one = env.testmilter(*on("eom", "ins-header:1:X-Ins1:i1", "add-header:X-Dup:two",
                             "add-rcpt:<new@example.org>"))
    two = env.testmilter(*on("eom", "ins-header:2:X-Ins2:i2", "chg-header:X-Dup:2:changed two",
                             "del-rcpt:<rcpt@example.org>", "chg-header:Subject:1:"))
    three = env.testmilter(*on("eom", "add-header:X-Three:3", "repl-body:final\\n"))
    hub = start_hub(env, one, two, three)
    r = hub_mta(env, hub, *MSG_HEADERS)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    eq(seen_headers(two), [("X-Ins1", "i1"), ("From", "s@example.net"), ("Subject", "s"),
                           ("X-Dup", "one"), ("X-Dup", "two")], "headers child 2 saw")
    eq(seen_headers(three), [("X-Ins1", "i1"), ("X-Ins2", "i2"), ("From", "s@example.net"),
                             ("X-Dup", "one"), ("X-Dup", "changed two")], "headers child 3 saw")
    eq(header_list(r)[1:], [("X-Ins1", "i1"), ("X-Ins2", "i2"), ("From", "s@example.net"),
                            ("X-Dup", "one"), ("X-Dup", "changed two"), ("X-Three", "3")],
       "final headers (below the hidden Received)")
    eq(header_list(r)[0][0], "Received", "first header (the MTA's own)")
    eq(r["body"], "final\r\n", "final body")
    eq(r["recipients"], ["<new@example.org>"], "final recipients")
    eq(r["modifications"], [
        {"op": "ins-header", "index": 1, "name": "X-Ins1", "value": "i1"},
        {"op": "add-header", "name": "X-Dup", "value": "two"},
        {"op": "add-rcpt", "rcpt": "<new@example.org>", "args": None},
        {"op": "ins-header", "index": 2, "name": "X-Ins2", "value": "i2"},
        {"op": "chg-header", "name": "X-Dup", "index": 2, "value": "changed two"},
        {"op": "del-rcpt", "rcpt": "<rcpt@example.org>"},
        {"op": "chg-header", "name": "Subject", "index": 1, "value": ""},
        {"op": "add-header", "name": "X-Three", "value": "3"},
        {"op": "repl-body", "len": len("final\r\n")},
    ], "modifications the MTA got, in chain order")


@test
def hub_modifications_reach_the_mta_in_chain_order_even_when_child_1_is_slow(env):
    tms = [env.testmilter(*on("eom", "delay:300", "add-header:X-Order:1")),
           env.testmilter(*on("eom", "add-header:X-Order:2")),
           env.testmilter(*on("eom", "add-header:X-Order:3", "add-header:X-Order:3b"))]
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub)
    eq([m.get("value") for m in r["modifications"]], ["1", "2", "3", "3b"], "modification order")
    eq([h[1] for h in header_list(r) if h[0] == "X-Order"], ["1", "2", "3", "3b"], "X-Order headers")
    eq([h for n, h in seen_headers(tms[2]) if n == "X-Order"], ["1", "2"], "X-Order child 3 saw")


@test
def hub_change_from_and_quarantine_last_child_in_chain_wins(env):
    one = env.testmilter(*on("eom", "chg-from:<one@example.net>", "quarantine:by one"))
    two = env.testmilter(*on("eom", "delay:200", "chg-from:<two@example.net>", "quarantine:by two"))
    three = env.testmilter()
    hub = start_hub(env, one, two, three)
    r = hub_mta(env, hub)
    eq((r["sender"], r["quarantine"]), ("<two@example.net>", "by two"), "(sender, quarantine)")
    eq(r["result"], "accept", "result")


@test
def hub_replaced_body_last_replacing_child_wins_and_later_children_see_it(env):
    one = env.testmilter(*on("eom", "repl-body:from one\\n"))
    two = env.testmilter(*on("eom", "repl-body:from two\\n"))
    three = env.testmilter()
    hub = start_hub(env, one, two, three)
    r = hub_mta(env, hub)
    eq(r["body"], "from two\r\n", "final body")
    eq(fnv_of(two.first("eom")), fnv1a64(b"from one\r\n"), "body fnv child 2 saw")
    eq(fnv_of(three.first("eom")), fnv1a64(b"from two\r\n"), "body fnv child 3 saw")


# ------------------------------------------------------------------ leading space (design §2.4)

@test
def hub_leading_space_each_child_gets_header_values_as_it_negotiated(env):
    spacy = ["--header", "X-Two:  two", "--header", "X-One: one", "--header", "X-None:none"]
    one = env.testmilter("--negotiate", "leadspc")
    two = env.testmilter()
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub, *spacy)
    ok(r["negotiated"]["protocol"] & LEADSPC, "hub did not ask the MTA for HDR_LEADSPC: 0x%x"
       % r["negotiated"]["protocol"])
    eq(seen_headers(one), [("X-Two", "  two"), ("X-One", " one"), ("X-None", "none")],
       "headers the leadspc child saw (unaltered)")
    eq(seen_headers(two), [("X-Two", " two"), ("X-One", "one"), ("X-None", "none")],
       "headers the child without leadspc saw (one leading space removed)")


@test
def hub_leading_space_added_and_changed_headers_land_as_each_child_meant(env):
    # child 1 (leadspc) writes its own space; child 2 (no leadspc) relies on
    # the MTA adding one; child 3 (leadspc) sees exactly what the MTA holds.
    one = env.testmilter("--negotiate", "leadspc", *on("eom", "add-header:X-L1: l1"))
    two = env.testmilter(*on("eom", "add-header:X-N2:n2", "chg-header:X-None:1:nn"))
    three = env.testmilter("--negotiate", "leadspc")
    hub = start_hub(env, one, two, three)
    r = hub_mta(env, hub, "--header", "X-One: one", "--header", "X-None:none")
    eq(seen_headers(two), [("X-One", "one"), ("X-None", "none"), ("X-L1", "l1")],
       "headers child 2 (no leadspc) saw")
    eq(seen_headers(three), [("X-One", " one"), ("X-None", " nn"), ("X-L1", " l1"), ("X-N2", " n2")],
       "headers child 3 (leadspc) saw")
    # The MTA negotiated HDR_LEADSPC with the hub: values go to it with their space.
    eq([(m["op"], m["name"], m["value"]) for m in r["modifications"]],
       [("add-header", "X-L1", " l1"), ("add-header", "X-N2", " n2"), ("chg-header", "X-None", " nn")],
       "modifications the MTA got")
    eq(header_list(r)[1:], [("X-One", "one"), ("X-None", "nn"), ("X-L1", "l1"), ("X-N2", "n2")],
       "final headers")


# ------------------------------------------------------------------ progress

def make_progress(position):
    def t(env):
        slow = env.testmilter(*on("eom", "progress", "delay:700", "progress", "delay:700", "continue"))
        other = env.testmilter()
        chain = [(slow, {"timeouts": {"eom": 1}, "fallback": "tempfail"}), other]
        if position == 2:
            chain.reverse()
        hub = start_hub(env, *chain)
        # --timeout 1: the MTA too would time out unless progress is forwarded at once.
        r = hub_mta(env, hub, "--timeout", "1")
        eq((r["result"], r["error"]), ("accept", None), "(result, error): a timeout was applied")
        ok(stage(r, "eom").get("progress", 0) >= 1, "no progress reached the MTA: %r" % stage(r, "eom"))
        ok(r["_elapsed"] >= 1.3, "session took only %.2fs: the delays did not run" % r["_elapsed"])
        for tm in slow, other:
            ok("eom" in tm.cmds(), "a child got no EOM")
    register("hub_progress_from_child_%d_reaches_the_mta_and_resets_its_eom_timeout" % position, t)


make_progress(1)
make_progress(2)


# ------------------------------------------------------------------ skip

@test
def hub_skip_at_body_by_child_1_stops_only_its_body_and_the_mta_sees_continue(env):
    body = ("s" * 98 + "\r\n") * 2000  # 200000 bytes: 4 chunks
    path = write_file(env, "Subject: skip\r\n\r\n" + body)
    one = env.testmilter(*on("body", "skip"))
    two = env.testmilter()
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub, "--message-file", path)
    eq(r["result"], "accept", "result")
    replies = [s["reply"] for s in stages(r, "body")]
    eq(replies, ["continue"] * 4, "body replies the MTA got (skip is not forwarded)")
    eq([b["len"] for b in one.all("body")], [65535], "body chunks child 1 got after its skip")
    eq(one.first("eom")["body_len"], 65535, "body_len at child 1's EOM")
    eom2 = two.first("eom")
    eq((eom2["body_len"], fnv_of(eom2)), (len(body), fnv1a64(body.encode())),
       "body child 2 got (len, fnv)")
    eq(r["body"], body, "report body")


# ------------------------------------------------------------------ big bodies

_BIG = {}


def big_body():
    """A 20 MiB body of printable CRLF lines and its FNV-1a 64 (computed once)."""
    if "body" not in _BIG:
        rnd = random.Random(2026)
        pool = [bytes(rnd.getrandbits(8) % 94 + 33 for _ in range(rnd.randint(0, 300))) + b"\r\n"
                for _ in range(997)]
        parts, size, i = [], 0, 0
        while size < 20 * 1024 * 1024:
            ln = pool[(i * 7919) % 997]
            parts.append(ln)
            size += len(ln)
            i += 1
        body = b"".join(parts)
        _BIG["fnv"] = fnv1a64(body)
        _BIG["body"] = body
    return _BIG["body"], _BIG["fnv"]


@test
def hub_body_of_20_mib_above_the_memory_limit_arrives_byte_identical_at_every_child(env):
    body, want_fnv = big_body()
    path = write_file(env, b"From: big@example.net\r\nSubject: 20 MiB\r\n\r\n" + body)
    tms = [env.testmilter(), env.testmilter(), env.testmilter()]
    hub = start_hub(env, *tms, manager={"body_memory_limit": 1048576})
    r = hub_mta(env, hub, "--message-file", path, timeout=120)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    for i, tm in enumerate(tms, 1):
        eom = tm.first("eom")
        eq(eom["body_len"], len(body), "body_len at child %d" % i)
        eq(fnv_of(eom), want_fnv, "body_fnv at child %d (FNV-1a 64 computed here)" % i)
        eq(eom["headers"], 2, "header count at child %d" % i)
    eq(len(r["body"]), len(body), "report body length")


@test
def hub_body_of_20_mib_replaced_by_child_1_reaches_child_2_replaced(env):
    body, _ = big_body()
    path = write_file(env, b"Subject: 20 MiB\r\n\r\n" + body)
    one = env.testmilter(*on("eom", "repl-body:small\\n"))
    two = env.testmilter()
    hub = start_hub(env, one, two, manager={"body_memory_limit": 1048576})
    r = hub_mta(env, hub, "--message-file", path, timeout=120)
    eq(one.first("eom")["body_len"], len(body), "body_len at child 1")
    eq((two.first("eom")["body_len"], fnv_of(two.first("eom"))), (7, fnv1a64(b"small\r\n")),
       "body child 2 saw (len, fnv)")
    eq(r["body"], "small\r\n", "final body")


# ------------------------------------------------------------------ decisions in content

@test
def hub_reject_at_eom_by_child_1_ends_the_message_before_child_2_is_replayed(env):
    one = env.testmilter(*on("eom", "reply:550:5.7.1:spam"))
    two = env.testmilter()
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub)
    eq((r["result"], r["reply"]), ("reject", "550 5.7.1 spam"), "(result, reply)")
    for cmd in ("header", "eoh", "body", "eom"):
        ok(cmd not in two.cmds(), "child 2 got %s after child 1 rejected the message" % cmd)


@test
def hub_reject_by_a_replayed_child_at_a_header_rejects_the_message(env):
    one = env.testmilter(*on("eom", "add-header:X-One:1"))
    two = env.testmilter(*on("header:Subject", "reject"))
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub)
    eq(r["result"], "reject", "result")
    ok("eom" not in two.cmds(), "child 2 got EOM after rejecting at a header")


@test
def hub_discard_at_eom_by_child_2_discards_the_message(env):
    one = env.testmilter(*on("eom", "add-header:X-One:1"))
    two = env.testmilter(*on("eom", "discard"))
    three = env.testmilter()
    hub = start_hub(env, one, two, three)
    r = hub_mta(env, hub)
    eq(r["result"], "discard", "result")
    ok("eom" not in three.cmds(), "child 3 got EOM after child 2 discarded the message")


@test
def hub_tempfail_at_body_by_the_live_child_tempfails_the_message(env):
    one = env.testmilter(*on("body", "tempfail"))
    two = env.testmilter()
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub)
    eq(r["result"], "tempfail", "result")
    ok("eom" not in two.cmds(), "child 2 got EOM of a tempfailed message")


@test
def hub_accept_at_eoh_by_child_1_leaves_the_content_to_child_2(env):
    one = env.testmilter(*on("eoh", "accept"))
    two = env.testmilter(*on("eom", "add-header:X-Two:2"))
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result")
    ok("body" not in one.cmds() and "eom" not in one.cmds(), "child 1 got content after its accept")
    eq(two.first("eom")["body_len"], len(BODY), "body_len at child 2")
    eq(header_list(r)[-1], ("X-Two", "2"), "child 2's header")


# ------------------------------------------------------------------ evaluation mode (design §2.6)

@test
def hub_evaluation_child_modifications_are_dropped_and_its_reject_ignored(env):
    ev = env.testmilter(*on("eom", "add-header:X-Eval:1", "chg-header:Subject:1:eval",
                            "repl-body:eval\\n", "chg-from:<eval@example.net>", "reject"))
    two = env.testmilter()
    hub = start_hub(env, (ev, {"evaluate": True}), two)
    r = hub_mta(env, hub)
    eq((r["result"], r["reply"]), ("accept", None), "(result, reply)")
    eq(r["modifications"], [], "modifications the MTA got")
    eq(r["body"], BODY, "body")
    eq(r["sender"], "<sender@example.net>", "sender")
    ok(all(h[0] != "X-Eval" for h in header_list(r)), "evaluation child's header reached the MTA")
    eq(seen_headers(two)[2], ("Subject", "milterhub test"), "Subject child 2 saw")
    eom2 = two.first("eom")
    eq((eom2["headers"], eom2["body_len"], fnv_of(eom2)), (4, len(BODY), fnv1a64(BODY.encode())),
       "child 2's EOM (headers, body_len, fnv): the original message")
    eq([c for c in two.cmds() if c in FULL], FULL, "events child 2 saw")


@test
def hub_modifications_of_message_1_do_not_leak_into_message_2(env):
    # child 1 edits message 1 and accepts message 2 at MAIL; child 2 must be
    # replayed message 2 as the MTA sent it.
    one = env.testmilter(*on("mail:second@example.net", "accept"),
                         *on("eom", "add-header:X-One:1", "chg-header:Subject:1:edited",
                             "repl-body:edited\\n", "chg-from:<edited@example.net>"))
    two = env.testmilter()
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub, "--messages", "2", "--from", "<first@example.net>",
                "--from", "<second@example.net>")
    m1, m2 = r["messages"]
    eq((m1["body"], m1["sender"]), ("edited\r\n", "<edited@example.net>"), "message 1 (body, sender)")
    eq(m2["modifications"], [], "modifications of message 2")
    eq((m2["body"], m2["sender"]), (BODY, "<second@example.net>"), "message 2 (body, sender)")
    eoms = two.all("eom")
    eq(len(eoms), 2, "EOMs child 2 got")
    eq((eoms[1]["headers"], eoms[1]["body_len"], fnv_of(eoms[1])),
       (4, len(BODY), fnv1a64(BODY.encode())), "child 2's EOM of message 2 (headers, len, fnv)")
    subjects = [h["value"] for h in two.all("header") if h["name"] == "Subject"]
    eq(subjects, ["edited", "milterhub test"], "Subjects child 2 saw in messages 1 and 2")


@test
def hub_replaced_body_of_several_packets_reaches_the_later_child_whole(env):
    line = "r" * 98
    one = env.testmilter(*on("eom", "repl-body:" + (line + "\\n") * 1000))
    two = env.testmilter()
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub)
    want = ((line + "\r\n") * 1000).encode()
    eom2 = two.first("eom")
    eq((eom2["body_len"], fnv_of(eom2)), (len(want), fnv1a64(want)), "body child 2 saw (len, fnv)")
    eq(r["body"].encode(), want, "final body")


@test
def hub_skip_at_body_by_the_replayed_child_stops_only_its_replay(env):
    body = ("k" * 98 + "\r\n") * 2000  # 200000 bytes
    path = write_file(env, "Subject: skip\r\n\r\n" + body)
    one = env.testmilter()
    two = env.testmilter(*on("body", "skip"), *on("eom", "add-header:X-Two:2"))
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub, "--message-file", path)
    eq([s["reply"] for s in stages(r, "body")], ["continue"] * 4, "body replies the MTA got")
    eq(one.first("eom")["body_len"], len(body), "body_len at child 1")
    eq(len(two.all("body")), 1, "body chunks child 2 got after its skip")
    eq(header_list(r)[-1], ("X-Two", "2"), "child 2's header")


@test
def hub_accept_at_eom_by_child_1_keeps_its_modifications_and_child_2_still_runs(env):
    one = env.testmilter(*on("eom", "add-header:X-One:1", "accept"))
    two = env.testmilter(*on("eom", "add-header:X-Two:2"))
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result")
    eq(header_list(r)[-2:], [("X-One", "1"), ("X-Two", "2")], "added headers")
    eq(seen_headers(two)[-1], ("X-One", "1"), "last header child 2 saw")


@test
def hub_memory_stays_bounded_for_a_20_mib_body_above_the_limit(env):
    # design §7: bodies above the limit go to disk, so the hub's peak RSS
    # stays far below the body size.
    body, _ = big_body()
    path = write_file(env, b"Subject: 20 MiB\r\n\r\n" + body)
    tms = [env.testmilter(log=False), env.testmilter(log=False)]
    hub = start_hub(env, *tms, manager={"body_memory_limit": 1048576})
    r = hub_mta(env, hub, "--message-file", path, timeout=120)
    eq(r["result"], "accept", "result")
    with open("/proc/%d/maps" % hub.pid) as f:
        if "libasan" in f.read() or WRAP:
            skip("peak RSS means nothing under ASan or MH_WRAP")
    with open("/proc/%d/status" % hub.pid) as f:
        hwm = [ln for ln in f if ln.startswith("VmHWM:")][0]
    kib = int(hwm.split()[1])
    env.note("hub " + hwm.strip())
    ok(kib < 12 * 1024, "hub peak RSS %d KiB for a 20 MiB body with a 1 MiB memory limit" % kib)


@test
def hub_leading_space_converted_both_ways_when_the_mta_cannot_send_it(env):
    # An MTA at version 4 offers no HDR_LEADSPC: it strips one space and adds
    # one to every added header. The leadspc child must still see the space
    # and its own space must not be doubled (design §2.4).
    one = env.testmilter("--negotiate", "leadspc", *on("eom", "add-header:X-L1: l1"))
    two = env.testmilter()
    hub = start_hub(env, one, two)
    # (Only the usual one-space form: what the MTA stripped cannot be known.)
    r = hub_mta(env, hub, "--version", "4", "--header", "X-One: one")
    eq(r["negotiated"]["protocol"] & LEADSPC, 0, "HDR_LEADSPC (not offered) asked")
    eq(seen_headers(one), [("X-One", " one")], "headers the leadspc child saw")
    eq(seen_headers(two), [("X-One", "one"), ("X-L1", "l1")], "headers the other child saw")
    eq([(m["op"], m["name"], m["value"]) for m in r["modifications"]], [("add-header", "X-L1", "l1")],
       "modification the MTA got (it adds the space itself)")


@test
def hub_add_rcpt_with_esmtp_args_is_forwarded(env):
    one = env.testmilter(*on("eom", "add-rcpt-par:<p@example.org>:NOTIFY=NEVER"))
    two = env.testmilter(*on("eom", "add-rcpt:<q@example.org>"))
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub)
    eq([(m["op"], m["rcpt"], m.get("args")) for m in r["modifications"]],
       [("add-rcpt", "<p@example.org>", "NOTIFY=NEVER"), ("add-rcpt", "<q@example.org>", None)],
       "modifications")
    eq(r["recipients"], ["<rcpt@example.org>", "<p@example.org>", "<q@example.org>"], "recipients")


@test
def hub_accept_by_the_only_content_child_at_a_header_reaches_the_mta(env):
    # child 2 left the transaction at MAIL; child 1 accepting at a header
    # means every participating child accepted.
    one = env.testmilter(*on("header:Subject", "accept"))
    two = env.testmilter(*on("mail", "accept"))
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub)
    eq([(s["arg"], s["reply"]) for s in stages(r, "header")],
       [("From", "continue"), ("To", "continue"), ("Subject", "accept")], "header replies")
    eq(r["result"], "accept", "result")


@test
def hub_last_child_sees_exactly_what_the_mta_holds_after_edge_case_edits(env):
    # Postfix semantics (docs/tools.md "Edits follow Postfix"): change of a
    # missing header adds it, change index 0 is 1, delete of a missing index
    # is nothing, the milter's spelling of a changed name is kept, insert
    # beyond the end appends. The hub's working copy must agree with the MTA.
    one = env.testmilter(*on("eom", "chg-header:X-Missing:1:added", "chg-header:x-dup:2:second",
                             "chg-header:X-Dup:5:", "ins-header:99:X-End:end",
                             "chg-header:X-Dup:0:zero"))
    two = env.testmilter(*on("eom", "ins-header:3:X-Mid:mid", "chg-header:X-MISSING:1:"))
    three = env.testmilter()
    hub = start_hub(env, one, two, three)
    r = hub_mta(env, hub, *MSG_HEADERS, "--header", "X-Dup: two")
    want = [("From", "s@example.net"), ("Subject", "s"), ("X-Mid", "mid"), ("X-Dup", "zero"),
            ("x-dup", "second"), ("X-End", "end")]
    eq(header_list(r)[1:], want, "final headers")
    eq(seen_headers(three), want, "headers the last child saw")
    eq(seen_headers(two), [("From", "s@example.net"), ("Subject", "s"), ("X-Dup", "zero"),
                           ("x-dup", "second"), ("X-Missing", "added"), ("X-End", "end")],
       "headers child 2 saw")


@test
def hub_folded_header_reaches_the_replayed_child_unchanged(env):
    msg = "From: a@example.net\r\nSubject: folded\r\n continuation\r\n\tand a tab\r\n\r\nBody\r\n"
    one, two = env.testmilter(), env.testmilter()
    hub = start_hub(env, one, two)
    hub_mta(env, hub, "--message-file", write_file(env, msg))
    want = [("From", "a@example.net"), ("Subject", "folded\n continuation\n\tand a tab")]
    eq(seen_headers(one), want, "headers child 1 saw")
    eq(seen_headers(two), want, "headers child 2 saw")


@test
def hub_message_without_body_reaches_every_child_with_an_empty_body(env):
    one, two = env.testmilter(), env.testmilter(*on("eom", "add-header:X-Two:2"))
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub, "--message-file", write_file(env, "Subject: empty\r\n\r\n"))
    eq(r["result"], "accept", "result")
    for i, tm in enumerate((one, two), 1):
        eq((tm.first("eom")["body_len"], tm.first("eom")["headers"]), (0, 1),
           "child %d's EOM (body_len, headers)" % i)
    eq(header_list(r)[-1], ("X-Two", "2"), "child 2's header")


@test
def hub_multi_line_reply_text_reaches_the_mta_whole(env):
    one = env.testmilter()
    two = env.testmilter(*on("eom", "reply:550:5.7.1:first line\\nsecond line"))
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub)
    eq((r["result"], r["reply"]), ("reject", "550-5.7.1 first line\r\n550 5.7.1 second line"),
       "(result, reply)")


@test
def hub_head_child_dying_mid_content_leaves_the_message_to_the_rest(env):
    one = env.testmilter(*on("header:Subject", "close"))
    two = env.testmilter(*on("eom", "add-header:X-Two:2"))
    hub = start_hub(env, (one, {"fallback": "accept"}), two)
    r = hub_mta(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    eq([n for n, _ in seen_headers(two)], ["From", "To", "Subject", "Message-ID"], "headers child 2 saw")
    eq(two.first("eom")["body_len"], len(BODY), "body_len at child 2")
    eq(header_list(r)[-1], ("X-Two", "2"), "child 2's header")


@test
def hub_replayed_child_dying_mid_replay_leaves_the_chain_to_the_next(env):
    one = env.testmilter(*on("eom", "add-header:X-One:1"))
    two = env.testmilter(*on("eoh", "close"))
    three = env.testmilter(*on("eom", "add-header:X-Three:3"))
    hub = start_hub(env, one, (two, {"fallback": "accept"}), three)
    r = hub_mta(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    eq(seen_headers(three)[-1], ("X-One", "1"), "last header child 3 saw")
    eq([h for h in header_list(r) if h[0].startswith("X-")], [("X-One", "1"), ("X-Three", "3")],
       "added headers")


@test
def hub_header_of_60000_bytes_reaches_every_child_whole(env):
    value = ("v" * 70 + "\n\t") * 800  # folded, 57600 bytes
    value = value[:-2]
    one, two = env.testmilter(), env.testmilter()
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub, "--header", "X-Big: " + value.replace("\n", "\\n").replace("\t", "\\t"),
                "--header", "Subject: s")
    eq(r["result"], "accept", "result")
    for i, tm in enumerate((one, two), 1):
        eq(seen_headers(tm)[0], ("X-Big", value), "big header child %d saw" % i)


@test
def hub_fifty_messages_on_one_connection_each_start_from_the_message_as_sent(env):
    one = env.testmilter(*on("eom", "add-header:X-One:1", "repl-body:one\\n"))
    two = env.testmilter(*on("eom", "add-header:X-Two:2"))
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub, "--messages", "50")
    eq({m["result"] for m in r["messages"]}, {"accept"}, "message results")
    eq({len(m["modifications"]) for m in r["messages"]}, {3}, "modifications per message")
    eq([e["headers"] for e in one.all("eom")], [4] * 50, "header counts at child 1's EOMs")
    eq([e["headers"] for e in two.all("eom")], [5] * 50, "header counts at child 2's EOMs")
    eq({e["body_len"] for e in one.all("eom")}, {len(BODY)}, "body lengths at child 1's EOMs")
    eq({e["body_len"] for e in two.all("eom")}, {len(b"one\r\n")}, "body lengths at child 2's EOMs")
