/*
 * mh_config - milterhub.lua: load, validate, fill plain C structs.
 *
 * The only module that knows Lua (design §1, §4). The file is Lua 5.4
 * calling two constructors:
 *   manager { listen = "inet:10025@127.0.0.1", fallback = "accept", ... }
 *   milter "name" { socket = "unix:/run/x.sock", fallback = "tempfail",
 *                   timeouts = { connect = 5, write = 7, read = 7, eom = 297 },
 *                   evaluate = false, enabled = true }
 *   condition "name" { type = "s25r", whitelist = { ... } }  (or Lua stage
 *                    functions: connect = function(s) ... end, ...)
 *   milter "name" { ..., when = { "s25r", "unauthenticated" } }
 * (conditions: see mh_config_cond.c and mh_lua_cond.c).
 * Order of milter blocks = chain order. Unknown keys, wrong types,
 * duplicate names, bad socket specs or statuses are errors naming file,
 * line and key ("milterhub.lua:4: milter \"spam\": unknown key 'sockt'").
 * Defaults are embedded: with no file at all the manager listens on
 * inet:10025@127.0.0.1 with no children. The result is plain data, plus
 * the conditions the children's `when` lists point to: the Lua state
 * stays open after mh_config_load() only while a Lua condition needs it,
 * and is used by that condition's eval only (one thread per process).
 *
 * Ownership: the config owns every string and array (mh_config_free),
 * the conditions and the Lua state; hub.tmpdir, hub.children and each
 * child's `when` point into it, so the config must outlive any hub made
 * from &c->hub.
 */
#ifndef MH_CONFIG_H
#define MH_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "hub/mh_hub.h"
#include "net/mh_sockspec.h"
#include "util/mh_log.h"

#define MH_CONFIG_DEFAULT_PATH "/etc/milterhub/milterhub.lua"
#define MH_WORKERS_MAX 64
#define MH_CONTROL_DEFAULT "unix:/run/milterhub/control.sock"

struct mh_config_conds; /* internal to src/config (mh_config_cond.h) */

struct mh_config {
	char *path; /* the file loaded; NULL for the built-in defaults */
	/* manager */
	char *listen_text; /* as written, e.g. "inet:10025@127.0.0.1" */
	struct mh_sockspec listen; /* parsed listen_text */
	unsigned socket_mode; /* unix socket mode, default 0660 */
	enum mh_log_level log_level; /* default info; MILTERHUB_LOG_LEVEL overrides */
	char *tmpdir; /* NULL = $TMPDIR or /tmp; hub.tmpdir points here */
	/* processes (src/daemon) */
	size_t workers; /* worker processes; default: online CPUs */
	char *user, *group; /* workers' identity after binding; NULL: unchanged */
	char *socket_group; /* group of the unix listening socket; NULL: unchanged */
	char *pid_file; /* NULL: none */
	int daemonize; /* detach from the terminal (0) */
	double drain_timeout; /* SIGTERM / stop: sessions get this long (30 s) */
	char *log; /* "stderr" (default), "syslog", or an absolute file path */
	char *syslog_facility; /* "mail" */
	char *control; /* control socket spec; NULL: MH_CONTROL_DEFAULT, if usable */
	unsigned control_mode; /* 0600 */
	char *stats; /* HTTP statistics listener spec; NULL: none */
	/* what the hub needs: fallback, limits, children (owned here) */
	struct mh_hub_conf hub;
	/* conditions and the Lua state kept for Lua ones (owned; NULL without a file) */
	struct mh_config_conds *conds;
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
/* Free everything the config owns (conditions, Lua state) and zero it; zeroed: no-op. */
void mh_config_free(struct mh_config *c);

/* "debug" "info" "warn" "err" */
const char *mh_config_log_level_name(enum mh_log_level lvl);

#endif
