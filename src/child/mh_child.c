/*
 * NAME
 *	mh_child 3
 * SUMMARY
 *	the link to one child milter: the MTA side of the protocol
 * SYNOPSIS
 *	#include "child/mh_child.h"
 * DESCRIPTION
 *	A link is a small state machine over one mh_conn:
 *
 *	CONNECTING	mh_conn_connect() under the connect timeout.
 *	NEGOTIATING	'O' with the offer sent; its reply awaited under the
 *			read timeout, checked with mh_optneg_check() and kept
 *			(protocol bits masked by the offer, macro lists
 *			copied: the packet buffer is reused).
 *	READY		commands go out as the hub asks.
 *	DEAD		failed or negotiation refused; nothing more is sent.
 *
 *	mh_child_send() applies the child's negotiation: a NO* event (or one
 *	its version lacks: DATA below 4, UNKNOWN below 3) is not sent at
 *	all; an NR* event is sent and not waited for. Before C H M R T N E
 *	a 'D' with that stage's pairs always goes out (as Postfix does);
 *	before 'L' and 'B' one with the EOH / EOM list only when some pair
 *	survives the filter; never before 'U'. The filter is the child's
 *	list for the stage (names compared without braces); a child that
 *	sent no list, an empty one, or negotiated below version 6 gets every
 *	pair. The 'D' and its command are encoded back to back and flushed
 *	once (design §7: one write).
 *
 *	Expected replies form a short queue. The hub has at most one live
 *	command (an assert); mh_child_abort() turns a live command into one
 *	whose reply is still read but thrown away (the child answers it
 *	before it sees the 'A'), so the next command can follow at once.
 *
 *	Deadlines (one per link, the mh_conn deadline): the write timeout
 *	while output is pending (an ev_prepare watcher notices when it has
 *	drained), then the read timeout for the reply at the head of the
 *	queue, the eom timeout when that is 'E'. Every 'p' restarts the
 *	deadline of the reply awaited. No reply awaited and nothing to
 *	write: no deadline.
 *
 *	Replies: decisions a c r t d y (and 's' after 'B') end a command;
 *	'p' is passed to on_progress; 'q' to on_modification at any stage,
 *	+ - 2 b e h i m only while 'E' is answered; both only if the child
 *	negotiated the action. Anything else ('4', 'f', a modification out
 *	of place, a reply when nothing is awaited, a malformed packet), EOF,
 *	an i/o error or a deadline FAILS the link (design §2.5): one warning
 *	naming the child, the connection closed, and one on_answer with the
 *	fallback status and failed = 1 (on_negotiated(ok = 0) before the
 *	link is ready).
 * CALLBACKS AND RE-ENTRANCY
 *	Callbacks are made only from libev watcher callbacks (mh_conn's, the
 *	ev_prepare, and an ev_timer of 0 s that reports a failure found
 *	inside an mh_child_* call). mh_child_free() and mh_child_quit() may
 *	be called from inside any callback: the link is closed at once and
 *	its memory released when the outermost callback returns (depth).
 * SEE ALSO
 *	mh_conn(3), ../shared/docs/milter-protocol.md §2-§4, design §2.5
 */
#include "child/mh_child.h"
#include "child/mh_child_policy.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/mh_conn.h"
#include "util/mh_buf.h"
#include "util/mh_err.h"
#include "util/mh_log.h"

/* Largest reply packet taken from a child: libmilter's SMFIP_MDS_1M. */
#define CHILD_MAX_PAYLOAD 1048575u
/* Replies awaited at once: one live, the rest from aborted commands. */
#define CHILD_EXPECT_MAX 16
#define CHILD_MAX_PAIRS (MH_ARGS_MAX / 2)

enum child_state { CHILD_CONNECTING, CHILD_NEGOTIATING, CHILD_READY, CHILD_DEAD };

/* One macro name of a child's list, braces stripped. */
struct child_name {
	const char *p;
	size_t len;
};

struct child_list {
	char *text; /* owned copy of the list as sent; reply.macros[] points here */
	char *tokens; /* owned copy cut into names */
	struct child_name *names;
	size_t n;
};

struct mh_child {
	struct mh_child_policy *pol; /* a policy server (issue 9): everything goes there */
	struct ev_loop *loop;
	const struct mh_child_conf *conf;
	struct mh_optneg offer;
	uint64_t sid;
	const struct mh_child_ops *ops;
	void *arg;
	struct mh_conn *conn; /* NULL once closed */
	enum child_state state;
	struct mh_optneg reply; /* the child's negotiation, masked */
	struct child_list lists[MH_STAGE_COUNT]; /* as the child sent them */
	/* Names forwarded per stage (n = 0: every pair): the child's own v6
	 * list until the hub sets its plan (mh_child_forward_macros). */
	struct child_list fwd[MH_STAGE_COUNT];
	char **also; /* names forwarded at every stage (condition macros) */
	size_t nalso;
	uint8_t expect[CHILD_EXPECT_MAX]; /* commands whose replies are due, oldest first */
	size_t nexpect;
	int live; /* the newest expected reply is reported (not aborted) */
	int writing; /* output pending: prepare watches for it to drain */
	uint8_t last_sent; /* the last command written, for a write timeout's reason */
	ev_prepare drain;
	ev_timer later; /* reports a failure found inside an mh_child_* call */
	char later_why[200];
	char why[240]; /* the reason passed with the failure */
	unsigned depth; /* callbacks of ours on the stack */
	int freed; /* free once depth is 0 */
};
/* ------------------------------------------------------------ lifetime */

static void list_free(struct child_list *l)
{
	free(l->text);
	free(l->tokens);
	free(l->names);
	memset(l, 0, sizeof(*l));
}

static void lists_free(struct mh_child *c)
{
	for (int s = 0; s < MH_STAGE_COUNT; s++) {
		list_free(&c->lists[s]);
		list_free(&c->fwd[s]);
	}
	for (size_t i = 0; i < c->nalso; i++)
		free(c->also[i]);
	free(c->also);
	c->also = NULL;
	c->nalso = 0;
}

static void child_release(struct mh_child *c)
{
	lists_free(c);
	free(c);
}

static void enter(struct mh_child *c)
{
	c->depth++;
}

/* Returns 1 when the link is gone (freed, or to be freed up-stack). */
static int leave(struct mh_child *c)
{
	c->depth--;
	if (!c->freed)
		return 0;
	if (c->depth == 0)
		child_release(c);
	return 1;
}

/* Stop every watcher and drop the connection; no callback follows. */
static void child_close(struct mh_child *c, int flush_first)
{
	if (c->writing) {
		ev_prepare_stop(c->loop, &c->drain);
		c->writing = 0;
	}
	ev_timer_stop(c->loop, &c->later);
	if (c->conn != NULL) {
		mh_conn_close(c->conn, flush_first);
		c->conn = NULL;
	}
}

/* ------------------------------------------------------------ deadlines */

static double reply_timeout(const struct mh_child *c)
{
	if (c->state == CHILD_NEGOTIATING)
		return c->conf->read_timeout;
	if (c->nexpect == 0)
		return 0;
	return c->expect[0] == MH_CMD_EOB ? c->conf->eom_timeout : c->conf->read_timeout;
}

/*
 * Arm the deadline for what the link waits for now: the write timeout
 * while output is pending (kept, not restarted, when it already runs),
 * else the timeout of the reply awaited, else none.
 */
static void arm(struct mh_child *c)
{
	if (c->conn == NULL || c->state == CHILD_CONNECTING)
		return;
	if (mh_buf_size(mh_conn_out(c->conn)) > 0) {
		if (!c->writing) {
			c->writing = 1;
			ev_prepare_start(c->loop, &c->drain);
			mh_conn_set_deadline(c->conn, c->conf->write_timeout);
		}
		return;
	}
	if (c->writing) {
		ev_prepare_stop(c->loop, &c->drain);
		c->writing = 0;
	}
	mh_conn_set_deadline(c->conn, reply_timeout(c));
}

/* Before the loop blocks: has the pending output gone? */
static void on_drain_check(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct mh_child *c = w->data;
	if (c->conn != NULL && mh_buf_size(mh_conn_out(c->conn)) == 0)
		arm(c);
}

/* ------------------------------------------------------------ failure */

/*
 * The link failed (design §2.5): log, close, report once. Only from a
 * watcher callback; the caller checks c->freed afterwards.
 */
static void child_fail(struct mh_child *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void child_fail(struct mh_child *c, const char *fmt, ...)
{
	va_list ap;
	if (c->state == CHILD_DEAD || c->freed)
		return;
	int negotiating = c->state != CHILD_READY;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	c->state = CHILD_DEAD;
	c->nexpect = 0;
	c->live = 0;
	child_close(c, 0);
	mh_warn(c->sid, "milter %s: %s; fallback %s", c->conf->name, c->why,
	        mh_status_name(c->conf->fallback));
	if (negotiating) {
		c->ops->on_negotiated(c, 0, c->arg);
		return;
	}
	struct mh_child_answer a = {
	    .status = c->conf->fallback, .text = NULL, .failed = 1, .why = c->why};
	c->ops->on_answer(c, &a, c->arg);
}

/* Report a failure found inside an mh_child_* call from the loop. */
static void fail_later(struct mh_child *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail_later(struct mh_child *c, const char *fmt, ...)
{
	va_list ap;
	if (ev_is_active(&c->later))
		return;
	va_start(ap, fmt);
	vsnprintf(c->later_why, sizeof(c->later_why), fmt, ap);
	va_end(ap);
	ev_timer_set(&c->later, 0., 0.);
	ev_timer_start(c->loop, &c->later);
}

static void on_later(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mh_child *c = w->data;
	enter(c);
	child_fail(c, "%s", c->later_why);
	leave(c);
}

/* ------------------------------------------------------------ negotiation */

/* Copy one macro list and cut it into names (split at spaces and commas). */
static void list_set(struct child_list *l, const char *text)
{
	l->text = mh_xstrdup(text);
	l->tokens = mh_xstrdup(text);
	l->names = mh_xcalloc(strlen(text) / 2 + 1, sizeof(*l->names));
	char *save = NULL;
	for (char *t = strtok_r(l->tokens, " ,\t", &save); t != NULL;
	     t = strtok_r(NULL, " ,\t", &save)) {
		size_t len;
		t = (char *)mh_macro_bare(t, &len);
		l->names[l->n].p = t;
		l->names[l->n].len = len;
		l->n++;
	}
}

static void take_negotiation(struct mh_child *c, const struct mh_optneg *r)
{
	c->reply.version = r->version;
	c->reply.actions = r->actions;
	/* Never rely on a bit we did not offer (an NR* would hang the MTA). */
	c->reply.protocol = r->protocol & (c->offer.protocol != 0 ? c->offer.protocol : ~0u);
	for (int s = 0; s < MH_STAGE_COUNT; s++) {
		c->reply.macros[s] = NULL;
		if (r->macros[s] == NULL)
			continue;
		list_set(&c->lists[s], r->macros[s]);
		c->reply.macros[s] = c->lists[s].text;
		/* design §2.4: below v6, or empty, a list means the MTA's defaults */
		if (r->version >= 6 && c->lists[s].n > 0)
			list_set(&c->fwd[s], r->macros[s]);
	}
}

static void on_negotiation_reply(struct mh_child *c, const struct mh_packet *p)
{
	struct mh_reply r;
	int rc = mh_codec_decode_reply(p, &r);
	if (rc != MH_CODEC_OK) {
		child_fail(c, "malformed negotiation reply: %s", mh_codec_strerror(rc));
		return;
	}
	if (r.code != MH_REP_OPTNEG) {
		child_fail(c, "unexpected reply '%c' to OPTNEG", r.code);
		return;
	}
	if (mh_optneg_check(&c->offer, &r.u.optneg) != MH_CODEC_OK) {
		child_fail(c, "refused negotiation: version %u actions 0x%x (offered %u, 0x%x)",
		           r.u.optneg.version, r.u.optneg.actions, c->offer.version,
		           c->offer.actions);
		return;
	}
	take_negotiation(c, &r.u.optneg);
	c->state = CHILD_READY;
	arm(c);
	c->ops->on_negotiated(c, 1, c->arg);
}

/* ------------------------------------------------------------ replies */

static void expect_pop(struct mh_child *c)
{
	memmove(c->expect, c->expect + 1, c->nexpect - 1);
	c->nexpect--;
}

static void on_decision(struct mh_child *c, const struct mh_reply *r, uint8_t cmd, int reported)
{
	const char *text = NULL;
	if (r->code == MH_REP_SKIP && cmd != MH_CMD_BODY) {
		child_fail(c, "skip in reply to %s", mh_cmd_name(cmd));
		return;
	}
	if (r->code == MH_REP_REPLYCODE) {
		text = r->u.replycode.text; /* the codec checked it: [45]dd... */
		if (!mh_codec_valid_replytext(text) || (text[0] != '4' && text[0] != '5')) {
			child_fail(c, "bad reply text in reply to %s", mh_cmd_name(cmd));
			return;
		}
	}
	enum mh_status st = mh_status_of_reply(r->code, text);
	assert(st != MH_ST_NONE);
	expect_pop(c);
	if (!reported) {
		arm(c); /* an aborted command's reply: drop it */
		return;
	}
	c->live = 0;
	arm(c);
	struct mh_child_answer a = {.status = st, .text = text, .failed = 0, .why = NULL};
	c->ops->on_answer(c, &a, c->arg);
}

static void on_reply(struct mh_child *c, const struct mh_packet *p)
{
	struct mh_reply r;
	if (c->nexpect == 0) {
		child_fail(c, "reply '%c' while no command is outstanding", p->code);
		return;
	}
	uint8_t cmd = c->expect[0];
	int reported = c->nexpect == 1 && c->live;
	int rc = mh_codec_decode_reply(p, &r);
	if (rc != MH_CODEC_OK) {
		child_fail(c, "malformed reply '%c' to %s: %s", p->code, mh_cmd_name(cmd),
		           mh_codec_strerror(rc));
		return;
	}
	switch (r.code) {
	case MH_REP_ACCEPT:
	case MH_REP_CONTINUE:
	case MH_REP_REJECT:
	case MH_REP_TEMPFAIL:
	case MH_REP_DISCARD:
	case MH_REP_REPLYCODE:
	case MH_REP_SKIP:
		on_decision(c, &r, cmd, reported);
		return;
	case MH_REP_PROGRESS:
		if (!c->writing)
			mh_conn_set_deadline(c->conn, reply_timeout(c));
		if (reported)
			c->ops->on_progress(c, c->arg);
		return;
	case MH_REP_SHUTDOWN:
		child_fail(c, "asked for shutdown in reply to %s", mh_cmd_name(cmd));
		return;
	}
	uint32_t act = mh_reply_action(r.code);
	if (act == 0) {
		child_fail(c, "unexpected reply '%c' to %s", r.code, mh_cmd_name(cmd));
		return;
	}
	/* 'q' may come at any stage (as Postfix takes it); edits only at 'E'. */
	if (r.code != MH_REP_QUARANTINE && cmd != MH_CMD_EOB) {
		child_fail(c, "modification '%c' in reply to %s", r.code, mh_cmd_name(cmd));
		return;
	}
	if ((c->reply.actions & act) == 0) {
		child_fail(c, "modification '%c' without negotiating action 0x%x", r.code, act);
		return;
	}
	if (reported)
		c->ops->on_modification(c, &r, c->arg);
}

/* ------------------------------------------------------------ mh_conn glue */

static void on_connected(struct mh_conn *conn, void *arg)
{
	struct mh_child *c = arg;
	c->state = CHILD_NEGOTIATING;
	c->last_sent = MH_CMD_OPTNEG;
	mh_codec_put_optneg(mh_conn_out(conn), &c->offer);
	mh_conn_flush(conn);
	arm(c);
}

static void on_packet(struct mh_conn *conn, const struct mh_packet *p, void *arg)
{
	struct mh_child *c = arg;
	enter(c);
	if (c->state == CHILD_NEGOTIATING)
		on_negotiation_reply(c, p);
	else if (c->state == CHILD_READY)
		on_reply(c, p);
	leave(c);
}

/* What the link was doing, for a failure's reason. */
static void describe_wait(const struct mh_child *c, char *buf, size_t len)
{
	if (c->writing)
		snprintf(buf, len, "writing %s", mh_cmd_name(c->last_sent));
	else if (c->state == CHILD_NEGOTIATING)
		snprintf(buf, len, "waiting for reply to OPTNEG");
	else if (c->nexpect > 0)
		snprintf(buf, len, "waiting for reply to %s", mh_cmd_name(c->expect[0]));
	else
		snprintf(buf, len, "idle");
}

static void on_close(struct mh_conn *conn, enum mh_conn_why why, void *arg)
{
	struct mh_child *c = arg;
	char doing[64];
	int err = mh_conn_last_error(conn);

	enter(c);
	c->conn = NULL; /* gone when this returns */
	describe_wait(c, doing, sizeof(doing));
	switch (why) {
	case MH_CONN_TIMEOUT:
		child_fail(c, "timeout %s", doing);
		break;
	case MH_CONN_EOF:
		child_fail(c, "closed the connection (%s)", doing);
		break;
	case MH_CONN_IOERR:
		child_fail(c, "%s (%s)", err != 0 ? strerror(err) : "connection lost mid-packet",
		           doing);
		break;
	case MH_CONN_PROTOCOL:
		child_fail(c, "malformed packet: %s (%s)", mh_codec_strerror(err), doing);
		break;
	case MH_CONN_CONNECT:
		child_fail(c, "connect to %s failed: %s", c->conf->socket_text,
		           err != 0 ? strerror(err) : "?");
		break;
	}
	leave(c);
}

static const struct mh_conn_ops child_conn_ops = {
    .on_connected = on_connected,
    .on_packet = on_packet,
    .on_close = on_close,
};

/* ------------------------------------------------------------ public */

struct mh_child *mh_child_new(struct ev_loop *loop, const struct mh_child_conf *conf,
                              const struct mh_optneg *offer, uint64_t session_id,
                              const struct mh_child_ops *ops, void *arg, char *err, size_t errlen)
{
	char cerr[160];

	if (conf->kind == MH_CHILD_POLICY) {
		struct mh_child *pc = mh_xcalloc(1, sizeof(*pc));
		pc->conf = conf;
		pc->pol = mh_child_policy_new(pc, loop, conf, offer, session_id, ops, arg);
		return pc;
	}
	struct mh_child *c = mh_xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->conf = conf;
	c->offer = *offer;
	memset(c->offer.macros, 0, sizeof(c->offer.macros)); /* an MTA sends no trailer */
	c->sid = session_id;
	c->ops = ops;
	c->arg = arg;
	c->state = CHILD_CONNECTING;
	ev_prepare_init(&c->drain, on_drain_check);
	ev_timer_init(&c->later, on_later, 0., 0.);
	c->drain.data = c->later.data = c;
	c->conn = mh_conn_connect(loop, &conf->sock, conf->connect_timeout, CHILD_MAX_PAYLOAD,
	                          &child_conn_ops, c, cerr, sizeof(cerr));
	if (c->conn == NULL) {
		/* Unreachable counts as failed, reported from the loop (design §2.5). */
		fail_later(c, "connect to %s failed: %s", conf->socket_text, cerr);
	}
	return c;
}

int mh_child_takes(const struct mh_child *c, uint8_t code)
{
	if (c->pol != NULL)
		return mh_child_policy_takes(c->pol, code);
	if (c->state != CHILD_READY)
		return 0;
	uint32_t p = c->reply.protocol;
	switch (code) {
	case MH_CMD_CONNECT:
		return !(p & MH_PROTO_NOCONNECT);
	case MH_CMD_HELO:
		return !(p & MH_PROTO_NOHELO);
	case MH_CMD_MAIL:
		return !(p & MH_PROTO_NOMAIL);
	case MH_CMD_RCPT:
		return !(p & MH_PROTO_NORCPT);
	case MH_CMD_DATA:
		return c->reply.version >= 4 && !(p & MH_PROTO_NODATA);
	case MH_CMD_HEADER:
		return !(p & MH_PROTO_NOHDRS);
	case MH_CMD_EOH:
		return !(p & MH_PROTO_NOEOH);
	case MH_CMD_BODY:
		return !(p & MH_PROTO_NOBODY);
	case MH_CMD_UNKNOWN:
		return c->reply.version >= 3 && !(p & MH_PROTO_NOUNKNOWN);
	case MH_CMD_EOB:
		return 1;
	}
	return 0;
}

/* Does the child answer this event (no NR* bit)? */
static int child_replies(const struct mh_child *c, uint8_t code)
{
	return !(c->reply.protocol & mh_cmd_nr_bit(code)); /* 'E' is always answered */
}

/* SMFIM list that goes before cmd, or -1 when no 'D' precedes it. */
static int macro_stage(uint8_t cmd)
{
	switch (cmd) {
	case MH_CMD_HEADER:
		return MH_STAGE_EOH; /* Postfix: the EOH list before each header */
	case MH_CMD_BODY:
		return MH_STAGE_EOM; /* and the EOM list before each chunk */
	case MH_CMD_UNKNOWN:
		return -1;
	}
	return mh_macro_stage_of_cmd(cmd);
}

static int list_has(const struct child_list *l, const char *name)
{
	size_t len;

	name = mh_macro_bare(name, &len);
	for (size_t i = 0; i < l->n; i++)
		if (l->names[i].len == len && memcmp(l->names[i].p, name, len) == 0)
			return 1;
	return 0;
}

static int also_has(const struct mh_child *c, const char *name)
{
	for (size_t i = 0; i < c->nalso; i++)
		if (mh_macro_name_eq(c->also[i], name))
			return 1;
	return 0;
}

void mh_child_forward_macros(struct mh_child *c, char *const lists[MH_STAGE_COUNT])
{
	if (c->pol != NULL)
		return; /* it sees every pair (the request wants them) */
	for (int s = 0; s < MH_STAGE_COUNT; s++) {
		list_free(&c->fwd[s]);
		if (lists[s] != NULL)
			list_set(&c->fwd[s], lists[s]);
	}
}

void mh_child_forward_also(struct mh_child *c, const char *name)
{
	if (c->pol != NULL)
		return;
	if (also_has(c, name))
		return;
	c->also = mh_xrealloc(c->also, (c->nalso + 1) * sizeof(*c->also));
	c->also[c->nalso++] = mh_xstrdup(name);
}

/* Select the pairs the child is to get into out; returns their number. */
static size_t filter_pairs(const struct mh_child *c, int stage, const char *const *pairs,
                           size_t npairs, const char **out)
{
	const struct child_list *l = &c->fwd[stage];
	size_t n = 0;
	for (size_t i = 0; i < npairs && n < CHILD_MAX_PAIRS; i++) {
		if (l->n > 0 && !list_has(l, pairs[2 * i]) && !also_has(c, pairs[2 * i]))
			continue;
		out[2 * n] = pairs[2 * i];
		out[2 * n + 1] = pairs[2 * i + 1];
		n++;
	}
	return n;
}

enum mh_child_sent mh_child_send(struct mh_child *c, uint8_t code, const void *payload, size_t len,
                                 const char *const *macro_pairs, size_t npairs)
{
	if (c->pol != NULL)
		return mh_child_policy_send(c->pol, code, payload, len, macro_pairs, npairs);
	assert(!(c->nexpect > 0 && c->live)); /* one command waits at a time */
	if (c->state != CHILD_READY || c->conn == NULL || !mh_child_takes(c, code))
		return MH_CHILD_NOT_SENT;
	struct mh_buf *out = mh_conn_out(c->conn);
	int stage = macro_stage(code);
	if (stage >= 0) {
		const char *sel[2 * CHILD_MAX_PAIRS];
		size_t n = filter_pairs(c, stage, macro_pairs, npairs, sel);
		if (n > 0 || (code != MH_CMD_HEADER && code != MH_CMD_BODY))
			mh_codec_put_macro(out, code, sel, n);
	}
	mh_codec_put_raw(out, code, payload, len);
	c->last_sent = code;
	mh_conn_flush(c->conn);
	int wait = child_replies(c, code);
	if (wait) {
		if (c->nexpect == CHILD_EXPECT_MAX) {
			/* Replies owed for this many commands: it is not answering. */
			fail_later(c, "too many unanswered commands");
		} else {
			c->expect[c->nexpect++] = code;
			c->live = 1;
		}
	}
	arm(c);
	return wait ? MH_CHILD_WAIT : MH_CHILD_NOWAIT;
}

void mh_child_abort(struct mh_child *c)
{
	if (c->pol != NULL) {
		mh_child_policy_abort(c->pol);
		return;
	}
	if (c->state != CHILD_READY || c->conn == NULL)
		return;
	c->live = 0; /* its reply is still read, then dropped */
	mh_codec_put_empty(mh_conn_out(c->conn), MH_CMD_ABORT);
	c->last_sent = MH_CMD_ABORT;
	mh_conn_flush(c->conn);
	arm(c);
}

void mh_child_free(struct mh_child *c)
{
	if (c != NULL && c->pol != NULL) {
		mh_child_policy_free(c->pol); /* frees c too */
		return;
	}
	if (c == NULL || c->freed)
		return;
	child_close(c, 0);
	c->freed = 1;
	if (c->depth == 0)
		child_release(c);
}

void mh_child_quit(struct mh_child *c)
{
	if (c != NULL && c->pol != NULL) {
		mh_child_policy_free(c->pol);
		return;
	}
	if (c == NULL || c->freed)
		return;
	if (c->conn != NULL && c->state != CHILD_CONNECTING) {
		mh_codec_put_empty(mh_conn_out(c->conn), MH_CMD_QUIT);
		child_close(c, 1);
	}
	mh_child_free(c);
}

const struct mh_optneg *mh_child_negotiated(const struct mh_child *c)
{
	if (c->pol != NULL)
		return mh_child_policy_negotiated(c->pol);
	return &c->reply;
}

int mh_child_leadspc(const struct mh_child *c)
{
	if (c->pol != NULL)
		return 0;
	return (c->reply.protocol & MH_PROTO_HDR_LEADSPC) != 0;
}

int mh_child_dead(const struct mh_child *c)
{
	if (c->pol != NULL)
		return mh_child_policy_dead(c->pol);
	return c->state == CHILD_DEAD;
}

const struct mh_child_conf *mh_child_conf(const struct mh_child *c)
{
	return c->conf;
}

const char *mh_child_failure(const struct mh_child *c)
{
	if (c->pol != NULL)
		return mh_child_policy_failure(c->pol);
	return c->why;
}

void mh_child_rcpt_refused(struct mh_child *c)
{
	if (c->pol != NULL)
		mh_child_policy_rcpt_refused(c->pol);
}
