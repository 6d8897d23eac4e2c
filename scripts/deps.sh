#!/usr/bin/env bash
# deps.sh makes sure the servers that binlake's tests and demo start are
# installed: MariaDB always, versitygw (S3) when called with "s3".
# It is quiet when everything is present and never starts a system service.
#
#   scripts/deps.sh        # MariaDB server binaries
#   scripts/deps.sh s3     # ... and versitygw
#   scripts/deps.sh kinesis   # ... and node, npm and kinesalite (npm, into ~/.cache/binlake/npm)
#   scripts/deps.sh browser   # ... and node, npm, chromium and playwright-core (npm, into
#                             # ~/.cache/binlake/npm) for the console's browser test
set -euo pipefail

VERSITYGW=github.com/versity/versitygw/cmd/versitygw@v1.8.0

# PATH of a non-login root shell may lack /usr/sbin, where mariadbd lives.
have_mariadb() {
	local d
	command -v mariadbd >/dev/null 2>&1 && return 0
	command -v mysqld >/dev/null 2>&1 && return 0
	for d in /usr/sbin /usr/bin /usr/local/mysql/bin; do
		[[ -x $d/mariadbd || -x $d/mysqld ]] && return 0
	done
	return 1
}

install_mariadb() {
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
		echo "deps.sh: MariaDB server not found; install mariadb-server: sudo apt-get install -y mariadb-server" >&2
		exit 1
	fi
	echo "deps.sh: installing mariadb-server" >&2
	# A policy-rc.d that denies every action keeps the package from starting
	# the system service; the tests start their own servers.
	local policy=/usr/sbin/policy-rc.d
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
}

# go install puts binaries in $GOBIN, else in the first entry of GOPATH.
gobin() {
	local dir
	dir=$(go env GOBIN 2>/dev/null || true)
	if [[ -z $dir ]]; then
		dir=$(go env GOPATH 2>/dev/null || echo "$HOME/go")
		dir=${dir%%:*}/bin
	fi
	echo "$dir"
}

have_versitygw() {
	command -v versitygw >/dev/null 2>&1 && return 0
	command -v go >/dev/null 2>&1 && [[ -x $(gobin)/versitygw ]]
}

install_versitygw() {
	if ! command -v go >/dev/null 2>&1; then
		echo "deps.sh: versitygw not found and go is not installed to build it: go install $VERSITYGW" >&2
		exit 1
	fi
	echo "deps.sh: installing versitygw ($VERSITYGW)" >&2
	go install "$VERSITYGW"
}

# node and npm run the independent readers and servers from npm the tests
# use (DuckDB's @duckdb/node-api, kinesalite); the tests install those
# packages themselves into $HOME/.cache/binlake/npm.
have_node() {
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1
}

install_node() {
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
		echo "deps.sh: node/npm not found; install them: sudo apt-get install -y nodejs npm" >&2
		exit 1
	fi
	echo "deps.sh: installing nodejs and npm" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
}

# kinesalite (a Kinesis-compatible server) for the Kinesis stream tests.
KINESALITE=kinesalite@3.3.3
NPM_CACHE=${BINLAKE_NPM_CACHE:-$HOME/.cache/binlake/npm}
install_kinesalite() {
	[[ -f $NPM_CACHE/node_modules/kinesalite/package.json ]] && return 0
	echo "deps.sh: installing $KINESALITE into $NPM_CACHE" >&2
	mkdir -p "$NPM_CACHE"
	npm install --prefix "$NPM_CACHE" --no-audit --no-fund --loglevel=error "$KINESALITE" >/dev/null
}

# Debian's chromium, driven by playwright-core in the console's browser test.
have_chromium() {
	[[ -x /usr/bin/chromium ]]
}

install_chromium() {
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
		echo "deps.sh: chromium not found; install it: sudo apt-get install -y chromium" >&2
		exit 1
	fi
	echo "deps.sh: installing chromium" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

# playwright-core drives chromium. Installed here, before the tests run, so
# that no two test processes run npm on the same prefix at once.
PLAYWRIGHT=playwright-core
install_playwright() {
	[[ -f $NPM_CACHE/node_modules/playwright-core/package.json ]] && return 0
	echo "deps.sh: installing $PLAYWRIGHT into $NPM_CACHE" >&2
	mkdir -p "$NPM_CACHE"
	npm install --prefix "$NPM_CACHE" --no-audit --no-fund --loglevel=error "$PLAYWRIGHT" >/dev/null
}

want_s3=false
want_browser=false
want_bench=false
want_node=false
want_kinesis=false
for arg in "$@"; do
	case $arg in
	s3) want_s3=true ;;
	node) want_node=true ;;
	kinesis) want_node=true want_kinesis=true ;;
	browser) want_node=true want_browser=true ;;
	bench) want_bench=true ;;
	*)
		echo "usage: $0 [s3] [node] [kinesis] [browser] [bench]" >&2
		exit 2
		;;
	esac
done

have_mariadb || install_mariadb
if ! have_mariadb; then
	echo "deps.sh: mariadb-server is installed but mariadbd was not found" >&2
	exit 1
fi
if $want_s3; then
	have_versitygw || install_versitygw
fi
if $want_node; then
	have_node || install_node
fi
if $want_kinesis; then
	install_kinesalite
fi
if $want_browser; then
	have_chromium || install_chromium
	install_playwright
fi
if $want_bench && ! { command -v sysbench >/dev/null 2>&1 && command -v mydumper >/dev/null 2>&1; }; then
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
		echo "deps.sh: make bench needs sysbench and mydumper: sudo apt-get install -y sysbench mydumper" >&2
		exit 1
	fi
	echo "deps.sh: installing sysbench and mydumper" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sysbench mydumper >/dev/null
fi
