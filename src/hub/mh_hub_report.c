/*
 * NAME
 *	mh_hub_report 3
 * SUMMARY
 *	what the hub reports: the statistics hooks (design §5, issue 6) and
 *	the reference milter manager's statistics log lines
 * DESCRIPTION
 *	The daemon's counters hear through conf->hooks: a child's answer
 *	and latency (mh_hub.c), a fallback standing in for a child
 *	(hub_child_failed: the link's failure text as a reason), each
 *	decision sent to the MTA and the end of each message
 *	(hub_count_reply, hub_message_end: a message whose every recipient
 *	was refused ended refused, not aborted).
 *
 *	The log lines, at the statistics log level:
 *   [milter][end][<state>][<status>][<elapsed>](<id>): <name>
 *	once per child per SMTP session, when it is done with the session
 *	(retired, failed, or the session ended). state: the last command it
 *	got (hub_state_name: negotiate, connect, ..., end-of-message);
 *	status: its own last answer (an evaluation child's real one), or the
 *	fallback that stood in for it when it failed or timed out, as
 *	stats_status() names it; "stop" when the session ended while it was
 *	still working on it (child_stopped()). elapsed: seconds since its
 *	link started.
 *   [session][end][<state>][<status>][<elapsed>](<id>)
 *	once per SMTP session (at the end of the connection, and at 'K').
 *	state: the MTA's last command, QUIT and an ABORT between
 *	transactions aside ("start" when none);
 *	status: the session's result (s->result) named the same way, "stop"
 *	when the connection ended while the MTA waited for an answer.
 *	elapsed: seconds since the session started.
 *   [session][disconnected][<elapsed>](<id>)
 *	the MTA closed the connection (EOF or I/O error) without QUIT.
 *   [sessions][finished] <total>(+<delta>) <processing>
 *	(no session id) after SMTP sessions ended, at most one line per
 *	loop iteration: total [session][end] lines of this hub so far,
 *	delta since the previous such line, and the MTA connections in
 *	progress. One hub per worker process: the counts are per worker.
 *   [milter][header][add](<id>): <name>=<value>: <child>  (mh_hub_mods.c)
 *	Every elapsed is printed with %g, as the reference does.
 */
#include "hub/mh_hub.h"

#include <stdlib.h>
#include <string.h>

#include "hub/mh_hub_session.h"
#include "util/mh_log.h"

/* ---- names and reasons ---- */

const char *mh_hub_stage_name(enum mh_hub_stage st)
{
	static const char *const names[MH_HS_COUNT] = {
	    "negotiate", "connect", "helo",          "envelope-from", "envelope-recipient", "data",
	    "unknown",   "header",  "end-of-header", "body",          "end-of-message"};
	return (unsigned)st < MH_HS_COUNT ? names[st] : "invalid";
}

enum mh_hub_stage mh_hub_stage_of(uint8_t cmd)
{
	switch (cmd) {
	case 'O':
		return MH_HS_NEGOTIATE;
	case 'C':
		return MH_HS_CONNECT;
	case 'H':
		return MH_HS_HELO;
	case 'M':
		return MH_HS_MAIL;
	case 'R':
		return MH_HS_RCPT;
	case 'T':
		return MH_HS_DATA;
	case 'U':
		return MH_HS_UNKNOWN;
	case 'L':
		return MH_HS_HEADER;
	case 'N':
		return MH_HS_EOH;
	case 'B':
		return MH_HS_BODY;
	case 'E':
		return MH_HS_EOM;
	default:
		return MH_HS_COUNT;
	}
}

const char *mh_hub_fail_name(enum mh_hub_fail f)
{
	static const char *const names[MH_FAIL_COUNT] = {"timeout", "closed", "malformed", "down",
	                                                 "other"};
	return (unsigned)f < MH_FAIL_COUNT ? names[f] : "invalid";
}

const char *mh_hub_result_name(enum mh_hub_result r)
{
	static const char *const names[MH_RES_COUNT] = {
	    "accept", "reject", "tempfail", "discard", "quarantine", "abort", "pass"};
	return (unsigned)r < MH_RES_COUNT ? names[r] : "invalid";
}

/* The link's failure text, as a statistics reason. */
static enum mh_hub_fail fail_of(const char *why)
{
	if (why == NULL)
		return MH_FAIL_OTHER;
	if (strncmp(why, "timeout", 7) == 0)
		return MH_FAIL_TIMEOUT;
	if (strncmp(why, "malformed", 9) == 0 || strncmp(why, "unexpected", 10) == 0)
		return MH_FAIL_MALFORMED;
	if (strncmp(why, "closed", 6) == 0 || strncmp(why, "connect", 7) == 0)
		return MH_FAIL_CLOSED;
	return MH_FAIL_OTHER;
}

void hub_message_end(struct hub_session *s, enum mh_hub_result r)
{
	const struct mh_hub_hooks *hk = s->hub->conf->hooks;

	if (!s->msg_open)
		return;
	s->msg_open = 0;
	if (r == MH_RES_ABORT && s->n_rcpt_ok == 0 && s->n_rcpt_rejected + s->n_rcpt_tempfailed > 0)
		r = s->n_rcpt_rejected > 0 ? MH_RES_REJECT : MH_RES_TEMPFAIL;
	if (hk != NULL && hk->message != NULL)
		hk->message(hk->arg, r);
}

/* ---- statistics log lines (see the top of this file) ---- */

/*
 * The reference's status names: accept, reject, temporary-failure,
 * discard; "pass" for an implicit pass (continue, skip, no answer).
 */
static const char *stats_status(enum mh_status st)
{
	switch (st) {
	case MH_ST_ACCEPT:
		return "accept";
	case MH_ST_REJECT:
		return "reject";
	case MH_ST_TEMPFAIL:
		return "temporary-failure";
	case MH_ST_DISCARD:
		return "discard";
	default:
		return "pass";
	}
}

/*
 * At the end of a session ('K', the connection closed for any reason,
 * the hub freed): was k still working on it? Yes when an answer of
 * its was outstanding, or when it was in a transaction the session
 * left open (no end-of-message answer, no ABORT) and had not finished
 * its part of the message. Such a child's line says "stop".
 */
static int child_stopped(const struct hub_child *k)
{
	const struct hub_txn *t = k->s->txn;

	if (k->logged || k->link == NULL)
		return 0;
	return k->waiting || (k->in_txn && !k->msg_done && t != NULL && !t->ended);
}

static void child_log_end(struct hub_child *k, const char *status)
{
	if (k->logged)
		return;
	k->logged = 1;
	mh_statistics(k->s->id, "[milter][end][%s][%s][%g](%llu): %s", hub_state_name(k->state),
	              status, ev_now(k->s->hub->loop) - k->start, (unsigned long long)k->s->id,
	              k->conf->name);
}

void hub_child_log_end(struct hub_child *k)
{
	/* An answer outstanding while the session closes: it was stopped. */
	child_log_end(k,
	              k->waiting && k->s->closing ? "stop" : stats_status((enum mh_status)k->last));
}

/* Before the children of an ending session are dropped (see child_stopped). */
void hub_log_stopped_children(struct hub_session *s)
{
	for (size_t i = 0; i < s->nkids; i++)
		if (child_stopped(&s->kids[i]))
			child_log_end(&s->kids[i], "stop");
}

void hub_sessions_finished_flush(struct mh_hub *h)
{
	if (h->finished == h->finished_logged)
		return;
	mh_statistics(0, "[sessions][finished] %llu(+%llu) %zu", (unsigned long long)h->finished,
	              (unsigned long long)(h->finished - h->finished_logged), h->nsessions);
	h->finished_logged = h->finished;
}

/* Once per loop iteration in which sessions ended, before the loop blocks. */
void hub_on_sessions_finished(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct mh_hub *h = w->data;

	(void)revents;
	ev_prepare_stop(loop, w);
	hub_sessions_finished_flush(h);
}

/* The [session][end] line of the SMTP session ending now; counts it. */
void hub_session_log_end(struct hub_session *s)
{
	struct mh_hub *h = s->hub;
	/* The MTA was waiting for an answer: the hub's processing was cut short. */
	int stopped = s->phase != HUB_IDLE && s->phase != HUB_RESTART;

	mh_statistics(s->id, "[session][end][%s][%s][%g](%llu)", hub_state_name(s->last_cmd),
	              stopped ? "stop" : stats_status((enum mh_status)s->result),
	              ev_now(h->loop) - s->start, (unsigned long long)s->id);
	h->finished++;
	if (!ev_is_active(&h->finished_w))
		ev_prepare_start(h->loop, &h->finished_w);
}

/*
 * Statistics for a decision sent to the MTA: per stage, and the end of
 * the message it settles (design §2.2: MAIL/DATA refused end it; a
 * discarded recipient discards it; end-of-message ends it).
 */
void hub_count_reply(struct hub_session *s, enum mh_status st)
{
	const struct mh_hub_hooks *hk = s->hub->conf->hooks;
	enum mh_hub_stage stage = mh_hub_stage_of(s->cmd);

	/* Children that count recipients (policy) learn which ones the MTA refused. */
	if (s->cmd == 'R' && (st == MH_ST_REJECT || st == MH_ST_TEMPFAIL))
		for (size_t i = 0; i < s->nkids; i++)
			if (s->kids[i].link != NULL)
				mh_child_rcpt_refused(s->kids[i].link);
	if (hk == NULL)
		return;
	if (hk->mta_reply != NULL && stage != MH_HS_COUNT)
		hk->mta_reply(hk->arg, stage, st);
	if (!s->msg_open)
		return;
	if (s->cmd == 'R' && st == MH_ST_REJECT)
		s->n_rcpt_rejected++;
	else if (s->cmd == 'R' && st == MH_ST_TEMPFAIL)
		s->n_rcpt_tempfailed++;
	else if (s->cmd == 'R' && st != MH_ST_DISCARD)
		s->n_rcpt_ok++;
	if (st == MH_ST_DISCARD)
		hub_message_end(s, MH_RES_DISCARD);
	else if (s->cmd == 'E' || s->cmd == 'M' || s->cmd == 'T') {
		if (st == MH_ST_REJECT)
			hub_message_end(s, MH_RES_REJECT);
		else if (st == MH_ST_TEMPFAIL)
			hub_message_end(s, MH_RES_TEMPFAIL);
		else if (s->cmd == 'E' && s->txn != NULL && s->txn->quarantine != NULL)
			hub_message_end(s, MH_RES_QUARANTINE);
		else if (s->cmd == 'E')
			hub_message_end(s, st == MH_ST_ACCEPT ? MH_RES_ACCEPT : MH_RES_PASS);
	}
}

void hub_child_failed(struct hub_child *k, const char *why, enum mh_hub_fail fail)
{
	const struct mh_hub_conf *conf = k->s->hub->conf;
	enum mh_hub_stage st = mh_hub_stage_of(k->state);

	if (conf->hooks != NULL && conf->hooks->child_failed != NULL)
		conf->hooks->child_failed(conf->hooks->arg, (size_t)(k->conf - conf->children),
		                          st == MH_HS_COUNT ? MH_HS_NEGOTIATE : st,
		                          why != NULL ? fail_of(why) : fail);
}
