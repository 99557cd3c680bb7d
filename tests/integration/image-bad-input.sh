#!/bin/bash
# malformed blksnap-image tables are refused with EINVAL (or EBUSY), a log line, and no kernel report
# vm: --disks 4 --disk-size 64M --timeout 300
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"

real=/dev/vda
store=/dev/vdb
sz=$(dev_sectors $real)
require_target blksnap-image
modprobe dm-linear 2> /dev/null || true
kmsg_mark

# refuse DESC TEXT_IN_LOG ERRNO_TEXT TABLE: create fails with ERRNO_TEXT (the
# strerror dmsetup prints), and a blksnap line in the kernel log names the
# problem and the errno (holds TEXT_IN_LOG, case-insensitive)
n=0
refuse() {
	local desc=$1 logtext=$2 errtext=$3 table=$4
	[ -n "$logtext" ] && [ -n "$errtext" ] || die "refuse: '$desc' names no log text or errno"
	n=$((n + 1))
	kmsg_mark
	expect_errno "$desc" "$errtext" dmsetup create badimg$n --table "$table"
	at_exit "_dm_remove badimg$n"
	if dmsetup info badimg$n > /dev/null 2>&1; then
		dmsetup remove badimg$n
	fi
	local log
	log=$(kmsg_since_mark | grep -i 'blksnap' || true)
	if [ -n "$log" ] && [[ ${log,,} == *"${logtext,,}"* ]]; then
		echo "ok - $desc: the kernel log says '$logtext'"
	else
		echo "not ok - $desc: the kernel log does not say '$logtext'"
		echo "#   log: ${log:-(nothing)}"
		exit 1
	fi
}

need="Need <real-dev> <store-dev> <chunk_sectors> (-EINVAL)"

# No blksnap-origin yet.
refuse "image over a device without a blksnap-origin" "No blksnap-origin on the real device (-EINVAL)" "Invalid argument" \
	"0 $sz blksnap-image $real $store 8"

check "blksnap-origin over $real" origin_create bdorig $real
origin=/dev/mapper/bdorig
check "a dm-linear straight over $real" dm_create bdlin_real "0 $sz linear $real 0"
check "a dm-linear straight over the origin" dm_create bdlin_orig "0 $sz linear $origin 0"

refuse "store is the real device" "The store cannot be the real device, its origin, or a device mapped onto either (-EINVAL)" "Invalid argument" \
	"0 $sz blksnap-image $real $real 8"
refuse "store is the origin device" "The store cannot be the real device, its origin, or a device mapped onto either (-EINVAL)" "Invalid argument" \
	"0 $sz blksnap-image $real $origin 8"
refuse "real device given as the origin device" "No blksnap-origin on the real device (-EINVAL)" "Invalid argument" \
	"0 $sz blksnap-image $origin $store 8"
for chunk in 0 4 7 12 24 100 262144 abc -8 8x; do
	refuse "chunk '$chunk' (not a power of two in 8..131072)" \
		"chunk_sectors must be a power of two from 8 to 131072 (-EINVAL)" "Invalid argument" \
		"0 $sz blksnap-image $real $store $chunk"
done
refuse "too few arguments (no chunk)" "$need" "Invalid argument" "0 $sz blksnap-image $real $store"
refuse "too few arguments (real only)" "$need" "Invalid argument" "0 $sz blksnap-image $real"
refuse "no arguments" "$need" "Invalid argument" "0 $sz blksnap-image"
refuse "an extra word without an option count" "Invalid number of optional arguments (-EINVAL)" "Invalid argument" \
	"0 $sz blksnap-image $real $store 8 extra"
refuse "unknown option" "Optional argument without a value (-EINVAL)" "Invalid argument" "0 $sz blksnap-image $real $store 8 1 frobnicate"
refuse "unknown option with a value" "Unknown optional argument (-EINVAL)" "Invalid argument" "0 $sz blksnap-image $real $store 8 2 frobnicate 7"
refuse "low_water without its value" "Optional argument without a value (-EINVAL)" "Invalid argument" "0 $sz blksnap-image $real $store 8 1 low_water"
refuse "low_water not a number" "Optional argument value is not a number (-EINVAL)" "Invalid argument" "0 $sz blksnap-image $real $store 8 2 low_water lots"
refuse "option count larger than the words" "Invalid number of optional arguments (-EINVAL)" "Invalid argument" "0 $sz blksnap-image $real $store 8 4 low_water 8"
refuse "option count not a number" "Invalid number of optional arguments (-EINVAL)" "Invalid argument" "0 $sz blksnap-image $real $store 8 x low_water 8"
refuse "image longer than its origin" "Image is larger than its origin (-EINVAL)" "Invalid argument" "0 $((sz + 8)) blksnap-image $real $store 8"
refuse "real device that does not exist" "Real device lookup failed (-ENOENT)" "No such file or directory" "0 $sz blksnap-image /dev/nonexistent $store 8"
refuse "store device that does not exist" "Store device lookup failed (-ENOENT)" "No such file or directory" "0 $sz blksnap-image $real /dev/nonexistent 8"

# After all that, a good image works and the refusals left no claim behind.
check_eq "origin state is still '-'" - "$(status_field bdorig 5)"
check "a well-formed image is accepted" image_create bdimg $real $store 8 low_water 100
check_eq "its table reads back" "$(dev_majmin $real) $(dev_majmin $store) 8 2 low_water 100" \
	"$(dmsetup table bdimg | cut -d' ' -f4-)"
check_eq "it is valid" valid "$(image_field bdimg 4)"
refuse "a second image on the same origin" "The origin already has a snapshot image (-EBUSY)" "Device or resource busy" \
	"0 $sz blksnap-image $real /dev/vdc 8"
check_eq "the first image is still valid" valid "$(image_field bdimg 4)"
check "the first image removed" dmsetup remove bdimg

# A store that is a dm device mapped straight onto the real device or the
# origin (the kernel sees it in the store's holder links, "slaves/").
refuse "store is a dm-linear onto the real device" "The store cannot be the real device, its origin, or a device mapped onto either (-EINVAL)" "Invalid argument" \
	"0 $sz blksnap-image $real /dev/mapper/bdlin_real 8"
refuse "store is a dm-linear onto the origin" "The store cannot be the real device, its origin, or a device mapped onto either (-EINVAL)" "Invalid argument" \
	"0 $sz blksnap-image $real /dev/mapper/bdlin_orig 8"
# A partition of the real device's own disk.
check "two partitions on /dev/vdd" sh -c 'printf "label: dos\n,32M\n,\n" | sfdisk -q /dev/vdd && blockdev --rereadpt /dev/vdd'
for _ in $(seq 50); do [ -b /dev/vdd1 ] && break; sleep 0.1; done
check "blksnap-origin over the whole disk /dev/vdd" origin_create bdorig2 /dev/vdd
# dm opens devices exclusively: the block layer refuses the overlap.
refuse "store is a partition of the real device's disk" "Store device lookup failed (-EBUSY)" "Device or resource busy" \
	"0 $(dev_sectors /dev/vdd) blksnap-image /dev/vdd /dev/vdd1 8"
check "origin over /dev/vdd removed" dmsetup remove bdorig2

# copy_timeout: 1..86400 seconds, each option once.
refuse "copy_timeout 0" "copy_timeout must be 1 to 86400 seconds (-EINVAL)" "Invalid argument" "0 $sz blksnap-image $real $store 8 2 copy_timeout 0"
refuse "copy_timeout 86401" "copy_timeout must be 1 to 86400 seconds (-EINVAL)" "Invalid argument" "0 $sz blksnap-image $real $store 8 2 copy_timeout 86401"
refuse "low_water given twice" "Optional argument given twice (-EINVAL)" "Invalid argument" "0 $sz blksnap-image $real $store 8 4 low_water 8 low_water 9"
refuse "six option words" "Invalid number of optional arguments (-EINVAL)" "Invalid argument" "0 $sz blksnap-image $real $store 8 6 low_water 8 copy_timeout 9 x 1"
check "both options are accepted" image_create bdimg $real $store 8 copy_timeout 30 low_water 100
check_eq "the table keeps them as given" "$(dev_majmin $real) $(dev_majmin $store) 8 4 low_water 100 copy_timeout 30" \
	"$(dmsetup table bdimg | cut -d' ' -f4-)"
check "image removed" dmsetup remove bdimg
_kmsg_mark=0
check_no_kernel_report "no kernel report in the whole run"
