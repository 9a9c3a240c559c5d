/*
 * mh_config - milterhub.lua: load, validate, fill plain C structs.
 *
 * The only module that knows Lua (design §1, §4). The file is Lua 5.4
 * calling two constructors:
 *   manager { listen = "inet:10025@127.0.0.1", fallback = "accept", ... }
 *   milter "name" { socket = "unix:/run/x.sock", fallback = "tempfail",
 *                   timeouts = { connect = 5, write = 7, read = 7, eom = 297 },
 *                   evaluate = false, enabled = true }
 * Order of milter blocks = chain order. Unknown keys, wrong types,
 * duplicate names, bad socket specs or statuses are errors naming file,
 * line and key ("milterhub.lua:4: milter \"spam\": unknown key 'sockt'").
 * Defaults are embedded: with no file at all the manager listens on
 * inet:10025@127.0.0.1 with no children. Lua runs only inside
 * mh_config_load(); the result is plain data.
 *
 * Ownership: the config owns every string and array (mh_config_free);
 * hub.tmpdir and hub.children point into it, so the config must outlive
 * any hub made from &c->hub.
 */
#ifndef MH_CONFIG_H
#define MH_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "hub/mh_hub.h"
#include "net/mh_sockspec.h"
#include "util/mh_log.h"

struct mh_config {
	char *path; /* the file loaded; NULL for the built-in defaults */
	/* manager */
	char *listen_text; /* as written, e.g. "inet:10025@127.0.0.1" */
	struct mh_sockspec listen; /* parsed listen_text */
	unsigned socket_mode; /* unix socket mode, default 0660 */
	enum mh_log_level log_level; /* default info; MILTERHUB_LOG_LEVEL overrides */
	char *tmpdir; /* NULL = $TMPDIR or /tmp; hub.tmpdir points here */
	/* what the hub needs: fallback, limits, children (owned here) */
	struct mh_hub_conf hub;
};

/* Overwrite c with the built-in defaults (no file). Free with mh_config_free. */
void mh_config_defaults(struct mh_config *c);
/*
 * Load a file over the defaults. Returns 0 with *c overwritten by a
 * fresh config (the caller frees it), or -1 with a one-line message in
 * err ("FILE:LINE: ...") and *c untouched, so a reload can keep the old
 * configuration.
 */
int mh_config_load(const char *path, struct mh_config *c, char *err, size_t errlen);
/* Print the effective configuration, defaults filled in, as Lua that loads back. */
void mh_config_show(const struct mh_config *c, FILE *out);
/* Free everything the config owns and zero it; a zeroed config is a no-op. */
void mh_config_free(struct mh_config *c);

/* "debug" "info" "warn" "err" */
const char *mh_config_log_level_name(enum mh_log_level lvl);

#endif
