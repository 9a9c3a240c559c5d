/*
 * test_cond_session - session-wide conditions (design §2.7):
 * "authenticated"/"unauthenticated" at MAIL from {auth_type} and
 * {auth_authen}, "stress"/"no-stress" thresholds, and "schedule" at the
 * day/night boundaries, across midnight, on week-ends and in time zones
 * (the clock is ctx->now, which the hub takes from MILTERHUB_NOW in tests).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cond_testutil.h"
#include "conditions/mh_cond_builtin.h"

/* ------------------------------------------------------ authenticated */

static struct mh_cond *auth(int want)
{
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c = mh_cond_auth_new(ct_opts(&b, NULL), want, err, sizeof(err));

	assert_non_null(c);
	return c;
}

static enum mh_cond_verdict auth_at(const struct mh_cond *c, enum mh_cond_stage st,
                                    const char *macro, const char *value)
{
	struct ct_ctx t;

	ct_ctx_init(&t, st);
	if (macro != NULL)
		ct_ctx_macro(&t, macro, value);
	return c->ops->eval(c, &t.ctx);
}

static void authenticated_decides_at_mail_from_auth_macros(void **state)
{
	struct mh_cond *yes = auth(1), *no = auth(0);

	(void)state;
	assert_string_equal(yes->ops->type, "authenticated");
	assert_string_equal(no->ops->type, "unauthenticated");
	assert_int_equal(auth_at(yes, MH_COND_MAIL, "{auth_type}", "PLAIN"), MH_COND_APPLIES);
	assert_int_equal(auth_at(no, MH_COND_MAIL, "{auth_type}", "PLAIN"), MH_COND_NOT_APPLICABLE);
	assert_int_equal(auth_at(yes, MH_COND_MAIL, "{auth_authen}", "alice"), MH_COND_APPLIES);
	assert_int_equal(auth_at(no, MH_COND_MAIL, "{auth_authen}", "alice"),
	                 MH_COND_NOT_APPLICABLE);
	assert_int_equal(auth_at(yes, MH_COND_MAIL, NULL, NULL), MH_COND_NOT_APPLICABLE);
	assert_int_equal(auth_at(no, MH_COND_MAIL, NULL, NULL), MH_COND_APPLIES);
	/* Postfix sends {auth_type} empty for an unauthenticated client. */
	assert_int_equal(auth_at(yes, MH_COND_MAIL, "{auth_type}", ""), MH_COND_NOT_APPLICABLE);
	assert_int_equal(auth_at(no, MH_COND_MAIL, "{auth_type}", ""), MH_COND_APPLIES);
	assert_int_equal(auth_at(yes, MH_COND_RCPT, "{auth_type}", "LOGIN"), MH_COND_APPLIES);
	ct_free(yes);
	ct_free(no);
}

static void authenticated_is_undecided_before_mail(void **state)
{
	struct mh_cond *yes = auth(1), *no = auth(0);
	struct ct_ctx t;

	(void)state;
	assert_int_equal(auth_at(yes, MH_COND_CONNECT, NULL, NULL), MH_COND_UNDECIDED);
	assert_int_equal(auth_at(no, MH_COND_CONNECT, NULL, NULL), MH_COND_UNDECIDED);
	assert_int_equal(auth_at(yes, MH_COND_HELO, "{auth_type}", "PLAIN"), MH_COND_UNDECIDED);
	assert_int_equal(auth_at(no, MH_COND_HELO, NULL, NULL), MH_COND_UNDECIDED);
	ct_ctx_init(&t, MH_COND_MAIL);
	t.ctx.macro = NULL; /* no macro source at all: not authenticated */
	assert_int_equal(no->ops->eval(no, &t.ctx), MH_COND_APPLIES);
	ct_free(yes);
	ct_free(no);
}

/* -------------------------------------------------------------- stress */

static enum mh_cond_verdict stress_at(const struct mh_cond *c, unsigned sessions)
{
	struct ct_ctx t;

	ct_ctx_init(&t, MH_COND_CONNECT);
	t.ctx.concurrent_sessions = sessions;
	return c->ops->eval(c, &t.ctx);
}

static void stress_applies_at_or_above_the_threshold(void **state)
{
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *s =
	    mh_cond_stress_new(ct_opts(&b, "threshold", 2, "20", NULL, NULL), 1, err, sizeof(err));
	struct mh_cond *n =
	    mh_cond_stress_new(ct_opts(&b, "threshold", 2, "20", NULL, NULL), 0, err, sizeof(err));
	struct mh_cond *d = mh_cond_stress_new(ct_opts(&b, NULL), 1, err, sizeof(err));

	(void)state;
	assert_non_null(s);
	assert_non_null(n);
	assert_non_null(d);
	assert_string_equal(s->ops->type, "stress");
	assert_string_equal(n->ops->type, "no-stress");
	assert_int_equal(stress_at(s, 19), MH_COND_NOT_APPLICABLE);
	assert_int_equal(stress_at(s, 20), MH_COND_APPLIES);
	assert_int_equal(stress_at(s, 500), MH_COND_APPLIES);
	assert_int_equal(stress_at(n, 19), MH_COND_APPLIES);
	assert_int_equal(stress_at(n, 20), MH_COND_NOT_APPLICABLE);
	assert_int_equal(stress_at(d, 99), MH_COND_NOT_APPLICABLE); /* default 100 */
	assert_int_equal(stress_at(d, 100), MH_COND_APPLIES);
	ct_free(s);
	ct_free(n);
	ct_free(d);
}

static void stress_bad_options(void **state)
{
	static const char *const bad[] = {"0", "-1", "ten", "", "12x", "1000001", " 5"};
	struct ct_opts b;
	char err[256] = "", want[256];
	size_t i;

	(void)state;
	assert_null(
	    mh_cond_stress_new(ct_opts(&b, "treshold", 4, "10", NULL, NULL), 1, err, sizeof(err)));
	assert_string_equal(err, "test.lua:4: condition \"stress\": unknown key 'treshold'");
	assert_null(
	    mh_cond_stress_new(ct_opts(&b, "max", 4, "10", NULL, NULL), 0, err, sizeof(err)));
	assert_string_equal(err, "test.lua:4: condition \"no-stress\": unknown key 'max'");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(mh_cond_stress_new(ct_opts(&b, "threshold", 6, bad[i], NULL, NULL), 1,
		                               err, sizeof(err)));
		snprintf(want, sizeof(want),
		         "test.lua:6: condition \"stress\": key 'threshold': must be a whole "
		         "number from 1 to 1000000, got '%s'",
		         bad[i]);
		assert_string_equal(err, want);
	}
	assert_null(mh_cond_stress_new(ct_opts(&b, "threshold", 6, "1", "2", NULL, NULL), 1, err,
	                               sizeof(err)));
	assert_string_equal(err, "test.lua:6: condition \"stress\": key 'threshold': takes "
	                         "exactly one value, got 2");
	assert_null(
	    mh_cond_auth_new(ct_opts(&b, "macro", 3, "x", NULL, NULL), 1, err, sizeof(err)));
	assert_string_equal(err, "test.lua:3: condition \"authenticated\": unknown key 'macro'");
}

/* ------------------------------------------------------------ schedule */

#define MON_2024_06_03 ((time_t)1717372800) /* 00:00:00 UTC */
#define TUE_2024_06_04 ((time_t)1717459200)
#define SAT_2024_06_01 ((time_t)1717200000)
#define SAT_2024_03_30 ((time_t)1711756800) /* Europe/Paris: CET (+1) */
#define SUN_2024_03_31 ((time_t)1711843200) /* CEST (+2) from 01:00 UTC */
#define H(h, m, s) ((time_t)((h)*3600 + (m)*60 + (s)))

static enum mh_cond_verdict at(const struct mh_cond *c, time_t now)
{
	struct ct_ctx t;

	ct_ctx_init(&t, MH_COND_CONNECT);
	t.ctx.now = now;
	return c->ops->eval(c, &t.ctx);
}

#define IN(c, t) assert_int_equal(at(c, t), MH_COND_APPLIES)
#define OUT(c, t) assert_int_equal(at(c, t), MH_COND_NOT_APPLICABLE)

static struct mh_cond *schedule(const char *days, const char *hours, const char *tz)
{
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c;

	if (days != NULL && hours != NULL)
		ct_opts(&b, "days", 2, days, NULL, "hours", 3, hours, NULL, NULL);
	else if (days != NULL)
		ct_opts(&b, "days", 2, days, NULL, NULL);
	else
		ct_opts(&b, "hours", 3, hours, NULL, NULL);
	if (tz != NULL) { /* add "timezone" at line 4 */
		b.opt[b.o.nopts].key = "timezone";
		b.opt[b.o.nopts].line = 4;
		b.values[b.o.nopts][0] = tz;
		b.opt[b.o.nopts].values = b.values[b.o.nopts];
		b.opt[b.o.nopts].nvalues = 1;
		b.o.nopts++;
	}
	c = mh_cond_schedule_new(&b.o, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	return c;
}

static void hours_include_start_and_exclude_end(void **state)
{
	struct mh_cond *c = schedule(NULL, "9-18", "UTC");

	(void)state;
	assert_string_equal(c->ops->type, "schedule");
	OUT(c, MON_2024_06_03 + H(8, 59, 59));
	IN(c, MON_2024_06_03 + H(9, 0, 0));
	IN(c, MON_2024_06_03 + H(12, 0, 0));
	IN(c, MON_2024_06_03 + H(17, 59, 59));
	OUT(c, MON_2024_06_03 + H(18, 0, 0));
	OUT(c, MON_2024_06_03 + H(23, 59, 59));
	IN(c, SAT_2024_06_01 + H(10, 0, 0)); /* no days: every day */
	ct_free(c);
}

static void night_range_wraps_past_midnight(void **state)
{
	struct mh_cond *c = schedule(NULL, "22-6", "UTC");

	(void)state;
	OUT(c, MON_2024_06_03 + H(21, 59, 59));
	IN(c, MON_2024_06_03 + H(22, 0, 0));
	IN(c, MON_2024_06_03 + H(23, 59, 59));
	IN(c, TUE_2024_06_04 + H(0, 0, 0));
	IN(c, TUE_2024_06_04 + H(5, 59, 59));
	OUT(c, TUE_2024_06_04 + H(6, 0, 0));
	OUT(c, TUE_2024_06_04 + H(12, 0, 0));
	ct_free(c);
}

static void several_ranges_and_minutes(void **state)
{
	struct mh_cond *c = schedule(NULL, "8-12, 13-17,22:30-23:15", "UTC");
	struct mh_cond *d = schedule(NULL, "0-24", "UTC");

	(void)state;
	OUT(c, MON_2024_06_03 + H(7, 59, 59));
	IN(c, MON_2024_06_03 + H(8, 0, 0));
	OUT(c, MON_2024_06_03 + H(12, 30, 0));
	IN(c, MON_2024_06_03 + H(13, 0, 0));
	OUT(c, MON_2024_06_03 + H(17, 0, 0));
	OUT(c, MON_2024_06_03 + H(22, 29, 59));
	IN(c, MON_2024_06_03 + H(22, 30, 0));
	IN(c, MON_2024_06_03 + H(23, 14, 59));
	OUT(c, MON_2024_06_03 + H(23, 15, 0));
	IN(d, MON_2024_06_03);
	IN(d, MON_2024_06_03 + H(23, 59, 59));
	ct_free(c);
	ct_free(d);
}

static void weekdays_versus_weekend(void **state)
{
	struct mh_cond *wk = schedule("mon-fri", NULL, "UTC");
	struct mh_cond *we = schedule("sat,sun", NULL, "UTC");
	struct mh_cond *mix = schedule("Mon,wed-FRI", "9-18", "UTC");
	struct mh_cond *wrap = schedule("fri-mon", NULL, "UTC");
	time_t day;
	int i;

	(void)state;
	IN(wk, MON_2024_06_03 + H(3, 0, 0));
	IN(wk, TUE_2024_06_04);
	OUT(wk, SAT_2024_06_01 + H(12, 0, 0));
	OUT(wk, SAT_2024_06_01 + 86400); /* Sunday */
	OUT(we, MON_2024_06_03);
	IN(we, SAT_2024_06_01);
	IN(we, MON_2024_06_03 - 1); /* Sunday 23:59:59 */
	IN(mix, MON_2024_06_03 + H(9, 0, 0));
	OUT(mix, MON_2024_06_03 + H(8, 0, 0));
	OUT(mix, TUE_2024_06_04 + H(10, 0, 0));
	IN(mix, TUE_2024_06_04 + 86400 + H(10, 0, 0)); /* Wednesday */
	/* Friday..Monday: Sat 1 June is day 0 of this loop. */
	for (i = 0, day = SAT_2024_06_01; i < 7; i++, day += 86400) {
		enum mh_cond_verdict want =
		    (i <= 2 || i == 6) ? MH_COND_APPLIES : MH_COND_NOT_APPLICABLE;
		assert_int_equal(at(wrap, day + H(12, 0, 0)), want);
	}
	ct_free(wk);
	ct_free(we);
	ct_free(mix);
	ct_free(wrap);
}

static void time_zone_shifts_the_day_and_the_hours(void **state)
{
	struct mh_cond *tokyo = schedule("mon-fri", "9-18", "Asia/Tokyo");
	struct mh_cond *fixed = schedule("mon-fri", "9-18", "UTC+9");
	struct mh_cond *neg = schedule(NULL, "9-18", "UTC-03:30");
	const char *tz_before = getenv("TZ");

	(void)state;
	/* 09:00 JST Monday is 00:00 UTC Monday; 08:59:59 JST is Sunday UTC. */
	OUT(tokyo, MON_2024_06_03 - 1);
	IN(tokyo, MON_2024_06_03);
	IN(tokyo, MON_2024_06_03 + H(8, 59, 59));
	OUT(tokyo, MON_2024_06_03 + H(9, 0, 0));
	/* Friday 23:00 UTC is Saturday 08:00 JST. */
	OUT(tokyo, SAT_2024_06_01 - H(1, 0, 0));
	OUT(fixed, MON_2024_06_03 - 1);
	IN(fixed, MON_2024_06_03);
	OUT(fixed, MON_2024_06_03 + H(9, 0, 0));
	OUT(neg, MON_2024_06_03 + H(12, 29, 59));
	IN(neg, MON_2024_06_03 + H(12, 30, 0));
	/* Creating a named zone leaves the process's TZ as it was. */
	assert_true(tz_before == getenv("TZ") ||
	            (tz_before && getenv("TZ") && strcmp(tz_before, getenv("TZ")) == 0));
	ct_free(tokyo);
	ct_free(fixed);
	ct_free(neg);
}

static void daylight_saving_change_moves_utc_boundary(void **state)
{
	struct mh_cond *paris = schedule(NULL, "9-18", "Europe/Paris");

	(void)state;
	/* Saturday, CET: 09:00 local = 08:00 UTC. */
	OUT(paris, SAT_2024_03_30 + H(7, 59, 59));
	IN(paris, SAT_2024_03_30 + H(8, 0, 0));
	OUT(paris, SAT_2024_03_30 + H(17, 0, 0));
	/* Sunday, CEST from 01:00 UTC: 09:00 local = 07:00 UTC. */
	OUT(paris, SUN_2024_03_31 + H(6, 59, 59));
	IN(paris, SUN_2024_03_31 + H(7, 0, 0));
	IN(paris, SUN_2024_03_31 + H(15, 59, 59));
	OUT(paris, SUN_2024_03_31 + H(16, 0, 0));
	ct_free(paris);
}

static void default_zone_is_the_process_local_time(void **state)
{
	char *saved = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	struct mh_cond *c;

	(void)state;
	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	c = schedule(NULL, "9-18", NULL);
	IN(c, MON_2024_06_03);
	OUT(c, MON_2024_06_03 + H(9, 0, 0));
	ct_free(c);
	if (saved != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
}

/* Creating with key at line 7 = value fails with exactly want. */
static void expect_schedule_error(const char *key, const char *value, const char *want)
{
	struct ct_opts b;
	char err[256] = "";

	assert_null(mh_cond_schedule_new(
	    ct_opts(&b, "hours", 2, "9-18", NULL, key, 7, value, NULL, NULL), err, sizeof(err)));
	assert_string_equal(err, want);
}

static void schedule_bad_options(void **state)
{
	struct ct_opts b;
	char err[256] = "";

	(void)state;
	expect_schedule_error("day", "mon",
	                      "test.lua:7: condition \"schedule\": unknown key 'day'");
	expect_schedule_error(
	    "days", "mnday", "test.lua:7: condition \"schedule\": key 'days': unknown day 'mnday'");
	expect_schedule_error("days", "mon-",
	                      "test.lua:7: condition \"schedule\": key 'days': unknown day 'mon-'");
	expect_schedule_error("days", "mon,",
	                      "test.lua:7: condition \"schedule\": key 'days': unknown day ''");
	expect_schedule_error("days", "mo",
	                      "test.lua:7: condition \"schedule\": key 'days': unknown day 'mo'");
	expect_schedule_error("days", "",
	                      "test.lua:7: condition \"schedule\": key 'days': expects days such "
	                      "as 'mon-fri'");
	expect_schedule_error("timezone", "Mars/Base",
	                      "test.lua:7: condition \"schedule\": key 'timezone': unknown time "
	                      "zone 'Mars/Base'");
	expect_schedule_error("timezone", "../../etc/passwd",
	                      "test.lua:7: condition \"schedule\": key 'timezone': unknown time "
	                      "zone '../../etc/passwd'");
	expect_schedule_error("timezone", "UTC+15",
	                      "test.lua:7: condition \"schedule\": key 'timezone': unknown time "
	                      "zone 'UTC+15'");
	static const char *const bad_hours[] = {"9-",     "9",       "25-26",   "9-9",   "24-6",
	                                        "9:5-10", "9:60-10", "24:30-1", "9-18,", "a-b"};
	for (size_t i = 0; i < sizeof(bad_hours) / sizeof(bad_hours[0]); i++) {
		char want[256];

		assert_null(mh_cond_schedule_new(ct_opts(&b, "hours", 9, bad_hours[i], NULL, NULL),
		                                 err, sizeof(err)));
		snprintf(want, sizeof(want), "test.lua:9: condition \"schedule\": key 'hours': ");
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("%s: got \"%s\"", bad_hours[i], err);
	}
	assert_null(
	    mh_cond_schedule_new(ct_opts(&b, "hours", 9, "25-26", NULL, NULL), err, sizeof(err)));
	assert_string_equal(err,
	                    "test.lua:9: condition \"schedule\": key 'hours': bad range '25-26'");
	assert_null(
	    mh_cond_schedule_new(ct_opts(&b, "timezone", 4, "UTC", NULL, NULL), err, sizeof(err)));
	assert_string_equal(err, "test.lua: condition \"schedule\": needs key 'days' or 'hours'");
	assert_null(mh_cond_schedule_new(
	    ct_opts(&b, "days", 2, "mon", NULL, "timezone", 4, "UTC", "Asia/Tokyo", NULL, NULL),
	    err, sizeof(err)));
	assert_string_equal(err, "test.lua:4: condition \"schedule\": key 'timezone': takes "
	                         "exactly one value, got 2");
}

static void list_values_read_as_comma_joined(void **state)
{
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c =
	    mh_cond_schedule_new(ct_opts(&b, "days", 2, "sat", "sun", NULL, "hours", 3, "0-6",
	                                 "22-24", NULL, "timezone", 4, "UTC", NULL, NULL),
	                         err, sizeof(err));

	(void)state;
	assert_non_null(c);
	IN(c, SAT_2024_06_01 + H(23, 0, 0));
	OUT(c, SAT_2024_06_01 + H(12, 0, 0));
	OUT(c, MON_2024_06_03 + H(1, 0, 0));
	ct_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(authenticated_decides_at_mail_from_auth_macros),
	    cmocka_unit_test(authenticated_is_undecided_before_mail),
	    cmocka_unit_test(stress_applies_at_or_above_the_threshold),
	    cmocka_unit_test(stress_bad_options),
	    cmocka_unit_test(hours_include_start_and_exclude_end),
	    cmocka_unit_test(night_range_wraps_past_midnight),
	    cmocka_unit_test(several_ranges_and_minutes),
	    cmocka_unit_test(weekdays_versus_weekend),
	    cmocka_unit_test(time_zone_shifts_the_day_and_the_hours),
	    cmocka_unit_test(daylight_saving_change_moves_utc_boundary),
	    cmocka_unit_test(default_zone_is_the_process_local_time),
	    cmocka_unit_test(schedule_bad_options),
	    cmocka_unit_test(list_values_read_as_comma_joined),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
