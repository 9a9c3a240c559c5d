/*
 * mta_steps - what the simulated MTA sends next, phase by phase: the
 * 'D' macro packet (per flavour, mta_macros.c) and the command, queued in
 * the connection's output; run() in mta_session.c flushes it when an
 * answer is awaited. Each step either awaits (s->awaiting set) or moves
 * s->phase on. Facts: docs/tools.md "On the wire", protocol doc §6-§8.
 *
 * Events the milter disabled with NO* are not sent, but the 'D' before C
 * H M R T U still is (both MTAs); events outside the negotiated version
 * ('U' below 3, 'T' below 4) are not sent at all, 'D' included.
 *
 * Chain mode (several links), as Postfix's milter.c: an envelope event
 * (C H U M R T) is offered link by link, each answer awaited before the
 * next link is asked (s->ev_open, s->cur); a link that accepted is
 * skipped for the rest of the message (or connection); the first
 * refusal ends the event (mta_session.c decides). Content (L N B E) goes
 * to one link completely, then to the next, which is sent the message
 * as the earlier links' edits left it (milter_message()). With one link
 * all of this reduces to the single-milter session.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mta_session_impl.h"

static void put_macros(struct mta_session *s, uint8_t cmd)
{
	const char *pairs[2 * MTA_MACRO_PAIRS_MAX];
	int n = mta_macros_build(&mta_cur(s)->lists, s->cfg, &s->vals, cmd, pairs);

	if (n < 0 || (n == 0 && s->cfg->flavour == MTA_SENDMAIL))
		return;
	mh_codec_put_macro(mta_out(s), cmd, pairs, (size_t)n);
}

/*
 * The command just queued gets a stage record; await its answer unless
 * the milter negotiated not to send one. Returns 1 when awaiting.
 */
static int expect(struct mta_session *s, uint8_t cmd, uint32_t nr_bit, const char *stage,
                  const char *arg)
{
	size_t i = mta_record_stage(&s->rec, stage, arg, s->msg ? s->msgno : 0);

	if (s->nlinks > 1)
		s->rec.stages[i].milter = (unsigned)s->cur + 1;
	if (nr_bit != 0 && mta_proto(s, nr_bit))
		return 0; /* reply "none" */
	s->stage = i;
	s->awaiting = cmd;
	return 1;
}

/*
 * An envelope event: open it once (reset the link cursor), then find the
 * next link to offer it to. Returns 0 when every link had it: the event
 * is closed and the caller moves on.
 */
static int event_link(struct mta_session *s, int in_msg)
{
	if (!s->ev_open) {
		s->ev_open = 1;
		s->cur = 0;
		s->ev_reply = MTA_REPLY_NONE;
	}
	if (mta_next_link(s, in_msg))
		return 1;
	s->ev_open = 0;
	return 0;
}

/* The current link was sent the event, or had it disabled: next link. */
static void event_next(struct mta_session *s, int awaited)
{
	if (!awaited)
		s->cur++;
}

void mta_end_message(struct mta_session *s, enum mta_result result, const char *text)
{
	s->ev_open = 0;
	s->msg->result = result;
	mta_set_str(&s->msg->reply, text);
	s->msg->stage_end = s->rec.nstages;
	mh_msg_end_of_replies(&s->msg->msg);
	s->phase = PH_MSG_END;
}

void mta_accept_rcpt(struct mta_session *s, const char *rcpt, enum mta_reply reply)
{
	mh_msg_add_rcpt(&s->msg->msg, rcpt, NULL);
	mta_record_rcpt(s->msg, rcpt, reply, NULL);
	s->naccepted++;
}

static void step_connect(struct mta_session *s)
{
	const struct mta_config *c = s->cfg;

	if (!event_link(s, 0)) {
		s->phase = PH_HELO;
		return;
	}
	put_macros(s, MH_CMD_CONNECT);
	if (mta_proto(s, MH_PROTO_NOCONNECT)) {
		event_next(s, 0);
		return;
	}
	mh_codec_put_connect(mta_out(s), c->client_name, c->client_family, (uint16_t)c->client_port,
	                     c->client_addr);
	event_next(s, expect(s, MH_CMD_CONNECT, MH_PROTO_NR_CONN, "connect", NULL));
}

static void step_helo(struct mta_session *s)
{
	if (!event_link(s, 0)) {
		s->phase = PH_UNKNOWN;
		return;
	}
	put_macros(s, MH_CMD_HELO);
	if (mta_proto(s, MH_PROTO_NOHELO)) {
		event_next(s, 0);
		return;
	}
	mh_codec_put_str(mta_out(s), MH_CMD_HELO, s->cfg->helo);
	event_next(s, expect(s, MH_CMD_HELO, MH_PROTO_NR_HELO, "helo", s->cfg->helo));
}

static void step_unknown(struct mta_session *s)
{
	if (s->cfg->unknown == NULL || !event_link(s, 0)) {
		s->phase = PH_MAIL;
		return;
	}
	if (mta_cur(s)->version < 3) { /* 'U' came with version 3 */
		event_next(s, 0);
		return;
	}
	put_macros(s, MH_CMD_UNKNOWN);
	if (mta_proto(s, MH_PROTO_NOUNKNOWN)) {
		event_next(s, 0);
		return;
	}
	mh_codec_put_str(mta_out(s), MH_CMD_UNKNOWN, s->cfg->unknown);
	event_next(s, expect(s, MH_CMD_UNKNOWN, MH_PROTO_NR_UNKN, "unknown", s->cfg->unknown));
}

static void begin_message(struct mta_session *s)
{
	s->msgno++;
	s->msg = &s->rec.msgs[s->msgno - 1];
	s->msg->started = 1;
	s->msg->stage_begin = s->rec.nstages;
	snprintf(s->qid, sizeof(s->qid), "%06lX%04X", s->id & 0xffffff, s->msgno & 0xffff);
	mta_config_build_message(s->cfg, s->msgno, s->qid, &s->msg->msg);
	s->naccepted = 0;
	s->refusal = MTA_RESULT_REJECT;
	mta_set_str(&s->refusal_text, NULL);
	s->pos = 0;
	/* Postfix has a queue id from DATA on, Sendmail from MAIL on. */
	s->vals.queue_id = s->cfg->flavour == MTA_SENDMAIL ? s->qid : NULL;
	s->vals.mail_addr = mta_config_from_bare(s->cfg, s->msgno);
	s->vals.rcpt_addr = NULL;
	s->vals.msg_id = NULL;
}

/* Every link accepted the message at an envelope event: the MTA takes it. */
static int all_accepted(struct mta_session *s)
{
	if (mta_any_link(s, 1))
		return 0;
	mta_end_message(s, MTA_RESULT_ACCEPT, NULL);
	return 1;
}

static void step_mail(struct mta_session *s)
{
	const char *argv[1];

	if (!s->ev_open) {
		if (s->msgno == s->cfg->messages) {
			s->phase = PH_QUIT;
			return;
		}
		if (s->cfg->hold > 0 && !s->held) {
			/* --hold: the session stays open, idle, before its first MAIL. */
			s->held = 1;
			s->phase = PH_HOLD;
			ev_timer_set(&s->hold, s->cfg->hold, 0.);
			ev_timer_start(s->loop, &s->hold);
			return;
		}
		begin_message(s);
	}
	if (!event_link(s, 1)) {
		if (!all_accepted(s))
			s->phase = PH_RCPT;
		return;
	}
	put_macros(s, MH_CMD_MAIL);
	if (mta_proto(s, MH_PROTO_NOMAIL)) {
		event_next(s, 0);
		return;
	}
	argv[0] = mta_config_from(s->cfg, s->msgno);
	mh_codec_put_strs(mta_out(s), MH_CMD_MAIL, argv, 1);
	event_next(s, expect(s, MH_CMD_MAIL, MH_PROTO_NR_MAIL, "mail", argv[0]));
}

static void step_rcpt(struct mta_session *s)
{
	const char *rcpt;

	if (!s->ev_open) {
		if (s->pos == s->cfg->nrcpts) {
			if (s->naccepted > 0) {
				s->phase = PH_DATA;
				return;
			}
			/* No DATA without a recipient; the transaction is still open. */
			s->open_txn = 1;
			mta_end_message(s, s->refusal, s->refusal_text);
			return;
		}
		rcpt = s->cfg->rcpts[s->pos++];
		free(s->rcpt_bare);
		s->rcpt_bare = mta_bare_addr(rcpt);
		s->vals.rcpt_addr = s->rcpt_bare;
	}
	rcpt = s->cfg->rcpts[s->pos - 1];
	if (!event_link(s, 1)) {
		/* No link refused it (a refusal ends the event in mta_session.c). */
		mta_accept_rcpt(s, rcpt, s->ev_reply);
		if (!mta_any_link(s, 1)) {
			/* The last milter accepted: the MTA takes the rest unasked. */
			while (s->pos < s->cfg->nrcpts)
				mta_accept_rcpt(s, s->cfg->rcpts[s->pos++], MTA_REPLY_NONE);
			mta_end_message(s, MTA_RESULT_ACCEPT, NULL);
		}
		return;
	}
	put_macros(s, MH_CMD_RCPT);
	if (mta_proto(s, MH_PROTO_NORCPT)) {
		event_next(s, 0);
		return;
	}
	mh_codec_put_strs(mta_out(s), MH_CMD_RCPT, &rcpt, 1);
	event_next(s, expect(s, MH_CMD_RCPT, MH_PROTO_NR_RCPT, "rcpt", rcpt));
}

/* Content goes to the links one after the other, each from the top. */
static void begin_content(struct mta_session *s)
{
	s->phase = PH_HEADER;
	s->pos = 0;
}

static void step_data(struct mta_session *s)
{
	s->vals.queue_id = s->qid;
	s->vals.rcpt_addr = NULL;
	if (!event_link(s, 1)) {
		if (!all_accepted(s)) {
			s->cur = 0;
			mta_next_link(s, 1);
			begin_content(s);
		}
		return;
	}
	if (mta_cur(s)->version < 4) { /* 'T' came with version 4 */
		event_next(s, 0);
		return;
	}
	put_macros(s, MH_CMD_DATA);
	if (mta_proto(s, MH_PROTO_NODATA)) {
		event_next(s, 0);
		return;
	}
	mh_codec_put_empty(mta_out(s), MH_CMD_DATA);
	event_next(s, expect(s, MH_CMD_DATA, MH_PROTO_NR_DATA, "data", NULL));
}

void mta_next_content(struct mta_session *s)
{
	mh_msg_end_of_replies(&s->msg->msg);
	s->cur++;
	if (mta_next_link(s, 1))
		begin_content(s);
	else
		mta_end_message(s, MTA_RESULT_ACCEPT, NULL);
}

static void step_header(struct mta_session *s)
{
	const struct mh_msg *m = &s->msg->msg;
	const struct mh_msg_header *h;

	while (s->pos < m->nhdrs && m->hdrs[s->pos].hidden)
		s->pos++; /* the MTA's own Received: is never shown */
	if (mta_proto(s, MH_PROTO_NOHDRS) || s->pos == m->nhdrs) {
		s->phase = PH_EOH;
		return;
	}
	h = &m->hdrs[s->pos++];
	put_macros(s, MH_CMD_HEADER);
	mh_codec_put_header(mta_out(s), MH_CMD_HEADER, h->name,
	                    mh_msg_value_for_milter(h->value, mta_proto(s, MH_PROTO_HDR_LEADSPC)));
	expect(s, MH_CMD_HEADER, MH_PROTO_NR_HDR, "header", h->name);
}

static void step_eoh(struct mta_session *s)
{
	s->phase = PH_BODY;
	s->pos = 0;
	if (mta_proto(s, MH_PROTO_NOEOH))
		return;
	put_macros(s, MH_CMD_EOH);
	mh_codec_put_empty(mta_out(s), MH_CMD_EOH);
	if (expect(s, MH_CMD_EOH, MH_PROTO_NR_EOH, "eoh", NULL))
		s->phase = PH_EOH;
}

static void step_body(struct mta_session *s)
{
	const struct mh_buf *body = &s->msg->msg.body;
	size_t left = mh_buf_size(body) - s->pos, n = left < MH_CHUNK_MAX ? left : MH_CHUNK_MAX;

	if (mta_proto(s, MH_PROTO_NOBODY) || left == 0) {
		s->phase = PH_EOM;
		return;
	}
	put_macros(s, MH_CMD_BODY);
	mh_codec_put_raw(mta_out(s), MH_CMD_BODY, mh_buf_head(body) + s->pos, n);
	s->pos += n;
	expect(s, MH_CMD_BODY, MH_PROTO_NR_BODY, "body", NULL);
}

static void step_eom(struct mta_session *s)
{
	const struct mh_msg *m = &s->msg->msg;

	for (size_t i = 0; i < m->nhdrs; i++)
		if (strcasecmp(m->hdrs[i].name, "Message-ID") == 0)
			s->vals.msg_id = mh_msg_value_for_milter(m->hdrs[i].value, 0);
	put_macros(s, MH_CMD_EOB);
	mh_codec_put_raw(mta_out(s), MH_CMD_EOB, NULL, 0);
	expect(s, MH_CMD_EOB, 0, "eom", NULL);
}

static void step_msg_end(struct mta_session *s)
{
	for (size_t i = 0; i < s->nlinks; i++) {
		struct mta_link *k = &s->links[i];

		if (k->conn != NULL && (s->cfg->flavour == MTA_POSTFIX || s->open_txn))
			mh_codec_put_empty(mh_conn_out(k->conn), MH_CMD_ABORT);
		k->msg_done = 0;
	}
	s->cur = 0;
	s->open_txn = 0;
	s->msg = NULL;
	s->vals.mail_addr = s->vals.rcpt_addr = s->vals.queue_id = s->vals.msg_id = NULL;
	s->phase = s->hangup ? PH_QUIT : PH_MAIL;
}

void mta_step(struct mta_session *s)
{
	switch (s->phase) {
	case PH_CONNECT:
		step_connect(s);
		break;
	case PH_HELO:
		step_helo(s);
		break;
	case PH_UNKNOWN:
		step_unknown(s);
		break;
	case PH_MAIL:
		step_mail(s);
		break;
	case PH_RCPT:
		step_rcpt(s);
		break;
	case PH_DATA:
		step_data(s);
		break;
	case PH_HEADER:
		step_header(s);
		break;
	case PH_EOH:
		step_eoh(s);
		break;
	case PH_BODY:
		step_body(s);
		break;
	case PH_EOM:
		step_eom(s);
		break;
	case PH_MSG_END:
		step_msg_end(s);
		break;
	case PH_QUIT:
		mta_hang_up(s, 1);
		break;
	case PH_CONNECTING:
	case PH_OPTNEG:
	case PH_HOLD:
	case PH_DONE:
		break;
	}
}
