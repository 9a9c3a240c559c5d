/*
 * mh_cond_net - the "remote-network" condition (design §2.7): a child
 * applies only to clients connecting from outside our own networks.
 *
 * Options (lists of CIDRs or bare addresses, IPv4 and IPv6):
 *	local  - more networks counted as ours (e.g. a public office range)
 *	remote - networks counted as remote even if private (e.g. a partner
 *	         reached over a VPN with RFC 1918 addresses); beats `local`
 *
 * Verdict, decided at CONNECT from ctx->client_addr:
 *	in `remote`                                        -> APPLIES
 *	in `local`, loopback (127/8, ::1), private (10/8, 172.16/12,
 *	192.168/16, fc00::/7) or link-local (169.254/16, fe80::/10)
 *	                                                   -> NOT_APPLICABLE
 *	anything else                                      -> APPLIES
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is treated as IPv4. A
 * unix-socket or unknown-family client, or an address the MTA reported
 * in a form we cannot parse, is local: NOT_APPLICABLE.
 *
 * All prefixes are parsed at creation; eval parses the client address
 * into a stack buffer and scans short arrays (no allocation).
 *
 * Diagnostics: "FILE:LINE: condition "remote-network": unknown key 'x'",
 * "...: key 'local': bad prefix length in '10.0.0.0/33'".
 */
#include <stdlib.h>
#include <sys/socket.h>

#include "conditions/mh_cidr.h"
#include "conditions/mh_cond_builtin.h"
#include "conditions/mh_cond_optutil.h"
#include "util/mh_buf.h"

static const char TYPE[] = "remote-network";

/* Never remote unless listed in `remote`. */
static const char *const not_remote[] = {
    "127.0.0.0/8",    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
    "169.254.0.0/16", "::1/128",    "fc00::/7",      "fe80::/10",
};
#define NOT_REMOTE_COUNT (sizeof(not_remote) / sizeof(not_remote[0]))

struct net_impl {
	struct mh_cidr *local; /* built-ins first, then the `local` option */
	size_t nlocal;
	struct mh_cidr *remote;
	size_t nremote;
};

static enum mh_cond_verdict net_eval(const struct mh_cond *c, const struct mh_cond_ctx *ctx)
{
	const struct net_impl *n = c->impl;
	unsigned char addr[16];

	if (ctx->client_family != AF_INET && ctx->client_family != AF_INET6)
		return MH_COND_NOT_APPLICABLE;
	if (mh_cidr_addr_parse(ctx->client_addr, addr) != 0)
		return MH_COND_NOT_APPLICABLE;
	if (mh_cidr_match_any(n->remote, n->nremote, addr))
		return MH_COND_APPLIES;
	if (mh_cidr_match_any(n->local, n->nlocal, addr))
		return MH_COND_NOT_APPLICABLE;
	return MH_COND_APPLIES;
}

static void net_free(struct mh_cond *c)
{
	struct net_impl *n = c->impl;

	if (n == NULL)
		return;
	free(n->local);
	free(n->remote);
	free(n);
	c->impl = NULL;
}

static const struct mh_cond_ops net_ops = {"remote-network", net_eval, net_free};

/* Append the prefixes of opt (may be NULL) to list[*n..]. */
static int parse_list(const struct mh_cond_opts *o, const struct mh_cond_opt *opt,
                      struct mh_cidr *list, size_t *n, char *err, size_t errlen)
{
	char why[128];
	size_t i;

	for (i = 0; opt != NULL && i < opt->nvalues; i++) {
		if (mh_cidr_parse(opt->values[i], &list[*n], why, sizeof(why)) != 0)
			return mh_condopt_errf(err, errlen, TYPE, o, opt, "%s", why);
		(*n)++;
	}
	return 0;
}

struct mh_cond *mh_cond_remote_network_new(const struct mh_cond_opts *o, char *err, size_t errlen)
{
	/* "local" is a Lua keyword (`local = {}` does not parse): the
	 * *_networks spellings say the same without ["local"] = {}. */
	static const char *const known[] = {"local", "remote", "local_networks", "remote_networks",
	                                    NULL};
	const struct mh_cond_opt *local, *remote;
	struct net_impl *n;
	struct mh_cond *c;
	size_t i;

	if (mh_condopt_check_keys(TYPE, o, known, err, errlen) != 0)
		return NULL;
	local = mh_condopt_find(o, "local");
	remote = mh_condopt_find(o, "remote");
	if ((local && mh_condopt_find(o, "local_networks")) ||
	    (remote && mh_condopt_find(o, "remote_networks"))) {
		mh_errf(err, errlen,
		        "%s: condition \"%s\": give 'local'/'remote' or "
		        "'local_networks'/'remote_networks', not both",
		        o->file ? o->file : "config", TYPE);
		return NULL;
	}
	if (local == NULL)
		local = mh_condopt_find(o, "local_networks");
	if (remote == NULL)
		remote = mh_condopt_find(o, "remote_networks");
	n = mh_xcalloc(1, sizeof(*n));
	n->local = mh_xcalloc(NOT_REMOTE_COUNT + (local ? local->nvalues : 0), sizeof(*n->local));
	n->remote = mh_xcalloc(remote && remote->nvalues ? remote->nvalues : 1, sizeof(*n->remote));
	for (i = 0; i < NOT_REMOTE_COUNT; i++) {
		int rc = mh_cidr_parse(not_remote[i], &n->local[n->nlocal++], NULL, 0);
		(void)rc; /* constant data: checked by the unit tests */
	}
	c = mh_xcalloc(1, sizeof(*c));
	c->ops = &net_ops;
	c->impl = n;
	if (parse_list(o, local, n->local, &n->nlocal, err, errlen) != 0 ||
	    parse_list(o, remote, n->remote, &n->nremote, err, errlen) != 0) {
		net_free(c);
		free(c);
		return NULL;
	}
	return c;
}
