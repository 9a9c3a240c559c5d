/*
 * mh_buf - growable byte buffer and must-succeed allocators.
 *
 * SUMMARY
 *	A byte buffer that owns its storage. Appends grow it geometrically
 *	(doubling, starting at 64 bytes); growth either succeeds or aborts
 *	the process with "milterhub: out of memory" (design: running out of
 *	memory is not a per-session failure that can be answered).
 *
 * CONTRACT
 *	data[len] is always NUL once anything was appended or reserved, so
 *	text content is usable as a C string at mh_buf_head().
 *
 *	mh_buf_consume() advances `off`. When everything is consumed the
 *	buffer resets (off = len = 0). Otherwise the unconsumed tail is
 *	moved to the front only when off exceeds half of len, so the cost of
 *	moving stays below the cost of what was consumed (amortised O(1)).
 *
 *	Absolute positions (values of b->len) stay valid across appends:
 *	mh_buf_reserve() never moves unconsumed bytes within the storage,
 *	only mh_buf_consume() and mh_buf_reset() do. This is what makes
 *	"remember pos = b->len, append a placeholder, patch it later with
 *	mh_buf_put_u32be_at()" safe.
 *
 *	mh_x*() wrappers return memory or abort; mh_xmalloc(0) returns a
 *	unique non-NULL pointer.
 *
 * DIAGNOSTICS
 *	Out of memory and size overflow: message on stderr, abort().
 *	Misuse (consume past the end, patch outside the content): assert.
 */
#include "util/mh_buf.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void mh_oom(void)
{
	static const char msg[] = "milterhub: out of memory\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	abort();
}

void *mh_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		mh_oom();
	return p;
}

void *mh_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		mh_oom();
	return p;
}

void *mh_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		mh_oom();
	return q;
}

char *mh_xstrdup(const char *s)
{
	return mh_xstrndup(s, strlen(s));
}

char *mh_xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = mh_xmalloc(len + 1);
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

void mh_buf_free(struct mh_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

void mh_buf_reset(struct mh_buf *b)
{
	b->off = b->len = 0;
	if (b->data != NULL)
		b->data[0] = 0;
}

uint8_t *mh_buf_reserve(struct mh_buf *b, size_t n)
{
	/* +1 keeps room for the terminating NUL. */
	if (n > SIZE_MAX - 1 - b->len)
		mh_oom();
	size_t need = b->len + n + 1;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < need) {
			if (cap > SIZE_MAX / 2) {
				cap = need;
				break;
			}
			cap *= 2;
		}
		b->data = mh_xrealloc(b->data, cap);
		b->cap = cap;
		b->data[b->len] = 0;
	}
	return b->data + b->len;
}

void mh_buf_append(struct mh_buf *b, const void *p, size_t n)
{
	uint8_t *end = mh_buf_reserve(b, n);
	if (n)
		memcpy(end, p, n);
	b->len += n;
	b->data[b->len] = 0;
}

void mh_buf_append_str(struct mh_buf *b, const char *s)
{
	mh_buf_append(b, s, strlen(s));
}

void mh_buf_append_strz(struct mh_buf *b, const char *s)
{
	mh_buf_append(b, s, strlen(s) + 1);
}

void mh_buf_append_byte(struct mh_buf *b, uint8_t c)
{
	mh_buf_append(b, &c, 1);
}

void mh_buf_append_u16be(struct mh_buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	mh_buf_append(b, x, 2);
}

void mh_buf_append_u32be(struct mh_buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	mh_buf_append(b, x, 4);
}

void mh_buf_vprintf(struct mh_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	/* First try in the room already there (at least 64 bytes). */
	size_t room = b->cap > b->len ? b->cap - b->len : 0;
	if (room < 64) {
		mh_buf_reserve(b, 64);
		room = b->cap - b->len;
	}
	va_copy(ap2, ap);
	int n = vsnprintf((char *)b->data + b->len, room, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		/* Encoding error: leave the buffer as it was. */
		b->data[b->len] = 0;
		return;
	}
	if ((size_t)n >= room) {
		mh_buf_reserve(b, (size_t)n);
		va_copy(ap2, ap);
		vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap2);
		va_end(ap2);
	}
	b->len += (size_t)n;
	b->data[b->len] = 0;
}

void mh_buf_printf(struct mh_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mh_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void mh_buf_put_u32be_at(struct mh_buf *b, size_t pos, uint32_t v)
{
	assert(pos <= b->len && b->len - pos >= 4);
	b->data[pos] = (uint8_t)(v >> 24);
	b->data[pos + 1] = (uint8_t)(v >> 16);
	b->data[pos + 2] = (uint8_t)(v >> 8);
	b->data[pos + 3] = (uint8_t)v;
}

void mh_buf_consume(struct mh_buf *b, size_t n)
{
	assert(n <= b->len - b->off);
	b->off += n;
	if (b->off == b->len) {
		mh_buf_reset(b);
	} else if (b->off > b->len / 2) {
		/* Lazy reclaim: fewer bytes move than were consumed. */
		size_t rest = b->len - b->off;
		memmove(b->data, b->data + b->off, rest);
		b->off = 0;
		b->len = rest;
		b->data[rest] = 0;
	}
}
