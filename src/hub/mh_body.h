/*
 * mh_body - a message body kept for replay: in memory up to a limit,
 * then in an unlinked temporary file (design §2.3: memory per message
 * bounded, bodies above the limit go to disk).
 *
 * The body owns its memory and its file descriptor. Disk I/O is plain
 * pread/pwrite on a local temp file, as an MTA's queue file is.
 */
#ifndef MH_BODY_H
#define MH_BODY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/mh_buf.h"

struct mh_body {
	struct mh_buf mem; /* the body while it fits */
	int fd; /* -1 until spilled */
	uint64_t size; /* bytes appended */
	size_t mem_limit; /* spill when size would pass this */
	const char *tmpdir; /* not owned; NULL = $TMPDIR or /tmp */
};

void mh_body_init(struct mh_body *b, size_t mem_limit, const char *tmpdir);
/* Drop the content (closes a spill file); keeps the settings. */
void mh_body_reset(struct mh_body *b);
void mh_body_free(struct mh_body *b);
/* Append; returns 0, or -1 with a reason (temp file/disk errors). */
int mh_body_append(struct mh_body *b, const void *data, size_t len, char *err, size_t errlen);
static inline uint64_t mh_body_size(const struct mh_body *b)
{
	return b->size;
}
/* Copy up to len bytes from offset off; returns the count (0 at the end) or -1. */
ssize_t mh_body_read(const struct mh_body *b, uint64_t off, void *dst, size_t len);
/* Swap two bodies (a replaced body becomes current in O(1)). */
void mh_body_swap(struct mh_body *a, struct mh_body *b);

#endif
