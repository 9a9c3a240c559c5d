"""
content - headers and body as the milter receives them and as the report
holds them: one leading space removed unless HDR_LEADSPC, folded lines joined
by LF, body in chunks of at most 65535 bytes, byte-identical (FNV-1a 64).
"""

import random

from common import BODY, eq, ok, header_list, test, fnv1a64

SPACY = ["--header", "X-Two:  two", "--header", "X-Tab:\ttab", "--header", "X-None:none",
         "--header", "X-One: one"]


def fnv_of(entry):
    v = entry["body_fnv"]
    return int(v, 16) if isinstance(v, str) else v


def write_message(env, text, name="msg.eml"):
    path = env.path(name)
    with open(path, "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())
    return path


@test
def header_values_lose_one_leading_space_without_leadspc(env):
    tm = env.testmilter()
    r = env.mta(tm, *SPACY)
    got = [(h["name"], h["value"]) for h in tm.all("header")]
    eq(got, [("X-Two", " two"), ("X-Tab", "\ttab"), ("X-None", "none"), ("X-One", "one")],
       "header values the milter got")
    eq(header_list(r)[1:], [("X-Two", " two"), ("X-Tab", "\ttab"), ("X-None", "none"),
                            ("X-One", "one")], "report headers (one leading space removed)")


@test
def header_values_arrive_unaltered_with_leadspc(env):
    tm = env.testmilter("--negotiate", "leadspc")
    env.mta(tm, *SPACY)
    got = [(h["name"], h["value"]) for h in tm.all("header")]
    eq(got, [("X-Two", "  two"), ("X-Tab", "\ttab"), ("X-None", "none"), ("X-One", " one")],
       "header values the milter got with leadspc")


@test
def message_file_keeps_folded_headers_and_the_body(env):
    msg = ("From: a@example.net\r\n"
           "Subject: folded\r\n"
           " continuation\r\n"
           "\tand a tab\r\n"
           "X-Plain: plain\r\n"
           "\r\n"
           "Body line 1\r\n"
           "\r\n"
           "Body line 3\r\n")
    tm = env.testmilter()
    r = env.mta(tm, "--message-file", write_message(env, msg), "--header", "X-Ignored: yes",
                "--body", "ignored")
    got = [(h["name"], h["value"]) for h in tm.all("header")]
    eq(got, [("From", "a@example.net"), ("Subject", "folded\n continuation\n\tand a tab"),
             ("X-Plain", "plain")], "headers the milter got")
    body = "Body line 1\r\n\r\nBody line 3\r\n"
    eq(r["body"], body, "report body")
    eom = tm.first("eom")
    eq(eom["body_len"], len(body), "eom body_len")
    eq(fnv_of(eom), fnv1a64(body.encode()), "eom body_fnv")
    eq(eom["headers"], 3, "eom header count")
    eq([h[0] for h in header_list(r)], ["Received", "From", "Subject", "X-Plain"], "report header names")
    eq(header_list(r)[2], ("Subject", "folded\n continuation\n\tand a tab"), "report folded Subject")


@test
def default_body_arrives_whole(env):
    tm = env.testmilter()
    r = env.mta(tm)
    eom = tm.first("eom")
    eq(eom["body_len"], len(BODY), "body_len")
    eq(fnv_of(eom), fnv1a64(BODY.encode()), "body_fnv")
    eq(eom["headers"], 4, "header count")
    eq([b["len"] for b in tm.all("body")], [len(BODY)], "body chunks")
    eq(r["body"], BODY, "report body")


@test
def body_option_turns_newlines_into_crlf(env):
    tm = env.testmilter()
    r = env.mta(tm, "--body", "one\\ntwo\nthree\\n")
    want = "one\r\ntwo\r\nthree\r\n"
    eq(r["body"], want, "report body")
    eq(tm.first("eom")["body_len"], len(want), "body_len")
    eq(fnv_of(tm.first("eom")), fnv1a64(want.encode()), "body_fnv")


@test
def body_of_200k_is_sent_in_chunks_of_65535(env):
    body = ("y" * 98 + "\r\n") * 2000  # 200000 bytes
    tm = env.testmilter()
    r = env.mta(tm, "--message-file", write_message(env, "Subject: c\r\n\r\n" + body))
    eq([b["len"] for b in tm.all("body")], [65535, 65535, 65535, 200000 - 3 * 65535],
       "body chunk sizes")
    eq(tm.first("eom")["body_len"], 200000, "body_len")
    eq(len(r["body"]), 200000, "report body length")
    eq(len(tm.all("body")), len([s for s in r["stages"] if s["stage"] == "body"]),
       "body stages in the report")


@test
def body_of_20_mib_arrives_byte_identical(env):
    rnd = random.Random(20)
    line_pool = [bytes(rnd.getrandbits(8) % 94 + 33 for _ in range(rnd.randint(0, 200)))
                 for _ in range(512)]
    parts, size = [], 0
    target = 20 * 1024 * 1024
    i = 0
    while size < target:
        ln = line_pool[(i * 7919) % 512] + b"\r\n"
        parts.append(ln)
        size += len(ln)
        i += 1
    body = b"".join(parts)
    path = write_message(env, b"From: big@example.net\r\nSubject: 20 MiB\r\n\r\n" + body)
    tm = env.testmilter()
    r = env.mta(tm, "--message-file", path, timeout=120)
    want_fnv = fnv1a64(body)
    eq(r["result"], "accept", "result")
    eom = tm.first("eom")
    eq(eom["body_len"], len(body), "eom body_len")
    eq(fnv_of(eom), want_fnv, "eom body_fnv (FNV-1a 64 computed here)")
    chunks = [b["len"] for b in tm.all("body")]
    ok(max(chunks) <= 65535, "a body chunk exceeds 65535: %d" % max(chunks))
    eq(sum(chunks), len(body), "sum of body chunks")
    eq(len(r["body"].encode("latin-1", "replace")), len(body), "report body length")
