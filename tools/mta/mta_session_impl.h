/*
 * mta_session_impl - the session's state, shared by the two halves of the
 * session module only: mta_session.c (life cycle, replies, decisions)
 * and mta_steps.c (what the MTA sends next). Not an interface: nothing
 * else includes this.
 */
#ifndef MTA_SESSION_IMPL_H
#define MTA_SESSION_IMPL_H

#include <stdlib.h>

#include "mta_macros.h"
#include "mta_session.h"
#include "net/mh_conn.h"

enum mta_phase {
	PH_CONNECTING,
	PH_OPTNEG,
	PH_CONNECT,
	PH_HELO,
	PH_UNKNOWN,
	PH_MAIL,
	PH_RCPT,
	PH_DATA,
	PH_HEADER,
	PH_EOH,
	PH_BODY,
	PH_EOM,
	PH_MSG_END,
	PH_QUIT,
	PH_DONE,
};

struct mta_session {
	struct ev_loop *loop;
	const struct mta_config *cfg;
	unsigned long id;
	mta_session_done_fn done;
	void *done_arg;
	struct mh_conn *conn; /* NULL once closed */
	ev_timer later; /* reports a connect that failed at once, from the loop */
	struct mta_record rec;
	struct mta_macro_lists lists;
	struct mta_macro_values vals;
	uint32_t version, protocol; /* negotiated */
	enum mta_phase phase;
	uint8_t awaiting; /* command whose answer is awaited; 0 = none */
	size_t stage; /* the awaited command's rec.stages index */
	unsigned msgno; /* current message, 1-based */
	struct mta_msg_rec *msg;
	size_t pos; /* recipient index, header index or body offset */
	size_t naccepted; /* recipients accepted in this message */
	enum mta_result refusal;
	char *refusal_text;
	int open_txn; /* Sendmail: message ended without a decision */
	int hangup; /* 421: no further messages */
	int conn_accepted; /* accept at connect/helo */
	char *conn_text; /* 'y' text of a connection-level refusal */
	char qid[16];
	char *mail_bare, *rcpt_bare;
};

static inline struct mh_buf *mta_out(struct mta_session *s)
{
	return mh_conn_out(s->conn);
}

static inline int mta_proto(const struct mta_session *s, uint32_t bit)
{
	return (s->protocol & bit) != 0;
}

static inline void mta_set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? mh_xstrdup(src) : NULL;
}

/* mta_steps.c: send what comes next in the current phase (see run()). */
void mta_step(struct mta_session *s);
/* mta_steps.c: the message got its decision; next phase PH_MSG_END. */
void mta_end_message(struct mta_session *s, enum mta_result result, const char *text);
void mta_accept_rcpt(struct mta_session *s, const char *rcpt, enum mta_reply reply);
/* mta_session.c: end the connection on purpose, with 'Q' or without. */
void mta_hang_up(struct mta_session *s, int quit);

#endif
