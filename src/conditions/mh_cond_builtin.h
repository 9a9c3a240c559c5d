/*
 * mh_cond_builtin - constructors of the built-in conditions (design §2.7),
 * one per module; mh_cond.c's registry maps type names to them.
 *
 * Each returns a condition whose ops->type is its type name and whose
 * name is set by the registry, or NULL with a reason in err naming
 * opts->file, the option's line and key.
 */
#ifndef MH_COND_BUILTIN_H
#define MH_COND_BUILTIN_H

#include "conditions/mh_cond.h"

/* mh_cond_s25r.c: "s25r" - whitelist, blacklist, ipv4_only (default true). */
struct mh_cond *mh_cond_s25r_new(const struct mh_cond_opts *o, char *err, size_t errlen);
/* mh_cond_net.c: "remote-network" - local, remote (CIDR lists). */
struct mh_cond *mh_cond_remote_network_new(const struct mh_cond_opts *o, char *err, size_t errlen);
/* mh_cond_lists.c: "restrict-accounts" - accounts, accounts_file. */
struct mh_cond *mh_cond_restrict_accounts_new(const struct mh_cond_opts *o, char *err,
                                              size_t errlen);
/* mh_cond_lists.c: "trusted-sender" - domains, domains_file, macro, macro_value. */
struct mh_cond *mh_cond_trusted_sender_new(const struct mh_cond_opts *o, char *err, size_t errlen);
/* mh_cond_session.c: "authenticated" (want = 1) / "unauthenticated" (want = 0). */
struct mh_cond *mh_cond_auth_new(const struct mh_cond_opts *o, int want, char *err, size_t errlen);
/* mh_cond_session.c: "stress" (want = 1) / "no-stress" (want = 0) - threshold. */
struct mh_cond *mh_cond_stress_new(const struct mh_cond_opts *o, int want, char *err,
                                   size_t errlen);
/* mh_cond_schedule.c: "schedule" - days, hours, timezone. */
struct mh_cond *mh_cond_schedule_new(const struct mh_cond_opts *o, char *err, size_t errlen);

#endif
