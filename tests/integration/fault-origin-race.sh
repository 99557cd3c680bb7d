#!/bin/bash
# an image constructed while its origin is removed: either may win, nothing crashes (KASAN on the debug lane), nothing is left behind
# vm: --disks 2 --disk-size 32M --timeout 600
# lanes: debug
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

# The image constructor looks the origin up by its real device and used to
# read the origin's mapped_device afterwards, which a concurrent removal of
# the origin frees.
require_target blksnap-image
sz=$(dev_sectors /dev/vda)
rounds=${TEST_ROUNDS:-40}
! debug_kernel || rounds=${TEST_ROUNDS:-6}
won=0
for ((i = 0; i < rounds; i++)); do
	dmsetup create frorig --table "0 $sz blksnap-origin /dev/vda" || die "round $i: origin not created"
	dmsetup create frimg --table "0 $sz blksnap-image /dev/vda /dev/vdb 8" > /dev/null 2>&1 &
	c=$!
	dmsetup remove frorig > /dev/null 2>&1 &
	r=$!
	wait $c && won=$((won + 1)) || true
	wait $r || true
	# Whatever is left goes; a failed image stays removable.
	if dmsetup info frimg > /dev/null 2>&1; then
		dmsetup remove frimg || die "round $i: image not removable"
	fi
	if dmsetup info frorig > /dev/null 2>&1; then
		dmsetup remove frorig || die "round $i: origin not removable"
	fi
done
note "$rounds rounds, the image constructor won $won"
check "no device left" sh -c '! dmsetup info frimg > /dev/null 2>&1 && ! dmsetup info frorig > /dev/null 2>&1'
check "a fresh origin and image work afterwards" sh -c "dmsetup create frorig --table '0 $sz blksnap-origin /dev/vda' && dmsetup create frimg --table '0 $sz blksnap-image /dev/vda /dev/vdb 8'"
check_eq "the image is valid" valid "$(image_field frimg 4)"
check "image removed" dmsetup remove frimg
check "origin removed" dmsetup remove frorig
