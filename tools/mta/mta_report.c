/*
 * mta_report - JSON report and readable summary of one session.
 *
 * Contract: mta_report.h; the JSON layout is docs/tools.md's. Header
 * values are shown with one leading space removed (as a milter without
 * HDR_LEADSPC sees them); modifications exactly as the milter sent them.
 */
#include "mta_report.h"

#include <string.h>

#include "util/mh_json.h"

/* Negotiation-trailer stages in protocol order (EOH before EOM). */
static const struct {
	int smfim;
	const char *name;
} macro_stages[] = {
    {MH_STAGE_CONNECT, "connect"}, {MH_STAGE_HELO, "helo"}, {MH_STAGE_MAIL, "mail"},
    {MH_STAGE_RCPT, "rcpt"},       {MH_STAGE_DATA, "data"}, {MH_STAGE_EOH, "eoh"},
    {MH_STAGE_EOM, "eom"},
};

static void json_kv_str(struct mh_json *j, const char *key, const char *value)
{
	mh_json_key(j, key);
	mh_json_str(j, value);
}

static void json_kv_int(struct mh_json *j, const char *key, int64_t value)
{
	mh_json_key(j, key);
	mh_json_int(j, value);
}

static void json_negotiation(struct mh_json *j, int negotiated, uint32_t version, uint32_t actions,
                             uint32_t protocol, char *const *macros)
{
	mh_json_key(j, "negotiated");
	if (!negotiated) {
		mh_json_null(j);
		return;
	}
	mh_json_obj_begin(j);
	json_kv_int(j, "version", version);
	json_kv_int(j, "actions", actions);
	json_kv_int(j, "protocol", protocol);
	mh_json_key(j, "macros");
	mh_json_obj_begin(j);
	for (size_t i = 0; i < sizeof(macro_stages) / sizeof(macro_stages[0]); i++)
		if (macros[macro_stages[i].smfim] != NULL)
			json_kv_str(j, macro_stages[i].name, macros[macro_stages[i].smfim]);
	mh_json_obj_end(j);
	mh_json_obj_end(j);
}

static void json_negotiated(struct mh_json *j, const struct mta_record *r)
{
	json_negotiation(j, r->negotiated, r->version, r->actions, r->protocol, r->macros);
}

/* Chain mode only: each milter's socket and negotiation, in chain order. */
static void json_milters(struct mh_json *j, const struct mta_record *r)
{
	if (r->nmilters < 2)
		return;
	mh_json_key(j, "milters");
	mh_json_arr_begin(j);
	for (size_t i = 0; i < r->nmilters; i++) {
		const struct mta_milter_rec *m = &r->milters[i];

		mh_json_obj_begin(j);
		json_kv_str(j, "socket", m->socket);
		json_negotiation(j, m->negotiated, m->version, m->actions, m->protocol, m->macros);
		mh_json_obj_end(j);
	}
	mh_json_arr_end(j);
}

static void json_stages(struct mh_json *j, const struct mta_record *r, size_t begin, size_t end)
{
	mh_json_key(j, "stages");
	mh_json_arr_begin(j);
	for (size_t i = begin; i < end; i++) {
		const struct mta_stage_rec *st = &r->stages[i];

		mh_json_obj_begin(j);
		json_kv_str(j, "stage", st->stage);
		if (st->arg != NULL)
			json_kv_str(j, "arg", st->arg);
		json_kv_str(j, "reply", mta_reply_name(st->reply));
		if (st->text != NULL)
			json_kv_str(j, "text", st->text);
		if (st->detail != NULL)
			json_kv_str(j, "detail", st->detail);
		if (st->progress > 0 || strcmp(st->stage, "eom") == 0)
			json_kv_int(j, "progress", st->progress);
		if (st->message > 0)
			json_kv_int(j, "message", st->message);
		if (st->milter > 0)
			json_kv_int(j, "milter", st->milter);
		mh_json_obj_end(j);
	}
	mh_json_arr_end(j);
}

static void json_mod(struct mh_json *j, const struct mta_mod_rec *mod)
{
	mh_json_obj_begin(j);
	json_kv_str(j, "op", mta_mod_name(mod->code));
	switch (mod->code) {
	case MH_REP_INSHEADER:
		json_kv_int(j, "index", mod->index);
		/* fall through */
	case MH_REP_ADDHEADER:
		json_kv_str(j, "name", mod->str1);
		json_kv_str(j, "value", mod->str2);
		break;
	case MH_REP_CHGHEADER:
		json_kv_str(j, "name", mod->str1);
		json_kv_int(j, "index", mod->index);
		json_kv_str(j, "value", mod->str2);
		break;
	case MH_REP_ADDRCPT:
	case MH_REP_ADDRCPT_PAR:
		json_kv_str(j, "rcpt", mod->str1);
		json_kv_str(j, "args", mod->str2);
		break;
	case MH_REP_DELRCPT:
		json_kv_str(j, "rcpt", mod->str1);
		break;
	case MH_REP_CHGFROM:
		json_kv_str(j, "addr", mod->str1);
		json_kv_str(j, "args", mod->str2);
		break;
	case MH_REP_REPLBODY:
		json_kv_int(j, "len", (int64_t)mod->len);
		break;
	case MH_REP_QUARANTINE:
		json_kv_str(j, "reason", mod->str1);
		break;
	}
	mh_json_obj_end(j);
}

/* The fields a message entry and the top level share. */
static void json_message_fields(struct mh_json *j, const struct mta_msg_rec *m)
{
	const struct mh_msg *msg = &m->msg;

	mh_json_key(j, "rcpts");
	mh_json_arr_begin(j);
	for (size_t i = 0; i < m->nrcpts; i++) {
		mh_json_obj_begin(j);
		json_kv_str(j, "rcpt", m->rcpts[i].rcpt);
		json_kv_str(j, "reply", mta_reply_name(m->rcpts[i].reply));
		json_kv_str(j, "text", m->rcpts[i].text);
		mh_json_obj_end(j);
	}
	mh_json_arr_end(j);
	mh_json_key(j, "modifications");
	mh_json_arr_begin(j);
	for (size_t i = 0; i < m->nmods; i++)
		json_mod(j, &m->mods[i]);
	mh_json_arr_end(j);
	json_kv_str(j, "sender", msg->sender);
	mh_json_key(j, "recipients");
	mh_json_arr_begin(j);
	for (size_t i = 0; i < msg->nrcpts; i++)
		mh_json_str(j, msg->rcpts[i].addr);
	mh_json_arr_end(j);
	mh_json_key(j, "headers");
	mh_json_arr_begin(j);
	for (size_t i = 0; i < msg->nhdrs; i++) {
		mh_json_arr_begin(j);
		mh_json_str(j, msg->hdrs[i].name);
		mh_json_str(j, mh_msg_value_for_milter(msg->hdrs[i].value, 0));
		mh_json_arr_end(j);
	}
	mh_json_arr_end(j);
	mh_json_key(j, "body");
	if (mh_buf_size(&msg->body) > 0)
		mh_json_strn(j, (const char *)mh_buf_head(&msg->body), mh_buf_size(&msg->body));
	else
		mh_json_str(j, "");
	json_kv_str(j, "quarantine", msg->quarantine);
}

void mta_report_json(const struct mta_record *r, struct mh_buf *out)
{
	struct mh_json j;
	const struct mta_msg_rec *last = &r->msgs[r->nmsgs - 1];

	mh_json_init(&j, out);
	mh_json_obj_begin(&j);
	json_kv_str(&j, "result", mta_result_name(r->result));
	json_kv_str(&j, "reply", last->reply);
	json_kv_str(&j, "error", r->error);
	json_negotiated(&j, r);
	json_milters(&j, r);
	json_stages(&j, r, 0, r->nstages);
	json_message_fields(&j, last);
	mh_json_key(&j, "messages");
	mh_json_arr_begin(&j);
	for (size_t k = 0; k < r->nmsgs; k++) {
		const struct mta_msg_rec *m = &r->msgs[k];

		mh_json_obj_begin(&j);
		json_kv_str(&j, "result", mta_result_name(m->result));
		json_kv_str(&j, "reply", m->reply);
		json_stages(&j, r, m->stage_begin, m->stage_end);
		json_message_fields(&j, m);
		mh_json_obj_end(&j);
	}
	mh_json_arr_end(&j);
	mh_json_obj_end(&j);
	mh_buf_append_byte(out, '\n');
}

/* ------------------------------------------------------------ summary */

/* Text with control characters shown as \r, \n, \t or \xNN. */
static void text_escaped(struct mh_buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\r')
			mh_buf_append_str(out, "\\r");
		else if (ch == '\n')
			mh_buf_append_str(out, "\\n");
		else if (ch == '\t')
			mh_buf_append_str(out, "\\t");
		else if (ch < ' ' || ch == 127)
			mh_buf_printf(out, "\\x%02x", ch);
		else
			mh_buf_append_byte(out, ch);
	}
}

static void text_stage(struct mh_buf *out, const struct mta_stage_rec *st, const char *indent)
{
	size_t start = out->len;

	mh_buf_printf(out, "%s", indent);
	if (st->milter > 0)
		mh_buf_printf(out, "[%u] ", st->milter);
	mh_buf_printf(out, "%s", st->stage);
	if (st->arg != NULL) {
		mh_buf_append_byte(out, ' ');
		text_escaped(out, st->arg, strlen(st->arg));
	}
	while (out->len - start < 36)
		mh_buf_append_byte(out, ' ');
	mh_buf_printf(out, " %s", mta_reply_name(st->reply));
	if (st->text != NULL)
		mh_buf_printf(out, " \"%s\"", st->text);
	if (st->progress > 0)
		mh_buf_printf(out, " (progress %u)", st->progress);
	if (st->detail != NULL)
		mh_buf_printf(out, " (%s)", st->detail);
	mh_buf_append_byte(out, '\n');
}

static void text_mod(struct mh_buf *out, const struct mta_mod_rec *mod)
{
	mh_buf_printf(out, "    %s", mta_mod_name(mod->code));
	if (mod->code == MH_REP_INSHEADER || mod->code == MH_REP_CHGHEADER)
		mh_buf_printf(out, " #%u", (unsigned)mod->index);
	if (mod->code == MH_REP_REPLBODY)
		mh_buf_printf(out, " %zu bytes", mod->len);
	if (mod->str1 != NULL) {
		mh_buf_append_byte(out, ' ');
		text_escaped(out, mod->str1, strlen(mod->str1));
	}
	if (mod->str2 != NULL) {
		int header = mod->code == MH_REP_ADDHEADER || mod->code == MH_REP_INSHEADER ||
		             mod->code == MH_REP_CHGHEADER;

		mh_buf_append_str(out, header ? ": " : " ");
		text_escaped(out, mod->str2, strlen(mod->str2));
	}
	mh_buf_append_byte(out, '\n');
}

static void text_message(struct mh_buf *out, const struct mta_record *r, size_t k)
{
	const struct mta_msg_rec *m = &r->msgs[k];
	const struct mh_msg *msg = &m->msg;
	size_t blen = mh_buf_size(&msg->body);

	mh_buf_printf(out, "message %zu: %s", k + 1, mta_result_name(m->result));
	if (m->reply != NULL)
		mh_buf_printf(out, " \"%s\"", m->reply);
	mh_buf_append_byte(out, '\n');
	for (size_t i = m->stage_begin; i < m->stage_end; i++)
		text_stage(out, &r->stages[i], "  ");
	if (m->nmods > 0) {
		mh_buf_append_str(out, "  modifications:\n");
		for (size_t i = 0; i < m->nmods; i++)
			text_mod(out, &m->mods[i]);
	}
	mh_buf_printf(out, "  sender: %s\n  recipients:", msg->sender ? msg->sender : "(none)");
	for (size_t i = 0; i < msg->nrcpts; i++)
		mh_buf_printf(out, " %s", msg->rcpts[i].addr);
	mh_buf_append_str(out, msg->nrcpts ? "\n" : " (none)\n");
	if (msg->quarantine != NULL)
		mh_buf_printf(out, "  quarantine: %s\n", msg->quarantine);
	mh_buf_append_str(out, "  headers:\n");
	for (size_t i = 0; i < msg->nhdrs; i++) {
		const char *v = mh_msg_value_for_milter(msg->hdrs[i].value, 0);

		mh_buf_printf(out, "    %s: ", msg->hdrs[i].name);
		text_escaped(out, v, strlen(v));
		mh_buf_append_str(out, msg->hdrs[i].hidden ? "   (MTA's own, not shown)\n" : "\n");
	}
	mh_buf_printf(out, "  body (%zu bytes)", blen);
	if (blen > 0 && blen <= 512) {
		mh_buf_append_str(out, ": ");
		text_escaped(out, (const char *)mh_buf_head(&msg->body), blen);
	}
	mh_buf_append_byte(out, '\n');
}

void mta_report_text(const struct mta_record *r, const struct mta_config *cfg, struct mh_buf *out)
{
	for (size_t i = 0; i < cfg->nsocks; i++) {
		mh_buf_append_str(out, "milter ");
		if (cfg->nsocks > 1)
			mh_buf_printf(out, "[%zu] ", i + 1);
		mh_buf_printf(out, "%s (%s flavour)\n", cfg->socks[i].text,
		              cfg->flavour == MTA_SENDMAIL ? "Sendmail" : "Postfix");
	}
	if (r->negotiated) {
		mh_buf_printf(out, "negotiated: version %u, actions 0x%x, protocol 0x%x\n",
		              (unsigned)r->version, (unsigned)r->actions, (unsigned)r->protocol);
		for (size_t i = 0; i < sizeof(macro_stages) / sizeof(macro_stages[0]); i++)
			if (r->macros[macro_stages[i].smfim] != NULL)
				mh_buf_printf(out, "  macros %s: %s\n", macro_stages[i].name,
				              r->macros[macro_stages[i].smfim]);
	}
	for (size_t i = 0; i < r->nstages; i++)
		if (r->stages[i].message == 0) /* connect, helo, unknown */
			text_stage(out, &r->stages[i], "");
	for (size_t k = 0; k < r->nmsgs; k++)
		text_message(out, r, k);
	mh_buf_printf(out, "result: %s", mta_result_name(r->result));
	if (r->error != NULL)
		mh_buf_printf(out, " (%s)", r->error);
	mh_buf_append_byte(out, '\n');
}
