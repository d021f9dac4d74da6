// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* swclient --raw: bytes out as they are, whatever comes back printed, for malformed input. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "client.h"

/* Reads all of path into a new buffer; 0 or -errno. */
static int file_read(const char *path, char **data, size_t *len)
{
	struct bytes b = {};
	FILE *f = fopen(path, "rb");
	int err = 0;

	if (!f)
		return -errno;
	for (;;) {
		size_t n;

		err = bytes_reserve(&b, 65536);
		if (err)
			break;
		n = fread(b.data + b.len, 1, b.cap - b.len, f);
		b.len += n;
		if (n == 0) {
			err = ferror(f) ? -EIO : 0;
			break;
		}
	}
	fclose(f);
	if (err) {
		free(b.data);
		return err;
	}
	*data = b.data;
	*len = b.len;
	return 0;
}

/* Waits until fd is ready for events or the deadline passes; 1, 0 on timeout, -errno. */
static int fd_wait(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	uint64_t now = now_ns();
	int n;

	if (now >= deadline)
		return 0;
	n = poll(&pfd, 1, (deadline - now + 999999) / 1000000);
	if (n < 0)
		return errno == EINTR ? 1 : -errno;
	return n;
}

/*
 * --raw: sends the file's bytes as they are on one connection and copies to stdout what
 * comes back until the server closes or the timeout passes. 0 or -errno.
 */
int raw_run(void)
{
	uint64_t deadline = now_ns() + cfg.timeout_ms * 1000000ULL;
	int fd = -1, so_error = 0, err;
	socklen_t len = sizeof(so_error);
	size_t request_len = 0, sent = 0;
	char *request = NULL, buf[65536];

	err = file_read(cfg.raw_file, &request, &request_len);
	if (err) {
		fprintf(stderr, "swclient: cannot read %s: %s\n", cfg.raw_file, strerror(-err));
		return err;
	}
	fd = socket(cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		goto cleanup;
	}
	if (connect(fd, (struct sockaddr *)&cfg.addr, cfg.addr_len) && errno != EINPROGRESS) {
		err = -errno;
		goto cleanup;
	}
	err = fd_wait(fd, POLLOUT, deadline);
	if (err <= 0) {
		err = err ? err : -ETIMEDOUT;
		goto cleanup;
	}
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
	if (so_error) {
		err = -so_error;
		goto cleanup;
	}

	/* A server that refuses early may stop reading: what it answered is still printed. */
	while (sent < request_len) {
		ssize_t n = write(fd, request + sent, request_len - sent);

		if (n >= 0) {
			sent += n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || fd_wait(fd, POLLOUT, deadline) <= 0)
			break;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n > 0) {
			fwrite(buf, 1, n, stdout);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && fd_wait(fd, POLLIN, deadline) > 0)
			continue;
		break;
	}
	err = fflush(stdout) ? -errno : 0;

cleanup:
	if (err && err != -EPIPE)
		fprintf(stderr, "swclient: %s: %s\n", cfg.url, strerror(-err));
	if (fd >= 0)
		close(fd);
	free(request);
	return err;
}
