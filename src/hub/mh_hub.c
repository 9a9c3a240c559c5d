/*
 * mh_hub - the hub and its sessions: accept an MTA connection, connect
 * and negotiate the children in parallel when the MTA negotiates
 * (design §2.4), route the MTA's commands to the envelope barrier
 * (mh_hub_envelope.c) or the content chain (mh_hub_content.c), route the
 * children's callbacks back, and end sessions (their statistics and
 * log lines: mh_hub_report.c).
 *
 * Contract: mh_hub.h. Private structures: mh_hub_session.h.
 */
#include "hub/mh_hub.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/mh_hub_session.h"
#include "util/mh_log.h"

/* ---- small helpers shared by the hub's files ---- */

const char *hub_state_name(uint8_t cmd)
{
	switch (cmd) {
	case 'O':
		return "negotiate";
	case 'C':
		return "connect";
	case 'H':
		return "helo";
	case 'M':
		return "envelope-from";
	case 'R':
		return "envelope-recipient";
	case 'T':
		return "data";
	case 'U':
		return "unknown";
	case 'L':
		return "header";
	case 'N':
		return "end-of-header";
	case 'B':
		return "body";
	case 'E':
		return "end-of-message";
	case 'A':
		return "abort";
	case 'Q':
		return "quit";
	default:
		return "start";
	}
}

/* design §2.6: an evaluation child's reject/tempfail/discard count as accept. */
enum mh_status hub_effective(const struct hub_child *k, enum mh_status st)
{
	if (k->conf->evaluate &&
	    (st == MH_ST_REJECT || st == MH_ST_TEMPFAIL || st == MH_ST_DISCARD))
		return MH_ST_ACCEPT;
	return st;
}

void hub_set_text(struct hub_child *k, const char *text)
{
	free(k->text);
	k->text = text != NULL ? mh_xstrdup(text) : NULL;
}

/*
 * The MTA's pairs for command code, plus the macros k's conditions set
 * (design §2.7), for k only. The child link keeps the pairs k negotiated
 * (mh_child_forward_macros, set in negotiation_done).
 */
size_t hub_macros(struct hub_child *k, uint8_t code, const char *const **pairs)
{
	size_t n = 0;

	*pairs = NULL;
	if (k->s->mta != NULL)
		n = mh_mta_macros(k->s->mta, code, pairs);

	if (k->nxmacros == 0)
		return n;
	return hub_cond_macros(k, code, *pairs, n, pairs);
}

/* Drop a child for the rest of the session (quit: send 'Q' first). */
void hub_child_drop(struct hub_child *k, int quit)
{
	hub_child_log_end(k);
	if (k->link != NULL) {
		if (quit)
			mh_child_quit(k->link);
		else
			mh_child_free(k->link);
		k->link = NULL;
	}
	k->in_txn = 0;
	k->waiting = 0;
}

void hub_abort_txn_children(struct hub_session *s, const struct hub_child *except)
{
	for (size_t i = 0; i < s->nkids; i++) {
		struct hub_child *k = &s->kids[i];

		if (!k->in_txn || k == except)
			continue;
		k->in_txn = 0;
		if (k->link != NULL)
			mh_child_abort(k->link);
	}
}

struct hub_txn *hub_txn_new(struct hub_session *s)
{
	const struct mh_hub_conf *conf = s->hub->conf;
	struct hub_txn *t = mh_xcalloc(1, sizeof(*t));
	size_t limit = conf->body_memory_limit ? conf->body_memory_limit : 4u << 20;

	mh_msg_init(&t->msg);
	mh_body_init(&t->body, limit, conf->tmpdir);
	mh_body_init(&t->repl, limit, conf->tmpdir);
	hub_txn_free(s);
	s->txn = t;
	for (size_t i = 0; i < s->nkids; i++) {
		struct hub_child *k = &s->kids[i];

		k->in_txn = 0;
		k->rcpt_seen = k->rcpt_refused = 0;
		k->skip_body = k->skip_hdrs = k->msg_done = k->live = 0;
	}
	return t;
}

/* design §2.5: nothing of a transaction leaks into the next one. */
void hub_txn_free(struct hub_session *s)
{
	struct hub_txn *t = s->txn;

	if (t == NULL)
		return;
	if (s->hub->has_when)
		hub_cond_txn_reset(s); /* design §2.7: transaction-scope verdicts end here */
	mh_msg_free(&t->msg);
	mh_body_free(&t->body);
	mh_body_free(&t->repl);
	hub_mods_free(t);
	free(t->chain);
	free(t);
	s->txn = NULL;
	for (size_t i = 0; i < s->nkids; i++) {
		s->kids[i].in_txn = 0;
		s->kids[i].skip_body = s->kids[i].skip_hdrs = 0;
		s->kids[i].msg_done = s->kids[i].live = 0;
	}
}

/* ---- session lifecycle ---- */

void hub_enter(struct hub_session *s)
{
	s->depth++;
}

static void session_destroy(struct hub_session *s)
{
	struct mh_hub *h = s->hub;

	hub_log_stopped_children(s);
	for (size_t i = 0; i < s->nkids; i++) {
		hub_child_drop(&s->kids[i], 1);
		free(s->kids[i].text);
		hub_cond_child_free(&s->kids[i]);
	}
	hub_cond_session_free(s);
	if (!s->ended_log) {
		s->ended_log = 1;
		hub_session_log_end(s);
	}
	hub_message_end(s, MH_RES_ABORT); /* closed mid-transaction */
	hub_txn_free(s);
	free(s->kids);
	if (s->deferred != NULL) {
		mh_buf_free(s->deferred);
		free(s->deferred);
	}
	mh_negotiate_macros_free(&s->neg_macros);
	if (s->mta != NULL)
		mh_mta_free(s->mta);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		h->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	h->nsessions--;
	free(s);
	if (h->conf->hooks != NULL && h->conf->hooks->session_close != NULL)
		h->conf->hooks->session_close(h->conf->hooks->arg);
}

void hub_leave(struct hub_session *s)
{
	if (--s->depth == 0 && s->closing)
		session_destroy(s);
}

void hub_close(struct hub_session *s, const char *why)
{
	if (s->closing)
		return;
	mh_debug(s->id, "session closing: %s", why);
	s->closing = 1;
}

/* End the MTA's current command with a decision (nothing for NR events). */
void hub_reply(struct hub_session *s, enum mh_status st, const char *text)
{
	s->phase = HUB_IDLE;
	if (s->closing || s->mta == NULL)
		return;
	if (s->cmd != 'R' && s->cmd != 'U' && s->cmd != 'L' && s->cmd != 'N' && s->cmd != 'B')
		s->result = st;
	else if (st != MH_ST_CONTINUE && st != MH_ST_SKIP && s->cmd != 'U' && s->cmd != 'R')
		s->result = st;
	else if (s->cmd == 'R' && st == MH_ST_DISCARD)
		s->result = st;
	mh_debug(s->id, "reply to %s: %s%s%s", hub_state_name(s->cmd), mh_status_name(st),
	         text ? " " : "", text ? text : "");
	hub_count_reply(s, st);
	mh_mta_reply(s->mta, st, text);
}

/* ---- negotiation (design §2.4) ---- */

/*
 * Macros the built-in conditions read, asked of the MTA whenever some
 * child has a `when` list, even if every child sent its own list without
 * them (design §2.4: the union plus what conditions need).
 */
static const char *const cond_macros[MH_STAGE_COUNT] = {
    [MH_STAGE_MAIL] = "{auth_type} {auth_authen}",
};

static void negotiation_done(struct hub_session *s)
{
	const struct mh_optneg *offer = mh_mta_offer(s->mta);
	const struct mh_optneg **replies = mh_xcalloc(s->nkids + 1, sizeof(*replies));
	struct mh_optneg reply;
	size_t n = 0;

	for (size_t i = 0; i < s->nkids; i++)
		if (s->kids[i].link != NULL)
			replies[n++] = mh_child_negotiated(s->kids[i].link);
	mh_negotiate_macros_free(&s->neg_macros);
	if (mh_negotiate_merge(offer, replies, n, s->hub->has_when ? cond_macros : NULL, &reply,
	                       &s->neg_macros) != MH_CODEC_OK) {
		free(replies);
		mh_warn(s->id, "MTA offered protocol version %u: unsupported", offer->version);
		hub_close(s, "negotiation");
		return;
	}
	free(replies);
	/* design §2.4: each child gets the macros it asked for, or the MTA's
	 * defaults when it asked for none, although the MTA sends the union. */
	for (size_t i = 0; i < s->nkids; i++) {
		struct mh_negotiate_child plan;

		if (s->kids[i].link == NULL)
			continue;
		mh_negotiate_plan_child(&reply, mh_child_negotiated(s->kids[i].link), &plan);
		mh_child_forward_macros(s->kids[i].link, plan.macros);
		mh_negotiate_child_free(&plan);
	}
	/* No child alive: ask for no NR bit, so the manager fallback is
	 * answered at connect (design §2.5). */
	if (n == 0)
		reply.protocol &= ~(uint32_t)MH_NEG_NOREPLY_BITS;
	s->mta_leadspc = (reply.protocol & MH_PROTO_HDR_LEADSPC) != 0;
	s->negotiated = 1;
	s->phase = HUB_IDLE;
	mh_debug(
	    s->id,
	    "negotiated with the MTA: version %u actions 0x%x protocol 0x%x (%zu of %u children)",
	    reply.version, reply.actions, reply.protocol, n, s->nkids);
	mh_mta_reply_optneg(s->mta, &reply);
}

static void restart_done(struct hub_session *s);

static void child_on_negotiated(struct mh_child *c, int ok, void *arg)
{
	struct hub_child *k = arg;
	struct hub_session *s = k->s;

	hub_enter(s);
	if (!ok) {
		/* design §2.5: unreachable counts as failed: its fallback is its
		 * answer at connect, then it is gone. */
		mh_warn(s->id, "child %s: negotiation failed, fallback %s", k->conf->name,
		        mh_status_name(k->conf->fallback));
		hub_child_failed(k, mh_child_failure(c), MH_FAIL_OTHER);
		mh_child_free(c);
		k->link = NULL;
		k->fold_pending = 1;
		k->last = k->conf->fallback;
	} else {
		const struct mh_hub_hooks *hk = s->hub->conf->hooks;
		if (hk != NULL && hk->child_answer != NULL)
			hk->child_answer(hk->arg, (size_t)(k->conf - s->hub->conf->children),
			                 MH_HS_NEGOTIATE, MH_ST_CONTINUE,
			                 ev_now(s->hub->loop) - k->sent);
		mh_debug(s->id, "child %s: negotiated", k->conf->name);
	}
	if (s->negpending > 0 && --s->negpending == 0) {
		if (s->phase == HUB_NEGOTIATING)
			negotiation_done(s);
		else if (s->phase == HUB_RESTART)
			restart_done(s);
	}
	hub_leave(s);
}

static const struct mh_child_ops child_ops;

/* Is child i in this session: the config, overridden by the daemon's gate. */
static enum mh_hub_gate child_gate(const struct mh_hub_conf *conf, size_t i)
{
	enum mh_hub_gate g = MH_GATE_CONFIG;

	if (conf->hooks != NULL && conf->hooks->gate != NULL)
		g = conf->hooks->gate(conf->hooks->arg, i);
	if (g == MH_GATE_CONFIG)
		g = conf->children[i].enabled ? MH_GATE_ON : MH_GATE_OFF;
	return g;
}

/* Start one link per child in use, all in parallel. */
static void start_children(struct hub_session *s)
{
	const struct mh_hub_conf *conf = s->hub->conf;
	const struct mh_hub_hooks *hooks = conf->hooks;
	uint8_t gate[MH_HUB_CHILDREN_MAX];
	size_t n = 0;

	for (size_t i = 0; i < conf->nchildren; i++) {
		gate[i] = (uint8_t)child_gate(conf, i);
		n += gate[i] != MH_GATE_OFF;
	}
	free(s->kids);
	s->kids = n ? mh_xcalloc(n, sizeof(*s->kids)) : NULL;
	s->nkids = (uint16_t)n;
	s->negpending = 0;
	n = 0;
	for (size_t i = 0; i < conf->nchildren; i++) {
		const struct mh_child_conf *cc = &conf->children[i];
		struct hub_child *k;
		char err[256] = "";

		if (gate[i] == MH_GATE_OFF)
			continue;
		k = &s->kids[n];
		k->s = s;
		k->conf = cc;
		k->idx = (uint16_t)n;
		k->last = MH_ST_NONE;
		k->res_conn = k->res_txn = MH_ST_NONE;
		k->state = 'O';
		k->start = k->sent = ev_now(s->hub->loop);
		n++;
		if (hooks != NULL && hooks->child_used != NULL)
			hooks->child_used(hooks->arg, i);
		enum mh_hub_fail fail = MH_FAIL_DOWN;
		if (gate[i] == MH_GATE_DOWN) {
			/* design §2.5, issue 5: a child known dead costs no connect timeout */
			mh_warn(s->id, "child %s is down (supervisor): fallback %s", cc->name,
			        mh_status_name(cc->fallback));
		} else {
			k->link = mh_child_new(s->hub->loop, cc, &s->offer, s->id, &child_ops, k,
			                       err, sizeof(err));
			if (k->link != NULL) {
				s->negpending++;
				continue;
			}
			mh_warn(s->id, "child %s: cannot start: %s", cc->name, err);
			fail = MH_FAIL_CLOSED;
		}
		hub_child_failed(k, NULL, fail);
		k->fold_pending = 1;
		k->last = cc->fallback;
	}
}

static void mta_on_optneg(struct mh_mta *m, const struct mh_optneg *offer, void *arg)
{
	struct hub_session *s = arg;

	hub_enter(s);
	memset(&s->offer, 0, sizeof(s->offer));
	/* Offer each child version 6, the MTA's actions and every v6 protocol
	 * bit the hub can emulate for it (design §2.4). */
	s->offer.version = 6;
	s->offer.actions = offer->actions != 0 ? offer->actions : 0x0f;
	s->offer.protocol = MH_PROTO_V6_MASK;
	s->cmd = 'O';
	s->last_cmd = 'O';
	s->phase = HUB_NEGOTIATING;
	start_children(s);
	if (s->negpending == 0)
		negotiation_done(s);
	hub_leave(s);
}

/* ---- MTA commands ---- */

/* 'K': the connection is reused for a new SMTP session (no renegotiation
 * with the MTA). The children's connection state cannot be reset, so
 * they are quit and fresh links negotiate with the same offer. */
static void restart_session(struct hub_session *s)
{
	hub_log_stopped_children(s); /* while the transaction still tells who was in it */
	hub_message_end(s, MH_RES_ABORT);
	hub_txn_free(s);
	for (size_t i = 0; i < s->nkids; i++) {
		struct hub_child *k = &s->kids[i];

		hub_child_drop(k, 1);
		free(k->text);
		k->text = NULL;
		hub_cond_child_free(k);
	}
	hub_cond_session_free(s);
	hub_session_log_end(s);
	s->start = ev_now(s->hub->loop);
	s->result = MH_ST_NONE;
	s->last_cmd = 0;
	s->phase = HUB_RESTART;
	start_children(s);
	if (s->negpending == 0)
		s->phase = HUB_IDLE;
}

/* The new links after 'K' are ready: run a 'C' that came meanwhile. */
static void restart_done(struct hub_session *s)
{
	struct mh_buf *b = s->deferred;
	struct mh_packet p;
	struct mh_cmd *cmd;

	s->phase = HUB_IDLE;
	if (b == NULL)
		return;
	s->deferred = NULL;
	cmd = mh_xmalloc(sizeof(*cmd));
	p.code = mh_buf_head(b)[4];
	p.data = mh_buf_head(b) + 5;
	p.len = mh_buf_size(b) - 5;
	if (mh_codec_decode_cmd(&p, cmd) == MH_CODEC_OK) {
		s->cmd = cmd->code;
		hub_envelope_command(s, cmd);
	} else {
		hub_close(s, "deferred connect");
	}
	free(cmd);
	mh_buf_free(b);
	free(b);
}

static void mta_on_command(struct mh_mta *m, const struct mh_cmd *cmd, void *arg)
{
	struct hub_session *s = arg;

	hub_enter(s);
	if (s->closing)
		goto out;
	/* For [session][end]: QUIT aside, and an ABORT only when it ends an open
	 * transaction (Postfix sends one after every message, as a reset). */
	if (cmd->code == MH_CMD_ABORT ? s->txn != NULL
	                              : cmd->code != MH_CMD_QUIT && cmd->code != MH_CMD_QUIT_NC)
		s->last_cmd = cmd->code;
	switch (cmd->code) {
	case MH_CMD_CONNECT:
		if (s->phase == HUB_RESTART) {
			/* 'C' right after 'K' before the new links are ready: keep
			 * it (the command's strings die with this call). */
			s->deferred = mh_xcalloc(1, sizeof(*s->deferred));
			mh_codec_put_connect(s->deferred, cmd->u.connect.hostname,
			                     cmd->u.connect.family, cmd->u.connect.port,
			                     cmd->u.connect.address);
			s->cmd = cmd->code;
			break;
		}
		/* fallthrough */
	case MH_CMD_HELO:
	case MH_CMD_MAIL:
	case MH_CMD_RCPT:
	case MH_CMD_DATA:
	case MH_CMD_UNKNOWN:
		s->cmd = cmd->code;
		if (cmd->code == MH_CMD_MAIL) {
			hub_message_end(s, MH_RES_ABORT); /* a new MAIL without ABORT */
			s->msg_open = 1;
			s->n_rcpt_ok = s->n_rcpt_rejected = s->n_rcpt_tempfailed = 0;
		} else if (cmd->code == MH_CMD_RCPT && s->hub->conf->hooks != NULL &&
		           s->hub->conf->hooks->recipient != NULL) {
			s->hub->conf->hooks->recipient(s->hub->conf->hooks->arg);
		}
		hub_envelope_command(s, cmd);
		break;
	case MH_CMD_HEADER:
	case MH_CMD_EOH:
	case MH_CMD_BODY:
	case MH_CMD_EOB:
		s->cmd = cmd->code;
		hub_content_command(s, cmd);
		break;
	case MH_CMD_ABORT:
		hub_message_end(s, MH_RES_ABORT);
		/* design §2.5: reset all per-transaction state. */
		hub_abort_txn_children(s, NULL);
		hub_txn_free(s);
		break;
	case MH_CMD_QUIT:
		hub_close(s, "quit");
		break;
	case MH_CMD_QUIT_NC:
		restart_session(s);
		break;
	default:
		mh_warn(s->id, "unexpected command 0x%02x from the MTA", cmd->code);
		hub_close(s, "unexpected command");
		break;
	}
out:
	hub_leave(s);
}

static void mta_on_close(struct mh_mta *m, enum mh_conn_why why, void *arg)
{
	struct hub_session *s = arg;

	hub_enter(s);
	/* Not after QUIT (the session is closing then): the MTA went away mid-session. */
	if ((why == MH_CONN_EOF || why == MH_CONN_IOERR) && !s->closing)
		mh_statistics(s->id, "[session][disconnected][%g](%llu)",
		              ev_now(s->hub->loop) - s->start, (unsigned long long)s->id);
	if (why != MH_CONN_EOF)
		mh_info(s->id, "MTA connection ended: %s", mh_conn_why_str(why));
	if (why == MH_CONN_PROTOCOL && s->hub->conf->hooks != NULL &&
	    s->hub->conf->hooks->mta_malformed != NULL)
		s->hub->conf->hooks->mta_malformed(s->hub->conf->hooks->arg);
	hub_close(s, mh_conn_why_str(why));
	hub_leave(s);
}

static const struct mh_mta_ops mta_ops = {
    .on_optneg = mta_on_optneg,
    .on_command = mta_on_command,
    .on_close = mta_on_close,
};

/* ---- child callbacks ---- */

static void child_on_answer(struct mh_child *c, const struct mh_child_answer *a, void *arg)
{
	struct hub_child *k = arg;
	struct hub_session *s = k->s;

	hub_enter(s);
	if (a->failed) {
		hub_child_failed(k, a->why, MH_FAIL_OTHER);
		mh_warn(s->id, "child %s failed at %s: %s; fallback %s", k->conf->name,
		        hub_state_name(k->state), a->why ? a->why : "error",
		        mh_status_name(a->status));
	} else {
		const struct mh_hub_hooks *hk = s->hub->conf->hooks;
		enum mh_hub_stage st = mh_hub_stage_of(k->state);
		if (hk != NULL && hk->child_answer != NULL && st != MH_HS_COUNT &&
		    a->status != MH_ST_NONE)
			hk->child_answer(hk->arg, (size_t)(k->conf - s->hub->conf->children), st,
			                 a->status, ev_now(s->hub->loop) - k->sent);
		mh_debug(s->id, "child %s: %s -> %s%s%s", k->conf->name, hub_state_name(k->state),
		         mh_status_name(a->status), a->text ? " " : "", a->text ? a->text : "");
	}
	if (s->closing) {
		if (a->failed)
			hub_child_drop(k, 0);
		goto out;
	}
	if (!k->waiting) {
		/* design §2.5: failed while idle; its fallback is folded as its
		 * next answer and it is dropped for the session now. */
		unsigned in_txn = k->in_txn;

		k->last = a->status;
		hub_child_drop(k, 0);
		k->in_txn = in_txn;
		k->fold_pending = 1;
		goto out;
	}
	k->waiting = 0;
	if (s->phase == HUB_BARRIER)
		hub_envelope_answer(k, a);
	else if (s->phase == HUB_LIVE || s->phase == HUB_CHAIN)
		hub_content_answer(k, a);
	else if (a->failed)
		hub_child_drop(k, 0);
out:
	hub_leave(s);
}

static void child_on_progress(struct mh_child *c, void *arg)
{
	struct hub_child *k = arg;
	struct hub_session *s = k->s;

	hub_enter(s);
	/* design §2.3: progress is forwarded at once (the MTA waits for 'E'). */
	if (!s->closing && s->cmd == 'E' && s->phase == HUB_CHAIN)
		mh_mta_send_progress(s->mta);
	hub_leave(s);
}

static void child_on_modification(struct mh_child *c, const struct mh_reply *mod, void *arg)
{
	struct hub_child *k = arg;
	struct hub_session *s = k->s;

	hub_enter(s);
	if (!s->closing)
		hub_mods_record(k, mod);
	hub_leave(s);
}

static const struct mh_child_ops child_ops = {
    .on_negotiated = child_on_negotiated,
    .on_answer = child_on_answer,
    .on_progress = child_on_progress,
    .on_modification = child_on_modification,
};

/* ---- the hub ---- */

struct mh_hub *mh_hub_new(struct ev_loop *loop, const struct mh_hub_conf *conf)
{
	struct mh_hub *h = mh_xcalloc(1, sizeof(*h));

	const char *now = getenv("MILTERHUB_NOW");

	h->loop = loop;
	h->conf = conf;
	h->next_id = 1;
	ev_prepare_init(&h->finished_w, hub_on_sessions_finished);
	h->finished_w.data = h;
	for (size_t i = 0; i < conf->nchildren; i++)
		if (conf->children[i].nwhen > 0) /* enabled or not: milterhubctl may switch */
			h->has_when = 1;
	/* Tests freeze the conditions' clock (design §2.7 schedule): an epoch. */
	if (now != NULL && now[0] != '\0') {
		char *end;
		long long v = strtoll(now, &end, 10);

		if (*end == '\0') {
			h->now_fixed = 1;
			h->now = (time_t)v;
		} else {
			mh_warn(0, "MILTERHUB_NOW=%s is not an epoch: ignored", now);
		}
	}
	return h;
}

void mh_hub_accept(struct mh_hub *h, int fd)
{
	struct hub_session *s = mh_xcalloc(1, sizeof(*s));
	const struct mh_hub_conf *conf = h->conf;

	s->hub = h;
	if (conf->hooks != NULL && conf->hooks->session_id != NULL)
		s->id = conf->hooks->session_id(conf->hooks->arg);
	else
		s->id = h->next_id++;
	s->start = ev_now(h->loop);
	s->result = MH_ST_NONE;
	s->mta = mh_mta_new(h->loop, fd, conf->max_payload ? conf->max_payload : 65535,
	                    conf->mta_timeout > 0 ? conf->mta_timeout : 600, s->id, &mta_ops, s);
	if (s->mta == NULL) {
		mh_warn(s->id, "cannot set up the MTA connection");
		close(fd);
		free(s);
		return;
	}
	s->next = h->sessions;
	if (h->sessions != NULL)
		h->sessions->prev = s;
	h->sessions = s;
	h->nsessions++;
	if (conf->hooks != NULL && conf->hooks->session_open != NULL)
		conf->hooks->session_open(conf->hooks->arg);
	mh_debug(s->id, "session started");
}

size_t mh_hub_sessions(const struct mh_hub *h)
{
	return h->nsessions;
}

void mh_hub_free(struct mh_hub *h)
{
	if (h == NULL)
		return;
	while (h->sessions != NULL) {
		struct hub_session *s = h->sessions;

		s->closing = 1;
		session_destroy(s);
	}
	ev_prepare_stop(h->loop, &h->finished_w);
	hub_sessions_finished_flush(h);
	mh_buf_free(&h->scratch);
	free(h->chunk);
	free(h);
}
