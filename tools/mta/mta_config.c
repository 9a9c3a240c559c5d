/*
 * mta_config - parsing the message-shaping options of milterhub-mta.
 *
 * Contract: mta_config.h. The message is held as an MTA holds it after
 * SMTP DATA: header values raw (what follows the colon, folded lines
 * joined by LF, no CR), body with CRLF line ends where every line,
 * including the last, is terminated (an SMTP client cannot send a
 * partial last line; Postfix stores the body line by line).
 */
#include "mta_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const mstage_names[MTA_M_COUNT] = {
    "connect", "helo", "mail", "rcpt", "data", "eoh", "eom", "unknown",
};

const char *mta_mstage_name(enum mta_mstage s)
{
	return (unsigned)s < MTA_M_COUNT ? mstage_names[s] : NULL;
}

static int fail(char *err, size_t errlen, const char *fmt, const char *arg)
{
	snprintf(err, errlen, fmt, arg);
	return -1;
}

void mta_config_init(struct mta_config *c)
{
	memset(c, 0, sizeof(*c));
	c->client_name = "mx.example.net";
	c->client_addr = "192.0.2.1";
	c->client_family = '4';
	c->client_port = 54321;
	c->messages = 1;
	c->flavour = MTA_POSTFIX;
	c->version = 6;
	c->timeout = 10.0;
	c->max_payload = 65535;
	c->concurrency = 1;
}

static void free_headers(struct mta_config *c)
{
	for (size_t i = 0; i < c->nhdrs; i++) {
		free(c->hdrs[i].name);
		free(c->hdrs[i].raw);
	}
	free(c->hdrs);
	c->hdrs = NULL;
	c->nhdrs = 0;
}

void mta_config_free(struct mta_config *c)
{
	free(c->rcpts);
	free_headers(c);
	mh_buf_free(&c->body);
	for (size_t i = 0; i < c->nmacros; i++) {
		free(c->macros[i].name);
		free(c->macros[i].value);
	}
	free(c->macros);
	free(c->client_addr_macro);
	free(c->underscore);
	for (size_t i = 0; i < c->nfroms; i++)
		free(c->froms_bare[i]);
	free(c->froms_bare);
	free(c->froms);
	memset(c, 0, sizeof(*c));
}

char *mta_bare_addr(const char *addr)
{
	size_t n = strlen(addr);

	if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>')
		return mh_xstrndup(addr + 1, n - 2);
	return mh_xstrdup(addr);
}

/* A header name: printable ASCII except the colon and blanks. */
static int valid_name(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] >= 127 || s[i] == ':')
			return 0;
	return 1;
}

static void push_header(struct mta_config *c, const char *name, size_t nlen, char *raw)
{
	c->hdrs = mh_xrealloc(c->hdrs, (c->nhdrs + 1) * sizeof(*c->hdrs));
	c->hdrs[c->nhdrs].name = mh_xstrndup(name, nlen);
	c->hdrs[c->nhdrs].raw = raw;
	c->nhdrs++;
}

int mta_config_add_header(struct mta_config *c, const char *spec, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	struct mh_buf raw = MH_BUF_INIT;

	if (colon == NULL || !valid_name(spec, (size_t)(colon - spec)))
		return fail(err, errlen, "--header needs 'Name: value', got '%s'", spec);
	/* "\n" in the value folds the header (lines joined by LF), "\t" is a tab. */
	for (const char *p = colon + 1; *p; p++) {
		if (p[0] == '\\' && (p[1] == 'n' || p[1] == 't')) {
			mh_buf_append_byte(&raw, p[1] == 'n' ? '\n' : '\t');
			p++;
		} else if (*p != '\r') {
			mh_buf_append_byte(&raw, (uint8_t)*p);
		}
	}
	mh_buf_append_byte(&raw, 0); /* a NUL-terminated string even when empty */
	push_header(c, spec, (size_t)(colon - spec), (char *)raw.data);
	return 0;
}

static int parse_mstage(const char *s, size_t n)
{
	for (int i = 0; i < MTA_M_COUNT; i++)
		if (strlen(mstage_names[i]) == n && strncmp(s, mstage_names[i], n) == 0)
			return i;
	return -1;
}

int mta_config_add_macro(struct mta_config *c, const char *spec, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	const char *eq = colon ? strchr(colon + 1, '=') : NULL;
	int stage = colon ? parse_mstage(spec, (size_t)(colon - spec)) : -1;
	struct mta_macro *m;

	if (stage < 0 || eq == NULL || eq == colon + 1)
		return fail(err, errlen,
		            "--macro needs STAGE:NAME=VALUE with STAGE connect|helo|mail|rcpt|"
		            "data|eoh|eom|unknown, got '%s'",
		            spec);
	c->macros = mh_xrealloc(c->macros, (c->nmacros + 1) * sizeof(*c->macros));
	m = &c->macros[c->nmacros++];
	m->stage = (enum mta_mstage)stage;
	m->name = mh_xstrndup(colon + 1, (size_t)(eq - colon - 1));
	m->value = mh_xstrdup(eq + 1);
	return 0;
}

int mta_config_set_client_addr(struct mta_config *c, const char *addr, char *err, size_t errlen)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, addr, buf) == 1)
		c->client_family = '4';
	else if (inet_pton(AF_INET6, addr, buf) == 1)
		c->client_family = '6';
	else
		return fail(err, errlen, "--client-addr needs an IPv4 or IPv6 address, got '%s'",
		            addr);
	c->client_addr = addr;
	return 0;
}

/*
 * Append text to the body: bare LF becomes CRLF, and a last line without
 * its line end is terminated (see the module comment).
 */
static void body_append_lines(struct mh_buf *body, const char *text, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
			mh_buf_append_byte(body, '\r');
		mh_buf_append_byte(body, (uint8_t)text[i]);
	}
	if (n > 0 && text[n - 1] != '\n')
		mh_buf_append(body, "\r\n", 2);
}

void mta_config_set_body(struct mta_config *c, const char *text)
{
	struct mh_buf plain = MH_BUF_INIT;

	/* Escapes first: \n and \r\n are line ends, \t a tab, \\ a backslash. */
	for (const char *p = text; *p; p++) {
		if (p[0] == '\\' && p[1] == 'r' && p[2] == '\\' && p[3] == 'n') {
			mh_buf_append_byte(&plain, '\n');
			p += 3;
		} else if (p[0] == '\\' && p[1] == 'n') {
			mh_buf_append_byte(&plain, '\n');
			p++;
		} else if (p[0] == '\\' && p[1] == 't') {
			mh_buf_append_byte(&plain, '\t');
			p++;
		} else if (p[0] == '\\' && p[1] == '\\') {
			mh_buf_append_byte(&plain, '\\');
			p++;
		} else {
			mh_buf_append_byte(&plain, (uint8_t)*p);
		}
	}
	mh_buf_reset(&c->body);
	if (mh_buf_size(&plain) > 0)
		body_append_lines(&c->body, (const char *)mh_buf_head(&plain), mh_buf_size(&plain));
	mh_buf_free(&plain);
	c->body_set = 1;
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct mh_buf b = MH_BUF_INIT;
	size_t n;

	if (f == NULL) {
		snprintf(err, errlen, "--message-file %s: %s", path, strerror(errno));
		return NULL;
	}
	do {
		uint8_t *end = mh_buf_reserve(&b, 65536);
		n = fread(end, 1, 65536, f);
		b.len += n;
	} while (n > 0);
	if (ferror(f)) {
		snprintf(err, errlen, "--message-file %s: read error", path);
		fclose(f);
		mh_buf_free(&b);
		return NULL;
	}
	fclose(f);
	mh_buf_append_byte(&b, 0); /* terminator; not counted */
	*len = b.len - 1;
	return (char *)b.data;
}

/* Length of the line at p (without its LF and a CR before it), and of its end. */
static size_t line_at(const char *p, const char *end, size_t *eol)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	size_t n = lf ? (size_t)(lf - p) : (size_t)(end - p);

	*eol = lf ? 1 : 0;
	if (n > 0 && p[n - 1] == '\r') {
		n--;
		(*eol)++;
	}
	return n;
}

int mta_config_load_message(struct mta_config *c, const char *path, char *err, size_t errlen)
{
	size_t len, n, eol;
	char *text = read_file(path, &len, err, errlen);
	const char *p, *end;
	struct mh_buf raw = MH_BUF_INIT;

	if (text == NULL)
		return -1;
	free_headers(c);
	p = text;
	end = text + len;
	if (len >= 5 && memcmp(p, "From ", 5) == 0) { /* mbox separator line */
		n = line_at(p, end, &eol);
		p += n + eol;
	}
	while (p < end) {
		const char *colon;

		n = line_at(p, end, &eol);
		if (n == 0) { /* the blank line ends the header */
			p += eol;
			break;
		}
		if ((p[0] == ' ' || p[0] == '\t') && c->nhdrs > 0) {
			char *prev = c->hdrs[c->nhdrs - 1].raw;

			mh_buf_append_str(&raw, prev);
			mh_buf_append_byte(&raw, '\n');
			mh_buf_append(&raw, p, n);
			free(prev);
			c->hdrs[c->nhdrs - 1].raw = mh_xstrdup((const char *)raw.data);
			mh_buf_reset(&raw);
		} else {
			colon = memchr(p, ':', n);
			if (colon == NULL || !valid_name(p, (size_t)(colon - p)))
				break; /* not a header: the body starts here, as in Postfix */
			push_header(c, p, (size_t)(colon - p),
			            mh_xstrndup(colon + 1, n - (size_t)(colon + 1 - p)));
		}
		p += n + eol;
	}
	mh_buf_free(&raw);
	mh_buf_reset(&c->body);
	body_append_lines(&c->body, p, (size_t)(end - p));
	c->body_set = 1;
	free(text);
	if (c->nhdrs == 0)
		return fail(err, errlen, "--message-file %s: no header found", path);
	return 0;
}

void mta_config_finish(struct mta_config *c)
{
	static const char *default_rcpt = "<rcpt@example.org>";
	static const char *default_from = "<sender@example.net>";
	struct mh_buf b = MH_BUF_INIT;

	if (c->nrcpts == 0) {
		c->rcpts = mh_xmalloc(sizeof(*c->rcpts));
		c->rcpts[c->nrcpts++] = default_rcpt;
	}
	if (c->nfroms == 0) {
		c->froms = mh_xmalloc(sizeof(*c->froms));
		c->froms[c->nfroms++] = default_from;
	}
	if (c->helo == NULL)
		c->helo = c->client_name;
	if (!c->body_set)
		mta_config_set_body(c, "Hello from milterhub-mta.\\r\\n");
	snprintf(c->client_port_str, sizeof(c->client_port_str), "%u", c->client_port);
	/* Postfix's {client_addr} carries the IPv6: prefix the 'C' packet lacks. */
	mh_buf_printf(&b, "%s%s", c->client_family == '6' ? "IPv6:" : "", c->client_addr);
	c->client_addr_macro = mh_xstrdup((const char *)b.data);
	mh_buf_reset(&b);
	mh_buf_printf(&b, "%s [%s]", c->client_name, c->client_addr);
	c->underscore = mh_xstrdup((const char *)b.data);
	mh_buf_free(&b);
	c->froms_bare = mh_xmalloc(c->nfroms * sizeof(*c->froms_bare));
	for (size_t i = 0; i < c->nfroms; i++)
		c->froms_bare[i] = mta_bare_addr(c->froms[i]);
}

/* Index of message k's sender: the k-th --from, the last one repeating. */
static size_t from_index(const struct mta_config *c, unsigned k)
{
	return k >= 1 && k <= c->nfroms ? k - 1 : c->nfroms - 1;
}

const char *mta_config_from(const struct mta_config *c, unsigned k)
{
	return c->froms[from_index(c, k)];
}

const char *mta_config_from_bare(const struct mta_config *c, unsigned k)
{
	return c->froms_bare[from_index(c, k)];
}

/* Postfix's Received: as smtpd writes it (no "for" with several recipients). */
static void add_received(const struct mta_config *c, const char *qid, struct mh_msg *m)
{
	struct mh_buf b = MH_BUF_INIT;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000 (UTC)", &tm);
	mh_buf_printf(&b, " from %s (%s [%s%s])\n\tby mta.example.org (%s) with ESMTP id %s",
	              c->helo, c->client_name, c->client_family == '6' ? "IPv6:" : "",
	              c->client_addr, c->flavour == MTA_SENDMAIL ? "8.17.1/8.17.1" : "Postfix",
	              qid);
	if (c->nrcpts == 1)
		mh_buf_printf(&b, "\n\tfor %s", c->rcpts[0]);
	mh_buf_printf(&b, "; %s", date);
	mh_msg_add_header(m, "Received", (const char *)b.data, 1);
	mh_buf_free(&b);
}

void mta_config_build_message(const struct mta_config *c, unsigned k, const char *qid,
                              struct mh_msg *m)
{
	struct mh_buf b = MH_BUF_INIT;

	mh_msg_set_sender(m, mta_config_from(c, k), NULL);
	add_received(c, qid, m);
	if (c->hdrs != NULL) {
		for (size_t i = 0; i < c->nhdrs; i++)
			mh_msg_add_header(m, c->hdrs[i].name, c->hdrs[i].raw, 0);
	} else {
		char *to = mta_bare_addr(c->rcpts[0]);

		mh_buf_printf(&b, " %s", mta_config_from_bare(c, k));
		mh_msg_add_header(m, "From", (const char *)b.data, 0);
		mh_buf_reset(&b);
		mh_buf_printf(&b, " %s", to);
		mh_msg_add_header(m, "To", (const char *)b.data, 0);
		mh_msg_add_header(m, "Subject", " milterhub test", 0);
		mh_buf_reset(&b);
		mh_buf_printf(&b, " <%u.milterhub-mta@example.net>", k);
		mh_msg_add_header(m, "Message-ID", (const char *)b.data, 0);
		free(to);
	}
	mh_buf_free(&b);
	if (mh_buf_size(&c->body) > 0)
		mh_buf_append(&m->body, mh_buf_head(&c->body), mh_buf_size(&c->body));
}
