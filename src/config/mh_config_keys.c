/*
 * NAME
 *	mh_config_keys 3
 * SUMMARY
 *	the keys of milterhub.lua as rows: kinds, tables, block parse and show
 * SYNOPSIS
 *	#include "config/mh_config_keys.h"
 *
 *	int	mh_config_parse_block(lua_State *L, int idx, void *base,
 *			const struct mh_config_key *rows, const char *prefix,
 *			char *why, size_t whylen);
 *	void	mh_config_show_block(FILE *out, const void *base,
 *			const struct mh_config_key *rows);
 * DESCRIPTION
 *	A kind knows one Lua shape and one C field type: a socket spec
 *	string (parsed with mh_sockspec_parse, the text kept for logs and
 *	--show-config), a fallback status name, a boolean, seconds, a byte
 *	size (a number or "4M"), a count, a file mode (a number or an octal
 *	string: Lua has no octal literals, so 0660 in Lua is six hundred and
 *	sixty and is refused with a hint), a log level, an absolute path, a
 *	nested table of rows. Parsing reads values with raw access only, so
 *	a user's metatable cannot run code while C holds allocations, and it
 *	never raises a Lua error: the loader turns the reason into
 *	"FILE:LINE: block: key 'x': reason".
 *
 *	Unknown keys are reported before anything else, the alphabetically
 *	first one (Lua's table order is randomised per run; the message must
 *	not be), with the nearest known key as a hint.
 * DIAGNOSTICS
 *	"unknown key 'sockt' (did you mean 'socket'?)", "key 'fallback':
 *	unknown status 'maybe' (accept, tempfail, reject, discard)", "key
 *	'timeouts.eom': must be a number > 0, got -1", "key 'listen': expected
 *	a socket spec string, got number".
 */
#include "config/mh_config_keys.h"
#include "config/mh_config.h"
#include "config/mh_config_cond.h"
#include "util/mh_buf.h"
#include "util/mh_err.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(base, k, type) ((type *)(void *)((char *)(base) + (k)->off))
#define CFIELD(base, k, type) ((const type *)(const void *)((const char *)(base) + (k)->off))

static int wrong_type(lua_State *L, int idx, const struct mh_config_key *k, char *why,
                      size_t whylen)
{
	return mh_errf(why, whylen, "expected %s, got %s", k->kind->what,
	               lua_typename(L, lua_type(L, idx)));
}

/* A Lua string without embedded NUL bytes, or NULL with why filled. */
static const char *get_string(lua_State *L, int idx, const struct mh_config_key *k, char *why,
                              size_t whylen)
{
	if (lua_type(L, idx) != LUA_TSTRING) {
		wrong_type(L, idx, k, why, whylen);
		return NULL;
	}
	size_t n;
	const char *s = lua_tolstring(L, idx, &n);
	if (strlen(s) != n) {
		mh_errf(why, whylen, "contains a NUL byte");
		return NULL;
	}
	return s;
}

/* Shortest "%.*g" that reads back as the same double. */
static void show_number(FILE *out, double v)
{
	char buf[64];
	if (v == floor(v) && fabs(v) < 1e15) {
		fprintf(out, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, out);
}

void mh_config_show_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\%03u", *p); /* decimal escape: Lua's \ddd */
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* ---------------------------------------------------------------- socket spec */

/* The spec string at idx, checked with mh_sockspec_parse into *spec; NULL with why. */
static const char *get_spec(lua_State *L, int idx, const struct mh_config_key *k,
                            struct mh_sockspec *spec, char *why, size_t whylen)
{
	const char *s = get_string(L, idx, k, why, whylen);
	char reason[256];
	if (s != NULL && mh_sockspec_parse(s, spec, reason, sizeof(reason)) < 0) {
		mh_errf(why, whylen, "%s", reason);
		return NULL;
	}
	return s;
}

static int parse_spec(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                      const char *keypath, char *why, size_t whylen)
{
	struct mh_sockspec spec;
	const char *s = get_spec(L, idx, k, &spec, why, whylen);
	if (s == NULL)
		return -1;
	char **text = (char **)(void *)((char *)base + k->aux);
	free(*text);
	*text = mh_xstrdup(s);
	*FIELD(base, k, struct mh_sockspec) = spec;
	return 0;
}

static void show_spec(FILE *out, const void *base, const struct mh_config_key *k)
{
	const char *const *text = (const char *const *)(const void *)((const char *)base + k->aux);
	mh_config_show_string(out, *text ? *text : CFIELD(base, k, struct mh_sockspec)->text);
}

static const struct mh_config_kind kind_spec = {"a socket spec string", parse_spec, show_spec};

/* ------------------------------------------------------------------- fallback */

static int parse_fallback(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                          const char *keypath, char *why, size_t whylen)
{
	const char *s = get_string(L, idx, k, why, whylen);
	if (s == NULL)
		return -1;
	enum mh_status st;
	/* continue and skip are not final answers: a fallback must end the wait. */
	if (mh_status_parse(s, &st) < 0 || st == MH_ST_CONTINUE || st == MH_ST_SKIP)
		return mh_errf(why, whylen,
		               "unknown status '%s' (accept, tempfail, reject, discard)", s);
	*FIELD(base, k, enum mh_status) = st;
	return 0;
}

static void show_fallback(FILE *out, const void *base, const struct mh_config_key *k)
{
	mh_config_show_string(out, mh_status_name(*CFIELD(base, k, enum mh_status)));
}

static const struct mh_config_kind kind_fallback = {"a status name string", parse_fallback,
                                                    show_fallback};

/* -------------------------------------------------------------------- boolean */

static int parse_bool(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                      const char *keypath, char *why, size_t whylen)
{
	if (lua_type(L, idx) != LUA_TBOOLEAN)
		return wrong_type(L, idx, k, why, whylen);
	*FIELD(base, k, int) = lua_toboolean(L, idx);
	return 0;
}

static void show_bool(FILE *out, const void *base, const struct mh_config_key *k)
{
	fputs(*CFIELD(base, k, int) ? "true" : "false", out);
}

static const struct mh_config_kind kind_bool = {"a boolean", parse_bool, show_bool};

/* -------------------------------------------------------------------- seconds */

/* Seconds: a number in (min, max]; min is exclusive so "positive" is min 0. */
static int parse_seconds(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                         const char *keypath, char *why, size_t whylen)
{
	if (lua_type(L, idx) != LUA_TNUMBER)
		return wrong_type(L, idx, k, why, whylen);
	double v = lua_tonumber(L, idx);
	if (!(v > k->min && v <= k->max)) /* also refuses NaN */
		return mh_errf(why, whylen, "must be a number of seconds > %g and <= %g, got %s",
		               k->min, k->max, lua_tostring(L, idx));
	*FIELD(base, k, double) = v;
	return 0;
}

static void show_seconds(FILE *out, const void *base, const struct mh_config_key *k)
{
	show_number(out, *CFIELD(base, k, double));
}

static const struct mh_config_kind kind_seconds = {"a number (seconds)", parse_seconds,
                                                   show_seconds};

/* ---------------------------------------------------------- bytes and counts */

int mh_config_parse_bytes(const char *s, size_t *out)
{
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	}
	if (*end != '\0' || v > (SIZE_MAX >> shift))
		return -1;
	*out = (size_t)v << shift;
	return 0;
}

/* An integral Lua number in [min, max], or (bytes only) a "4M" string. */
static int parse_size(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                      int suffixes, char *why, size_t whylen)
{
	size_t v;
	if (lua_type(L, idx) == LUA_TNUMBER) {
		int isint;
		lua_Integer i = lua_tointegerx(L, idx, &isint);
		if (!isint || i < 0)
			return mh_errf(why, whylen, "must be a whole number >= 0, got %s",
			               lua_tostring(L, idx));
		v = (size_t)i;
	} else if (suffixes && lua_type(L, idx) == LUA_TSTRING) {
		const char *s = get_string(L, idx, k, why, whylen);
		if (s == NULL)
			return -1;
		if (mh_config_parse_bytes(s, &v) < 0)
			return mh_errf(why, whylen,
			               "bad size '%s' (a number, or like \"512K\", \"4M\", \"1G\")",
			               s);
	} else {
		return wrong_type(L, idx, k, why, whylen);
	}
	if ((double)v < k->min || (double)v > k->max)
		return mh_errf(why, whylen, "must be between %.0f and %.0f, got %zu", k->min,
		               k->max, v);
	*FIELD(base, k, size_t) = v;
	return 0;
}

static int parse_bytes(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                       const char *keypath, char *why, size_t whylen)
{
	return parse_size(L, idx, base, k, 1, why, whylen);
}

static int parse_count(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                       const char *keypath, char *why, size_t whylen)
{
	return parse_size(L, idx, base, k, 0, why, whylen);
}

static void show_bytes(FILE *out, const void *base, const struct mh_config_key *k)
{
	size_t v = *CFIELD(base, k, size_t);
	static const char units[] = "GMK";
	for (unsigned i = 0; i < 3; i++) {
		unsigned shift = 30 - 10 * i;
		if (v != 0 && (v & ((1ull << shift) - 1)) == 0) {
			fprintf(out, "\"%zu%c\"", v >> shift, units[i]);
			return;
		}
	}
	fprintf(out, "%zu", v);
}

static void show_count(FILE *out, const void *base, const struct mh_config_key *k)
{
	fprintf(out, "%zu", *CFIELD(base, k, size_t));
}

static const struct mh_config_kind kind_bytes = {"a size (a number or a string like \"4M\")",
                                                 parse_bytes, show_bytes};
static const struct mh_config_kind kind_count = {"a whole number", parse_count, show_count};

/* ----------------------------------------------------------------------- mode */

int mh_config_parse_mode(const char *s, unsigned *out)
{
	if (s[0] == '\0' || strspn(s, "01234567") != strlen(s) || strlen(s) > 4)
		return -1;
	unsigned long v = strtoul(s, NULL, 8);
	if (v > 0777)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_mode(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                      const char *keypath, char *why, size_t whylen)
{
	unsigned mode;
	if (lua_type(L, idx) == LUA_TNUMBER) {
		int isint;
		lua_Integer i = lua_tointegerx(L, idx, &isint);
		/* Lua has no octal literals: 0660 is the decimal 660. */
		if (!isint || i < 0 || i > 0777)
			return mh_errf(why, whylen,
			               "%s is not a mode (Lua numbers are decimal: write \"0%s\" "
			               "as a string)",
			               lua_tostring(L, idx), lua_tostring(L, idx));
		mode = (unsigned)i;
	} else if (lua_type(L, idx) == LUA_TSTRING) {
		const char *s = get_string(L, idx, k, why, whylen);
		if (s == NULL)
			return -1;
		if (mh_config_parse_mode(s, &mode) < 0)
			return mh_errf(why, whylen, "bad mode '%s' (octal, like \"0660\")", s);
	} else {
		return wrong_type(L, idx, k, why, whylen);
	}
	*FIELD(base, k, unsigned) = mode;
	return 0;
}

static void show_mode(FILE *out, const void *base, const struct mh_config_key *k)
{
	fprintf(out, "\"%04o\"", *CFIELD(base, k, unsigned));
}

static const struct mh_config_kind kind_mode = {"an octal mode string like \"0660\"", parse_mode,
                                                show_mode};

/* ------------------------------------------------------------------ log level */

/* Indexed by enum mh_log_level; "stats" is accepted for "statistics". */
static const char *const level_names[] = {"debug", "info", "statistics", "warn", "err"};
#define LEVEL_COUNT (sizeof(level_names) / sizeof(level_names[0]))
_Static_assert(LEVEL_COUNT == MH_LOG_ERR + 1, "one config name per enum mh_log_level");

const char *mh_config_log_level_name(enum mh_log_level lvl)
{
	return (unsigned)lvl < LEVEL_COUNT ? level_names[lvl] : "info";
}

static int parse_level(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                       const char *keypath, char *why, size_t whylen)
{
	const char *s = get_string(L, idx, k, why, whylen);
	if (s == NULL)
		return -1;
	if (strcmp(s, "stats") == 0)
		s = "statistics";
	for (unsigned i = 0; i < LEVEL_COUNT; i++)
		if (strcmp(s, level_names[i]) == 0) {
			*FIELD(base, k, enum mh_log_level) = (enum mh_log_level)i;
			return 0;
		}
	return mh_errf(why, whylen, "unknown log level '%s' (debug, info, statistics, warn, err)",
	               s);
}

static void show_level(FILE *out, const void *base, const struct mh_config_key *k)
{
	mh_config_show_string(out, mh_config_log_level_name(*CFIELD(base, k, enum mh_log_level)));
}

static const struct mh_config_kind kind_level = {"a log level string", parse_level, show_level};

/* ----------------------------------------------------------------------- path */

static int parse_path(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                      const char *keypath, char *why, size_t whylen)
{
	const char *s = get_string(L, idx, k, why, whylen);
	if (s == NULL)
		return -1;
	if (s[0] != '/')
		return mh_errf(why, whylen, "must be an absolute path, got '%s'", s);
	char **field = FIELD(base, k, char *);
	free(*field);
	*field = mh_xstrdup(s);
	return 0;
}

static void show_path(FILE *out, const void *base, const struct mh_config_key *k)
{
	mh_config_show_string(out, *CFIELD(base, k, char *));
}

static const struct mh_config_kind kind_path = {"a path string", parse_path, show_path};

/* ------------------------------------------------------------- plain names */

/* A user, group or facility name: non-empty, printable, no blanks. */
static const char *get_name(lua_State *L, int idx, const struct mh_config_key *k, char *why,
                            size_t whylen)
{
	const char *s = get_string(L, idx, k, why, whylen);
	if (s == NULL)
		return NULL;
	if (s[0] == '\0') {
		mh_errf(why, whylen, "must not be empty");
		return NULL;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (!isgraph(*p)) {
			mh_errf(why, whylen, "'%s' contains a blank or control character", s);
			return NULL;
		}
	return s;
}

static void set_string(void *base, const struct mh_config_key *k, const char *s)
{
	char **field = FIELD(base, k, char *);
	free(*field);
	*field = mh_xstrdup(s);
}

static int parse_name(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                      const char *keypath, char *why, size_t whylen)
{
	const char *s = get_name(L, idx, k, why, whylen);
	if (s == NULL)
		return -1;
	set_string(base, k, s);
	return 0;
}

static const struct mh_config_kind kind_name = {"a name string", parse_name, show_path};

/* syslog(3) facilities, as spelled in syslog.conf. */
static const char *const facilities[] = {
    "auth",   "authpriv", "cron",   "daemon", "ftp",    "kern",   "lpr",
    "mail",   "news",     "syslog", "user",   "uucp",   "local0", "local1",
    "local2", "local3",   "local4", "local5", "local6", "local7", NULL};

static int parse_facility(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                          const char *keypath, char *why, size_t whylen)
{
	const char *s = get_name(L, idx, k, why, whylen);
	if (s == NULL)
		return -1;
	for (const char *const *f = facilities; *f; f++)
		if (strcmp(*f, s) == 0) {
			set_string(base, k, s);
			return 0;
		}
	return mh_errf(why, whylen,
	               "unknown syslog facility '%s' (mail, daemon, local0..local7, ...)", s);
}

static const struct mh_config_kind kind_facility = {"a syslog facility string", parse_facility,
                                                    show_path};

/* Where log lines go: "stderr", "syslog", or an absolute file path. */
static int parse_log(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                     const char *keypath, char *why, size_t whylen)
{
	const char *s = get_string(L, idx, k, why, whylen);
	if (s == NULL)
		return -1;
	if (strcmp(s, "stderr") != 0 && strcmp(s, "syslog") != 0 && s[0] != '/')
		return mh_errf(why, whylen,
		               "must be \"stderr\", \"syslog\" or an absolute file path, got '%s'",
		               s);
	set_string(base, k, s);
	return 0;
}

static const struct mh_config_kind kind_log = {"\"stderr\", \"syslog\" or a path string", parse_log,
                                               show_path};

/* A socket spec kept as text (the daemon parses it when it opens it). */
static int parse_spec_text(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                           const char *keypath, char *why, size_t whylen)
{
	struct mh_sockspec spec;
	const char *s = get_spec(L, idx, k, &spec, why, whylen);
	if (s == NULL)
		return -1;
	set_string(base, k, s);
	return 0;
}

static const struct mh_config_kind kind_spec_text = {"a socket spec string", parse_spec_text,
                                                     show_path};

/* --------------------------------------------------------------------- argv */

/* A command: a non-empty list of strings, the first an absolute path. */
static int parse_argv(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                      const char *keypath, char *why, size_t whylen)
{
	if (lua_type(L, idx) != LUA_TTABLE)
		return wrong_type(L, idx, k, why, whylen);
	idx = lua_absindex(L, idx);
	size_t n;
	if (!mh_config_is_list(L, idx, &n) || n == 0)
		return mh_errf(why, whylen,
		               "expected a non-empty list of strings "
		               "({ \"/usr/sbin/x\", \"-f\" })");
	char **argv = mh_xcalloc(n + 1, sizeof(*argv));
	for (size_t i = 1; i <= n; i++) {
		int t = lua_rawgeti(L, idx, (lua_Integer)i);
		size_t len = 0;
		const char *a = t == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
		if (a == NULL || strlen(a) != len || (i == 1 && a[0] != '/')) {
			if (a == NULL)
				mh_errf(why, whylen, "item %zu: expected a string, got %s", i,
				        lua_typename(L, t));
			else if (strlen(a) != len)
				mh_errf(why, whylen, "item %zu contains a NUL byte", i);
			else
				mh_errf(why, whylen, "item 1 must be an absolute path, got '%s'",
				        a);
			lua_pop(L, 1);
			for (size_t j = 0; argv[j]; j++)
				free(argv[j]);
			free(argv);
			return -1;
		}
		argv[i - 1] = mh_xstrdup(a);
		lua_pop(L, 1);
	}
	char ***field = FIELD(base, k, char **);
	for (char **a = *field; a && *a; a++)
		free(*a);
	free(*field);
	*field = argv;
	return 0;
}

static void show_argv(FILE *out, const void *base, const struct mh_config_key *k)
{
	char *const *argv = *(char *const *const *)(const void *)((const char *)base + k->off);
	fputs("{ ", out);
	for (size_t i = 0; argv[i]; i++) {
		if (i)
			fputs(", ", out);
		mh_config_show_string(out, argv[i]);
	}
	fputs(" }", out);
}

static const struct mh_config_kind kind_argv = {"a list of strings", parse_argv, show_argv};

/* -------------------------------------------------------------- nested table */

static int parse_table(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                       const char *keypath, char *why, size_t whylen)
{
	if (lua_type(L, idx) != LUA_TTABLE)
		return mh_errf(why, whylen, "key '%s': expected %s, got %s", keypath, k->kind->what,
		               lua_typename(L, lua_type(L, idx)));
	char prefix[128];
	snprintf(prefix, sizeof(prefix), "%s.", keypath);
	return mh_config_parse_block(L, idx, base, k->sub, prefix, why, whylen);
}

static void show_table(FILE *out, const void *base, const struct mh_config_key *k)
{
	fputs("{ ", out);
	for (const struct mh_config_key *r = k->sub; r->name; r++) {
		fprintf(out, "%s%s = ", r == k->sub ? "" : ", ", r->name);
		r->kind->show(out, base, r);
	}
	fputs(" }", out);
}

static const struct mh_config_kind kind_table = {"a table", parse_table, show_table};

/* ------------------------------------------------------------------- when */

/*
 * A list of condition names. Only checked here: the names are resolved
 * by mh_config_cond once the whole file has run (a condition block may
 * stand after the milter naming it).
 */
static int parse_when(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                      const char *keypath, char *why, size_t whylen)
{
	if (lua_type(L, idx) != LUA_TTABLE)
		return wrong_type(L, idx, k, why, whylen);
	idx = lua_absindex(L, idx);
	size_t n;
	if (!mh_config_is_list(L, idx, &n))
		return mh_errf(why, whylen,
		               "expected a list of condition names, got a table with "
		               "named or sparse entries");
	for (size_t i = 1; i <= n; i++) {
		int t = lua_rawgeti(L, idx, (lua_Integer)i);
		lua_pop(L, 1);
		if (t != LUA_TSTRING)
			return mh_errf(why, whylen,
			               "item %zu: expected a condition name string, got %s", i,
			               lua_typename(L, t));
	}
	return 0;
}

static void show_when(FILE *out, const void *base, const struct mh_config_key *k)
{
	const size_t *n = (const size_t *)(const void *)((const char *)base + k->aux);
	struct mh_cond *const *const *when =
	    (struct mh_cond *const *const *)(const void *)((const char *)base + k->off);
	mh_config_show_when(out, *when, *n);
}

static const struct mh_config_kind kind_when = {"a list of condition names", parse_when, show_when};

/* ------------------------------------------------------------ policy stage */

/* Where a policy server is asked: "rcpt" (each recipient), "data", "eom". */
static int parse_stage(lua_State *L, int idx, void *base, const struct mh_config_key *k,
                       const char *keypath, char *why, size_t whylen)
{
	const char *s = get_string(L, idx, k, why, whylen);
	if (s == NULL)
		return -1;
	uint8_t code = strcmp(s, "rcpt") == 0   ? 'R'
	               : strcmp(s, "data") == 0 ? 'T'
	               : strcmp(s, "eom") == 0  ? 'E'
	                                        : 0;
	if (code == 0)
		return mh_errf(why, whylen, "unknown stage '%s' (rcpt, data, eom)", s);
	*FIELD(base, k, uint8_t) = code;
	return 0;
}

static void show_stage(FILE *out, const void *base, const struct mh_config_key *k)
{
	uint8_t code = *CFIELD(base, k, uint8_t);
	mh_config_show_string(out, code == 'T' ? "data" : code == 'E' ? "eom" : "rcpt");
}

static const struct mh_config_kind kind_stage = {"\"rcpt\", \"data\" or \"eom\"", parse_stage,
                                                 show_stage};

/* ----------------------------------------------------------------------- rows */

#define MGR(field) offsetof(struct mh_config, field)
#define MIL(field) offsetof(struct mh_child_conf, field)
#define DAY 86400.0

const struct mh_config_key mh_config_manager_keys[] = {
    {"listen", &kind_spec, MGR(listen), MGR(listen_text), 0, 0, NULL, NULL},
    {"socket_mode", &kind_mode, MGR(socket_mode), 0, 0, 0, NULL, NULL},
    {"fallback", &kind_fallback, MGR(hub.fallback), 0, 0, 0, NULL, NULL},
    {"body_memory_limit", &kind_bytes, MGR(hub.body_memory_limit), 0, 0, (double)(1ull << 40), NULL,
     NULL},
    {"tmpdir", &kind_path, MGR(tmpdir), 0, 0, 0, NULL, "not set ($TMPDIR, else /tmp)"},
    {"mta_timeout", &kind_seconds, MGR(hub.mta_timeout), 0, 0, DAY, NULL, NULL},
    /* Below libmilter's 65535 an ordinary body chunk would be refused. */
    {"max_payload", &kind_count, MGR(hub.max_payload), 0, 65535, 64 << 20, NULL, NULL},
    {"log_level", &kind_level, MGR(log_level), 0, 0, 0, NULL, NULL},
    {"log", &kind_log, MGR(log), 0, 0, 0, NULL, NULL},
    {"syslog_facility", &kind_facility, MGR(syslog_facility), 0, 0, 0, NULL, NULL},
    {"workers", &kind_count, MGR(workers), 0, 1, MH_WORKERS_MAX, NULL, NULL},
    {"user", &kind_name, MGR(user), 0, 0, 0, NULL, "not set (workers keep the master's user)"},
    {"group", &kind_name, MGR(group), 0, 0, 0, NULL, "not set (the user's primary group)"},
    {"socket_group", &kind_name, MGR(socket_group), 0, 0, 0, NULL,
     "not set (the listening socket keeps the master's group)"},
    {"pid_file", &kind_path, MGR(pid_file), 0, 0, 0, NULL, "not set (no pid file)"},
    {"daemonize", &kind_bool, MGR(daemonize), 0, 0, 0, NULL, NULL},
    {"drain_timeout", &kind_seconds, MGR(drain_timeout), 0, 0, DAY, NULL, NULL},
    {"control", &kind_spec_text, MGR(control), 0, 0, 0, NULL,
     "not set (" MH_CONTROL_DEFAULT ", if it can be created)"},
    {"control_mode", &kind_mode, MGR(control_mode), 0, 0, 0, NULL, NULL},
    {"stats", &kind_spec_text, MGR(stats), 0, 0, 0, NULL,
     "not set (no HTTP endpoint; e.g. \"inet:9425@127.0.0.1\")"},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct mh_config_key timeout_keys[] = {
    {"connect", &kind_seconds, MIL(connect_timeout), 0, 0, DAY, NULL, NULL},
    {"write", &kind_seconds, MIL(write_timeout), 0, 0, DAY, NULL, NULL},
    {"read", &kind_seconds, MIL(read_timeout), 0, 0, DAY, NULL, NULL},
    {"eom", &kind_seconds, MIL(eom_timeout), 0, 0, DAY, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};

/* A policy request: connect, then write + answer within read. */
static const struct mh_config_key policy_timeout_keys[] = {
    {"connect", &kind_seconds, MIL(connect_timeout), 0, 0, DAY, NULL, NULL},
    {"read", &kind_seconds, MIL(read_timeout), 0, 0, DAY, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};

const struct mh_config_key mh_config_milter_keys[] = {
    {"socket", &kind_spec, MIL(sock), MIL(socket_text), 0, 0, NULL, NULL},
    {"fallback", &kind_fallback, MIL(fallback), 0, 0, 0, NULL, NULL},
    {"timeouts", &kind_table, 0, 0, 0, 0, timeout_keys, NULL},
    {"evaluate", &kind_bool, MIL(evaluate), 0, 0, 0, NULL, NULL},
    {"enabled", &kind_bool, MIL(enabled), 0, 0, 0, NULL, NULL},
    {"when", &kind_when, MIL(when), MIL(nwhen), 0, 0, NULL,
     "not set (no conditions: the milter applies to every session)"},
    {"command", &kind_argv, MIL(command), 0, 0, 0, NULL,
     "not set (milterhub does not start this milter)"},
    {"user", &kind_name, MIL(user), 0, 0, 0, NULL, "not set (the manager's user)"},
    {"group", &kind_name, MIL(group), 0, 0, 0, NULL, "not set (the user's primary group)"},
    {"health_interval", &kind_seconds, MIL(health_interval), 0, 0, DAY, NULL, NULL},
    {"restart_delay", &kind_seconds, MIL(restart_delay), 0, 0, 3600, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};

/* policy "name" { ... } (issue 9): a Postfix policy server as a child. */
const struct mh_config_key mh_config_policy_keys[] = {
    {"socket", &kind_spec, MIL(sock), MIL(socket_text), 0, 0, NULL, NULL},
    {"stage", &kind_stage, MIL(policy_stage), 0, 0, 0, NULL, NULL},
    {"fallback", &kind_fallback, MIL(fallback), 0, 0, 0, NULL, NULL},
    {"timeouts", &kind_table, 0, 0, 0, 0, policy_timeout_keys, NULL},
    {"connections", &kind_count, MIL(policy_connections), 0, 1, 64, NULL, NULL},
    {"evaluate", &kind_bool, MIL(evaluate), 0, 0, 0, NULL, NULL},
    {"enabled", &kind_bool, MIL(enabled), 0, 0, 0, NULL, NULL},
    {"when", &kind_when, MIL(when), MIL(nwhen), 0, 0, NULL,
     "not set (no conditions: the policy server is asked in every session)"},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL},
};

/* ------------------------------------------------------------ block handling */

static const struct mh_config_key *find_row(const struct mh_config_key *rows, const char *name)
{
	for (const struct mh_config_key *r = rows; r->name; r++)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

/* Levenshtein distance, capped: names are short. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return 99;
	size_t d[64][64];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
			d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
	return d[la][lb];
}

/* Find the alphabetically first key of the table not in rows; 0 if none. */
static int first_unknown(lua_State *L, int idx, const struct mh_config_key *rows,
                         const char *prefix, char *why, size_t whylen)
{
	char *worst = NULL; /* the key to report so far */
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1); /* the value */
		if (lua_type(L, -1) != LUA_TSTRING) {
			/* lua_tostring would convert the key in place and break lua_next. */
			lua_pop(L, 1);
			free(worst);
			return mh_errf(why, whylen,
			               "a value without a name (write name = value, as in "
			               "socket = \"unix:/path\")");
		}
		const char *key = lua_tostring(L, -1);
		if (find_row(rows, key) == NULL && (worst == NULL || strcmp(key, worst) < 0)) {
			free(worst);
			worst = mh_xstrdup(key);
		}
	}
	if (worst == NULL)
		return 0;
	const struct mh_config_key *near = NULL;
	size_t best = 3; /* only a hint for a plausible typo */
	for (const struct mh_config_key *r = rows; r->name; r++) {
		size_t d = distance(worst, r->name);
		if (d < best) {
			best = d;
			near = r;
		}
	}
	if (near)
		mh_errf(why, whylen, "unknown key '%s%s' (did you mean '%s%s'?)", prefix, worst,
		        prefix, near->name);
	else
		mh_errf(why, whylen, "unknown key '%s%s'", prefix, worst);
	free(worst);
	return -1;
}

int mh_config_parse_block(lua_State *L, int idx, void *base, const struct mh_config_key *rows,
                          const char *prefix, char *why, size_t whylen)
{
	idx = lua_absindex(L, idx);
	if (first_unknown(L, idx, rows, prefix, why, whylen) < 0)
		return -1;
	for (const struct mh_config_key *r = rows; r->name; r++) {
		lua_pushstring(L, r->name);
		lua_rawget(L, idx);
		int rc = 0;
		if (!lua_isnil(L, -1)) {
			char keypath[128], reason[512];
			snprintf(keypath, sizeof(keypath), "%s%s", prefix, r->name);
			rc = r->kind->parse(L, -1, base, r, keypath, reason, sizeof(reason));
			if (rc < 0) {
				/* A nested table already names its own key. */
				if (r->kind == &kind_table)
					mh_errf(why, whylen, "%s", reason);
				else
					mh_errf(why, whylen, "key '%s': %s", keypath, reason);
			}
		}
		lua_pop(L, 1);
		if (rc < 0)
			return -1;
	}
	return 0;
}

void mh_config_show_block(FILE *out, const void *base, const struct mh_config_key *rows)
{
	for (const struct mh_config_key *r = rows; r->name; r++) {
		if (r->note && *CFIELD(base, r, char *) == NULL) {
			fprintf(out, "\t-- %s: %s\n", r->name, r->note);
			continue;
		}
		fprintf(out, "\t%s = ", r->name);
		r->kind->show(out, base, r);
		fputs(",\n", out);
	}
}

int mh_config_is_list(lua_State *L, int idx, size_t *n)
{
	size_t count = 0;

	idx = lua_absindex(L, idx);
	*n = lua_rawlen(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		count++;
		lua_pop(L, 1);
	}
	return count == *n;
}
