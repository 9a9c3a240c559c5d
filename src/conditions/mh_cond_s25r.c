/*
 * mh_cond_s25r - the "s25r" condition (design §2.7): does the client
 * look like a dynamic / end-user host by its reverse-DNS name?
 *
 * S25R ("Selective SMTP Rejection", Asami Hideo, gabacho-net.jp) is a
 * set of six regular expressions over the client's reverse name that
 * catch generic names given by ISPs to end-user lines (dialup, DSL,
 * cable, DHCP pools), plus "the client has no name at all". Such hosts
 * send little legitimate mail and most zombie spam, so the model use is
 * Rgrey: greylist only the clients for which this condition applies.
 *
 * Verdict, decided at the first stage it is asked (connect) and never
 * UNDECIDED - everything it needs is known at connect:
 *   1. ipv4_only (default true) and the client is IPv6 (family AF_INET6,
 *      or a name "[IPv6:...]")                    -> NOT_APPLICABLE
 *   2. the name is in `whitelist`                 -> NOT_APPLICABLE
 *   3. the name is in `blacklist`                 -> APPLIES
 *   4. the name is in the default whitelist       -> NOT_APPLICABLE
 *   5. the name is missing, empty, "unknown" or an address literal
 *      "[192.0.2.1]" (S25R: no reverse name)       -> APPLIES
 *   6. one of the six S25R rules matches          -> APPLIES
 *   7. otherwise                                  -> NOT_APPLICABLE
 * Explicit lists come first so the operator always has the last word:
 * a `whitelist` entry beats a `blacklist` entry, and a `blacklist` entry
 * beats the built-in default whitelist (blacklisting one noisy host
 * under a big sender's domain works without dropping the default).
 *
 * Options (struct mh_cond_opts from the config):
 *   whitelist  list  - entries rescuing a host (see below)
 *   blacklist  list  - entries forcing "looks dynamic"
 *   default_whitelist  bool (true) - use s25r_default_whitelist below;
 *                      false drops it (whitelist entries still count)
 *   ipv4_only  bool (true) - IPv6 clients never match
 * A list entry is, matched against the client name case-insensitively:
 *   "/re/"         POSIX extended regex, unanchored unless you anchor it
 *   "example.com"  or ".example.com": that name and every name below it
 *                  (an exact host name is the same thing: it matches
 *                  itself and any subdomain of it)
 * An address literal can be listed as it is written, "[192.0.2.7]";
 * for address ranges use the "remote-network" condition.
 *
 * Contract: mh_cond_s25r_new compiles every regex once (the six rules
 * as one alternation, each /re/ entry); eval only calls regexec
 * (REG_NOSUB) and string compares and allocates nothing itself (glibc's
 * regexec does one transient malloc/free inside). About 0.2-0.4 us per
 * eval on a static or dynamic name, ~0.1 us for whitelisted or
 * "unknown". The condition is read-only after creation and shared by
 * all sessions.
 *
 * Diagnostics (into err, NULL returned), e.g.
 *   milterhub.lua:12: condition "s25r": unknown key 'whitlist'
 *   milterhub.lua:13: condition "s25r": 'whitelist': bad regex /mx(/: ...
 *   milterhub.lua:14: condition "s25r": 'ipv4_only': expected true or false
 */
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "conditions/mh_cond.h"
#include "conditions/mh_cond_builtin.h"
#include "util/mh_buf.h"

/*
 * The published S25R rules, as in the Postfix regexp table of the
 * S25R pages (check_client_access regexp:...); Postfix regexp tables
 * are case-insensitive, hence REG_ICASE. "Name" below is the client's
 * reverse FQDN, "first label" its leftmost component.
 */
static const char *const s25r_rules[] = {
    /* rule 1: the first label holds two digit runs split by non-digits
     * (p4073-ipbf1003..., 203-0-113-5..., h219x110x17x38...); the
     * published rule ends in ".*\." (a dot must follow somewhere),
     * which milter-manager's copy drops */
    "^[^.]*[0-9][^0-9.]+[0-9].*\\.",
    /* rule 2: the first label holds five or more digits in a row */
    "^[^.]*[0-9]{5}",
    /* rule 3: the first or second label starts with a digit, in a name
     * of at least that label plus three more (the top three levels are
     * the provider's domain) */
    "^([^.]+\\.)?[0-9][^.]*\\.[^.]+\\..+\\.[a-z]",
    /* rule 4: the first label ends with a digit and the second holds
     * two digit runs split by a hyphen (...12.34-56.example.net) */
    "^[^.]*[0-9]\\.[^.]*[0-9]-[0-9]",
    /* rule 5: five or more levels, the first two labels ending with a
     * digit */
    "^[^.]*[0-9]\\.[^.]*[0-9]\\.[^.]+\\..+\\.",
    /* rule 6: the first label starts with dhcp, dialup, ppp or a DSL
     * flavour (adsl, cdsl, hdsl, rdsl, sdsl, vdsl, xdsl) and has a digit */
    "^(dhcp|dialup|ppp|[achrsvx]?dsl)[^.]*[0-9]",
};
#define S25R_NRULES (sizeof(s25r_rules) / sizeof(s25r_rules[0]))

/*
 * Big senders whose outbound reverse names trip the rules (Google's
 * mail-ed1-f45.google.com, Amazon SES's a8-12.smtp-out.amazonses.com,
 * Microsoft's mail-db8eur05on2101.outbound.protection.outlook.com, ...)
 * and that greylisting only delays. Each is a domain suffix entry.
 * `default_whitelist = false` drops the whole table.
 */
static const char *const s25r_default_whitelist[] = {
    "google.com", /* Gmail, Google Workspace: mail-*-f*.google.com */
    "googlemail.com", /* Gmail's old outbound names */
    "amazonses.com", /* Amazon SES: a*-*.smtp-out.amazonses.com */
    "outlook.com", /* Microsoft 365 / Outlook.com, incl. protection.outlook.com */
    "hotmail.com", /* legacy Hotmail outbound */
    "yahoo.com", /* Yahoo Mail: sonic*.mail.*.yahoo.com */
    "yahoo.co.jp", /* Yahoo! JAPAN */
    "yahoodns.net", /* Yahoo/AOL outbound reverse names */
    "mail.ru", /* Mail.Ru group */
    "icloud.com", /* Apple iCloud Mail */
    "me.com", /* Apple, older */
    "apple.com", /* Apple corporate and notification mail */
    "facebook.com", /* Meta notification mail */
    "mcsv.net", /* Mailchimp / Mandrill: mail*.*.mcsv.net */
    "mcdlv.net", /* Mailchimp */
    "mandrillapp.com", /* Mandrill transactional mail */
    "sendgrid.net", /* Twilio SendGrid: o*.*.sendgrid.net */
    "mailgun.net", /* Mailgun: m*-*.mailgun.net */
    "sparkpostmail.com", /* SparkPost: mta*.*.sparkpostmail.com */
    "salesforce.com", /* Salesforce / Exacttarget notification mail */
};
#define S25R_NDEFAULT (sizeof(s25r_default_whitelist) / sizeof(s25r_default_whitelist[0]))

/* One whitelist/blacklist entry: a domain suffix or a compiled regex. */
struct s25r_entry {
	char *domain; /* suffix without a leading dot; NULL for a regex */
	size_t len;
	bool is_regex;
	regex_t re;
};

struct s25r_list {
	struct s25r_entry *v;
	size_t n;
};

struct s25r {
	regex_t rules; /* the six rules joined "(r1)|(r2)|...": one pass, not six */
	struct s25r_list white, black;
	bool default_whitelist;
	bool ipv4_only;
};

/* Does re match name[0..len)? REG_STARTEND: no copy to drop a trailing dot. */
static bool name_matches(const regex_t *re, const char *name, size_t len)
{
	regmatch_t range = {.rm_so = 0, .rm_eo = (regoff_t)len};
	return regexec(re, name, 1, &range, REG_STARTEND) == 0;
}

/* Is name equal to domain or below it ("x.domain")? Case-insensitive. */
static bool domain_match(const char *name, size_t namelen, const char *domain, size_t len)
{
	if (namelen < len || strncasecmp(name + namelen - len, domain, len) != 0)
		return false;
	return namelen == len || name[namelen - len - 1] == '.';
}

static bool list_match(const struct s25r_list *l, const char *name, size_t namelen)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct s25r_entry *e = &l->v[i];
		if (e->is_regex ? name_matches(&e->re, name, namelen)
		                : domain_match(name, namelen, e->domain, e->len))
			return true;
	}
	return false;
}

static bool default_whitelisted(const char *name, size_t namelen)
{
	for (size_t i = 0; i < S25R_NDEFAULT; i++) {
		const char *d = s25r_default_whitelist[i];
		if (domain_match(name, namelen, d, strlen(d)))
			return true;
	}
	return false;
}

/* S25R "no reverse name": Sendmail and Postfix send "[addr]" or "unknown". */
static bool no_reverse_name(const char *name)
{
	return name == NULL || name[0] == '\0' || name[0] == '[' ||
	       strcasecmp(name, "unknown") == 0;
}

static bool is_ipv6_client(const struct mh_cond_ctx *ctx)
{
	if (ctx->client_family == AF_INET6)
		return true;
	/* Sendmail's literal for an IPv6 client without a name. */
	return ctx->client_name != NULL && strncasecmp(ctx->client_name, "[IPv6:", 6) == 0;
}

static enum mh_cond_verdict s25r_eval(const struct mh_cond *c, const struct mh_cond_ctx *ctx)
{
	const struct s25r *s = c->impl;
	const char *name = ctx->client_name;

	if (s->ipv4_only && is_ipv6_client(ctx))
		return MH_COND_NOT_APPLICABLE;
	if (name == NULL)
		name = "";
	size_t namelen = strlen(name);
	/* A fully qualified "host.example.com." is the same name. */
	if (namelen > 1 && name[namelen - 1] == '.')
		namelen--;

	/*
	 * The precedence of the manual above, in the order that costs least
	 * for the common static name: the whitelists can only turn APPLIES
	 * into NOT_APPLICABLE, so they are scanned only when it would apply.
	 */
	if (list_match(&s->black, name, namelen))
		return list_match(&s->white, name, namelen) ? MH_COND_NOT_APPLICABLE
		                                            : MH_COND_APPLIES;
	if (!no_reverse_name(name) && !name_matches(&s->rules, name, namelen))
		return MH_COND_NOT_APPLICABLE;
	if (list_match(&s->white, name, namelen))
		return MH_COND_NOT_APPLICABLE;
	if (s->default_whitelist && default_whitelisted(name, namelen))
		return MH_COND_NOT_APPLICABLE;
	return MH_COND_APPLIES;
}

static void list_free(struct s25r_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].is_regex)
			regfree(&l->v[i].re);
		free(l->v[i].domain);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Frees the type's data (c->impl); the name and c are mh_cond_free's. */
static void s25r_free(struct mh_cond *c)
{
	struct s25r *s = c->impl;
	if (s == NULL)
		return;
	regfree(&s->rules);
	list_free(&s->white);
	list_free(&s->black);
	free(s);
	c->impl = NULL;
}

static const struct mh_cond_ops s25r_ops = {
    .type = "s25r",
    .eval = s25r_eval,
    .free = s25r_free,
};

#define S25R_FLAGS (REG_EXTENDED | REG_ICASE | REG_NOSUB)

/* Parse one entry into l (grown by one). Returns 0, or -1 with err set. */
static int list_add(struct s25r_list *l, const char *file, const struct mh_cond_opt *o,
                    const char *text, char *err, size_t errlen)
{
	size_t len = strlen(text);
	struct s25r_entry e = {0};

	if (len > 0 && text[0] == '/') {
		if (len < 3 || text[len - 1] != '/') {
			snprintf(
			    err, errlen,
			    "%s:%d: condition \"s25r\": '%s': bad regex %s: expected /pattern/",
			    file, o->line, o->key, text);
			return -1;
		}
		char *pat = mh_xstrndup(text + 1, len - 2);
		int rc = regcomp(&e.re, pat, S25R_FLAGS);
		free(pat);
		if (rc != 0) {
			char why[128];
			regerror(rc, &e.re, why, sizeof(why));
			snprintf(err, errlen, "%s:%d: condition \"s25r\": '%s': bad regex %s: %s",
			         file, o->line, o->key, text, why);
			return -1;
		}
		e.is_regex = true;
	} else {
		const char *d = text[0] == '.' ? text + 1 : text;
		size_t dlen = strlen(d);
		if (dlen > 0 && d[dlen - 1] == '.')
			dlen--;
		if (dlen == 0 || memchr(d, '/', dlen) != NULL) {
			snprintf(err, errlen,
			         "%s:%d: condition \"s25r\": '%s': bad entry '%s': expected a host "
			         "name, a domain or /regex/",
			         file, o->line, o->key, text);
			return -1;
		}
		e.domain = mh_xstrndup(d, dlen);
		e.len = dlen;
	}
	l->v = mh_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = e;
	return 0;
}

static int parse_bool(const char *file, const struct mh_cond_opt *o, bool *out, char *err,
                      size_t errlen)
{
	if (o->nvalues == 1 && strcmp(o->values[0], "true") == 0)
		*out = true;
	else if (o->nvalues == 1 && strcmp(o->values[0], "false") == 0)
		*out = false;
	else {
		snprintf(err, errlen, "%s:%d: condition \"s25r\": '%s': expected true or false",
		         file, o->line, o->key);
		return -1;
	}
	return 0;
}

static int parse_opts(struct s25r *s, const struct mh_cond_opts *opts, char *err, size_t errlen)
{
	const char *file = opts->file != NULL ? opts->file : "(config)";

	for (size_t i = 0; i < opts->nopts; i++) {
		const struct mh_cond_opt *o = &opts->opts[i];
		struct s25r_list *l = NULL;
		if (strcmp(o->key, "whitelist") == 0)
			l = &s->white;
		else if (strcmp(o->key, "blacklist") == 0)
			l = &s->black;
		if (l != NULL) {
			for (size_t j = 0; j < o->nvalues; j++)
				if (list_add(l, file, o, o->values[j], err, errlen) != 0)
					return -1;
		} else if (strcmp(o->key, "default_whitelist") == 0) {
			if (parse_bool(file, o, &s->default_whitelist, err, errlen) != 0)
				return -1;
		} else if (strcmp(o->key, "ipv4_only") == 0) {
			if (parse_bool(file, o, &s->ipv4_only, err, errlen) != 0)
				return -1;
		} else {
			snprintf(err, errlen, "%s:%d: condition \"s25r\": unknown key '%s'", file,
			         o->line, o->key);
			return -1;
		}
	}
	return 0;
}

/* Join the rule table into one alternation "(r1)|(r2)|..." and compile it. */
static int compile_rules(regex_t *re, char *err, size_t errlen)
{
	struct mh_buf pat = MH_BUF_INIT;
	for (size_t i = 0; i < S25R_NRULES; i++)
		mh_buf_printf(&pat, "%s(%s)", i > 0 ? "|" : "", s25r_rules[i]);
	int rc = regcomp(re, (const char *)mh_buf_head(&pat), S25R_FLAGS);
	mh_buf_free(&pat);
	if (rc != 0) {
		/* The table is ours: a failure is a bug or a broken libc. */
		char why[128];
		regerror(rc, re, why, sizeof(why));
		snprintf(err, errlen, "condition \"s25r\": built-in rules: %s", why);
		return -1;
	}
	return 0;
}

struct mh_cond *mh_cond_s25r_new(const struct mh_cond_opts *opts, char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	else {
		static char sink[1];
		err = sink; /* snprintf(..., 0, ...) writes nothing: reasons are dropped */
		errlen = 0;
	}

	struct s25r *s = mh_xcalloc(1, sizeof(*s));
	s->default_whitelist = true;
	s->ipv4_only = true;
	if (compile_rules(&s->rules, err, errlen) != 0) {
		free(s);
		return NULL;
	}
	struct mh_cond *c = mh_xcalloc(1, sizeof(*c));
	c->ops = &s25r_ops;
	c->impl = s;
	if (opts != NULL && parse_opts(s, opts, err, errlen) != 0) {
		s25r_free(c);
		free(c);
		return NULL;
	}
	return c;
}
