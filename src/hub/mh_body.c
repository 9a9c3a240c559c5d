/*
 * mh_body - a message body kept for replay: memory up to a limit, then
 * an unlinked temporary file.
 *
 * SYNOPSIS
 *	#include "hub/mh_body.h"
 *
 *	void	mh_body_init(struct mh_body *b, size_t mem_limit,
 *			const char *tmpdir);
 *	void	mh_body_reset(struct mh_body *b);
 *	void	mh_body_free(struct mh_body *b);
 *	int	mh_body_append(struct mh_body *b, const void *data,
 *			size_t len, char *err, size_t errlen);
 *	ssize_t	mh_body_read(const struct mh_body *b, uint64_t off,
 *			void *dst, size_t len);
 *	void	mh_body_swap(struct mh_body *a, struct mh_body *b);
 * DESCRIPTION
 *	design §2.3: the hub keeps the body so it can replay the (modified)
 *	message to later children; §7: memory per message is bounded.
 *
 *	A body lives in exactly one place. While size stays within
 *	mem_limit it is the mh_buf `mem`. The append that would take it
 *	past the limit "spills": a file is created with mkostemp(O_CLOEXEC)
 *	in tmpdir, else $TMPDIR, else /tmp, unlinked at once (nothing is
 *	left behind, whatever happens to the process), the memory part is
 *	written to it and freed, and from then on every byte goes to the
 *	file at offset `size`. So reads come from memory or from the file,
 *	never from both.
 *
 *	mh_body_append() returns 0, or -1 with a reason in err (mkostemp or
 *	write failure: full disk, missing tmpdir). A failed append leaves
 *	the body as it was before the call (a failed spill keeps the memory
 *	copy and removes the file; bytes of a short file write beyond the
 *	old size are simply not counted).
 *
 *	mh_body_read() copies up to len bytes from offset off and returns
 *	the count (short only at the end of the body), 0 at or after the
 *	end, or -1 with errno on a read error. pread/pwrite are retried on
 *	EINTR and short transfers. No file position is shared, so reading
 *	and appending may interleave freely.
 *
 *	mh_body_reset() drops the content and closes the file, keeping the
 *	settings; memory above MH_BODY_KEEP bytes is released so an idle
 *	session does not pin a large buffer. mh_body_swap() exchanges two
 *	bodies completely (content and settings).
 */
#include "hub/mh_body.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/mh_err.h"

/* Storage a reset body keeps for the next message. */
#define MH_BODY_KEEP 65536

void mh_body_init(struct mh_body *b, size_t mem_limit, const char *tmpdir)
{
	memset(b, 0, sizeof(*b));
	b->fd = -1;
	b->mem_limit = mem_limit;
	b->tmpdir = tmpdir;
}

void mh_body_reset(struct mh_body *b)
{
	if (b->fd >= 0) {
		close(b->fd);
		b->fd = -1;
	}
	if (b->mem.cap > MH_BODY_KEEP)
		mh_buf_free(&b->mem);
	else
		mh_buf_reset(&b->mem);
	b->size = 0;
}

void mh_body_free(struct mh_body *b)
{
	mh_body_reset(b);
	mh_buf_free(&b->mem);
}

/* Write all of data at off; -1 with errno on failure. */
static int write_at(int fd, const uint8_t *data, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, data, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ENOSPC;
			return -1;
		}
		data += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static const char *temp_dir(const struct mh_body *b)
{
	const char *dir = b->tmpdir;

	if (dir == NULL || dir[0] == '\0')
		dir = getenv("TMPDIR");
	if (dir == NULL || dir[0] == '\0')
		dir = "/tmp";
	return dir;
}

/* Move the memory part to a new unlinked file. */
static int spill(struct mh_body *b, char *err, size_t errlen)
{
	const char *dir = temp_dir(b);
	size_t plen = strlen(dir) + sizeof("/milterhub-body.XXXXXX");
	char *path = mh_xmalloc(plen);
	int fd;

	snprintf(path, plen, "%s/milterhub-body.XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		free(path);
		return mh_errf(err, errlen, "body temp file in %s: %s", dir, strerror(e));
	}
	(void)unlink(path);
	free(path);
	if (write_at(fd, mh_buf_head(&b->mem), mh_buf_size(&b->mem), 0) < 0) {
		int e = errno;
		close(fd);
		return mh_errf(err, errlen, "body temp file in %s: %s", dir, strerror(e));
	}
	b->fd = fd;
	mh_buf_free(&b->mem);
	return 0;
}

int mh_body_append(struct mh_body *b, const void *data, size_t len, char *err, size_t errlen)
{
	if (len == 0)
		return 0;
	if (b->fd < 0 && b->size + len > b->mem_limit && spill(b, err, errlen) < 0)
		return -1;
	if (b->fd < 0) {
		mh_buf_append(&b->mem, data, len);
	} else if (write_at(b->fd, data, len, b->size) < 0) {
		return mh_errf(err, errlen, "body temp file: %s", strerror(errno));
	}
	b->size += len;
	return 0;
}

ssize_t mh_body_read(const struct mh_body *b, uint64_t off, void *dst, size_t len)
{
	uint8_t *out = dst;
	size_t done = 0;

	if (off >= b->size)
		return 0;
	if (len > b->size - off)
		len = (size_t)(b->size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (b->fd < 0) {
		memcpy(out, mh_buf_head(&b->mem) + off, len);
		return (ssize_t)len;
	}
	while (done < len) {
		ssize_t n = pread(b->fd, out + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break; /* file shorter than size: cannot happen unless truncated */
		done += (size_t)n;
	}
	return (ssize_t)done;
}

void mh_body_swap(struct mh_body *a, struct mh_body *b)
{
	struct mh_body t = *a;

	*a = *b;
	*b = t;
}
