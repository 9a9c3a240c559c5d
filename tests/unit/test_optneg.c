/*
 * test_optneg - option negotiation: the 'O' packet for each version
 * and its v6 macro trailer, the milter's answer (like libmilter) and
 * the MTA's check (like Postfix), the per-version masks and the macro
 * stages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec_testutil.h"

/* ---------------------------------------------------------- negotiation */

static void optneg_v2_round_trip(void **state)
{
	struct fx *f = *state;
	struct mh_optneg o = {2, MH_ACT_V2_MASK, MH_PROTO_V2_MASK, {NULL}};
	int s;

	mh_codec_put_optneg(&f->b, &o);
	assert_bytes(&f->b, RAW("\0\0\0\x0dO\0\0\0\2\0\0\0\x3f\0\0\0\x7f"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_OPTNEG);
	assert_int_equal(f->cmd.u.optneg.version, 2);
	assert_int_equal(f->cmd.u.optneg.actions, 0x3f);
	assert_int_equal(f->cmd.u.optneg.protocol, 0x7f);
	for (s = 0; s < MH_STAGE_COUNT; s++)
		assert_null(f->cmd.u.optneg.macros[s]);

	mh_codec_put_optneg(&f->b, &o);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_OPTNEG);
	assert_int_equal(f->rep.u.optneg.version, 2);
}

static void optneg_v4_round_trip(void **state)
{
	struct fx *f = *state;
	struct mh_optneg o = {4, MH_ACT_V2_MASK, MH_PROTO_V4_MASK, {NULL}};

	mh_codec_put_optneg(&f->b, &o);
	assert_bytes(&f->b, RAW("\0\0\0\x0dO\0\0\0\4\0\0\0\x3f\0\0\x03\x7f"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.optneg.version, 4);
	assert_int_equal(f->cmd.u.optneg.protocol, 0x37f);
}

static void optneg_v6_postfix_offer_and_macro_trailer(void **state)
{
	struct fx *f = *state;
	struct mh_optneg offer = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};
	struct mh_optneg reply = {
	    6, MH_ACT_ADDHDRS | MH_ACT_SETSYMLIST, MH_PROTO_NOHELO | MH_PROTO_NR_HDR, {NULL}};

	/* protocol doc 4.1: Postfix with milter_protocol = 6 */
	mh_codec_put_optneg(&f->b, &offer);
	assert_bytes(&f->b, RAW("\0\0\0\x0dO\0\0\0\6\0\0\1\xff\0\x1f\xff\xff"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.optneg.actions, 0x1ff);
	assert_int_equal(f->cmd.u.optneg.protocol, 0x1fffff);

	/* The trailer goes out in SMFIM order, only for the stages set. */
	reply.macros[MH_STAGE_EOH] = "i";
	reply.macros[MH_STAGE_CONNECT] = "{client_addr} j";
	reply.macros[MH_STAGE_EOM] = "";
	mh_codec_put_optneg(&f->b, &reply);
	assert_bytes(&f->b, RAW("\0\0\0\x2cO\0\0\0\6\0\0\1\1\0\0\0\x82"
	                        "\0\0\0\0{client_addr} j\0"
	                        "\0\0\0\5\0"
	                        "\0\0\0\6i\0"));
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.u.optneg.version, 6);
	assert_int_equal(f->rep.u.optneg.actions, 0x101);
	assert_int_equal(f->rep.u.optneg.protocol, 0x82);
	assert_string_equal(f->rep.u.optneg.macros[MH_STAGE_CONNECT], "{client_addr} j");
	assert_string_equal(f->rep.u.optneg.macros[MH_STAGE_EOM], "");
	assert_string_equal(f->rep.u.optneg.macros[MH_STAGE_EOH], "i");
	assert_null(f->rep.u.optneg.macros[MH_STAGE_HELO]);
	assert_null(f->rep.u.optneg.macros[MH_STAGE_MAIL]);
	assert_null(f->rep.u.optneg.macros[MH_STAGE_RCPT]);
	assert_null(f->rep.u.optneg.macros[MH_STAGE_DATA]);

	/* Any stage order is accepted on input. */
	assert_int_equal(raw_reply(f, 'O',
	                           RAW("\0\0\0\6\0\0\1\0\0\0\0\0"
	                               "\0\0\0\3{rcpt_addr}\0"
	                               "\0\0\0\2{mail_addr}\0")),
	                 MH_CODEC_OK);
	assert_string_equal(f->rep.u.optneg.macros[MH_STAGE_RCPT], "{rcpt_addr}");
	assert_string_equal(f->rep.u.optneg.macros[MH_STAGE_MAIL], "{mail_addr}");
}

static void optneg_answer_takes_the_lower_version(void **state)
{
	struct mh_optneg offer = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};
	struct mh_optneg want = {2, MH_ACT_ADDHDRS, 0, {NULL}};
	struct mh_optneg reply;

	(void)state;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.version, 2);
	assert_int_equal(reply.actions, MH_ACT_ADDHDRS);

	offer.version = 4;
	want.version = 6;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.version, 4);

	offer.version = 7; /* a future MTA */
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.version, 6);
}

static void optneg_answer_refuses_versions_below_2(void **state)
{
	struct mh_optneg offer = {1, 0x0f, 0x3f, {NULL}};
	struct mh_optneg want = {6, 0, 0, {NULL}};
	struct mh_optneg reply;

	(void)state;
	memset(&reply, 0xa5, sizeof(reply));
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
	assert_int_equal(reply.version, 0);
	offer.version = 0;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
	offer.version = 6;
	want.version = 1;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
}

static void optneg_answer_drops_nr_bits_not_offered(void **state)
{
	struct mh_optneg offer = {2, MH_ACT_V2_MASK, MH_PROTO_V2_MASK, {NULL}};
	struct mh_optneg want = {6,
	                         0,
	                         MH_PROTO_NOHELO | MH_PROTO_NR_HDR | MH_PROTO_NR_CONN |
	                             MH_PROTO_NR_BODY | MH_PROTO_NODATA | MH_PROTO_NOUNKNOWN,
	                         {NULL}};
	struct mh_optneg reply;

	(void)state;
	/* A v2 MTA knows no NR bits, no DATA and no UNKNOWN step. */
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.protocol, MH_PROTO_NOHELO);

	/* A v6 MTA offering them gets them all. */
	offer.version = 6;
	offer.protocol = MH_PROTO_V6_MASK;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.protocol, want.protocol);

	/* Only the bits not offered are dropped (0x37F lacks NR_HDR 0x80). */
	offer.protocol = MH_PROTO_V4_MASK | MH_PROTO_NR_CONN;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.protocol,
	                 MH_PROTO_NOHELO | MH_PROTO_NR_CONN | MH_PROTO_NODATA | MH_PROTO_NOUNKNOWN);
}

static void optneg_answer_offer_zero_means_v1_flags(void **state)
{
	struct mh_optneg offer = {2, 0, 0, {NULL}};
	struct mh_optneg want = {6, 0x0f, MH_PROTO_NOBODY | MH_PROTO_NOHDRS, {NULL}};
	struct mh_optneg reply;

	(void)state;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.actions, 0x0f);
	assert_int_equal(reply.protocol, MH_PROTO_NOBODY | MH_PROTO_NOHDRS);

	want.actions = MH_ACT_QUARANTINE; /* 0x20: not in 0x0F */
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
	want.actions = 0;
	want.protocol = MH_PROTO_NOEOH; /* 0x40: not in 0x3F */
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
}

static void optneg_answer_refuses_what_was_not_offered(void **state)
{
	struct mh_optneg offer = {6, MH_ACT_V2_MASK, MH_PROTO_V2_MASK, {NULL}};
	struct mh_optneg want = {6, MH_ACT_ADDHDRS | MH_ACT_CHGFROM, 0, {NULL}};
	struct mh_optneg reply;

	(void)state;
	memset(&reply, 0xa5, sizeof(reply));
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
	assert_int_equal(reply.actions, 0);
	assert_int_equal(reply.protocol, 0);

	/* A feature bit (SKIP) cannot be dropped like an NR bit. */
	want.actions = MH_ACT_ADDHDRS;
	want.protocol = MH_PROTO_SKIP;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
	offer.protocol |= MH_PROTO_SKIP;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.protocol, MH_PROTO_SKIP);
}

static void optneg_answer_copies_macros_only_for_v6(void **state)
{
	struct mh_optneg offer = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};
	struct mh_optneg want = {6, MH_ACT_SETSYMLIST, 0, {NULL}};
	struct mh_optneg reply;

	(void)state;
	want.macros[MH_STAGE_RCPT] = "{rcpt_addr}";
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_ptr_equal(reply.macros[MH_STAGE_RCPT], want.macros[MH_STAGE_RCPT]);

	offer.version = 4;
	want.actions = 0;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.version, 4);
	assert_null(reply.macros[MH_STAGE_RCPT]);
}

static void optneg_answer_reply_may_alias_input(void **state)
{
	struct mh_optneg offer = {4, MH_ACT_V2_MASK, MH_PROTO_V4_MASK, {NULL}};
	struct mh_optneg want = {6, MH_ACT_ADDHDRS, MH_PROTO_NOBODY, {NULL}};

	(void)state;
	assert_int_equal(mh_optneg_answer(&offer, &want, &want), MH_CODEC_OK);
	assert_int_equal(want.version, 4);
	assert_int_equal(want.actions, MH_ACT_ADDHDRS);
	assert_int_equal(want.protocol, MH_PROTO_NOBODY);
}

static void optneg_check_mta_side(void **state)
{
	struct mh_optneg offer = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};
	struct mh_optneg reply = {6, MH_ACT_ADDHDRS | MH_ACT_CHGBODY, MH_PROTO_NR_HDR, {NULL}};

	(void)state;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_OK);
	reply.version = 2; /* lower is fine: we then speak v2 */
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_OK);
	reply.version = 7;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_EVALUE);
	reply.version = 1;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_EVALUE);
	reply.version = 0;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_EVALUE);

	reply.version = 4;
	offer.version = 4;
	offer.actions = MH_ACT_V2_MASK;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_OK);
	reply.actions |= MH_ACT_CHGFROM;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_EVALUE);

	/* Like Postfix, the protocol word is not held against the offer. */
	reply.actions = 0;
	offer.protocol = MH_PROTO_V4_MASK;
	reply.protocol = MH_PROTO_SKIP;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_OK);
}

static void optneg_masks_per_version(void **state)
{
	(void)state;
	assert_int_equal(mh_optneg_action_mask(1), 0x0f);
	assert_int_equal(mh_optneg_action_mask(2), 0x3f);
	assert_int_equal(mh_optneg_action_mask(3), 0x3f);
	assert_int_equal(mh_optneg_action_mask(5), 0x3f);
	assert_int_equal(mh_optneg_action_mask(6), 0x1ff);
	assert_int_equal(mh_optneg_action_mask(99), 0x1ff);

	assert_int_equal(mh_optneg_protocol_mask(1), 0x3f);
	assert_int_equal(mh_optneg_protocol_mask(2), 0x7f);
	assert_int_equal(mh_optneg_protocol_mask(3), 0x17f);
	assert_int_equal(mh_optneg_protocol_mask(4), 0x37f);
	assert_int_equal(mh_optneg_protocol_mask(5), 0x37f);
	assert_int_equal(mh_optneg_protocol_mask(6), 0x1fffff);
	assert_int_equal(mh_optneg_protocol_mask(99), 0x1fffff);
}

static void macro_stage_numbers_and_bytes(void **state)
{
	static const struct {
		enum mh_macro_stage stage;
		uint8_t cmd;
	} map[] = {
	    {MH_STAGE_CONNECT, 'C'}, {MH_STAGE_HELO, 'H'}, {MH_STAGE_MAIL, 'M'},
	    {MH_STAGE_RCPT, 'R'},    {MH_STAGE_DATA, 'T'}, {MH_STAGE_EOM, 'E'},
	    {MH_STAGE_EOH, 'N'},
	};
	size_t i;

	(void)state;
	assert_int_equal(MH_STAGE_EOM, 5);
	assert_int_equal(MH_STAGE_EOH, 6);
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		assert_int_equal(mh_macro_stage_cmd(map[i].stage), map[i].cmd);
		assert_int_equal(mh_macro_stage_of_cmd(map[i].cmd), (int)map[i].stage);
	}
	assert_int_equal(mh_macro_stage_cmd(MH_STAGE_COUNT), 0);
	assert_int_equal(mh_macro_stage_of_cmd('L'), -1);
	assert_int_equal(mh_macro_stage_of_cmd('B'), -1);
	assert_int_equal(mh_macro_stage_of_cmd('U'), -1);
	assert_int_equal(mh_macro_stage_of_cmd(0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST(optneg_v2_round_trip),
	    FX_TEST(optneg_v4_round_trip),
	    FX_TEST(optneg_v6_postfix_offer_and_macro_trailer),
	    FX_TEST(optneg_answer_takes_the_lower_version),
	    FX_TEST(optneg_answer_refuses_versions_below_2),
	    FX_TEST(optneg_answer_drops_nr_bits_not_offered),
	    FX_TEST(optneg_answer_offer_zero_means_v1_flags),
	    FX_TEST(optneg_answer_refuses_what_was_not_offered),
	    FX_TEST(optneg_answer_copies_macros_only_for_v6),
	    FX_TEST(optneg_answer_reply_may_alias_input),
	    FX_TEST(optneg_check_mta_side),
	    FX_TEST(optneg_masks_per_version),
	    FX_TEST(macro_stage_numbers_and_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
