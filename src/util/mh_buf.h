/*
 * mh_buf - a growable byte buffer.
 *
 * The buffer owns its storage; growth either succeeds or aborts the
 * process (out of memory is not a per-session failure we can answer).
 * data[len] is always a NUL byte, so text can be used as a C string.
 * Bytes before `off` have been consumed (mh_buf_consume) and are
 * reclaimed lazily.
 */
#ifndef MH_BUF_H
#define MH_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct mh_buf {
	uint8_t *data; /* owned; NULL until the first append */
	size_t off; /* first unconsumed byte */
	size_t len; /* end of valid bytes (data[len] == 0) */
	size_t cap;
};

#define MH_BUF_INIT                                                                                \
	{                                                                                          \
		0                                                                                  \
	}

void mh_buf_free(struct mh_buf *b);
/* Drop all content, keep the storage. */
void mh_buf_reset(struct mh_buf *b);
/* Unconsumed bytes and their count. */
static inline const uint8_t *mh_buf_head(const struct mh_buf *b)
{
	/* A buffer that never held data has no storage: NULL + 0 is undefined. */
	return b->data != NULL ? b->data + b->off : NULL;
}
static inline size_t mh_buf_size(const struct mh_buf *b)
{
	return b->len - b->off;
}
/* Make room for n more bytes; returns a pointer to the end. */
uint8_t *mh_buf_reserve(struct mh_buf *b, size_t n);
void mh_buf_append(struct mh_buf *b, const void *p, size_t n);
void mh_buf_append_str(struct mh_buf *b, const char *s); /* without NUL */
void mh_buf_append_strz(struct mh_buf *b, const char *s); /* with its NUL */
void mh_buf_append_byte(struct mh_buf *b, uint8_t c);
void mh_buf_append_u16be(struct mh_buf *b, uint16_t v);
void mh_buf_append_u32be(struct mh_buf *b, uint32_t v);
void mh_buf_printf(struct mh_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mh_buf_vprintf(struct mh_buf *b, const char *fmt, va_list ap);
/* Overwrite 4 bytes at absolute position pos (frame length back-patching). */
void mh_buf_put_u32be_at(struct mh_buf *b, size_t pos, uint32_t v);
/* Mark n bytes consumed; when everything is consumed the buffer resets. */
void mh_buf_consume(struct mh_buf *b, size_t n);

/* Must-succeed allocation wrappers (abort with a message on failure). */
void *mh_xmalloc(size_t n);
void *mh_xcalloc(size_t n, size_t size);
void *mh_xrealloc(void *p, size_t n);
char *mh_xstrdup(const char *s);
char *mh_xstrndup(const char *s, size_t n);

#endif
