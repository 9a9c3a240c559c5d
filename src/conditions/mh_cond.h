/*
 * mh_cond - applicable conditions (design §2.7): does a child apply to
 * this session, transaction or recipient?
 *
 * A condition is an object with one evaluation function, called by the
 * hub at each stage for each child whose `when` list holds it, until it
 * decides. It answers MH_COND_APPLIES, MH_COND_NOT_APPLICABLE, or
 * MH_COND_UNDECIDED ("ask me again at a later stage"). A child applies
 * while none of its conditions said NOT_APPLICABLE; scope (design §2.7):
 * a "not applicable" at connect/helo leaves the child out for the
 * connection, at mail/data/content stages for the transaction (the
 * child gets ABORT if it was in it), at rcpt for that recipient only.
 * A condition still UNDECIDED at end of message counts as applying.
 *
 * Built-in conditions are C modules (mh_cond_s25r.c, mh_cond_net.c, ...)
 * created from plain options (struct mh_cond_opts, filled by the config
 * loader from the Lua file; no Lua below the daemon). Custom conditions
 * written in Lua implement the same ops in the daemon layer.
 *
 * headers, child_result and children may be NULL in a ctx (a test's
 * fake one): callers check before calling.
 *
 * Ownership: a condition is created once per configuration and shared
 * read-only by every session (eval must not keep per-session state in
 * the condition: anything per session lives in the ctx). mh_cond_free
 * releases it. Strings in a ctx are borrowed for the call only.
 */
#ifndef MH_COND_H
#define MH_COND_H

#include <stddef.h>
#include <time.h>

enum mh_cond_stage {
	MH_COND_CONNECT,
	MH_COND_HELO,
	MH_COND_MAIL,
	MH_COND_RCPT,
	MH_COND_DATA,
	MH_COND_HEADER,
	MH_COND_EOH,
	MH_COND_EOM,
	MH_COND_STAGE_COUNT,
};

enum mh_cond_verdict {
	MH_COND_UNDECIDED = 0,
	MH_COND_APPLIES,
	MH_COND_NOT_APPLICABLE,
};

/* What a condition may look at; filled by the hub for one child and one stage. */
struct mh_cond_ctx {
	enum mh_cond_stage stage;
	const char *client_name; /* 'C' hostname: "[192.0.2.1]" when the MTA knows none */
	const char *client_addr; /* textual address, NULL for unix/unknown family */
	int client_family; /* AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC */
	const char *helo; /* NULL before HELO */
	const char *sender; /* MAIL address as sent (with <>), NULL before MAIL */
	const char *rcpt; /* the recipient being decided, at MH_COND_RCPT only */
	const char *const *rcpts; /* recipients accepted so far in this transaction */
	size_t nrcpts;
	const char *header_name; /* at MH_COND_HEADER: the header being sent */
	const char *header_value;
	unsigned concurrent_sessions; /* sessions in progress in this process */
	time_t now; /* the clock (tests inject it: MILTERHUB_NOW) */
	/* A macro value from the MTA, "x" and "{x}" alike; NULL when unset. */
	const char *(*macro)(const struct mh_cond_ctx *ctx, const char *name);
	/* Add a macro sent to this child only (e.g. {trusted_domain}=yes). */
	void (*set_macro)(const struct mh_cond_ctx *ctx, const char *name, const char *value);
	/*
	 * The headers of the message so far, as the hub's working copy holds
	 * them (earlier children's edits applied; the MTA's own hidden
	 * headers left out): returns their count and, when i < count, sets
	 * *name and *value (without the one leading space) of the i-th.
	 * 0 before content. At MH_COND_HEADER the header being decided is the
	 * last one counted. Borrowed for the call.
	 */
	size_t (*headers)(const struct mh_cond_ctx *ctx, size_t i, const char **name,
	                  const char **value);
	/*
	 * The status name ("continue" "accept" "reject" "tempfail" "discard"
	 * "skip") of the latest answer of the child named child_name in the
	 * current transaction (at this stage if it has answered here, else
	 * at an earlier one), else at connect/helo; NULL when it has none,
	 * was left out by its own conditions for the connection or the
	 * transaction, or no child has that name. A child failing counts as
	 * answering its fallback.
	 */
	const char *(*child_result)(const struct mh_cond_ctx *ctx, const char *child_name);
	/* The children of the session: returns their count and, when i <
	 * count, sets *name to the i-th's (configuration order). */
	size_t (*children)(const struct mh_cond_ctx *ctx, size_t i, const char **name);
	void *hub_arg; /* for the hub's macro/set_macro implementations */
};

struct mh_cond;

struct mh_cond_ops {
	const char *type; /* "s25r", "remote-network", ..., "lua" */
	enum mh_cond_verdict (*eval)(const struct mh_cond *c, const struct mh_cond_ctx *ctx);
	/* Releases impl only (may be NULL); mh_cond_free then frees name and
	 * the struct, which the constructor allocated with malloc/calloc. */
	void (*free)(struct mh_cond *c);
};

struct mh_cond {
	const struct mh_cond_ops *ops;
	char *name; /* as written in `when` (owned) */
	void *impl; /* the type's own data (owned via ops->free) */
};

/*
 * Options for a built-in, from the config: a small key -> value list.
 * Values are strings (numbers are given as text), lists of strings, or
 * booleans ("true"/"false"). Owned by the config.
 */
struct mh_cond_opt {
	const char *key;
	const char *const *values; /* one or more; a scalar is a list of one */
	size_t nvalues;
	int line; /* config line, for errors */
};
struct mh_cond_opts {
	const char *file; /* config file, for errors */
	const struct mh_cond_opt *opts;
	size_t nopts;
};

/*
 * Create a built-in by type name with its options. Returns NULL with
 * "FILE:LINE: condition \"s25r\": unknown key 'x'" style reasons in err
 * (unknown type, unknown key, bad CIDR, bad regex, unreadable list file).
 */
struct mh_cond *mh_cond_builtin_new(const char *type, const struct mh_cond_opts *opts, char *err,
                                    size_t errlen);
/* Is type the name of a built-in condition? */
int mh_cond_builtin_known(const char *type);

enum mh_cond_verdict mh_cond_eval(const struct mh_cond *c, const struct mh_cond_ctx *ctx);
void mh_cond_free(struct mh_cond *c);

/* Option helpers for built-ins: value list of a key, NULL/0 when absent. */
const struct mh_cond_opt *mh_cond_opt_get(const struct mh_cond_opts *o, const char *key);

#endif
