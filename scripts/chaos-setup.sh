#!/bin/sh
# Installs what the long chaos run needs for network partitions: iptables (root only).
# Without it the chaos tests partition nodes by holding their in-process relays.
set -eu
if command -v iptables >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "chaos-setup: not root; partitions will use the test's relays instead of iptables" >&2
	exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
	apt-get install -y iptables >/dev/null || { apt-get update >/dev/null && apt-get install -y iptables >/dev/null; }
else
	echo "chaos-setup: no apt-get; install iptables by hand for iptables partitions" >&2
fi
