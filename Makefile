# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# sockway build, in the shape of libbpf-bootstrap: everything generated goes to $(OUTPUT),
# vmlinux.h comes from the running kernel's BTF, the BPF programs link into one object and
# one skeleton, userspace links against Debian's libbpf through pkg-config.
#
#   make            build everything          make test     build and run every test
#   make deps       install Debian packages    make install  PREFIX=/usr/local DESTDIR=
#                                              (binaries and the systemd unit)
#   make V=1        show full commands         make clean

OUTPUT ?= $(abspath .output)
PREFIX ?= /usr/local
DESTDIR ?=

CLANG ?= clang
BPFTOOL ?= bpftool
CC ?= cc
PKG_CONFIG ?= pkg-config

# Debian packages the build and the tests need; `make deps` installs the missing ones.
# systemd (systemd-analyze verify), libcap2-bin (capsh), python3-yaml and prometheus (promtool)
# check the unit and tools/deploy (tests/integration/test_install.sh, test_deploy.sh).
DEB_PACKAGES := clang clang-format llvm libbpf-dev bpftool libelf-dev zlib1g-dev libcmocka-dev \
	pkg-config libjansson-dev liburing-dev libclang-rt-14-dev jq iproute2 util-linux wrk curl python3 \
	groff-base man-db mandoc tmux systemd libcap2-bin python3-yaml prometheus
# Of those, installed without their recommends: prometheus recommends the node exporter,
# smartmontools and IPMI tools, none of which promtool needs. (Its postinst starts no daemon
# where no init runs: invoke-rc.d finds no runlevel and declines.)
DEB_NO_RECOMMENDS := prometheus

ARCH := $(shell uname -m | sed 's/x86_64/x86/' | sed 's/aarch64/arm64/')

ifeq ($(V),1)
	Q =
	msg =
else
	Q = @
	msg = @printf '  %-8s %s\n' "$(1)" "$(patsubst $(abspath .)/%,%,$(2))";
endif

.DELETE_ON_ERROR:
.SUFFIXES:

# Every target but deps and clean needs the packages; deps.stamp re-checks when this changes.
DEPS_STAMP := $(OUTPUT)/deps.stamp

PKGS := libbpf libelf zlib jansson liburing
CFLAGS_PKG = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
LDLIBS_PKG = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

# A test build adds defines here (the narrow-hash build of tests/integration/test_collide.sh).
SW_TEST_DEFINES ?=

CFLAGS ?= -g -O2
SW_CFLAGS := $(CFLAGS) $(SW_TEST_DEFINES) -std=gnu11 -Wall -Wextra -Werror -Wno-missing-field-initializers \
	-D_GNU_SOURCE -Iinclude -Iuser/lib -Iuser/helper -I$(OUTPUT) $(CFLAGS_PKG)
# -mcpu=v3: compare-and-swap on map values (the conns map).
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) $(SW_TEST_DEFINES) -Wall -Werror \
	-Iinclude -I$(OUTPUT)

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/bpf/%.bpf.o,$(BPF_SRCS))
LIB_SRCS := $(wildcard user/lib/*.c)
LIB_OBJS := $(patsubst %.c,$(OUTPUT)/%.o,$(LIB_SRCS))
AGENT_SRCS := $(wildcard user/agent/*.c)
AGENT_OBJS := $(patsubst %.c,$(OUTPUT)/%.o,$(AGENT_SRCS))
HELPER_SRCS := $(wildcard user/helper/*.c)
HELPER_OBJS := $(patsubst %.c,$(OUTPUT)/%.o,$(HELPER_SRCS))
# The helper's library part (everything but its main) is linked into its unit tests.
HELPER_LIB_OBJS := $(filter-out $(OUTPUT)/user/helper/main.o,$(HELPER_OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/unit/%,$(UNIT_SRCS))
INTEG_SRCS := $(wildcard tests/integration/test_*.c)
INTEG_BINS := $(patsubst tests/integration/%.c,$(OUTPUT)/tests/integration/%,$(INTEG_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(OUTPUT)/tests/fuzz/%,$(FUZZ_SRCS))
TOOL_SRCS := $(wildcard tools/*.c tools/bench/*.c)
TOOL_BINS := $(patsubst tools/%.c,$(OUTPUT)/tools/%,$(TOOL_SRCS))
# BPF programs of the benchmarks (the flood generator's), apart from sockway's object.
TOOL_BPF_SRCS := $(wildcard tools/bench/bpf/*.bpf.c)
TOOL_BPF_OBJS := $(patsubst tools/bench/bpf/%.bpf.c,$(OUTPUT)/tools/bench/%.bpf.o,$(TOOL_BPF_SRCS))
# swbackend and swclient: each a main in tools/ and its parts in tools/backend/ or
# tools/client/; tools/lib/ holds what both share. These three directories hold no tool.
TOOL_LIB_OBJS := $(patsubst %.c,$(OUTPUT)/%.o,$(wildcard tools/lib/*.c))
SWBACKEND_OBJS := $(patsubst %.c,$(OUTPUT)/%.o,$(wildcard tools/backend/*.c))
SWCLIENT_OBJS := $(patsubst %.c,$(OUTPUT)/%.o,$(wildcard tools/client/*.c))

SOCKWAY := $(OUTPUT)/sockway
SOCKWAYD := $(OUTPUT)/sockwayd
LIBSOCKWAY := $(OUTPUT)/libsockway.a
SKEL := $(OUTPUT)/sockway.skel.h

.PHONY: all deps test test-build unit-test integration-test install clean tools run bins narrow asan
all: $(SOCKWAY) $(SOCKWAYD) tools

bins: $(SOCKWAY) $(SOCKWAYD)

# The agent and sockwayd again, with the conns tag cut to 12 bits, so that a test can make
# two sockets share a tag on purpose (tests/integration/test_collide.sh).
NARROW := $(OUTPUT)/narrow
narrow: | $(DEPS_STAMP)
	$(Q)$(MAKE) --no-print-directory OUTPUT=$(NARROW) \
		SW_TEST_DEFINES=-DSW_TEST_SOCK_HASH_BITS=12 bins

# sockwayd again, with AddressSanitizer and UndefinedBehaviorSanitizer (any report aborts
# it): make test runs the [accel off] pass of the suites that run twice with it
# (tests/run.sh), and fails on any report. Built by clang, whose one runtime for both
# writes every report to ASAN_OPTIONS' log_path (gcc's UBSan, apart from its ASan, would
# write to stderr only).
ASAN := $(OUTPUT)/asan
ASAN_CFLAGS := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined
asan: | $(DEPS_STAMP)
	$(Q)$(MAKE) --no-print-directory OUTPUT=$(ASAN) CC=$(CLANG) CFLAGS="$(ASAN_CFLAGS)" \
		$(ASAN)/sockwayd

tools: $(TOOL_BINS) $(TOOL_BPF_OBJS)

deps: $(DEPS_STAMP)

$(DEPS_STAMP): Makefile
	$(Q)mkdir -p $(@D)
	$(Q)missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "  DEPS     installing:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root to install:" $$missing >&2; exit 1; fi; \
		plain=$$(for p in $$missing; do case " $(DEB_NO_RECOMMENDS) " in *" $$p "*) ;; *) echo $$p;; esac; done); \
		bare=$$(for p in $$missing; do case " $(DEB_NO_RECOMMENDS) " in *" $$p "*) echo $$p;; esac; done); \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		{ [ -z "$$plain" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$plain >/dev/null; } && \
		{ [ -z "$$bare" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$bare >/dev/null; }; \
	fi
	$(Q)touch $@

$(OUTPUT)/vmlinux.h: | $(DEPS_STAMP)
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

# Every compile writes the headers it read to a .d file (-MMD; -MP: a header that goes away
# does not break the build), included at the end: a .o depends on exactly its headers.
$(OUTPUT)/bpf/%.bpf.o: bpf/%.bpf.c $(OUTPUT)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

$(OUTPUT)/tools/bench/%.bpf.o: tools/bench/bpf/%.bpf.c $(OUTPUT)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

# One object for all attach points, and its skeleton.
$(OUTPUT)/sockway.bpf.o: $(BPF_OBJS)
	$(call msg,GEN-OBJ,$@)
	$(Q)$(BPFTOOL) gen object $@ $^

$(SKEL): $(OUTPUT)/sockway.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name sockway > $@

# Userspace objects wait for the skeleton (any may include it); those that do depend on it
# through their .d file.
$(OUTPUT)/%.o: %.c | $(SKEL) $(DEPS_STAMP)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(SW_CFLAGS) -MMD -MP -c $< -o $@

$(LIBSOCKWAY): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(SOCKWAY): $(AGENT_OBJS) $(LIBSOCKWAY)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(SW_CFLAGS) $^ $(LDLIBS_PKG) -lm -o $@

$(SOCKWAYD): $(HELPER_OBJS) $(LIBSOCKWAY)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(SW_CFLAGS) $^ $(LDLIBS_PKG) -lm -pthread -o $@

$(OUTPUT)/tests/unit/%: $(OUTPUT)/tests/unit/%.o $(HELPER_LIB_OBJS) $(LIBSOCKWAY)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(SW_CFLAGS) $^ $(CMOCKA_LIBS) $(LDLIBS_PKG) -lm -pthread -o $@

# The parity test runs sockwayd's own decision too, over its policy snapshot.
$(OUTPUT)/tests/integration/test_parity: $(OUTPUT)/user/helper/snapshot.o

$(OUTPUT)/tests/integration/%: $(OUTPUT)/tests/integration/%.o $(LIBSOCKWAY)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(SW_CFLAGS) $^ $(CMOCKA_LIBS) $(LDLIBS_PKG) -lm -pthread -o $@

# The backend names its statuses as sockwayd does.
$(OUTPUT)/tools/swbackend: $(SWBACKEND_OBJS) $(TOOL_LIB_OBJS) $(OUTPUT)/user/helper/reason.o
$(OUTPUT)/tools/swclient: $(SWCLIENT_OBJS) $(TOOL_LIB_OBJS)

$(OUTPUT)/tools/%: $(OUTPUT)/tools/%.o $(LIBSOCKWAY)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(SW_CFLAGS) $^ $(LDLIBS_PKG) -lm -pthread -o $@

# libFuzzer harnesses: clang with ASan and UBSan; make test runs each for a few seconds.
# Each links the HTTP parser and the head builders alone (no sockwayd around them), and
# cmocka (fuzz_reqhead runs the checks of tests/unit/test_reqhead.c).
FUZZ_LIB_SRCS := user/helper/http.c user/helper/headers.c user/helper/buf.c
# (One compile of several sources: -MMD would keep the last one's headers only.)
$(OUTPUT)/tests/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_SRCS) $(wildcard user/helper/*.h) \
		$(wildcard include/sockway/*.h) tests/unit/test_reqhead.c tests/unit/headtest.h | $(DEPS_STAMP)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
		-Iuser/helper $< $(FUZZ_LIB_SRCS) -lcmocka -o $@

# The test runner prints one summary line, "N passed, M failed", and fails if M > 0.
# The build is most of a fresh clone's wait: make test builds with a job per CPU (the
# dependencies are declared, .d files included), then runs the suites one at a time.
NPROC := $(shell nproc 2>/dev/null || echo 1)
test:
	$(Q)$(MAKE) --no-print-directory -j$(NPROC) test-build
	$(Q)OUTPUT=$(OUTPUT) tests/run.sh

test-build: $(SOCKWAY) $(SOCKWAYD) $(UNIT_BINS) $(INTEG_BINS) $(FUZZ_BINS) tools narrow asan

unit-test: $(UNIT_BINS)
	$(Q)OUTPUT=$(OUTPUT) tests/run.sh unit

integration-test: $(SOCKWAY) $(SOCKWAYD) $(INTEG_BINS) tools narrow asan
	$(Q)OUTPUT=$(OUTPUT) tests/run.sh integration

# The demo: sockwayd in the foreground on the seed's policy; Ctrl-C cleans up.
run: $(SOCKWAY) $(SOCKWAYD) tools
	$(Q)OUTPUT=$(OUTPUT) tools/run-demo.sh

# The manual pages (man 8 sockway) and the bash completions, where man-db and bash-completion
# look for them under PREFIX.
MAN8DIR := $(PREFIX)/share/man/man8
COMPLETIONDIR := $(PREFIX)/share/bash-completion/completions

# The systemd unit names the binaries by their installed path, $(PREFIX)/bin (DESTDIR is only
# where the files are written, not where they run from).
install: $(SOCKWAY) $(SOCKWAYD) tools/systemd/sockwayd.service
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX)/bin)
	$(Q)install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/systemd/system
	$(Q)install -m 0755 $(SOCKWAY) $(DESTDIR)$(PREFIX)/bin/sockway
	$(Q)install -m 0755 $(SOCKWAYD) $(DESTDIR)$(PREFIX)/bin/sockwayd
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX)/lib/systemd/system/sockwayd.service)
	$(Q)sed 's|@BINDIR@|$(PREFIX)/bin|g' tools/systemd/sockwayd.service \
		>$(DESTDIR)$(PREFIX)/lib/systemd/system/sockwayd.service
	$(Q)chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/sockwayd.service
	$(call msg,INSTALL,$(DESTDIR)$(MAN8DIR))
	$(Q)install -d $(DESTDIR)$(MAN8DIR)
	$(Q)install -m 0644 tools/man/sockway.8 tools/man/sockwayd.8 $(DESTDIR)$(MAN8DIR)/
	$(call msg,INSTALL,$(DESTDIR)$(COMPLETIONDIR))
	$(Q)install -d $(DESTDIR)$(COMPLETIONDIR)
	$(Q)install -m 0644 tools/completion/sockway tools/completion/sockwayd $(DESTDIR)$(COMPLETIONDIR)/

clean:
	$(call msg,CLEAN,$(OUTPUT))
	$(Q)rm -rf $(OUTPUT)

.SECONDARY:

-include $(shell find $(OUTPUT) -name '*.d' 2>/dev/null)
