# SPDX-License-Identifier: GPL-2.0
#
# The chart of Documentation/benchmark.md: throughput ratios of its "Latest
# results" (median, and the min-max range of the runs as error bars).
# `make diagrams` (scripts/diagrams) extracts the ratio tables of
# benchmark.md into writes.dat and reads.dat, runs this script in that
# directory and installs bench-chart.svg next to it. The same series as the
# chart.png of `make bench` (tests/bench/report.py), minus the reads through
# the origin, which benchmark.md gives relative to dm-linear, not to the device.
set terminal svg size 1100,860 dynamic font "Helvetica,12" background rgb "white"
set output 'bench-chart.svg'
set multiplot layout 2,1 title "dm-blksnap vs dm-linear and dm-snapshot (make bench: QEMU TCG, brd RAM disks, 4 KiB chunks)\nmedian of 3 runs; error bars: min-max of the runs"
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key outside right top vertical
set yrange [0:200]
set ytics 25
set bmargin 4
set lmargin at screen 0.09
set rmargin at screen 0.73
set ylabel "% of dm-linear"
set title "Writes through the origin (dashed: the goals, tracking >= 97%, overwrite >= 90%)"
set arrow 1 from graph 0, first 97 to graph 1, first 97 nohead dt 2 lc rgb '#4e79a7'
set arrow 2 from graph 0, first 90 to graph 1, first 90 nohead dt 2 lc rgb '#59a14f'
plot 'writes.dat' using 2:3:4:xtic(1) title 'blksnap tracking' lc rgb '#4e79a7', \
     '' using 5:6:7 title 'blksnap overwrite' lc rgb '#59a14f', \
     '' using 8:9:10 title 'dm-snap overwrite' lc rgb '#bab0ac', \
     '' using 11:12:13 title 'blksnap first write' lc rgb '#e15759', \
     '' using 14:15:16 title 'dm-snap first write' lc rgb '#f28e2b'
unset arrow 1
unset arrow 2
set ylabel "% of the device"
set title "Reads, % of reading the device itself (dashed: the goal, image 1M sequential >= 90%)"
set arrow 3 from graph 0, first 90 to graph 1, first 90 nohead dt 2 lc rgb '#59a14f'
plot 'reads.dat' using 2:3:4:xtic(1) title 'dm-linear' lc rgb '#9c9c9c', \
     '' using 5:6:7 title 'blksnap image' lc rgb '#4e79a7', \
     '' using 8:9:10 title 'dm-snap snapshot' lc rgb '#f28e2b', \
     '' using 11:12:13 title 'blksnap image, copied' lc rgb '#8cd17d', \
     '' using 14:15:16 title 'dm-snap snapshot, copied' lc rgb '#ffbe7d'
unset multiplot
