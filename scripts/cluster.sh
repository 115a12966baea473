#!/usr/bin/env bash
# Three local Sluice nodes on loopback, all voters of the controller quorum:
#
#   node  client API        internal          HTTP (/metrics)   data
#   1     127.0.0.1:9700    127.0.0.1:9701    127.0.0.1:9702    ./data/node1
#   2     127.0.0.1:9710    127.0.0.1:9711    127.0.0.1:9712    ./data/node2
#   3     127.0.0.1:9720    127.0.0.1:9721    127.0.0.1:9722    ./data/node3
#
# Usage: scripts/cluster.sh start|stop|status|restart [NODE...]
#        scripts/cluster.sh join NODE   (a node outside the quorum, ids 4..9,
#                                        ports 97N0.., joins through node 1)
#
# A node keeps its id and data across stop/start. Logs: ./data/nodeN/sluice.log.
# SLUICE_BIN (default ./bin/sluice) and DATA (default ./data) override paths;
# extra server flags can be passed in SLUICE_SERVER_FLAGS.
set -euo pipefail

BIN=${SLUICE_BIN:-./bin/sluice}
DATA=${DATA:-./data}
QUORUM="1@127.0.0.1:9701,2@127.0.0.1:9711,3@127.0.0.1:9721"

port() { echo $((9700 + 10 * ($1 - 1) + $2)); }
dir() { echo "$DATA/node$1"; }
pidof_node() {
	local f; f="$(dir "$1")/sluice.pid"
	[[ -f $f ]] || return 1
	local pid; pid=$(cat "$f")
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

start_node() { # id [extra flags...]
	local id=$1; shift
	if pid=$(pidof_node "$id"); then
		echo "node $id already running (pid $pid)"
		return
	fi
	mkdir -p "$(dir "$id")"
	# shellcheck disable=SC2086
	nohup "$BIN" server --node-id "$id" --data-dir "$(dir "$id")" \
		--listen "127.0.0.1:$(port "$id" 0)" \
		--internal-listen "127.0.0.1:$(port "$id" 1)" \
		--http-listen "127.0.0.1:$(port "$id" 2)" \
		"$@" ${SLUICE_SERVER_FLAGS:-} >>"$(dir "$id")/sluice.log" 2>&1 &
	echo $! >"$(dir "$id")/sluice.pid"
	echo "node $id started (pid $!), client API 127.0.0.1:$(port "$id" 0)"
}

wait_ready() { # id
	local id=$1 i
	for i in $(seq 1 600); do
		if curl -fs "http://127.0.0.1:$(port "$id" 2)/readyz" >/dev/null 2>&1; then
			return 0
		fi
		if ! pidof_node "$id" >/dev/null; then
			echo "node $id exited; last log lines:" >&2
			tail -n 20 "$(dir "$id")/sluice.log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "node $id not ready after 60s (see $(dir "$id")/sluice.log)" >&2
	return 1
}

stop_node() { # id
	local id=$1 pid i
	if ! pid=$(pidof_node "$id"); then
		echo "node $id not running"
		rm -f "$(dir "$id")/sluice.pid"
		return
	fi
	kill -TERM "$pid"
	for i in $(seq 1 400); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "node $id did not stop in 40s; killing it" >&2
		kill -KILL "$pid"
	fi
	rm -f "$(dir "$id")/sluice.pid"
	echo "node $id stopped"
}

status_node() { # id
	local id=$1 pid
	if pid=$(pidof_node "$id"); then
		local r; r=$(curl -fs "http://127.0.0.1:$(port "$id" 2)/readyz" 2>/dev/null || echo "not ready")
		echo "node $id: running (pid $pid), $r, client API 127.0.0.1:$(port "$id" 0)"
	else
		echo "node $id: stopped"
	fi
}

nodes() { # the ids named, else 1 2 3 (and joined nodes with data)
	if (($# > 0)); then
		echo "$@"
		return
	fi
	local ids="1 2 3" d
	for d in "$DATA"/node[4-9]; do
		[[ -d $d ]] && ids="$ids ${d##*node}"
	done
	echo "$ids"
}

start_ids() {
	local id
	for id in "$@"; do
		if ((id <= 3)); then
			start_node "$id" --controller-quorum "$QUORUM"
		else
			start_node "$id" --join "127.0.0.1:9701,127.0.0.1:9711,127.0.0.1:9721"
		fi
	done
	for id in "$@"; do wait_ready "$id"; done
}

cmd=${1:-status}
shift || true
case $cmd in
start)
	[[ -x $BIN ]] || { echo "$BIN not found: run make build" >&2; exit 1; }
	# shellcheck disable=SC2046
	start_ids $(nodes "$@")
	echo "cluster ready: export SLUICE_BROKERS=127.0.0.1:9700,127.0.0.1:9710,127.0.0.1:9720"
	;;
join)
	id=${1:?usage: $0 join NODE (4..9)}
	((id >= 4 && id <= 9)) || { echo "joining node ids are 4..9" >&2; exit 1; }
	start_ids "$id"
	;;
stop)
	for id in $(nodes "$@"); do stop_node "$id"; done
	;;
restart)
	for id in $(nodes "$@"); do stop_node "$id"; done
	# shellcheck disable=SC2046
	start_ids $(nodes "$@")
	;;
status)
	for id in $(nodes "$@"); do status_node "$id"; done
	;;
*)
	echo "usage: $0 start|stop|status|restart [NODE...] | join NODE" >&2
	exit 2
	;;
esac
