#!/usr/bin/env bash
# A bounded grpcurl load against a local routing service: N decisions across states, P at a time.
# Usage: ADMIN_SECRET=... deploy/load/grpc-load.sh [N=500] [P=8] [ADDR=127.0.0.1:50053]
# The mesh's certificate comes from era-dev's directory (ERA_DEV_DIR, default .era) under tls/.
# Only loopback addresses are accepted: load is never sent anywhere else.
set -euo pipefail
n=${1:-500}; p=${2:-8}; addr=${3:-127.0.0.1:50053}
case "$addr" in 127.*|localhost:*|\[::1\]:*) ;; *) echo "refusing a non-loopback target: $addr" >&2; exit 2;; esac
: "${ADMIN_SECRET:?set ADMIN_SECRET}"
tls_dir=${ERA_DEV_DIR:-.era}/tls
[ -r "$tls_dir/mesh-key.pem" ] || { echo "no mesh certificate in $tls_dir: start era-dev first" >&2; exit 2; }
export TLS_ARGS="-cacert $tls_dir/ca.pem -cert $tls_dir/mesh.pem -key $tls_dir/mesh-key.pem"
states=(AL AZ FL GA NY WY CO WA DC ME)
started=$(date +%s.%N)
seq 1 "$n" | xargs -P "$p" -I{} sh -c '
  s=$(echo "'"${states[*]}"'" | tr " " "\n" | sed -n "$(( {} % 10 + 1 ))p")
  grpcurl $TLS_ARGS -H "authorization: Bearer $ADMIN_SECRET" -d "{\"state\":\"$s\"}" '"$addr"' \
    era.pharmacy_routing.v1.PharmacyRoutingService/DecideRoute >/dev/null'
elapsed=$(echo "$(date +%s.%N) - $started" | bc)
echo "$n decisions in ${elapsed}s ($(echo "$n / $elapsed" | bc) per second, grpcurl process start included)"
