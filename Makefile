# SPDX-License-Identifier: GPL-2.0
#
# dm-blksnap: one Makefile for the kernel module, libblksnap, blksnapctl and
# the tests. `make help` lists the targets.

SHELL := /bin/bash
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD := $(TOP)/build

# The guest/build kernel: a release name, or 6.12 / 6.1 for the newest build
# of that series on the Debian mirror. Resolved once per make run.
# KERNEL=debug: the debug kernel of `make debug-kernel` instead, from its
# cache in ~/.cache/blksnap/debug-kernel/ (never built implicitly).
KVER ?=
KERNEL ?=
ifeq ($(KERNEL),debug)
DEBUG_KERNEL := $(shell $(TOP)/scripts/debug-kernel path 2>/dev/null)
KREL := $(if $(DEBUG_KERNEL),$(shell cat $(DEBUG_KERNEL)/release),no-debug-kernel)
KDIR ?= $(DEBUG_KERNEL)/build
else
KREL := $(shell KVER=$(KVER) $(TOP)/scripts/deps resolve 2>/dev/null)
KDIR ?= /lib/modules/$(KREL)/build
endif
KMOD_DIR := $(BUILD)/kmod/$(KREL)

VERSION := 0.2.0
SOVERSION := 1

CC ?= cc
CFLAGS ?= -O2 -g
# -Werror for `make`, `make check` and CI, in userspace and in the module
# (drivers/md/Kbuild takes it from BLKSNAP_WERROR). The Debian package
# build (debian/rules) and DKMS build without it, so that a newer compiler's
# new warning does not break an installation.
BLKSNAP_WERROR ?= y
# The build's own flags (e.g. dpkg-buildflags' hardening: -Wl,-z,relro,-z,now)
# go on every link line.
LDFLAGS ?=
CPPFLAGS ?=
BLKSNAP_CFLAGS := -std=c11 -Wall -Wextra $(if $(filter y,$(BLKSNAP_WERROR)),-Werror) -D_GNU_SOURCE \
	-I$(TOP)/include -I$(TOP)/userspace/lib -I$(TOP)/drivers/md -DBLKSNAP_VERSION=\"$(VERSION)\"
LDLIBS_LIB := -ldevmapper -lblkid -pthread
# Exported symbols and their version node.
LIB_SYMS := $(TOP)/userspace/lib/libblksnap.sym

LIB_SRCS := $(sort $(wildcard userspace/lib/*.c))
CLI_SRCS := $(sort $(wildcard userspace/blksnapctl/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

LIB_A := $(BUILD)/lib/libblksnap.a
LIB_SO := $(BUILD)/lib/libblksnap.so.$(SOVERSION)
# blksnapctl links the shared library. build/bin/blksnapctl finds it in
# build/lib (a RUNPATH of $ORIGIN/../lib) so that it runs from the tree;
# build/sbin/blksnapctl, the one make install installs, has no RUNPATH.
CLI := $(if $(CLI_SRCS),$(BUILD)/bin/blksnapctl)
CLI_INSTALL := $(if $(CLI_SRCS),$(BUILD)/sbin/blksnapctl)

.PHONY: all help deps module userspace unit tools check demo bench clean install uninstall \
	debug-kernel check-debug
.DEFAULT_GOAL := all

all: module userspace

help:
	@echo "make            build the module (for KVER, default newest 6.12) and userspace"
	@echo "make deps       install packages and the guest kernel (run by the targets below)"
	@echo "make check      build everything, run unit and integration tests (T=name: one test)"
	@echo "make demo       the main job end to end in a QEMU guest"
	@echo "make bench      performance vs dm-linear and dm-snapshot (build/bench/report.md)"
	@echo "make KVER=6.1   build the module against Debian's 6.1 headers"
	@echo "make debug-kernel  build the debug kernel (KASAN, lockdep, kmemleak; 30-60 min,"
	@echo "                cached in ~/.cache/blksnap/debug-kernel/); make check then runs"
	@echo "                the tests marked '# lanes: debug' on it too"
	@echo "make check-debug   every integration test on the debug kernel (hours)"
	@echo "make KERNEL=debug  build the module against the debug kernel"
	@echo "make clean      remove build/ and kernel build products"
	@echo "make install    install blksnapctl, libblksnap, udev rules, units, docs and the"
	@echo "                module sources for DKMS (PREFIX=/usr/local, DESTDIR: stage only)"
	@echo "make uninstall  remove what make install installed (same PREFIX and DESTDIR)"

deps:
	@$(TOP)/scripts/deps all

# ---- kernel module -------------------------------------------------------
# Built out of tree in build/kmod/<release>/ so that modules for several
# kernels can live side by side; the sources are linked in from drivers/md.
module:
ifeq ($(KERNEL),debug)
	@test -n "$(DEBUG_KERNEL)" || { echo "no debug kernel built (make debug-kernel)" >&2; exit 1; }
else
	@KVER=$(KREL) $(TOP)/scripts/deps kernel
endif
	@mkdir -p $(KMOD_DIR)
	@for f in $(TOP)/drivers/md/Kbuild $(TOP)/drivers/md/*.[ch]; do \
		ln -sf $$f $(KMOD_DIR)/; done
	@find $(KMOD_DIR) -xtype l -delete
	$(MAKE) -s -C $(KDIR) M=$(KMOD_DIR) BLKSNAP_WERROR=$(BLKSNAP_WERROR) modules

# ---- userspace -----------------------------------------------------------
userspace: $(if $(LIB_SRCS),$(LIB_A) $(LIB_SO)) $(CLI) $(CLI_INSTALL)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BLKSNAP_CFLAGS) $(CPPFLAGS) $(CFLAGS) -fPIC -MMD -MP -c -o $@ $<

# create --monitor reads the monitor's configuration where make install puts it.
$(BUILD)/obj/userspace/blksnapctl/main.o: BLKSNAP_CFLAGS += -DBLKSNAP_SYSCONFDIR=\"$(SYSCONFDIR)\"

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(LIB_SO): $(LIB_OBJS) $(LIB_SYMS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,libblksnap.so.$(SOVERSION) \
		-Wl,--version-script=$(LIB_SYMS) -Wl,--no-undefined -o $@ $(LIB_OBJS) $(LDLIBS_LIB)
	ln -sf libblksnap.so.$(SOVERSION) $(BUILD)/lib/libblksnap.so

$(BUILD)/bin/blksnapctl: $(CLI_OBJS) $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJS) -L$(BUILD)/lib -Wl,-rpath,'$$ORIGIN/../lib' -lblksnap

$(BUILD)/sbin/blksnapctl: $(CLI_OBJS) $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJS) -L$(BUILD)/lib -lblksnap

$(BUILD)/tests/%: tests/unit/%.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BLKSNAP_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -MMD -MP -o $@ $< $(LIB_A) -lcmocka $(LDLIBS_LIB)

unit: $(UNIT_BINS)

# Helpers the integration tests run in the guest (the host's userspace).
# Built here, not in each guest: a compile under the emulated debug kernel
# takes 17 s (tests/stress-lib.sh's vf_build compiles only when this one is
# missing or older than its source, as when a test runs by hand).
TOOLS := $(BUILD)/tools/devcmp $(BUILD)/tools/verifier $(BUILD)/tools/cbt-meta

$(BUILD)/tools/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BLKSNAP_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $<

# The metadata format of persistent CBT, through the library's own code.
$(BUILD)/tools/cbt-meta: tests/tools/cbt-meta.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BLKSNAP_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS_LIB)

$(BUILD)/tools/verifier: tests/verifier/verifier.c
	@mkdir -p $(dir $@)
	$(CC) -Wall -Wextra -Werror $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $<

tools: $(TOOLS)

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(UNIT_BINS:=.d)

# ---- tests, demo ---------------------------------------------------------
check:
	@$(TOP)/scripts/deps all
	@$(MAKE) --no-print-directory all unit tools
	@KVER=$(KREL) $(TOP)/tests/check $(if $(T),--only $(T))

# The debug kernel lane (Documentation/reliability.md): the kernel is built
# once into the cache; check-debug runs every integration test on it.
debug-kernel:
	@$(TOP)/scripts/deps packages
	@$(TOP)/scripts/deps debug-source
	@$(TOP)/scripts/debug-kernel build

check-debug:
	@$(TOP)/scripts/deps all
	@$(TOP)/scripts/debug-kernel path > /dev/null
	@$(MAKE) --no-print-directory all tools
	@$(TOP)/tests/check --no-unit --kernel debug $(if $(T),--only $(T))

demo:
	@$(TOP)/scripts/deps all
	@$(MAKE) --no-print-directory all
	@$(TOP)/tests/vm/run --name demo --disks 2 --disk-size 256M --kver $(KREL) -- bash $(TOP)/tests/demo.sh

# ---- install -------------------------------------------------------------
# `make install` installs userspace under PREFIX and the module's sources
# under /usr/src/dm-blksnap-<version>/ for DKMS. With an empty DESTDIR and
# dkms on PATH (DKMS=auto, the default) it also runs dkms add, and dkms
# install for every kernel in /lib/modules that has headers (DKMS_KERNELS
# overrides the list). With a DESTDIR, or DKMS=no, it only stages files.
PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
DOCDIR ?= $(PREFIX)/share/doc/dm-blksnap
UDEVRULESDIR ?= $(PREFIX)/lib/udev/rules.d
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
DKMS_SRCDIR ?= /usr/src/dm-blksnap-$(VERSION)
DKMS ?= auto
DKMS_KERNELS ?= $(notdir $(patsubst %/build,%,$(wildcard /lib/modules/*/build)))

INSTALL ?= install
KMOD_SRCS := $(TOP)/drivers/md/Kbuild $(wildcard $(TOP)/drivers/md/*.[ch])
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@SBINDIR@|$(SBINDIR)|g' \
	-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@VERSION@|$(VERSION)|g'
RUN_DKMS = $(if $(DESTDIR),,$(if $(filter-out no,$(DKMS)),$(shell command -v dkms 2>/dev/null)))

install: userspace
	@grep -q '^PACKAGE_VERSION="$(VERSION)"$$' $(TOP)/dkms.conf || \
		{ echo "dkms.conf: PACKAGE_VERSION is not $(VERSION)" >&2; exit 1; }
	$(INSTALL) -D -m 0755 $(CLI_INSTALL) $(DESTDIR)$(SBINDIR)/blksnapctl
	$(INSTALL) -D -m 0644 $(LIB_SO) $(DESTDIR)$(LIBDIR)/libblksnap.so.$(SOVERSION)
	ln -sfn libblksnap.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libblksnap.so
	$(INSTALL) -D -m 0644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libblksnap.a
	$(INSTALL) -D -m 0644 $(TOP)/include/blksnap.h $(DESTDIR)$(INCLUDEDIR)/blksnap.h
	@mkdir -p $(DESTDIR)$(PKGCONFIGDIR)
	$(SUBST) $(TOP)/userspace/lib/libblksnap.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/libblksnap.pc
	$(INSTALL) -D -m 0644 $(TOP)/userspace/blksnapctl/blksnapctl.8 $(DESTDIR)$(MANDIR)/man8/blksnapctl.8
	$(INSTALL) -D -m 0644 $(TOP)/userspace/blksnapctl/blksnapctl.bash-completion \
		$(DESTDIR)$(BASHCOMPDIR)/blksnapctl
	$(INSTALL) -D -m 0644 $(TOP)/udev/56-dm-blksnap.rules $(DESTDIR)$(UDEVRULESDIR)/56-dm-blksnap.rules
	$(SUBST) $(TOP)/udev/69-dm-blksnap-attach.rules.in > $(DESTDIR)$(UDEVRULESDIR)/69-dm-blksnap-attach.rules
	@mkdir -p $(DESTDIR)$(SYSTEMDUNITDIR)
	$(SUBST) $(TOP)/systemd/blksnap-monitor@.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/blksnap-monitor@.service
	$(SUBST) $(TOP)/systemd/blksnap-attach.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/blksnap-attach.service
	$(SUBST) $(TOP)/systemd/blksnap-cbt-close.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/blksnap-cbt-close.service
	@mkdir -p $(DESTDIR)$(SYSCONFDIR)/blksnap
	@for f in blksnaptab monitor.conf; do \
		if [ -e $(DESTDIR)$(SYSCONFDIR)/blksnap/$$f ]; then \
			echo "keeping $(DESTDIR)$(SYSCONFDIR)/blksnap/$$f"; \
		else \
			echo "$(INSTALL) -m 0644 etc/blksnap/$$f $(DESTDIR)$(SYSCONFDIR)/blksnap/$$f"; \
			$(INSTALL) -m 0644 $(TOP)/etc/blksnap/$$f $(DESTDIR)$(SYSCONFDIR)/blksnap/$$f; \
		fi; done
	@mkdir -p $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 0644 $(TOP)/README.md $(wildcard $(TOP)/Documentation/*.md $(TOP)/Documentation/*.rst) \
		$(DESTDIR)$(DOCDIR)/
	@mkdir -p $(DESTDIR)$(DKMS_SRCDIR)/drivers/md
	$(INSTALL) -m 0644 $(TOP)/dkms.conf $(DESTDIR)$(DKMS_SRCDIR)/dkms.conf
	$(INSTALL) -m 0644 $(KMOD_SRCS) $(DESTDIR)$(DKMS_SRCDIR)/drivers/md/
ifneq ($(RUN_DKMS),)
	@if dkms status -m dm-blksnap -v $(VERSION) | grep -q .; then \
		echo "dkms remove -m dm-blksnap -v $(VERSION) --all"; \
		dkms remove -m dm-blksnap -v $(VERSION) --all; fi
	dkms add -m dm-blksnap -v $(VERSION)
	@failed=""; for k in $(DKMS_KERNELS); do \
		echo "dkms install -m dm-blksnap -v $(VERSION) -k $$k"; \
		dkms install -m dm-blksnap -v $(VERSION) -k $$k || failed="$$failed $$k"; \
	done; \
	if [ -n "$$failed" ]; then echo "dkms: dm-blksnap did not build for:$$failed" >&2; exit 1; fi
else
	@echo "module sources staged in $(DESTDIR)$(DKMS_SRCDIR) (not running dkms)"
endif

uninstall:
ifneq ($(RUN_DKMS),)
	@if dkms status -m dm-blksnap -v $(VERSION) | grep -q .; then \
		echo "dkms remove -m dm-blksnap -v $(VERSION) --all"; \
		dkms remove -m dm-blksnap -v $(VERSION) --all; fi
endif
	rm -rf $(DESTDIR)$(DKMS_SRCDIR)
	rm -f $(DESTDIR)$(SBINDIR)/blksnapctl \
		$(DESTDIR)$(LIBDIR)/libblksnap.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libblksnap.so \
		$(DESTDIR)$(LIBDIR)/libblksnap.a $(DESTDIR)$(INCLUDEDIR)/blksnap.h \
		$(DESTDIR)$(PKGCONFIGDIR)/libblksnap.pc $(DESTDIR)$(MANDIR)/man8/blksnapctl.8 \
		$(DESTDIR)$(BASHCOMPDIR)/blksnapctl $(DESTDIR)$(UDEVRULESDIR)/56-dm-blksnap.rules \
		$(DESTDIR)$(UDEVRULESDIR)/69-dm-blksnap-attach.rules \
		$(DESTDIR)$(SYSTEMDUNITDIR)/blksnap-monitor@.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/blksnap-attach.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/blksnap-cbt-close.service
	rm -rf $(DESTDIR)$(DOCDIR)
	@for f in blksnaptab monitor.conf; do \
		if [ -e $(DESTDIR)$(SYSCONFDIR)/blksnap/$$f ] && \
		   ! cmp -s $(TOP)/etc/blksnap/$$f $(DESTDIR)$(SYSCONFDIR)/blksnap/$$f; then \
			echo "keeping the changed $(DESTDIR)$(SYSCONFDIR)/blksnap/$$f"; \
		else rm -f $(DESTDIR)$(SYSCONFDIR)/blksnap/$$f; fi; done
	@rmdir $(DESTDIR)$(SYSCONFDIR)/blksnap 2>/dev/null || true

# One QEMU guest (about 12 minutes under software emulation); results in
# build/bench/{report.md,chart.png,results.json}. See Documentation/benchmark.md.
bench:
	@$(TOP)/scripts/deps all
	@$(MAKE) --no-print-directory all tools
	@KVER=$(KREL) $(TOP)/tests/bench/run

clean:
	rm -rf $(BUILD)

# ---- diagrams ------------------------------------------------------------
# The pictures of README.md and Documentation/: Documentation/diagrams/*.dot
# drawn with graphviz, the benchmark chart with gnuplot from the tables of
# Documentation/benchmark.md. The SVGs are committed; tests/docs-check
# (make check T=docs) fails when one is older than its source.
.PHONY: diagrams
diagrams:
	@$(TOP)/scripts/deps packages
	@$(TOP)/scripts/diagrams
