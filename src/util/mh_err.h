/*
 * mh_err - one-line error messages into a caller's buffer.
 *
 * Parsers and set-up functions report failure as -1 plus a reason the
 * caller prints with its own context (file, line, option). mh_errf
 * formats that reason; err may be NULL or errlen 0 (reason dropped).
 */
#ifndef MH_ERR_H
#define MH_ERR_H

#include <stddef.h>

/* Format into err[0..errlen) and return -1, so callers can `return mh_errf(...)`. */
int mh_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
