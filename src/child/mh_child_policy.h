/*
 * mh_child_policy - a Postfix policy server behind the child-link API
 * (internal to src/child; issue 9).
 *
 * mh_child.c hands every call on a link whose conf->kind is
 * MH_CHILD_POLICY to these functions, so the hub treats a policy server
 * exactly like a milter: same conditions, fallback, timeouts, merge
 * (design §2), statistics and log lines. See mh_child_policy.c for what
 * the link answers at each stage and which request attributes it sends.
 */
#ifndef MH_CHILD_POLICY_H
#define MH_CHILD_POLICY_H

#include "child/mh_child.h"

struct mh_child_policy;

/* The policy side of link c (c is the wrapper the hub holds; kept as a back pointer). */
struct mh_child_policy *mh_child_policy_new(struct mh_child *c, struct ev_loop *loop,
                                            const struct mh_child_conf *conf,
                                            const struct mh_optneg *offer, uint64_t sid,
                                            const struct mh_child_ops *ops, void *arg);
enum mh_child_sent mh_child_policy_send(struct mh_child_policy *p, uint8_t code,
                                        const void *payload, size_t len,
                                        const char *const *macro_pairs, size_t npairs);
int mh_child_policy_takes(const struct mh_child_policy *p, uint8_t code);
void mh_child_policy_abort(struct mh_child_policy *p);
/* Release p and the wrapper (now, or when the outermost callback returns). */
void mh_child_policy_free(struct mh_child_policy *p);
const struct mh_optneg *mh_child_policy_negotiated(const struct mh_child_policy *p);
int mh_child_policy_dead(const struct mh_child_policy *p);
const char *mh_child_policy_failure(const struct mh_child_policy *p);
void mh_child_policy_rcpt_refused(struct mh_child_policy *p);

#endif
