#!/usr/bin/env bash
# Smoke test over grpcurl: every service lists its contracts through reflection and reports SERVING
# through grpc.health.v1, and the routing service answers one decision with ADMIN_SECRET metadata.
# Every call goes over the mesh's mTLS with the certificate era-dev leaves under ERA_DEV_DIR/tls;
# a plaintext call is refused.
# Then the same decision through the edge over HTTP. Starts era-dev itself, on free ports it reports
# (the standard ones may be taken by any process's outbound connections), and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres}"
export DATABASE_URL
export ADMIN_SECRET="${ADMIN_SECRET:-smoke-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
source deploy/scripts/era-dev.sh
log=$(mktemp)
era_dev_pid=
trap 'kill "$era_dev_pid" 2>/dev/null || true; wait "$era_dev_pid" 2>/dev/null || true; rm -f "$log"' EXIT
start_era_dev "$log"

# A component's address without its scheme, as grpcurl and curl take it here.
address_of() {
  local url
  url=$(printed "$log" "$1")
  url=${url#https://}
  echo "${url#http://}"
}
edge=$(address_of edge)
tls_dir=$(address_of mesh-tls)
tls=(-cacert "$tls_dir/ca.pem" -cert "$tls_dir/mesh.pem" -key "$tls_dir/mesh-key.pem")
canvas=$(address_of era-canvas)
routing=$(address_of era-pharmacy-routing)
scheduling=$(address_of era-scheduling)

declare -A services=(
  [era-canvas]=era.canvas.v1.CanvasService
  [era-payments]=era.payments.v1.PaymentsService
  [era-pharmacy-routing]=era.pharmacy_routing.v1.PharmacyRoutingService
  [era-scheduling]=era.scheduling.v1.SchedulingService
  [era-notifications]=era.notifications.v1.NotificationsService
)
checks=0
for name in "${!services[@]}"; do
  svc=${services[$name]}
  addr=$(address_of "$name")
  # Outputs are captured before grep: `grep -q` closing the pipe early would fail the writer
  # (SIGPIPE) and, with pipefail, the check.
  listed=$(grpcurl "${tls[@]}" "$addr" list)
  grep -qx "$svc" <<<"$listed" || { echo "$svc not listed on $addr: $listed" >&2; exit 1; }
  grpcurl "${tls[@]}" "$addr" describe "$svc" >/dev/null
  health=$(grpcurl "${tls[@]}" -d "{\"service\":\"$svc\"}" "$addr" grpc.health.v1.Health/Check)
  grep -q '"SERVING"' <<<"$health" || { echo "$svc is not SERVING: $health" >&2; exit 1; }
  if grpcurl -plaintext "$addr" list >/dev/null 2>&1; then
    echo "$addr answered plaintext gRPC" >&2; exit 1
  fi
  if grpcurl -cacert "$tls_dir/ca.pem" "$addr" list >/dev/null 2>&1; then
    echo "$addr answered a caller without a client certificate" >&2; exit 1
  fi
  checks=$((checks + 5))
done

# Without credentials the call is refused; with ADMIN_SECRET it routes.
if grpcurl "${tls[@]}" -d '{"state":"ga"}' "$routing" \
    era.pharmacy_routing.v1.PharmacyRoutingService/DecideRoute >/dev/null 2>&1; then
  echo "DecideRoute answered without credentials" >&2; exit 1
fi
decision=$(grpcurl "${tls[@]}" -H "authorization: Bearer $ADMIN_SECRET" \
  -d '{"state":" ga ","medication":"semaglutide"}' \
  "$routing" era.pharmacy_routing.v1.PharmacyRoutingService/DecideRoute)
grep -q '"npi": "1982609764"' <<<"$decision" || { echo "DecideRoute gave: $decision" >&2; exit 1; }
decision=$(curl -fsS -H "Authorization: Bearer $ADMIN_SECRET" "http://$edge/api/admin/routing/GA")
grep -q '"npi":"1982609764"' <<<"$decision" || { echo "the edge gave: $decision" >&2; exit 1; }
# The demo clinic's Rx queue: over gRPC from canvas, and through the edge.
queue=$(grpcurl "${tls[@]}" -H "authorization: Bearer $ADMIN_SECRET" -d '{"page":{"pageSize":3}}' \
  "$canvas" era.canvas.v1.CanvasService/ListRxReviewTasks)
grep -q '"Rx Review"' <<<"$queue" || { echo "ListRxReviewTasks gave: $queue" >&2; exit 1; }
queue=$(curl -fsS -H "Authorization: Bearer $ADMIN_SECRET" "http://$edge/api/rx-queue/tasks?pageSize=3")
grep -q '"status":"requested"' <<<"$queue" || { echo "the edge's queue gave: $queue" >&2; exit 1; }
# The approval pipeline's lists answer (over gRPC and through the edge).
runs=$(grpcurl "${tls[@]}" -H "authorization: Bearer $ADMIN_SECRET" -d '{"page":{"pageSize":3}}' \
  "$routing" era.pharmacy_routing.v1.PharmacyRoutingService/ListOrchestrationRuns)
grep -q '"page"' <<<"$runs" || { echo "ListOrchestrationRuns gave: $runs" >&2; exit 1; }
logs=$(curl -fsS -H "Authorization: Bearer $ADMIN_SECRET" "http://$edge/api/admin/sync-logs?pageSize=3")
grep -q '"items"' <<<"$logs" || { echo "the edge's sync log gave: $logs" >&2; exit 1; }
checks=$((checks + 4))
# Scheduling: appointments listed over gRPC, and a demo patient's free slots through the edge (the
# patient era-dev printed its availability curl for).
appointments=$(grpcurl "${tls[@]}" -H "authorization: Bearer $ADMIN_SECRET" -d '{"page":{"pageSize":3}}' \
  "$scheduling" era.scheduling.v1.SchedulingService/ListAppointments)
grep -q '"page"' <<<"$appointments" || { echo "ListAppointments gave: $appointments" >&2; exit 1; }
patient=$(grep -o 'availability?canvasPatientId=[0-9a-f]*' "$log" | head -n 1 | cut -d= -f2)
slots=$(curl -fsS -H "Authorization: Bearer $ADMIN_SECRET" "http://$edge/api/admin/availability?canvasPatientId=$patient")
grep -q '"startTime"' <<<"$slots" || { echo "the edge's availability gave: $slots" >&2; exit 1; }
checks=$((checks + 2))
ready=$(curl -fsS http://$edge/readyz)
grep -q '"status":"ready"' <<<"$ready" || { echo "not ready: $ready" >&2; exit 1; }
checks=$((checks + 4))
echo "grpc smoke: $checks passed, 0 failed"
