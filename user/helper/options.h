/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* sockwayd's command line (options.c): one table of every option. */
#ifndef SOCKWAY_OPTIONS_H
#define SOCKWAY_OPTIONS_H

/*
 * Sets swd_cfg's defaults, then what argv says. Returns 0 to run, 1 when --help was printed
 * (exit 0), 2 on a usage error, whose one line went to stderr (exit 2).
 */
int swd_options_parse(int argc, char **argv);

#endif /* SOCKWAY_OPTIONS_H */
