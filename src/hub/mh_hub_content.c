/*
 * mh_hub_content - the content stages (header, eoh, body, eom) as a
 * chain in configuration order (design §2.3), as Postfix and Sendmail
 * run several milters: each child gets the whole message in turn and
 * sees the modifications of the children before it.
 *
 * The chain is frozen at the first content command: the children still
 * in the transaction. The first one (the head) gets content live and
 * the MTA gets its answers; the hub keeps the headers (a working mh_msg,
 * raw values, the MTA's hidden Received: on top so insert indexes match
 * what the MTA holds) and the body (mh_body). At end-of-message the head
 * gets 'E'; each later child is then replayed the modified message
 * (headers, eoh, body in chunks, 'E'), respecting its NO* and skip.
 * After the last child the kept modifications and the decision go to
 * the MTA (mh_hub_mods.c).
 *
 * Applicable conditions (design §2.7) are asked before each header, eoh
 * and eom a child is sent; a child left out gets ABORT and the chain
 * goes on without it (the next children are replayed as usual).
 */
#include <stdlib.h>
#include <string.h>

#include "hub/mh_hub_session.h"
#include "util/mh_log.h"

/* What a child's answer at a content stage means for the chain. */
enum verdict {
	V_NEXT, /* continue: go on with this child */
	V_SKIP, /* skip: no more body (or headers) for it */
	V_CHILD_DONE, /* accept (or counted as accept), or failed: next child */
	V_END, /* the message ended; the MTA has its answer */
};

static void end_message(struct hub_session *s, struct hub_child *k, enum mh_status st,
                        const char *text)
{
	struct mh_status_merge m;

	mh_status_merge_init(&m);
	mh_status_merge_add(&m, st, text, 0);
	s->txn->ended = 1;
	if (k != NULL)
		k->in_txn = 0;
	hub_reply(s, st, mh_status_merge_reply_text(&m));
	hub_abort_txn_children(s, k);
}

static enum verdict verdict(struct hub_child *k, enum mh_status st, const char *text, int failed)
{
	struct hub_session *s = k->s;
	enum mh_status eff = hub_effective(k, st);

	k->last = st;
	hub_cond_note_answer(k, st);
	if (failed) {
		hub_mods_child_done(s, k, 0);
		hub_child_drop(k, 0);
	}
	switch (eff) {
	case MH_ST_CONTINUE:
		if (!failed)
			return V_NEXT;
		s->txn->any_continue = 1;
		k->msg_done = 1;
		return V_CHILD_DONE;
	case MH_ST_SKIP:
		return failed ? V_CHILD_DONE : V_SKIP;
	case MH_ST_ACCEPT:
	case MH_ST_NONE:
		/* design §2.1: accept retires it from the message; design §2.6:
		 * an evaluation child's refusal counts as accept. */
		s->txn->any_accept = 1;
		if (eff != st)
			mh_info(s->id, "child %s (evaluation) answered %s at %s: counted as accept",
			        k->conf->name, mh_status_name(st), hub_state_name(k->state));
		k->msg_done = 1;
		return V_CHILD_DONE;
	default:
		/* design §2.3: reject/tempfail/discard ends the message at once. */
		hub_mods_child_done(s, k, 0);
		end_message(s, k, eff, text);
		return V_END;
	}
}

/* Children after the head that still need the body (design §2.3: skip is
 * forwarded only when no later child needs it). */
static int later_needs_body(struct hub_session *s)
{
	struct hub_txn *t = s->txn;

	for (uint16_t i = 1; i < t->nchain; i++) {
		struct hub_child *k = t->chain[i];

		if (!k->msg_done && k->link != NULL && mh_child_takes(k->link, 'B'))
			return 1;
	}
	return 0;
}

static int chain_pending(struct hub_session *s)
{
	struct hub_txn *t = s->txn;

	for (uint16_t i = 0; i < t->nchain; i++)
		if (!t->chain[i]->msg_done)
			return 1;
	return 0;
}

/* Freeze the chain at the first content command. Returns 0, or -1 when
 * the message ended (the MTA has been answered). */
static int content_begin(struct hub_session *s)
{
	struct hub_txn *t = s->txn;
	struct hub_child *head;

	hub_drop_refused_all(s);
	t->content = 1;
	t->step = RP_NONE;
	/* The MTA's own Received: counts in insert indexes (design §2.3). */
	mh_msg_add_header(&t->msg, "Received", " by milterhub (the MTA's own header)", 1);
	t->chain = mh_xcalloc(s->nkids ? s->nkids : 1, sizeof(*t->chain));
	for (size_t i = 0; i < s->nkids; i++)
		if (s->kids[i].in_txn)
			t->chain[t->nchain++] = &s->kids[i];
	while (t->nchain > 0) {
		head = t->chain[0];
		if (head->fold_pending) {
			head->fold_pending = 0;
			if (verdict(head, head->conf->fallback, NULL, 1) == V_END)
				return -1;
			/* gone: the next child becomes the head */
			memmove(t->chain, t->chain + 1, (t->nchain - 1) * sizeof(*t->chain));
			t->nchain--;
			continue;
		}
		head->live = 1;
		return 0;
	}
	/* design §2.5: no child left in the message: the manager's fallback. */
	end_message(s, NULL, s->hub->conf->fallback, NULL);
	return -1;
}

static struct hub_child *live_head(struct hub_session *s)
{
	struct hub_txn *t = s->txn;
	struct hub_child *k;

	if (t->nchain == 0)
		return NULL;
	k = t->chain[0];
	if (!k->live || k->msg_done || k->link == NULL)
		return NULL;
	return k;
}

/* One header as the child sees it ('L' payload). */
static void put_header(struct hub_session *s, struct hub_child *k, const char *name,
                       const char *raw, const uint8_t **p, size_t *len)
{
	struct mh_buf *b = &s->hub->scratch;

	mh_buf_reset(b);
	mh_codec_put_header(b, 'L', name, mh_msg_value_for_milter(raw, mh_child_leadspc(k->link)));
	*p = mh_buf_head(b) + 5;
	*len = mh_buf_size(b) - 5;
}

static enum mh_child_sent send_to(struct hub_child *k, uint8_t code, const void *p, size_t len)
{
	const char *const *pairs;
	size_t npairs = hub_macros(k, code, &pairs);
	enum mh_child_sent sent;

	k->state = code;
	k->sent = ev_now(k->s->hub->loop);
	sent = mh_child_send(k->link, code, p, len, pairs, npairs);
	if (sent == MH_CHILD_WAIT)
		k->waiting = 1;
	return sent;
}

/* ---- live content to the head ---- */

/* The MTA with no message left for anyone ends it as when all accepted;
 * when no child accepted it either (all were left out by conditions),
 * no applicable child is left: the manager's fallback (design §2.5). */
static enum mh_status nobody_left_status(struct hub_session *s)
{
	struct hub_txn *t = s->txn;

	if (t->cond_out && !t->any_accept) {
		mh_debug(s->id, "no child applies to the message: manager fallback %s",
		         mh_status_name(s->hub->conf->fallback));
		return s->hub->conf->fallback;
	}
	return MH_ST_ACCEPT;
}

/* The live head was left out by its conditions (design §2.7): the later
 * children will be replayed the message at end-of-message. */
static void live_left_out(struct hub_session *s)
{
	if (!chain_pending(s) && !s->txn->any_continue) {
		s->txn->ended = 1;
		hub_reply(s, nobody_left_status(s), NULL);
		return;
	}
	hub_reply(s, MH_ST_CONTINUE, NULL);
}

static void live_command(struct hub_session *s, uint8_t code, const struct mh_cmd *cmd,
                         const char *raw)
{
	struct hub_child *k = live_head(s);
	const uint8_t *p = NULL;
	size_t len = 0;
	enum mh_child_sent sent;

	if (k == NULL || (code == 'B' && k->skip_body) || (code == 'L' && k->skip_hdrs)) {
		hub_reply(s, MH_ST_CONTINUE, NULL);
		return;
	}
	if (k->conf->nwhen > 0 && (code == 'L' || code == 'N') &&
	    !hub_cond_content(k, code, code == 'L' ? cmd->u.header.name : NULL, raw)) {
		live_left_out(s);
		return;
	}
	if (code == 'L') {
		put_header(s, k, cmd->u.header.name, raw, &p, &len);
	} else if (code == 'B') {
		p = cmd->u.body.data;
		len = cmd->u.body.len;
	}
	sent = send_to(k, code, p, len);
	if (sent == MH_CHILD_WAIT) {
		s->phase = HUB_LIVE;
		return;
	}
	if (sent == MH_CHILD_NOT_SENT && mh_child_dead(k->link)) {
		if (verdict(k, k->conf->fallback, NULL, 1) == V_END)
			return;
	}
	hub_reply(s, MH_ST_CONTINUE, NULL);
}

static void live_answer(struct hub_child *k, const struct mh_child_answer *a)
{
	struct hub_session *s = k->s;
	uint8_t code = s->cmd;

	switch (verdict(k, a->status, a->text, a->failed)) {
	case V_NEXT:
		hub_reply(s, MH_ST_CONTINUE, NULL);
		break;
	case V_SKIP:
		if (code == 'B') {
			const struct mh_optneg *neg = mh_mta_negotiated(s->mta);
			int mta_skip = neg != NULL && (neg->protocol & MH_PROTO_SKIP);

			k->skip_body = 1;
			/* design §2.3: skip never forwarded while later children need the body. */
			hub_reply(s, mta_skip && !later_needs_body(s) ? MH_ST_SKIP : MH_ST_CONTINUE,
			          NULL);
			break;
		}
		if (code == 'L')
			k->skip_hdrs = 1;
		hub_reply(s, MH_ST_CONTINUE, NULL);
		break;
	case V_CHILD_DONE:
		k->live = 0;
		k->in_txn = 0;
		if (!chain_pending(s) && !s->txn->any_continue) {
			/* design §2.1: every child accepted: the MTA gets accept. */
			s->txn->ended = 1;
			hub_reply(s, MH_ST_ACCEPT, NULL);
		} else {
			hub_reply(s, MH_ST_CONTINUE, NULL);
		}
		break;
	case V_END:
		break;
	}
}

/* ---- end of message: the chain ---- */

static void finish_eom(struct hub_session *s)
{
	struct hub_txn *t = s->txn;
	enum mh_status st = t->any_continue ? MH_ST_CONTINUE : nobody_left_status(s);

	hub_mods_emit(s);
	t->ended = 1;
	for (size_t i = 0; i < s->nkids; i++)
		s->kids[i].in_txn = 0;
	/* design §2.3: continue if any child continued, accept if all accepted. */
	hub_reply(s, st, NULL);
}

/*
 * Send the current chain child its next commands until one waits for an
 * answer. Returns 1 when waiting, 0 when the child is finished with
 * (next child), -1 when the message ended.
 */
static int replay_advance(struct hub_session *s, struct hub_child *k)
{
	struct hub_txn *t = s->txn;
	const uint8_t *p;
	size_t len;
	ssize_t n;
	enum mh_child_sent sent = MH_CHILD_NOWAIT;

	for (;;) {
		if (k->link == NULL || mh_child_dead(k->link)) {
			enum verdict v = verdict(k, k->conf->fallback, NULL, 1);

			return v == V_END ? -1 : 0;
		}
		switch (t->step) {
		case RP_HDRS:
			if (t->rhdr >= t->msg.nhdrs || k->skip_hdrs ||
			    !mh_child_takes(k->link, 'L')) {
				t->step = RP_EOH;
				continue;
			}
			if (t->msg.hdrs[t->rhdr].hidden) {
				t->rhdr++;
				continue;
			}
			if (k->conf->nwhen > 0 &&
			    !hub_cond_content(k, 'L', t->msg.hdrs[t->rhdr].name,
			                      t->msg.hdrs[t->rhdr].value))
				return 0;
			put_header(s, k, t->msg.hdrs[t->rhdr].name, t->msg.hdrs[t->rhdr].value, &p,
			           &len);
			t->rhdr++;
			sent = send_to(k, 'L', p, len);
			break;
		case RP_EOH:
			if (k->conf->nwhen > 0 && !hub_cond_content(k, 'N', NULL, NULL))
				return 0;
			t->step = RP_BODY;
			sent = send_to(k, 'N', NULL, 0);
			break;
		case RP_BODY:
			if (k->skip_body || !mh_child_takes(k->link, 'B')) {
				t->step = RP_EOM;
				continue;
			}
			n = hub_body_next_chunk(s, &p);
			if (n < 0) {
				mh_err(s->id, "cannot read the kept body; manager fallback");
				end_message(s, NULL, s->hub->conf->fallback, NULL);
				return -1;
			}
			if (n == 0) {
				t->step = RP_EOM;
				continue;
			}
			sent = send_to(k, 'B', p, (size_t)n);
			break;
		case RP_EOM:
			if (k->conf->nwhen > 0 && !hub_cond_content(k, 'E', NULL, NULL))
				return 0;
			t->step = RP_WAIT_EOM;
			sent = send_to(k, 'E', NULL, 0);
			if (sent != MH_CHILD_WAIT && !mh_child_dead(k->link)) {
				/* cannot happen ('E' is always answered); count as continue */
				hub_mods_child_done(s, k, !k->conf->evaluate);
				t->any_continue = 1;
				k->msg_done = 1;
				return 0;
			}
			break;
		default:
			return 0;
		}
		if (sent == MH_CHILD_WAIT) {
			s->phase = HUB_CHAIN;
			return 1;
		}
	}
}

static void run_chain(struct hub_session *s)
{
	struct hub_txn *t = s->txn;

	if (t->failed_io) {
		/* a replaced body could not be kept: the manager's fallback */
		end_message(s, NULL, s->hub->conf->fallback, NULL);
		return;
	}
	while (t->pos < t->nchain) {
		struct hub_child *k = t->chain[t->pos];
		int r;

		if (k->msg_done || (k->link == NULL && !k->fold_pending)) {
			t->pos++;
			t->step = RP_NONE;
			continue;
		}
		if (k->fold_pending) {
			k->fold_pending = 0;
			if (verdict(k, k->conf->fallback, NULL, 1) == V_END)
				return;
			continue;
		}
		if (t->step == RP_NONE) {
			/* The head got everything live; later children are replayed. */
			t->step = k->live ? RP_EOM : RP_HDRS;
			t->rhdr = 0;
			t->roff = 0;
			memset(&t->norm, 0, sizeof(t->norm));
			if (k->live && t->live_eob_off < mh_body_size(&t->body)) {
				t->step = RP_BODY; /* the 'E' carried a last chunk */
				t->roff = t->live_eob_off;
			}
		}
		r = replay_advance(s, k);
		if (r != 0)
			return;
	}
	finish_eom(s);
}

static void chain_answer(struct hub_child *k, const struct mh_child_answer *a)
{
	struct hub_session *s = k->s;
	struct hub_txn *t = s->txn;
	int at_eom = t->step == RP_WAIT_EOM;
	enum mh_status eff = hub_effective(k, a->status);

	switch (verdict(k, a->status, a->text, a->failed)) {
	case V_NEXT:
	case V_SKIP:
		if (at_eom) {
			hub_mods_child_done(s, k, !k->conf->evaluate);
			t->any_continue = 1;
			k->msg_done = 1;
		} else if (k->state == 'B' && a->status == MH_ST_SKIP) {
			k->skip_body = 1;
			t->step = RP_EOM;
		} else if (k->state == 'L' && a->status == MH_ST_SKIP) {
			k->skip_hdrs = 1;
		}
		break;
	case V_CHILD_DONE:
		/* 'E' answered accept: its modifications stand (not an
		 * evaluation child's, not a failed child's). */
		if (at_eom && !a->failed)
			hub_mods_child_done(s, k, !k->conf->evaluate && eff == a->status);
		else
			hub_mods_child_done(s, k, 0);
		break;
	case V_END:
		return;
	}
	run_chain(s);
}

void hub_content_answer(struct hub_child *k, const struct mh_child_answer *a)
{
	struct hub_session *s = k->s;

	if (s->txn == NULL) {
		if (a->failed)
			hub_child_drop(k, 0);
		return;
	}
	if (s->phase == HUB_LIVE)
		live_answer(k, a);
	else
		chain_answer(k, a);
	if (s->txn != NULL && s->txn->ended)
		hub_txn_free(s);
}

void hub_content_command(struct hub_session *s, const struct mh_cmd *cmd)
{
	struct hub_txn *t = s->txn;
	uint8_t code = cmd->code;
	char err[256];
	char *raw = NULL;

	if (t == NULL || t->ended) {
		/* No transaction the children take part in (all retired). */
		hub_reply(s, t == NULL ? s->hub->conf->fallback : MH_ST_CONTINUE, NULL);
		return;
	}
	if (!t->content && content_begin(s) < 0)
		goto out;
	if (code == 'L') {
		raw = mh_msg_value_from_milter(cmd->u.header.value, s->mta_leadspc);
		mh_msg_add_header(&t->msg, cmd->u.header.name, raw, 0);
	} else if (code == 'B' || (code == 'E' && cmd->u.body.len > 0)) {
		if (code == 'E')
			t->live_eob_off = mh_body_size(&t->body);
		if (mh_body_append(&t->body, cmd->u.body.data, cmd->u.body.len, err, sizeof(err)) <
		    0) {
			mh_err(s->id, "cannot keep the body: %s; manager fallback", err);
			end_message(s, NULL, s->hub->conf->fallback, NULL);
			goto out;
		}
	}
	if (code == 'E') {
		if (code == 'E' && cmd->u.body.len == 0)
			t->live_eob_off = mh_body_size(&t->body);
		t->pos = 0;
		t->step = RP_NONE;
		s->phase = HUB_CHAIN;
		run_chain(s);
	} else {
		live_command(s, code, cmd, raw);
	}
out:
	free(raw);
	if (s->txn != NULL && s->txn->ended)
		hub_txn_free(s);
}
