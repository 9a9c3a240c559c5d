/*
 * mh_cond_lists - conditions on envelope addresses (design §2.7).
 *
 * "restrict-accounts": apply the child only to mail for some accounts.
 *	accounts      - list of entries: "user@example.com" (that address),
 *	                "example.com" or "@example.com" (any address in that
 *	                domain), "/regex/" (POSIX extended, case-insensitive,
 *	                matched against the whole address without <>)
 *	accounts_file - file(s) with one such entry per line; blank lines
 *	                and lines starting with '#' are ignored
 *   Decided per recipient at RCPT: APPLIES when ctx->rcpt matches, else
 *   NOT_APPLICABLE (that recipient only; the hub scopes it). UNDECIDED at
 *   every other stage. Comparison is case-insensitive, without <>.
 *
 * "trusted-sender": the envelope sender's domain is one we trust.
 *	domains      - list of "example.com" / "@example.com"
 *	domains_file - file(s), same line format as accounts_file
 *	macro        - macro set for the child when trusted
 *	               (default "{trusted_domain}")
 *	macro_value  - its value (default "yes")
 *   Decided at MAIL: trusted -> ctx->set_macro(macro, macro_value) and
 *   APPLIES; otherwise (null sender <> included) NOT_APPLICABLE.
 *   UNDECIDED before MAIL.
 *
 * A relative file name is taken relative to the configuration file's
 * directory. Files are read once, at creation: a reload re-reads them.
 * Everything is lowercased and sorted at creation; eval does binary
 * searches and, for patterns, regexec on a stack copy (addresses longer
 * than 511 bytes - twice RFC 5321's limit - never match a pattern). Eval
 * allocates nothing itself; glibc's regexec does allocate its matching
 * state internally, so lists without /patterns/ are the cheapest.
 *
 * Diagnostics: "FILE:LINE: condition "TYPE": unknown key 'x'",
 * "...: key 'accounts': bad regex '/(/': ...", "...: key
 * 'accounts_file': cannot read 'x': No such file or directory",
 * "FILE: condition "TYPE": needs key 'accounts' or 'accounts_file'".
 */
#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conditions/mh_cond_builtin.h"
#include "conditions/mh_cond_optutil.h"
#include "util/mh_buf.h"

/* ------------------------------------------------------------ addresses */

/*
 * The bare address inside an envelope address: "<User@Ex.com>" ->
 * "User@Ex.com", "<@relay:u@x>" -> "u@x", "<>" -> "" (length 0).
 */
static const char *bare_address(const char *s, size_t *len)
{
	const char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (*s == '<') {
		s++;
		if (end > s && end[-1] == '>')
			end--;
	}
	if (s < end && *s == '@') { /* RFC 5321 source route: skip to ':' */
		const char *colon = memchr(s, ':', (size_t)(end - s));
		if (colon != NULL)
			s = colon + 1;
	}
	*len = (size_t)(end - s);
	return s;
}

/* The domain part of a bare address (after the last '@'), or NULL. */
static const char *domain_of(const char *a, size_t len, size_t *dlen)
{
	const char *at = NULL, *p;

	for (p = a; p < a + len; p++)
		if (*p == '@')
			at = p;
	if (at == NULL || at + 1 == a + len)
		return NULL;
	*dlen = (size_t)(a + len - at - 1);
	return at + 1;
}

/* ------------------------------------------------ sets of lowercase strings */

struct strset {
	char **v; /* lowercase, sorted by strcmp, owned */
	size_t n, cap;
};

static void strset_add(struct strset *s, const char *p, size_t len)
{
	size_t i;

	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->v = mh_xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n] = mh_xstrndup(p, len);
	for (i = 0; i < len; i++)
		s->v[s->n][i] = (char)tolower((unsigned char)s->v[s->n][i]);
	s->n++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strset_seal(struct strset *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), cmp_str);
}

/* Compare (p, len), folded to lowercase, with the lowercase string e. */
static int cmp_folded(const char *p, size_t len, const char *e)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char a = (unsigned char)tolower((unsigned char)p[i]);
		unsigned char b = (unsigned char)e[i];

		if (a != b)
			return a < b ? -1 : 1; /* also right when e ends here (b == 0) */
	}
	return e[len] == '\0' ? 0 : -1;
}

static int strset_has(const struct strset *s, const char *p, size_t len)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = cmp_folded(p, len, s->v[mid]);

		if (r == 0)
			return 1;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

static void strset_free(struct strset *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

/* ------------------------------------------------------------ entry lists */

struct addrlist {
	struct strset exact; /* "user@example.com" */
	struct strset domains; /* "example.com" */
	regex_t *re; /* "/pattern/" */
	size_t nre, capre;
};

static void addrlist_free(struct addrlist *l)
{
	size_t i;

	strset_free(&l->exact);
	strset_free(&l->domains);
	for (i = 0; i < l->nre; i++)
		regfree(&l->re[i]);
	free(l->re);
}

/* Where an entry comes from, for diagnostics. */
struct origin {
	const char *type;
	const struct mh_cond_opts *o;
	const struct mh_cond_opt *opt;
	const char *file; /* list file, NULL for an inline entry */
	int fline;
};

static int entry_err(char *err, size_t errlen, const struct origin *w, const char *what,
                     const char *entry, const char *detail)
{
	if (w->file != NULL)
		return mh_condopt_errf(err, errlen, w->type, w->o, w->opt, "%s:%d: %s '%s'%s%s",
		                       w->file, w->fline, what, entry, detail ? ": " : "",
		                       detail ? detail : "");
	return mh_condopt_errf(err, errlen, w->type, w->o, w->opt, "%s '%s'%s%s", what, entry,
	                       detail ? ": " : "", detail ? detail : "");
}

/* Add one entry; domains_only refuses addresses and patterns. */
static int addrlist_add(struct addrlist *l, const char *e, int domains_only, const struct origin *w,
                        char *err, size_t errlen)
{
	size_t len = strlen(e);
	const char *at = strchr(e, '@');

	if (!domains_only && len >= 2 && e[0] == '/' && e[len - 1] == '/') {
		char *pat = mh_xstrndup(e + 1, len - 2);
		char why[160];
		int rc;

		if (l->nre == l->capre) {
			l->capre = l->capre ? l->capre * 2 : 4;
			l->re = mh_xrealloc(l->re, l->capre * sizeof(*l->re));
		}
		rc = regcomp(&l->re[l->nre], pat, REG_EXTENDED | REG_ICASE | REG_NOSUB);
		free(pat);
		if (rc != 0) {
			regerror(rc, &l->re[l->nre], why, sizeof(why));
			regfree(&l->re[l->nre]);
			return entry_err(err, errlen, w, "bad regex", e, why);
		}
		l->nre++;
		return 0;
	}
	if (at == e) { /* "@example.com" */
		e++;
		len--;
		at = strchr(e, '@');
	}
	if (len == 0 || at == e + len - 1 || (at != NULL && (domains_only || at == e)) ||
	    strchr(e, ' ') != NULL || (at != NULL && strchr(at + 1, '@') != NULL))
		return entry_err(err, errlen, w, domains_only ? "bad domain" : "bad account", e,
		                 NULL);
	strset_add(at ? &l->exact : &l->domains, e, len);
	return 0;
}

/* Resolve a list file name against the configuration file's directory. */
static char *list_path(const struct mh_cond_opts *o, const char *name)
{
	const char *slash = o && o->file ? strrchr(o->file, '/') : NULL;
	size_t dlen;
	char *p;

	if (name[0] == '/' || slash == NULL)
		return mh_xstrdup(name);
	dlen = (size_t)(slash - o->file) + 1;
	p = mh_xmalloc(dlen + strlen(name) + 1);
	memcpy(p, o->file, dlen);
	strcpy(p + dlen, name);
	return p;
}

static int addrlist_load_file(struct addrlist *l, int domains_only, struct origin *w,
                              const char *name, char *err, size_t errlen)
{
	char *path = list_path(w->o, name);
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		rc = mh_condopt_errf(err, errlen, w->type, w->o, w->opt, "cannot read '%s': %s",
		                     path, strerror(errno));
		free(path);
		return rc;
	}
	w->file = path;
	w->fline = 0;
	while (rc == 0 && getline(&line, &cap, f) != -1) {
		char *s = line, *end;

		w->fline++;
		while (isspace((unsigned char)*s))
			s++;
		end = s + strlen(s);
		while (end > s && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (*s == '\0' || *s == '#')
			continue;
		rc = addrlist_add(l, s, domains_only, w, err, errlen);
	}
	if (rc == 0 && ferror(f))
		rc = mh_condopt_errf(err, errlen, w->type, w->o, w->opt, "cannot read '%s'", path);
	free(line);
	fclose(f);
	free(path);
	w->file = NULL;
	return rc;
}

/* Fill l from the inline key and the file key (either may be absent). */
static int addrlist_load(struct addrlist *l, const char *type, const struct mh_cond_opts *o,
                         const char *key, const char *file_key, int domains_only, char *err,
                         size_t errlen)
{
	struct origin w = {type, o, NULL, NULL, 0};
	const struct mh_cond_opt *inl = mh_condopt_find(o, key);
	const struct mh_cond_opt *fil = mh_condopt_find(o, file_key);
	size_t i;

	if (inl == NULL && fil == NULL) {
		mh_errf(err, errlen, "%s: condition \"%s\": needs key '%s' or '%s'",
		        o && o->file ? o->file : "?", type, key, file_key);
		return -1;
	}
	w.opt = inl;
	for (i = 0; inl != NULL && i < inl->nvalues; i++)
		if (addrlist_add(l, inl->values[i], domains_only, &w, err, errlen) != 0)
			return -1;
	w.opt = fil;
	for (i = 0; fil != NULL && i < fil->nvalues; i++)
		if (addrlist_load_file(l, domains_only, &w, fil->values[i], err, errlen) != 0)
			return -1;
	strset_seal(&l->exact);
	strset_seal(&l->domains);
	return 0;
}

static int addrlist_match(const struct addrlist *l, const char *a, size_t len)
{
	const char *dom;
	size_t dlen, i;

	if (strset_has(&l->exact, a, len))
		return 1;
	dom = domain_of(a, len, &dlen);
	if (dom != NULL && strset_has(&l->domains, dom, dlen))
		return 1;
	if (l->nre > 0) {
		char buf[512];

		if (len >= sizeof(buf))
			return 0;
		memcpy(buf, a, len);
		buf[len] = '\0';
		for (i = 0; i < l->nre; i++)
			if (regexec(&l->re[i], buf, 0, NULL, 0) == 0)
				return 1;
	}
	return 0;
}

static struct mh_cond *new_cond(const struct mh_cond_ops *ops, void *impl)
{
	struct mh_cond *c = mh_xcalloc(1, sizeof(*c));

	c->ops = ops;
	c->impl = impl;
	return c;
}

/* ---------------------------------------------------- restrict-accounts */

static enum mh_cond_verdict accounts_eval(const struct mh_cond *c, const struct mh_cond_ctx *ctx)
{
	const char *a;
	size_t len;

	if (ctx->stage != MH_COND_RCPT || ctx->rcpt == NULL)
		return MH_COND_UNDECIDED;
	a = bare_address(ctx->rcpt, &len);
	return addrlist_match(c->impl, a, len) ? MH_COND_APPLIES : MH_COND_NOT_APPLICABLE;
}

static void accounts_free(struct mh_cond *c)
{
	if (c->impl != NULL) {
		addrlist_free(c->impl);
		free(c->impl);
		c->impl = NULL;
	}
}

static const struct mh_cond_ops accounts_ops = {"restrict-accounts", accounts_eval, accounts_free};

struct mh_cond *mh_cond_restrict_accounts_new(const struct mh_cond_opts *o, char *err,
                                              size_t errlen)
{
	static const char *const known[] = {"accounts", "accounts_file", NULL};
	struct addrlist *l;

	if (mh_condopt_check_keys(accounts_ops.type, o, known, err, errlen) != 0)
		return NULL;
	l = mh_xcalloc(1, sizeof(*l));
	if (addrlist_load(l, accounts_ops.type, o, "accounts", "accounts_file", 0, err, errlen) !=
	    0) {
		addrlist_free(l);
		free(l);
		return NULL;
	}
	return new_cond(&accounts_ops, l);
}

/* ------------------------------------------------------- trusted-sender */

struct trusted_impl {
	struct addrlist domains;
	char *macro, *value;
};

static enum mh_cond_verdict trusted_eval(const struct mh_cond *c, const struct mh_cond_ctx *ctx)
{
	const struct trusted_impl *t = c->impl;
	const char *a, *dom;
	size_t len, dlen;

	if (ctx->stage < MH_COND_MAIL)
		return MH_COND_UNDECIDED;
	if (ctx->sender == NULL)
		return MH_COND_NOT_APPLICABLE;
	a = bare_address(ctx->sender, &len);
	dom = domain_of(a, len, &dlen); /* NULL for the null sender <> */
	if (dom == NULL || !strset_has(&t->domains.domains, dom, dlen))
		return MH_COND_NOT_APPLICABLE;
	if (ctx->set_macro != NULL)
		ctx->set_macro(ctx, t->macro, t->value);
	return MH_COND_APPLIES;
}

static void trusted_free(struct mh_cond *c)
{
	struct trusted_impl *t = c->impl;

	if (t == NULL)
		return;
	addrlist_free(&t->domains);
	free(t->macro);
	free(t->value);
	free(t);
	c->impl = NULL;
}

static const struct mh_cond_ops trusted_ops = {"trusted-sender", trusted_eval, trusted_free};

/* The scalar string option key, or dflt; -1 on a list or an empty value. */
static int string_opt(const struct mh_cond_opts *o, const char *key, const char *dflt, char **out,
                      char *err, size_t errlen)
{
	const struct mh_cond_opt *opt = mh_condopt_find(o, key);
	const char *v = dflt;

	if (opt != NULL) {
		v = mh_condopt_scalar(trusted_ops.type, o, opt, err, errlen);
		if (v == NULL)
			return -1;
		if (*v == '\0')
			return mh_condopt_errf(err, errlen, trusted_ops.type, o, opt,
			                       "must not be empty");
	}
	*out = mh_xstrdup(v);
	return 0;
}

struct mh_cond *mh_cond_trusted_sender_new(const struct mh_cond_opts *o, char *err, size_t errlen)
{
	static const char *const known[] = {"domains", "domains_file", "macro", "macro_value",
	                                    NULL};
	struct trusted_impl *t;
	struct mh_cond tmp = {&trusted_ops, NULL, NULL};

	if (mh_condopt_check_keys(trusted_ops.type, o, known, err, errlen) != 0)
		return NULL;
	t = mh_xcalloc(1, sizeof(*t));
	tmp.impl = t;
	if (addrlist_load(&t->domains, trusted_ops.type, o, "domains", "domains_file", 1, err,
	                  errlen) != 0 ||
	    string_opt(o, "macro", "{trusted_domain}", &t->macro, err, errlen) != 0 ||
	    string_opt(o, "macro_value", "yes", &t->value, err, errlen) != 0) {
		trusted_free(&tmp);
		return NULL;
	}
	return new_cond(&trusted_ops, t);
}
