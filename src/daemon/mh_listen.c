/*
 * NAME
 *	mh_listen 3
 * SUMMARY
 *	the shared MTA-facing listening socket (see mh_listen.h)
 * DESCRIPTION
 *	mh_sockspec_listen does the socket work (a stale unix file is
 *	removed first, a live one refused); this module adds the group,
 *	remembers the file's identity and owns the text of the spec.
 * DIAGNOSTICS
 *	"cannot listen on unix:/x: reason", "cannot give unix:/x to group
 *	postfix: reason".
 */
#include "daemon/mh_listen.h"
#include "util/mh_buf.h"
#include "util/mh_err.h"
#include "util/mh_log.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024

static const char *unix_path(const struct mh_listener *l)
{
	return ((const struct sockaddr_un *)&l->spec.addr)->sun_path;
}

int mh_listener_set_access(struct mh_listener *l, unsigned mode, const char *group, char *err,
                           size_t errlen)
{
	if (l->spec.family != AF_UNIX)
		return 0;
	const char *path = unix_path(l);
	if (mode != 0 && chmod(path, mode) < 0)
		return mh_errf(err, errlen, "cannot set mode %04o on %s: %s", mode, l->text,
		               strerror(errno));
	if (group != NULL) {
		struct group *gr = getgrnam(group);
		if (gr == NULL)
			return mh_errf(err, errlen, "cannot give %s to group %s: no such group",
			               l->text, group);
		if (chown(path, (uid_t)-1, gr->gr_gid) < 0)
			return mh_errf(err, errlen, "cannot give %s to group %s: %s", l->text,
			               group, strerror(errno));
	}
	if (stat(path, &l->st) < 0)
		memset(&l->st, 0, sizeof(l->st));
	return 0;
}

int mh_listener_open(struct mh_listener *l, const char *text, unsigned mode, const char *group,
                     char *err, size_t errlen)
{
	char why[512];
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	if (mh_sockspec_parse(text, &l->spec, why, sizeof(why)) < 0)
		return mh_errf(err, errlen, "cannot listen on %s: %s", text, why);
	gid_t gid = (gid_t)-1;
	if (group != NULL) {
		struct group *gr = getgrnam(group);
		if (gr == NULL)
			return mh_errf(err, errlen, "cannot listen on %s: no such group %s", text,
			               group);
		gid = gr->gr_gid;
	}
	l->fd = mh_sockspec_listen_ex(&l->spec, LISTEN_BACKLOG, mode, gid, why, sizeof(why));
	if (l->fd < 0)
		return mh_errf(err, errlen, "cannot listen on %s: %s", text, why);
	l->text = mh_xstrdup(text);
	if (l->spec.family == AF_UNIX && stat(unix_path(l), &l->st) < 0)
		memset(&l->st, 0, sizeof(l->st));
	return 0;
}

void mh_listener_close(struct mh_listener *l, int unlink_file)
{
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	if (unlink_file && l->spec.family == AF_UNIX && l->st.st_ino != 0) {
		struct stat st;
		const char *path = unix_path(l);
		if (stat(path, &st) == 0 && st.st_ino == l->st.st_ino &&
		    st.st_dev == l->st.st_dev && unlink(path) < 0)
			mh_warn(0, "cannot remove %s: %m", path);
	}
	l->st.st_ino = 0;
	free(l->text);
	l->text = NULL;
}
