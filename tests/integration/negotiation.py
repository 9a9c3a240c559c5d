"""
negotiation - option negotiation and its consequences (milter-protocol.md §4,
docs/tools.md "On the wire"): the offer, the reported result, NR* events
sent but not answered, NO* events not sent, macro lists, versions, actions.
"""

from common import CONNECT_MACROS, eq, ok, register, stage, stages, stage_names, test, on

NR = {  # flag -> (stage, bit)
    "nr-conn": ("connect", 0x1000), "nr-helo": ("helo", 0x2000), "nr-mail": ("mail", 0x4000),
    "nr-rcpt": ("rcpt", 0x8000), "nr-data": ("data", 0x10000), "nr-unkn": ("unknown", 0x20000),
    "nr-eoh": ("eoh", 0x40000), "nr-body": ("body", 0x80000), "nr-hdr": ("header", 0x80),
}
NO = {
    "no-connect": ("connect", 0x1), "no-helo": ("helo", 0x2), "no-mail": ("mail", 0x4),
    "no-rcpt": ("rcpt", 0x8), "no-body": ("body", 0x10), "no-hdrs": ("header", 0x20),
    "no-eoh": ("eoh", 0x40), "no-unknown": ("unknown", 0x100), "no-data": ("data", 0x200),
}
SKIP_BIT = 0x400


def macro_names(listing):
    return sorted(n for n in listing.replace(";", " ").replace(",", " ").split() if n)


@test
def mta_offers_version_6_all_actions_all_protocol_bits(env):
    tm = env.testmilter()
    r = env.mta(tm)
    o = tm.first("optneg")
    eq((o["version"], o["actions"], o["protocol"]), (6, 0x1FF, 0x1FFFFF), "offer")
    n = r["negotiated"]
    eq((n["version"], n["actions"], n["protocol"]), (6, 0x1FF, SKIP_BIT), "negotiated")
    eq(n.get("macros") or {}, {}, "negotiated macros without lists")


@test
def version_offer_follows_the_version_option(env):
    for v in (2, 4):
        tm = env.testmilter()
        r = env.mta(tm, "--version", str(v))
        o = tm.first("optneg")
        eq(o["version"], v, "offered version")
        eq(o["actions"] & ~0x1FF, 0, "offered actions beyond 0x1FF")
        if v == 2:
            eq(o["protocol"] & ~0x7F, 0, "v2 offer holds bits beyond the v2 mask 0x7F")
        eq(r["negotiated"]["version"], v, "negotiated version")
        eq(r["result"], "accept", "result with version %d" % v)


@test
def milter_version_lower_than_the_offer_is_used(env):
    tm = env.testmilter("--negotiate", "version=4")
    r = env.mta(tm)
    eq(r["negotiated"]["version"], 4, "negotiated version")
    eq(r["result"], "accept", "result")


@test
def requested_actions_are_reported(env):
    tm = env.testmilter("--negotiate", "actions=0x11")
    r = env.mta(tm)
    eq(r["negotiated"]["actions"], 0x11, "negotiated actions")


@test
def actions_beyond_the_offer_fail_negotiation_with_exit_2(env):
    tm = env.testmilter("--negotiate", "actions=0x400")
    res = env.mta_run(socket=tm.spec)
    eq(res.returncode, 2, "exit status when negotiation fails")


@test
def leadspc_is_negotiated_and_reported(env):
    tm = env.testmilter("--negotiate", "leadspc")
    r = env.mta(tm)
    eq(r["negotiated"]["protocol"], SKIP_BIT | 0x100000, "negotiated protocol")


def make_nr(flag, stage_name, bit):
    def t(env):
        # The rule would reject; an NR event is never answered, so it cannot.
        tm = env.testmilter("--negotiate", flag, *on(stage_name, "reject"))
        r = env.mta(tm, "--unknown", "XFOO bar")
        eq(r["negotiated"]["protocol"] & bit, bit, "%s bit in the negotiated protocol" % flag)
        got = stages(r, stage_name)
        ok(got, "no %s stage in the report: %r" % (stage_name, stage_names(r)))
        eq({s["reply"] for s in got}, {"none"}, "%s stage replies" % stage_name)
        eq(r["error"], None, "error")
        eq(r["result"], "accept", "result")
        ok(stage_name in tm.cmds(), "%s not sent with %s" % (stage_name, flag))
        eq(stage(r, "eom")["reply"], "continue", "eom reply (stream still in step)")
    register("%s_event_is_sent_but_not_answered" % flag.replace("-", "_"), t)


def make_no(flag, stage_name, bit):
    def t(env):
        tm = env.testmilter("--negotiate", flag, *on(stage_name, "reject"))
        r = env.mta(tm, "--unknown", "XFOO bar")
        eq(r["negotiated"]["protocol"] & bit, bit, "%s bit in the negotiated protocol" % flag)
        cmds = tm.cmds()
        ok(stage_name not in cmds, "%s sent despite %s: %r" % (stage_name, flag, cmds))
        ok(stage_name not in stage_names(r), "report lists %s despite %s" % (stage_name, flag))
        eq(r["error"], None, "error")
        eq(r["result"], "accept", "result")
        ok("eom" in cmds, "eom not sent: %r" % cmds)
    register("%s_event_is_not_sent" % flag.replace("-", "_"), t)


for _f, (_s, _b) in NR.items():
    make_nr(_f, _s, _b)
for _f, (_s, _b) in NO.items():
    make_no(_f, _s, _b)


@test
def several_no_flags_leave_only_eom(env):
    tm = env.testmilter("--negotiate", "no-connect,no-helo,no-mail,no-rcpt,no-data,no-hdrs,"
                        "no-eoh,no-body,no-unknown")
    r = env.mta(tm, "--unknown", "XFOO bar")
    eq([c for c in tm.cmds() if c not in ("optneg", "abort", "quit", "close")], ["eom"],
       "events sent")
    eq(stage_names(r), ["eom"], "report stages")
    eq(r["result"], "accept", "result")


@test
def macro_list_replaces_the_connect_defaults(env):
    tm = env.testmilter("--negotiate", "macros=connect:{client_addr} j")
    r = env.mta(tm)
    eq(tm.first("connect")["macros"], {"{client_addr}": "192.0.2.1", "j": "mta.example.org"},
       "connect macros")
    got = r["negotiated"].get("macros") or {}
    eq(sorted(got), ["connect"], "stages in negotiated macros")
    eq(macro_names(got["connect"]), ["j", "{client_addr}"], "negotiated connect list")
    # Other stages keep the defaults.
    eq(sorted(tm.first("rcpt")["macros"]), ["{rcpt_addr}"], "rcpt macros (defaults)")


@test
def macro_list_with_semicolons_and_names_without_value(env):
    # i has no value before DATA: not sent at RCPT.
    tm = env.testmilter("--negotiate", "macros=rcpt:{rcpt_addr};i;{client_name}")
    env.mta(tm)
    m = tm.first("rcpt")["macros"]
    eq(sorted(m), ["{client_name}", "{rcpt_addr}"], "rcpt macro names")
    eq(m["{client_name}"], "mx.example.net", "{client_name}")


@test
def macro_lists_for_eoh_and_eom_travel_with_header_and_body(env):
    tm = env.testmilter("--negotiate", "macros=eoh:j {client_addr}",
                        "--negotiate", "macros=eom:{daemon_name}")
    r = env.mta(tm)
    want_eoh = {"j": "mta.example.org", "{client_addr}": "192.0.2.1"}
    for h in tm.all("header"):
        eq(h["macros"], want_eoh, "macros before header %s ('L' carries the EOH list)" % h["name"])
    eq(tm.first("eoh")["macros"], want_eoh, "eoh macros")
    eq(tm.first("body")["macros"], {"{daemon_name}": "mta.example.org"},
       "macros before body ('B' carries the EOM list)")
    eq(tm.first("eom")["macros"], {"{daemon_name}": "mta.example.org"}, "eom macros")
    eq(sorted(r["negotiated"]["macros"]), ["eoh", "eom"], "stages in negotiated macros")


@test
def macro_option_value_is_sent_when_the_milter_lists_it(env):
    tm = env.testmilter("--negotiate", "macros=connect:{client_connections} j")
    env.mta(tm, "--macro", "connect:{client_connections}=7")
    eq(tm.first("connect")["macros"], {"{client_connections}": "7", "j": "mta.example.org"},
       "connect macros")


@test
def connect_defaults_without_a_list(env):
    tm = env.testmilter()
    env.mta(tm)
    eq(tm.first("connect")["macros"], CONNECT_MACROS, "connect macros")


@test
def postfix_flavour_sends_empty_macro_packets(env):
    # helo and unknown lists have no value: Postfix still sends the 'D'.
    tm = env.testmilter()
    env.mta(tm, "--unknown", "XFOO bar")
    eq(tm.first("helo").get("macros"), {}, "helo macros (empty 'D' expected)")
    eq(tm.first("unknown").get("macros"), {}, "unknown macros (empty 'D' expected)")


@test
def version_2_offer_gets_no_skip_and_no_unknown_or_data(env):
    # v2 knows neither 'U' nor 'T' (milter-protocol.md §4.2) nor SKIP (0x400).
    tm = env.testmilter()
    r = env.mta(tm, "--version", "2", "--unknown", "XFOO bar")
    eq(r["negotiated"]["protocol"] & SKIP_BIT, 0, "SKIP in a v2 negotiation")
    cmds = tm.cmds()
    ok("unknown" not in cmds, "'U' sent to a v2 milter: %r" % cmds)
    ok("data" not in cmds, "'T' sent to a v2 milter: %r" % cmds)
    eq(r["result"], "accept", "result")
    ok("eom" in cmds, "eom not reached: %r" % cmds)


@test
def version_3_offer_sends_unknown_but_no_data(env):
    tm = env.testmilter()
    env.mta(tm, "--version", "3", "--unknown", "XFOO bar")
    cmds = tm.cmds()
    ok("unknown" in cmds, "'U' not sent to a v3 milter: %r" % cmds)
    ok("data" not in cmds, "'T' sent to a v3 milter: %r" % cmds)


@test
def disabled_envelope_events_still_get_their_macro_packet_in_postfix_flavour(env):
    # The 'D' for C and R is sent though C and R are not; the testmilter
    # logs every pair received since the previous command with the next one.
    tm = env.testmilter("--negotiate", "no-connect,no-rcpt")
    env.mta(tm)
    helo = tm.first("helo").get("macros", {})
    eq({k: helo.get(k) for k in CONNECT_MACROS}, CONNECT_MACROS,
       "connect macros arriving with helo (C disabled)")
    ok("{rcpt_addr}" in tm.first("data").get("macros", {}),
       "rcpt macros did not arrive with data (R disabled): %r" % tm.first("data"))


@test
def disabled_header_and_body_events_send_no_macro_packet(env):
    tm = env.testmilter("--negotiate", "no-hdrs,no-body")
    env.mta(tm)
    lines = {json_cmd(ln): ln for ln in tm.raw_lines()}
    eq(lines["eoh"].count('"i":'), 1, "i pairs before eoh (no 'D' for disabled 'L'): %s" % lines["eoh"])
    eq(lines["eom"].count('"i":'), 1, "i pairs before eom (no 'D' for disabled 'B'): %s" % lines["eom"])


def json_cmd(line):
    import json
    return json.loads(line)["cmd"]


@test
def milter_answering_version_2_gets_no_unknown_or_data(env):
    # Postfix stops sending events the milter's lower version lacks (§4.2).
    tm = env.testmilter("--negotiate", "version=2")
    r = env.mta(tm, "--unknown", "XFOO bar")
    eq(r["negotiated"]["version"], 2, "negotiated version")
    cmds = tm.cmds()
    ok("unknown" not in cmds and "data" not in cmds, "U/T sent to a v2 milter: %r" % cmds)
    eq(r["result"], "accept", "result")
