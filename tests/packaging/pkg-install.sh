#!/bin/bash
# Debian packages and make install in the guest: DKMS builds and loads the module; CLI, pkg-config, man, udev, unit smoke
# vm: --no-blksnap --disks 3 --disk-size 128M --timeout 1800
#
# Runs in the guest (root is the host's root read-only plus a tmpfs overlay,
# so dpkg -i, dkms and make install write only to RAM). The packages come
# from debian/build-debs, run on the host before the test (build/deb/ or
# BLKSNAP_PKG_DIR); without them, or when they are older than the tree, the
# test is skipped. The guest runs without dm-blksnap loaded (--no-blksnap):
# the module under test is the one DKMS builds for the guest's kernel from
# the headers the host has installed for it.
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/ctl-lib.sh"

top=$BLKSNAP_TOP
kver=$(uname -r)
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
version=$(cd "$top" && dpkg-parsechangelog -S Version)
work=$(mktemp -d)
at_exit "rm -rf $work"
# Logs of the long steps, kept on the host in build/vm-logs/pkg-install/share/.
logs=${VM_OUT:-$work}

for tool in dpkg dkms pkg-config cc man udevadm; do
	command -v $tool > /dev/null || skip "$tool is missing (apt-get install dkms)"
done
[ -d "/usr/src/linux-headers-$kver" ] || skip "no headers for the guest kernel $kver"

# ---- the packages --------------------------------------------------------------
# Built on the host by debian/build-debs (into build/deb/, or BLKSNAP_PKG_DIR).
# Building them here under emulation takes 5 to 20 minutes; it is done only
# with BLKSNAP_PKG_BUILD_IN_GUEST=1.
debs=${BLKSNAP_PKG_DIR:-$top/build/deb}
if [ "${BLKSNAP_PKG_BUILD_IN_GUEST:-0}" = 1 ]; then
	debs=$work/debs
	start=$(date +%s)
	check "debian/build-debs in the guest" sh -c \
		"$top/debian/build-debs $debs > $logs/pkg-build.log 2>&1 || { tail -n 30 $logs/pkg-build.log; false; }"
	note "the package build took $(($(date +%s) - start)) s"
fi
[ -f "$debs/blksnapctl_${version}_$arch.deb" ] ||
	skip "no packages in $debs: run debian/build-debs on the host first"
# Packages older than the packaging are not the ones to test; older than the
# code they still test the packaging (the lines say so).
newer() { (cd "$top" && find "$@" -type f -newer "$debs/blksnapctl_${version}_$arch.deb" | head -n 3); }
stale=$(newer Makefile dkms.conf debian udev systemd etc userspace/lib/libblksnap.pc.in)
[ -z "$stale" ] || skip "the packages in $debs are older than $(echo $stale): run debian/build-debs again"
stale=$(newer drivers/md include userspace)
[ -z "$stale" ] || note "the packages in $debs are older than $(echo $stale)"
for p in "blksnap-dkms_${version}_all" "blksnapctl_${version}_$arch" \
	"libblksnap1_${version}_$arch" "libblksnap-dev_${version}_$arch"; do
	check "$p.deb was built" test -f "$debs/$p.deb"
done

# ---- install -----------------------------------------------------------------
# The guest's /lib/modules/<release> is the unpacked kernel's: give DKMS the
# headers the host has for this release, as linux-headers-<release> would.
[ -e "/lib/modules/$kver/build" ] || ln -s "/usr/src/linux-headers-$kver" "/lib/modules/$kver/build"
# dkms uses <(...), which needs /dev/fd; the guest has no systemd-udevd or
# systemd to create it.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
start=$(date +%s)
if ! dpkg -i "$debs/libblksnap1_${version}_$arch.deb" "$debs/libblksnap-dev_${version}_$arch.deb" \
	"$debs/blksnapctl_${version}_$arch.deb" "$debs/blksnap-dkms_${version}_all.deb" \
	> "$logs/pkg-dpkg.log" 2>&1; then
	tail -n 30 "$logs/pkg-dpkg.log" | sed 's/^/#   /'
	check "dpkg -i of the four packages" false
fi
echo "ok - dpkg -i of the four packages, DKMS build in the postinst ($(($(date +%s) - start)) s)"
capture "dkms status" dkms status -m dm-blksnap -v "$version" -k "$kver"
note "$OUT"
check "dkms installed dm-blksnap/$version for $kver" grep -q "dm-blksnap/$version, $kver, .*: installed" <<< "$OUT"
capture "modinfo -n dm-blksnap" modinfo -n dm-blksnap
check "the module is DKMS's, in updates/dkms" grep -q "^/lib/modules/$kver/updates/dkms/dm-blksnap.ko" <<< "$OUT"
check "modprobe dm-blksnap" modprobe dm-blksnap
require_target blksnap-origin
require_target blksnap-image

# ---- blksnapctl, man page, bash completion -----------------------------------
CTL=/usr/sbin/blksnapctl
check_eq "blksnapctl version" "blksnapctl $version" "$($CTL version)"
check_eq "man finds blksnapctl(8)" "/usr/share/man/man8/blksnapctl.8.gz" "$(man -w blksnapctl)"
check_eq "the man page renders without warnings" "" \
	"$(MANWIDTH=80 man --warnings -E UTF-8 -l /usr/share/man/man8/blksnapctl.8.gz 2>&1 > /dev/null)"
check "the man page has its NAME" sh -c \
	"MANWIDTH=80 man -l /usr/share/man/man8/blksnapctl.8.gz | grep -q 'blksnapctl - manage dm-blksnap'"
check "the bash completion parses and registers" bash -c \
	'. /usr/share/bash-completion/completions/blksnapctl && complete -p blksnapctl'

# ---- libblksnap-dev: pkg-config, shared and static linking --------------------
check_eq "pkg-config --modversion libblksnap" "$version" "$(pkg-config --modversion libblksnap)"
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
check "it does not need libblksnap.so" sh -c "! ldd $work/t-static | grep -q libblksnap"

# ---- udev rules --------------------------------------------------------------
rules=/lib/udev/rules.d/56-dm-blksnap.rules
check "the udev rules are installed" test -f $rules
if udevadm verify --help > /dev/null 2>&1; then
	check "udevadm verify $rules" udevadm verify $rules
else
	note "udevadm $(udevadm --version) has no verify: checked with udevd below"
fi

# udevd with the installed rules, as on a real system (libdevmapper then
# waits for udev: no DM_DISABLE_UDEV).
udevd=/lib/systemd/systemd-udevd
[ -x $udevd ] || skip "systemd-udevd is not installed"
unset DM_DISABLE_UDEV
$udevd --daemon
at_exit "udevadm control --exit"
udevadm trigger --action=add --subsystem-match=block
udevadm settle -t 60

# Devices of every kind: an origin over a plain disk (vda, with an ext4 file
# system), a layered origin over a dm device (pkgdata over vdb, so
# pkgdata-real), a store (vdc), and the images of a snapshot of both.
mkfs.ext4 -q -L pkgtest /dev/vda
udevadm settle -t 60
fsuuid=$(blkid -o value -s UUID /dev/vda)
dm_create pkgdata "0 $(dev_sectors /dev/vdb) linear /dev/vdb 0"
ctl_ok "attach a plain disk" attach /dev/vda
at_exit "$CTL detach /dev/vda"
ctl_ok "attach a dm device (layered)" attach pkgdata
at_exit "$CTL detach pkgdata"
ctl_ok "create a snapshot of both" create /dev/vda pkgdata --store /dev/vdc --name pkgsnap
at_exit "$CTL destroy pkgsnap"
check "udevadm settle" udevadm settle -t 60

prop() { # prop DM_NAME KEY: a property in udev's database
	udevadm info --query=property "/dev/mapper/$1" | sed -n "s/^$2=//p"
}
dmnode() { readlink -f "/dev/mapper/$1"; }

check_eq "origin: dm uuid" "BLKSNAP-ORIGIN-vda" "$(prop blksnap-vda DM_UUID)"
check_eq "origin: probed by blkid" "pkgtest" "$(prop blksnap-vda ID_FS_LABEL)"
check_eq "origin: ready for systemd" "1" "$(prop blksnap-vda SYSTEMD_READY)"
check_eq "by-uuid points at the origin, not at the disk or the image" "$(dmnode blksnap-vda)" \
	"$(readlink -f "/dev/disk/by-uuid/$fsuuid")"
check_eq "by-label points at the origin" "$(dmnode blksnap-vda)" "$(readlink -f /dev/disk/by-label/pkgtest)"

check_eq "real layer: dm uuid" "BLKSNAP-REAL-pkgdata" "$(prop pkgdata-real DM_UUID)"
check_eq "real layer: no disk rules" "1" "$(prop pkgdata-real DM_UDEV_DISABLE_DISK_RULES_FLAG)"
check_eq "real layer: no other rules" "1" "$(prop pkgdata-real DM_UDEV_DISABLE_OTHER_RULES_FLAG)"
check_eq "real layer: not ready for systemd" "0" "$(prop pkgdata-real SYSTEMD_READY)"
check "real layer: no /dev/disk/by-id link" test ! -e /dev/disk/by-id/dm-name-pkgdata-real
check "real layer: /dev/mapper/pkgdata-real exists" test -b /dev/mapper/pkgdata-real

check_eq "store: dm uuid" "BLKSNAP-STORE-pkgsnap" "$(prop pkgsnap-store DM_UUID)"
check_eq "store: no disk rules" "1" "$(prop pkgsnap-store DM_UDEV_DISABLE_DISK_RULES_FLAG)"
check_eq "store: no other rules" "1" "$(prop pkgsnap-store DM_UDEV_DISABLE_OTHER_RULES_FLAG)"
check_eq "store: not ready for systemd" "0" "$(prop pkgsnap-store SYSTEMD_READY)"
check "store: no /dev/disk/by-id link" test ! -e /dev/disk/by-id/dm-name-pkgsnap-store

img=blksnap-vda-pkgsnap
check_eq "image: dm uuid" "BLKSNAP-IMAGE-pkgsnap-blksnap-vda" "$(prop $img DM_UUID)"
check_eq "image: probed by blkid (the origin's label)" "pkgtest" "$(prop $img ID_FS_LABEL)"
check_eq "image: disk rules stay on" "" "$(prop $img DM_UDEV_DISABLE_DISK_RULES_FLAG)"
check_eq "image: no other rules" "1" "$(prop $img DM_UDEV_DISABLE_OTHER_RULES_FLAG)"
check_eq "image: not ready for systemd" "0" "$(prop $img SYSTEMD_READY)"
check "image: its /dev/disk/by-id/dm-name link" test -L /dev/disk/by-id/dm-name-$img
check "image: in the by-uuid link's candidates" sh -c \
	"udevadm info --query=symlink /dev/mapper/$img | grep -q 'disk/by-uuid/$fsuuid'"

# ---- the systemd unit: its ExecStart, run by hand ----------------------------
unit=/lib/systemd/system/blksnap-monitor@.service
check "the monitor unit is installed" test -f $unit
if command -v systemd-analyze > /dev/null; then
	check "systemd-analyze verify blksnap-monitor@pkgsnap.service" sh -c \
		"systemd-analyze verify $unit > $work/verify.log 2>&1 || { cat $work/verify.log; false; }"
fi
exec_start=$(sed -n 's/^ExecStart=//p' $unit)
check_eq "ExecStart" '/usr/sbin/blksnapctl monitor %i $BLKSNAP_MONITOR_OPTS' "$exec_start"
# What systemd runs for instance pkgsnap with the shipped monitor.conf.
. /etc/blksnap/monitor.conf
cmd=${exec_start//%i/pkgsnap}
cmd=${cmd//\$BLKSNAP_MONITOR_OPTS/$BLKSNAP_MONITOR_OPTS}
$cmd > "$work/monitor.log" 2>&1 &
mon=$!
sleep 3
check "the monitor runs" kill -0 $mon
ctl_ok "destroy the snapshot" destroy pkgsnap
rc=0
wait $mon || rc=$?
check_eq "the monitor exits 0 when the snapshot is destroyed" 0 $rc
ctl_ok "detach pkgdata" detach pkgdata
ctl_ok "detach vda" detach /dev/vda

# ---- removal -----------------------------------------------------------------
check "rmmod dm-blksnap" rmmod dm_blksnap
check "dpkg --purge of the four packages" sh -c \
	"dpkg --purge blksnap-dkms libblksnap-dev blksnapctl libblksnap1 > $work/purge.log 2>&1 || { tail -n 20 $work/purge.log; false; }"
check_eq "dkms forgot dm-blksnap" "" "$(dkms status -m dm-blksnap)"
check "the module is gone" sh -c "! ls /lib/modules/$kver/updates/dkms/dm-blksnap.ko* 2> /dev/null"
check "the module sources are gone" test ! -e "/usr/src/dm-blksnap-$version"
check "blksnapctl is gone" test ! -e /usr/sbin/blksnapctl
check "the configuration is gone" test ! -e /etc/blksnap

# ---- make install / uninstall ----------------------------------------------------
# Staged: DESTDIR set, so nothing but files (the objects in build/ are fresh:
# make check builds userspace before it starts the guests).
mk() { make -s -C "$top" KVER=none "$@" > "$work/make.log" 2>&1 || { tail -n 20 "$work/make.log"; false; }; }
stage=$work/stage
check "make install DESTDIR=... PREFIX=/usr" mk install DESTDIR="$stage" PREFIX=/usr
for f in usr/sbin/blksnapctl usr/lib/libblksnap.so.1 usr/lib/libblksnap.so usr/lib/libblksnap.a \
	usr/include/blksnap.h usr/lib/pkgconfig/libblksnap.pc usr/share/man/man8/blksnapctl.8 \
	usr/share/bash-completion/completions/blksnapctl usr/lib/udev/rules.d/56-dm-blksnap.rules \
	usr/lib/systemd/system/blksnap-monitor@.service etc/blksnap/blksnaptab etc/blksnap/monitor.conf \
	"usr/src/dm-blksnap-$version/dkms.conf" "usr/src/dm-blksnap-$version/drivers/md/Kbuild" \
	"usr/src/dm-blksnap-$version/drivers/md/dm-blksnap.c"; do
	check "staged: /$f" test -e "$stage/$f"
done
check_eq "the staged sources were not given to dkms" "" "$(dkms status -m dm-blksnap)"
check_eq "the staged .pc file points into PREFIX" "/usr/lib" \
	"$(pkg-config --variable=libdir "$stage/usr/lib/pkgconfig/libblksnap.pc")"
check_eq "the staged unit runs the staged blksnapctl" \
	'ExecStart=/usr/sbin/blksnapctl monitor %i $BLKSNAP_MONITOR_OPTS' \
	"$(grep ^ExecStart= "$stage/usr/lib/systemd/system/blksnap-monitor@.service")"
check "make uninstall with the same DESTDIR and PREFIX" mk uninstall DESTDIR="$stage" PREFIX=/usr
check_eq "make uninstall leaves no file behind" "" "$(find "$stage" -type f -o -type l)"

# For real: empty DESTDIR, default PREFIX=/usr/local. The DKMS build was
# tested with the package above; here DKMS_KERNELS is empty, so make install
# runs dkms add only (a second module build under emulation takes minutes).
check "make install DKMS_KERNELS= (runs dkms add)" mk install DKMS_KERNELS=
check "blksnapctl in /usr/local/sbin" test -x /usr/local/sbin/blksnapctl
check_eq "/usr/local/sbin/blksnapctl version" "blksnapctl $version" "$(/usr/local/sbin/blksnapctl version)"
check "the module sources are in /usr/src" test -f "/usr/src/dm-blksnap-$version/dkms.conf"
check "dkms knows dm-blksnap/$version" sh -c "dkms status -m dm-blksnap -v $version | grep -q ': added'"
check "make install again (dkms remove and add again)" mk install DKMS_KERNELS=
check "make uninstall" mk uninstall
check_eq "dkms forgot dm-blksnap" "" "$(dkms status -m dm-blksnap)"
check "the module sources are gone" test ! -e "/usr/src/dm-blksnap-$version"
check_eq "nothing of dm-blksnap is left in /usr/local" "" \
	"$(find /usr/local -name '*blksnap*' 2> /dev/null)"
check "/etc/blksnap is gone" test ! -e /etc/blksnap
