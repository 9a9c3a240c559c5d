"""
policy - Postfix policy servers as children (issue 9): `policy "NAME" { ... }` in the chain
with the milters, speaking the policy delegation protocol (SMTPD_POLICY_README).

Driven by milterhub-mta through the hub against tests/lib/policyserver.py (a scripted policy
server that records every request and counts its connections): every answer form and what
the MTA gets for it; the request attributes from a session with known client, HELO,
envelope and macros, at each `stage`; pooled connections reused over 1,000 sessions; a
server that hangs, closes, answers garbage or is not there gets the child's fallback within
its read timeout and the next session works again; `when` conditions; a real postgrey
greylisting S25R clients only; examples/rgrey-postgrey.lua passes --check-config.
"""

import grp
import json
import os
import pwd
import re
import struct
import time

import policyserver
from policyserver import HANG, CLOSE, PARTIAL, GARBAGE
from common import eq, ok, register, skip, stage, test, on, free_port, SLOW
from hub_envelope import lua, hub_mta
from hub_failures import RawMta, _closed_within

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXAMPLE = os.path.join(REPO, "examples", "rgrey-postgrey.lua")
POSTGREY = "/usr/sbin/postgrey"

A, B = "<a@example.org>", "<b@example.org>"
DYNAMIC = "p4073-ipbf1003funabasi.example.ne.jp"  # S25R: digit groups in the first label
DYNAMIC_ADDR = "192.0.2.10"
CLEAN = "mail.example.com"
CLEAN_ADDR = "198.51.100.20"
READ = 1.0  # the read timeout of the failure tests


# ------------------------------------------------------------------ helpers

def policy_hub(env, server, opts=None, name="pol", before=(), after=(), manager=None):
    """Start the hub with one `policy NAME` block for `server` (a PolicyServer or a socket
    spec) and options `opts`, between the milter blocks `before` and `after` (each a
    (name, TestMilter, {options}) triple). `manager`: extra keys of the manager block."""
    listen = env.unix_spec()
    text = "manager %s\n" % lua(dict({"listen": listen}, **(manager or {})))
    for mname, tm, mopts in before:
        text += 'milter "%s" %s\n' % (mname, lua(dict({"socket": tm.spec}, **mopts)))
    spec = server if isinstance(server, str) else server.spec
    text += 'policy "%s" %s\n' % (name, lua_opts(dict({"socket": spec}, **(opts or {}))))
    for mname, tm, mopts in after:
        text += 'milter "%s" %s\n' % (mname, lua(dict({"socket": tm.spec}, **mopts)))
    env.note("milterhub.lua:\n" + text)
    return env.hub(text, listen=listen)


def lua_opts(d):
    """lua() with lists ({ "a", "b" }) too."""
    parts = []
    for k, v in d.items():
        if isinstance(v, (list, tuple)):
            parts.append("%s = { %s }" % (k, ", ".join(lua(x) for x in v)))
        else:
            parts.append("%s = %s" % (k, lua(v)))
    return "{ " + ", ".join(parts) + " }"


def for_rcpt(addr, action, other="DUNNO"):
    """An answer function: `action` for requests about recipient addr (without <>)."""
    bare = addr.strip("<>")

    def answer(attrs):
        return action if attrs.get("recipient") == bare else other
    return answer


def rcpt_replies(r):
    return [(x["rcpt"], x["reply"], x.get("text")) for x in r["rcpts"]]


def log_lines(hub, pattern, flags=0):
    return [ln for ln in hub.stderr().splitlines() if re.search(pattern, ln, flags)]


def wait_log(hub, pattern, timeout=5.0, flags=0):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        found = log_lines(hub, pattern, flags)
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def two_rcpts(env, hub, *extra):
    return hub_mta(env, hub, "--rcpt", A, "--rcpt", B, *extra)


# ------------------------------------------------------------------ answers at RCPT

def continue_case(action):
    def t(env):
        ps = policyserver.start(env, for_rcpt(A, action))
        hub = policy_hub(env, ps)
        r = two_rcpts(env, hub)
        eq(rcpt_replies(r), [(A, "continue", None), (B, "continue", None)], "rcpt replies")
        eq((r["result"], r["error"]), ("accept", None), "(result, error)")
        eq(r["recipients"], [A, B], "recipients")
        eq(r["modifications"], [], "modifications")
        eq([a["recipient"] for a in ps.attrs()], ["a@example.org", "b@example.org"],
           "recipients the policy server was asked about")
    return t


for _name, _action in [("ok", "OK"), ("dunno", "DUNNO"), ("empty", ""),
                       ("ok_with_text", "OK looks fine"),
                       ("defer_if_reject", "DEFER_IF_REJECT not now")]:
    register("policy_answer_%s_continues" % _name, continue_case(_action))


def refuse_case(action, reply, text):
    def t(env):
        ps = policyserver.start(env, for_rcpt(A, action))
        hub = policy_hub(env, ps)
        r = two_rcpts(env, hub)
        eq(rcpt_replies(r), [(A, reply, text), (B, "continue", None)],
           "rcpt replies for %r to the first recipient only" % action)
        eq((r["result"], r["error"]), ("accept", None), "(result, error)")
        eq(r["recipients"], [B], "recipients accepted")
    return t


for _name, _action, _reply, _text in [
        ("reject", "REJECT", "reject", "550 5.7.1 Access denied"),
        ("reject_with_text", "REJECT no such user here", "reject", "550 5.7.1 no such user here"),
        ("5nn_with_text", "554 5.7.1 go away", "reject", "554 5.7.1 go away"),
        ("defer", "DEFER", "tempfail", "450 4.7.1 Try again later"),
        ("defer_with_text", "DEFER come back later", "tempfail", "450 4.7.1 come back later"),
        ("defer_if_permit_with_text", "DEFER_IF_PERMIT greylisted", "tempfail",
         "450 4.7.1 greylisted"),
        ("4nn_with_text", "451 4.3.0 local trouble", "tempfail", "451 4.3.0 local trouble")]:
    register("policy_answer_%s_refuses_only_that_recipient" % _name,
             refuse_case(_action, _reply, _text))


@test
def policy_answer_reject_for_every_recipient_rejects_the_message(env):
    ps = policyserver.start(env, "REJECT")
    hub = policy_hub(env, ps)
    r = two_rcpts(env, hub)
    eq([x["reply"] for x in r["rcpts"]], ["reject", "reject"], "rcpt replies")
    eq(r["result"], "reject", "result (no recipient left: no DATA)")
    eq(len(ps.requests), 2, "requests")


@test
def policy_answer_discard_discards_the_message(env):
    ps = policyserver.start(env, for_rcpt(A, "DISCARD"))
    hub = policy_hub(env, ps)
    r = two_rcpts(env, hub)
    eq((r["result"], r["error"]), ("discard", None), "(result, error)")
    eq(r["rcpts"][0]["reply"], "discard", "reply to the first recipient")


@test
def policy_answer_hold_quarantines_the_message_with_its_text(env):
    ps = policyserver.start(env, for_rcpt(A, "HOLD suspicious sender"))
    hub = policy_hub(env, ps)
    r = two_rcpts(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    eq(rcpt_replies(r), [(A, "continue", None), (B, "continue", None)], "rcpt replies")
    eq([m for m in r["modifications"] if m["op"] == "quarantine"],
       [{"op": "quarantine", "reason": "suspicious sender"}], "quarantine modifications")
    eq(r["quarantine"], "suspicious sender", "quarantine in the report")


@test
def policy_answer_hold_without_text_still_quarantines(env):
    ps = policyserver.start(env, "HOLD")
    hub = policy_hub(env, ps)
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result")
    ok(r["quarantine"], "no quarantine for a bare HOLD: %r" % r["modifications"])


@test
def policy_answer_prepend_adds_the_header_at_the_end_of_the_message(env):
    ps = policyserver.start(env, for_rcpt(A, "PREPEND X-Policy: checked by pol"))
    hub = policy_hub(env, ps)
    r = two_rcpts(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    eq(r["recipients"], [A, B], "recipients")
    eq([m for m in r["modifications"] if m["op"] == "add-header"],
       [{"op": "add-header", "name": "X-Policy", "value": "checked by pol"}],
       "add-header modifications")
    ok(("X-Policy", "checked by pol") in [tuple(h) for h in r["headers"]],
       "X-Policy not in the message's headers: %r" % r["headers"])


@test
def policy_answer_prepend_for_two_recipients_adds_both_headers(env):
    n = {"i": 0}

    def answer(attrs):
        n["i"] += 1
        return "PREPEND X-Seen-%d: %s" % (n["i"], attrs["recipient"])
    ps = policyserver.start(env, answer)
    hub = policy_hub(env, ps)
    r = two_rcpts(env, hub)
    hdrs = [tuple(h) for h in r["headers"]]
    for h in [("X-Seen-1", "a@example.org"), ("X-Seen-2", "b@example.org")]:
        ok(h in hdrs, "%r not in the headers: %r" % (h, hdrs))


@test
def policy_answer_warn_is_logged_and_the_message_accepted(env):
    ps = policyserver.start(env, "WARN careful with this one")
    hub = policy_hub(env, ps)
    r = hub_mta(env, hub)
    eq((r["result"], r["error"], r["rcpts"][0]["reply"]), ("accept", None, "continue"),
       "(result, error, rcpt reply)")
    eq(r["modifications"], [], "modifications")
    ok(wait_log(hub, r"\bpol\b.*WARN.*careful with this one"),
       "no log line with the WARN text; stderr:\n" + hub.stderr()[-1500:])


def unsupported_case(action, word):
    def t(env):
        ps = policyserver.start(env, action)
        hub = policy_hub(env, ps)
        r = two_rcpts(env, hub)
        eq((r["result"], r["error"]), ("accept", None), "(result, error)")
        eq([x["reply"] for x in r["rcpts"]], ["continue", "continue"], "rcpt replies")
        eq(r["recipients"], [A, B], "recipients (nothing redirected or added)")
        eq(r["modifications"], [], "modifications")
        ok(wait_log(hub, r"\bpol\b.*(%s.*(unsupported|not supported)|"
                         r"(unsupported|not supported).*%s)" % (word, word), flags=re.I),
           "no 'unsupported' log line naming %s; stderr:\n%s" % (word, hub.stderr()[-1500:]))
    return t


for _action, _word in [("FILTER smtp:[127.0.0.1]:10026", "FILTER"),
                       ("REDIRECT other@example.org", "REDIRECT"),
                       ("BCC archive@example.org", "BCC"),
                       ("FROBNICATE now", "FROBNICATE")]:
    register("policy_answer_%s_is_logged_as_unsupported_and_continues" % _word.lower(),
             unsupported_case(_action, _word))


# ------------------------------------------------------------------ answers at DATA and EOM

def stage_answer_case(stage_name, action, result, text):
    def t(env):
        ps = policyserver.start(env, action)
        hub = policy_hub(env, ps, {"stage": stage_name})
        r = two_rcpts(env, hub)
        # The hub may negotiate no-reply for RCPT with the MTA (nobody answers there): none.
        ok(all(x["reply"] in ("continue", "none") for x in r["rcpts"]),
           "rcpt replies: %r" % rcpt_replies(r))
        eq((r["result"], r["reply"]), (result, text), "(result, reply) of the message")
        st = stage(r, stage_name)
        eq(st["reply"], result, "%s reply" % stage_name)
        eq(len(ps.requests), 1, "requests (one per message at %s)" % stage_name)
    return t


for _st in ("data", "eom"):
    register("policy_stage_%s_reject_rejects_the_message" % _st,
             stage_answer_case(_st, "REJECT not this one", "reject", "550 5.7.1 not this one"))
    register("policy_stage_%s_defer_tempfails_the_message" % _st,
             stage_answer_case(_st, "DEFER", "tempfail", "450 4.7.1 Try again later"))
    register("policy_stage_%s_discard_discards_the_message" % _st,
             stage_answer_case(_st, "DISCARD", "discard", None))


def stage_prepend_case(stage_name):
    def t(env):
        ps = policyserver.start(env, "PREPEND X-Policy-Stage: %s" % stage_name)
        hub = policy_hub(env, ps, {"stage": stage_name})
        r = hub_mta(env, hub)
        eq(r["result"], "accept", "result")
        ok(("X-Policy-Stage", stage_name) in [tuple(h) for h in r["headers"]],
           "header missing: %r" % r["headers"])
    return t


for _st in ("data", "eom"):
    register("policy_stage_%s_prepend_adds_the_header" % _st, stage_prepend_case(_st))


# ------------------------------------------------------------------ request attributes

SESSION = ["--client-name", "mx1.example.net", "--client-addr", "198.51.100.7",
           "--client-port", "40001", "--helo", "helo.example.net",
           "--from", "<s@example.net>", "--rcpt", A, "--rcpt", B,
           "--macro", "connect:{client_ptr}=ptr.example.net",
           "--macro", "connect:{daemon_addr}=203.0.113.1",
           "--macro", "connect:{daemon_port}=25",
           "--macro", "helo:{tls_version}=TLSv1.3",
           "--macro", "helo:{cipher}=TLS_AES_256_GCM_SHA384",
           "--macro", "helo:{cipher_bits}=256",
           "--macro", "helo:{cert_subject}=CN=client.example.net",
           "--macro", "helo:{cert_issuer}=CN=Example CA",
           "--macro", "helo:{cert_fingerprint}=AB:CD:EF",
           "--macro", "mail:{auth_author}=owner@example.net",
           "--macro", "rcpt:i=ABC123",
           "--macro", "data:i=ABC123",
           "--macro", "eoh:i=ABC123",
           "--macro", "eom:i=ABC123",
           "--auth", "alice"]

COMMON = {
    "request": "smtpd_access_policy",
    "protocol_name": "SMTP",
    "client_address": "198.51.100.7",
    "client_port": "40001",
    "client_name": "mx1.example.net",
    "reverse_client_name": "ptr.example.net",
    "helo_name": "helo.example.net",
    "sender": "s@example.net",
    "queue_id": "ABC123",
    "sasl_method": "PLAIN",
    "sasl_username": "alice",
    "sasl_sender": "owner@example.net",
    "ccert_subject": "CN=client.example.net",
    "ccert_issuer": "CN=Example CA",
    "ccert_fingerprint": "AB:CD:EF",
    "encryption_protocol": "TLSv1.3",
    "encryption_cipher": "TLS_AES_256_GCM_SHA384",
    "encryption_keysize": "256",
    "server_address": "203.0.113.1",
    "server_port": "25",
}
# Attributes every request carries, whatever their value.
EVERY = sorted(set(COMMON) | {"protocol_state", "recipient", "recipient_count", "instance",
                              "size"})


def check_common(attrs, what):
    missing = [k for k in EVERY if k not in attrs]
    eq(missing, [], "attributes missing from the %s request" % what)
    eq({k: attrs.get(k) for k in COMMON}, COMMON, "attributes of the %s request" % what)


@test
def policy_request_at_rcpt_carries_the_session_s_attributes(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps)
    r = hub_mta(env, hub, *SESSION)
    eq(r["result"], "accept", "result")
    reqs = ps.attrs()
    eq(len(reqs), 2, "requests (one per recipient)")
    for a, rcpt in zip(reqs, ["a@example.org", "b@example.org"]):
        check_common(a, "RCPT " + rcpt)
        eq((a["protocol_state"], a["recipient"], a["recipient_count"]), ("RCPT", rcpt, "0"),
           "(protocol_state, recipient, recipient_count) at RCPT")
    ok(reqs[0]["instance"], "empty instance")
    eq(reqs[1]["instance"], reqs[0]["instance"], "instance of the second RCPT (same message)")


@test
def policy_request_at_data_has_no_recipient_and_the_recipient_count(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps, {"stage": "data"})
    r = hub_mta(env, hub, *SESSION)
    eq(r["result"], "accept", "result")
    reqs = ps.attrs()
    eq(len(reqs), 1, "requests (one per message)")
    check_common(reqs[0], "DATA")
    eq((reqs[0]["protocol_state"], reqs[0]["recipient"], reqs[0]["recipient_count"]),
       ("DATA", "", "2"), "(protocol_state, recipient, recipient_count) at DATA")


@test
def policy_request_at_eom_has_no_recipient_the_recipient_count_and_the_size(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps, {"stage": "eom"})
    body = "x" * 1000 + "\\n"
    r = hub_mta(env, hub, *SESSION, "--body", body)
    eq(r["result"], "accept", "result")
    reqs = ps.attrs()
    eq(len(reqs), 1, "requests (one per message)")
    check_common(reqs[0], "END-OF-MESSAGE")
    eq((reqs[0]["protocol_state"], reqs[0]["recipient"], reqs[0]["recipient_count"]),
       ("END-OF-MESSAGE", "", "2"), "(protocol_state, recipient, recipient_count) at EOM")
    ok(re.fullmatch(r"[0-9]+", reqs[0]["size"]) and int(reqs[0]["size"]) >= 1002,
       "size at END-OF-MESSAGE is not the message size: %r" % reqs[0]["size"])


@test
def policy_request_count_at_data_counts_only_accepted_recipients(env):
    # The rcpt-stage server rejects A; a second, data-stage policy sees 1 recipient.
    ps1 = policyserver.start(env, for_rcpt(A, "REJECT"))
    ps2 = policyserver.start(env, "DUNNO")
    listen = env.unix_spec()
    text = 'manager { listen = "%s" }\n' % listen
    text += 'policy "rcpt" { socket = "%s" }\n' % ps1.spec
    text += 'policy "data" { socket = "%s", stage = "data" }\n' % ps2.spec
    env.note(text)
    hub = env.hub(text, listen=listen)
    r = two_rcpts(env, hub)
    eq(r["recipients"], [B], "recipients")
    eq([(a["protocol_state"], a["recipient_count"]) for a in ps2.attrs()], [("DATA", "1")],
       "the data-stage requests")


@test
def policy_request_queue_id_sent_at_mail_reaches_the_rcpt_request(env):
    # Sendmail sends i at MAIL (confMILTER_MACROS_ENVFROM), not at RCPT.
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps)
    r = hub_mta(env, hub, "--sendmail", "--macro", "mail:i=ABC123")
    eq(r["result"], "accept", "result")
    eq(ps.attrs()[0]["queue_id"], "ABC123", "queue_id at RCPT (i sent with MAIL only)")


@test
def policy_request_client_name_unknown_for_an_address_literal(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps)
    hub_mta(env, hub, "--client-name", "[192.0.2.99]", "--client-addr", "192.0.2.99")
    a = ps.attrs()[0]
    eq((a["client_name"], a["client_address"]), ("unknown", "192.0.2.99"),
       "(client_name, client_address)")


@test
def policy_request_attributes_the_mta_did_not_send_are_empty(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps)
    hub_mta(env, hub)
    a = ps.attrs()[0]
    for k in ("sasl_method", "sasl_username", "sasl_sender", "ccert_subject", "ccert_issuer",
              "ccert_fingerprint", "encryption_protocol", "encryption_cipher",
              "encryption_keysize", "server_port"):
        eq(a.get(k), "", "attribute %s without its macro" % k)
    eq(a["sender"], "sender@example.net", "sender (without <>)")
    eq(a["client_name"], "mx.example.net", "client_name")


@test
def policy_request_null_sender_is_empty(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps)
    hub_mta(env, hub, "--from", "<>")
    eq(ps.attrs()[0]["sender"], "", "sender of a bounce")


@test
def policy_request_instance_differs_per_message_of_a_connection(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps)
    r = hub_mta(env, hub, "--messages", "2", "--rcpt", A, "--rcpt", B)
    eq([m["result"] for m in r["messages"]], ["accept", "accept"], "message results")
    inst = [a["instance"] for a in ps.attrs()]
    eq(len(inst), 4, "requests")
    ok(inst[0] == inst[1] and inst[2] == inst[3] and inst[0] != inst[2],
       "instances (same within a message, new per message): %r" % inst)


@test
def policy_request_esmtp_parameters_make_protocol_name_esmtp_and_size(env):
    # The simulator sends MAIL without parameters; a raw MTA sends SIZE= and BODY=.
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps)
    m = RawMta(hub)
    try:
        # Offer no NR bits: the hub must answer every command (RawMta waits for each).
        nr = 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x200 | 0x40000 | 0x80000 | 0x80
        eq(m.ask(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF & ~nr))[-1], b"O", "hub's 'O'")
        m.connect()
        eq(m.ask(b"M", b"<s@example.net>\0SIZE=12345\0BODY=8BITMIME\0")[-1], b"c", "mail reply")
        eq(m.ask(b"R", b"<r@example.org>\0")[-1], b"c", "rcpt reply")
        m.send(b"Q")
        _closed_within(m.s, 3.0 * SLOW)
    finally:
        m.close()
    a = ps.attrs()[0]
    eq((a["protocol_name"], a["size"], a["sender"], a["recipient"]),
       ("ESMTP", "12345", "s@example.net", "r@example.org"),
       "(protocol_name, size, sender, recipient)")


# ------------------------------------------------------------------ the chain

@test
def policy_and_milters_share_the_chain_and_a_milter_still_sees_everything(env):
    tm1 = env.testmilter(*on("eom", "add-header:X-Before:1"))
    tm2 = env.testmilter(*on("eom", "add-header:X-After:1"))
    ps = policyserver.start(env, for_rcpt(A, "REJECT"))
    hub = policy_hub(env, ps, before=[("m1", tm1, {})], after=[("m2", tm2, {})])
    r = two_rcpts(env, hub)
    eq([x["reply"] for x in r["rcpts"]], ["reject", "continue"], "rcpt replies")
    eq(r["result"], "accept", "result")
    hdrs = [tuple(h) for h in r["headers"]]
    ok(("X-Before", "1") in hdrs and ("X-After", "1") in hdrs, "headers: %r" % hdrs)
    for tm in (tm1, tm2):
        eq(len(tm.all("eom")), 1, "EOMs of a milter in the chain")


@test
def policy_evaluate_mode_logs_but_changes_nothing(env):
    ps = policyserver.start(env, "REJECT")
    tm = env.testmilter()
    hub = policy_hub(env, ps, {"evaluate": True}, after=[("m", tm, {})])
    r = two_rcpts(env, hub)
    eq((r["result"], r["recipients"]), ("accept", [A, B]),
       "(result, recipients) with an evaluation-mode policy answering REJECT")
    eq([x["reply"] for x in r["rcpts"]], ["continue", "continue"], "rcpt replies")
    # Its REJECT counts as accept: it is done with this transaction (design §2.6).
    ok(len(ps.requests) >= 1, "the evaluation-mode policy server was never asked")
    eq(len(tm.all("eom")), 1, "EOMs of the milter")


@test
def policy_disabled_is_never_asked(env):
    ps = policyserver.start(env, "REJECT")
    hub = policy_hub(env, ps, {"enabled": False})
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result")
    eq(ps.opened, 0, "connections to a disabled policy server")


@test
def policy_evaluate_mode_drops_prepend(env):
    ps = policyserver.start(env, "PREPEND X-Evaluated: yes")
    tm = env.testmilter()
    hub = policy_hub(env, ps, {"evaluate": True}, after=[("m", tm, {})])
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result")
    eq([h for h in r["headers"] if h[0] == "X-Evaluated"], [],
       "header of an evaluation-mode PREPEND")
    eq(len(ps.requests), 1, "requests")


@test
def policy_ctl_disable_and_enable_reach_a_policy_child(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps, manager={"workers": 2})
    r = env.ctl(hub, "disable", "pol")
    eq(r.returncode, 0, "milterhubctl disable pol (%s)" % r.stderr.strip())
    rep = env.mta(hub.spec, "--sessions", 20, "--concurrency", 4)
    eq(rep["failed"], 0, "failed")
    eq(len(ps.requests), 0, "requests while disabled")
    eq(env.ctl(hub, "enable", "pol").returncode, 0, "milterhubctl enable pol")
    rep = env.mta(hub.spec, "--sessions", 20, "--concurrency", 4)
    eq(rep["failed"], 0, "failed")
    eq(len(ps.wait_requests(20)), 20, "requests after enable")


@test
def policy_block_keys_are_checked(env):
    cases = [('stage = "helo"', "stage"), ("connections = 0", "connections"),
             ("connections = 65", "connections"), ("timeouts = { write = 3 }", "write"),
             ("command = { \"/bin/true\" }", "command"), ('fallback = "maybe"', "fallback")]
    bad = []
    for i, (extra, word) in enumerate(cases):
        path = env.path("bad%d.lua" % i)
        with open(path, "w") as f:
            f.write('policy "p" { socket = "inet:10023@127.0.0.1", %s }\n' % extra)
        r = env.run("milterhub", [env.hub_bin, "--check-config", path], timeout=30)
        if r.returncode != 1 or word not in r.stderr or 'policy "p"' not in r.stderr:
            bad.append("%s: exit %s: %s" % (extra, r.returncode, r.stderr.strip()))
    eq(bad, [], "bad policy blocks not refused with a message naming the key")
    path = env.path("nosocket.lua")
    with open(path, "w") as f:
        f.write('policy "p" { stage = "data" }\n')
    r = env.run("milterhub", [env.hub_bin, "--check-config", path], timeout=30)
    eq(r.returncode, 1, "exit status without a socket")
    ok("socket" in r.stderr, "message: %r" % r.stderr)


@test
def policy_name_shares_the_milter_namespace(env):
    path = env.path("dup.lua")
    with open(path, "w") as f:
        f.write('milter "x" { socket = "unix:/a" }\n'
                'policy "x" { socket = "inet:10023@127.0.0.1" }\n')
    r = env.run("milterhub", [env.hub_bin, "--check-config", path], timeout=30)
    eq(r.returncode, 1, "exit status of --check-config with a duplicate name")
    ok("duplicate" in r.stderr, "error does not say duplicate: %r" % r.stderr)


# ------------------------------------------------------------------ when = { ... }

@test
def policy_when_s25r_asks_only_for_dynamic_looking_clients(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps, {"when": ["s25r"]})
    r = hub_mta(env, hub, "--client-name", DYNAMIC, "--client-addr", DYNAMIC_ADDR)
    eq(r["result"], "accept", "result for the dynamic client")
    eq([(a["client_name"], a["client_address"]) for a in ps.attrs()], [(DYNAMIC, DYNAMIC_ADDR)],
       "clients the policy server was asked about")
    r = hub_mta(env, hub, "--client-name", CLEAN, "--client-addr", CLEAN_ADDR)
    eq(r["result"], "accept", "result for the clean client")
    time.sleep(0.2)
    eq([a["client_name"] for a in ps.attrs()], [DYNAMIC],
       "clients asked about after a session from %s" % CLEAN)


@test
def policy_when_s25r_rejects_only_the_dynamic_client(env):
    ps = policyserver.start(env, "DEFER_IF_PERMIT greylisted")
    hub = policy_hub(env, ps, {"when": ["s25r"]})
    r = hub_mta(env, hub, "--client-name", DYNAMIC, "--client-addr", DYNAMIC_ADDR)
    eq((r["result"], r["rcpts"][0].get("text")), ("tempfail", "450 4.7.1 greylisted"),
       "dynamic client (result, rcpt text)")
    r = hub_mta(env, hub, "--client-name", CLEAN, "--client-addr", CLEAN_ADDR)
    eq(r["result"], "accept", "clean client")


# ------------------------------------------------------------------ pooling

@test
def policy_1000_sessions_reuse_at_most_connections_times_workers_connections(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps, {"connections": 4}, manager={"workers": 2})
    res = env.mta_run("--sessions", "1000", "--concurrency", "20", socket=hub.spec, timeout=120)
    try:
        s = json.loads(res.stdout)
    except ValueError:
        raise AssertionError("load --json output is not JSON: %r" % res.stdout[:400])
    eq((s["sessions"], s["ok"], s["failed"]), (1000, 1000, 0), "(sessions, ok, failed)")
    eq(s["results"].get("accept"), 1000, "results.accept")
    eq(res.returncode, 0, "exit status")
    ps.wait_requests(1000, timeout=10 * SLOW)
    eq(len(ps.requests), 1000, "requests the policy server got")
    ok(ps.opened <= 8, "%d connections opened for 1000 sessions with connections = 4 and "
       "workers = 2 (at most 8)" % ps.opened)
    ok(ps.max_open <= 8, "%d connections open at once (at most 8)" % ps.max_open)
    ok(ps.opened >= 1, ps.summary())


@test
def policy_connections_1_serializes_concurrent_requests_on_one_connection(env):
    ps = policyserver.start(env, policyserver.Delay(0.05, "DUNNO"))
    hub = policy_hub(env, ps, {"connections": 1}, manager={"workers": 1})
    res = env.mta_run("--sessions", "20", "--concurrency", "10", socket=hub.spec, timeout=60)
    s = json.loads(res.stdout)
    eq((s["ok"], s["failed"]), (20, 0), "(ok, failed)")
    eq((ps.opened, ps.max_open, len(ps.requests)), (1, 1, 20),
       "(connections opened, most open at once, requests)")


@test
def policy_connection_is_reused_across_sequential_sessions(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps, manager={"workers": 1})
    for _ in range(5):
        eq(hub_mta(env, hub)["result"], "accept", "result")
    eq((ps.opened, len(ps.requests)), (1, 5), "(connections opened, requests)")


@test
def policy_idle_connection_closed_by_the_server_is_replaced(env):
    ps = policyserver.start(env, "DUNNO")
    hub = policy_hub(env, ps, manager={"workers": 1})
    eq(hub_mta(env, hub)["result"], "accept", "first session")
    # The server drops its idle connection (as postfix's spawn(8) servers do after a while).
    with ps._lock:
        conns = list(ps._conns.values())
    for c in conns:
        c.shutdown(2)
    deadline = time.monotonic() + 3
    while ps.open_now and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    r = hub_mta(env, hub)
    eq((r["result"], r["rcpts"][0]["reply"]), ("accept", "continue"),
       "session after the server closed the idle connection (no fallback)")
    eq((ps.opened, len(ps.requests)), (2, 2), "(connections opened, requests)")


# ------------------------------------------------------------------ failures → fallback

def fail_case(behaviour, fallback, timed):
    def t(env):
        ps = policyserver.start(env, behaviour)
        hub = policy_hub(env, ps, {"fallback": fallback,
                                   "timeouts": {"connect": READ, "read": READ}})
        r = hub_mta(env, hub)
        el = r["_elapsed"]
        eq(r["error"], None, "error (the hub must answer, not the MTA time out)")
        # A fallback accept of the only child is the MTA's accept (continue with others).
        ok(r["rcpts"][0]["reply"] in (("continue", "accept") if fallback == "accept"
                                      else (fallback,)),
           "rcpt reply: %r" % (r["rcpts"][0],))
        eq(r["result"], fallback, "result")
        if timed:
            ok(READ * 0.9 <= el < (READ + 1.5) * SLOW,
               "session with a hung policy server and a %.0f s read timeout took %.2fs"
               % (READ, el))
        else:
            ok(el < 1.0 * SLOW, "session took %.2fs (waited for the read timeout?)" % el)
        eq(len(ps.requests), 1, "requests")
    return t


for _name, _beh, _timed in [("hangs", HANG, True), ("answers_garbage", GARBAGE, False),
                            ("closes_before_answering", CLOSE, False),
                            ("closes_mid_answer", PARTIAL, False)]:
    for _fb in ("tempfail", "reject", "accept"):
        register("policy_server_that_%s_gets_fallback_%s" % (_name, _fb),
                 fail_case(_beh, _fb, _timed))


def recover_case(behaviour):
    def t(env):
        n = {"i": 0}

        def answer(attrs):
            n["i"] += 1
            return behaviour if n["i"] == 1 else "REJECT second"
        ps = policyserver.start(env, answer)
        hub = policy_hub(env, ps, {"fallback": "tempfail", "timeouts": {"read": READ}},
                         manager={"workers": 1})
        r = hub_mta(env, hub)
        eq(r["result"], "tempfail", "first session (fallback)")
        r = hub_mta(env, hub)
        eq(rcpt_replies(r)[0][1:], ("reject", "550 5.7.1 second"),
           "the next session gets the server's real answer")
        conns = [q.conn for q in ps.requests]
        eq(len(conns), 2, "requests")
        ok(conns[0] != conns[1], "the second request came on the failed connection: %r" % conns)
    return t


for _name, _beh in [("garbage", GARBAGE), ("hang", HANG), ("close", CLOSE)]:
    register("policy_after_%s_the_next_session_uses_a_fresh_connection" % _name,
             recover_case(_beh))


@test
def policy_answer_to_a_session_that_went_away_is_not_given_to_the_next_one(env):
    # The first request is answered late; its MTA gives up before. The second session's
    # request goes over the same (only) connection and must get its own answer, not the
    # stale one.
    n = {"i": 0}

    def answer(attrs):
        n["i"] += 1
        return policyserver.Delay(1.0, "REJECT stale") if n["i"] == 1 else "DUNNO"
    ps = policyserver.start(env, answer)
    hub = policy_hub(env, ps, {"connections": 1, "timeouts": {"read": 5}},
                     manager={"workers": 1})
    gone = env.mta_run("--timeout", "0.3", socket=hub.spec)
    ok(gone.returncode != 0, "the impatient MTA got an answer in time: %s" % gone.stdout[:300])
    r = hub_mta(env, hub)
    eq(rcpt_replies(r), [("<rcpt@example.org>", "continue", None)],
       "the second session's rcpt reply")
    eq(r["result"], "accept", "result of the second session")
    eq(len(ps.requests), 2, "requests")
    eq(ps.opened, 1, "connections opened (the late answer is read and dropped, the "
                     "connection kept)")


@test
def policy_connection_refused_gets_the_fallback_at_once(env):
    port = free_port()
    hub = policy_hub(env, "inet:%d@127.0.0.1" % port, {"fallback": "tempfail"})
    r = hub_mta(env, hub)
    eq((r["rcpts"][0]["reply"], r["result"], r["error"]), ("tempfail", "tempfail", None),
       "(rcpt reply, result, error)")
    ok(r["_elapsed"] < 1.0 * SLOW, "session took %.2fs (retry?)" % r["_elapsed"])
    r = hub_mta(env, hub)
    eq(r["result"], "tempfail", "second session, still refused")


@test
def policy_unix_socket_missing_gets_the_fallback_accept_at_once(env):
    hub = policy_hub(env, "unix:" + env.path("nobody.sock"), {"fallback": "accept"})
    r = hub_mta(env, hub)
    eq((r["result"], r["error"]), ("accept", None), "(result, error)")
    ok(r["_elapsed"] < 1.0 * SLOW, "session took %.2fs" % r["_elapsed"])


@test
def policy_over_a_unix_socket_works(env):
    ps = policyserver.start(env, for_rcpt(A, "REJECT"), unix=True)
    hub = policy_hub(env, ps)
    r = two_rcpts(env, hub)
    eq([x["reply"] for x in r["rcpts"]], ["reject", "continue"], "rcpt replies")


@test
def policy_server_that_hangs_does_not_hold_up_20_concurrent_sessions(env):
    ps = policyserver.start(env, HANG)
    hub = policy_hub(env, ps, {"fallback": "tempfail", "timeouts": {"read": READ},
                               "connections": 4}, manager={"workers": 1})
    res = env.mta_run("--sessions", "20", "--concurrency", "20", socket=hub.spec, timeout=60)
    s = json.loads(res.stdout)
    eq((s["ok"], s["failed"], s["results"].get("tempfail")), (20, 0, 20),
       "(ok, failed, tempfail)")
    # 20 requests over 4 connections: a queued request's clock starts when it is written, and
    # a timed-out connection is replaced, so the last ones wait a few read timeouts at most.
    ok(res.elapsed < (5 * READ + 2) * SLOW, "20 sessions took %.2fs" % res.elapsed)


@test
def policy_slow_server_under_the_read_timeout_is_waited_for(env):
    ps = policyserver.start(env, policyserver.Delay(0.5, "REJECT slow but sure"))
    hub = policy_hub(env, ps, {"fallback": "accept", "timeouts": {"read": 2}})
    r = hub_mta(env, hub)
    eq(rcpt_replies(r)[0][1:], ("reject", "550 5.7.1 slow but sure"), "rcpt reply")


@test
def policy_fallbacks_and_answers_are_counted_under_the_policy_name(env):
    ps = policyserver.start(env, "REJECT")
    hub = policy_hub(env, ps, name="counted")
    hub_mta(env, hub)
    r = env.ctl(hub, "stats", "--json")
    eq(r.returncode, 0, "milterhubctl stats --json (%s)" % r.stderr.strip())
    ok('"counted"' in r.stdout, "the policy child is not in the statistics: %s" % r.stdout[:800])


# ------------------------------------------------------------------ examples

@test
def policy_example_rgrey_postgrey_lua_passes_check_config(env):
    ok(os.path.exists(EXAMPLE), "missing " + EXAMPLE)
    r = env.run("milterhub", [env.hub_bin, "--check-config", EXAMPLE], timeout=30)
    eq(r.returncode, 0, "exit status of --check-config (%s)" % r.stderr.strip())
    r = env.run("milterhub", [env.hub_bin, "--show-config", EXAMPLE], timeout=30)
    eq(r.returncode, 0, "exit status of --show-config (%s)" % r.stderr.strip())
    ok(re.search(r'^policy "postgrey" \{', r.stdout, re.M),
       "no policy block in --show-config:\n" + r.stdout)


# ------------------------------------------------------------------ real postgrey

def postgrey(env, delay=2):
    """Start /usr/sbin/postgrey on a free loopback port in the foreground, with its own db
    directory and empty whitelists. Returns (Proc, socket spec)."""
    if not os.access(POSTGREY, os.X_OK):
        skip("postgrey is not installed (scripts/install-deps installs it)")
    port = free_port()
    dbdir = env.path("postgrey")
    os.mkdir(dbdir)
    wc, wr = env.path("wl_clients"), env.path("wl_recipients")
    for p in (wc, wr):
        open(p, "w").close()
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    argv = [POSTGREY, "--inet=127.0.0.1:%d" % port, "--dbdir=" + dbdir, "--delay=%d" % delay,
            "--user=" + user, "--group=" + group, "--pidfile=" + env.path("postgrey.pid"),
            "--whitelist-clients=" + wc, "--whitelist-recipients=" + wr,
            "--auto-whitelist-clients=0", "--hostname=postgrey.test"]
    spec = "inet:%d@127.0.0.1" % port
    proc = env.start("postgrey", argv, ready=spec, wait=20.0, grace=3.0, wrap=False)
    return proc, spec


def example_config(env, listen, postgrey_spec, dkim):
    """examples/rgrey-postgrey.lua with its listen, the policy socket and the milter
    socket replaced."""
    with open(EXAMPLE) as f:
        text = f.read()
    text, n = re.subn(r'(\blisten\s*=\s*)"[^"]*"', lambda m: m.group(1) + lua(listen), text,
                      count=1)
    eq(n, 1, "listen replaced in the example")
    text, n = re.subn(r'(policy\s+"postgrey"\s*\{[^}]*?\bsocket\s*=\s*)"[^"]*"',
                      lambda m: m.group(1) + lua(postgrey_spec), text, count=1)
    eq(n, 1, "postgrey socket replaced in the example")
    names = re.findall(r'^\s*milter\s+"([^"]+)"', text, re.M)
    for name in names:
        text, n = re.subn(r'(milter\s+"%s"\s*\{[^}]*?\bsocket\s*=\s*)"[^"]*"' % re.escape(name),
                          lambda m: m.group(1) + lua(dkim.spec), text, count=1)
        eq(n, 1, "socket of milter %s replaced" % name)
    env.note("rgrey-postgrey.lua as run:\n" + text)
    return text


@test
def policy_real_postgrey_greylists_only_s25r_clients_examples_rgrey_postgrey_lua(env):
    pg, spec = postgrey(env, delay=2)
    dkim = env.testmilter(label="opendkim")
    listen = env.unix_spec()
    hub = env.hub(example_config(env, listen, spec, dkim), listen=listen)
    triplet = ["--from", "<news@example.net>", "--rcpt", "<user@example.org>"]

    # A dynamic-looking client: greylisted on the first attempt.
    t0 = time.monotonic()
    r = hub_mta(env, hub, "--client-name", DYNAMIC, "--client-addr", DYNAMIC_ADDR, *triplet)
    eq(r["rcpts"][0]["reply"], "tempfail", "first attempt of %s" % DYNAMIC)
    ok((r["rcpts"][0].get("text") or "").startswith("450 4.7.1 Greylisted"),
       "greylisting reply text: %r" % r["rcpts"][0].get("text"))
    eq(r["result"], "tempfail", "result of the first attempt")
    ok(re.search(r"action=greylist, reason=new, client_name=%s, client_address=%s, "
                 r"sender=news@example.net, recipient=user@example.org"
                 % (re.escape(DYNAMIC), re.escape(DYNAMIC_ADDR)), pg.stderr()),
       "postgrey did not log the greylisted triplet; its stderr:\n" + pg.stderr()[-1500:])

    # A clean client with the same envelope: never delayed, postgrey never asked.
    r = hub_mta(env, hub, "--client-name", CLEAN, "--client-addr", CLEAN_ADDR, *triplet)
    eq((r["result"], r["rcpts"][0]["reply"]), ("accept", "continue"), "clean client")
    ok(r["_elapsed"] < 1.0 * SLOW, "clean client's session took %.2fs" % r["_elapsed"])

    # The retry after the delay: accepted, with postgrey's X-Greylist header.
    time.sleep(max(0.0, 2.6 - (time.monotonic() - t0)))
    r = hub_mta(env, hub, "--client-name", DYNAMIC, "--client-addr", DYNAMIC_ADDR, *triplet)
    eq((r["result"], r["rcpts"][0]["reply"]), ("accept", "continue"), "retry after the delay")
    ok(any(h[0] == "X-Greylist" and "postgrey" in h[1] for h in r["headers"]),
       "no X-Greylist header after the retry: %r" % r["headers"])
    eq(len(dkim.all("eom")), 2, "messages the DKIM child got to the end")

    time.sleep(0.3)
    err = pg.stderr()
    ok(re.search(r"action=pass, reason=triplet found", err),
       "postgrey did not log the pass; its stderr:\n" + err[-1500:])
    ok(CLEAN not in err and CLEAN_ADDR not in err,
       "postgrey was asked about the clean client; its stderr:\n" + err[-1500:])
    eq(len(re.findall(r"action=", err)), 2, "requests postgrey logged")


@test
def policy_real_postgrey_too_early_retry_is_still_greylisted(env):
    pg, spec = postgrey(env, delay=60)
    hub = policy_hub(env, spec, {"when": ["s25r"]})
    args = ["--client-name", DYNAMIC, "--client-addr", DYNAMIC_ADDR]
    for attempt in (1, 2):
        if attempt == 2:
            time.sleep(1.1)  # postgrey tells a retry from a new triplet by the second
        r = hub_mta(env, hub, *args)
        eq(r["result"], "tempfail", "attempt %d within the delay" % attempt)
    ok(re.search(r"action=greylist, reason=early-retry", pg.stderr()),
       "postgrey did not log an early retry; its stderr:\n" + pg.stderr()[-1500:])
