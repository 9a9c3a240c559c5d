/*
 * test_message - mh_message: Postfix-semantics message edits.
 *
 * Every test starts from the message as the MTA simulator holds it: the
 * MTA's own hidden Received: at the top, then the headers the milter saw.
 * Edits arrive as decoded replies, the way mh_msg_apply receives them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/mh_message.h"

/* Fixture: Received (hidden), From, To, Subject, X-Tag a, X-Tag b. */
static int setup(void **state)
{
	struct mh_msg *m = mh_xmalloc(sizeof(*m));

	mh_msg_init(m);
	mh_msg_set_sender(m, "<sender@example.net>", NULL);
	mh_msg_add_rcpt(m, "<a@example.org>", NULL);
	mh_msg_add_rcpt(m, "<b@example.org>", NULL);
	mh_msg_add_header(m, "Received", " from mx.example.net\n\tby mta.example.org", 1);
	mh_msg_add_header(m, "From", " sender@example.net", 0);
	mh_msg_add_header(m, "To", " a@example.org", 0);
	mh_msg_add_header(m, "Subject", " hello", 0);
	mh_msg_add_header(m, "X-Tag", " a", 0);
	mh_msg_add_header(m, "X-Tag", " b", 0);
	mh_buf_append_str(&m->body, "line one\r\nline two\r\n");
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	struct mh_msg *m = *state;

	mh_msg_free(m);
	free(m);
	return 0;
}

static struct mh_reply header_reply(uint8_t code, uint32_t index, const char *name,
                                    const char *value)
{
	struct mh_reply r;

	memset(&r, 0, sizeof(r));
	r.code = code;
	r.u.header.index = index;
	r.u.header.name = name;
	r.u.header.value = value;
	return r;
}

static void apply_ok(struct mh_msg *m, const struct mh_reply *r, int leadspc)
{
	assert_int_equal(mh_msg_apply(m, r, leadspc), 0);
}

static void assert_header(const struct mh_msg *m, size_t pos, const char *name, const char *raw)
{
	assert_true(pos < m->nhdrs);
	assert_string_equal(m->hdrs[pos].name, name);
	assert_string_equal(m->hdrs[pos].value, raw);
}

static void add_header_appends_at_the_end(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r = header_reply(MH_REP_ADDHEADER, 0, "X-A", "1");

	apply_ok(m, &r, 0);
	r = header_reply(MH_REP_ADDHEADER, 0, "X-B", "2");
	apply_ok(m, &r, 0);
	assert_int_equal(m->nhdrs, 8);
	assert_header(m, 6, "X-A", " 1");
	assert_header(m, 7, "X-B", " 2");
	assert_false(m->hdrs[7].hidden);
}

static void insert_at_zero_goes_above_the_hidden_received(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r = header_reply(MH_REP_INSHEADER, 0, "X-Top", "t");

	apply_ok(m, &r, 0);
	assert_header(m, 0, "X-Top", " t");
	assert_header(m, 1, "Received", " from mx.example.net\n\tby mta.example.org");
	assert_true(m->hdrs[1].hidden);
}

static void insert_at_n_goes_after_the_nth_header_counting_received(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r = header_reply(MH_REP_INSHEADER, 1, "X-One", "1");

	apply_ok(m, &r, 0);
	assert_header(m, 0, "Received", " from mx.example.net\n\tby mta.example.org");
	assert_header(m, 1, "X-One", " 1");
	assert_header(m, 2, "From", " sender@example.net");

	r = header_reply(MH_REP_INSHEADER, 3, "X-Three", "3");
	apply_ok(m, &r, 0);
	assert_header(m, 2, "From", " sender@example.net");
	assert_header(m, 3, "X-Three", " 3");
	assert_header(m, 4, "To", " a@example.org");
}

static void insert_beyond_the_end_appends(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r = header_reply(MH_REP_INSHEADER, 6, "X-Six", "6");

	apply_ok(m, &r, 0);
	assert_header(m, 6, "X-Six", " 6");
	r = header_reply(MH_REP_INSHEADER, 0xffffffffu, "X-Far", "f");
	apply_ok(m, &r, 0);
	assert_int_equal(m->nhdrs, 8);
	assert_header(m, 7, "X-Far", " f");
}

static void change_hits_nth_instance_case_insensitively(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r = header_reply(MH_REP_CHGHEADER, 2, "x-tag", "B2");

	apply_ok(m, &r, 0);
	assert_header(m, 4, "X-Tag", " a");
	/* Postfix writes the header anew, with the milter's spelling. */
	assert_header(m, 5, "x-tag", " B2");
	assert_int_equal(m->nhdrs, 6);
}

static void change_index_zero_means_one(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r = header_reply(MH_REP_CHGHEADER, 0, "X-Tag", "A0");

	apply_ok(m, &r, 0);
	assert_header(m, 4, "X-Tag", " A0");
	assert_header(m, 5, "X-Tag", " b");
}

static void change_never_touches_the_hidden_received(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r = header_reply(MH_REP_CHGHEADER, 1, "Received", "forged");

	/* The milter never saw our Received:, so instance 1 is missing: append. */
	apply_ok(m, &r, 0);
	assert_header(m, 0, "Received", " from mx.example.net\n\tby mta.example.org");
	assert_int_equal(m->nhdrs, 7);
	assert_header(m, 6, "Received", " forged");
}

static void change_after_insert_at_top_skips_the_top_header_as_postfix(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r = header_reply(MH_REP_INSHEADER, 0, "X-Tag", "top");

	/* Postfix skips the first header, whichever it is (cleanup_milter.c). */
	apply_ok(m, &r, 0);
	r = header_reply(MH_REP_CHGHEADER, 1, "X-Tag", "changed");
	apply_ok(m, &r, 0);
	assert_header(m, 0, "X-Tag", " top");
	assert_header(m, 5, "X-Tag", " changed");
	assert_header(m, 6, "X-Tag", " b");
}

static void delete_shifts_later_indexes(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r = header_reply(MH_REP_CHGHEADER, 1, "X-Tag", "");

	apply_ok(m, &r, 0);
	assert_int_equal(m->nhdrs, 5);
	assert_header(m, 4, "X-Tag", " b");
	/* The former second instance is now the first. */
	r = header_reply(MH_REP_CHGHEADER, 1, "X-Tag", "");
	apply_ok(m, &r, 0);
	assert_int_equal(m->nhdrs, 4);
	assert_header(m, 3, "Subject", " hello");
}

static void missing_instance_appends_or_is_a_no_op(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r = header_reply(MH_REP_CHGHEADER, 3, "X-Tag", "");

	apply_ok(m, &r, 0);
	assert_int_equal(m->nhdrs, 6);
	r = header_reply(MH_REP_CHGHEADER, 3, "X-Tag", "c");
	apply_ok(m, &r, 0);
	assert_int_equal(m->nhdrs, 7);
	assert_header(m, 6, "X-Tag", " c");
	r = header_reply(MH_REP_CHGHEADER, 1, "X-Absent", "");
	apply_ok(m, &r, 0);
	assert_int_equal(m->nhdrs, 7);
}

static void leading_space_is_converted_both_ways(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r;
	char *raw;

	/* Seen by a milter: one space removed unless it negotiated LEADSPC. */
	assert_string_equal(mh_msg_value_for_milter(" hello", 0), "hello");
	assert_string_equal(mh_msg_value_for_milter(" hello", 1), " hello");
	assert_string_equal(mh_msg_value_for_milter("  two", 0), " two");
	assert_string_equal(mh_msg_value_for_milter("\ttab", 0), "\ttab");
	assert_string_equal(mh_msg_value_for_milter("", 0), "");
	/* Sent by a milter: one space added unless LEADSPC. */
	raw = mh_msg_value_from_milter("v", 0);
	assert_string_equal(raw, " v");
	free(raw);
	raw = mh_msg_value_from_milter("v", 1);
	assert_string_equal(raw, "v");
	free(raw);

	r = header_reply(MH_REP_ADDHEADER, 0, "X-Lead", " spaced");
	apply_ok(m, &r, 1);
	assert_header(m, 6, "X-Lead", " spaced");
	r = header_reply(MH_REP_CHGHEADER, 1, "Subject", "nospace");
	apply_ok(m, &r, 1);
	assert_header(m, 3, "Subject", "nospace");
	/* With LEADSPC a lone space is a value, not a deletion. */
	r = header_reply(MH_REP_CHGHEADER, 1, "To", " ");
	apply_ok(m, &r, 1);
	assert_header(m, 2, "To", " ");
}

static void del_rcpt_ignores_brackets_and_case(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r;

	memset(&r, 0, sizeof(r));
	r.code = MH_REP_DELRCPT;
	r.u.rcpt.rcpt = "B@EXAMPLE.ORG";
	apply_ok(m, &r, 0);
	assert_int_equal(m->nrcpts, 1);
	assert_string_equal(m->rcpts[0].addr, "<a@example.org>");
	assert_int_equal(mh_msg_del_rcpt(m, "<nobody@example.org>"), 0);
	mh_msg_add_rcpt(m, "c@example.org", NULL);
	mh_msg_add_rcpt(m, "<C@example.org>", NULL);
	assert_int_equal(mh_msg_del_rcpt(m, "<c@example.org>"), 2);
	assert_int_equal(m->nrcpts, 1);
}

static void add_rcpt_keeps_args(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r;

	memset(&r, 0, sizeof(r));
	r.code = MH_REP_ADDRCPT;
	r.u.rcpt.rcpt = "<c@example.org>";
	apply_ok(m, &r, 0);
	r.code = MH_REP_ADDRCPT_PAR;
	r.u.rcpt.rcpt = "<d@example.org>";
	r.u.rcpt.args = "NOTIFY=NEVER";
	apply_ok(m, &r, 0);
	assert_int_equal(m->nrcpts, 4);
	assert_string_equal(m->rcpts[2].addr, "<c@example.org>");
	assert_null(m->rcpts[2].args);
	assert_string_equal(m->rcpts[3].addr, "<d@example.org>");
	assert_string_equal(m->rcpts[3].args, "NOTIFY=NEVER");
}

static void body_reply(struct mh_msg *m, const char *text)
{
	struct mh_reply r;

	memset(&r, 0, sizeof(r));
	r.code = MH_REP_REPLBODY;
	r.u.replbody.data = (const uint8_t *)text;
	r.u.replbody.len = strlen(text);
	apply_ok(m, &r, 0);
}

static const char *body_text(const struct mh_msg *m)
{
	return mh_buf_size(&m->body) ? (const char *)mh_buf_head(&m->body) : "";
}

static void replbody_run_replaces_then_appends(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r = header_reply(MH_REP_ADDHEADER, 0, "X-A", "1");

	body_reply(m, "new ");
	body_reply(m, "body\r\n");
	assert_string_equal(body_text(m), "new body\r\n");
	/* Another reply ends the run; a later run replaces again. */
	apply_ok(m, &r, 0);
	body_reply(m, "second\r\n");
	mh_msg_end_of_replies(m);
	assert_string_equal(body_text(m), "second\r\n");
	assert_int_equal(m->replacing_body, 0);
}

static void replbody_is_normalised_to_crlf_at_the_end_of_the_run(void **state)
{
	struct mh_msg *m = *state;

	body_reply(m, "a\nb\r");
	body_reply(m, "\nc\rd");
	mh_msg_end_of_replies(m);
	assert_string_equal(body_text(m), "a\r\nb\r\nc\rd\r\n");
	body_reply(m, "");
	mh_msg_end_of_replies(m);
	assert_int_equal(mh_buf_size(&m->body), 0);
}

static void quarantine_keeps_the_last_reason(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r;

	memset(&r, 0, sizeof(r));
	r.code = MH_REP_QUARANTINE;
	r.u.quarantine.reason = "first";
	apply_ok(m, &r, 0);
	r.u.quarantine.reason = "why";
	apply_ok(m, &r, 0);
	assert_string_equal(m->quarantine, "why");
}

static void chgfrom_sets_sender_and_args(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r;

	memset(&r, 0, sizeof(r));
	r.code = MH_REP_CHGFROM;
	r.u.chgfrom.addr = "<s@example.com>";
	r.u.chgfrom.args = "RET=HDRS ENVID=x1";
	apply_ok(m, &r, 0);
	assert_string_equal(m->sender, "<s@example.com>");
	assert_string_equal(m->sender_args, "RET=HDRS ENVID=x1");
	r.u.chgfrom.addr = "<>";
	r.u.chgfrom.args = NULL;
	apply_ok(m, &r, 0);
	assert_string_equal(m->sender, "<>");
	assert_null(m->sender_args);
}

static void decisions_are_not_modifications(void **state)
{
	struct mh_msg *m = *state;
	struct mh_reply r;

	memset(&r, 0, sizeof(r));
	r.code = MH_REP_CONTINUE;
	assert_int_equal(mh_msg_apply(m, &r, 0), -1);
	r.code = MH_REP_PROGRESS;
	assert_int_equal(mh_msg_apply(m, &r, 0), -1);
	assert_int_equal(m->nhdrs, 6);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(add_header_appends_at_the_end),
	    T(insert_at_zero_goes_above_the_hidden_received),
	    T(insert_at_n_goes_after_the_nth_header_counting_received),
	    T(insert_beyond_the_end_appends),
	    T(change_hits_nth_instance_case_insensitively),
	    T(change_index_zero_means_one),
	    T(change_never_touches_the_hidden_received),
	    T(change_after_insert_at_top_skips_the_top_header_as_postfix),
	    T(delete_shifts_later_indexes),
	    T(missing_instance_appends_or_is_a_no_op),
	    T(leading_space_is_converted_both_ways),
	    T(del_rcpt_ignores_brackets_and_case),
	    T(add_rcpt_keeps_args),
	    T(replbody_run_replaces_then_appends),
	    T(replbody_is_normalised_to_crlf_at_the_end_of_the_run),
	    T(quarantine_keeps_the_last_reason),
	    T(chgfrom_sets_sender_and_args),
	    T(decisions_are_not_modifications),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
