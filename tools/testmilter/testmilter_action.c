/*
 * testmilter_action - the ACTION grammar of --on (docs/tools.md): split an
 * action list, decode escapes, parse each action into a tm_action.
 *
 * Splitting: a comma starts a new action only when an action name follows
 * it (spaces allowed), so texts may hold commas; "\," forces a literal
 * comma. In every action "\n" is a newline, "\t" a tab, "\\" a
 * backslash. repl-body and reply turn newlines into CRLF; header values
 * keep a bare LF (milter folding, protocol §3.2). Pure: no I/O.
 */
#include "testmilter_action.h"
#include "util/mh_err.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mh_buf.h"

struct action_name {
	const char *name;
	enum tm_action_kind kind;
};

static const struct action_name action_names[] = {
    {"continue", TM_ACT_CONTINUE},
    {"accept", TM_ACT_ACCEPT},
    {"reject", TM_ACT_REJECT},
    {"tempfail", TM_ACT_TEMPFAIL},
    {"discard", TM_ACT_DISCARD},
    {"skip", TM_ACT_SKIP},
    {"reply", TM_ACT_REPLY},
    {"delay", TM_ACT_DELAY},
    {"hang", TM_ACT_HANG},
    {"close", TM_ACT_CLOSE},
    {"garbage", TM_ACT_GARBAGE},
    {"progress", TM_ACT_PROGRESS},
    {"add-header", TM_ACT_ADD_HEADER},
    {"ins-header", TM_ACT_INS_HEADER},
    {"chg-header", TM_ACT_CHG_HEADER},
    {"add-rcpt", TM_ACT_ADD_RCPT},
    {"add-rcpt-par", TM_ACT_ADD_RCPT_PAR},
    {"del-rcpt", TM_ACT_DEL_RCPT},
    {"chg-from", TM_ACT_CHG_FROM},
    {"repl-body", TM_ACT_REPL_BODY},
    {"quarantine", TM_ACT_QUARANTINE},
};
#define N_ACTION_NAMES (sizeof(action_names) / sizeof(action_names[0]))

int tm_action_is_decision(enum tm_action_kind k)
{
	return k <= TM_ACT_REPLY;
}

void tm_action_free(struct tm_action *a)
{
	free(a->a);
	free(a->b);
}

/* Length of an action name at p when one is there (followed by ':' ',' or end), else 0. */
static size_t action_name_at(const char *p)
{
	for (size_t i = 0; i < N_ACTION_NAMES; i++) {
		size_t n = strlen(action_names[i].name);
		if (strncmp(p, action_names[i].name, n) == 0 &&
		    (p[n] == ':' || p[n] == ',' || p[n] == '\0'))
			return n;
	}
	return 0;
}

/* Decode the escapes of one raw action token into a fresh string. */
static char *unescape(const char *p, size_t n)
{
	char *out = mh_xmalloc(n + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\' && i + 1 < n) {
			char c = p[i + 1];
			if (c == 'n' || c == 't' || c == '\\' || c == ',') {
				out[o++] = c == 'n' ? '\n' : c == 't' ? '\t' : c;
				i++;
				continue;
			}
		}
		out[o++] = p[i];
	}
	out[o] = '\0';
	return out;
}

/* Copy with every LF not preceded by CR turned into CRLF. */
static char *crlf_dup(const char *s, size_t *outlen)
{
	struct mh_buf b = MH_BUF_INIT;
	char *r;

	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			mh_buf_append_byte(&b, '\r');
		mh_buf_append_byte(&b, (uint8_t)s[i]);
	}
	*outlen = mh_buf_size(&b);
	r = mh_xstrndup(b.len ? (const char *)mh_buf_head(&b) : "", *outlen);
	mh_buf_free(&b);
	return r;
}

int tm_parse_u32(const char *s, size_t n, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > max)
			return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/*
 * End of an address field: the first ':' outside <...> and [...], or the
 * string's end. Lets "<a@[IPv6:::1]>:ARGS" keep its colons.
 */
static const char *addr_end(const char *p)
{
	int angle = 0, square = 0;

	for (; *p != '\0'; p++) {
		if (*p == '<')
			angle++;
		else if (*p == '>' && angle > 0)
			angle--;
		else if (*p == '[')
			square++;
		else if (*p == ']' && square > 0)
			square--;
		else if (*p == ':' && angle == 0 && square == 0)
			break;
	}
	return p;
}

/* "ddd " or "ddd-" at the start of a reply line. */
static int has_reply_code(const char *p, size_t n)
{
	return n >= 4 && isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
	       isdigit((unsigned char)p[2]) && (p[3] == ' ' || p[3] == '-');
}

/*
 * The 'y' text "CODE XCODE TEXT" (empty parts left out). A TEXT of several
 * lines becomes a multi-line reply joined by CRLF: the first line gets
 * "CODE-", a later line already starting with a code is kept as written,
 * any other line gets CODE and XCODE like smfi_setmlreply does.
 */
static char *build_reply(const char *code, const char *xcode, size_t xlen, const char *text,
                         size_t *outlen)
{
	struct mh_buf b = MH_BUF_INIT;
	const char *line = text;
	char *r;

	for (int first = 1;; first = 0) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (!first && has_reply_code(line, n)) {
			mh_buf_append(&b, line, n);
		} else {
			mh_buf_append(&b, code, 3);
			if (xlen > 0 || n > 0 || nl != NULL)
				mh_buf_append_byte(&b, nl != NULL ? '-' : ' ');
			if (xlen > 0) {
				mh_buf_append(&b, xcode, xlen);
				if (n > 0)
					mh_buf_append_byte(&b, ' ');
			}
			mh_buf_append(&b, line, n);
		}
		if (nl == NULL)
			break;
		mh_buf_append(&b, "\r\n", 2);
		line = nl + 1;
	}
	*outlen = mh_buf_size(&b);
	r = mh_xstrndup((const char *)mh_buf_head(&b), *outlen);
	mh_buf_free(&b);
	return r;
}

/* Parameters of the action with a parameter (params = text after "name:"). */
static int parse_params(struct tm_action *a, const char *name, const char *params, char *err,
                        size_t errlen)
{
	const char *c1, *c2;

	switch (a->kind) {
	case TM_ACT_REPLY:
		c1 = strchr(params, ':');
		c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL)
			return mh_errf(err, errlen, "reply needs CODE:XCODE:TEXT");
		if (c1 - params != 3 || !isdigit((unsigned char)params[0]) ||
		    !isdigit((unsigned char)params[1]) || !isdigit((unsigned char)params[2]))
			return mh_errf(err, errlen, "reply: CODE must be three digits");
		a->a = build_reply(params, c1 + 1, (size_t)(c2 - c1 - 1), c2 + 1, &a->alen);
		return 0;
	case TM_ACT_DELAY:
		if (tm_parse_u32(params, strlen(params), 86400000u, &a->num) < 0)
			return mh_errf(err, errlen, "delay: MS must be 0..86400000");
		return 0;
	case TM_ACT_ADD_HEADER:
		c1 = strchr(params, ':');
		if (c1 == NULL || c1 == params)
			return mh_errf(err, errlen, "add-header needs NAME:VALUE");
		a->a = mh_xstrndup(params, (size_t)(c1 - params));
		a->b = mh_xstrdup(c1 + 1);
		return 0;
	case TM_ACT_INS_HEADER:
		c1 = strchr(params, ':');
		c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL || c2 == c1 + 1)
			return mh_errf(err, errlen, "ins-header needs IDX:NAME:VALUE");
		if (tm_parse_u32(params, (size_t)(c1 - params), UINT32_MAX, &a->num) < 0)
			return mh_errf(err, errlen, "ins-header: IDX must be a number");
		a->a = mh_xstrndup(c1 + 1, (size_t)(c2 - c1 - 1));
		a->b = mh_xstrdup(c2 + 1);
		return 0;
	case TM_ACT_CHG_HEADER:
		c1 = strchr(params, ':');
		c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL || c1 == params)
			return mh_errf(err, errlen, "chg-header needs NAME:IDX:VALUE");
		if (tm_parse_u32(c1 + 1, (size_t)(c2 - c1 - 1), UINT32_MAX, &a->num) < 0)
			return mh_errf(err, errlen, "chg-header: IDX must be a number");
		a->a = mh_xstrndup(params, (size_t)(c1 - params));
		a->b = mh_xstrdup(c2 + 1);
		return 0;
	case TM_ACT_ADD_RCPT:
	case TM_ACT_DEL_RCPT:
		a->a = mh_xstrdup(params);
		return 0;
	case TM_ACT_ADD_RCPT_PAR:
	case TM_ACT_CHG_FROM:
		/* ADDR[:ARGS]; ARGS absent = no second string on the wire */
		c1 = addr_end(params);
		a->a = mh_xstrndup(params, (size_t)(c1 - params));
		if (*c1 == ':')
			a->b = mh_xstrdup(c1 + 1);
		return 0;
	case TM_ACT_REPL_BODY:
		a->a = crlf_dup(params, &a->alen);
		return 0;
	case TM_ACT_QUARANTINE:
		a->a = mh_xstrdup(params);
		return 0;
	default:
		return mh_errf(err, errlen, "%s takes no argument", name);
	}
}

/* Parse one unescaped action token ("name" or "name:params"). */
static int parse_action(const char *tok, struct tm_action *a, char *err, size_t errlen)
{
	const char *colon = strchr(tok, ':');
	size_t n = colon ? (size_t)(colon - tok) : strlen(tok);
	const struct action_name *an = NULL;

	memset(a, 0, sizeof(*a));
	for (size_t i = 0; i < N_ACTION_NAMES; i++)
		if (strlen(action_names[i].name) == n && strncmp(action_names[i].name, tok, n) == 0)
			an = &action_names[i];
	if (an == NULL)
		return mh_errf(err, errlen, "unknown action '%.*s'", (int)n, tok);
	a->kind = an->kind;
	if (colon == NULL) {
		switch (a->kind) {
		case TM_ACT_CONTINUE:
		case TM_ACT_ACCEPT:
		case TM_ACT_REJECT:
		case TM_ACT_TEMPFAIL:
		case TM_ACT_DISCARD:
		case TM_ACT_SKIP:
		case TM_ACT_HANG:
		case TM_ACT_CLOSE:
		case TM_ACT_GARBAGE:
		case TM_ACT_PROGRESS:
			return 0;
		default:
			return mh_errf(err, errlen, "%s needs an argument ('%s:...')", an->name,
			               an->name);
		}
	}
	if (parse_params(a, an->name, colon + 1, err, errlen) < 0) {
		tm_action_free(a);
		return -1;
	}
	return 0;
}

/* Split the action list at commas that start a new action; parse each. */
int tm_action_parse_list(const char *p, struct tm_action **acts, size_t *nacts, char *err,
                         size_t errlen)
{
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return mh_errf(err, errlen, "empty action list");
	while (*p != '\0') {
		const char *q = p, *next = NULL;
		struct tm_action a;
		char *tok;
		int rc;

		for (; *q != '\0'; q++) {
			if (*q == '\\' && q[1] != '\0') {
				q++;
				continue;
			}
			if (*q == ',') {
				const char *r = q + 1;
				while (*r == ' ')
					r++;
				if (action_name_at(r) > 0) {
					next = r;
					break;
				}
			}
		}
		tok = unescape(p, (size_t)(q - p));
		rc = parse_action(tok, &a, err, errlen);
		free(tok);
		if (rc < 0)
			return -1;
		*acts = mh_xrealloc(*acts, (*nacts + 1) * sizeof(**acts));
		(*acts)[(*nacts)++] = a;
		p = next != NULL ? next : q;
	}
	return 0;
}
