/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Reason phrases of HTTP statuses, for sockwayd's own answers and the test backend's. */
#ifndef SOCKWAY_REASON_H
#define SOCKWAY_REASON_H

/* The reason phrase of a status (RFC 9110 15), or NULL for one without a common phrase. */
const char *http_reason(int status);

#endif /* SOCKWAY_REASON_H */
