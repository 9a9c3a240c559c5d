/*
 * mh_json - a small streaming JSON writer into an mh_buf.
 *
 * The writer tracks nesting and inserts commas itself; keys and values
 * are escaped (control characters, quotes, backslash; bytes >= 0x80 that
 * are not valid UTF-8 are written as \u00XX so the output always parses).
 */
#ifndef MH_JSON_H
#define MH_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "util/mh_buf.h"

#define MH_JSON_DEPTH_MAX 32

struct mh_json {
	struct mh_buf *out; /* not owned */
	int depth;
	int need_comma[MH_JSON_DEPTH_MAX];
	int after_key;
};

void mh_json_init(struct mh_json *j, struct mh_buf *out);
void mh_json_obj_begin(struct mh_json *j);
void mh_json_obj_end(struct mh_json *j);
void mh_json_arr_begin(struct mh_json *j);
void mh_json_arr_end(struct mh_json *j);
void mh_json_key(struct mh_json *j, const char *key);
void mh_json_str(struct mh_json *j, const char *s); /* NULL writes null */
void mh_json_strn(struct mh_json *j, const char *s, size_t n); /* may hold NULs */
void mh_json_int(struct mh_json *j, int64_t v);
void mh_json_double(struct mh_json *j, double v);
void mh_json_bool(struct mh_json *j, int v);
void mh_json_null(struct mh_json *j);

#endif
