/*
 * mh_log - log lines on stderr.
 *
 * Format: "milterhub[pid]: LEVEL [id] message". id is a session id
 * (0 = none). Lines below the threshold set with mh_log_set_level are
 * dropped before formatting.
 */
#ifndef MH_LOG_H
#define MH_LOG_H

#include <stdint.h>

enum mh_log_level { MH_LOG_DEBUG, MH_LOG_INFO, MH_LOG_WARN, MH_LOG_ERR };

void mh_log_set_level(enum mh_log_level lvl);
void mh_log_set_ident(const char *ident); /* program name; default "milterhub" */
void mh_log(enum mh_log_level lvl, uint64_t id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define mh_debug(id, ...) mh_log(MH_LOG_DEBUG, (id), __VA_ARGS__)
#define mh_info(id, ...) mh_log(MH_LOG_INFO, (id), __VA_ARGS__)
#define mh_warn(id, ...) mh_log(MH_LOG_WARN, (id), __VA_ARGS__)
#define mh_err(id, ...) mh_log(MH_LOG_ERR, (id), __VA_ARGS__)

#endif
