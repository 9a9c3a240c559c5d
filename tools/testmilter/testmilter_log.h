/*
 * testmilter_log - the --log FILE of the test milter: one JSON object per
 * line for each command received, written with a single write() on an
 * O_APPEND descriptor before the command is answered, so a test that
 * saw the reply can already read the line.
 *
 * Ownership: tm_log owns its fd. tm_macros owns copies of the pairs of
 * the 'D' packets received since the last other command.
 */
#ifndef TESTMILTER_LOG_H
#define TESTMILTER_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/mh_codec.h"
#include "util/mh_buf.h"

struct tm_log;

/* Macros pending for the next logged command. */
struct tm_macros {
	int present; /* a 'D' was received since the last command */
	size_t nstr; /* strings held (names and values alternating) */
	struct mh_buf strs; /* NUL-terminated strings back to back */
};

/* What the eom line reports about the message. */
struct tm_msg_stats {
	uint64_t body_len;
	uint64_t body_fnv; /* FNV-1a 64 over the body bytes received */
	unsigned headers;
};

#define TM_FNV_INIT 0xcbf29ce484222325ULL
uint64_t tm_fnv1a(uint64_t h, const uint8_t *p, size_t n);

/* Open (create, append) path. Returns NULL with err filled on failure. */
struct tm_log *tm_log_open(const char *path, char *err, size_t errlen);
void tm_log_close(struct tm_log *l);

/* Remember the pairs of one 'D' (appended to what is pending). */
void tm_macros_add(struct tm_macros *m, const struct mh_cmd *cmd);
void tm_macros_clear(struct tm_macros *m);
void tm_macros_free(struct tm_macros *m);

/*
 * One line for a decoded command; stats is used for eom only. l may be
 * NULL (no --log): then nothing happens. The pending macros are written
 * into the line; the caller clears them afterwards.
 */
void tm_log_command(struct tm_log *l, uint64_t conn, const struct mh_cmd *cmd,
                    const struct tm_macros *m, const struct tm_msg_stats *stats);
/* {"conn":N,"cmd":"close","reason":REASON}. */
void tm_log_closed(struct tm_log *l, uint64_t conn, const char *reason);

#endif
