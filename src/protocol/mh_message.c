/*
 * mh_message - the message an MTA holds while milters edit it.
 *
 * Contract: mh_message.h. Every rule below is Postfix's
 * (src/cleanup/cleanup_milter.c and src/milter/milter8.c), summarised in
 * ../shared/docs/milter-protocol.md 3.2-3.3:
 *  - insert: Postfix turns the milter's index n into "before the
 *    (n+1)-th header of the whole list", hidden headers included;
 *  - change/delete: Postfix skips its own Received: (the first header)
 *    and counts the rest by name. We skip as many headers at the top as
 *    the message holds hidden ones, which is the same thing as long as
 *    the hidden header sits at the top, and stays Postfix's quirk after
 *    a milter inserted above it (the inserted header is then skipped);
 *  - body replacement: Postfix stores the replacement line by line, so
 *    the run is normalised to CRLF line ends when it ends.
 * Recipients are compared without angle brackets and case-insensitively.
 */
#include "protocol/mh_message.h"

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void mh_msg_init(struct mh_msg *m)
{
	memset(m, 0, sizeof(*m));
}

void mh_msg_free(struct mh_msg *m)
{
	free(m->sender);
	free(m->sender_args);
	for (size_t i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].args);
	}
	free(m->rcpts);
	for (size_t i = 0; i < m->nhdrs; i++) {
		free(m->hdrs[i].name);
		free(m->hdrs[i].value);
	}
	free(m->hdrs);
	mh_buf_free(&m->body);
	free(m->quarantine);
	mh_msg_init(m);
}

static char *dup_or_null(const char *s)
{
	return s ? mh_xstrdup(s) : NULL;
}

void mh_msg_set_sender(struct mh_msg *m, const char *addr, const char *args)
{
	free(m->sender);
	free(m->sender_args);
	m->sender = dup_or_null(addr);
	m->sender_args = args && *args ? mh_xstrdup(args) : NULL;
}

void mh_msg_add_rcpt(struct mh_msg *m, const char *addr, const char *args)
{
	if (m->nrcpts == m->rcpts_cap) {
		m->rcpts_cap = m->rcpts_cap ? 2 * m->rcpts_cap : 4;
		m->rcpts = mh_xrealloc(m->rcpts, m->rcpts_cap * sizeof(*m->rcpts));
	}
	m->rcpts[m->nrcpts].addr = mh_xstrdup(addr);
	m->rcpts[m->nrcpts].args = args && *args ? mh_xstrdup(args) : NULL;
	m->nrcpts++;
}

/* The address without surrounding blanks and one pair of angle brackets. */
static void bare_addr(const char *a, const char **start, size_t *len)
{
	size_t n;

	while (*a == ' ' || *a == '\t')
		a++;
	n = strlen(a);
	while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\t'))
		n--;
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
		a++;
		n -= 2;
	}
	*start = a;
	*len = n;
}

static int same_addr(const char *x, const char *y)
{
	const char *xs, *ys;
	size_t xn, yn;

	bare_addr(x, &xs, &xn);
	bare_addr(y, &ys, &yn);
	return xn == yn && strncasecmp(xs, ys, xn) == 0;
}

size_t mh_msg_del_rcpt(struct mh_msg *m, const char *addr)
{
	size_t kept = 0, removed = 0;

	for (size_t i = 0; i < m->nrcpts; i++) {
		if (same_addr(m->rcpts[i].addr, addr)) {
			free(m->rcpts[i].addr);
			free(m->rcpts[i].args);
			removed++;
		} else {
			m->rcpts[kept++] = m->rcpts[i];
		}
	}
	m->nrcpts = kept;
	return removed;
}

/* Open a slot at position pos (0..nhdrs) and fill it. */
static void header_put(struct mh_msg *m, size_t pos, const char *name, const char *raw, int hidden)
{
	assert(pos <= m->nhdrs);
	if (m->nhdrs == m->hdrs_cap) {
		m->hdrs_cap = m->hdrs_cap ? 2 * m->hdrs_cap : 16;
		m->hdrs = mh_xrealloc(m->hdrs, m->hdrs_cap * sizeof(*m->hdrs));
	}
	memmove(&m->hdrs[pos + 1], &m->hdrs[pos], (m->nhdrs - pos) * sizeof(*m->hdrs));
	m->hdrs[pos].name = mh_xstrdup(name);
	m->hdrs[pos].value = mh_xstrdup(raw ? raw : "");
	m->hdrs[pos].hidden = hidden;
	m->nhdrs++;
}

void mh_msg_add_header(struct mh_msg *m, const char *name, const char *raw, int hidden)
{
	header_put(m, m->nhdrs, name, raw, hidden);
}

void mh_msg_insert_header(struct mh_msg *m, size_t index, const char *name, const char *raw)
{
	header_put(m, index < m->nhdrs ? index : m->nhdrs, name, raw, 0);
}

/* Position of the index-th (1-based) header called name, or nhdrs. */
static size_t header_find(const struct mh_msg *m, size_t index, const char *name)
{
	size_t skip = 0;

	for (size_t i = 0; i < m->nhdrs; i++)
		skip += m->hdrs[i].hidden != 0;
	for (size_t i = skip; i < m->nhdrs; i++)
		if (strcasecmp(m->hdrs[i].name, name) == 0 && --index == 0)
			return i;
	return m->nhdrs;
}

void mh_msg_change_header(struct mh_msg *m, size_t index, const char *name, const char *raw)
{
	size_t pos = header_find(m, index == 0 ? 1 : index, name);
	int del = raw == NULL || *raw == '\0';

	if (pos == m->nhdrs) {
		if (!del)
			mh_msg_add_header(m, name, raw, 0);
		return;
	}
	if (del) {
		free(m->hdrs[pos].name);
		free(m->hdrs[pos].value);
		memmove(&m->hdrs[pos], &m->hdrs[pos + 1], (m->nhdrs - pos - 1) * sizeof(*m->hdrs));
		m->nhdrs--;
		return;
	}
	/* Postfix rewrites the whole header, with the name as the milter spelt it. */
	free(m->hdrs[pos].name);
	free(m->hdrs[pos].value);
	m->hdrs[pos].name = mh_xstrdup(name);
	m->hdrs[pos].value = mh_xstrdup(raw);
}

const char *mh_msg_value_for_milter(const char *raw, int leadspc)
{
	return !leadspc && raw[0] == ' ' ? raw + 1 : raw;
}

char *mh_msg_value_from_milter(const char *value, int leadspc)
{
	size_t n = strlen(value);
	char *raw;

	if (leadspc)
		return mh_xstrdup(value);
	raw = mh_xmalloc(n + 2);
	raw[0] = ' ';
	memcpy(raw + 1, value, n + 1);
	return raw;
}

/*
 * Rewrite the body as Postfix stores a replacement: lines split at LF, one
 * CR before the LF dropped, every line (also an unterminated last one)
 * ended with CRLF.
 */
static void body_normalise(struct mh_buf *body)
{
	struct mh_buf out = MH_BUF_INIT;
	const uint8_t *p;
	size_t n = mh_buf_size(body), start = 0;

	if (n == 0)
		return;
	p = mh_buf_head(body);
	for (size_t i = 0; i <= n; i++) {
		size_t end = i;

		if (i < n && p[i] != '\n')
			continue;
		if (i == n && start == n)
			break;
		if (i < n && end > start && p[end - 1] == '\r')
			end--;
		mh_buf_append(&out, p + start, end - start);
		mh_buf_append(&out, "\r\n", 2);
		start = i + 1;
	}
	mh_buf_free(body);
	*body = out;
}

void mh_msg_end_of_replies(struct mh_msg *m)
{
	if (m->replacing_body)
		body_normalise(&m->body);
	m->replacing_body = 0;
}

static void apply_header(struct mh_msg *m, const struct mh_reply *r, int leadspc)
{
	char *raw;

	/* milter8.c decides "delete" on the value as the milter sent it. */
	if (r->code == MH_REP_CHGHEADER && r->u.header.value[0] == '\0') {
		mh_msg_change_header(m, r->u.header.index, r->u.header.name, NULL);
		return;
	}
	raw = mh_msg_value_from_milter(r->u.header.value, leadspc);
	if (r->code == MH_REP_ADDHEADER)
		mh_msg_add_header(m, r->u.header.name, raw, 0);
	else if (r->code == MH_REP_INSHEADER)
		mh_msg_insert_header(m, r->u.header.index, r->u.header.name, raw);
	else
		mh_msg_change_header(m, r->u.header.index, r->u.header.name, raw);
	free(raw);
}

int mh_msg_apply(struct mh_msg *m, const struct mh_reply *r, int leadspc)
{
	if (r->code != MH_REP_REPLBODY)
		mh_msg_end_of_replies(m);
	switch (r->code) {
	case MH_REP_ADDRCPT:
		mh_msg_add_rcpt(m, r->u.rcpt.rcpt, NULL);
		return 0;
	case MH_REP_ADDRCPT_PAR:
		mh_msg_add_rcpt(m, r->u.rcpt.rcpt, r->u.rcpt.args);
		return 0;
	case MH_REP_DELRCPT:
		mh_msg_del_rcpt(m, r->u.rcpt.rcpt);
		return 0;
	case MH_REP_CHGFROM:
		mh_msg_set_sender(m, r->u.chgfrom.addr, r->u.chgfrom.args);
		return 0;
	case MH_REP_ADDHEADER:
	case MH_REP_INSHEADER:
	case MH_REP_CHGHEADER:
		apply_header(m, r, leadspc);
		return 0;
	case MH_REP_QUARANTINE:
		free(m->quarantine);
		m->quarantine = mh_xstrdup(r->u.quarantine.reason);
		return 0;
	case MH_REP_REPLBODY:
		if (!m->replacing_body) {
			mh_buf_reset(&m->body);
			m->replacing_body = 1;
		}
		mh_buf_append(&m->body, r->u.replbody.data, r->u.replbody.len);
		return 0;
	default:
		return -1;
	}
}
