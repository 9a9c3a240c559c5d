/*
 * testmilter_script - parse --on and --negotiate into a tm_script.
 *
 * Syntax (docs/tools.md, milterhub-testmilter):
 *   --on STAGE[:QUAL]=ACTION[,ACTION...]
 *     STAGE and its qualifier are parsed here, the action list by
 *     testmilter_action.c. A bracketed mail/rcpt qualifier ends at its '>'
 *     (SRS addresses hold '=').
 *   --negotiate ITEM[,ITEM...]
 *     flag names, version=N, actions=NUM, macros=STAGE:LIST.
 * Nothing here does I/O; see testmilter_script.h for the contract.
 */
#include "testmilter_script.h"
#include "util/mh_err.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/mh_buf.h"

static const char *const stage_names[TM_STAGE_COUNT] = {
    [TM_STAGE_CONNECT] = "connect", [TM_STAGE_HELO] = "helo",   [TM_STAGE_MAIL] = "mail",
    [TM_STAGE_RCPT] = "rcpt",       [TM_STAGE_DATA] = "data",   [TM_STAGE_HEADER] = "header",
    [TM_STAGE_EOH] = "eoh",         [TM_STAGE_BODY] = "body",   [TM_STAGE_EOM] = "eom",
    [TM_STAGE_UNKNOWN] = "unknown", [TM_STAGE_ABORT] = "abort",
};

struct flag_name {
	const char *name;
	uint32_t bit;
};

static const struct flag_name flag_names[] = {
    {"no-connect", MH_PROTO_NOCONNECT},
    {"no-helo", MH_PROTO_NOHELO},
    {"no-mail", MH_PROTO_NOMAIL},
    {"no-rcpt", MH_PROTO_NORCPT},
    {"no-body", MH_PROTO_NOBODY},
    {"no-hdrs", MH_PROTO_NOHDRS},
    {"no-eoh", MH_PROTO_NOEOH},
    {"nr-hdr", MH_PROTO_NR_HDR},
    {"no-unknown", MH_PROTO_NOUNKNOWN},
    {"no-data", MH_PROTO_NODATA},
    {"skip", MH_PROTO_SKIP},
    {"rcpt-rej", MH_PROTO_RCPT_REJ},
    {"nr-conn", MH_PROTO_NR_CONN},
    {"nr-helo", MH_PROTO_NR_HELO},
    {"nr-mail", MH_PROTO_NR_MAIL},
    {"nr-rcpt", MH_PROTO_NR_RCPT},
    {"nr-data", MH_PROTO_NR_DATA},
    {"nr-unkn", MH_PROTO_NR_UNKN},
    {"nr-eoh", MH_PROTO_NR_EOH},
    {"nr-body", MH_PROTO_NR_BODY},
    {"leadspc", MH_PROTO_HDR_LEADSPC},
};
#define N_FLAG_NAMES (sizeof(flag_names) / sizeof(flag_names[0]))

/* Macro-list stage names of --negotiate macros=STAGE:LIST. */
static const struct {
	const char *name;
	enum mh_macro_stage stage;
} macro_stages[] = {
    {"connect", MH_STAGE_CONNECT}, {"helo", MH_STAGE_HELO}, {"mail", MH_STAGE_MAIL},
    {"rcpt", MH_STAGE_RCPT},       {"data", MH_STAGE_DATA}, {"eoh", MH_STAGE_EOH},
    {"eom", MH_STAGE_EOM},
};

const char *tm_stage_name(enum tm_stage st)
{
	if (st < 0 || st >= TM_STAGE_COUNT)
		return "none";
	return stage_names[st];
}

enum tm_stage tm_stage_parse(const char *name, size_t len)
{
	for (int i = 0; i < TM_STAGE_COUNT; i++)
		if (strlen(stage_names[i]) == len && strncmp(stage_names[i], name, len) == 0)
			return (enum tm_stage)i;
	return TM_STAGE_NONE;
}

enum tm_stage tm_stage_of_cmd(uint8_t code)
{
	switch (code) {
	case MH_CMD_CONNECT:
		return TM_STAGE_CONNECT;
	case MH_CMD_HELO:
		return TM_STAGE_HELO;
	case MH_CMD_MAIL:
		return TM_STAGE_MAIL;
	case MH_CMD_RCPT:
		return TM_STAGE_RCPT;
	case MH_CMD_DATA:
		return TM_STAGE_DATA;
	case MH_CMD_HEADER:
		return TM_STAGE_HEADER;
	case MH_CMD_EOH:
		return TM_STAGE_EOH;
	case MH_CMD_BODY:
		return TM_STAGE_BODY;
	case MH_CMD_EOB:
		return TM_STAGE_EOM;
	case MH_CMD_UNKNOWN:
		return TM_STAGE_UNKNOWN;
	case MH_CMD_ABORT:
		return TM_STAGE_ABORT;
	default:
		return TM_STAGE_NONE;
	}
}

void tm_script_init(struct tm_script *s)
{
	memset(s, 0, sizeof(*s));
	s->version = 6;
}

void tm_script_free(struct tm_script *s)
{
	for (size_t i = 0; i < s->nrules; i++) {
		for (size_t j = 0; j < s->rules[i].nacts; j++)
			tm_action_free(&s->rules[i].acts[j]);
		free(s->rules[i].acts);
		free(s->rules[i].qual);
	}
	free(s->rules);
	for (int i = 0; i < MH_STAGE_COUNT; i++)
		free(s->macros[i]);
	tm_script_init(s);
}

/* "<a@x>" -> "a@x"; other forms unchanged. *len is updated. */
static const char *strip_brackets(const char *s, size_t *len)
{
	if (*len >= 2 && s[0] == '<' && s[*len - 1] == '>') {
		*len -= 2;
		return s + 1;
	}
	return s;
}

/* Stages whose qualifier is an address: sender (mail) or recipient (rcpt). */
static int is_address_stage(enum tm_stage st)
{
	return st == TM_STAGE_MAIL || st == TM_STAGE_RCPT;
}

static struct tm_rule *rule_get(struct tm_script *s, enum tm_stage st, const char *qual,
                                size_t qlen)
{
	struct tm_rule *r;

	for (size_t i = 0; i < s->nrules; i++) {
		r = &s->rules[i];
		if (r->stage != st)
			continue;
		if (qual == NULL ? r->qual == NULL
		                 : r->qual != NULL && strlen(r->qual) == qlen &&
		                       strncasecmp(r->qual, qual, qlen) == 0)
			return r;
	}
	s->rules = mh_xrealloc(s->rules, (s->nrules + 1) * sizeof(*s->rules));
	r = &s->rules[s->nrules++];
	memset(r, 0, sizeof(*r));
	r->stage = st;
	r->qual = qual ? mh_xstrndup(qual, qlen) : NULL;
	return r;
}

int tm_script_add_on(struct tm_script *s, const char *arg, char *err, size_t errlen)
{
	const char *p = arg, *qual = NULL, *eq;
	size_t qlen = 0;
	enum tm_stage st;
	struct tm_action *acts = NULL;
	size_t nacts = 0;
	struct tm_rule *r;

	while (*p != '\0' && *p != ':' && *p != '=')
		p++;
	st = tm_stage_parse(arg, (size_t)(p - arg));
	if (st == TM_STAGE_NONE)
		return mh_errf(err, errlen, "--on %s: unknown stage '%.*s'", arg, (int)(p - arg),
		               arg);
	if (*p == ':') {
		qual = p + 1;
		/* a bracketed address may hold '=' (SRS): it ends at '>' */
		if (*qual == '<' && strchr(qual, '>') != NULL)
			eq = strchr(strchr(qual, '>'), '=');
		else
			eq = strchr(qual, '=');
		if (eq == NULL)
			return mh_errf(err, errlen, "--on %s: expected STAGE=ACTION", arg);
		qlen = (size_t)(eq - qual);
		if (st != TM_STAGE_MAIL && st != TM_STAGE_RCPT && st != TM_STAGE_HEADER)
			return mh_errf(err, errlen,
			               "--on %s: only mail, rcpt and header take a qualifier", arg);
		if (is_address_stage(st))
			qual = strip_brackets(qual, &qlen);
		if (qlen == 0)
			return mh_errf(err, errlen, "--on %s: empty qualifier", arg);
	} else if (*p == '=') {
		eq = p;
	} else {
		return mh_errf(err, errlen, "--on %s: expected STAGE=ACTION", arg);
	}

	if (tm_action_parse_list(eq + 1, &acts, &nacts, err, errlen) < 0) {
		char inner[200];
		snprintf(inner, sizeof(inner), "%s", err ? err : "");
		for (size_t i = 0; i < nacts; i++)
			tm_action_free(&acts[i]);
		free(acts);
		return mh_errf(err, errlen, "--on %s: %s", arg, inner);
	}
	if (st == TM_STAGE_ABORT) {
		/* nothing is ever sent for 'A': only timing and connection control */
		for (size_t i = 0; i < nacts; i++) {
			enum tm_action_kind k = acts[i].kind;
			if (k != TM_ACT_DELAY && k != TM_ACT_CLOSE && k != TM_ACT_HANG) {
				for (size_t j = 0; j < nacts; j++)
					tm_action_free(&acts[j]);
				free(acts);
				return mh_errf(err, errlen,
				               "--on %s: abort takes only delay, close and hang",
				               arg);
			}
		}
	}
	r = rule_get(s, st, qual, qlen);
	r->acts = mh_xrealloc(r->acts, (r->nacts + nacts) * sizeof(*acts));
	memcpy(r->acts + r->nacts, acts, nacts * sizeof(*acts));
	r->nacts += nacts;
	free(acts);
	return 0;
}

static int parse_negotiate_item(struct tm_script *s, const char *it, size_t n, char *err,
                                size_t errlen)
{
	char buf[32];

	if (n > 8 && strncmp(it, "version=", 8) == 0) {
		uint32_t v;
		if (tm_parse_u32(it + 8, n - 8, 6, &v) < 0 || v < 2)
			return mh_errf(err, errlen, "--negotiate: version must be 2..6");
		s->version = v;
		return 0;
	}
	if (n > 8 && strncmp(it, "actions=", 8) == 0) {
		char *end;
		unsigned long v;
		if (n - 8 >= sizeof(buf))
			return mh_errf(err, errlen, "--negotiate: bad actions value");
		memcpy(buf, it + 8, n - 8);
		buf[n - 8] = '\0';
		errno = 0;
		v = strtoul(buf, &end, 0);
		if (errno != 0 || *end != '\0' || !isdigit((unsigned char)buf[0]) || v > UINT32_MAX)
			return mh_errf(err, errlen, "--negotiate: bad actions value '%s'", buf);
		s->actions = (uint32_t)v;
		s->actions_set = 1;
		return 0;
	}
	if (n > 7 && strncmp(it, "macros=", 7) == 0) {
		const char *st = it + 7, *colon = memchr(st, ':', n - 7);
		size_t stlen;
		char *list, *old;
		int idx = -1;
		if (colon == NULL)
			return mh_errf(err, errlen, "--negotiate: macros=STAGE:LIST expected");
		stlen = (size_t)(colon - st);
		for (size_t i = 0; i < sizeof(macro_stages) / sizeof(macro_stages[0]); i++)
			if (strlen(macro_stages[i].name) == stlen &&
			    strncmp(macro_stages[i].name, st, stlen) == 0)
				idx = (int)macro_stages[i].stage;
		if (idx < 0)
			return mh_errf(err, errlen, "--negotiate: unknown macro stage '%.*s'",
			               (int)stlen, st);
		list = mh_xstrndup(colon + 1, (size_t)(it + n - colon - 1));
		for (char *c = list; *c != '\0'; c++)
			if (*c == ';')
				*c = ' ';
		old = s->macros[idx];
		if (old != NULL && *old != '\0' && *list != '\0') {
			/* a repeated stage extends its list */
			struct mh_buf b = MH_BUF_INIT;
			mh_buf_printf(&b, "%s %s", old, list);
			free(list);
			list = mh_xstrdup((const char *)mh_buf_head(&b));
			mh_buf_free(&b);
		} else if (old != NULL && *list == '\0') {
			free(list);
			list = mh_xstrdup(old);
		}
		free(old);
		s->macros[idx] = list;
		return 0;
	}
	for (size_t i = 0; i < N_FLAG_NAMES; i++) {
		if (strlen(flag_names[i].name) == n && strncmp(flag_names[i].name, it, n) == 0) {
			s->protocol |= flag_names[i].bit;
			return 0;
		}
	}
	return mh_errf(err, errlen, "--negotiate: unknown item '%.*s'", (int)n, it);
}

int tm_script_add_negotiate(struct tm_script *s, const char *arg, char *err, size_t errlen)
{
	const char *p = arg;

	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *it = p;
		while (n > 0 && *it == ' ') {
			it++;
			n--;
		}
		while (n > 0 && it[n - 1] == ' ')
			n--;
		if (n == 0)
			return mh_errf(err, errlen, "--negotiate %s: empty item", arg);
		if (parse_negotiate_item(s, it, n, err, errlen) < 0)
			return -1;
		if (end == NULL)
			return 0;
		p = end + 1;
	}
}

const struct tm_rule *tm_script_find(const struct tm_script *s, enum tm_stage stage,
                                     const char *arg)
{
	const struct tm_rule *plain = NULL;
	size_t alen = arg ? strlen(arg) : 0;

	if (arg != NULL && is_address_stage(stage))
		arg = strip_brackets(arg, &alen);
	for (size_t i = 0; i < s->nrules; i++) {
		const struct tm_rule *r = &s->rules[i];
		if (r->stage != stage)
			continue;
		if (r->qual == NULL) {
			plain = r;
			continue;
		}
		if (arg != NULL && strlen(r->qual) == alen && strncasecmp(r->qual, arg, alen) == 0)
			return r;
	}
	return plain;
}

void tm_script_want(const struct tm_script *s, const struct mh_optneg *offer,
                    struct mh_optneg *want)
{
	/* libmilter: an offer of 0 means the version-1 sets */
	uint32_t offered_act = offer->actions ? offer->actions : 0x0F;
	uint32_t offered_proto = offer->protocol ? offer->protocol : 0x3F;
	/* an older milter (version=N) knows only its version's flags */
	uint32_t v = s->version < offer->version ? s->version : offer->version;

	memset(want, 0, sizeof(*want));
	want->version = s->version;
	want->actions = s->actions_set ? s->actions : offered_act & mh_optneg_action_mask(v);
	want->protocol = s->protocol | (offered_proto & MH_PROTO_SKIP & mh_optneg_protocol_mask(v));
	for (int i = 0; i < MH_STAGE_COUNT; i++)
		want->macros[i] = s->macros[i];
}
