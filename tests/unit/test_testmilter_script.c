/*
 * test_testmilter_script - the --on / --negotiate syntax of
 * milterhub-testmilter (docs/tools.md), one test per rule of the contract:
 * testmilter_script.c (stages, qualifiers, negotiation) and
 * testmilter_action.c (the ACTION grammar).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../tools/testmilter/testmilter_script.h"

static char err[256];

static int setup(void **state)
{
	struct tm_script *s = test_malloc(sizeof(*s));

	tm_script_init(s);
	err[0] = '\0';
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	tm_script_free(*state);
	test_free(*state);
	return 0;
}

static void on_ok(struct tm_script *s, const char *arg)
{
	int rc = tm_script_add_on(s, arg, err, sizeof(err));
	if (rc != 0)
		fail_msg("--on %s: %s", arg, err);
}

static void on_bad(struct tm_script *s, const char *arg, const char *needle)
{
	err[0] = '\0';
	assert_int_equal(tm_script_add_on(s, arg, err, sizeof(err)), -1);
	if (strstr(err, needle) == NULL)
		fail_msg("--on %s: error '%s' lacks '%s'", arg, err, needle);
}

static const struct tm_rule *only_rule(struct tm_script *s, enum tm_stage st)
{
	const struct tm_rule *r = tm_script_find(s, st, NULL);
	assert_non_null(r);
	return r;
}

static void plain_decision_is_one_action(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "mail=reject");
	r = only_rule(s, TM_STAGE_MAIL);
	assert_int_equal(r->nacts, 1);
	assert_int_equal(r->acts[0].kind, TM_ACT_REJECT);
	assert_null(r->qual);
	assert_null(tm_script_find(s, TM_STAGE_RCPT, "<a@x>"));
}

static void every_decision_name_parses(void **state)
{
	struct tm_script *s = *state;
	static const struct {
		const char *name;
		enum tm_action_kind kind;
	} t[] = {{"continue", TM_ACT_CONTINUE}, {"accept", TM_ACT_ACCEPT},
	         {"reject", TM_ACT_REJECT},     {"tempfail", TM_ACT_TEMPFAIL},
	         {"discard", TM_ACT_DISCARD},   {"skip", TM_ACT_SKIP},
	         {"hang", TM_ACT_HANG},         {"close", TM_ACT_CLOSE},
	         {"garbage", TM_ACT_GARBAGE},   {"progress", TM_ACT_PROGRESS}};
	char arg[64];
	const struct tm_rule *r;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(arg, sizeof(arg), "eom=%s", t[i].name);
		on_ok(s, arg);
	}
	r = only_rule(s, TM_STAGE_EOM);
	assert_int_equal(r->nacts, sizeof(t) / sizeof(t[0]));
	for (size_t i = 0; i < r->nacts; i++)
		assert_int_equal(r->acts[i].kind, t[i].kind);
	assert_true(tm_action_is_decision(TM_ACT_REPLY));
	assert_true(tm_action_is_decision(TM_ACT_SKIP));
	assert_false(tm_action_is_decision(TM_ACT_DELAY));
	assert_false(tm_action_is_decision(TM_ACT_PROGRESS));
}

static void repeated_on_appends_in_order(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "rcpt=delay:300");
	on_ok(s, "rcpt=reject");
	r = only_rule(s, TM_STAGE_RCPT);
	assert_int_equal(r->nacts, 2);
	assert_int_equal(r->acts[0].kind, TM_ACT_DELAY);
	assert_int_equal(r->acts[0].num, 300);
	assert_int_equal(r->acts[1].kind, TM_ACT_REJECT);
	assert_int_equal(s->nrules, 1);
}

static void comma_separated_actions_run_in_order(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "eom=add-header:X-First:1,accept, add-header:X-Never:2");
	r = only_rule(s, TM_STAGE_EOM);
	assert_int_equal(r->nacts, 3);
	assert_int_equal(r->acts[0].kind, TM_ACT_ADD_HEADER);
	assert_string_equal(r->acts[0].a, "X-First");
	assert_string_equal(r->acts[0].b, "1");
	assert_int_equal(r->acts[1].kind, TM_ACT_ACCEPT);
	assert_string_equal(r->acts[2].a, "X-Never");
}

static void comma_not_followed_by_an_action_stays_in_the_text(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "eom=add-header:X-List:a, b,c,progress");
	r = only_rule(s, TM_STAGE_EOM);
	assert_int_equal(r->nacts, 2);
	assert_string_equal(r->acts[0].b, "a, b,c");
	assert_int_equal(r->acts[1].kind, TM_ACT_PROGRESS);
}

static void escaped_comma_never_splits(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "eom=quarantine:spam\\,reject");
	r = only_rule(s, TM_STAGE_EOM);
	assert_int_equal(r->nacts, 1);
	assert_string_equal(r->acts[0].a, "spam,reject");
}

static void rcpt_qualifier_compares_without_brackets_case_insensitively(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "rcpt=continue");
	on_ok(s, "rcpt:<Spam@Example.org>=reject");
	r = tm_script_find(s, TM_STAGE_RCPT, "<spam@example.ORG>");
	assert_non_null(r);
	assert_string_equal(r->qual, "Spam@Example.org");
	assert_int_equal(r->acts[0].kind, TM_ACT_REJECT);
	r = tm_script_find(s, TM_STAGE_RCPT, "spam@example.org");
	assert_int_equal(r->acts[0].kind, TM_ACT_REJECT);
	/* another recipient falls back to the plain rule */
	r = tm_script_find(s, TM_STAGE_RCPT, "<ham@example.org>");
	assert_null(r->qual);
	assert_int_equal(r->acts[0].kind, TM_ACT_CONTINUE);
}

static void mail_qualifier_compares_without_brackets_case_insensitively(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "mail=continue");
	on_ok(s, "mail:<Bad@Example.NET>=reject");
	r = tm_script_find(s, TM_STAGE_MAIL, "<bad@example.net>");
	assert_non_null(r);
	assert_string_equal(r->qual, "Bad@Example.NET");
	assert_int_equal(r->acts[0].kind, TM_ACT_REJECT);
	r = tm_script_find(s, TM_STAGE_MAIL, "BAD@example.net");
	assert_int_equal(r->acts[0].kind, TM_ACT_REJECT);
	/* another sender falls back to the plain rule */
	r = tm_script_find(s, TM_STAGE_MAIL, "<good@example.net>");
	assert_null(r->qual);
	assert_int_equal(r->acts[0].kind, TM_ACT_CONTINUE);
	/* a sender rule is not a recipient rule */
	assert_null(tm_script_find(s, TM_STAGE_RCPT, "<bad@example.net>"));
	/* no plain rule: other senders get none */
	tm_script_free(s);
	on_ok(s, "mail:bad@example.net=reject");
	assert_null(tm_script_find(s, TM_STAGE_MAIL, "<good@example.net>"));
}

static void qualified_rule_wins_whatever_the_order(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "rcpt:a@x=tempfail");
	on_ok(s, "rcpt=reject");
	r = tm_script_find(s, TM_STAGE_RCPT, "<a@x>");
	assert_int_equal(r->acts[0].kind, TM_ACT_TEMPFAIL);
	/* no plain rule: other recipients get none */
	tm_script_free(s);
	on_ok(s, "rcpt:a@x=tempfail");
	assert_null(tm_script_find(s, TM_STAGE_RCPT, "<b@x>"));
}

static void bracketed_qualifier_may_hold_equals(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "rcpt:<SRS0=ab=cd@x>=discard");
	r = tm_script_find(s, TM_STAGE_RCPT, "<srs0=ab=cd@x>");
	assert_non_null(r);
	assert_int_equal(r->acts[0].kind, TM_ACT_DISCARD);
}

static void header_qualifier_matches_the_name_case_insensitively(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "header:Subject=reject");
	r = tm_script_find(s, TM_STAGE_HEADER, "SUBJECT");
	assert_non_null(r);
	assert_int_equal(r->acts[0].kind, TM_ACT_REJECT);
	assert_null(tm_script_find(s, TM_STAGE_HEADER, "From"));
}

static void reply_builds_code_xcode_text(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "mail=reply:550:5.7.1:go away: now");
	on_ok(s, "rcpt=reply:451::try later");
	on_ok(s, "data=reply:550:5.7.1:");
	r = only_rule(s, TM_STAGE_MAIL);
	assert_int_equal(r->acts[0].kind, TM_ACT_REPLY);
	assert_string_equal(r->acts[0].a, "550 5.7.1 go away: now");
	assert_string_equal(only_rule(s, TM_STAGE_RCPT)->acts[0].a, "451 try later");
	assert_string_equal(only_rule(s, TM_STAGE_DATA)->acts[0].a, "550 5.7.1");
}

static void multi_line_reply_gets_continuation_codes(void **state)
{
	struct tm_script *s = *state;

	/* later lines with their own code are kept as written */
	on_ok(s, "rcpt=reply:550:5.7.1:first\r\n550-5.7.1 second\r\n550 5.7.1 last");
	assert_string_equal(only_rule(s, TM_STAGE_RCPT)->acts[0].a,
	                    "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 last");
	/* bare lines get CODE and XCODE, as smfi_setmlreply does */
	on_ok(s, "mail=reply:451:4.7.1:one\\ntwo\\nthree");
	assert_string_equal(only_rule(s, TM_STAGE_MAIL)->acts[0].a,
	                    "451-4.7.1 one\r\n451-4.7.1 two\r\n451 4.7.1 three");
}

static void reply_code_must_be_three_digits(void **state)
{
	struct tm_script *s = *state;

	on_bad(s, "mail=reply:55:5.7.1:x", "three digits");
	on_bad(s, "mail=reply:550", "CODE:XCODE:TEXT");
	/* any class is accepted so tests can provoke a bad 'y' */
	on_ok(s, "mail=reply:250::fine");
	assert_string_equal(only_rule(s, TM_STAGE_MAIL)->acts[0].a, "250 fine");
}

static void modifications_parse_their_fields(void **state)
{
	struct tm_script *s = *state;
	const struct tm_action *a;

	on_ok(s, "eom=add-header:X-A:v: with colon,ins-header:0:X-Top:t,"
	         "chg-header:Subject:2:,add-rcpt:<c@x>,add-rcpt-par:<d@[IPv6:::1]>:NOTIFY=NEVER,"
	         "del-rcpt:<b@x>,chg-from:<s@x>,chg-from:<t@x>:RET=HDRS,quarantine:held");
	a = only_rule(s, TM_STAGE_EOM)->acts;
	assert_int_equal(only_rule(s, TM_STAGE_EOM)->nacts, 9);
	assert_int_equal(a[0].kind, TM_ACT_ADD_HEADER);
	assert_string_equal(a[0].b, "v: with colon");
	assert_int_equal(a[1].kind, TM_ACT_INS_HEADER);
	assert_int_equal(a[1].num, 0);
	assert_string_equal(a[1].a, "X-Top");
	assert_string_equal(a[1].b, "t");
	assert_int_equal(a[2].kind, TM_ACT_CHG_HEADER);
	assert_string_equal(a[2].a, "Subject");
	assert_int_equal(a[2].num, 2);
	assert_string_equal(a[2].b, ""); /* empty value deletes */
	assert_int_equal(a[3].kind, TM_ACT_ADD_RCPT);
	assert_string_equal(a[3].a, "<c@x>");
	assert_int_equal(a[4].kind, TM_ACT_ADD_RCPT_PAR);
	assert_string_equal(a[4].a, "<d@[IPv6:::1]>");
	assert_string_equal(a[4].b, "NOTIFY=NEVER");
	assert_int_equal(a[5].kind, TM_ACT_DEL_RCPT);
	assert_string_equal(a[5].a, "<b@x>");
	assert_int_equal(a[6].kind, TM_ACT_CHG_FROM);
	assert_string_equal(a[6].a, "<s@x>");
	assert_null(a[6].b);
	assert_string_equal(a[7].b, "RET=HDRS");
	assert_int_equal(a[8].kind, TM_ACT_QUARANTINE);
	assert_string_equal(a[8].a, "held");
}

static void repl_body_turns_newlines_into_crlf(void **state)
{
	struct tm_script *s = *state;
	const struct tm_action *a;

	on_ok(s, "eom=repl-body:line one\\nline two\\n");
	a = &only_rule(s, TM_STAGE_EOM)->acts[0];
	assert_int_equal(a->kind, TM_ACT_REPL_BODY);
	assert_string_equal(a->a, "line one\r\nline two\r\n");
	assert_int_equal(a->alen, strlen("line one\r\nline two\r\n"));
	/* an existing CRLF is not doubled */
	on_ok(s, "body=repl-body:a\r\nb\n");
	assert_string_equal(only_rule(s, TM_STAGE_BODY)->acts[0].a, "a\r\nb\r\n");
}

static void header_value_escapes_keep_bare_lf(void **state)
{
	struct tm_script *s = *state;

	on_ok(s, "eom=add-header:X-Folded:one\\n\\ttwo \\\\ three");
	assert_string_equal(only_rule(s, TM_STAGE_EOM)->acts[0].b, "one\n\ttwo \\ three");
}

static void bad_actions_are_refused_with_a_reason(void **state)
{
	struct tm_script *s = *state;

	on_bad(s, "mail=explode", "unknown action");
	on_bad(s, "mail=reject:now", "takes no argument");
	on_bad(s, "mail=delay", "needs an argument");
	on_bad(s, "mail=delay:soon", "MS");
	on_bad(s, "eom=add-header:NoValue", "NAME:VALUE");
	on_bad(s, "eom=add-header::v", "NAME:VALUE");
	on_bad(s, "eom=ins-header:x:N:V", "IDX");
	on_bad(s, "eom=ins-header:1:N", "IDX:NAME:VALUE");
	on_bad(s, "eom=chg-header:N:one:V", "IDX");
	on_bad(s, "mail=", "empty action list");
	on_bad(s, "mail=reject,,accept", "unknown action");
	assert_int_equal(s->nrules, 0);
}

static void bad_stages_are_refused(void **state)
{
	struct tm_script *s = *state;

	on_bad(s, "quit=reject", "unknown stage");
	on_bad(s, "mail", "STAGE=ACTION");
	on_bad(s, "data:a@x=reject", "only mail, rcpt and header");
	on_bad(s, "mail:<>=reject", "empty qualifier");
	on_bad(s, "rcpt:=reject", "empty qualifier");
	on_bad(s, "rcpt:<>=reject", "empty qualifier");
	on_bad(s, "rcpt:a@x", "STAGE=ACTION");
}

static void abort_takes_only_delay_close_hang(void **state)
{
	struct tm_script *s = *state;
	const struct tm_rule *r;

	on_ok(s, "abort=delay:10,close");
	on_ok(s, "abort=hang");
	r = only_rule(s, TM_STAGE_ABORT);
	assert_int_equal(r->nacts, 3);
	on_bad(s, "abort=reject", "abort takes only");
	on_bad(s, "abort=progress", "abort takes only");
	assert_int_equal(only_rule(s, TM_STAGE_ABORT)->nacts, 3);
}

static void stage_names_and_commands_map(void **state)
{
	(void)state;
	assert_int_equal(tm_stage_parse("unknown", 7), TM_STAGE_UNKNOWN);
	assert_int_equal(tm_stage_parse("eoh", 3), TM_STAGE_EOH);
	assert_int_equal(tm_stage_parse("eo", 2), TM_STAGE_NONE);
	assert_string_equal(tm_stage_name(TM_STAGE_HEADER), "header");
	assert_int_equal(tm_stage_of_cmd('E'), TM_STAGE_EOM);
	assert_int_equal(tm_stage_of_cmd('L'), TM_STAGE_HEADER);
	assert_int_equal(tm_stage_of_cmd('A'), TM_STAGE_ABORT);
	assert_int_equal(tm_stage_of_cmd('D'), TM_STAGE_NONE);
	assert_int_equal(tm_stage_of_cmd('Q'), TM_STAGE_NONE);
}

static void default_negotiation_takes_offered_actions_and_skip(void **state)
{
	struct tm_script *s = *state;
	struct mh_optneg offer = {.version = 6, .actions = 0x1ff, .protocol = 0x1fffff};
	struct mh_optneg want;

	tm_script_want(s, &offer, &want);
	assert_int_equal(want.version, 6);
	assert_int_equal(want.actions, 0x1ff);
	assert_int_equal(want.protocol, MH_PROTO_SKIP);
	for (int i = 0; i < MH_STAGE_COUNT; i++)
		assert_null(want.macros[i]);
	/* an offer without SKIP gets none; an offer of 0 actions means 0x0F */
	offer.actions = 0;
	offer.protocol = MH_PROTO_V2_MASK;
	tm_script_want(s, &offer, &want);
	assert_int_equal(want.actions, 0x0f);
	assert_int_equal(want.protocol, 0);
}

static void negotiate_flags_accumulate(void **state)
{
	struct tm_script *s = *state;
	struct mh_optneg offer = {.version = 6, .actions = 0x1ff, .protocol = 0x1fffff};
	struct mh_optneg want;

	assert_int_equal(tm_script_add_negotiate(s, "nr-hdr, no-body", err, sizeof(err)), 0);
	assert_int_equal(tm_script_add_negotiate(s, "leadspc", err, sizeof(err)), 0);
	assert_int_equal(tm_script_add_negotiate(s, "version=4,actions=0x21", err, sizeof(err)), 0);
	tm_script_want(s, &offer, &want);
	/* no SKIP: version 4 does not know it */
	assert_int_equal(want.protocol, MH_PROTO_NR_HDR | MH_PROTO_NOBODY | MH_PROTO_HDR_LEADSPC);
	assert_int_equal(want.version, 4);
	assert_int_equal(want.actions, 0x21);
}

static void old_version_defaults_keep_to_its_flags(void **state)
{
	struct tm_script *s = *state;
	struct mh_optneg offer = {.version = 6, .actions = 0x1ff, .protocol = 0x1fffff};
	struct mh_optneg want;

	assert_int_equal(tm_script_add_negotiate(s, "version=2", err, sizeof(err)), 0);
	tm_script_want(s, &offer, &want);
	assert_int_equal(want.version, 2);
	assert_int_equal(want.actions, MH_ACT_V2_MASK);
	assert_int_equal(want.protocol, 0);
	/* explicit choices are sent as given */
	assert_int_equal(tm_script_add_negotiate(s, "actions=0x1ff,skip", err, sizeof(err)), 0);
	tm_script_want(s, &offer, &want);
	assert_int_equal(want.actions, 0x1ff);
	assert_int_equal(want.protocol, MH_PROTO_SKIP);
}

static void every_flag_name_maps_to_its_bit(void **state)
{
	struct tm_script *s = *state;

	assert_int_equal(tm_script_add_negotiate(s,
	                                         "no-connect,no-helo,no-mail,no-rcpt,no-body,"
	                                         "no-hdrs,no-eoh,nr-hdr,no-unknown,no-data,skip,"
	                                         "rcpt-rej,nr-conn,nr-helo,nr-mail,nr-rcpt,nr-data,"
	                                         "nr-unkn,nr-eoh,nr-body,leadspc",
	                                         err, sizeof(err)),
	                 0);
	assert_int_equal(s->protocol, MH_PROTO_V6_MASK);
}

static void negotiate_macros_per_stage(void **state)
{
	struct tm_script *s = *state;
	struct mh_optneg offer = {.version = 6, .actions = 0x1ff, .protocol = 0x1fffff};
	struct mh_optneg want;

	assert_int_equal(
	    tm_script_add_negotiate(s, "macros=connect:j;{client_addr}", err, sizeof(err)), 0);
	assert_int_equal(
	    tm_script_add_negotiate(s, "macros=eom:{msg_id} i,macros=connect:_", err, sizeof(err)),
	    0);
	assert_int_equal(tm_script_add_negotiate(s, "macros=eoh:", err, sizeof(err)), 0);
	assert_string_equal(s->macros[MH_STAGE_CONNECT], "j {client_addr} _");
	assert_string_equal(s->macros[MH_STAGE_EOM], "{msg_id} i");
	assert_string_equal(s->macros[MH_STAGE_EOH], "");
	assert_null(s->macros[MH_STAGE_HELO]);
	tm_script_want(s, &offer, &want);
	assert_ptr_equal(want.macros[MH_STAGE_CONNECT], s->macros[MH_STAGE_CONNECT]);
}

static void bad_negotiate_items_are_refused(void **state)
{
	struct tm_script *s = *state;
	static const char *const bad[] = {
	    "no-such-flag",   "version=1",
	    "version=7",      "version=",
	    "actions=zz",     "actions=",
	    "macros=connect", "macros=quit:j",
	    "nr-hdr,,skip",   "actions=0x1ffffffff",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (tm_script_add_negotiate(s, bad[i], err, sizeof(err)) != -1)
			fail_msg("--negotiate %s accepted", bad[i]);
		assert_true(strncmp(err, "--negotiate", 11) == 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(plain_decision_is_one_action, setup, teardown),
	    cmocka_unit_test_setup_teardown(every_decision_name_parses, setup, teardown),
	    cmocka_unit_test_setup_teardown(repeated_on_appends_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(comma_separated_actions_run_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(comma_not_followed_by_an_action_stays_in_the_text,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(escaped_comma_never_splits, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        rcpt_qualifier_compares_without_brackets_case_insensitively, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        mail_qualifier_compares_without_brackets_case_insensitively, setup, teardown),
	    cmocka_unit_test_setup_teardown(qualified_rule_wins_whatever_the_order, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(bracketed_qualifier_may_hold_equals, setup, teardown),
	    cmocka_unit_test_setup_teardown(header_qualifier_matches_the_name_case_insensitively,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(reply_builds_code_xcode_text, setup, teardown),
	    cmocka_unit_test_setup_teardown(multi_line_reply_gets_continuation_codes, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(reply_code_must_be_three_digits, setup, teardown),
	    cmocka_unit_test_setup_teardown(modifications_parse_their_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(repl_body_turns_newlines_into_crlf, setup, teardown),
	    cmocka_unit_test_setup_teardown(header_value_escapes_keep_bare_lf, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_actions_are_refused_with_a_reason, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_stages_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(abort_takes_only_delay_close_hang, setup, teardown),
	    cmocka_unit_test(stage_names_and_commands_map),
	    cmocka_unit_test_setup_teardown(default_negotiation_takes_offered_actions_and_skip,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(negotiate_flags_accumulate, setup, teardown),
	    cmocka_unit_test_setup_teardown(old_version_defaults_keep_to_its_flags, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(every_flag_name_maps_to_its_bit, setup, teardown),
	    cmocka_unit_test_setup_teardown(negotiate_macros_per_stage, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_negotiate_items_are_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
