/*
 * test_status - the status algebra of design §2.1 (hub/mh_status.h):
 * the strength order, reply codes and names both ways, and the merge of
 * several children's answers with their custom reply texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hub/mh_status.h"

/* Merge the statuses st[0..n) (chain order, no texts). */
static enum mh_status merge_all(const enum mh_status *st, size_t n)
{
	struct mh_status_merge m;
	size_t i;

	mh_status_merge_init(&m);
	for (i = 0; i < n; i++)
		mh_status_merge_add(&m, st[i], NULL, (unsigned int)i);
	return mh_status_merge_result(&m);
}

/* The stronger of a and b must win whichever is folded first. */
static void assert_beats(enum mh_status strong, enum mh_status weak)
{
	enum mh_status ab[2] = {strong, weak};
	enum mh_status ba[2] = {weak, strong};

	assert_true(strong > weak);
	assert_int_equal(mh_status_stronger(strong, weak), strong);
	assert_int_equal(mh_status_stronger(weak, strong), strong);
	assert_int_equal(merge_all(ab, 2), strong);
	assert_int_equal(merge_all(ba, 2), strong);
}

static void discard_beats_reject(void **state)
{
	(void)state;
	assert_beats(MH_ST_DISCARD, MH_ST_REJECT);
}

static void reject_beats_tempfail(void **state)
{
	(void)state;
	assert_beats(MH_ST_REJECT, MH_ST_TEMPFAIL);
}

static void tempfail_beats_continue(void **state)
{
	(void)state;
	assert_beats(MH_ST_TEMPFAIL, MH_ST_CONTINUE);
}

static void continue_beats_skip(void **state)
{
	(void)state;
	assert_beats(MH_ST_CONTINUE, MH_ST_SKIP);
}

static void skip_beats_accept(void **state)
{
	(void)state;
	assert_beats(MH_ST_SKIP, MH_ST_ACCEPT);
}

static void any_child_stronger_answer_wins(void **state)
{
	enum mh_status st[] = {MH_ST_CONTINUE, MH_ST_ACCEPT, MH_ST_DISCARD, MH_ST_TEMPFAIL,
	                       MH_ST_REJECT};

	(void)state;
	assert_int_equal(merge_all(st, 5), MH_ST_DISCARD);
	assert_int_equal(merge_all(st, 2), MH_ST_CONTINUE);
}

static void accept_only_when_every_child_accepted(void **state)
{
	enum mh_status all[] = {MH_ST_ACCEPT, MH_ST_ACCEPT, MH_ST_ACCEPT};
	enum mh_status one_continues[] = {MH_ST_ACCEPT, MH_ST_CONTINUE, MH_ST_ACCEPT};

	(void)state;
	assert_int_equal(merge_all(all, 3), MH_ST_ACCEPT);
	/* one child's accept only retires that child; the MTA sees continue */
	assert_int_equal(merge_all(one_continues, 3), MH_ST_CONTINUE);
}

static void no_answer_yet_is_none_and_weakest(void **state)
{
	struct mh_status_merge m;

	(void)state;
	mh_status_merge_init(&m);
	assert_int_equal(mh_status_merge_result(&m), MH_ST_NONE);
	assert_null(mh_status_merge_reply_text(&m));
	assert_true(MH_ST_NONE < MH_ST_ACCEPT);
	mh_status_merge_add(&m, MH_ST_ACCEPT, NULL, 0);
	assert_int_equal(mh_status_merge_result(&m), MH_ST_ACCEPT);
}

static void merge_init_forgets_previous_stage(void **state)
{
	struct mh_status_merge m;

	(void)state;
	mh_status_merge_init(&m);
	mh_status_merge_add(&m, MH_ST_REJECT, "550 5.7.1 no", 0);
	mh_status_merge_init(&m);
	mh_status_merge_add(&m, MH_ST_TEMPFAIL, NULL, 1);
	assert_int_equal(mh_status_merge_result(&m), MH_ST_TEMPFAIL);
	assert_null(mh_status_merge_reply_text(&m));
}

static void status_from_each_decision_code(void **state)
{
	(void)state;
	assert_int_equal(mh_status_of_reply('a', NULL), MH_ST_ACCEPT);
	assert_int_equal(mh_status_of_reply('c', NULL), MH_ST_CONTINUE);
	assert_int_equal(mh_status_of_reply('r', NULL), MH_ST_REJECT);
	assert_int_equal(mh_status_of_reply('t', NULL), MH_ST_TEMPFAIL);
	assert_int_equal(mh_status_of_reply('d', NULL), MH_ST_DISCARD);
	assert_int_equal(mh_status_of_reply('s', NULL), MH_ST_SKIP);
}

static void replycode_status_follows_first_digit(void **state)
{
	(void)state;
	assert_int_equal(mh_status_of_reply('y', "451 4.7.1 try later"), MH_ST_TEMPFAIL);
	assert_int_equal(mh_status_of_reply('y', "421 4.3.0 bye"), MH_ST_TEMPFAIL);
	assert_int_equal(mh_status_of_reply('y', "550 5.7.1 go away"), MH_ST_REJECT);
	assert_int_equal(mh_status_of_reply('y', "250 ok"), MH_ST_NONE);
	assert_int_equal(mh_status_of_reply('y', ""), MH_ST_NONE);
	assert_int_equal(mh_status_of_reply('y', NULL), MH_ST_NONE);
}

static void non_decisions_have_no_status(void **state)
{
	const char *others = "+-24bO efhimpq";
	const char *c;

	(void)state;
	for (c = others; *c != '\0'; c++)
		assert_int_equal(mh_status_of_reply((uint8_t)*c, "550 x"), MH_ST_NONE);
	assert_int_equal(mh_status_of_reply(0, NULL), MH_ST_NONE);
}

static void reply_code_round_trips(void **state)
{
	int st;

	(void)state;
	for (st = MH_ST_ACCEPT; st < MH_ST_COUNT; st++)
		assert_int_equal(mh_status_of_reply(mh_status_reply_code(st), NULL), st);
	assert_int_equal(mh_status_reply_code(MH_ST_ACCEPT), 'a');
	assert_int_equal(mh_status_reply_code(MH_ST_DISCARD), 'd');
	assert_int_equal(mh_status_reply_code(MH_ST_NONE), 0);
	assert_int_equal(mh_status_reply_code(MH_ST_COUNT), 0);
}

static void names_round_trip(void **state)
{
	static const char *const names[MH_ST_COUNT] = {"accept",   "skip",   "continue",
	                                               "tempfail", "reject", "discard"};
	enum mh_status out;
	int st;

	(void)state;
	for (st = MH_ST_ACCEPT; st < MH_ST_COUNT; st++) {
		assert_string_equal(mh_status_name(st), names[st]);
		out = MH_ST_NONE;
		assert_int_equal(mh_status_parse(names[st], &out), 0);
		assert_int_equal(out, st);
	}
	assert_string_equal(mh_status_name(MH_ST_NONE), "none");
	assert_string_equal(mh_status_name(MH_ST_COUNT), "invalid");
}

static void parse_accepts_reference_spelling_and_refuses_others(void **state)
{
	enum mh_status out = MH_ST_NONE;

	(void)state;
	assert_int_equal(mh_status_parse("temporary-failure", &out), 0);
	assert_int_equal(out, MH_ST_TEMPFAIL);
	out = MH_ST_ACCEPT;
	assert_int_equal(mh_status_parse("none", &out), -1);
	assert_int_equal(mh_status_parse("Reject", &out), -1);
	assert_int_equal(mh_status_parse("", &out), -1);
	assert_int_equal(mh_status_parse("rejectx", &out), -1);
	assert_int_equal(out, MH_ST_ACCEPT);
}

static void reply_code_passed_only_when_class_matches(void **state)
{
	struct mh_status_merge m;
	const char *t4 = "451 4.7.1 greylisted";
	const char *t5 = "550 5.7.1 spam";

	(void)state;
	/* 4xx text, merged reject (another child's plain reject): plain 'r' */
	mh_status_merge_init(&m);
	mh_status_merge_add(&m, MH_ST_TEMPFAIL, t4, 0);
	mh_status_merge_add(&m, MH_ST_REJECT, NULL, 1);
	assert_int_equal(mh_status_merge_result(&m), MH_ST_REJECT);
	assert_null(mh_status_merge_reply_text(&m));

	/* 4xx text, merged tempfail: passed */
	mh_status_merge_init(&m);
	mh_status_merge_add(&m, MH_ST_CONTINUE, NULL, 0);
	mh_status_merge_add(&m, MH_ST_TEMPFAIL, t4, 1);
	assert_int_equal(mh_status_merge_result(&m), MH_ST_TEMPFAIL);
	assert_ptr_equal(mh_status_merge_reply_text(&m), t4);

	/* 5xx and 4xx texts, merged reject: the 5xx one */
	mh_status_merge_init(&m);
	mh_status_merge_add(&m, MH_ST_TEMPFAIL, t4, 0);
	mh_status_merge_add(&m, MH_ST_REJECT, t5, 1);
	assert_ptr_equal(mh_status_merge_reply_text(&m), t5);

	/* merged discard: no text at all */
	mh_status_merge_add(&m, MH_ST_DISCARD, NULL, 2);
	assert_int_equal(mh_status_merge_result(&m), MH_ST_DISCARD);
	assert_null(mh_status_merge_reply_text(&m));
}

static void reply_text_of_neither_class_is_ignored(void **state)
{
	struct mh_status_merge m;

	(void)state;
	mh_status_merge_init(&m);
	mh_status_merge_add(&m, MH_ST_REJECT, "250 not an error", 0);
	assert_int_equal(mh_status_merge_result(&m), MH_ST_REJECT);
	assert_null(mh_status_merge_reply_text(&m));
}

static void first_child_reply_text_wins(void **state)
{
	struct mh_status_merge m;
	const char *third = "550 5.7.1 from the third child";
	const char *first = "550 5.7.1 from the first child";
	const char *second = "554 5.7.1 from the second child";
	const char *also_first = "550 5.7.1 first child again";

	(void)state;
	/* answers arrive out of chain order (parallel envelope stage) */
	mh_status_merge_init(&m);
	mh_status_merge_add(&m, MH_ST_REJECT, third, 2);
	mh_status_merge_add(&m, MH_ST_REJECT, first, 0);
	mh_status_merge_add(&m, MH_ST_REJECT, second, 1);
	mh_status_merge_add(&m, MH_ST_REJECT, also_first, 0);
	assert_ptr_equal(mh_status_merge_reply_text(&m), first);
}

static void first_child_reply_text_wins_among_those_with_text(void **state)
{
	struct mh_status_merge m;
	const char *t4_late = "450 4.2.0 later child";
	const char *t4_early = "451 4.7.1 early child";

	(void)state;
	/* the winner is the earliest child among those that sent a 4xx text */
	mh_status_merge_init(&m);
	mh_status_merge_add(&m, MH_ST_TEMPFAIL, t4_late, 5);
	mh_status_merge_add(&m, MH_ST_CONTINUE, NULL, 0);
	mh_status_merge_add(&m, MH_ST_TEMPFAIL, t4_early, 3);
	assert_int_equal(mh_status_merge_result(&m), MH_ST_TEMPFAIL);
	assert_ptr_equal(mh_status_merge_reply_text(&m), t4_early);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(discard_beats_reject),
	    cmocka_unit_test(reject_beats_tempfail),
	    cmocka_unit_test(tempfail_beats_continue),
	    cmocka_unit_test(continue_beats_skip),
	    cmocka_unit_test(skip_beats_accept),
	    cmocka_unit_test(any_child_stronger_answer_wins),
	    cmocka_unit_test(accept_only_when_every_child_accepted),
	    cmocka_unit_test(no_answer_yet_is_none_and_weakest),
	    cmocka_unit_test(merge_init_forgets_previous_stage),
	    cmocka_unit_test(status_from_each_decision_code),
	    cmocka_unit_test(replycode_status_follows_first_digit),
	    cmocka_unit_test(non_decisions_have_no_status),
	    cmocka_unit_test(reply_code_round_trips),
	    cmocka_unit_test(names_round_trip),
	    cmocka_unit_test(parse_accepts_reference_spelling_and_refuses_others),
	    cmocka_unit_test(reply_code_passed_only_when_class_matches),
	    cmocka_unit_test(reply_text_of_neither_class_is_ignored),
	    cmocka_unit_test(first_child_reply_text_wins),
	    cmocka_unit_test(first_child_reply_text_wins_among_those_with_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
