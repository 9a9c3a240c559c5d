/*
 * test_codec_malformed - every malformation of a command or reply maps
 * to its own error (protocol/mh_codec.h), the SMTP reply text rules,
 * and the error names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec_testutil.h"

/* ------------------------------------------------------------ malformed */

struct bad_case {
	int reply; /* 0: decode as command, 1: as reply */
	uint8_t code;
	const char *payload;
	size_t len;
};

#define CMD(c, s)                                                                                  \
	{                                                                                          \
		0, (c), (s), sizeof(s) - 1                                                         \
	}
#define REP(c, s)                                                                                  \
	{                                                                                          \
		1, (c), (s), sizeof(s) - 1                                                         \
	}

static void expect_all(struct fx *f, const struct bad_case *cases, size_t n, int err)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		const struct bad_case *c = &cases[i];

		if (c->reply)
			rc = raw_reply(f, c->code, (const uint8_t *)c->payload, c->len);
		else
			rc = raw_cmd(f, c->code, (const uint8_t *)c->payload, c->len);
		if (rc != err)
			fail_msg("case %zu ('%c' as %s): got %d (%s), want %d (%s)", i, c->code,
			         c->reply ? "reply" : "command", rc, mh_codec_strerror(rc), err,
			         mh_codec_strerror(err));
	}
}

static void missing_nul_is_enonul(void **state)
{
	static const struct bad_case cases[] = {
	    CMD('H', "mx.example.net"),
	    CMD('U', "XFOO"),
	    CMD('L', "Subject"),
	    CMD('L', "Subject\0value"),
	    CMD('M', "<a@b>"),
	    CMD('M', "<a@b>\0SIZE=1"),
	    CMD('R', "<a@b>"),
	    CMD('D', "Cj"),
	    CMD('D', "Cj\0value"),
	    CMD('C', "host"),
	    CMD('C', "host\0"
	             "4\0\x19"
	             "192.0.2.1"),
	    CMD('O', "\0\0\0\6\0\0\1\xff\0\x1f\xff\xff\0\0\0\0{j}"),
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\3{rcpt_addr}"),
	    REP('+', "<a@b>"),
	    REP('-', "<a@b>"),
	    REP('2', "<a@b>\0NOTIFY=NEVER"),
	    REP('e', "<a@b>"),
	    REP('h', "X-A\0value"),
	    REP('i', "\0\0\0\1X-A\0value"),
	    REP('m', "\0\0\0\1X-A"),
	    REP('q', "reason"),
	    REP('y', "550 5.7.1 no"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_ENONUL);
}

static void payload_on_empty_codes_is_esize(void **state)
{
	static const struct bad_case cases[] = {
	    CMD('A', "x"), CMD('K', "x"),  CMD('N', "\0"), CMD('Q', "x"), CMD('T', "x"),
	    REP('a', "x"), REP('c', "\0"), REP('d', "x"),  REP('f', "x"), REP('p', "x"),
	    REP('r', "x"), REP('s', "x"),  REP('t', "x"),  REP('4', "x"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_ESIZE);
}

static void wrong_layout_size_is_esize(void **state)
{
	static const struct bad_case cases[] = {
	    /* a required field is absent */
	    CMD('H', ""),
	    CMD('U', ""),
	    CMD('L', ""),
	    CMD('L', "Subject\0"),
	    CMD('M', ""),
	    CMD('R', ""),
	    CMD('D', ""),
	    CMD('C', ""),
	    CMD('C', "host\0"),
	    CMD('C', "host\0"
	             "4"),
	    CMD('C', "host\0"
	             "4\0"),
	    CMD('C', "host\0"
	             "6\0\x19"),
	    REP('+', ""),
	    REP('h', "X-A\0"),
	    REP('i', "\0\0\0"),
	    REP('m', "\0\0\0\1"),
	    REP('m', "\0\0\0\1X-A\0"),
	    REP('y', ""),
	    /* bytes after the last field */
	    CMD('H', "a\0b\0"),
	    CMD('U', "a\0b"),
	    CMD('L', "a\0b\0c\0"),
	    CMD('C', "host\0U\0"),
	    CMD('C', "host\0"
	             "4\0\x19"
	             "192.0.2.1\0x"),
	    REP('+', "a\0b\0"),
	    REP('-', "a\0b\0"),
	    REP('2', "a\0b\0c\0"),
	    REP('e', "a\0b\0c\0"),
	    REP('h', "a\0b\0c\0"),
	    REP('i', "\0\0\0\0a\0b\0c\0"),
	    REP('q', "a\0b\0"),
	    REP('y', "550 no\0x\0"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_ESIZE);
}

static void optneg_short_or_bad_trailer_is_esize(void **state)
{
	static const struct bad_case cases[] = {
	    CMD('O', ""),
	    CMD('O', "\0\0\0\6\0\0\1\xff\0\x1f\xff"), /* 11 bytes */
	    REP('O', "\0\0\0\6\0\0\1\xff\0\x1f\xff"),
	    REP('O', "\0\0\0\6"),
	    /* trailer: a partial stage word, or a stage without its list */
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0"),
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0"),
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\1"),
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\1{j}\0\0\0"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_ESIZE);
}

static void optneg_trailer_bad_stage_is_evalue(void **state)
{
	static const struct bad_case cases[] = {
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\7{j}\0"),
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\xff\xff\xff\xff{j}\0"),
	    CMD('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\x08{j}\0"),
	    /* one list per stage */
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\3{a}\0\0\0\0\3{b}\0"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_EVALUE);
}

static void connect_unknown_family_is_efamily(void **state)
{
	static const struct bad_case cases[] = {
	    CMD('C', "host\0"
	             "5\0\x19"
	             "192.0.2.1\0"),
	    CMD('C', "host\0"
	             "u"),
	    CMD('C', "host\0\0"),
	    CMD('C', "host\0I\0\x19"
	             "192.0.2.1\0"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_EFAMILY);
}

static void too_many_strs_is_etoomany(void **state)
{
	struct fx *f = *state;
	const char *argv[MH_ARGS_MAX + 1];
	size_t i;

	for (i = 0; i < MH_ARGS_MAX + 1; i++)
		argv[i] = i % 2 ? "value" : "{name}";

	mh_codec_put_strs(&f->b, MH_CMD_MAIL, argv, MH_ARGS_MAX);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.env.argc, MH_ARGS_MAX);
	mh_codec_put_strs(&f->b, MH_CMD_MAIL, argv, MH_ARGS_MAX + 1);
	assert_int_equal(cmd_of(f), MH_CODEC_ETOOMANY);
	mh_codec_put_strs(&f->b, MH_CMD_RCPT, argv, MH_ARGS_MAX + 1);
	assert_int_equal(cmd_of(f), MH_CODEC_ETOOMANY);

	/* 'D': MH_ARGS_MAX strs (32 pairs) fit, one more name does not */
	mh_codec_put_macro(&f->b, 'C', argv, MH_ARGS_MAX / 2);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.macro.npairs, MH_ARGS_MAX / 2);
	mh_buf_append_u32be(&f->b, 1 + 1 + (MH_ARGS_MAX + 1) * 2);
	mh_buf_append(&f->b, "DC", 2);
	for (i = 0; i < MH_ARGS_MAX + 1; i++)
		mh_buf_append(&f->b, "x", 2);
	assert_int_equal(cmd_of(f), MH_CODEC_ETOOMANY);
}

static void unknown_code_is_eunknown(void **state)
{
	static const struct bad_case cases[] = {
	    CMD('Z', ""), CMD('a', ""), CMD('c', ""), CMD('l', ""), CMD(0, ""), CMD('G', "x"),
	    REP('Z', ""), REP('A', ""), REP('C', ""), REP('l', ""), REP(0, ""), REP('y' + 1, ""),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_EUNKNOWN);
}

static void malformed_replycode_is_evalue(void **state)
{
	static const struct bad_case cases[] = {
	    REP('y', "250 ok\0"),
	    REP('y', "550\r\n\0"),
	    REP('y', "550-5.7.1 a\0"),
	    REP('y', "550 4.7.1 class mismatch\0"),
	};
	struct fx *f = *state;

	expect_all(f, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_EVALUE);
	assert_int_equal(mh_codec_put_replycode(&f->b, "250 ok"), MH_CODEC_EVALUE);
	assert_int_equal(mh_buf_size(&f->b), 0);
}

static void replytext_rules(void **state)
{
	static const struct {
		const char *text;
		int valid;
	} cases[] = {
	    {"550 5.7.1 Command rejected", 1},
	    {"451 4.7.1 Service unavailable", 1},
	    {"550 rejected", 1}, /* enhanced code is optional */
	    {"550", 1},
	    {"550 ", 1},
	    {"421 4.3.0 closing", 1},
	    {"550-5.7.1 a\r\n550 5.7.1 b", 1},
	    {"550-a\r\n550-b\r\n550 c", 1},
	    {"550 a\r\n550 b", 1}, /* ' ' accepted on non-last lines */
	    {"550-a\r\n550", 1},
	    {"450-4.2.0 x\r\n451 4.2.0 y", 1},
	    {"", 0},
	    {"55", 0},
	    {"250 ok", 0},
	    {"650 x", 0},
	    {"5x0 x", 0},
	    {"55a x", 0},
	    {"550x", 0},
	    {"550_x", 0},
	    {"550-x", 0}, /* '-' on the last line */
	    {"550 x\r\n", 0}, /* CRLF after the last line */
	    {"550 x\r\n\r\n", 0},
	    {"550 x\n550 y", 0}, /* bare LF */
	    {"550 x\r550 y", 0}, /* bare CR */
	    {"550 x\r\n250 y", 0},
	    {"550\r\n550 y", 0}, /* non-last line needs ' ' or '-' */
	    {"550 4.7.1 x", 0}, /* enhanced code of another class */
	    {"450 5.7.1 x", 0},
	    {"550-5.7.1 a\r\n550 4.7.1 b", 0},
	    {"550 x\r\n\r\n550 y", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (mh_codec_valid_replytext(cases[i].text) != cases[i].valid)
			fail_msg("\"%s\": want %d", cases[i].text, cases[i].valid);
	assert_false(mh_codec_valid_replytext(NULL));
}

static void strerror_names_every_error(void **state)
{
	const int errs[] = {MH_CODEC_OK,      MH_CODEC_EZERO,    MH_CODEC_ETOOBIG,
	                    MH_CODEC_ENONUL,  MH_CODEC_ESIZE,    MH_CODEC_EUNKNOWN,
	                    MH_CODEC_EFAMILY, MH_CODEC_ETOOMANY, MH_CODEC_EVALUE};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		assert_non_null(mh_codec_strerror(errs[i]));
		for (j = 0; j < i; j++)
			assert_string_not_equal(mh_codec_strerror(errs[i]),
			                        mh_codec_strerror(errs[j]));
	}
	assert_string_equal(mh_codec_strerror(MH_CODEC_EZERO), "frame length 0");
	assert_string_equal(mh_codec_strerror(-100), "unknown codec error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST(missing_nul_is_enonul),
	    FX_TEST(payload_on_empty_codes_is_esize),
	    FX_TEST(wrong_layout_size_is_esize),
	    FX_TEST(optneg_short_or_bad_trailer_is_esize),
	    FX_TEST(optneg_trailer_bad_stage_is_evalue),
	    FX_TEST(connect_unknown_family_is_efamily),
	    FX_TEST(too_many_strs_is_etoomany),
	    FX_TEST(unknown_code_is_eunknown),
	    FX_TEST(malformed_replycode_is_evalue),
	    FX_TEST(replytext_rules),
	    FX_TEST(strerror_names_every_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
