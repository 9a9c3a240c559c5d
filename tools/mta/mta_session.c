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
 * Flavours differ in what precedes a command ('D' rules live in
 * mta_macros.c), in what may be answered where (Sendmail takes 'p', 'q'
 * only at end-of-message, 's' only for body chunks, never '4'), in 'A'
 * (Postfix after every message; Sendmail only when a transaction was
 * left open, i.e. every recipient was refused) and in the end of the
 * connection (Postfix closes without 'Q' after a connection-level
 * decision or '4'; Sendmail always says 'Q' unless the milter failed).
 */
#include "mta_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mta_reply.h"
#include "mta_session_impl.h"

static const struct mh_conn_ops session_ops;

/* ------------------------------------------------------------ the end */

static void close_conn(struct mta_session *s, int flush_first)
{
	if (s->conn != NULL)
		mh_conn_close(s->conn, flush_first);
	s->conn = NULL;
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
	close_conn(s, 0);
	if (s->msg != NULL && s->rec.error != NULL) {
		s->msg->result = MTA_RESULT_ERROR;
		s->msg->stage_end = s->rec.nstages;
		mh_msg_end_of_replies(&s->msg->msg);
	}
	s->msg = NULL;
	settle_unstarted(s);
	if (s->rec.error != NULL) {
		s->rec.result = MTA_RESULT_ERROR;
		s->rec.exit_code = s->rec.negotiated ? 3 : 2;
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

/* End the connection on purpose; Q unless Postfix would just close. */
void mta_hang_up(struct mta_session *s, int quit)
{
	if (quit && s->conn != NULL)
		mh_codec_put_empty(mta_out(s), MH_CMD_QUIT);
	close_conn(s, quit);
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
	if (s->awaiting != 0 || s->phase == PH_OPTNEG) {
		mh_conn_set_deadline(s->conn, s->cfg->timeout);
		mh_conn_flush(s->conn);
	}
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

/* A decision at connect or helo (protocol doc §6.3, §7.3). */
static void decide_connection(struct mta_session *s, uint8_t cmd, enum mta_reply d,
                              const char *text)
{
	if (d == MTA_REPLY_CONTINUE || d == MTA_REPLY_SKIP || d == MTA_REPLY_DISCARD) {
		/* Postfix ignores a discard here, with a warning. */
		s->phase = cmd == MH_CMD_CONNECT ? PH_HELO : PH_UNKNOWN;
		return;
	}
	if (d == MTA_REPLY_ACCEPT)
		s->conn_accepted = 1;
	else
		mta_set_str(&s->conn_text, text);
	/* Postfix closes the milter socket without 'Q' here (protocol doc §6.4). */
	mta_hang_up(s, s->cfg->flavour == MTA_SENDMAIL && d != MTA_REPLY_SHUTDOWN);
}

/* Where a continue (or skip) after cmd leads (protocol doc §6.1). */
static enum mta_phase next_phase(uint8_t cmd, int skip)
{
	switch (cmd) {
	case MH_CMD_MAIL:
		return PH_RCPT;
	case MH_CMD_DATA:
		return PH_HEADER;
	case MH_CMD_HEADER:
		/* Postfix: 's' stops events of that type (protocol doc §7.2). */
		return skip ? PH_EOH : PH_HEADER;
	case MH_CMD_EOH:
		return PH_BODY;
	default: /* body chunk */
		return skip ? PH_EOM : PH_BODY;
	}
}

/* A recipient's answer: a refusal refuses only that one (§6.3). */
static void decide_rcpt(struct mta_session *s, enum mta_reply d, const char *text)
{
	const char *rcpt = s->cfg->rcpts[s->pos - 1];

	s->phase = PH_RCPT;
	switch (d) {
	case MTA_REPLY_REJECT:
	case MTA_REPLY_TEMPFAIL:
		mta_record_rcpt(s->msg, rcpt, d, text);
		s->refusal = result_of(d);
		mta_set_str(&s->refusal_text, text);
		break;
	case MTA_REPLY_ACCEPT:
		/* The milter is done with the message; the MTA takes the rest. */
		mta_accept_rcpt(s, rcpt, d);
		while (s->pos < s->cfg->nrcpts)
			mta_accept_rcpt(s, s->cfg->rcpts[s->pos++], MTA_REPLY_NONE);
		mta_end_message(s, MTA_RESULT_ACCEPT, NULL);
		break;
	case MTA_REPLY_DISCARD:
		mta_record_rcpt(s->msg, rcpt, d, NULL);
		mta_end_message(s, MTA_RESULT_DISCARD, NULL);
		break;
	default: /* continue, skip */
		mta_accept_rcpt(s, rcpt, d);
		break;
	}
}

static void decide(struct mta_session *s, uint8_t cmd, enum mta_reply d, const char *text)
{
	if (cmd == MH_CMD_CONNECT || cmd == MH_CMD_HELO) {
		decide_connection(s, cmd, d, text);
	} else if (cmd == MH_CMD_UNKNOWN) {
		/* The answer only picks that command's error code. */
		if (s->hangup)
			mta_hang_up(s, d != MTA_REPLY_SHUTDOWN);
		else
			s->phase = PH_MAIL;
	} else if (d == MTA_REPLY_SHUTDOWN) {
		mta_end_message(s, MTA_RESULT_SHUTDOWN, NULL);
		mta_hang_up(s, 0);
	} else if (s->hangup) {
		/* A 421 reply: the MTA disconnects its client; the message is lost. */
		if (cmd == MH_CMD_RCPT)
			mta_record_rcpt(s->msg, s->cfg->rcpts[s->pos - 1], d, text);
		mta_end_message(s, MTA_RESULT_TEMPFAIL, text);
	} else if (cmd == MH_CMD_RCPT) {
		decide_rcpt(s, d, text);
	} else if (cmd != MH_CMD_EOB && (d == MTA_REPLY_CONTINUE || d == MTA_REPLY_SKIP)) {
		s->phase = next_phase(cmd, d == MTA_REPLY_SKIP);
	} else {
		mta_end_message(s, result_of(d), text);
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
	if (rc.hangup)
		s->hangup = 1;
	decide(s, cmd, rc.decision, rc.text);
}

static void on_optneg(struct mta_session *s, const struct mh_reply *r)
{
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
	s->rec.negotiated = 1;
	s->rec.version = s->version = r->u.optneg.version;
	s->rec.actions = r->u.optneg.actions;
	s->rec.protocol = s->protocol = r->u.optneg.protocol;
	for (int i = 0; i < MH_STAGE_COUNT; i++)
		mta_set_str(&s->rec.macros[i], r->u.optneg.macros[i]);
	mta_macro_lists_init(&s->lists, &r->u.optneg);
	s->phase = PH_CONNECT;
}

/* ------------------------------------------------------------ callbacks */

static void on_connected(struct mh_conn *c, void *arg)
{
	struct mta_session *s = arg;
	struct mh_optneg offer = {0};

	offer.version = s->cfg->version;
	offer.actions = MH_ACT_V6_MASK;
	offer.protocol = mh_optneg_protocol_mask(s->cfg->version);
	mh_codec_put_optneg(mta_out(s), &offer);
	s->phase = PH_OPTNEG;
	run(s);
}

static void on_packet(struct mh_conn *c, const struct mh_packet *p, void *arg)
{
	struct mta_session *s = arg;
	struct mh_reply r;
	int err = mh_codec_decode_reply(p, &r);
	char why[128], detail[64];

	if (err != MH_CODEC_OK) {
		snprintf(why, sizeof(why), "malformed: %s", mh_codec_strerror(err));
		snprintf(detail, sizeof(detail), "reply code 0x%02x, %zu payload bytes",
		         (unsigned)p->code, p->len);
		fail(s, why, detail);
	} else if (s->phase == PH_OPTNEG) {
		on_optneg(s, &r);
	} else if (s->awaiting == 0) {
		fail(s, "unexpected reply", "a reply while none was awaited");
	} else {
		on_reply(s, &r);
	}
	run(s);
}

static void on_close(struct mh_conn *c, enum mh_conn_why why, void *arg)
{
	struct mta_session *s = arg;
	int e = mh_conn_last_error(c);
	char text[160];

	s->conn = NULL; /* gone once this returns */
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
	run(w->data);
}

static const struct mh_conn_ops session_ops = {
    .on_connected = on_connected,
    .on_packet = on_packet,
    .on_close = on_close,
};

struct mta_session *mta_session_start(struct ev_loop *loop, const struct mta_config *cfg,
                                      unsigned long id, mta_session_done_fn done, void *arg)
{
	struct mta_session *s = mh_xcalloc(1, sizeof(*s));
	char err[256], why[300];
	const char *reason;

	s->loop = loop;
	s->cfg = cfg;
	s->id = id;
	s->done = done;
	s->done_arg = arg;
	s->phase = PH_CONNECTING;
	mta_record_init(&s->rec, cfg->messages);
	ev_timer_init(&s->later, on_later, 0., 0.);
	s->later.data = s;
	s->conn = mh_conn_connect(loop, &cfg->sock, cfg->timeout, cfg->max_payload, &session_ops, s,
	                          err, sizeof(err));
	if (s->conn == NULL) {
		/* "connect unix:/x: No such file..." -> "connect: No such file..." */
		reason = strrchr(err, ':');
		snprintf(why, sizeof(why), "connect: %s", reason ? reason + 2 : err);
		fail(s, why, NULL);
		ev_timer_start(loop, &s->later);
	}
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
	close_conn(s, 0);
	mta_record_free(&s->rec);
	mta_macro_lists_free(&s->lists);
	free(s->refusal_text);
	free(s->conn_text);
	free(s->mail_bare);
	free(s->rcpt_bare);
	free(s);
}
