/*
 * mta_config - what milterhub-mta sends: the parsed command line and the
 * message template built from it (docs/tools.md, "milterhub-mta").
 *
 * mta_main.c fills one config from the options; afterwards it is
 * read-only and shared by every session (one, or thousands in load
 * mode). The config owns every string and buffer it holds, except the
 * option strings from argv that it points at (argv outlives it).
 */
#ifndef MTA_CONFIG_H
#define MTA_CONFIG_H

#include <stddef.h>

#include "net/mh_sockspec.h"
#include "protocol/mh_message.h"
#include "util/mh_buf.h"

enum mta_flavour { MTA_POSTFIX, MTA_SENDMAIL };

/* Macro stages as --macro names them; the index of the per-stage lists. */
enum mta_mstage {
	MTA_M_CONNECT,
	MTA_M_HELO,
	MTA_M_MAIL,
	MTA_M_RCPT,
	MTA_M_DATA,
	MTA_M_EOH,
	MTA_M_EOM,
	MTA_M_UNKNOWN,
	MTA_M_COUNT,
};

/* "connect" ... "unknown"; NULL for a bad value. */
const char *mta_mstage_name(enum mta_mstage s);

struct mta_macro {
	enum mta_mstage stage;
	char *name; /* as given: "x" or "{x}" */
	char *value; /* may be empty */
};

struct mta_header {
	char *name;
	char *raw; /* what follows the colon, folds joined by LF */
};

/* Most --socket options (milters of one chain); see docs/tools.md "Chain mode". */
#define MTA_SOCKETS_MAX 16

struct mta_config {
	struct mh_sockspec sock; /* the first --socket (= socks[0]) */
	struct mh_sockspec socks[MTA_SOCKETS_MAX]; /* every --socket, in order */
	size_t nsocks;
	const char *client_name;
	const char *client_addr;
	char client_family; /* '4' or '6', from client_addr */
	unsigned client_port;
	const char *helo; /* NULL until mta_config_finish: client_name */
	const char **froms; /* --from argv strings, in order; owned array */
	size_t nfroms; /* 0 until mta_config_finish: the default sender */
	const char **rcpts; /* argv strings; owned array */
	size_t nrcpts;
	struct mta_header *hdrs; /* owned; NULL: default headers per message */
	size_t nhdrs;
	struct mh_buf body; /* CRLF line ends, every line terminated */
	int body_set;
	struct mta_macro *macros; /* --macro, in command-line order */
	size_t nmacros;
	const char *auth; /* --auth USER or NULL */
	const char *unknown; /* --unknown line or NULL */
	unsigned messages;
	enum mta_flavour flavour;
	unsigned version;
	double timeout;
	size_t max_payload;
	int json;
	int load; /* --sessions given */
	unsigned long sessions;
	unsigned long concurrency;
	double rate; /* --rate: sessions started per second; 0 = closed loop */
	double hold; /* --hold: seconds a session pauses before its first MAIL */
	/* Derived by mta_config_finish, for macros and headers. */
	char client_port_str[8];
	char *client_addr_macro; /* {client_addr}: IPv6 gets "IPv6:" */
	char *underscore; /* _ : "NAME [ADDR]" */
	char **froms_bare; /* owned; froms[i] without <> */
};

void mta_config_init(struct mta_config *c);
void mta_config_free(struct mta_config *c);

/*
 * Option helpers. Each returns 0, or -1 with a one-line reason in
 * err[0..errlen) (the caller reports it as bad usage).
 */
int mta_config_add_header(struct mta_config *c, const char *spec, char *err, size_t errlen);
int mta_config_add_macro(struct mta_config *c, const char *spec, char *err, size_t errlen);
int mta_config_set_client_addr(struct mta_config *c, const char *addr, char *err, size_t errlen);
/* --body: "\n" (escape or real newline) becomes CRLF; see mta_config.c. */
void mta_config_set_body(struct mta_config *c, const char *text);
/* --message-file: headers and body replace --header/--body. */
int mta_config_load_message(struct mta_config *c, const char *path, char *err, size_t errlen);
/* Defaults and derived values, once all options are in. */
void mta_config_finish(struct mta_config *c);

/*
 * The sender of the k-th message (1-based): the k-th --from, the last
 * one repeating for later messages. bare: without <>. Pointers into the
 * config (after mta_config_finish).
 */
const char *mta_config_from(const struct mta_config *c, unsigned k);
const char *mta_config_from_bare(const struct mta_config *c, unsigned k);

/*
 * The k-th message (1-based) of a session as the MTA holds it before any
 * milter saw it: the sender, the MTA's own hidden Received: (with queue
 * id qid) at the top, the headers (--header, --message-file or the
 * defaults) and the body. Recipients are added by the session as they
 * are accepted. m must be freshly initialised.
 */
void mta_config_build_message(const struct mta_config *c, unsigned k, const char *qid,
                              struct mh_msg *m);

/* The address without one pair of angle brackets, malloc'd. */
char *mta_bare_addr(const char *addr);

#endif
