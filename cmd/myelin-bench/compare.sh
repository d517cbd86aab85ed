#!/usr/bin/env bash
# Runs myelin-bench against Myelin and Dendrite v0.13.8 on this machine, one server at a time, each
# on a fresh database, and writes the JSON results, the tables and side-by-side comparisons to
# OUTDIR. Every server listens on loopback only, with rate limiting off.
#
#   cmd/myelin-bench/compare.sh OUTDIR [sqlite] [postgres] [federation]
#
# Needs: go, openssl, python3; dendrite, generate-config and generate-keys v0.13.8 in
# $DENDRITE_BIN (default $(go env GOPATH)/bin); for "postgres", a PostgreSQL server at $PG
# (default postgres://postgres@127.0.0.1:5432, trust authentication) where it may create and drop
# the databases bench_myelin and bench_dendrite. Extra myelin-bench flags go in $BENCH_ARGS and
# override the script's (BENCH_ARGS="--scenario send,sync-wake" re-runs only those).
set -euo pipefail

OUT=${1:?usage: compare.sh OUTDIR [sqlite] [postgres] [federation]}
shift
MODES=${*:-sqlite postgres federation}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DENDRITE_BIN=${DENDRITE_BIN:-$(go env GOPATH)/bin}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
BENCH_ARGS=${BENCH_ARGS:-}

mkdir -p "$OUT/bin"
OUT=$(cd "$OUT" && pwd)
(cd "$ROOT" && go build -o "$OUT/bin/myelin" ./cmd/myelin && go build -o "$OUT/bin/myelin-bench" ./cmd/myelin-bench)
BENCH=$OUT/bin/myelin-bench
SECRET=$OUT/shared-secret
[ -f "$SECRET" ] || (umask 077 && openssl rand -hex 24 >"$SECRET")

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_up() { # URL
	for _ in $(seq 1 300); do
		curl -sf "$1/_matrix/client/versions" >/dev/null && return 0
		sleep 0.2
	done
	echo "no server at $1" >&2
	return 1
}

stop() { # PID
	kill "$1"
	while kill -0 "$1" 2>/dev/null; do sleep 0.2; done
}

# myelin_config DIR SERVER_NAME CLIENT_PORT FED_PORT DB_URL [FEDERATION_YAML]
myelin_config() {
	mkdir -p "$1"
	cat >"$1/myelin.yaml" <<EOF
server_name: "$2"
data_dir: "$1/data"
database: {url: "$5"}
client: {listen: "127.0.0.1:$3"}
federation: {listen: "127.0.0.1:$4", allow_private_addresses: true${6:+, $6}}
registration: {enabled: true}
ratelimit: {enabled: false}
log: {level: warn}
EOF
}

start_myelin() { # DIR -> sets PID
	(cd "$1" && exec "$OUT/bin/myelin" serve --config myelin.yaml >server.log 2>&1) &
	PID=$!
	PIDS+=("$PID")
}

# dendrite_config DIR SERVER_NAME DB_URL(empty for SQLite)
dendrite_config() {
	mkdir -p "$1"
	(cd "$1" && "$DENDRITE_BIN/generate-config" -dir "$1" -server "$2" ${3:+-db "$3"} >dendrite.yaml &&
		"$DENDRITE_BIN/generate-keys" --private-key matrix_key.pem --tls-cert server.crt --tls-key server.key >/dev/null)
	python3 - "$1/dendrite.yaml" "$SECRET" <<'EOF'
import re, sys
path, secret = sys.argv[1], open(sys.argv[2]).read().strip()
s = open(path).read()
s = s.replace('registration_shared_secret: ""', 'registration_shared_secret: "%s"' % secret)
s = s.replace('  rate_limiting:\n    enabled: true', '  rate_limiting:\n    enabled: false')
s = s.replace('- type: file\n  level: info', '- type: file\n  level: warn')
# Federation between two loopback Dendrites: self-signed certificates, keys fetched directly
# (no notary: there is no network).
s = re.sub(r'(federation_api:\n(?:.*\n)*?  disable_tls_validation: )false', r'\1true', s, count=1)
s = re.sub(r'  key_perspectives:\n(?:  [- ].*\n|    .*\n|      .*\n)*', '  key_perspectives: []\n', s, count=1)
s = s.replace('prefer_direct_fetch: false', 'prefer_direct_fetch: true')
open(path, 'w').write(s)
EOF
}

start_dendrite() { # DIR HTTP_PORT [HTTPS_PORT] -> sets PID
	local tls=()
	[ -n "${3:-}" ] && tls=(-https-bind-address "127.0.0.1:$3" -tls-cert server.crt -tls-key server.key)
	(cd "$1" && exec "$DENDRITE_BIN/dendrite" -config dendrite.yaml -http-bind-address "127.0.0.1:$2" "${tls[@]}" >server.log 2>&1) &
	PID=$!
	PIDS+=("$PID")
}

fresh_pg() { # DB
	psql "$PG/postgres" -q -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"
}

bench() { # NAME URL PID [extra flags...]
	local name=$1 url=$2 pid=$3
	shift 3
	echo "== $name" >&2
	# shellcheck disable=SC2086
	"$BENCH" --hs "$url" --pid "$pid" --json "$OUT/$name.json" "$@" $BENCH_ARGS | tee "$OUT/$name.txt"
}

for mode in $MODES; do
	case $mode in
	sqlite | postgres)
		mdb="" ddb=""
		if [ "$mode" = postgres ]; then
			fresh_pg bench_myelin
			fresh_pg bench_dendrite
			mdb="$PG/bench_myelin?sslmode=disable" ddb="$PG/bench_dendrite?sslmode=disable"
		fi
		rm -rf "$OUT/myelin-$mode" "$OUT/dendrite-$mode"
		myelin_config "$OUT/myelin-$mode" localhost 18008 18448 "$mdb"
		start_myelin "$OUT/myelin-$mode"
		wait_up http://127.0.0.1:18008
		bench "myelin-$mode" http://127.0.0.1:18008 "$PID" --scenario all
		stop "$PID"

		dendrite_config "$OUT/dendrite-$mode" localhost "$ddb"
		start_dendrite "$OUT/dendrite-$mode" 28008
		wait_up http://127.0.0.1:28008
		bench "dendrite-$mode" http://127.0.0.1:28008 "$PID" --scenario all --shared-secret-file "$SECRET"
		stop "$PID"
		"$BENCH" compare "Myelin=$OUT/myelin-$mode.json" "Dendrite=$OUT/dendrite-$mode.json" >"$OUT/compare-$mode.md"
		;;
	federation)
		ca=$OUT/ca
		rm -rf "$ca" "$OUT"/myelin-fed* "$OUT"/dendrite-fed*
		mkdir -p "$ca"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$ca/ca.key" \
			-out "$ca/ca.crt" -days 2 -subj "/CN=myelin-bench CA" 2>/dev/null
		for h in hs1 hs2; do
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$ca/$h.key" \
				-out "$ca/$h.csr" -subj "/CN=$h.test" 2>/dev/null
			openssl x509 -req -in "$ca/$h.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -CAcreateserial \
				-out "$ca/$h.crt" -days 2 -extfile <(echo "subjectAltName=DNS:$h.test") 2>/dev/null
		done
		tls() { echo "tls_cert: \"$ca/$1.crt\", tls_key: \"$ca/$1.key\", trusted_ca_files: [\"$ca/ca.crt\"], static_hosts: {\"$2.test\": \"127.0.0.1:$3\"}"; }
		myelin_config "$OUT/myelin-fed1" hs1.test 19101 19201 "" "$(tls hs1 hs2 19202)"
		myelin_config "$OUT/myelin-fed2" hs2.test 19102 19202 "" "$(tls hs2 hs1 19201)"
		start_myelin "$OUT/myelin-fed1"
		p1=$PID
		start_myelin "$OUT/myelin-fed2"
		p2=$PID
		wait_up http://127.0.0.1:19101
		wait_up http://127.0.0.1:19102
		bench myelin-federation http://127.0.0.1:19101 "$p2" --hs2 http://127.0.0.1:19102 --scenario federation
		stop "$p1"
		stop "$p2"

		# Dendrite names each server by its federation address, so no resolver is needed.
		dendrite_config "$OUT/dendrite-fed1" 127.0.0.1:29201 ""
		dendrite_config "$OUT/dendrite-fed2" 127.0.0.1:29202 ""
		start_dendrite "$OUT/dendrite-fed1" 29101 29201
		p1=$PID
		start_dendrite "$OUT/dendrite-fed2" 29102 29202
		p2=$PID
		wait_up http://127.0.0.1:29101
		wait_up http://127.0.0.1:29102
		bench dendrite-federation http://127.0.0.1:29101 "$p2" --hs2 http://127.0.0.1:29102 --scenario federation --shared-secret-file "$SECRET"
		stop "$p1"
		stop "$p2"
		"$BENCH" compare "Myelin=$OUT/myelin-federation.json" "Dendrite=$OUT/dendrite-federation.json" >"$OUT/compare-federation.md"
		;;
	*)
		echo "unknown mode $mode (sqlite, postgres, federation)" >&2
		exit 2
		;;
	esac
done
uptime >"$OUT/uptime.txt"
echo "results in $OUT" >&2
