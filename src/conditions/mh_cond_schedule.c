/*
 * mh_cond_schedule - the "schedule" condition (design §2.7): different
 * countermeasures by day and by night.
 *
 * Options:
 *	days     - days of the week: "mon-fri", "sat,sun", "mon,wed-fri",
 *	           "fri-mon" (wraps); names of 3+ letters, any case. A list
 *	           value is read as its items joined by commas.
 *	hours    - time ranges "H[:MM]-H[:MM]" joined by commas: "9-18",
 *	           "09:00-18:30", "8-12,13-17"; "22-6" wraps past midnight.
 *	           A range includes its start and excludes its end: "9-18"
 *	           holds from 09:00:00 through 17:59:59. End "24" = midnight.
 *	timezone - "Asia/Tokyo" (a tz database name), "UTC", or a fixed
 *	           offset "UTC+9", "UTC-03:30", "+0530"; default: the
 *	           process's local time (TZ or /etc/localtime).
 * At least one of days and hours is required. The condition APPLIES when
 * ctx->now falls on one of the days and in one of the ranges (each tested
 * on the local date and time: with days "mon-fri" and hours "22-6",
 * Saturday 01:00 does not hold), NOT_APPLICABLE otherwise. Decided at
 * CONNECT: a connection keeps its verdict.
 *
 * Time zones without touching the process at eval time: at creation we
 * build the zone's table of UTC offsets from 1970 to 2100 by calling
 * localtime_r day by day and bisecting each change to the second. For a
 * named zone, TZ is set for the duration of that scan and then restored
 * (creation runs while loading the configuration, single-threaded, before
 * any session). Eval binary-searches the table and does integer
 * arithmetic: no libc time calls, no allocation, no TZ changes. A zone
 * name is checked against the tz database first (glibc silently falls back
 * to UTC for unknown names). Rule changes for a zone need a reload, as for
 * any daemon. Offsets changing twice within one day (none since 1970 in
 * practice) would be missed.
 *
 * Diagnostics: "FILE:LINE: condition "schedule": unknown key 'x'",
 * "...: key 'days': unknown day 'mnday'", "...: key 'hours': bad range
 * '9-'", "...: key 'timezone': unknown time zone 'Mars/Base'".
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conditions/mh_cond_builtin.h"
#include "conditions/mh_cond_optutil.h"
#include "util/mh_buf.h"

static const char TYPE[] = "schedule";

#define MINUTES_PER_DAY 1440
#define SCAN_FROM ((time_t)0) /* 1970-01-01 */
#define SCAN_TO ((time_t)4102444800LL) /* 2100-01-01 */
#define SCAN_STEP ((time_t)86400)

struct zone_span {
	time_t from; /* first second (UTC) this offset is in force */
	long gmtoff; /* local = utc + gmtoff */
};

struct schedule_impl {
	unsigned char days; /* bit d: day d (0 = Sunday) */
	unsigned char minutes[MINUTES_PER_DAY / 8]; /* bit m: minute m of the day */
	struct zone_span *spans; /* sorted by from; spans[0].from = min */
	size_t nspans;
};

/* --------------------------------------------------------------- eval */

static long offset_at(const struct schedule_impl *s, time_t t)
{
	size_t lo = 0, hi = s->nspans; /* find the last span with from <= t */

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->spans[mid].from <= t)
			lo = mid;
		else
			hi = mid;
	}
	return s->spans[lo].gmtoff;
}

static enum mh_cond_verdict schedule_eval(const struct mh_cond *c, const struct mh_cond_ctx *ctx)
{
	const struct schedule_impl *s = c->impl;
	int64_t local = (int64_t)ctx->now + offset_at(s, ctx->now);
	int64_t day = local / 86400, sec = local % 86400;
	int wday, minute;

	if (sec < 0) { /* floor division for times before 1970 */
		sec += 86400;
		day--;
	}
	wday = (int)(((day % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
	minute = (int)(sec / 60);
	if (!(s->days & (1u << wday)) || !(s->minutes[minute / 8] & (1u << (minute % 8))))
		return MH_COND_NOT_APPLICABLE;
	return MH_COND_APPLIES;
}

static void schedule_free(struct mh_cond *c)
{
	struct schedule_impl *s = c->impl;

	if (s == NULL)
		return;
	free(s->spans);
	free(s);
	c->impl = NULL;
}

static const struct mh_cond_ops schedule_ops = {"schedule", schedule_eval, schedule_free};

/* ---------------------------------------------------------------- days */

static int day_number(const char *p, size_t len)
{
	static const char *const names[] = {"sunday",   "monday", "tuesday", "wednesday",
	                                    "thursday", "friday", "saturday"};
	int d;

	while (len > 0 && *p == ' ')
		p++, len--;
	while (len > 0 && p[len - 1] == ' ')
		len--;
	if (len < 3)
		return -1;
	for (d = 0; d < 7; d++)
		if (len <= strlen(names[d]) && strncasecmp(p, names[d], len) == 0)
			return d;
	return -1;
}

/* Parse "mon-fri,sun" (items separated by commas) into *mask. */
static int parse_days(const char *v, unsigned char *mask, char *why, size_t whylen)
{
	const char *p = v;

	while (*p != '\0') {
		size_t n = strcspn(p, ","), dash;
		int a, b;

		while (n > 0 && *p == ' ')
			p++, n--;
		while (n > 0 && p[n - 1] == ' ')
			n--;
		dash = 0;
		while (dash < n && p[dash] != '-')
			dash++;
		a = day_number(p, dash);
		b = dash < n ? day_number(p + dash + 1, n - dash - 1) : a;
		if (a < 0 || b < 0)
			return mh_errf(why, whylen, "unknown day '%.*s'", (int)n, p);
		for (;;) {
			*mask |= (unsigned char)(1u << a);
			if (a == b)
				break;
			a = (a + 1) % 7;
		}
		p += strcspn(p, ",");
		if (*p == ',' && *++p == '\0')
			return mh_errf(why, whylen, "unknown day ''");
	}
	return 0;
}

/* --------------------------------------------------------------- hours */

/* "H" or "H:MM" at *p (0 <= H <= 24, 24 only as 24:00) -> minute of day. */
static int parse_clock(const char **p, int *minute)
{
	int h = 0, m = 0, digits = 0;

	while (isdigit((unsigned char)**p) && digits < 2)
		h = h * 10 + (*(*p)++ - '0'), digits++;
	if (digits == 0)
		return -1;
	if (**p == ':') {
		(*p)++;
		if (!isdigit((unsigned char)(*p)[0]) || !isdigit((unsigned char)(*p)[1]))
			return -1;
		m = ((*p)[0] - '0') * 10 + ((*p)[1] - '0');
		*p += 2;
	}
	if (h > 24 || m > 59 || (h == 24 && m != 0))
		return -1;
	*minute = h * 60 + m;
	return 0;
}

static void set_minutes(unsigned char *bits, int from, int to)
{
	int m;

	for (m = from; m < to; m++)
		bits[m / 8] |= (unsigned char)(1u << (m % 8));
}

/* Parse "9-18,22-6" into the minute bitmap. */
static int parse_hours(const char *v, unsigned char *bits, char *why, size_t whylen)
{
	const char *p = v;

	while (*p != '\0') {
		const char *item = p;
		size_t n = strcspn(p, ",");
		int a, b;

		while (*p == ' ')
			p++;
		if (parse_clock(&p, &a) != 0 || *p++ != '-' || parse_clock(&p, &b) != 0)
			return mh_errf(why, whylen, "bad range '%.*s'", (int)n, item);
		while (*p == ' ')
			p++;
		if ((*p != ',' && *p != '\0') || a == b || a == MINUTES_PER_DAY)
			return mh_errf(why, whylen, "bad range '%.*s'", (int)n, item);
		if (a < b) {
			set_minutes(bits, a, b);
		} else { /* wraps past midnight */
			set_minutes(bits, a, MINUTES_PER_DAY);
			set_minutes(bits, 0, b);
		}
		if (*p == ',' && *++p == '\0')
			return mh_errf(why, whylen, "bad range ''");
	}
	return 0;
}

/* ----------------------------------------------------------- time zones */

/* "UTC+9", "UTC-03:30", "GMT+5", "+0530", "-8" -> seconds east of UTC. */
static int parse_fixed_offset(const char *v, long *off)
{
	const char *p = v;
	int sign, h = 0, m = 0, digits = 0;

	if (strncasecmp(p, "UTC", 3) == 0 || strncasecmp(p, "GMT", 3) == 0)
		p += 3;
	if (*p != '+' && *p != '-')
		return -1;
	sign = *p++ == '-' ? -1 : 1;
	while (isdigit((unsigned char)*p) && digits < 2)
		h = h * 10 + (*p++ - '0'), digits++;
	if (digits == 0)
		return -1;
	if (*p == ':')
		p++;
	if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])) {
		m = (p[0] - '0') * 10 + (p[1] - '0');
		p += 2;
	}
	if (*p != '\0' || h > 14 || m > 59)
		return -1;
	*off = sign * (h * 3600L + m * 60L);
	return 0;
}

/* Is name a readable TZif file under TZDIR (default /usr/share/zoneinfo)? */
static int zone_exists(const char *name)
{
	const char *dir = getenv("TZDIR");
	char path[512], magic[4];
	FILE *f;
	int ok;

	if (name[0] == '\0' || strstr(name, "..") != NULL)
		return 0;
	if (name[0] == '/')
		snprintf(path, sizeof(path), "%s", name);
	else
		snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo",
		         name);
	f = fopen(path, "rb");
	if (f == NULL)
		return 0;
	ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
	fclose(f);
	return ok;
}

static long gmtoff_at(time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL)
		return 0;
	return tm.tm_gmtoff;
}

static void add_span(struct schedule_impl *s, size_t *cap, time_t from, long off)
{
	if (s->nspans == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		s->spans = mh_xrealloc(s->spans, *cap * sizeof(*s->spans));
	}
	s->spans[s->nspans].from = from;
	s->spans[s->nspans].gmtoff = off;
	s->nspans++;
}

/* Scan the current TZ's offsets over [SCAN_FROM, SCAN_TO) into s->spans. */
static void scan_zone(struct schedule_impl *s)
{
	size_t cap = 0;
	long off = gmtoff_at(SCAN_FROM);
	time_t t;

	add_span(s, &cap, SCAN_FROM, off);
	for (t = SCAN_FROM; t < SCAN_TO; t += SCAN_STEP) {
		time_t lo = t, hi = t + SCAN_STEP; /* off holds at lo; does it at hi? */
		long next = gmtoff_at(hi);

		if (next == off)
			continue;
		while (hi - lo > 1) { /* bisect to the first second of the new offset */
			time_t mid = lo + (hi - lo) / 2;

			if (gmtoff_at(mid) == off)
				lo = mid;
			else
				hi = mid;
		}
		off = gmtoff_at(hi);
		add_span(s, &cap, hi, off);
	}
	s->spans[0].from = (time_t)INT64_MIN; /* the first offset also holds before 1970 */
}

/* Scan the named zone with TZ set for the duration, then put TZ back. */
static void scan_named_zone(struct schedule_impl *s, const char *name)
{
	const char *old = getenv("TZ");
	char *saved = old ? mh_xstrdup(old) : NULL;

	setenv("TZ", name, 1);
	tzset();
	scan_zone(s);
	if (saved != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
}

static int setup_zone(struct schedule_impl *s, const char *tz, char *why, size_t whylen)
{
	long off;

	if (tz == NULL) {
		tzset();
		scan_zone(s);
		return 0;
	}
	if (parse_fixed_offset(tz, &off) == 0 || strcasecmp(tz, "UTC") == 0 ||
	    strcasecmp(tz, "GMT") == 0) {
		size_t cap = 0;

		if (parse_fixed_offset(tz, &off) != 0)
			off = 0;
		add_span(s, &cap, (time_t)INT64_MIN, off);
		return 0;
	}
	if (!zone_exists(tz))
		return mh_errf(why, whylen, "unknown time zone '%s'", tz);
	scan_named_zone(s, tz);
	return 0;
}

/* ------------------------------------------------------------ creation */

/* Run parse on all values of opt joined by commas (a list reads as one value). */
static int parse_opt(const struct mh_cond_opt *opt,
                     int (*parse)(const char *v, unsigned char *out, char *why, size_t whylen),
                     unsigned char *out, const char *expects, char *why, size_t whylen)
{
	char buf[1024];
	size_t i, used = 0;

	buf[0] = '\0';
	for (i = 0; i < opt->nvalues; i++) {
		int n =
		    snprintf(buf + used, sizeof(buf) - used, "%s%s", i ? "," : "", opt->values[i]);

		if (n < 0 || (size_t)n >= sizeof(buf) - used)
			return mh_errf(why, whylen, "value too long");
		used += (size_t)n;
	}
	if (buf[0] == '\0')
		return mh_errf(why, whylen, "expects %s", expects);
	return parse(buf, out, why, whylen);
}

struct mh_cond *mh_cond_schedule_new(const struct mh_cond_opts *o, char *err, size_t errlen)
{
	static const char *const known[] = {"days", "hours", "timezone", NULL};
	const struct mh_cond_opt *days, *hours, *tz;
	struct schedule_impl *s;
	struct mh_cond tmp = {&schedule_ops, NULL, NULL};
	struct mh_cond *c;
	char why[160];

	if (mh_condopt_check_keys(TYPE, o, known, err, errlen) != 0)
		return NULL;
	days = mh_condopt_find(o, "days");
	hours = mh_condopt_find(o, "hours");
	tz = mh_condopt_find(o, "timezone");
	if (days == NULL && hours == NULL) {
		mh_errf(err, errlen, "%s: condition \"%s\": needs key 'days' or 'hours'",
		        o && o->file ? o->file : "?", TYPE);
		return NULL;
	}
	s = mh_xcalloc(1, sizeof(*s));
	tmp.impl = s;
	if (days == NULL)
		s->days = 0x7f;
	else if (parse_opt(days, parse_days, &s->days, "days such as 'mon-fri'", why,
	                   sizeof(why)) != 0) {
		mh_condopt_errf(err, errlen, TYPE, o, days, "%s", why);
		goto fail;
	}
	if (hours == NULL)
		set_minutes(s->minutes, 0, MINUTES_PER_DAY);
	else if (parse_opt(hours, parse_hours, s->minutes, "ranges such as '9-18'", why,
	                   sizeof(why)) != 0) {
		mh_condopt_errf(err, errlen, TYPE, o, hours, "%s", why);
		goto fail;
	}
	if (tz != NULL) {
		const char *v = mh_condopt_scalar(TYPE, o, tz, err, errlen);

		if (v == NULL)
			goto fail;
		if (setup_zone(s, v, why, sizeof(why)) != 0) {
			mh_condopt_errf(err, errlen, TYPE, o, tz, "%s", why);
			goto fail;
		}
	} else {
		setup_zone(s, NULL, why, sizeof(why));
	}
	c = mh_xcalloc(1, sizeof(*c));
	c->ops = &schedule_ops;
	c->impl = s;
	return c;
fail:
	schedule_free(&tmp);
	return NULL;
}
