// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Loading and unloading (maps.h): bpffs mounted if needed, the BPF object loaded with its
 * maps pinned by name (libbpf reuses the pins already there) and its programs pinned.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>
#include <bpf/libbpf.h>

#include "sockway.skel.h"
#include "log.h"
#include "maps.h"

const char *sw_pin_root(void)
{
	const char *root = getenv(SW_PIN_ROOT_ENV);

	return root && root[0] ? root : SW_PIN_ROOT;
}

static int bpffs_ensure(bool *mounted, struct sw_err *e)
{
	struct statfs st;

	if (statfs(SW_BPFFS, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mkdir(SW_BPFFS, 0700) && errno != EEXIST)
		return sw_errorf(e, -errno, "cannot create %s: %s", SW_BPFFS, strerror(errno));
	if (mount("bpf", SW_BPFFS, "bpf", 0, "mode=0700"))
		return sw_errorf(e, -errno,
				 "bpffs is not mounted on %s and mounting it failed: %s; "
				 "mount it with \"mount -t bpf bpf %s\"",
				 SW_BPFFS, strerror(errno), SW_BPFFS);
	*mounted = true;
	pr_info("mounted bpffs on %s", SW_BPFFS);
	return 0;
}

/* Pins a program under sw_pin_root(), replacing an older pin without a moment of absence. */
static int prog_pin(struct bpf_program *prog, struct sw_err *e)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/%s", sw_pin_root(), bpf_program__name(prog));
	/* bpffs refuses dots in names, hence no ".new". */
	snprintf(tmp, sizeof(tmp), "%s/%s_new", sw_pin_root(), bpf_program__name(prog));
	unlink(tmp);
	err = bpf_program__pin(prog, tmp);
	if (err)
		return sw_errorf(e, err, "cannot pin program %s at %s: %s", bpf_program__name(prog),
				 tmp, strerror(-err));
	if (rename(tmp, path)) {
		err = -errno;
		unlink(tmp);
		return sw_errorf(e, err, "cannot pin program at %s: %s", path, strerror(-err));
	}
	return 0;
}

static int pin_dir_remove(const char *path, struct sw_err *e);

int sw_load(struct sw_load_info *info, struct sw_err *e)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = sw_pin_root());
	struct bpf_program *prog;
	struct sockway *skel;
	int err;

	memset(info, 0, sizeof(*info));
	err = bpffs_ensure(&info->mounted_bpffs, e);
	if (err)
		return err;
	skel = sockway__open_opts(&opts);
	if (!skel)
		return sw_errorf(e, -errno, "cannot open the BPF object: %s", strerror(errno));
	info->reused = access(bpf_map__pin_path(skel->maps.ctl), F_OK) == 0;
	/* libbpf reuses every map already pinned by name, and pins the new ones. */
	err = sockway__load(skel);
	if (err && !info->reused)
		/* Leave no half-made directory behind: the next load starts clean. */
		pin_dir_remove(sw_pin_root(), NULL);
	if (err) {
		sw_errorf(e, err, "cannot load the BPF object: %s%s", strerror(-err),
			  info->reused ? "; if an older sockway pinned these maps, run "
					 "\"sockway unload\" (this drops the policy) and load again"
				       : "; run with -v for the verifier's log");
		goto cleanup;
	}
	if (chmod(sw_pin_root(), 0700)) {
		err = sw_errorf(e, -errno, "cannot chmod %s: %s", sw_pin_root(), strerror(errno));
		goto cleanup;
	}
	bpf_object__for_each_program(prog, skel->obj)
	{
		err = prog_pin(prog, e);
		if (err)
			goto cleanup;
	}
cleanup:
	sockway__destroy(skel);
	return err;
}

/* Removes a pin directory and everything in it (bpffs has no other way to drop pins). */
static int pin_dir_remove(const char *path, struct sw_err *e)
{
	char child[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int err = 0;

	dir = opendir(path);
	if (!dir)
		return sw_errorf(e, -errno, "cannot open %s: %s", path, strerror(errno));
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
		if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
			err = pin_dir_remove(child, e);
		else if (unlink(child))
			err = sw_errorf(e, -errno, "cannot unpin %s: %s", child, strerror(errno));
		if (err)
			break;
	}
	closedir(dir);
	if (!err && rmdir(path))
		err = sw_errorf(e, -errno, "cannot remove %s: %s", path, strerror(errno));
	return err;
}

int sw_unload(struct sw_err *e)
{
	struct statfs st;

	if (statfs(sw_pin_root(), &st) || st.f_type != BPF_FS_MAGIC)
		return sw_errorf(e, -ENOENT, "nothing is loaded (%s does not exist)",
				 sw_pin_root());
	return pin_dir_remove(sw_pin_root(), e);
}
