/*
 * test_codec_roundtrip - every command and reply survives encode +
 * decode (protocol/mh_codec.h), a decoded reply re-encodes to the same
 * bytes, and the reply code classes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec_testutil.h"

/* ---------------------------------------------------- command round trips */

static void cmd_empty_codes_round_trip(void **state)
{
	struct fx *f = *state;
	const uint8_t codes[] = {MH_CMD_ABORT, MH_CMD_QUIT_NC, MH_CMD_EOH, MH_CMD_QUIT,
	                         MH_CMD_DATA};
	size_t i;

	for (i = 0; i < sizeof(codes); i++) {
		const uint8_t wire[] = {0, 0, 0, 1, codes[i]};

		mh_codec_put_empty(&f->b, codes[i]);
		assert_bytes(&f->b, wire, sizeof(wire));
		assert_int_equal(cmd_of(f), MH_CODEC_OK);
		assert_int_equal(f->cmd.code, codes[i]);
	}
}

static void cmd_body_and_eob_round_trip(void **state)
{
	struct fx *f = *state;

	mh_codec_put_raw(&f->b, MH_CMD_BODY, "a\0b\r\n", 5);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_BODY);
	assert_int_equal(f->cmd.u.body.len, 5);
	assert_memory_equal(f->cmd.u.body.data, "a\0b\r\n", 5);

	mh_codec_put_empty(&f->b, MH_CMD_EOB);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_EOB);
	assert_int_equal(f->cmd.u.body.len, 0);

	/* libmilter takes data in 'E' as the final chunk. */
	mh_codec_put_raw(&f->b, MH_CMD_EOB, "tail", 4);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.body.len, 4);
	assert_memory_equal(f->cmd.u.body.data, "tail", 4);
}

static void cmd_connect_round_trip_all_families(void **state)
{
	struct fx *f = *state;

	/* protocol doc 2.1 example */
	mh_codec_put_connect(&f->b, "mx.example.com", '4', 25, "192.0.2.1");
	assert_bytes(&f->b, RAW("\0\0\0\x1d"
	                        "C"
	                        "mx.example.com\0"
	                        "4"
	                        "\0\x19"
	                        "192.0.2.1\0"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_CONNECT);
	assert_string_equal(f->cmd.u.connect.hostname, "mx.example.com");
	assert_int_equal(f->cmd.u.connect.family, '4');
	assert_int_equal(f->cmd.u.connect.port, 25);
	assert_string_equal(f->cmd.u.connect.address, "192.0.2.1");

	mh_codec_put_connect(&f->b, "[2001:db8::1]", '6', 65535, "2001:db8::1");
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.connect.family, '6');
	assert_int_equal(f->cmd.u.connect.port, 65535);
	assert_string_equal(f->cmd.u.connect.address, "2001:db8::1");

	mh_codec_put_connect(&f->b, "localhost", 'L', 0, "/run/postfix/socket");
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.connect.family, 'L');
	assert_string_equal(f->cmd.u.connect.address, "/run/postfix/socket");

	/* 'U': no port, no address on the wire */
	mh_codec_put_connect(&f->b, "unknown", 'U', 25, "ignored");
	assert_bytes(&f->b, RAW("\0\0\0\x0a"
	                        "C"
	                        "unknown\0"
	                        "U"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.connect.family, 'U');
	assert_int_equal(f->cmd.u.connect.port, 0);
	assert_null(f->cmd.u.connect.address);
	assert_string_equal(f->cmd.u.connect.hostname, "unknown");
}

static void cmd_macro_round_trip(void **state)
{
	struct fx *f = *state;
	const char *pairs[] = {"j", "mx.example.org", "{client_addr}", "192.0.2.1"};

	mh_codec_put_macro(&f->b, 'C', pairs, 2);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_MACRO);
	assert_int_equal(f->cmd.u.macro.stage, 'C');
	assert_int_equal(f->cmd.u.macro.npairs, 2);
	assert_string_equal(f->cmd.u.macro.pairs[0], "j");
	assert_string_equal(f->cmd.u.macro.pairs[1], "mx.example.org");
	assert_string_equal(f->cmd.u.macro.pairs[2], "{client_addr}");
	assert_string_equal(f->cmd.u.macro.pairs[3], "192.0.2.1");

	/* Postfix: no pairs at all, and stage bytes outside SMFIM ('L'). */
	mh_codec_put_macro(&f->b, 'L', NULL, 0);
	assert_bytes(&f->b, RAW("\0\0\0\2DL"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.macro.stage, 'L');
	assert_int_equal(f->cmd.u.macro.npairs, 0);
}

static void cmd_macro_odd_count_drops_the_lone_name(void **state)
{
	struct fx *f = *state;

	assert_int_equal(raw_cmd(f, MH_CMD_MACRO, RAW("Mi\0Q1\0{auth_type}\0")), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.macro.stage, 'M');
	assert_int_equal(f->cmd.u.macro.npairs, 1);
	assert_string_equal(f->cmd.u.macro.pairs[0], "i");
	assert_string_equal(f->cmd.u.macro.pairs[1], "Q1");
	assert_null(f->cmd.u.macro.pairs[2]);
}

static void cmd_helo_unknown_header_round_trip(void **state)
{
	struct fx *f = *state;

	mh_codec_put_str(&f->b, MH_CMD_HELO, "mx.example.net");
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_HELO);
	assert_string_equal(f->cmd.u.helo.name, "mx.example.net");

	mh_codec_put_str(&f->b, MH_CMD_UNKNOWN, "XFOO bar");
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_UNKNOWN);
	assert_string_equal(f->cmd.u.unknown.line, "XFOO bar");

	mh_codec_put_header(&f->b, MH_CMD_HEADER, "Subject", "two\n\tlines");
	assert_bytes(&f->b, RAW("\0\0\0\x14LSubject\0two\n\tlines\0"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_HEADER);
	assert_string_equal(f->cmd.u.header.name, "Subject");
	assert_string_equal(f->cmd.u.header.value, "two\n\tlines");

	mh_codec_put_header(&f->b, MH_CMD_HEADER, "X-Empty", "");
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_string_equal(f->cmd.u.header.value, "");
}

static void cmd_mail_rcpt_round_trip(void **state)
{
	struct fx *f = *state;
	const char *mail[] = {"<a@example.net>", "SIZE=10", "BODY=8BITMIME"};
	const char *null_sender[] = {""};
	const char *rcpt[] = {"<b@example.org>", "NOTIFY=NEVER"};

	mh_codec_put_strs(&f->b, MH_CMD_MAIL, mail, 3);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_MAIL);
	assert_int_equal(f->cmd.u.env.argc, 3);
	assert_string_equal(f->cmd.u.env.argv[0], "<a@example.net>");
	assert_string_equal(f->cmd.u.env.argv[2], "BODY=8BITMIME");

	/* non_smtpd_milters: the null sender is one NUL */
	mh_codec_put_strs(&f->b, MH_CMD_MAIL, null_sender, 1);
	assert_bytes(&f->b, RAW("\0\0\0\2M\0"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.env.argc, 1);
	assert_string_equal(f->cmd.u.env.argv[0], "");

	mh_codec_put_strs(&f->b, MH_CMD_RCPT, rcpt, 2);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_RCPT);
	assert_int_equal(f->cmd.u.env.argc, 2);
	assert_string_equal(f->cmd.u.env.argv[1], "NOTIFY=NEVER");
}

/* ------------------------------------------------------ reply round trips */

static void reply_empty_codes_round_trip(void **state)
{
	struct fx *f = *state;
	const uint8_t codes[] = {MH_REP_SHUTDOWN, MH_REP_ACCEPT,    MH_REP_CONTINUE,
	                         MH_REP_DISCARD,  MH_REP_CONN_FAIL, MH_REP_PROGRESS,
	                         MH_REP_REJECT,   MH_REP_SKIP,      MH_REP_TEMPFAIL};
	size_t i;

	for (i = 0; i < sizeof(codes); i++) {
		mh_codec_put_empty(&f->b, codes[i]);
		assert_int_equal(reply_of(f), MH_CODEC_OK);
		assert_int_equal(f->rep.code, codes[i]);
	}
}

static void reply_rcpt_edits_round_trip(void **state)
{
	struct fx *f = *state;
	const char *one[] = {"<new@example.org>"};
	const char *two[] = {"<new@example.org>", "NOTIFY=NEVER ORCPT=rfc822;x@y"};

	mh_codec_put_str(&f->b, MH_REP_ADDRCPT, "<new@example.org>");
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_ADDRCPT);
	assert_string_equal(f->rep.u.rcpt.rcpt, "<new@example.org>");
	assert_null(f->rep.u.rcpt.args);

	mh_codec_put_str(&f->b, MH_REP_DELRCPT, "<old@example.org>");
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_DELRCPT);
	assert_string_equal(f->rep.u.rcpt.rcpt, "<old@example.org>");

	mh_codec_put_strs(&f->b, MH_REP_ADDRCPT_PAR, one, 1);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_ADDRCPT_PAR);
	assert_null(f->rep.u.rcpt.args);

	mh_codec_put_strs(&f->b, MH_REP_ADDRCPT_PAR, two, 2);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_string_equal(f->rep.u.rcpt.rcpt, "<new@example.org>");
	assert_string_equal(f->rep.u.rcpt.args, "NOTIFY=NEVER ORCPT=rfc822;x@y");
}

static void reply_chgfrom_round_trip(void **state)
{
	struct fx *f = *state;
	const char *one[] = {"<s@example.net>"};
	const char *two[] = {"<s@example.net>", "RET=HDRS ENVID=x"};

	mh_codec_put_strs(&f->b, MH_REP_CHGFROM, one, 1);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_CHGFROM);
	assert_string_equal(f->rep.u.chgfrom.addr, "<s@example.net>");
	assert_null(f->rep.u.chgfrom.args);

	mh_codec_put_strs(&f->b, MH_REP_CHGFROM, two, 2);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_string_equal(f->rep.u.chgfrom.args, "RET=HDRS ENVID=x");
}

static void reply_header_edits_round_trip(void **state)
{
	struct fx *f = *state;

	mh_codec_put_header(&f->b, MH_REP_ADDHEADER, "X-Spam", "no");
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_ADDHEADER);
	assert_int_equal(f->rep.u.header.index, 0);
	assert_string_equal(f->rep.u.header.name, "X-Spam");
	assert_string_equal(f->rep.u.header.value, "no");

	mh_codec_put_index_header(&f->b, MH_REP_INSHEADER, 0, "X-Top", " v");
	assert_bytes(&f->b, RAW("\0\0\0\x0e"
	                        "i"
	                        "\0\0\0\0"
	                        "X-Top\0 v\0"));
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_INSHEADER);
	assert_int_equal(f->rep.u.header.index, 0);
	assert_string_equal(f->rep.u.header.value, " v");

	mh_codec_put_index_header(&f->b, MH_REP_CHGHEADER, 0x01020304, "Subject", "");
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_CHGHEADER);
	assert_int_equal(f->rep.u.header.index, 0x01020304);
	assert_string_equal(f->rep.u.header.name, "Subject");
	assert_string_equal(f->rep.u.header.value, "");
}

static void reply_body_quarantine_replycode_round_trip(void **state)
{
	struct fx *f = *state;

	mh_codec_put_raw(&f->b, MH_REP_REPLBODY, "x\0y\r\n", 5);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_REPLBODY);
	assert_int_equal(f->rep.u.replbody.len, 5);
	assert_memory_equal(f->rep.u.replbody.data, "x\0y\r\n", 5);

	mh_codec_put_raw(&f->b, MH_REP_REPLBODY, NULL, 0);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.u.replbody.len, 0);

	mh_codec_put_str(&f->b, MH_REP_QUARANTINE, "suspicious");
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_QUARANTINE);
	assert_string_equal(f->rep.u.quarantine.reason, "suspicious");
}

static void reply_replycode_round_trip(void **state)
{
	struct fx *f = *state;
	const char *ml = "450-4.2.0 first\r\n450-4.2.0 second\r\n450 4.2.0 last";

	assert_int_equal(mh_codec_put_replycode(&f->b, "550 5.7.1 no"), MH_CODEC_OK);
	assert_bytes(&f->b, RAW("\0\0\0\x0ey550 5.7.1 no\0"));
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_REPLYCODE);
	assert_string_equal(f->rep.u.replycode.text, "550 5.7.1 no");

	assert_int_equal(mh_codec_put_replycode(&f->b, ml), MH_CODEC_OK);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_string_equal(f->rep.u.replycode.text, ml);
}

/* Every reply code: decode, mh_codec_put_reply, byte-identical frame. */
static void put_reply_re_encodes_every_decoded_reply(void **state)
{
	struct fx *f = *state;
	static const struct {
		uint8_t code;
		const char *payload;
		size_t len;
	} cases[] = {
	    {'a', "", 0},
	    {'c', "", 0},
	    {'d', "", 0},
	    {'r', "", 0},
	    {'t', "", 0},
	    {'s', "", 0},
	    {'p', "", 0},
	    {'4', "", 0},
	    {'f', "", 0},
	    {'+', "<a@b>", 6},
	    {'-', "<a@b>", 6},
	    {'2', "<a@b>", 6},
	    {'2', "<a@b>\0NOTIFY=NEVER", 19},
	    {'e', "<>", 3},
	    {'e', "<s@x>\0RET=HDRS ENVID=1", 23},
	    {'b', "x\0y\r\n", 5},
	    {'b', "", 0},
	    {'h', "X-A\0 v", 7},
	    {'i', "\0\0\0\x03X-B\0v\nw", 12},
	    {'m', "\0\0\0\x01Subject\0", 13},
	    {'q', "held", 5},
	    {'y', "550 5.7.1 no", 13},
	    {'y', "421-4.3.0 a\r\n421 4.3.0 b", 25},
	    {'O', "\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff", 12},
	    {'O',
	     "\0\0\0\x06"
	     "\0\0\x01\0"
	     "\0\0\0\0"
	     "\0\0\0\x03"
	     "{rcpt_addr}",
	     28},
	};
	struct mh_buf orig = MH_BUF_INIT;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mh_buf_reset(&orig);
		mh_codec_put_raw(&orig, cases[i].code, cases[i].payload, cases[i].len);
		mh_buf_append(&f->b, mh_buf_head(&orig), mh_buf_size(&orig));
		assert_int_equal(reply_of(f), MH_CODEC_OK);
		mh_codec_put_reply(&f->b, &f->rep);
		assert_bytes(&f->b, mh_buf_head(&orig), mh_buf_size(&orig));
		mh_buf_reset(&f->b);
	}
	mh_buf_free(&orig);
}

static void reply_classes(void **state)
{
	const char *decisions = "acdrtys4f";
	const char *edits = "+-2behim";
	int c;

	(void)state;
	for (c = 0; c < 256; c++) {
		int d = c != 0 && strchr(decisions, c) != NULL;
		int m = c != 0 && strchr(edits, c) != NULL;

		assert_int_equal(mh_reply_is_decision((uint8_t)c), d);
		assert_int_equal(mh_reply_is_modification((uint8_t)c), m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST(cmd_empty_codes_round_trip),
	    FX_TEST(cmd_body_and_eob_round_trip),
	    FX_TEST(cmd_connect_round_trip_all_families),
	    FX_TEST(cmd_macro_round_trip),
	    FX_TEST(cmd_macro_odd_count_drops_the_lone_name),
	    FX_TEST(cmd_helo_unknown_header_round_trip),
	    FX_TEST(cmd_mail_rcpt_round_trip),
	    FX_TEST(reply_empty_codes_round_trip),
	    FX_TEST(reply_rcpt_edits_round_trip),
	    FX_TEST(reply_chgfrom_round_trip),
	    FX_TEST(reply_header_edits_round_trip),
	    FX_TEST(reply_body_quarantine_replycode_round_trip),
	    FX_TEST(reply_replycode_round_trip),
	    FX_TEST(put_reply_re_encodes_every_decoded_reply),
	    FX_TEST(reply_classes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
