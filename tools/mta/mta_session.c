/*
 * mta_session - the per-session state machine of milterhub-mta.
 *
 * Contract: mta_session.h; behaviour: docs/tools.md "On the wire".
 *
 * Shape: `phase` says which command comes next. run() calls the phase's
 * step function until one sends a command whose answer must be awaited
 * (`awaiting` set; the deadline is armed and the output flushed) or the
 * session is over (PH_DONE; then run() calls done()). A step either
 * awaits or moves `phase` on. Replies arrive in on_packet(), which turns
 * a decision into the next phase and calls run() again. Every libev
 * callback into the session ends with run(), and nothing touches the
 * session after done().
 *
 * Chain mode: one link per --socket, connected and negotiated one after
 * the other (PH_CONNECTING/PH_OPTNEG with s->cur), then driven as
 * mta_steps.c describes. Only the current link has a deadline armed,
 * and only while its answer is awaited: an idle link (earlier in the
 * chain, or the whole session during --hold) cannot time out.
 *
 * Flavours differ in what precedes a command ('D' rules live in
 * mta_macros.c), in what may be answered where (Sendmail takes 'p', 'q'
 * only at end-of-message, 's' only for body chunks, never '4'), in 'A'
 * (Postfix after every message; Sendmail only when a transaction was
 * left open, i.e. every recipient was refused) and in the end of the
 * connection (Postfix closes without 'Q' after a connection-level
 * decision or '4'; Sendmail always says 'Q' unless the milter failed).
 */
#include "mta_session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mta_reply.h"
#include "mta_session_impl.h"

static const struct mh_conn_ops session_ops;

/* ------------------------------------------------------------ the end */

static void close_links(struct mta_session *s, int flush_first)
{
	for (size_t i = 0; i < s->nlinks; i++) {
		if (s->links[i].conn != NULL)
			mh_conn_close(s->links[i].conn, flush_first);
		s->links[i].conn = NULL;
	}
}

void mta_close_link(struct mta_link *k)
{
	if (k->conn != NULL)
		mh_conn_close(k->conn, 0);
	k->conn = NULL;
}

static int link_in(const struct mta_link *k, int in_msg)
{
	return k->conn != NULL && !k->conn_done && !(in_msg && k->msg_done);
}

int mta_next_link(struct mta_session *s, int in_msg)
{
	while (s->cur < s->nlinks && !link_in(&s->links[s->cur], in_msg))
		s->cur++;
	return s->cur < s->nlinks;
}

int mta_any_link(const struct mta_session *s, int in_msg)
{
	for (size_t i = 0; i < s->nlinks; i++)
		if (link_in(&s->links[i], in_msg))
			return 1;
	return 0;
}

/* Messages that never started get their content and final result. */
static void settle_unstarted(struct mta_session *s)
{
	for (size_t k = 0; k < s->rec.nmsgs; k++) {
		struct mta_msg_rec *m = &s->rec.msgs[k];

		if (m->started)
			continue;
		m->started = 1;
		m->stage_begin = m->stage_end = s->rec.nstages;
		snprintf(s->qid, sizeof(s->qid), "%06lX%04zX", s->id & 0xffffff, (k + 1) & 0xffff);
		mta_config_build_message(s->cfg, (unsigned)k + 1, s->qid, &m->msg);
		if (s->conn_accepted && s->rec.error == NULL) {
			/* The milter is out of the connection: the MTA takes it all. */
			m->result = MTA_RESULT_ACCEPT;
			for (size_t i = 0; i < s->cfg->nrcpts; i++)
				mh_msg_add_rcpt(&m->msg, s->cfg->rcpts[i], NULL);
		} else {
			mta_set_str(&m->reply, s->conn_text);
		}
	}
}

static void finish(struct mta_session *s)
{
	close_links(s, 0);
	ev_timer_stop(s->loop, &s->hold);
	s->ev_open = 0;
	if (s->msg != NULL && s->rec.error != NULL) {
		s->msg->result = MTA_RESULT_ERROR;
		s->msg->stage_end = s->rec.nstages;
		mh_msg_end_of_replies(&s->msg->msg);
	}
	s->msg = NULL;
	settle_unstarted(s);
	if (s->rec.error != NULL) {
		s->rec.result = MTA_RESULT_ERROR;
		s->rec.exit_code = s->rec.ready ? 3 : 2;
	} else {
		s->rec.result = s->rec.msgs[s->rec.nmsgs - 1].result;
		s->rec.exit_code = 0;
	}
	s->awaiting = 0;
	s->phase = PH_DONE;
}

/* The milter failed: record why, drop the connection, end the session. */
static void fail(struct mta_session *s, const char *error, const char *detail)
{
	mta_record_error(&s->rec, error);
	if (s->awaiting != 0) {
		s->rec.stages[s->stage].reply = MTA_REPLY_ERROR;
		mta_record_stage_detail(&s->rec, s->stage, detail);
	}
	finish(s);
}

/*
 * End the session on purpose: 'Q' to every link still open when quit is
 * set (a link Postfix would just close is closed by the caller first).
 */
void mta_hang_up(struct mta_session *s, int quit)
{
	for (size_t i = 0; quit && i < s->nlinks; i++)
		if (s->links[i].conn != NULL)
			mh_codec_put_empty(mh_conn_out(s->links[i].conn), MH_CMD_QUIT);
	close_links(s, quit);
	finish(s);
}

/* Drive the session until it waits or ends. The last call of every callback. */
static void run(struct mta_session *s)
{
	while (s->awaiting == 0 && s->phase >= PH_CONNECT && s->phase < PH_DONE)
		mta_step(s);
	if (s->phase == PH_DONE) {
		s->done(s, s->done_arg); /* may free s */
		return;
	}
	if (s->phase == PH_CONNECTING)
		return; /* the next link's connect is under way */
	/* Unawaited packets (NR events, 'A') may wait on earlier links. */
	for (size_t i = 0; i < s->nlinks; i++)
		if (s->links[i].conn != NULL)
			mh_conn_flush(s->links[i].conn);
	if (s->awaiting != 0 || s->phase == PH_OPTNEG)
		mh_conn_set_deadline(mta_cur(s)->conn, s->cfg->timeout);
}

/* ------------------------------------------------------------ replies */

static enum mta_result result_of(enum mta_reply d)
{
	switch (d) {
	case MTA_REPLY_REJECT:
		return MTA_RESULT_REJECT;
	case MTA_REPLY_TEMPFAIL:
		return MTA_RESULT_TEMPFAIL;
	case MTA_REPLY_DISCARD:
		return MTA_RESULT_DISCARD;
	case MTA_REPLY_SHUTDOWN:
		return MTA_RESULT_SHUTDOWN;
	default:
		return MTA_RESULT_ACCEPT; /* accept, or continue through end-of-message */
	}
}

/*
 * A decision at connect or helo (protocol doc §6.3, §7.3). Chain: an
 * accept retires only that link; a refusal ends the session and the
 * later links are not asked (milter_conn_event() stops at a reply).
 */
static void decide_connection(struct mta_session *s, enum mta_reply d, const char *text)
{
	struct mta_link *k = mta_cur(s);

	if (d == MTA_REPLY_CONTINUE || d == MTA_REPLY_SKIP || d == MTA_REPLY_DISCARD) {
		/* Postfix ignores a discard here, with a warning. */
		s->ev_reply = d;
		s->cur++;
		return;
	}
	if (d == MTA_REPLY_ACCEPT) {
		k->conn_done = 1;
		s->ev_reply = d;
		if (mta_any_link(s, 0)) {
			mta_close_link(k); /* chain (Postfix only): no 'Q' */
			s->cur++;
			return;
		}
		s->conn_accepted = 1;
	} else {
		mta_set_str(&s->conn_text, text);
	}
	/* Postfix closes the deciding milter's socket without 'Q' (protocol doc §6.4). */
	if (s->cfg->flavour != MTA_SENDMAIL || d == MTA_REPLY_SHUTDOWN)
		mta_close_link(k);
	mta_hang_up(s, 1);
}

/* Where a continue (or skip) after a content command leads (protocol doc §6.1). */
static enum mta_phase next_phase(uint8_t cmd, int skip)
{
	switch (cmd) {
	case MH_CMD_HEADER:
		/* Postfix: 's' stops events of that type (protocol doc §7.2). */
		return skip ? PH_EOH : PH_HEADER;
	case MH_CMD_EOH:
		return PH_BODY;
	default: /* body chunk */
		return skip ? PH_EOM : PH_BODY;
	}
}

/*
 * A recipient's answer: a refusal refuses only that one (§6.3) and the
 * later links are not asked about it. An accept retires the link from
 * the message; when it was the last one, the MTA takes the remaining
 * recipients unasked (mta_steps.c, step_rcpt).
 */
static void decide_rcpt(struct mta_session *s, enum mta_reply d, const char *text)
{
	const char *rcpt = s->cfg->rcpts[s->pos - 1];

	switch (d) {
	case MTA_REPLY_REJECT:
	case MTA_REPLY_TEMPFAIL:
		mta_record_rcpt(s->msg, rcpt, d, text);
		s->refusal = result_of(d);
		mta_set_str(&s->refusal_text, text);
		s->ev_open = 0;
		break;
	case MTA_REPLY_DISCARD:
		mta_record_rcpt(s->msg, rcpt, d, NULL);
		mta_end_message(s, MTA_RESULT_DISCARD, NULL);
		break;
	case MTA_REPLY_ACCEPT:
		mta_cur(s)->msg_done = 1;
		/* fall through */
	default: /* continue, skip */
		s->ev_reply = d;
		s->cur++;
		break;
	}
}

/* A content answer (L N B E) of the current link. */
static void decide_content(struct mta_session *s, uint8_t cmd, enum mta_reply d, const char *text)
{
	if (cmd != MH_CMD_EOB && (d == MTA_REPLY_CONTINUE || d == MTA_REPLY_SKIP)) {
		s->phase = next_phase(cmd, d == MTA_REPLY_SKIP);
	} else if (d == MTA_REPLY_ACCEPT || d == MTA_REPLY_CONTINUE || d == MTA_REPLY_SKIP) {
		/* Done with this link (an accept: for the whole message). */
		if (d == MTA_REPLY_ACCEPT)
			mta_cur(s)->msg_done = 1;
		mta_next_content(s);
	} else {
		mta_end_message(s, result_of(d), text);
	}
}

static void decide(struct mta_session *s, uint8_t cmd, enum mta_reply d, const char *text)
{
	if (cmd == MH_CMD_CONNECT || cmd == MH_CMD_HELO) {
		decide_connection(s, d, text);
	} else if (cmd == MH_CMD_UNKNOWN) {
		/* The answer only picks that command's error code. */
		if (s->hangup) {
			if (d == MTA_REPLY_SHUTDOWN)
				mta_close_link(mta_cur(s));
			mta_hang_up(s, 1);
		} else if (d == MTA_REPLY_REJECT || d == MTA_REPLY_TEMPFAIL) {
			s->ev_open = 0; /* later links are not asked */
			s->phase = PH_MAIL;
		} else {
			s->cur++;
		}
	} else if (d == MTA_REPLY_SHUTDOWN) {
		mta_end_message(s, MTA_RESULT_SHUTDOWN, NULL);
		mta_close_link(mta_cur(s)); /* no 'A', no 'Q' */
		mta_hang_up(s, 1);
	} else if (s->hangup) {
		/* A 421 reply: the MTA disconnects its client; the message is lost. */
		if (cmd == MH_CMD_RCPT)
			mta_record_rcpt(s->msg, s->cfg->rcpts[s->pos - 1], d, text);
		mta_end_message(s, MTA_RESULT_TEMPFAIL, text);
	} else if (cmd == MH_CMD_RCPT) {
		decide_rcpt(s, d, text);
	} else if (cmd == MH_CMD_MAIL || cmd == MH_CMD_DATA) {
		if (d == MTA_REPLY_CONTINUE || d == MTA_REPLY_SKIP || d == MTA_REPLY_ACCEPT) {
			if (d == MTA_REPLY_ACCEPT)
				mta_cur(s)->msg_done = 1; /* the next link is asked */
			s->ev_reply = d;
			s->cur++;
		} else {
			mta_end_message(s, result_of(d), text);
		}
	} else {
		decide_content(s, cmd, d, text);
	}
}

static void on_reply(struct mta_session *s, const struct mh_reply *r)
{
	struct mta_reply_class rc;
	struct mta_stage_rec *st = &s->rec.stages[s->stage];
	char detail[128];
	uint8_t cmd = s->awaiting;

	mta_reply_classify(s->cfg->flavour, cmd, r, &rc);
	switch (rc.kind) {
	case MTA_RK_PROGRESS:
		st->progress++;
		return; /* run() restarts the deadline */
	case MTA_RK_QUARANTINE:
	case MTA_RK_MODIFICATION:
		if (s->msg != NULL) { /* 'q' at connect/helo: no message to hold */
			mh_msg_apply(&s->msg->msg, r, mta_proto(s, MH_PROTO_HDR_LEADSPC));
			mta_record_mod(s->msg, r);
		}
		return;
	case MTA_RK_UNEXPECTED:
		snprintf(detail, sizeof(detail), "'%c' (%s) after %s",
		         r->code > ' ' && r->code < 127 ? r->code : '?',
		         mta_reply_code_name(r->code), st->stage);
		fail(s, "unexpected reply", detail);
		return;
	case MTA_RK_DECISION:
		break;
	}
	st->reply = rc.decision;
	mta_record_stage_text(&s->rec, s->stage, rc.text);
	s->awaiting = 0;
	mh_conn_set_deadline(mta_cur(s)->conn, 0); /* idle links never time out */
	if (rc.hangup)
		s->hangup = 1;
	decide(s, cmd, rc.decision, rc.text);
}

static int connect_link(struct mta_session *s, size_t idx);

static void on_optneg(struct mta_session *s, const struct mh_reply *r)
{
	struct mta_link *k = mta_cur(s);
	struct mta_milter_rec *mr = &s->rec.milters[k->idx];
	struct mh_optneg offer = {0};
	char why[160];

	offer.version = s->cfg->version;
	offer.actions = MH_ACT_V6_MASK; /* Postfix offers every action, whatever the version */
	offer.protocol = mh_optneg_protocol_mask(s->cfg->version);
	if (r->code != MH_REP_OPTNEG) {
		snprintf(why, sizeof(why), "negotiation: unexpected reply '%c' (%s)",
		         r->code > ' ' && r->code < 127 ? r->code : '?',
		         mta_reply_code_name(r->code));
		fail(s, why, NULL);
		return;
	}
	if (mh_optneg_check(&offer, &r->u.optneg) != MH_CODEC_OK) {
		snprintf(why, sizeof(why),
		         "negotiation: version %u, actions 0x%x not acceptable for an offer of "
		         "version %u, actions 0x%x",
		         (unsigned)r->u.optneg.version, (unsigned)r->u.optneg.actions,
		         (unsigned)offer.version, (unsigned)offer.actions);
		fail(s, why, NULL);
		return;
	}
	mh_conn_set_deadline(k->conn, 0);
	mr->negotiated = 1;
	mr->version = k->version = r->u.optneg.version;
	mr->actions = r->u.optneg.actions;
	mr->protocol = k->protocol = r->u.optneg.protocol;
	for (int i = 0; i < MH_STAGE_COUNT; i++)
		mta_set_str(&mr->macros[i], r->u.optneg.macros[i]);
	mta_macro_lists_init(&k->lists, &r->u.optneg);
	if (k->idx == 0) { /* the top level of the report shows milter 1 */
		s->rec.negotiated = 1;
		s->rec.version = mr->version;
		s->rec.actions = mr->actions;
		s->rec.protocol = mr->protocol;
		for (int i = 0; i < MH_STAGE_COUNT; i++)
			mta_set_str(&s->rec.macros[i], mr->macros[i]);
	}
	if (k->idx + 1 < s->nlinks) {
		/* Postfix connects and negotiates its milters one after the other. */
		connect_link(s, k->idx + 1);
		return;
	}
	s->rec.ready = 1;
	s->cur = 0;
	s->phase = PH_CONNECT;
}

/* ------------------------------------------------------------ callbacks */

static void on_connected(struct mh_conn *c, void *arg)
{
	struct mta_link *k = arg;
	struct mta_session *s = k->s;
	struct mh_optneg offer = {0};

	offer.version = s->cfg->version;
	offer.actions = MH_ACT_V6_MASK;
	offer.protocol = mh_optneg_protocol_mask(s->cfg->version);
	mh_codec_put_optneg(mh_conn_out(c), &offer);
	s->phase = PH_OPTNEG;
	run(s);
}

static void on_packet(struct mh_conn *c, const struct mh_packet *p, void *arg)
{
	struct mta_link *k = arg;
	struct mta_session *s = k->s;
	struct mh_reply r;
	int err = mh_codec_decode_reply(p, &r);
	char why[128], detail[64];

	if (err != MH_CODEC_OK) {
		snprintf(why, sizeof(why), "malformed: %s", mh_codec_strerror(err));
		snprintf(detail, sizeof(detail), "reply code 0x%02x, %zu payload bytes",
		         (unsigned)p->code, p->len);
		fail(s, why, detail);
	} else if (k != mta_cur(s) || (s->awaiting == 0 && s->phase != PH_OPTNEG)) {
		fail(s, "unexpected reply", "a reply while none was awaited");
	} else if (s->phase == PH_OPTNEG) {
		on_optneg(s, &r);
	} else {
		on_reply(s, &r);
	}
	run(s);
}

static void on_close(struct mh_conn *c, enum mh_conn_why why, void *arg)
{
	struct mta_link *k = arg;
	struct mta_session *s = k->s;
	int e = mh_conn_last_error(c);
	char text[160];

	k->conn = NULL; /* gone once this returns */
	if (k != mta_cur(s) && s->awaiting != 0)
		s->awaiting = 0; /* another link failed: the awaited stage is not to blame */
	switch (why) {
	case MH_CONN_EOF:
		fail(s, "closed", "the milter closed the connection");
		break;
	case MH_CONN_IOERR:
		fail(s, "closed", e ? strerror(e) : "connection lost inside a packet");
		break;
	case MH_CONN_TIMEOUT:
		snprintf(text, sizeof(text), "no reply within %gs", s->cfg->timeout);
		fail(s, "timeout", text);
		break;
	case MH_CONN_PROTOCOL:
		snprintf(text, sizeof(text), "malformed: %s", mh_codec_strerror(e));
		fail(s, text, NULL);
		break;
	case MH_CONN_CONNECT:
		snprintf(text, sizeof(text), "connect: %s", strerror(e));
		fail(s, text, NULL);
		break;
	}
	run(s);
}

static void on_later(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mta_session *s = w->data;

	if (s->connect_retry) {
		s->connect_retry = 0;
		connect_link(s, s->cur);
	}
	run(s);
}

/* --hold is over: on to the first MAIL. */
static void on_hold(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mta_session *s = w->data;

	s->phase = PH_MAIL;
	run(s);
}

static const struct mh_conn_ops session_ops = {
    .on_connected = on_connected,
    .on_packet = on_packet,
    .on_close = on_close,
};

/*
 * Start connecting link idx. A connect that fails at once fails the
 * session; the caller's run() (or the `later` timer, from
 * mta_session_start) reports it. Returns 0 or -1.
 */
static int connect_link(struct mta_session *s, size_t idx)
{
	struct mta_link *k = &s->links[idx];
	char err[256], why[300];
	const char *reason;
	int e;

	if (s->cur != idx || s->phase != PH_CONNECTING)
		s->connect_until = ev_now(s->loop) + s->cfg->timeout;
	s->cur = idx;
	s->phase = PH_CONNECTING;
	k->conn = mh_conn_connect(s->loop, &s->cfg->socks[idx], s->cfg->timeout,
	                          s->cfg->max_payload, &session_ops, k, err, sizeof(err));
	if (k->conn != NULL)
		return 0;
	e = errno;
	if (e == EAGAIN && s->cfg->socks[idx].family == AF_UNIX &&
	    ev_now(s->loop) < s->connect_until) {
		/*
		 * A unix socket's backlog is full (a burst of thousands of
		 * starts): a blocking connect, as Postfix's, would wait for
		 * room; retry shortly, within --timeout.
		 */
		s->connect_retry = 1;
		ev_timer_set(&s->later, 0.005 + 0.001 * (double)(s->id % 10), 0.);
		ev_timer_start(s->loop, &s->later);
		return 0;
	}
	/* "connect unix:/x: No such file..." -> "connect: No such file..." */
	reason = strrchr(err, ':');
	snprintf(why, sizeof(why), "connect: %s", reason ? reason + 2 : err);
	fail(s, why, NULL);
	return -1;
}

struct mta_session *mta_session_start(struct ev_loop *loop, const struct mta_config *cfg,
                                      unsigned long id, mta_session_done_fn done, void *arg)
{
	struct mta_session *s = mh_xcalloc(1, sizeof(*s));

	s->loop = loop;
	s->cfg = cfg;
	s->id = id;
	s->done = done;
	s->done_arg = arg;
	s->phase = PH_CONNECTING;
	s->nlinks = cfg->nsocks;
	s->links = mh_xcalloc(s->nlinks, sizeof(*s->links));
	mta_record_init(&s->rec, cfg->messages, s->nlinks);
	for (size_t i = 0; i < s->nlinks; i++) {
		s->links[i].s = s;
		s->links[i].idx = i;
		s->rec.milters[i].socket = mh_xstrdup(cfg->socks[i].text);
	}
	ev_timer_init(&s->later, on_later, 0., 0.);
	s->later.data = s;
	ev_timer_init(&s->hold, on_hold, 0., 0.);
	s->hold.data = s;
	s->connect_until = ev_now(loop) + cfg->timeout;
	if (connect_link(s, 0) < 0)
		ev_timer_start(loop, &s->later);
	return s;
}

unsigned long mta_session_id(const struct mta_session *s)
{
	return s->id;
}

struct mta_record *mta_session_record(struct mta_session *s)
{
	return &s->rec;
}

void mta_session_free(struct mta_session *s)
{
	ev_timer_stop(s->loop, &s->later);
	ev_timer_stop(s->loop, &s->hold);
	close_links(s, 0);
	mta_record_free(&s->rec);
	for (size_t i = 0; i < s->nlinks; i++)
		mta_macro_lists_free(&s->links[i].lists);
	free(s->links);
	free(s->refusal_text);
	free(s->conn_text);
	free(s->mail_bare);
	free(s->rcpt_bare);
	free(s);
}
