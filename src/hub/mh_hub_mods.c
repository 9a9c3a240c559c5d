/*
 * mh_hub_mods - the modifications of the content chain (design §2.3).
 *
 * While a child runs end-of-message its edits are held aside (pend, and
 * a replacement body in txn->repl); when it decides, they are either
 * applied to the working copy and kept for the MTA (continue/accept) or
 * dropped (it failed, the message ended, or it is an evaluation child,
 * design §2.6). Kept header and recipient edits go to the MTA in chain
 * order as issued, with header values converted to the MTA's
 * leading-space convention; the replaced body once, as one contiguous
 * run of 'b' (last replacing child wins); change-from and quarantine
 * once (last wins). Only action types the MTA granted are forwarded or
 * applied (Sendmail refuses others), so later children see exactly what
 * the MTA will hold.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/mh_hub_session.h"
#include "util/mh_log.h"
static uint32_t mta_actions(struct hub_session *s)
{
	const struct mh_optneg *neg = mh_mta_negotiated(s->mta);

	return neg != NULL ? neg->actions : 0;
}

static void mod_free(struct hub_mod *m)
{
	free(m->a);
	free(m->b);
}

static void mod_push(struct hub_mod **v, size_t *n, size_t *cap, uint8_t code, uint32_t index,
                     const char *a, const char *b)
{
	struct hub_mod *m;

	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 4;
		*v = mh_xrealloc(*v, *cap * sizeof(**v));
	}
	m = &(*v)[(*n)++];
	m->code = code;
	m->index = index;
	m->a = a != NULL ? mh_xstrdup(a) : NULL;
	m->b = b != NULL ? mh_xstrdup(b) : NULL;
}

static void pend_clear(struct hub_txn *t)
{
	for (size_t i = 0; i < t->npend; i++)
		mod_free(&t->pend[i]);
	t->npend = 0;
}

void hub_mods_free(struct hub_txn *t)
{
	pend_clear(t);
	free(t->pend);
	for (size_t i = 0; i < t->nmods; i++)
		mod_free(&t->mods[i]);
	free(t->mods);
	free(t->chgfrom);
	free(t->chgfrom_args);
	free(t->quarantine);
	t->pend = t->mods = NULL;
	t->npend = t->pend_cap = t->nmods = t->mods_cap = 0;
	t->chgfrom = t->chgfrom_args = t->quarantine = NULL;
}

/*
 * v for a log line: as is when it holds no control character, else a
 * copy (*copy, owned by the caller) with \r \n \t and other control
 * bytes escaped, so a folded header value stays on one line.
 */
static const char *log_safe(const char *v, char **copy)
{
	size_t n = 0, i;
	char *o;

	*copy = NULL;
	if (v == NULL)
		return "";
	for (i = 0; v[i] != '\0'; i++)
		n += (unsigned char)v[i] < 0x20 || v[i] == 0x7f;
	if (n == 0)
		return v;
	o = *copy = mh_xmalloc(i + 3 * n + 1);
	for (i = 0; v[i] != '\0'; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '\r' || c == '\n' || c == '\t') {
			*o++ = '\\';
			*o++ = c == '\r' ? 'r' : c == '\n' ? 'n' : 't';
		} else if (c < 0x20 || c == 0x7f) {
			o += sprintf(o, "\\x%02x", c);
		} else {
			*o++ = (char)c;
		}
	}
	*o = '\0';
	return *copy;
}

/* Statistics (mh_hub.c): a header k adds or inserts, evaluation children too. */
static void log_header_added(struct hub_child *k, const char *name, const char *value)
{
	char *name_copy, *value_copy;
	const char *n = log_safe(name, &name_copy), *v = log_safe(value, &value_copy);

	mh_statistics(k->s->id, "[milter][header][add](%llu): %s=%s: %s",
	              (unsigned long long)k->s->id, n, v, k->conf->name);
	free(name_copy);
	free(value_copy);
}

static void set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src != NULL ? mh_xstrdup(src) : NULL;
}

void hub_mods_record(struct hub_child *k, const struct mh_reply *r)
{
	struct hub_session *s = k->s;
	struct hub_txn *t = s->txn;
	uint32_t granted = mta_actions(s);
	uint8_t code = r->code;
	int at_eom = t != NULL && s->phase == HUB_CHAIN && k->waiting && k->state == 'E';
	char err[256];
	const struct mh_hub_hooks *hk = s->hub->conf->hooks;

	/* Statistics count what a child adds, also in evaluation mode: what it
	 * would have added is the point of evaluating it. */
	if ((code == 'h' || code == 'i') && at_eom && hk != NULL && hk->header_added != NULL)
		hk->header_added(hk->arg, (size_t)(k->conf - s->hub->conf->children),
		                 r->u.header.name, r->u.header.value);
	if ((code == 'h' || code == 'i') && at_eom)
		log_header_added(k, r->u.header.name, r->u.header.value);
	if (k->conf->evaluate) {
		/* design §2.6: recorded in the log, dropped. */
		mh_info(s->id, "child %s (evaluation): modification '%c' dropped", k->conf->name,
		        code);
		return;
	}
	if (code == '2' && !(granted & MH_ACT_ADDRCPT_PAR) && (granted & MH_ACT_ADDRCPT))
		code = '+'; /* the MTA takes no ESMTP args: the address alone */
	if (!(granted & mh_reply_action(code))) {
		mh_warn(s->id, "child %s: modification '%c' not granted by the MTA: dropped",
		        k->conf->name, r->code);
		return;
	}
	if (code == 'q' && !at_eom) {
		/* 'q' may come at any stage; it applies to the current message. */
		if (t != NULL)
			set_str(&t->quarantine, r->u.quarantine.reason);
		return;
	}
	if (!at_eom) {
		mh_warn(s->id, "child %s: modification '%c' outside end-of-message: dropped",
		        k->conf->name, code);
		return;
	}
	switch (code) {
	case 'b':
		if (!t->repl_active) {
			mh_body_reset(&t->repl);
			t->repl_active = 1;
		}
		if (mh_body_append(&t->repl, r->u.replbody.data, r->u.replbody.len, err,
		                   sizeof(err)) < 0) {
			mh_err(s->id, "cannot keep a replaced body: %s", err);
			t->failed_io = 1;
		}
		break;
	case 'h':
	case 'i':
	case 'm':
		mod_push(&t->pend, &t->npend, &t->pend_cap, code, r->u.header.index,
		         r->u.header.name, r->u.header.value);
		break;
	case '+':
	case '-':
		mod_push(&t->pend, &t->npend, &t->pend_cap, code, 0, r->u.rcpt.rcpt, NULL);
		break;
	case '2':
		mod_push(&t->pend, &t->npend, &t->pend_cap, code, 0, r->u.rcpt.rcpt,
		         r->u.rcpt.args);
		break;
	case 'e':
		mod_push(&t->pend, &t->npend, &t->pend_cap, code, 0, r->u.chgfrom.addr,
		         r->u.chgfrom.args);
		break;
	case 'q':
		mod_push(&t->pend, &t->npend, &t->pend_cap, code, 0, r->u.quarantine.reason, NULL);
		break;
	default:
		break;
	}
}

/* Apply one held edit of child k to the working copy and keep it for the MTA. */
static void apply_one(struct hub_session *s, struct hub_child *k, const struct hub_mod *p)
{
	struct hub_txn *t = s->txn;
	int child_ls = k->link != NULL && mh_child_leadspc(k->link);
	struct mh_reply r;
	char *raw;

	memset(&r, 0, sizeof(r));
	r.code = p->code;
	switch (p->code) {
	case 'h':
	case 'i':
	case 'm':
		r.u.header.index = p->index;
		r.u.header.name = p->a;
		r.u.header.value = p->b;
		mh_msg_apply(&t->msg, &r, child_ls);
		/* design §2.4: the value in the MTA's leading-space convention. */
		if (p->code == 'm' && p->b[0] == '\0') {
			mod_push(&t->mods, &t->nmods, &t->mods_cap, p->code, p->index, p->a, "");
			break;
		}
		raw = mh_msg_value_from_milter(p->b, child_ls);
		mod_push(&t->mods, &t->nmods, &t->mods_cap, p->code, p->index, p->a,
		         mh_msg_value_for_milter(raw, s->mta_leadspc));
		free(raw);
		break;
	case '+':
	case '-':
	case '2':
		r.u.rcpt.rcpt = p->a;
		r.u.rcpt.args = p->b;
		mh_msg_apply(&t->msg, &r, child_ls);
		mod_push(&t->mods, &t->nmods, &t->mods_cap, p->code, 0, p->a, p->b);
		break;
	case 'e':
		r.u.chgfrom.addr = p->a;
		r.u.chgfrom.args = p->b;
		mh_msg_apply(&t->msg, &r, child_ls);
		set_str(&t->chgfrom, p->a);
		set_str(&t->chgfrom_args, p->b);
		break;
	case 'q':
		set_str(&t->quarantine, p->a);
		break;
	default:
		break;
	}
}

void hub_mods_child_done(struct hub_session *s, struct hub_child *k, int keep)
{
	struct hub_txn *t = s->txn;

	if (t == NULL)
		return;
	if (keep) {
		for (size_t i = 0; i < t->npend; i++)
			apply_one(s, k, &t->pend[i]);
		if (t->repl_active) {
			/* design §2.3: later children are replayed the replaced body. */
			mh_body_swap(&t->body, &t->repl);
			t->body_replaced = 1;
		}
	}
	pend_clear(t);
	if (t->repl_active) {
		mh_body_reset(&t->repl);
		t->repl_active = 0;
	}
	mh_msg_end_of_replies(&t->msg);
}

/* ---- body chunks ---- */

static uint8_t *chunk_buf(struct mh_hub *h)
{
	if (h->chunk == NULL)
		h->chunk = mh_xmalloc(2 * (size_t)MH_CHUNK_MAX + 2);
	return h->chunk;
}

/* Postfix stores a replaced body line by line (mh_message): LF and CRLF
 * become CRLF, an unterminated last line is terminated. */
static size_t normalise(struct hub_norm *st, const uint8_t *in, size_t n, uint8_t *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = in[i];

		if (st->pending_cr) {
			st->pending_cr = 0;
			if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
				st->in_line = 0;
				continue;
			}
			out[o++] = '\r';
			st->in_line = 1;
		}
		if (c == '\r') {
			st->pending_cr = 1;
		} else if (c == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			st->in_line = 0;
		} else {
			out[o++] = c;
			st->in_line = 1;
		}
	}
	return o;
}

ssize_t hub_body_next_chunk(struct hub_session *s, const uint8_t **out)
{
	struct hub_txn *t = s->txn;
	uint8_t *buf = chunk_buf(s->hub);
	const size_t half = MH_CHUNK_MAX / 2; /* normalising at most doubles */
	uint8_t *raw = buf + MH_CHUNK_MAX + 1;
	ssize_t n;
	size_t o;

	*out = buf;
	if (!t->body_replaced) {
		n = mh_body_read(&t->body, t->roff, buf, MH_CHUNK_MAX);
		if (n > 0)
			t->roff += (uint64_t)n;
		return n;
	}
	if (t->norm.flushed)
		return 0;
	n = mh_body_read(&t->body, t->roff, raw, half);
	if (n < 0)
		return n;
	if (n > 0) {
		t->roff += (uint64_t)n;
		o = normalise(&t->norm, raw, (size_t)n, buf);
		if (o > 0)
			return (ssize_t)o;
		return hub_body_next_chunk(s, out); /* only a pending CR so far */
	}
	o = 0;
	if (t->norm.pending_cr) {
		buf[o++] = '\r';
		t->norm.in_line = 1;
	}
	if (t->norm.in_line) {
		buf[o++] = '\r';
		buf[o++] = '\n';
	}
	t->norm.flushed = 1;
	return (ssize_t)o;
}

/* ---- emission to the MTA ---- */

void hub_mods_emit(struct hub_session *s)
{
	struct hub_txn *t = s->txn;
	struct mh_reply r;

	for (size_t i = 0; i < t->nmods; i++) {
		const struct hub_mod *m = &t->mods[i];

		memset(&r, 0, sizeof(r));
		r.code = m->code;
		if (m->code == 'h' || m->code == 'i' || m->code == 'm') {
			r.u.header.index = m->index;
			r.u.header.name = m->a;
			r.u.header.value = m->b;
		} else {
			r.u.rcpt.rcpt = m->a;
			r.u.rcpt.args = m->b;
		}
		mh_mta_send_modification(s->mta, &r);
	}
	if (t->body_replaced) {
		/* design §2.3: once, one contiguous run of 'b' (Postfix refuses
		 * a run interleaved with other edits). */
		uint8_t *buf = chunk_buf(s->hub);
		uint64_t off = 0;
		ssize_t n;

		do {
			n = mh_body_read(&t->body, off, buf, MH_CHUNK_MAX);
			if (n < 0) {
				mh_err(s->id, "cannot read the replaced body");
				break;
			}
			if (n == 0 && off > 0)
				break;
			memset(&r, 0, sizeof(r));
			r.code = 'b';
			r.u.replbody.data = buf;
			r.u.replbody.len = (size_t)n;
			mh_mta_send_modification(s->mta, &r);
			off += (uint64_t)n;
		} while (n > 0);
	}
	if (t->chgfrom != NULL) {
		memset(&r, 0, sizeof(r));
		r.code = 'e';
		r.u.chgfrom.addr = t->chgfrom;
		r.u.chgfrom.args = t->chgfrom_args;
		mh_mta_send_modification(s->mta, &r);
	}
	if (t->quarantine != NULL) {
		memset(&r, 0, sizeof(r));
		r.code = 'q';
		r.u.quarantine.reason = t->quarantine;
		mh_mta_send_modification(s->mta, &r);
	}
}
