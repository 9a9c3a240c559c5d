/*
 * mta_record - the transcript of one simulated session.
 *
 * Contract: mta_record.h. Plain bookkeeping: copies in, frees out.
 */
#include "mta_record.h"

#include <stdlib.h>
#include <string.h>

#include "util/mh_buf.h"

const char *mta_reply_name(enum mta_reply r)
{
	static const char *const names[] = {
	    [MTA_REPLY_CONTINUE] = "continue", [MTA_REPLY_ACCEPT] = "accept",
	    [MTA_REPLY_REJECT] = "reject",     [MTA_REPLY_TEMPFAIL] = "tempfail",
	    [MTA_REPLY_DISCARD] = "discard",   [MTA_REPLY_SKIP] = "skip",
	    [MTA_REPLY_SHUTDOWN] = "shutdown", [MTA_REPLY_NONE] = "none",
	    [MTA_REPLY_ERROR] = "error",
	};
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

const char *mta_result_name(enum mta_result r)
{
	static const char *const names[] = {
	    [MTA_RESULT_ACCEPT] = "accept",     [MTA_RESULT_REJECT] = "reject",
	    [MTA_RESULT_TEMPFAIL] = "tempfail", [MTA_RESULT_DISCARD] = "discard",
	    [MTA_RESULT_SHUTDOWN] = "shutdown", [MTA_RESULT_ERROR] = "error",
	    [MTA_RESULT_NOT_SENT] = "not-sent",
	};
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

const char *mta_mod_name(uint8_t code)
{
	switch (code) {
	case MH_REP_ADDHEADER:
		return "add-header";
	case MH_REP_INSHEADER:
		return "ins-header";
	case MH_REP_CHGHEADER:
		return "chg-header";
	case MH_REP_ADDRCPT:
	case MH_REP_ADDRCPT_PAR:
		return "add-rcpt";
	case MH_REP_DELRCPT:
		return "del-rcpt";
	case MH_REP_CHGFROM:
		return "chg-from";
	case MH_REP_REPLBODY:
		return "repl-body";
	case MH_REP_QUARANTINE:
		return "quarantine";
	}
	return "?";
}

static char *dup_or_null(const char *s)
{
	return s ? mh_xstrdup(s) : NULL;
}

void mta_record_init(struct mta_record *r, size_t nmsgs, size_t nmilters)
{
	memset(r, 0, sizeof(*r));
	r->nmilters = nmilters;
	r->milters = mh_xcalloc(nmilters, sizeof(*r->milters));
	r->nmsgs = nmsgs;
	r->msgs = mh_xcalloc(nmsgs, sizeof(*r->msgs));
	for (size_t i = 0; i < nmsgs; i++) {
		r->msgs[i].result = MTA_RESULT_NOT_SENT;
		mh_msg_init(&r->msgs[i].msg);
	}
	r->result = MTA_RESULT_NOT_SENT;
}

static void msg_rec_free(struct mta_msg_rec *m)
{
	free(m->reply);
	for (size_t i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].rcpt);
		free(m->rcpts[i].text);
	}
	free(m->rcpts);
	for (size_t i = 0; i < m->nmods; i++) {
		free(m->mods[i].str1);
		free(m->mods[i].str2);
	}
	free(m->mods);
	mh_msg_free(&m->msg);
}

void mta_record_free(struct mta_record *r)
{
	for (int s = 0; s < MH_STAGE_COUNT; s++)
		free(r->macros[s]);
	for (size_t i = 0; i < r->nstages; i++) {
		free(r->stages[i].arg);
		free(r->stages[i].text);
		free(r->stages[i].detail);
	}
	free(r->stages);
	for (size_t i = 0; i < r->nmsgs; i++)
		msg_rec_free(&r->msgs[i]);
	free(r->msgs);
	free(r->error);
	for (size_t i = 0; i < r->nmilters; i++) {
		free(r->milters[i].socket);
		for (int s = 0; s < MH_STAGE_COUNT; s++)
			free(r->milters[i].macros[s]);
	}
	free(r->milters);
	memset(r, 0, sizeof(*r));
}

size_t mta_record_stage(struct mta_record *r, const char *stage, const char *arg, unsigned message)
{
	struct mta_stage_rec *st;

	if (r->nstages == r->stages_cap) {
		r->stages_cap = r->stages_cap ? 2 * r->stages_cap : 16;
		r->stages = mh_xrealloc(r->stages, r->stages_cap * sizeof(*r->stages));
	}
	st = &r->stages[r->nstages];
	memset(st, 0, sizeof(*st));
	st->stage = stage;
	st->arg = dup_or_null(arg);
	st->reply = MTA_REPLY_NONE;
	st->message = message;
	return r->nstages++;
}

void mta_record_stage_text(struct mta_record *r, size_t stage, const char *text)
{
	free(r->stages[stage].text);
	r->stages[stage].text = dup_or_null(text);
}

void mta_record_stage_detail(struct mta_record *r, size_t stage, const char *detail)
{
	free(r->stages[stage].detail);
	r->stages[stage].detail = dup_or_null(detail);
}

void mta_record_rcpt(struct mta_msg_rec *m, const char *rcpt, enum mta_reply reply,
                     const char *text)
{
	m->rcpts = mh_xrealloc(m->rcpts, (m->nrcpts + 1) * sizeof(*m->rcpts));
	m->rcpts[m->nrcpts].rcpt = mh_xstrdup(rcpt);
	m->rcpts[m->nrcpts].reply = reply;
	m->rcpts[m->nrcpts].text = dup_or_null(text);
	m->nrcpts++;
}

void mta_record_mod(struct mta_msg_rec *m, const struct mh_reply *rep)
{
	struct mta_mod_rec *mod;

	m->mods = mh_xrealloc(m->mods, (m->nmods + 1) * sizeof(*m->mods));
	mod = &m->mods[m->nmods++];
	memset(mod, 0, sizeof(*mod));
	mod->code = rep->code;
	switch (rep->code) {
	case MH_REP_ADDHEADER:
	case MH_REP_INSHEADER:
	case MH_REP_CHGHEADER:
		mod->index = rep->u.header.index;
		mod->str1 = mh_xstrdup(rep->u.header.name);
		mod->str2 = mh_xstrdup(rep->u.header.value);
		break;
	case MH_REP_ADDRCPT:
	case MH_REP_ADDRCPT_PAR:
	case MH_REP_DELRCPT:
		mod->str1 = mh_xstrdup(rep->u.rcpt.rcpt);
		mod->str2 = dup_or_null(rep->u.rcpt.args);
		break;
	case MH_REP_CHGFROM:
		mod->str1 = mh_xstrdup(rep->u.chgfrom.addr);
		mod->str2 = dup_or_null(rep->u.chgfrom.args);
		break;
	case MH_REP_REPLBODY:
		mod->len = rep->u.replbody.len;
		break;
	case MH_REP_QUARANTINE:
		mod->str1 = mh_xstrdup(rep->u.quarantine.reason);
		break;
	}
}

void mta_record_error(struct mta_record *r, const char *error)
{
	if (r->error == NULL)
		r->error = mh_xstrdup(error);
}
