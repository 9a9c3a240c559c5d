/*
 * mh_mta - the MTA-facing half of a session: the milter side of the
 * protocol towards Postfix or Sendmail, on an mh_conn.
 *
 * SYNOPSIS
 *	#include "mta/mh_mta.h"
 *	(see the header for the calls)
 * DESCRIPTION
 *	Every frame from the MTA is decoded here and checked against the
 *	session state before the hub sees it.
 *
 *	One command at a time. For an answerable command (C H M R T L N B E
 *	U) input is paused and the idle deadline disarmed *before*
 *	on_command is called; mh_mta_reply() (also when it sends nothing,
 *	for an NR* event) resumes input and re-arms the deadline. So the
 *	hub may reply from inside on_command or much later. 'O' works the
 *	same way with on_optneg / mh_mta_reply_optneg(). 'A', 'K' and 'Q'
 *	are passed to on_command without pausing; 'D' never reaches the hub.
 *
 *	Deadline: idle_timeout (0 = none) runs while the MTA owes us a
 *	command, i.e. from the connection's start, after each unanswered
 *	packet and after each reply; it is off while the hub works on a
 *	command (the children's own timeouts bound that wait).
 *
 *	Command order. Tolerant like libmilter (milter-protocol.md §6.2)
 *	but a command that cannot be a real MTA's closes the session: a log
 *	line naming the command and the state, then on_close(PROTOCOL).
 *	Accepted: 'A' anywhere after 'O' (repeated, without a transaction);
 *	'D' anywhere after 'O'; 'U' anywhere after 'O'; 'H' repeated; 'K'
 *	anywhere after 'O', followed by 'C' without a new 'O'; any step of a
 *	transaction skipped (T by v<4 MTAs, NO* steps, E right after R);
 *	commands the hub negotiated away (NO*): MTAs send them anyway.
 *	Refused: anything before 'O', a second 'O', 'C' twice without 'K',
 *	H/M before C (unless NOCONNECT was negotiated), R T L N B E outside
 *	a transaction (unless NOMAIL was negotiated), a transaction step
 *	going backwards (R after T, L after N, ...; R, L and B may repeat),
 *	anything after 'Q'.
 *	A transaction opens with 'M' and closes with 'A', 'K', the reply to
 *	'E', or a message-ending decision: a/r/t/d to M T L N B, a/d to R.
 *	An 'H' or 'M' inside an open transaction ends it the way libmilter
 *	does (it calls xxfi_abort and re-checks): the hub first gets a
 *	synthesized 'A' command, then the 'H' / 'M'.
 *	EOF at any point is a normal close: on_close(MH_CONN_EOF).
 *
 *	Macros. Each 'D' for stage C H M R T N E replaces that stage's set
 *	(one copied block per stage). A 'C', 'H', 'M' or 'R' command clears
 *	the stages after it (libmilter's lifetime rule, SMFIM order: a new
 *	RCPT clears DATA, EOM and EOH); 'A' clears MAIL onwards, 'K' all.
 *	'D' with stage L, B, U or any other byte is accepted and ignored, as
 *	libmilter does. mh_mta_macro() searches E N T R M H C and matches
 *	"x" and "{x}" either way.
 *
 *	Replies. mh_mta_reply() maps the status to its code; a skip is sent
 *	as continue unless the command is 'B' and SMFIP_SKIP was negotiated.
 *	A text is sent as 'y' only when it is a valid reply whose class
 *	matches (4xx tempfail, 5xx reject); otherwise it is logged and the
 *	plain code goes out. Modifications ('+ - 2 b e h i m', and 'q') and
 *	progress are sent only while an 'E' waits for its decision; others
 *	are logged and dropped, as are modifications whose action flag was
 *	not negotiated. A replacement body above MH_CHUNK_MAX is cut into
 *	several 'b' frames. Output is flushed at each decision, progress,
 *	and whenever 64 KiB of modifications are queued.
 *
 *	On TCP, each 'D' sets TCP_QUICKACK: Postfix writes a macro packet
 *	and its command separately, and our delayed ACK would otherwise
 *	hold its second write back ~40 ms (design §7).
 *
 *	Lifetime. The hub frees the mta with mh_mta_free(), also from
 *	inside any callback (freeing is then deferred until the callback
 *	returns; nothing more is called). After on_close the mta only
 *	answers accessors; replies are ignored.
 */
#include "mta/mh_mta.h"

#include <assert.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/mh_buf.h"
#include "util/mh_log.h"

#define MTA_FLUSH_AT 65536

enum mta_state {
	MTA_START, /* waiting for 'O' */
	MTA_OPTNEG, /* on_optneg called, hub has not replied */
	MTA_READY, /* negotiated, no connection ('C') yet, or after 'K' */
	MTA_CONNECTED, /* after 'C' (or the first H/M with NOCONNECT) */
	MTA_QUIT, /* 'Q' received */
};

/* One stage's macros: 2*npairs pointers followed by the strings, one block. */
struct mta_macros {
	const char **pairs;
	size_t npairs;
};

struct mh_mta {
	struct mh_conn *conn; /* NULL once closed */
	const struct mh_mta_ops *ops;
	void *arg;
	uint64_t id;
	double idle_timeout;
	enum mta_state state;
	int txn; /* phase of the last transaction command, 0 = none */
	uint8_t pending; /* answerable command awaiting mh_mta_reply, 0 = none */
	unsigned pending_nr : 1; /* ... negotiated as no-reply */
	unsigned tcp : 1;
	unsigned dead : 1; /* mh_mta_free called inside a callback */
	unsigned depth; /* callbacks into the hub in progress */
	struct mh_optneg offer;
	struct mh_optneg negotiated;
	struct mta_macros macros[MH_STAGE_COUNT];
};

/* Position of a transaction command; 0 for the others. */
static int txn_phase(uint8_t code)
{
	switch (code) {
	case MH_CMD_MAIL:
		return 1;
	case MH_CMD_RCPT:
		return 2;
	case MH_CMD_DATA:
		return 3;
	case MH_CMD_HEADER:
		return 4;
	case MH_CMD_EOH:
		return 5;
	case MH_CMD_BODY:
		return 6;
	case MH_CMD_EOB:
		return 7;
	}
	return 0;
}

static const char *state_name(const struct mh_mta *m)
{
	static const char *const in_txn[] = {"",           "after MAIL",   "after RCPT",
	                                     "after DATA", "after HEADER", "after EOH",
	                                     "after BODY", "after EOB"};
	switch (m->state) {
	case MTA_START:
		return "before negotiation";
	case MTA_OPTNEG:
		return "negotiating";
	case MTA_READY:
		return "negotiated, no connection";
	case MTA_CONNECTED:
		return m->txn > 0 ? in_txn[m->txn] : "connected, no transaction";
	case MTA_QUIT:
		return "after QUIT";
	}
	return "?";
}

static void optneg_copy(struct mh_optneg *dst, const struct mh_optneg *src)
{
	int i;

	for (i = 0; i < MH_STAGE_COUNT; i++)
		free((char *)dst->macros[i]);
	*dst = *src;
	for (i = 0; i < MH_STAGE_COUNT; i++)
		if (src->macros[i] != NULL)
			dst->macros[i] = mh_xstrdup(src->macros[i]);
}

static void optneg_free(struct mh_optneg *o)
{
	int i;

	for (i = 0; i < MH_STAGE_COUNT; i++)
		free((char *)o->macros[i]);
	memset(o, 0, sizeof(*o));
}

/* ------------------------------------------------------------ macros */

static void macros_clear_from(struct mh_mta *m, int first)
{
	int i;

	for (i = first; i < MH_STAGE_COUNT; i++) {
		free(m->macros[i].pairs);
		m->macros[i].pairs = NULL;
		m->macros[i].npairs = 0;
	}
}

static void macros_store(struct mh_mta *m, const struct mh_cmd *cmd)
{
	int stage = mh_macro_stage_of_cmd(cmd->u.macro.stage);
	size_t n = 2 * cmd->u.macro.npairs;
	size_t bytes = n * sizeof(char *);
	size_t i;
	char *p;
	const char **pairs;

	if (stage < 0)
		return; /* 'L' 'B' 'U' ...: ignored, as libmilter does */
	for (i = 0; i < n; i++)
		bytes += strlen(cmd->u.macro.pairs[i]) + 1;
	pairs = mh_xmalloc(bytes > 0 ? bytes : 1);
	p = (char *)(pairs + n);
	for (i = 0; i < n; i++) {
		size_t len = strlen(cmd->u.macro.pairs[i]) + 1;
		memcpy(p, cmd->u.macro.pairs[i], len);
		pairs[i] = p;
		p += len;
	}
	free(m->macros[stage].pairs);
	m->macros[stage].pairs = pairs;
	m->macros[stage].npairs = cmd->u.macro.npairs;
}

size_t mh_mta_macros(const struct mh_mta *m, uint8_t stage_cmd, const char *const **pairs)
{
	int stage = mh_macro_stage_of_cmd(stage_cmd);

	if (stage < 0 || m->macros[stage].pairs == NULL) {
		*pairs = NULL;
		return 0;
	}
	*pairs = m->macros[stage].pairs;
	return m->macros[stage].npairs;
}

const char *mh_mta_macro(const struct mh_mta *m, const char *name)
{
	/* Latest first, in protocol order: EOM, EOH, DATA, RCPT, MAIL, HELO, CONNECT. */
	static const int order[MH_STAGE_COUNT] = {MH_STAGE_EOM,    MH_STAGE_EOH,  MH_STAGE_DATA,
	                                          MH_STAGE_RCPT,   MH_STAGE_MAIL, MH_STAGE_HELO,
	                                          MH_STAGE_CONNECT};
	size_t want_len, have_len, i;
	const char *want = mh_macro_bare(name, &want_len);
	int s;

	for (s = 0; s < MH_STAGE_COUNT; s++) {
		const struct mta_macros *mm = &m->macros[order[s]];
		for (i = 0; i < mm->npairs; i++) {
			const char *have = mh_macro_bare(mm->pairs[2 * i], &have_len);
			if (have_len == want_len && memcmp(have, want, want_len) == 0)
				return mm->pairs[2 * i + 1];
		}
	}
	return NULL;
}

/* ------------------------------------------------------------ session */

static void release(struct mh_mta *m)
{
	macros_clear_from(m, 0);
	optneg_free(&m->offer);
	optneg_free(&m->negotiated);
	free(m);
}

static void arm_idle(struct mh_mta *m)
{
	if (m->conn != NULL)
		mh_conn_set_deadline(m->conn, m->idle_timeout);
}

/* End the session because of the MTA's input; the hub hears on_close. */
static void fail(struct mh_mta *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct mh_mta *m, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	mh_warn(m->id, "MTA protocol error: %s (state: %s); closing the session", why,
	        state_name(m));
	mh_conn_close(m->conn, 0);
	m->conn = NULL;
	m->ops->on_close(m, MH_CONN_PROTOCOL, m->arg);
}

static void deliver_unanswered(struct mh_mta *m, const struct mh_cmd *cmd)
{
	m->ops->on_command(m, cmd, m->arg);
	if (!m->dead)
		arm_idle(m);
}

static void deliver_answerable(struct mh_mta *m, const struct mh_cmd *cmd)
{
	m->pending = cmd->code;
	m->pending_nr = (m->negotiated.protocol & mh_cmd_nr_bit(cmd->code)) != 0;
	mh_conn_pause(m->conn);
	mh_conn_set_deadline(m->conn, 0);
	m->ops->on_command(m, cmd, m->arg);
}

/* H or M inside a transaction: libmilter aborts it first; so do we. */
static int implicit_abort(struct mh_mta *m)
{
	struct mh_cmd abort_cmd;

	if (m->txn == 0)
		return 0;
	mh_debug(m->id, "MTA sent a new command inside a transaction: implicit ABORT");
	memset(&abort_cmd, 0, sizeof(abort_cmd));
	abort_cmd.code = MH_CMD_ABORT;
	m->txn = 0;
	macros_clear_from(m, MH_STAGE_MAIL + 1); /* keep the new MAIL's own 'D' */
	m->ops->on_command(m, &abort_cmd, m->arg);
	return m->dead || m->conn == NULL;
}

static int connected(struct mh_mta *m)
{
	if (m->state == MTA_CONNECTED)
		return 1;
	if (m->state == MTA_READY && (m->negotiated.protocol & MH_PROTO_NOCONNECT)) {
		m->state = MTA_CONNECTED;
		return 1;
	}
	return 0;
}

/* R T L N B E: checks and the new transaction phase; -1 refused. */
static int txn_step(struct mh_mta *m, uint8_t code)
{
	int ph = txn_phase(code);

	if (!connected(m)) {
		fail(m, "%s before CONNECT", mh_cmd_name(code));
		return -1;
	}
	if (m->txn == 0 && !(m->negotiated.protocol & MH_PROTO_NOMAIL)) {
		fail(m, "%s outside a transaction", mh_cmd_name(code));
		return -1;
	}
	if (m->txn > ph ||
	    (m->txn == ph && code != MH_CMD_RCPT && code != MH_CMD_HEADER && code != MH_CMD_BODY)) {
		fail(m, "%s out of order", mh_cmd_name(code));
		return -1;
	}
	m->txn = ph;
	return 0;
}

static void dispatch(struct mh_mta *m, const struct mh_cmd *cmd)
{
	assert(m->pending == 0 && m->state != MTA_OPTNEG);
	if (m->state == MTA_START && cmd->code != MH_CMD_OPTNEG) {
		fail(m, "%s before OPTNEG", mh_cmd_name(cmd->code));
		return;
	}
	if (m->state == MTA_QUIT) {
		fail(m, "%s after QUIT", mh_cmd_name(cmd->code));
		return;
	}
	switch (cmd->code) {
	case MH_CMD_OPTNEG:
		if (m->state != MTA_START) {
			fail(m, "a second OPTNEG");
			return;
		}
		m->state = MTA_OPTNEG;
		optneg_copy(&m->offer, &cmd->u.optneg);
		mh_conn_pause(m->conn);
		mh_conn_set_deadline(m->conn, 0);
		m->ops->on_optneg(m, &m->offer, m->arg);
		return;
	case MH_CMD_MACRO:
		macros_store(m, cmd);
		if (m->tcp) {
			int one = 1;
			(void)setsockopt(mh_conn_fd(m->conn), IPPROTO_TCP, TCP_QUICKACK, &one,
			                 sizeof(one));
		}
		arm_idle(m);
		return;
	case MH_CMD_ABORT:
		m->txn = 0;
		macros_clear_from(m, MH_STAGE_MAIL);
		deliver_unanswered(m, cmd);
		return;
	case MH_CMD_QUIT_NC:
		m->state = MTA_READY;
		m->txn = 0;
		macros_clear_from(m, 0);
		deliver_unanswered(m, cmd);
		return;
	case MH_CMD_QUIT:
		m->state = MTA_QUIT;
		deliver_unanswered(m, cmd);
		return;
	case MH_CMD_UNKNOWN:
		deliver_answerable(m, cmd);
		return;
	case MH_CMD_CONNECT:
		if (m->state != MTA_READY) {
			fail(m, "CONNECT twice without QUIT_NC");
			return;
		}
		m->state = MTA_CONNECTED;
		macros_clear_from(m, MH_STAGE_CONNECT + 1);
		deliver_answerable(m, cmd);
		return;
	case MH_CMD_HELO:
	case MH_CMD_MAIL:
		if (!connected(m)) {
			fail(m, "%s before CONNECT", mh_cmd_name(cmd->code));
			return;
		}
		if (implicit_abort(m))
			return;
		if (cmd->code == MH_CMD_MAIL) {
			m->txn = txn_phase(MH_CMD_MAIL);
			macros_clear_from(m, MH_STAGE_MAIL + 1);
		} else {
			macros_clear_from(m, MH_STAGE_HELO + 1);
		}
		deliver_answerable(m, cmd);
		return;
	case MH_CMD_RCPT:
	case MH_CMD_DATA:
	case MH_CMD_HEADER:
	case MH_CMD_EOH:
	case MH_CMD_BODY:
	case MH_CMD_EOB:
		if (txn_step(m, cmd->code) < 0)
			return;
		if (cmd->code == MH_CMD_RCPT)
			macros_clear_from(m, MH_STAGE_RCPT + 1);
		deliver_answerable(m, cmd);
		return;
	}
	fail(m, "unexpected command 0x%02x", cmd->code);
}

static void on_packet(struct mh_conn *c, const struct mh_packet *p, void *arg)
{
	struct mh_mta *m = arg;
	struct mh_cmd cmd;
	int rc;

	(void)c;
	m->depth++;
	rc = mh_codec_decode_cmd(p, &cmd);
	if (rc != MH_CODEC_OK) {
		if (p->code >= 0x21 && p->code < 0x7f)
			fail(m, "malformed '%c' packet: %s", p->code, mh_codec_strerror(rc));
		else
			fail(m, "malformed 0x%02x packet: %s", p->code, mh_codec_strerror(rc));
	} else {
		dispatch(m, &cmd);
	}
	if (--m->depth == 0 && m->dead)
		release(m);
}

static void on_conn_close(struct mh_conn *c, enum mh_conn_why why, void *arg)
{
	struct mh_mta *m = arg;
	int err = mh_conn_last_error(c);

	(void)c;
	m->conn = NULL;
	if (why == MH_CONN_EOF)
		mh_debug(m->id, "MTA closed the connection (state: %s)", state_name(m));
	else if (why == MH_CONN_PROTOCOL)
		mh_warn(m->id, "MTA protocol error: %s (state: %s); closing the session",
		        mh_codec_strerror(err), state_name(m));
	else
		mh_info(m->id, "MTA connection: %s%s%s (state: %s)", mh_conn_why_str(why),
		        err > 0 ? ": " : "", err > 0 ? strerror(err) : "", state_name(m));
	m->depth++;
	m->ops->on_close(m, why, m->arg);
	if (--m->depth == 0 && m->dead)
		release(m);
}

static const struct mh_conn_ops conn_ops = {
    .on_connected = NULL,
    .on_packet = on_packet,
    .on_close = on_conn_close,
};

struct mh_mta *mh_mta_new(struct ev_loop *loop, int fd, size_t max_payload, double idle_timeout,
                          uint64_t session_id, const struct mh_mta_ops *ops, void *arg)
{
	struct mh_mta *m = mh_xcalloc(1, sizeof(*m));

	m->ops = ops;
	m->arg = arg;
	m->id = session_id;
	m->idle_timeout = idle_timeout;
	m->state = MTA_START;
	m->conn = mh_conn_new(loop, fd, max_payload, &conn_ops, m);
	m->tcp = mh_conn_is_tcp(m->conn); /* the family was looked up once, there */
	arm_idle(m);
	return m;
}

void mh_mta_free(struct mh_mta *m)
{
	if (m == NULL || m->dead)
		return;
	if (m->conn != NULL) {
		mh_conn_close(m->conn, 0);
		m->conn = NULL;
	}
	if (m->depth > 0)
		m->dead = 1; /* released when the callback returns */
	else
		release(m);
}

/* ------------------------------------------------------------ output */

void mh_mta_reply_optneg(struct mh_mta *m, const struct mh_optneg *reply)
{
	if (m->conn == NULL)
		return;
	assert(m->state == MTA_OPTNEG);
	if (reply != &m->negotiated)
		optneg_copy(&m->negotiated, reply);
	mh_codec_put_optneg(mh_conn_out(m->conn), &m->negotiated);
	mh_conn_flush(m->conn);
	m->state = MTA_READY;
	mh_conn_resume(m->conn);
	arm_idle(m);
}

/* Does this decision end the transaction (libmilter's table, §6.2/6.3)? */
static int ends_txn(uint8_t cmd, enum mh_status st)
{
	if (cmd == MH_CMD_EOB)
		return 1;
	if (cmd == MH_CMD_RCPT)
		return st == MH_ST_ACCEPT || st == MH_ST_DISCARD;
	if (txn_phase(cmd) > 0)
		return st == MH_ST_ACCEPT || st == MH_ST_REJECT || st == MH_ST_TEMPFAIL ||
		       st == MH_ST_DISCARD;
	return 0;
}

static void put_decision(struct mh_mta *m, uint8_t cmd, enum mh_status st, const char *text)
{
	struct mh_buf *out = mh_conn_out(m->conn);

	if (st == MH_ST_SKIP && (cmd != MH_CMD_BODY || !(m->negotiated.protocol & MH_PROTO_SKIP)))
		st = MH_ST_CONTINUE;
	if (text != NULL) {
		if ((st == MH_ST_TEMPFAIL || st == MH_ST_REJECT) &&
		    mh_status_of_reply(MH_REP_REPLYCODE, text) == st &&
		    mh_codec_put_replycode(out, text) == MH_CODEC_OK)
			return;
		mh_warn(m->id, "reply text \"%.100s\" unfit for %s to %s: sending the plain code",
		        text, mh_status_name(st), mh_cmd_name(cmd));
	}
	mh_codec_put_empty(out, mh_status_reply_code(st));
}

void mh_mta_reply(struct mh_mta *m, enum mh_status st, const char *text)
{
	uint8_t cmd;

	if (m->conn == NULL)
		return;
	assert(m->pending != 0);
	assert(st != MH_ST_NONE);
	cmd = m->pending;
	m->pending = 0;
	if (!m->pending_nr) {
		put_decision(m, cmd, st, text);
		mh_conn_flush(m->conn);
		if (ends_txn(cmd, st))
			m->txn = 0;
	}
	mh_conn_resume(m->conn);
	arm_idle(m);
}

void mh_mta_send_progress(struct mh_mta *m)
{
	if (m->conn == NULL)
		return;
	if (m->pending != MH_CMD_EOB) {
		mh_debug(m->id, "progress outside end-of-message dropped");
		return;
	}
	mh_codec_put_empty(mh_conn_out(m->conn), MH_REP_PROGRESS);
	mh_conn_flush(m->conn);
}

void mh_mta_send_modification(struct mh_mta *m, const struct mh_reply *mod)
{
	struct mh_buf *out;
	uint32_t need = mh_reply_action(mod->code);

	if (m->conn == NULL)
		return;
	if (m->pending != MH_CMD_EOB || need == 0) {
		mh_warn(m->id, "modification 0x%02x outside end-of-message dropped", mod->code);
		return;
	}
	if (!(m->negotiated.actions & need)) {
		mh_warn(m->id, "modification '%c' not negotiated with the MTA: dropped", mod->code);
		return;
	}
	out = mh_conn_out(m->conn);
	if (mod->code == MH_REP_REPLBODY && mod->u.replbody.len > MH_CHUNK_MAX) {
		const uint8_t *p = mod->u.replbody.data;
		size_t left = mod->u.replbody.len;
		while (left > 0) {
			size_t n = left < MH_CHUNK_MAX ? left : MH_CHUNK_MAX;
			mh_codec_put_raw(out, MH_REP_REPLBODY, p, n);
			p += n;
			left -= n;
		}
	} else {
		mh_codec_put_reply(out, mod);
	}
	if (mh_buf_size(out) >= MTA_FLUSH_AT)
		mh_conn_flush(m->conn);
}

/* ------------------------------------------------------------ accessors */

const struct mh_optneg *mh_mta_offer(const struct mh_mta *m)
{
	return &m->offer;
}

const struct mh_optneg *mh_mta_negotiated(const struct mh_mta *m)
{
	return &m->negotiated;
}

uint64_t mh_mta_id(const struct mh_mta *m)
{
	return m->id;
}
