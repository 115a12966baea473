#!/usr/bin/env bash
# Idle cost of many partitions: starts three local nodes (scripts/cluster.sh,
# ports 9700/9710/9720) in a fresh data directory, creates one topic of
# PARTITIONS partitions (default 1000) with replication factor 3, waits until
# every partition has a leader and has settled (SETTLE seconds, default 45:
# idle Raft groups stop ticking once quiesced), then samples the
# CPU time (utime+stime from /proc) and resident memory of the three node
# processes over WINDOW seconds (default 30) with no client traffic.
#
# Usage: scripts/idle-cpu.sh            (make idle-cpu)
#        PARTITIONS=300 WINDOW=10 scripts/idle-cpu.sh
set -euo pipefail

PARTITIONS=${PARTITIONS:-1000}
WINDOW=${WINDOW:-30}
SETTLE=${SETTLE:-45}
export DATA=${DATA:-$(mktemp -d /tmp/sluice-idle.XXXXXX)}
export SLUICE_BROKERS=127.0.0.1:9700,127.0.0.1:9710,127.0.0.1:9720
BIN=${SLUICE_BIN:-./bin/sluice}
here=$(dirname "$0")

cleanup() { "$here/cluster.sh" stop >/dev/null 2>&1 || true; rm -rf "$DATA"; }
trap cleanup EXIT

"$here/cluster.sh" start >/dev/null
"$BIN" topic create idle --partitions "$PARTITIONS" --replication-factor 3 --timeout 120s

# Every partition led: the LEADER column of `topic describe` is a node id.
for i in $(seq 1 300); do
	led=$("$BIN" topic describe idle --timeout 30s |
		awk '/^PARTITION /{t=1; next} t && NF==0 {t=0} t && $2 ~ /^[1-9][0-9]*$/ {n++} END {print n+0}')
	[[ $led -eq $PARTITIONS ]] && break
	sleep 1
done
echo "partitions with a leader: $led of $PARTITIONS"
echo "settling for ${SETTLE}s"
sleep "$SETTLE"

hz=$(getconf CLK_TCK)
pids=$(cat "$DATA"/node{1,2,3}/sluice.pid)
ticks() { # pid: utime+stime in clock ticks
	awk '{print $14 + $15}' "/proc/$1/stat"
}
declare -A t0
for p in $pids; do t0[$p]=$(ticks "$p"); done
s0=$(date +%s.%N)
sleep "$WINDOW"
s1=$(date +%s.%N)
total=0
n=1
for p in $pids; do
	d=$(($(ticks "$p") - t0[$p]))
	rss=$(awk '/^VmRSS/{print $2}' "/proc/$p/status")
	pct=$(awk -v d="$d" -v hz="$hz" -v a="$s0" -v b="$s1" 'BEGIN{printf "%.2f", 100*d/hz/(b-a)}')
	echo "node $n: cpu ${pct}% of one core, rss $((rss / 1024)) MiB"
	total=$(awk -v t="$total" -v x="$pct" 'BEGIN{printf "%.2f", t+x}')
	n=$((n + 1))
done
echo "idle: $PARTITIONS partitions x RF3 on 3 nodes: cpu ${total}% of one core in total over ${WINDOW}s"
