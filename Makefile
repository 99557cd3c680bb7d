# SPDX-License-Identifier: GPL-2.0
#
# dm-blksnap: one Makefile for the kernel module, libblksnap, blksnapctl and
# the tests. `make help` lists the targets.

SHELL := /bin/bash
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD := $(TOP)/build

# The guest/build kernel: a release name, or 6.12 / 6.1 for the newest build
# of that series on the Debian mirror. Resolved once per make run.
KVER ?=
KREL := $(shell KVER=$(KVER) $(TOP)/scripts/deps resolve 2>/dev/null)
KDIR ?= /lib/modules/$(KREL)/build
KMOD_DIR := $(BUILD)/kmod/$(KREL)

VERSION := 0.1.0
SOVERSION := 1

CC ?= cc
CFLAGS ?= -O2 -g
BLKSNAP_CFLAGS := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE \
	-I$(TOP)/include -I$(TOP)/userspace/lib -DBLKSNAP_VERSION=\"$(VERSION)\"
LDLIBS_LIB := -ldevmapper -lblkid -pthread

LIB_SRCS := $(sort $(wildcard userspace/lib/*.c))
CLI_SRCS := $(sort $(wildcard userspace/blksnapctl/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

LIB_A := $(BUILD)/lib/libblksnap.a
LIB_SO := $(BUILD)/lib/libblksnap.so.$(SOVERSION)
CLI := $(if $(CLI_SRCS),$(BUILD)/bin/blksnapctl)

.PHONY: all help deps module userspace unit check demo bench clean
.DEFAULT_GOAL := all

all: module userspace

help:
	@echo "make            build the module (for KVER, default newest 6.12) and userspace"
	@echo "make deps       install packages and the guest kernel (run by the targets below)"
	@echo "make check      build everything, run unit and integration tests (T=name: one test)"
	@echo "make demo       the main job end to end in a QEMU guest"
	@echo "make KVER=6.1   build the module against Debian's 6.1 headers"
	@echo "make clean      remove build/ and kernel build products"

deps:
	@$(TOP)/scripts/deps all

# ---- kernel module -------------------------------------------------------
# Built out of tree in build/kmod/<release>/ so that modules for several
# kernels can live side by side; the sources are linked in from drivers/md.
module:
	@KVER=$(KREL) $(TOP)/scripts/deps kernel
	@mkdir -p $(KMOD_DIR)
	@for f in $(TOP)/drivers/md/Kbuild $(TOP)/drivers/md/*.[ch]; do \
		ln -sf $$f $(KMOD_DIR)/; done
	@find $(KMOD_DIR) -xtype l -delete
	$(MAKE) -s -C $(KDIR) M=$(KMOD_DIR) modules

# ---- userspace -----------------------------------------------------------
userspace: $(if $(LIB_SRCS),$(LIB_A) $(LIB_SO)) $(CLI)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BLKSNAP_CFLAGS) $(CFLAGS) -fPIC -MMD -MP -c -o $@ $<

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(LIB_SO): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libblksnap.so.$(SOVERSION) -o $@ $^ $(LDLIBS_LIB)
	ln -sf libblksnap.so.$(SOVERSION) $(BUILD)/lib/libblksnap.so

$(BUILD)/bin/blksnapctl: $(CLI_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJS) $(LIB_A) $(LDLIBS_LIB)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BLKSNAP_CFLAGS) $(CFLAGS) -MMD -MP -o $@ $< $(LIB_A) -lcmocka $(LDLIBS_LIB)

unit: $(UNIT_BINS)

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(UNIT_BINS:=.d)

# ---- tests, demo ---------------------------------------------------------
check:
	@$(TOP)/scripts/deps all
	@$(MAKE) --no-print-directory all unit
	@KVER=$(KREL) $(TOP)/tests/check $(if $(T),--only $(T))

demo:
	@$(TOP)/scripts/deps all
	@$(MAKE) --no-print-directory all
	@$(TOP)/tests/vm/run --name demo --disks 2 --disk-size 256M --kver $(KREL) -- bash $(TOP)/tests/demo.sh

clean:
	rm -rf $(BUILD)
