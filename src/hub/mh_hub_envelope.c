/*
 * mh_hub_envelope - the envelope stages (connect, helo, mail, rcpt,
 * data, unknown) as a parallel barrier (design §2.2): the command goes
 * to every participating child at once, the MTA is answered when all
 * have answered, failed or timed out, with the merge of design §2.1.
 *
 * Who participates: at connect, helo, mail and unknown every child not
 * retired for the connection; at rcpt and data the children in the
 * transaction. A child that negotiated no reply (NR*) or does not take
 * the event (NO*) counts as having continued. A child whose applicable
 * conditions leave it out (design §2.7, mh_hub_cond.c) is not sent the
 * command and not folded: it is "not applicable", not an answer.
 */
#include <stdlib.h>
#include <string.h>

#include "hub/mh_hub_session.h"
#include "util/mh_log.h"

static int is_refusal(enum mh_status st)
{
	return st == MH_ST_REJECT || st == MH_ST_TEMPFAIL || st == MH_ST_DISCARD;
}

static int participates(const struct hub_child *k, uint8_t code)
{
	switch (code) {
	case 'R':
	case 'T':
		return k->in_txn;
	default:
		return !k->conn_done;
	}
}

/* A child's answer at an envelope stage: fold it, then what it means for
 * that child (design §2.2). */
static void apply_answer(struct hub_child *k, enum mh_status st, const char *text, int failed)
{
	struct hub_session *s = k->s;
	enum mh_status eff = hub_effective(k, st);

	k->last = st;
	hub_cond_note_answer(k, st);
	hub_set_text(k, eff == st ? text : NULL);
	mh_status_merge_add(&s->merge, eff, k->text, k->idx);
	if (failed) {
		/* design §2.5: fallback folded, child dropped for the session. */
		hub_child_drop(k, 0);
		return;
	}
	switch (s->cmd) {
	case 'C':
	case 'H':
		/* design §2.2: accept/reject/tempfail at connect/helo: done for the connection. */
		if (st != MH_ST_CONTINUE && st != MH_ST_SKIP) {
			k->conn_done = 1;
			hub_child_drop(k, 1);
		}
		break;
	case 'M':
	case 'T':
		/* design §2.2: non-continue leaves this transaction only. */
		k->in_txn = st == MH_ST_CONTINUE || st == MH_ST_SKIP;
		break;
	case 'R':
		k->rcpt_seen++;
		if (st == MH_ST_REJECT || st == MH_ST_TEMPFAIL)
			k->rcpt_refused++;
		else if (st == MH_ST_ACCEPT)
			k->in_txn = 0; /* design §2.1: accept retires it from the transaction */
		break;
	default:
		break;
	}
}

/* A failed child's fallback as its answer at this stage. */
static void fold_fallback(struct hub_child *k)
{
	k->fold_pending = 0;
	apply_answer(k, k->conf->fallback, NULL, 1);
}

/* design §2.2: a child that refused every recipient it saw leaves the
 * message at DATA and gets ABORT; so does one that got no recipient at
 * all because its conditions withheld them (design §2.7). */
void hub_drop_refused_all(struct hub_session *s)
{
	if (s->txn == NULL || s->txn->data_done)
		return;
	s->txn->data_done = 1;
	for (size_t i = 0; i < s->nkids; i++) {
		struct hub_child *k = &s->kids[i];

		if (!k->in_txn || (k->rcpt_seen == 0 && !k->rcpt_withheld) ||
		    k->rcpt_refused != k->rcpt_seen)
			continue;
		mh_debug(s->id, "child %s %s: dropped from the message", k->conf->name,
		         k->rcpt_seen > 0 ? "refused every recipient" : "has no recipient");
		k->in_txn = 0;
		if (k->link != NULL)
			mh_child_abort(k->link);
	}
}

static void clear_texts(struct hub_session *s)
{
	for (size_t i = 0; i < s->nkids; i++)
		hub_set_text(&s->kids[i], NULL);
}

static void barrier_finish(struct hub_session *s)
{
	enum mh_status st = mh_status_merge_result(&s->merge);
	const char *text = mh_status_merge_reply_text(&s->merge);
	uint8_t code = s->cmd;

	if (s->rcpt_rejected) {
		/* The MTA rejected it already; the children's answers do not count. */
		st = MH_ST_CONTINUE;
		text = NULL;
	} else if (st == MH_ST_NONE && s->rcpt_withheld) {
		/* design §2.7: a recipient no child applies to; they stay in the
		 * transaction, so this is no "no child left". */
		st = MH_ST_CONTINUE;
	} else if (st == MH_ST_NONE) {
		/* design §2.5: no applicable child left: the manager's fallback. */
		st = s->hub->conf->fallback;
		text = NULL;
		mh_debug(s->id, "no child at %s: manager fallback %s", hub_state_name(code),
		         mh_status_name(st));
	}
	if (st == MH_ST_SKIP)
		st = MH_ST_CONTINUE; /* skip means nothing at an envelope stage */
	if (st == MH_ST_DISCARD && (code == 'C' || code == 'H' || code == 'U'))
		st = MH_ST_REJECT; /* discard is not an answer there */
	s->phase = HUB_IDLE;
	if (code == 'R' && s->hub->has_when)
		hub_cond_note_rcpt_result(s, !s->rcpt_rejected && !is_refusal(st));
	/* design §2.2: an answer that ends the transaction (MAIL/DATA refused or
	 * accepted, a recipient discarding the message or accepting it) is sent,
	 * then the children still in it get ABORT. */
	int ends_txn = ((code == 'M' || code == 'T') && (is_refusal(st) || st == MH_ST_ACCEPT)) ||
	               (code == 'R' && (st == MH_ST_DISCARD || st == MH_ST_ACCEPT));
	hub_reply(s, st, text);
	if (ends_txn) {
		hub_abort_txn_children(s, NULL);
		hub_txn_free(s);
	}
	clear_texts(s);
}

void hub_envelope_answer(struct hub_child *k, const struct mh_child_answer *a)
{
	struct hub_session *s = k->s;

	if (!s->rcpt_rejected)
		apply_answer(k, a->status, a->text, a->failed);
	else if (a->failed)
		hub_child_drop(k, 0);
	if (s->pending > 0 && --s->pending == 0)
		barrier_finish(s);
}

/* The command as it goes on the wire (payload only) into the hub's scratch buffer. */
static void encode_payload(struct hub_session *s, const struct mh_cmd *cmd, const uint8_t **p,
                           size_t *len)
{
	struct mh_buf *b = &s->hub->scratch;

	mh_buf_reset(b);
	switch (cmd->code) {
	case 'C':
		mh_codec_put_connect(b, cmd->u.connect.hostname, cmd->u.connect.family,
		                     cmd->u.connect.port, cmd->u.connect.address);
		break;
	case 'H':
		mh_codec_put_str(b, 'H', cmd->u.helo.name);
		break;
	case 'M':
	case 'R':
		mh_codec_put_strs(b, cmd->code, cmd->u.env.argv, cmd->u.env.argc);
		break;
	case 'U':
		mh_codec_put_str(b, 'U', cmd->u.unknown.line);
		break;
	default:
		mh_codec_put_empty(b, cmd->code);
		break;
	}
	*p = mh_buf_head(b) + 5;
	*len = mh_buf_size(b) - 5;
}

/* RCPT_REJ: a recipient the MTA itself rejected ({rcpt_mailer} = error). */
static int mta_rejected_rcpt(struct hub_session *s)
{
	const struct mh_optneg *neg = mh_mta_negotiated(s->mta);
	const char *mailer;

	if (neg == NULL || !(neg->protocol & MH_PROTO_RCPT_REJ))
		return 0;
	mailer = mh_mta_macro(s->mta, "{rcpt_mailer}");
	return mailer != NULL && strcmp(mailer, "error") == 0;
}

void hub_envelope_command(struct hub_session *s, const struct mh_cmd *cmd)
{
	uint8_t code = cmd->code;
	const char *const *pairs;
	size_t npairs, len;
	const uint8_t *payload;
	int rejected = 0;

	s->rcpt_rejected = 0;
	s->rcpt_withheld = 0;

	if (code == 'M') {
		hub_txn_new(s);
		mh_msg_set_sender(&s->txn->msg, cmd->u.env.argv[0], NULL);
	} else if (code == 'R' || code == 'T') {
		if (s->txn == NULL)
			hub_txn_new(s); /* children not in a transaction: fallback below */
		if (code == 'T')
			hub_drop_refused_all(s);
		else
			rejected = mta_rejected_rcpt(s);
	}
	s->rcpt_rejected = rejected;
	hub_cond_note_command(s, cmd);
	encode_payload(s, cmd, &payload, &len);
	mh_status_merge_init(&s->merge);
	s->pending = 0;
	s->phase = HUB_BARRIER;
	for (size_t i = 0; i < s->nkids; i++) {
		struct hub_child *k = &s->kids[i];
		enum mh_child_sent sent;

		if (!participates(k, code))
			continue;
		/* design §2.7: asked first, so a child left out is not folded. */
		if (k->conf->nwhen > 0 && !rejected && !hub_cond_envelope(k, cmd)) {
			s->rcpt_withheld |= code == 'R';
			continue;
		}
		if (k->fold_pending) {
			if (!rejected)
				fold_fallback(k);
			continue;
		}
		if (k->link == NULL)
			continue;
		if (rejected) {
			/* Only children that asked see MTA-rejected recipients;
			 * their answers do not count. */
			const struct mh_optneg *n = mh_child_negotiated(k->link);

			if (n == NULL || !(n->protocol & MH_PROTO_RCPT_REJ))
				continue;
		}
		k->state = code;
		k->sent = ev_now(s->hub->loop);
		npairs = hub_macros(k, code, &pairs);
		sent = mh_child_send(k->link, code, payload, len, pairs, npairs);
		if (sent == MH_CHILD_WAIT) {
			k->waiting = 1;
			s->pending++;
		} else if (rejected) {
			continue;
		} else if (sent == MH_CHILD_NOT_SENT && mh_child_dead(k->link)) {
			apply_answer(k, k->conf->fallback, NULL, 1);
		} else {
			apply_answer(k, MH_ST_CONTINUE, NULL, 0);
		}
	}
	if (s->pending == 0)
		barrier_finish(s);
}
