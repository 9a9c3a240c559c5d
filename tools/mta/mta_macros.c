/*
 * mta_macros - macro lists and values of the simulated MTA.
 *
 * Contract: mta_macros.h. Default lists: protocol doc §5.1 (Postfix's
 * main.cf defaults, Sendmail's cf defaults); values: docs/tools.md. Both
 * flavours share one value table; Sendmail's `v` names Sendmail, and the
 * Sendmail-only {if_name}, {if_addr} and {msg_id} have values only there.
 */
#include "mta_macros.h"

#include <stdlib.h>
#include <string.h>

#define MTA_HOSTNAME "mta.example.org"
#define MTA_ADDR "127.0.0.1"
#define DEFAULT_LIST_MAX 9

static const char *const postfix_lists[MTA_M_COUNT][DEFAULT_LIST_MAX] = {
    [MTA_M_CONNECT] = {"j", "{daemon_name}", "{daemon_addr}", "v", "_"},
    [MTA_M_HELO] = {"{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}",
                    "{cert_issuer}"},
    [MTA_M_MAIL] = {"i", "{auth_type}", "{auth_authen}", "{auth_author}", "{mail_addr}",
                    "{mail_host}", "{mail_mailer}"},
    [MTA_M_RCPT] = {"i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"},
    [MTA_M_DATA] = {"i"},
    [MTA_M_EOH] = {"i"},
    [MTA_M_EOM] = {"i"},
    [MTA_M_UNKNOWN] = {NULL},
};

static const char *const sendmail_lists[MTA_M_COUNT][DEFAULT_LIST_MAX] = {
    [MTA_M_CONNECT] = {"j", "_", "{daemon_name}", "{if_name}", "{if_addr}"},
    [MTA_M_HELO] = {"{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}",
                    "{cert_issuer}"},
    [MTA_M_MAIL] = {"i", "{auth_type}", "{auth_authen}", "{auth_ssf}", "{auth_author}",
                    "{mail_mailer}", "{mail_host}", "{mail_addr}"},
    [MTA_M_RCPT] = {"{rcpt_mailer}", "{rcpt_host}", "{rcpt_addr}"},
    [MTA_M_DATA] = {NULL},
    [MTA_M_EOH] = {NULL},
    [MTA_M_EOM] = {"{msg_id}"},
    [MTA_M_UNKNOWN] = {NULL},
};

/* SMFIM stage number (trailer order, EOM before EOH) to our stage. */
static const enum mta_mstage smfim_to_mstage[MH_STAGE_COUNT] = {
    [MH_STAGE_CONNECT] = MTA_M_CONNECT, [MH_STAGE_HELO] = MTA_M_HELO, [MH_STAGE_MAIL] = MTA_M_MAIL,
    [MH_STAGE_RCPT] = MTA_M_RCPT,       [MH_STAGE_DATA] = MTA_M_DATA, [MH_STAGE_EOM] = MTA_M_EOM,
    [MH_STAGE_EOH] = MTA_M_EOH,
};

void mta_macro_lists_init(struct mta_macro_lists *l, const struct mh_optneg *reply)
{
	memset(l, 0, sizeof(*l));
	for (int s = 0; s < MH_STAGE_COUNT; s++) {
		enum mta_mstage ms = smfim_to_mstage[s];
		char *p;

		if (reply == NULL || reply->macros[s] == NULL)
			continue;
		/* Sendmail and Postfix split the list at spaces and commas. */
		l->storage[ms] = p = mh_xstrdup(reply->macros[s]);
		for (char *tok = strtok(p, " ,\t"); tok != NULL; tok = strtok(NULL, " ,\t"))
			if (l->count[ms] < MTA_MACRO_PAIRS_MAX)
				l->names[ms][l->count[ms]++] = tok;
	}
}

void mta_macro_lists_free(struct mta_macro_lists *l)
{
	for (int s = 0; s < MTA_M_COUNT; s++)
		free(l->storage[s]);
	memset(l, 0, sizeof(*l));
}

/* The stage whose list goes before cmd, or -1 when no 'D' precedes it. */
static int cmd_mstage(enum mta_flavour flavour, uint8_t cmd)
{
	switch (cmd) {
	case MH_CMD_CONNECT:
		return MTA_M_CONNECT;
	case MH_CMD_HELO:
		return MTA_M_HELO;
	case MH_CMD_MAIL:
		return MTA_M_MAIL;
	case MH_CMD_RCPT:
		return MTA_M_RCPT;
	case MH_CMD_DATA:
		return MTA_M_DATA;
	case MH_CMD_EOH:
		return MTA_M_EOH;
	case MH_CMD_EOB:
		return MTA_M_EOM;
	/* Postfix only: headers carry the EOH list, body chunks the EOM list. */
	case MH_CMD_HEADER:
		return flavour == MTA_POSTFIX ? MTA_M_EOH : -1;
	case MH_CMD_BODY:
		return flavour == MTA_POSTFIX ? MTA_M_EOM : -1;
	case MH_CMD_UNKNOWN:
		return flavour == MTA_POSTFIX ? MTA_M_UNKNOWN : -1;
	default:
		return -1;
	}
}

static const char *value_of(const struct mta_config *c, const struct mta_macro_values *v,
                            const char *name)
{
	int sm = c->flavour == MTA_SENDMAIL;
	static const struct {
		const char *name;
		const char *value;
	} fixed[] = {
	    {"j", MTA_HOSTNAME},
	    {"daemon_name", MTA_HOSTNAME},
	    {"daemon_addr", MTA_ADDR},
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (mh_macro_name_eq(name, fixed[i].name))
			return fixed[i].value;
	if (mh_macro_name_eq(name, "v"))
		return sm ? "8.17.1" : "Postfix 3.7.11";
	if (mh_macro_name_eq(name, "_"))
		return c->underscore;
	if (mh_macro_name_eq(name, "client_addr"))
		return c->client_addr_macro;
	if (mh_macro_name_eq(name, "client_port"))
		return c->client_port_str;
	if (mh_macro_name_eq(name, "client_name") || mh_macro_name_eq(name, "client_ptr"))
		return c->client_name;
	if (mh_macro_name_eq(name, "i"))
		return v->queue_id;
	if (mh_macro_name_eq(name, "mail_addr"))
		return v->mail_addr;
	if (mh_macro_name_eq(name, "rcpt_addr"))
		return v->rcpt_addr;
	if (mh_macro_name_eq(name, "auth_type"))
		return c->auth ? "PLAIN" : NULL;
	if (mh_macro_name_eq(name, "auth_authen"))
		return c->auth;
	if (sm && mh_macro_name_eq(name, "if_name"))
		return MTA_HOSTNAME;
	if (sm && mh_macro_name_eq(name, "if_addr"))
		return MTA_ADDR;
	if (sm && mh_macro_name_eq(name, "msg_id"))
		return v->msg_id;
	return NULL;
}

/* The last --macro for this stage and name, or NULL. */
static const char *override_of(const struct mta_config *c, enum mta_mstage ms, const char *name)
{
	const char *value = NULL;

	for (size_t i = 0; i < c->nmacros; i++)
		if (c->macros[i].stage == ms && mh_macro_name_eq(c->macros[i].name, name))
			value = c->macros[i].value;
	return value;
}

static int listed(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (mh_macro_name_eq(names[i], name))
			return 1;
	return 0;
}

int mta_macros_build(const struct mta_macro_lists *l, const struct mta_config *cfg,
                     const struct mta_macro_values *v, uint8_t cmd, const char **pairs)
{
	int ms = cmd_mstage(cfg->flavour, cmd);
	const char *const *names;
	size_t nnames = 0, npairs = 0;

	if (ms < 0)
		return -1;
	if (l->count[ms] > 0) {
		names = l->names[ms];
		nnames = l->count[ms];
	} else {
		names = cfg->flavour == MTA_POSTFIX ? postfix_lists[ms] : sendmail_lists[ms];
		while (nnames < DEFAULT_LIST_MAX && names[nnames] != NULL)
			nnames++;
	}
	for (size_t i = 0; i < nnames && npairs < MTA_MACRO_PAIRS_MAX; i++) {
		const char *value = override_of(cfg, (enum mta_mstage)ms, names[i]);

		if (value == NULL)
			value = value_of(cfg, v, names[i]);
		if (value == NULL)
			continue;
		pairs[2 * npairs] = names[i];
		pairs[2 * npairs + 1] = value;
		npairs++;
	}
	/* --macro values the list lacks are sent too, in command-line order. */
	for (size_t i = 0; i < cfg->nmacros && npairs < MTA_MACRO_PAIRS_MAX; i++) {
		const struct mta_macro *m = &cfg->macros[i];

		if (m->stage != (enum mta_mstage)ms || listed(names, nnames, m->name))
			continue;
		/* A later --macro for the same name wins: send only the last one. */
		if (override_of(cfg, m->stage, m->name) != m->value)
			continue;
		pairs[2 * npairs] = m->name;
		pairs[2 * npairs + 1] = m->value;
		npairs++;
	}
	return (int)npairs;
}
