/*
 * testmilter_session - the milter side of one connection.
 *
 * Each command is decoded, counted into the message state, logged, then
 * answered by running its rule's actions in order (docs/tools.md):
 *   - a decision action sends its packet and ends the list; a list that
 *     ends without one answers continue;
 *   - delay pauses reading and resumes the list from an ev_timer, so
 *     other connections go on meanwhile and later commands of this one
 *     wait their turn;
 *   - nothing is ever sent for A, D, Q, K, nor for an event whose NR bit
 *     was negotiated (protocol §4.4): there only delay/hang/close act;
 *   - the message state (body bytes, FNV, header count) is reset on 'A',
 *     on 'K', after the 'E' decision, and after a decision that ends the
 *     transaction as libmilter's state table has it (protocol §6.2).
 * Commands are answered in whatever order they come (no state table):
 * the tool must let tests provoke any sequence.
 */
#include "testmilter_session.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/mh_conn.h"
#include "util/mh_buf.h"
#include "util/mh_log.h"

struct tm_session {
	struct tm_server *srv;
	struct mh_conn *conn; /* owned */
	uint64_t id; /* connection number, from 1 */
	struct tm_session *prev, *next;

	uint32_t protocol; /* SMFIP bits of our 'O' reply; 0 before 'O' */
	struct tm_msg_stats msg;
	struct tm_macros macros; /* 'D' pairs for the next log line */

	/* the action list being run */
	const struct tm_rule *rule; /* NULL: no rule, answer continue */
	size_t pc; /* next action */
	enum tm_stage stage;
	int silent; /* send nothing: NR event or 'A' */
	int then_eom; /* body rule for an 'E' carrying data; eom rule follows */
	int busy; /* a delay is pending and reading is paused */
	int hung; /* a hang action ran: log, never answer again */
	ev_timer delay;
};

static void on_packet(struct mh_conn *c, const struct mh_packet *p, void *arg);
static void on_close(struct mh_conn *c, enum mh_conn_why why, void *arg);

static const struct mh_conn_ops session_ops = {
    .on_connected = NULL,
    .on_packet = on_packet,
    .on_close = on_close,
};

static void msg_reset(struct tm_session *s)
{
	s->msg.body_len = 0;
	s->msg.body_fnv = TM_FNV_INIT;
	s->msg.headers = 0;
}

static void session_free(struct tm_session *s)
{
	struct tm_server *srv = s->srv;

	ev_timer_stop(srv->loop, &s->delay);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->nsessions--;
	tm_macros_free(&s->macros);
	free(s);
}

/* Close the connection ourselves (no on_close follows) and free the session. */
static void session_end(struct tm_session *s, const char *reason, int flush_first)
{
	tm_log_closed(s->srv->log, s->id, reason);
	mh_conn_close(s->conn, flush_first);
	session_free(s);
}

/* Append the packet of a non-decision action. */
static void put_action(struct mh_buf *out, const struct tm_action *a)
{
	const char *argv[2];
	size_t off;

	switch (a->kind) {
	case TM_ACT_GARBAGE:
		/* a well-framed packet with a code no MTA knows */
		mh_buf_append_u32be(out, 1);
		mh_buf_append_byte(out, 'Z');
		break;
	case TM_ACT_PROGRESS:
		mh_codec_put_empty(out, MH_REP_PROGRESS);
		break;
	case TM_ACT_ADD_HEADER:
		argv[0] = a->a;
		argv[1] = a->b;
		mh_codec_put_strs(out, MH_REP_ADDHEADER, argv, 2);
		break;
	case TM_ACT_INS_HEADER:
		mh_codec_put_index_header(out, MH_REP_INSHEADER, a->num, a->a, a->b);
		break;
	case TM_ACT_CHG_HEADER:
		mh_codec_put_index_header(out, MH_REP_CHGHEADER, a->num, a->a, a->b);
		break;
	case TM_ACT_ADD_RCPT:
	case TM_ACT_DEL_RCPT:
		argv[0] = a->a;
		mh_codec_put_strs(out, a->kind == TM_ACT_ADD_RCPT ? MH_REP_ADDRCPT : MH_REP_DELRCPT,
		                  argv, 1);
		break;
	case TM_ACT_ADD_RCPT_PAR:
	case TM_ACT_CHG_FROM:
		argv[0] = a->a;
		argv[1] = a->b;
		mh_codec_put_strs(out,
		                  a->kind == TM_ACT_CHG_FROM ? MH_REP_CHGFROM : MH_REP_ADDRCPT_PAR,
		                  argv, a->b != NULL ? 2 : 1);
		break;
	case TM_ACT_REPL_BODY:
		/* as smfi_replacebody: packets of at most MH_CHUNK_MAX, sent back to back */
		off = 0;
		do {
			size_t n = a->alen - off > MH_CHUNK_MAX ? MH_CHUNK_MAX : a->alen - off;
			mh_codec_put_raw(out, MH_REP_REPLBODY, a->a + off, n);
			off += n;
		} while (off < a->alen);
		break;
	case TM_ACT_QUARANTINE:
		mh_codec_put_str(out, MH_REP_QUARANTINE, a->a);
		break;
	default:
		break;
	}
}

static void put_decision(struct mh_buf *out, const struct tm_action *a)
{
	switch (a != NULL ? a->kind : TM_ACT_CONTINUE) {
	case TM_ACT_ACCEPT:
		mh_codec_put_empty(out, MH_REP_ACCEPT);
		break;
	case TM_ACT_REJECT:
		mh_codec_put_empty(out, MH_REP_REJECT);
		break;
	case TM_ACT_TEMPFAIL:
		mh_codec_put_empty(out, MH_REP_TEMPFAIL);
		break;
	case TM_ACT_DISCARD:
		mh_codec_put_empty(out, MH_REP_DISCARD);
		break;
	case TM_ACT_SKIP:
		mh_codec_put_empty(out, MH_REP_SKIP);
		break;
	case TM_ACT_REPLY:
		/* sent as configured, unvalidated: tests use it to provoke bad replies */
		mh_codec_put_str(out, MH_REP_REPLYCODE, a->a);
		break;
	default:
		mh_codec_put_empty(out, MH_REP_CONTINUE);
		break;
	}
}

/* Does this answer end the transaction (libmilter state table, protocol §6.2)? */
static int ends_message(enum tm_stage st, enum tm_action_kind k)
{
	if (st == TM_STAGE_EOM || k == TM_ACT_ACCEPT)
		return 1;
	if (k != TM_ACT_REJECT && k != TM_ACT_TEMPFAIL && k != TM_ACT_DISCARD && k != TM_ACT_REPLY)
		return 0;
	/* r/t/d to RCPT or UNKNOWN refuse only that command */
	return st != TM_STAGE_RCPT && st != TM_STAGE_UNKNOWN;
}

static void rule_start(struct tm_session *s, enum tm_stage st, const char *arg, int silent)
{
	s->rule = tm_script_find(s->srv->script, st, arg);
	s->pc = 0;
	s->stage = st;
	s->silent = silent;
}

static int run(struct tm_session *s);

/* The list reached decision a (NULL: implicit continue). Returns 0 if s is gone. */
static int decide(struct tm_session *s, const struct tm_action *a)
{
	enum tm_action_kind k = a != NULL ? a->kind : TM_ACT_CONTINUE;

	if (s->then_eom) {
		/* libmilter: 'E' data goes to xxfi_body first; only a non-continue answers 'E' */
		s->then_eom = 0;
		if (s->silent || k == TM_ACT_CONTINUE) {
			rule_start(s, TM_STAGE_EOM, NULL, 0);
			return run(s);
		}
	}
	if (!s->silent) {
		put_decision(mh_conn_out(s->conn), a);
		if (ends_message(s->stage, k))
			msg_reset(s);
	}
	mh_conn_flush(s->conn);
	s->rule = NULL;
	return 1;
}

/* Run actions from s->pc. Returns 0 when the session is gone. */
static int run(struct tm_session *s)
{
	size_t n = s->rule != NULL ? s->rule->nacts : 0;

	while (s->pc < n) {
		const struct tm_action *a = &s->rule->acts[s->pc++];

		if (tm_action_is_decision(a->kind))
			return decide(s, a);
		switch (a->kind) {
		case TM_ACT_DELAY:
			/* what is queued (e.g. progress) leaves before the wait */
			mh_conn_flush(s->conn);
			s->busy = 1;
			mh_conn_pause(s->conn);
			ev_timer_set(&s->delay, a->num / 1000.0, 0.);
			ev_timer_start(s->srv->loop, &s->delay);
			return 1;
		case TM_ACT_HANG:
			mh_conn_flush(s->conn);
			mh_debug(s->id, "hanging");
			s->hung = 1;
			s->rule = NULL;
			return 1;
		case TM_ACT_CLOSE:
			mh_debug(s->id, "closing by script");
			session_end(s, "action", 1);
			return 0;
		default:
			if (!s->silent)
				put_action(mh_conn_out(s->conn), a);
			break;
		}
	}
	return decide(s, NULL);
}

static void delay_done(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tm_session *s = w->data;

	s->busy = 0;
	/* finish the list before reading on, so buffered commands come after it */
	if (run(s) && !s->busy)
		mh_conn_resume(s->conn);
}

static void negotiate(struct tm_session *s, const struct mh_cmd *cmd)
{
	struct mh_optneg want, reply;
	const struct mh_optneg *offer = &cmd->u.optneg;

	tm_script_want(s->srv->script, offer, &want);
	if (mh_optneg_answer(offer, &want, &reply) != MH_CODEC_OK) {
		/* libmilter: "does not fulfill action/protocol requirements" */
		mh_err(s->id,
		       "negotiation failed: MTA offers version %u actions 0x%x protocol 0x%x, "
		       "we want version %u actions 0x%x protocol 0x%x",
		       offer->version, offer->actions, offer->protocol, want.version, want.actions,
		       want.protocol);
		session_end(s, "error", 0);
		return;
	}
	s->protocol = reply.protocol;
	mh_codec_put_optneg(mh_conn_out(s->conn), &reply);
	mh_conn_flush(s->conn);
}

/* Count the command into the message state (before logging: eom reports it). */
static void account(struct tm_session *s, const struct mh_cmd *cmd)
{
	switch (cmd->code) {
	case MH_CMD_HEADER:
		s->msg.headers++;
		break;
	case MH_CMD_BODY:
	case MH_CMD_EOB:
		s->msg.body_len += cmd->u.body.len;
		s->msg.body_fnv = tm_fnv1a(s->msg.body_fnv, cmd->u.body.data, cmd->u.body.len);
		break;
	default:
		break;
	}
}

static void on_packet(struct mh_conn *c, const struct mh_packet *p, void *arg)
{
	struct tm_session *s = arg;
	struct mh_cmd cmd;
	enum tm_stage st;
	const char *qual = NULL;
	int rc = mh_codec_decode_cmd(p, &cmd);

	if (rc != MH_CODEC_OK) {
		mh_err(s->id, "malformed packet from the MTA (code 0x%02x, %zu bytes): %s", p->code,
		       p->len, mh_codec_strerror(rc));
		session_end(s, "error", 0);
		return;
	}
	if (cmd.code == MH_CMD_MACRO) {
		tm_macros_add(&s->macros, &cmd);
		return;
	}
	if (s->busy) {
		/* mh_conn holds frames while paused; getting one here is a bug */
		mh_err(s->id, "internal: command '%c' during a delay", cmd.code);
		session_end(s, "error", 0);
		return;
	}
	account(s, &cmd);
	tm_log_command(s->srv->log, s->id, &cmd, &s->macros, &s->msg);
	tm_macros_clear(&s->macros);

	switch (cmd.code) {
	case MH_CMD_QUIT:
		session_end(s, "quit", 1);
		return;
	case MH_CMD_QUIT_NC:
		/* a new SMTP session on this connection, without renegotiation */
		msg_reset(s);
		return;
	case MH_CMD_ABORT:
		msg_reset(s);
		break;
	case MH_CMD_OPTNEG:
		if (!s->hung)
			negotiate(s, &cmd);
		return;
	default:
		break;
	}
	if (s->hung)
		return;

	st = tm_stage_of_cmd(cmd.code);
	if ((cmd.code == MH_CMD_MAIL || cmd.code == MH_CMD_RCPT) && cmd.u.env.argc > 0)
		qual = cmd.u.env.argv[0];
	else if (cmd.code == MH_CMD_HEADER)
		qual = cmd.u.header.name;
	if (cmd.code == MH_CMD_EOB && cmd.u.body.len > 0) {
		/* the final body chunk inside 'E' runs the body rule first */
		rule_start(s, TM_STAGE_BODY, NULL, (s->protocol & MH_PROTO_NR_BODY) != 0);
		s->then_eom = 1;
	} else {
		rule_start(s, st, qual,
		           cmd.code == MH_CMD_ABORT ||
		               (s->protocol & mh_cmd_nr_bit(cmd.code)) != 0);
	}
	run(s);
}

static void on_close(struct mh_conn *c, enum mh_conn_why why, void *arg)
{
	struct tm_session *s = arg;
	int err = mh_conn_last_error(c);

	switch (why) {
	case MH_CONN_EOF:
		mh_debug(s->id, "MTA closed the connection");
		tm_log_closed(s->srv->log, s->id, "eof");
		break;
	case MH_CONN_PROTOCOL:
		mh_err(s->id, "malformed packet from the MTA: %s", mh_codec_strerror(err));
		tm_log_closed(s->srv->log, s->id, "error");
		break;
	case MH_CONN_IOERR:
		if (err == 0)
			mh_err(s->id,
			       "malformed packet from the MTA: connection closed inside a packet");
		else
			mh_err(s->id, "connection error: %s", strerror(err));
		tm_log_closed(s->srv->log, s->id, "error");
		break;
	default:
		mh_err(s->id, "connection error: %s (%s)", mh_conn_why_str(why),
		       err > 0 ? strerror(err) : mh_codec_strerror(err));
		tm_log_closed(s->srv->log, s->id, "error");
		break;
	}
	session_free(s);
}

void tm_session_start(struct tm_server *srv, int fd)
{
	struct tm_session *s = mh_xcalloc(1, sizeof(*s));

	s->srv = srv;
	s->id = ++srv->accepted;
	s->stage = TM_STAGE_NONE;
	msg_reset(s);
	ev_timer_init(&s->delay, delay_done, 0., 0.);
	s->delay.data = s;
	s->conn = mh_conn_new(srv->loop, fd, MH_PAYLOAD_DEFAULT_MAX, &session_ops, s);
	s->next = srv->sessions;
	if (srv->sessions != NULL)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	mh_debug(s->id, "connection accepted (%zu open)", srv->nsessions);
}

void tm_session_close_all(struct tm_server *srv, const char *reason)
{
	while (srv->sessions != NULL)
		session_end(srv->sessions, reason, 1);
}
