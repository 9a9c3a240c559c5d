/*
 * test_mta - mh_mta in-process: a socketpair, the test playing the MTA
 * with the codec on one end, an mh_mta on a libev loop on the other.
 * Negotiation, one command at a time, NR events, 'y' texts, macros per
 * stage, ABORT without pause, command order, malformed input, EOF, the
 * idle deadline, modifications at end-of-message, freeing from callbacks.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "mta/mh_mta.h"
#include "protocol/mh_codec.h"
#include "test_mta_driver.h"
#include "util/mh_log.h"

/* ------------------------------------------------------------------ */

static void negotiation_reply_is_sent(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_ADDHDRS | MH_ACT_SETSYMLIST, MH_PROTO_NR_HDR | MH_PROTO_SKIP);
	assert_int_equal(mh_mta_id(t->m), 42);
	assert_int_equal(t->nclosed, 0);
}

static void commands_are_delivered_one_at_a_time(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	w_macro(t, 'C', "j", "mx", NULL);
	w_connect(t);
	w_macro(t, 'H', NULL);
	w_str(t, MH_CMD_HELO, "client.example");
	send_out(t); /* all four packets in one write */
	run(t, 2, 0.2);
	assert_int_equal(t->ncmds, 1); /* HELO waits for the CONNECT's answer */
	assert_int_equal(t->codes[0], MH_CMD_CONNECT);
	run(t, 1, 0.05);
	assert_int_equal(t->ncmds, 1);
	mh_mta_reply(t->m, MH_ST_CONTINUE, NULL);
	expect_reply(t, MH_REP_CONTINUE);
	run(t, 1, 2.);
	assert_int_equal(t->ncmds, 2);
	assert_int_equal(t->codes[1], MH_CMD_HELO);
	mh_mta_reply(t->m, MH_ST_CONTINUE, NULL);
	expect_reply(t, MH_REP_CONTINUE);
}

static void reply_from_inside_on_command(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	t->auto_continue = 1;
	w_connect(t);
	w_str(t, MH_CMD_HELO, "a");
	w_str(t, MH_CMD_HELO, "b");
	send_out(t);
	run(t, 3, 2.);
	assert_int_equal(t->ncmds, 3);
	expect_reply(t, MH_REP_CONTINUE);
	expect_reply(t, MH_REP_CONTINUE);
	expect_reply(t, MH_REP_CONTINUE);
}

static void nr_event_reply_sends_nothing(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, MH_PROTO_NR_HDR | MH_PROTO_NR_CONN);
	w_connect(t);
	step(t, MH_CMD_CONNECT, MH_ST_CONTINUE, 0);
	w_str(t, MH_CMD_MAIL, "<a@b>");
	step(t, MH_CMD_MAIL, MH_ST_CONTINUE, MH_REP_CONTINUE);
	w_str(t, MH_CMD_RCPT, "<c@d>");
	step(t, MH_CMD_RCPT, MH_ST_CONTINUE, MH_REP_CONTINUE);
	w_str(t, MH_CMD_HEADER, "Subject");
	w_str(t, MH_CMD_HEADER, "From");
	send_out(t); /* NR headers streamed: still one at a time for the hub */
	run(t, 2, 0.2);
	assert_int_equal(t->ncmds, 4);
	mh_mta_reply(t->m, MH_ST_REJECT, "550 5.7.1 ignored"); /* NR: nothing at all */
	expect_silence(t);
	run(t, 1, 2.);
	assert_int_equal(t->ncmds, 5);
	mh_mta_reply(t->m, MH_ST_CONTINUE, NULL);
	expect_silence(t);
	w_empty(t, MH_CMD_EOH);
	step(t, MH_CMD_EOH, MH_ST_CONTINUE, MH_REP_CONTINUE);
	assert_int_equal(t->nclosed, 0);
}

static void replycode_sent_only_when_valid_and_class_matches(void **state)
{
	struct t *t = *state;
	static const struct {
		enum mh_status st;
		const char *text;
		uint8_t code;
	} cases[] = {
	    {MH_ST_REJECT, "550 5.7.1 no", MH_REP_REPLYCODE},
	    {MH_ST_TEMPFAIL, "451-4.7.1 a\r\n451 4.7.1 b", MH_REP_REPLYCODE},
	    {MH_ST_REJECT, "450 4.7.1 wrong class", MH_REP_REJECT},
	    {MH_ST_TEMPFAIL, "bogus", MH_REP_TEMPFAIL},
	    {MH_ST_CONTINUE, "550 5.7.1 not with continue", MH_REP_CONTINUE},
	};
	size_t i;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	w_connect(t);
	step(t, MH_CMD_CONNECT, MH_ST_CONTINUE, MH_REP_CONTINUE);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		w_str(t, MH_CMD_MAIL, "<a@b>");
		await_cmd(t, MH_CMD_MAIL);
		mh_mta_reply(t->m, cases[i].st, cases[i].text);
		expect_reply(t, cases[i].code);
		if (cases[i].code == MH_REP_REPLYCODE)
			assert_string_equal(t->rep.u.replycode.text, cases[i].text);
		w_empty(t, MH_CMD_ABORT); /* Postfix: ABORT after a refused MAIL */
	}
	send_out(t);
	run(t, 1, 2.);
	assert_int_equal(t->nclosed, 0);
}

static void skip_is_sent_only_to_body_when_negotiated(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, MH_PROTO_SKIP);
	w_connect(t);
	step(t, MH_CMD_CONNECT, MH_ST_SKIP, MH_REP_CONTINUE);
	w_str(t, MH_CMD_MAIL, "<a@b>");
	step(t, MH_CMD_MAIL, MH_ST_CONTINUE, MH_REP_CONTINUE);
	w_str(t, MH_CMD_RCPT, "<c@d>");
	step(t, MH_CMD_RCPT, MH_ST_SKIP, MH_REP_CONTINUE);
	mh_codec_put_raw(&t->out, MH_CMD_BODY, "x\r\n", 3);
	step(t, MH_CMD_BODY, MH_ST_SKIP, MH_REP_SKIP);
	w_empty(t, MH_CMD_EOB);
	step(t, MH_CMD_EOB, MH_ST_ACCEPT, MH_REP_ACCEPT);
}

static void macros_per_stage_cleared_by_later_stages(void **state)
{
	struct t *t = *state;
	const char *const *pairs;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	t->probe = "{i}";
	w_macro(t, 'C', "j", "mx", "{daemon_name}", "d", NULL);
	w_connect(t);
	step(t, MH_CMD_CONNECT, MH_ST_CONTINUE, MH_REP_CONTINUE);
	assert_int_equal(mh_mta_macros(t->m, 'C', &pairs), 2);
	assert_string_equal(pairs[0], "j");
	assert_string_equal(pairs[3], "d");
	assert_string_equal(mh_mta_macro(t->m, "j"), "mx");
	assert_string_equal(mh_mta_macro(t->m, "{j}"), "mx");
	assert_string_equal(mh_mta_macro(t->m, "daemon_name"), "d");
	assert_string_equal(mh_mta_macro(t->m, "{daemon_name}"), "d");
	assert_null(mh_mta_macro(t->m, "{daemon"));

	w_macro(t, 'H', "{tls_version}", "TLSv1.3", NULL);
	w_str(t, MH_CMD_HELO, "c");
	step(t, MH_CMD_HELO, MH_ST_CONTINUE, MH_REP_CONTINUE);
	w_macro(t, 'M', "i", "Q1", "{mail_addr}", "a@b", NULL);
	w_str(t, MH_CMD_MAIL, "<a@b>");
	step(t, MH_CMD_MAIL, MH_ST_CONTINUE, MH_REP_CONTINUE);
	assert_string_equal(t->probe_val[t->ncmds - 1], "Q1"); /* visible in on_command */
	w_macro(t, 'R', "{rcpt_addr}", "r1", NULL);
	w_str(t, MH_CMD_RCPT, "<r1>");
	step(t, MH_CMD_RCPT, MH_ST_CONTINUE, MH_REP_CONTINUE);
	w_macro(t, 'T', "i", "Q2", NULL);
	w_empty(t, MH_CMD_DATA);
	step(t, MH_CMD_DATA, MH_ST_CONTINUE, MH_REP_CONTINUE);
	assert_string_equal(mh_mta_macro(t->m, "i"), "Q2"); /* latest stage first */
	w_macro(t, 'L', "foo", "bar", NULL); /* Postfix's 'L' stage: ignored */
	w_str(t, MH_CMD_HEADER, "Subject");
	step(t, MH_CMD_HEADER, MH_ST_CONTINUE, MH_REP_CONTINUE);
	assert_null(mh_mta_macro(t->m, "foo"));
	assert_int_equal(mh_mta_macros(t->m, 'L', &pairs), 0);
	assert_null(pairs);

	/* ABORT: message stages gone, connection and HELO kept. */
	w_empty(t, MH_CMD_ABORT);
	w_macro(t, 'M', "{mail_addr}", "x@y", NULL);
	w_str(t, MH_CMD_MAIL, "<x@y>");
	step(t, MH_CMD_MAIL, MH_ST_CONTINUE, MH_REP_CONTINUE);
	assert_int_equal(t->codes[t->ncmds - 2], MH_CMD_ABORT);
	assert_null(mh_mta_macro(t->m, "i"));
	assert_null(mh_mta_macro(t->m, "rcpt_addr"));
	assert_string_equal(mh_mta_macro(t->m, "mail_addr"), "x@y");
	assert_string_equal(mh_mta_macro(t->m, "tls_version"), "TLSv1.3");
	w_macro(t, 'R', "{rcpt_addr}", "r2", NULL);
	w_str(t, MH_CMD_RCPT, "<r2>");
	step(t, MH_CMD_RCPT, MH_ST_CONTINUE, MH_REP_CONTINUE);
	w_macro(t, 'R', "{rcpt_host}", "h3", NULL); /* a new RCPT replaces the set */
	w_str(t, MH_CMD_RCPT, "<r3>");
	step(t, MH_CMD_RCPT, MH_ST_CONTINUE, MH_REP_CONTINUE);
	assert_null(mh_mta_macro(t->m, "rcpt_addr"));
	assert_string_equal(mh_mta_macro(t->m, "rcpt_host"), "h3");
	w_macro(t, 'E', "i", "Q3", NULL);
	w_empty(t, MH_CMD_EOB);
	step(t, MH_CMD_EOB, MH_ST_CONTINUE, MH_REP_CONTINUE);
	assert_string_equal(mh_mta_macro(t->m, "i"), "Q3");

	/* Sendmail sends no ABORT after a message: the next HELO clears MAIL onwards. */
	w_macro(t, 'H', "{tls_version}", "TLSv1.2", NULL);
	w_str(t, MH_CMD_HELO, "again");
	step(t, MH_CMD_HELO, MH_ST_CONTINUE, MH_REP_CONTINUE);
	assert_null(mh_mta_macro(t->m, "mail_addr"));
	assert_null(mh_mta_macro(t->m, "rcpt_host"));
	assert_null(mh_mta_macro(t->m, "i"));
	assert_string_equal(mh_mta_macro(t->m, "tls_version"), "TLSv1.2");

	/* QUIT_NC and a new CONNECT: everything from before is gone. */
	w_empty(t, MH_CMD_QUIT_NC);
	w_macro(t, 'C', "j", "mx2", NULL);
	w_connect(t);
	step(t, MH_CMD_CONNECT, MH_ST_CONTINUE, MH_REP_CONTINUE);
	assert_string_equal(mh_mta_macro(t->m, "j"), "mx2");
	assert_null(mh_mta_macro(t->m, "daemon_name"));
	assert_null(mh_mta_macro(t->m, "tls_version"));
	assert_int_equal(t->nclosed, 0);
}

static void abort_is_delivered_without_pause(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	w_empty(t, MH_CMD_ABORT); /* before CONNECT: fine */
	w_connect(t);
	step(t, MH_CMD_CONNECT, MH_ST_CONTINUE, MH_REP_CONTINUE);
	w_str(t, MH_CMD_MAIL, "<a@b>");
	step(t, MH_CMD_MAIL, MH_ST_CONTINUE, MH_REP_CONTINUE);
	w_empty(t, MH_CMD_ABORT);
	w_empty(t, MH_CMD_ABORT); /* Postfix sometimes sends two */
	w_str(t, MH_CMD_MAIL, "<e@f>");
	send_out(t);
	run(t, 3, 2.);
	assert_int_equal(t->ncmds, 6);
	assert_memory_equal(t->codes, "ACMAAM", 6);
	mh_mta_reply(t->m, MH_ST_CONTINUE, NULL);
	expect_reply(t, MH_REP_CONTINUE);
}

static void mail_inside_a_transaction_is_an_implicit_abort(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	t->auto_continue = 1;
	w_connect(t);
	w_str(t, MH_CMD_MAIL, "<a@b>");
	w_str(t, MH_CMD_RCPT, "<c@d>");
	w_str(t, MH_CMD_MAIL, "<e@f>"); /* Sendmail-style: no ABORT first */
	send_out(t);
	run(t, 5, 2.);
	assert_int_equal(t->ncmds, 5);
	assert_memory_equal(t->codes, "CMRAM", 5);
	assert_int_equal(t->nclosed, 0);
}

static void postfix_and_sendmail_sequences_are_accepted(void **state)
{
	struct t *t = *state;
	static const char want[] = "CHMRRTLLNBEAAMREAUMTEHAKCUQ";

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	t->auto_continue = 1;
	w_macro(t, 'C', NULL); /* a 'D' with no pairs */
	w_connect(t);
	w_macro(t, 'H', NULL);
	w_str(t, MH_CMD_HELO, "c");
	w_macro(t, 'M', "i", "Q", NULL);
	w_str(t, MH_CMD_MAIL, "<a@b>");
	w_str(t, MH_CMD_RCPT, "<r1>");
	w_str(t, MH_CMD_RCPT, "<r2>");
	w_empty(t, MH_CMD_DATA);
	w_macro(t, 'L', NULL);
	w_str(t, MH_CMD_HEADER, "From");
	w_str(t, MH_CMD_HEADER, "To");
	w_macro(t, 'N', "i", "Q", NULL);
	w_empty(t, MH_CMD_EOH);
	w_macro(t, 'B', NULL);
	mh_codec_put_raw(&t->out, MH_CMD_BODY, "body\r\n", 6);
	w_macro(t, 'E', "i", "Q", NULL);
	w_empty(t, MH_CMD_EOB);
	w_empty(t, MH_CMD_ABORT); /* Postfix: after every message, even twice */
	w_empty(t, MH_CMD_ABORT);
	w_str(t, MH_CMD_MAIL, "<>");
	w_str(t, MH_CMD_RCPT, "<r>");
	w_empty(t, MH_CMD_EOB); /* EOB straight after RCPT */
	w_empty(t, MH_CMD_ABORT);
	w_str(t, MH_CMD_UNKNOWN, "XFOO bar");
	w_str(t, MH_CMD_MAIL, "<a@b>"); /* v<4 MTA or NORCPT: no RCPT, no DATA */
	w_empty(t, MH_CMD_DATA);
	w_empty(t, MH_CMD_EOB);
	w_str(t, MH_CMD_HELO, "again"); /* HELO repeated (after STARTTLS) */
	w_empty(t, MH_CMD_ABORT);
	w_empty(t, MH_CMD_QUIT_NC);
	w_connect(t); /* K then C without a new 'O' */
	w_str(t, MH_CMD_UNKNOWN, "XBAR");
	w_empty(t, MH_CMD_QUIT);
	send_out(t);
	run(t, (int)sizeof(want) - 1, 2.);
	assert_int_equal(t->nclosed, 0);
	assert_int_equal(t->ncmds, (int)sizeof(want) - 1);
	assert_memory_equal(t->codes, want, sizeof(want) - 1);
	while (next_reply(t, 30) == 1) /* unread data would make the close a reset */
		assert_int_equal(t->rep.code, MH_REP_CONTINUE);
	close(t->fd); /* Postfix closes without QUIT too: EOF is normal */
	t->fd = -1;
	run(t, 1, 2.);
	assert_int_equal(t->nclosed, 1);
	assert_int_equal(t->why, MH_CONN_EOF);
}

/* Input no real MTA sends: closed with PROTOCOL, nothing reaches the hub. */
static void bad_input_closes_the_session(void **state)
{
	static const uint8_t zero_len[] = {0, 0, 0, 0};
	static const char *const names[] = {
	    "command before OPTNEG", "macro before OPTNEG", "second OPTNEG",
	    "MAIL before CONNECT",   "frame length 0",      "CONNECT with family 'X'",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct t *t;

		print_message("%s\n", names[i]);
		setup((void **)&t);
		start(t, 5.);
		if (i >= 2)
			negotiate(t, MH_ACT_V6_MASK, 0);
		switch (i) {
		case 0:
			w_connect(t);
			break;
		case 1:
			w_macro(t, 'C', "j", "x", NULL);
			break;
		case 2:
			w_optneg(t);
			break;
		case 3:
			w_str(t, MH_CMD_MAIL, "<a@b>");
			break;
		case 4:
			mh_buf_append(&t->out, zero_len, sizeof(zero_len));
			break;
		case 5:
			mh_codec_put_raw(&t->out, MH_CMD_CONNECT,
			                 "host\0X\0\x19"
			                 "1.2.3.4",
			                 15);
			break;
		}
		expect_protocol_close(t);
		assert_int_equal(t->ncmds, 0);
		assert_int_equal(t->noptneg, i >= 2 ? 1 : 0);
		teardown((void **)&t);
	}
}

static void rcpt_outside_a_transaction_is_a_protocol_error(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	w_connect(t);
	step(t, MH_CMD_CONNECT, MH_ST_CONTINUE, MH_REP_CONTINUE);
	w_str(t, MH_CMD_MAIL, "<a@b>");
	step(t, MH_CMD_MAIL, MH_ST_REJECT, MH_REP_REJECT); /* ends the transaction */
	w_str(t, MH_CMD_RCPT, "<c@d>");
	expect_protocol_close(t);
	assert_int_equal(t->ncmds, 2);
}

static void rcpt_without_mail_is_fine_with_nomail(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, MH_PROTO_NOMAIL | MH_PROTO_NOCONNECT);
	t->auto_continue = 1;
	w_str(t, MH_CMD_HELO, "c");
	w_str(t, MH_CMD_RCPT, "<c@d>");
	w_empty(t, MH_CMD_EOB);
	send_out(t);
	run(t, 3, 2.);
	assert_int_equal(t->nclosed, 0);
	assert_memory_equal(t->codes, "HRE", 3);
}

static void header_after_eoh_is_a_protocol_error(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	t->auto_continue = 1;
	w_connect(t);
	w_str(t, MH_CMD_MAIL, "<a@b>");
	w_str(t, MH_CMD_RCPT, "<c@d>");
	w_empty(t, MH_CMD_EOH);
	w_str(t, MH_CMD_HEADER, "Late");
	send_out(t);
	run(t, 5, 2.);
	assert_int_equal(t->ncmds, 4);
	assert_int_equal(t->nclosed, 1);
	assert_int_equal(t->why, MH_CONN_PROTOCOL);
}

static void eof_is_a_normal_close(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	w_connect(t);
	step(t, MH_CMD_CONNECT, MH_ST_ACCEPT, MH_REP_ACCEPT);
	t->free_on_close = 1;
	close(t->fd);
	t->fd = -1;
	run(t, 1, 2.);
	assert_int_equal(t->nclosed, 1);
	assert_int_equal(t->why, MH_CONN_EOF);
	assert_null(t->m);
}

static void idle_timeout_fires_only_while_waiting_for_the_mta(void **state)
{
	struct t *t = *state;

	start(t, 0.05);
	w_optneg(t);
	send_out(t);
	run(t, 1, 2.);
	assert_int_equal(t->noptneg, 1);
	run(t, 1, 0.2); /* the hub is working: no deadline */
	assert_int_equal(t->nclosed, 0);
	t->neg = (struct mh_optneg){6, MH_ACT_V6_MASK, 0, {NULL}};
	mh_mta_reply_optneg(t->m, &t->neg);
	expect_reply(t, MH_REP_OPTNEG);
	run(t, 1, 2.);
	assert_int_equal(t->nclosed, 1);
	assert_int_equal(t->why, MH_CONN_TIMEOUT);
	mh_mta_reply(t->m, MH_ST_CONTINUE, NULL); /* after close: ignored */
}

static void modifications_and_progress_only_at_end_of_message(void **state)
{
	struct t *t = *state;
	struct mh_reply mod;
	static uint8_t big[70000];
	size_t i;

	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	start(t, 5.);
	negotiate(t, MH_ACT_ADDHDRS | MH_ACT_CHGBODY, 0);
	w_connect(t);
	step(t, MH_CMD_CONNECT, MH_ST_CONTINUE, MH_REP_CONTINUE);
	w_str(t, MH_CMD_MAIL, "<a@b>");
	await_cmd(t, MH_CMD_MAIL);
	memset(&mod, 0, sizeof(mod));
	mod.code = MH_REP_ADDHEADER;
	mod.u.header.name = "X-Early";
	mod.u.header.value = "no";
	mh_mta_send_modification(t->m, &mod); /* not at MAIL: dropped */
	mh_mta_send_progress(t->m); /* likewise */
	mh_mta_reply(t->m, MH_ST_CONTINUE, NULL);
	expect_reply(t, MH_REP_CONTINUE);

	w_empty(t, MH_CMD_EOB);
	await_cmd(t, MH_CMD_EOB);
	mh_mta_send_progress(t->m);
	expect_reply(t, MH_REP_PROGRESS); /* progress leaves at once */
	mod.u.header.name = "X-Added";
	mod.u.header.value = " yes";
	mh_mta_send_modification(t->m, &mod);
	memset(&mod, 0, sizeof(mod));
	mod.code = MH_REP_CHGFROM; /* not negotiated: dropped */
	mod.u.chgfrom.addr = "<x@y>";
	mh_mta_send_modification(t->m, &mod);
	mod.code = MH_REP_REPLBODY;
	mod.u.replbody.data = big;
	mod.u.replbody.len = sizeof(big);
	mh_mta_send_modification(t->m, &mod);
	mh_mta_reply(t->m, MH_ST_ACCEPT, NULL);

	expect_reply(t, MH_REP_ADDHEADER);
	assert_string_equal(t->rep.u.header.name, "X-Added");
	assert_string_equal(t->rep.u.header.value, " yes");
	expect_reply(t, MH_REP_REPLBODY);
	assert_int_equal(t->rep.u.replbody.len, MH_CHUNK_MAX);
	assert_memory_equal(t->rep.u.replbody.data, big, MH_CHUNK_MAX);
	expect_reply(t, MH_REP_REPLBODY);
	assert_int_equal(t->rep.u.replbody.len, sizeof(big) - MH_CHUNK_MAX);
	assert_memory_equal(t->rep.u.replbody.data, big + MH_CHUNK_MAX, sizeof(big) - MH_CHUNK_MAX);
	expect_reply(t, MH_REP_ACCEPT);
	expect_silence(t);
}

static void free_from_inside_on_command(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	t->free_at = MH_CMD_QUIT;
	w_empty(t, MH_CMD_QUIT);
	w_connect(t); /* never delivered: the session is gone */
	send_out(t);
	run(t, 2, 0.2);
	assert_null(t->m);
	assert_int_equal(t->ncmds, 1);
	assert_int_equal(t->nclosed, 0);
	assert_int_equal(next_reply(t, 2000), -1);
}

static void free_from_inside_an_answerable_command(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	negotiate(t, MH_ACT_V6_MASK, 0);
	t->free_at = MH_CMD_CONNECT;
	w_connect(t);
	send_out(t);
	run(t, 1, 2.);
	assert_null(t->m);
}

static void free_from_inside_protocol_close(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	t->free_on_close = 1;
	w_str(t, MH_CMD_HELO, "early");
	expect_protocol_close(t);
	assert_null(t->m);
}

static void reply_optneg_from_inside_on_optneg(void **state)
{
	struct t *t = *state;

	start(t, 5.);
	t->reply_optneg = 1;
	t->auto_continue = 1;
	t->neg = (struct mh_optneg){2, MH_ACT_ADDHDRS, 0, {NULL}};
	w_optneg(t);
	w_connect(t);
	send_out(t);
	run(t, 2, 2.);
	assert_int_equal(t->noptneg, 1);
	assert_int_equal(t->ncmds, 1);
	expect_reply(t, MH_REP_OPTNEG);
	assert_int_equal(t->rep.u.optneg.version, 2);
	expect_reply(t, MH_REP_CONTINUE);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(negotiation_reply_is_sent),
	    T(commands_are_delivered_one_at_a_time),
	    T(reply_from_inside_on_command),
	    T(nr_event_reply_sends_nothing),
	    T(replycode_sent_only_when_valid_and_class_matches),
	    T(skip_is_sent_only_to_body_when_negotiated),
	    T(macros_per_stage_cleared_by_later_stages),
	    T(abort_is_delivered_without_pause),
	    T(mail_inside_a_transaction_is_an_implicit_abort),
	    T(postfix_and_sendmail_sequences_are_accepted),
	    T(bad_input_closes_the_session),
	    T(rcpt_outside_a_transaction_is_a_protocol_error),
	    T(rcpt_without_mail_is_fine_with_nomail),
	    T(header_after_eoh_is_a_protocol_error),
	    T(eof_is_a_normal_close),
	    T(idle_timeout_fires_only_while_waiting_for_the_mta),
	    T(modifications_and_progress_only_at_end_of_message),
	    T(free_from_inside_on_command),
	    T(free_from_inside_an_answerable_command),
	    T(free_from_inside_protocol_close),
	    T(reply_optneg_from_inside_on_optneg),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
