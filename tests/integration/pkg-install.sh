#!/bin/bash
# Debian packages: lintian --pedantic clean, dpkg -i, the DKMS-built module by modprobe, a snapshot cycle, pkg-config, man, udev, purge
# vm: --no-blksnap --disks 3 --disk-size 64M --timeout 600
# host: tests/packaging/prepare
#
# The host part (tests/packaging/prepare, run by tests/check before the
# guest boots) builds the .debs into build/deb/ with debian/build-debs and
# builds the module of blksnap-dkms for this guest's kernel with `dkms build`
# and a private DKMS tree into build/pkg/<release>/dm-blksnap.ko (DKMS under
# emulation in the guest takes about ten minutes), runs depmod for the
# guest's module tree with it (two minutes here) and copies dpkg's database
# for the guest to read from RAM. Nothing is installed or loaded on the host.
#
# Here (root is the host's root read-only plus a tmpfs overlay, so dpkg
# writes only to RAM) the four packages are installed with dpkg -i (the
# postinst of blksnap-dkms runs `dkms add`; it does not build, as this
# kernel has no headers here) and the DKMS-built module goes where
# `dkms install` puts it, /lib/modules/<release>/updates/dkms/.
# The guest runs without the tree's module (--no-blksnap): modprobe must
# find the packaged one by its name.
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

top=$BLKSNAP_TOP
kver=$(uname -r)
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
version=$(cd "$top" && dpkg-parsechangelog -S Version)
debs=$top/build/deb
ko=$top/build/pkg/$kver/dm-blksnap.ko
work=$(mktemp -d)
at_exit "rm -rf $work"

for tool in dpkg pkg-config cc man; do
	command -v $tool > /dev/null || skip "$tool is missing"
done
[ -f "$debs/blksnapctl_${version}_$arch.deb" ] || skip "no packages in $debs (tests/packaging/prepare)"
[ -f "$ko" ] || skip "no DKMS-built module in $ko (tests/packaging/prepare)"
check "dm-blksnap is not loaded yet" sh -c "! grep -q '^dm_blksnap ' /proc/modules"
t0=$(date +%s)
lap() { note "$1 done at $(($(date +%s) - t0)) s"; }

# ---- install ---------------------------------------------------------------------
# dpkg reads the file lists of every installed package (180000 files): over
# 9p under emulation, 20 to 80 s a run. The same database, copied on the
# host by tests/packaging/prepare, is read from a tmpfs instead.
db=$top/build/pkg/dpkg-db.tar.zst
if [ -f "$db" ]; then
	mount -t tmpfs -o mode=755 dpkgdb /var/lib/dpkg
	at_exit "umount /var/lib/dpkg"
	zstd -qdc "$db" | tar -C /var/lib/dpkg -xf -
fi
lap "dpkg database"
# One dpkg run, without triggers: ldconfig and mandb would scan the whole
# root for half a minute each; ld.so and man find the new files in their
# default directories anyway. blksnap-dkms's postinst runs `dkms add`
# and skips the build: the guest's kernel has no /lib/modules/<release>/build.
# dkms uses <(...), which needs /dev/fd (no udevd or systemd made it).
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
deb() { echo "$debs/$1_${version}_$2.deb"; }
check "the guest kernel has no headers (the postinst must not build)" test ! -e "/lib/modules/$kver/build"
start=$(date +%s)
if ! dpkg --no-triggers -i "$(deb libblksnap1 "$arch")" "$(deb libblksnap-dev "$arch")" \
	"$(deb blksnapctl "$arch")" "$(deb blksnap-dkms all)" > "$work/dpkg.log" 2>&1; then
	tail -n 30 "$work/dpkg.log" | sed 's/^/#   /'
	check "dpkg -i of the four packages" false
fi
echo "ok - dpkg -i of the four packages ($(($(date +%s) - start)) s)"
lap "dpkg -i"
src=/usr/src/dm-blksnap-$version
check "the module sources are in $src" test -f "$src/dkms.conf"
check "they have the module's sources" test -f "$src/drivers/md/dm-blksnap.c"
check_eq "dpkg --verify: the installed files are the packaged ones" "" \
	"$(dpkg --verify blksnap-dkms blksnapctl libblksnap1 libblksnap-dev 2>&1)"
capture "dkms status" dkms status -m dm-blksnap -v "$version"
note "$OUT"
check "the postinst ran dkms add" grep -q "^dm-blksnap/$version: added" <<< "$OUT"
check "the DKMS-built module is for $kver" sh -c "modinfo -F vermagic $ko | grep -q '^$kver '"
lap "checks of the installation"
# What `dkms install` does: the module into updates/dkms, then depmod. The
# index files come from depmod run on the host for this module tree plus
# the module (tests/packaging/prepare): depmod here takes two minutes.
mkdir -p "/lib/modules/$kver/updates/dkms"
cp "$ko" "/lib/modules/$kver/updates/dkms/dm-blksnap.ko"
cp "$top/build/pkg/$kver/depmod"/modules.* "/lib/modules/$kver/"
check "modules.dep lists updates/dkms/dm-blksnap.ko" \
	grep -q '^updates/dkms/dm-blksnap.ko: kernel/drivers/md/dm-mod.ko' "/lib/modules/$kver/modules.dep"
capture "modinfo -n dm-blksnap" modinfo -n dm-blksnap
check_eq "modprobe finds the module in updates/dkms" "/lib/modules/$kver/updates/dkms/dm-blksnap.ko" "$OUT"
check "modprobe dm-blksnap" modprobe dm-blksnap
require_target blksnap-origin
require_target blksnap-image

lap "modprobe"
# ---- blksnapctl: a snapshot cycle -----------------------------------------------
CTL=/usr/sbin/blksnapctl
check_eq "blksnapctl version" "blksnapctl $version" "$($CTL version)"
head -c 16M /dev/urandom > "$work/data"
dd if="$work/data" of=/dev/vda bs=1M oflag=direct status=none
ctl_ok "attach /dev/vda" attach /dev/vda
at_exit "undo_attach /dev/vda"
origin=/dev/mapper/blksnap-vda
before=$(sha256sum < $origin)
ctl_ok "create a snapshot (a device and a directory store)" \
	create /dev/vda --store /dev/vdb,/tmp --store-size 8M --name pkg
at_exit "undo_snapshot pkg"
img=$(sed -n 2p <<< "$OUT" | cut -d" " -f1)	# the path, then its CBT numbers
check_eq "the image path" /dev/mapper/blksnap-vda-pkg "$img"
dd if=/dev/urandom of=$origin bs=64K count=32 seek=8 oflag=direct status=none
check "the origin changed" sh -c "[ \"\$(sha256sum < $origin)\" != '$before' ]"
check_eq "the image shows the device as it was" "$before" "$(sha256sum < "$img")"
ctl_ok "status pkg" status pkg --json
check_eq "the snapshot has two store parts" 2 "$(jq '.store.parts | length' <<< "$OUT")"
ctl_ok "cbt changes" cbt changes /dev/vda --since 0
ctl_ok "destroy" destroy pkg
ctl_ok "detach" detach /dev/vda
check_eq "no dm device is left" "" "$(dm_names)"

lap "snapshot cycle"
# ---- man page, bash completion ---------------------------------------------------
check_eq "man finds blksnapctl(8)" "/usr/share/man/man8/blksnapctl.8.gz" "$(man -w blksnapctl)"
check_eq "the man page renders without warnings" "" \
	"$(MANWIDTH=80 man --warnings -E UTF-8 -l /usr/share/man/man8/blksnapctl.8.gz 2>&1 > /dev/null)"
check "man blksnapctl shows its NAME" sh -c \
	"MANWIDTH=80 man blksnapctl 2> /dev/null | grep -q 'blksnapctl - manage dm-blksnap'"
check "the bash completion parses and registers" bash -c \
	'. /usr/share/bash-completion/completions/blksnapctl && complete -p blksnapctl'

lap "man page"
# ---- libblksnap-dev: pkg-config, shared and static linking ----------------------
check_eq "pkg-config --modversion libblksnap" "$version" "$(pkg-config --modversion libblksnap)"
check_eq "pkg-config --libs libblksnap" "-lblksnap" "$(pkg-config --libs libblksnap | xargs)"
libdir=$(pkg-config --variable=libdir libblksnap)
check_eq "pkg-config libdir" "/usr/lib/$multiarch" "$libdir"
cat > "$work/t.c" << 'EOF'
#include <blksnap.h>
#include <stdio.h>

int main(void)
{
	struct blksnap_ctx *ctx;
	uint64_t bytes = 0;

	if (blksnap_ctx_new(&ctx))
		return 1;
	if (blksnap_parse_size(ctx, "4K", &bytes))
		return 2;
	printf("%s %llu\n", blksnap_version(), (unsigned long long)bytes);
	blksnap_ctx_free(ctx);
	return 0;
}
EOF
# shellcheck disable=SC2046
check "a program compiles and links against libblksnap.so (pkg-config)" \
	cc -std=c11 -Wall -Wextra -Werror -o "$work/t-shared" "$work/t.c" \
	$(pkg-config --cflags libblksnap) $(pkg-config --libs libblksnap)
check_eq "it runs" "$version 4096" "$("$work/t-shared")"
# (ld.so may name it by /lib/<multiarch>, the same directory on merged /usr.)
check "it uses the packaged libblksnap.so.1" sh -c \
	"ldd $work/t-shared | grep -Eq 'libblksnap.so.1 => (/usr)?/lib/$multiarch/libblksnap.so.1'"
# shellcheck disable=SC2046
check "a program links libblksnap.a (pkg-config --static)" \
	cc -std=c11 -Wall -Wextra -Werror -o "$work/t-static" "$work/t.c" \
	$(pkg-config --cflags libblksnap) \
	$(pkg-config --static --libs libblksnap | sed "s|-lblksnap|$libdir/libblksnap.a|")
check_eq "it runs" "$version 4096" "$("$work/t-static")"

lap "libblksnap-dev"
# ---- udev rules, systemd unit ------------------------------------------------------
for rules in 56-dm-blksnap.rules 69-dm-blksnap-attach.rules; do
	check "the udev rules $rules are installed" test -f /lib/udev/rules.d/$rules
	if udevadm verify --help > /dev/null 2>&1; then
		check "udevadm verify $rules" udevadm verify /lib/udev/rules.d/$rules
	fi
done
unit=/lib/systemd/system/blksnap-monitor@.service
check_eq "the monitor unit runs the packaged blksnapctl" \
	'ExecStart=/usr/sbin/blksnapctl monitor %i $BLKSNAP_MONITOR_OPTS' "$(grep ^ExecStart= $unit)"
check "/etc/blksnap/blksnaptab is installed" test -f /etc/blksnap/blksnaptab
check "the shipped blksnaptab parses" $CTL attach --from-blksnaptab

lap "udev rules"
# ---- removal -----------------------------------------------------------------------
check "rmmod dm-blksnap" rmmod dm_blksnap
check "dpkg --purge (its prerm runs dkms remove)" sh -c \
	"dpkg --no-triggers --purge blksnap-dkms libblksnap-dev blksnapctl libblksnap1 > $work/purge.log 2>&1 || { tail -n 20 $work/purge.log; false; }"
check "blksnapctl is gone" test ! -e /usr/sbin/blksnapctl
check "the module sources are gone" test ! -e "$src"
check "the configuration is gone" test ! -e /etc/blksnap
check_eq "dkms forgot dm-blksnap" "" "$(dkms status -m dm-blksnap)"
lap "removal"
