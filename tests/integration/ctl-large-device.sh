#!/bin/bash
# blksnapctl create on a 64 TiB device: the default chunk grows with the device (256 KiB, a 32 MiB bitmap); a --chunk that makes more than 2^31 chunks is refused before anything is created
# vm: --disks 2 --disk-size 128M --timeout 400
set -euo pipefail
. "${BLKSNAP_TOP:-$(dirname "$0")/../..}/tests/lib.sh"
. "$BLKSNAP_TOP/tests/image-lib.sh"
. "$BLKSNAP_TOP/tests/ctl-lib.sh"

# A 64 TiB device: 64 MiB of /dev/vda, then dm-zero. The snapshot's data
# checks cover the real part; the rest reads zeros on both sides.
modprobe dm-zero 2> /dev/null || true
tib64=$((1 << 37))
real_len=$((64 << 11))
dm_create big "0 $real_len linear /dev/vda 0
$real_len $((tib64 - real_len)) zero"
at_exit "_dm_remove big"
pre=$IMG_TMP/pre model=$IMG_TMP/model
check "the first 64 MiB filled with random data" fill_random /dev/mapper/big $pre $((64 << 20))
cp $pre $model

ctl_attach /dev/mapper/big
origin=$OUT
check_eq "the attached device has 64 TiB" $tib64 "$(dev_sectors "$origin")"

# 4 KiB chunks would make 2^34 of them; the kernel takes at most 2^31.
ctl_fail "--chunk 4K on 64 TiB is refused with the smallest chunk that works" 1 \
	"use at least 32 KiB" create "$origin" --store /dev/vdb --chunk 4K --name small
check_eq "the refusal left no device behind" "big big-bsreal" "$(dm_names)"

ctl_ok "create without --chunk" create "$origin" --store /dev/vdb --name large
at_exit "undo_snapshot large"
image=/dev/mapper/big-large
check_eq "the image's chunk is 256 KiB (512 sectors)" 512 \
	"$(dmsetup table big-large | awk '{ print $6 }')"
check_eq "the image has 64 TiB" $tib64 "$(dev_sectors $image)"
check_eq "blksnapctl status --json shows the chunk" 512 \
	"$(blksnapctl status large --json | jq '.images[0].chunk_sectors')"

# First writes copy whole 256 KiB chunks, in runs; the second write is
# part copied (chunks 1-3), part not (4-5).
for off in 0 $((300 << 10)) $((5 << 20)) $((40 << 20)); do
	check "origin: 1 MiB at $off" model_dd "$origin" $model $off $((1 << 20)) direct
done
check "origin: 4 KiB at 63 MiB" model_dd "$origin" $model $((63 << 20)) 4096 direct
check_eq "image state is valid" valid "$(image_field big-large 4)"
check_eq "copied_chunks: 4 + 2 + 4 + 4 + 1" 15 "$(image_field big-large 3)"
check_same "the image's first 64 MiB equal the pre-image" $image $pre $((256 << 10)) \
	0 $((64 << 20))
check_same "the origin's first 64 MiB equal the model" "$origin" $model $((256 << 10)) \
	0 $((64 << 20))
zeros() { # zeros DEV OFFSET: 1 MiB at OFFSET reads as zeros
	cmp -s <(dd if="$1" bs=1M skip=$(($2 >> 20)) count=1 iflag=direct status=none) \
		<(head -c $((1 << 20)) /dev/zero)
}
check "the image reads zeros at 40 TiB" zeros $image $((40 << 40))
check "the image reads zeros at its last MiB" zeros $image $(((tib64 << 9) - (1 << 20)))

ctl_ok "destroy the snapshot" destroy large
check_eq "only the origin's devices are left" "big big-bsreal" "$(dm_names)"
