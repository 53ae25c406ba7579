#!/usr/bin/env bash
# Smoke test over grpcurl: every service lists its contracts through reflection and reports SERVING
# through grpc.health.v1, and the routing service answers one decision with ADMIN_SECRET metadata.
# Then the same decision through the edge over HTTP. Starts era-dev itself and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres}"
export DATABASE_URL
export ADMIN_SECRET="${ADMIN_SECRET:-smoke-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
log=$(mktemp)
./target/debug/era-dev >"$log" 2>&1 &
dev=$!
trap 'kill "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 1 300); do
  grep -q "era-dev ready" "$log" && break
  kill -0 "$dev" 2>/dev/null || { cat "$log"; echo "era-dev exited before it was ready" >&2; exit 1; }
  sleep 0.2
done
grep -q "era-dev ready" "$log" || { cat "$log"; echo "era-dev not ready in 60 s" >&2; exit 1; }

declare -A services=(
  [50051]=era.canvas.v1.CanvasService
  [50052]=era.payments.v1.PaymentsService
  [50053]=era.pharmacy_routing.v1.PharmacyRoutingService
  [50054]=era.scheduling.v1.SchedulingService
  [50055]=era.notifications.v1.NotificationsService
)
checks=0
for port in "${!services[@]}"; do
  svc=${services[$port]}
  # Outputs are captured before grep: `grep -q` closing the pipe early would fail the writer
  # (SIGPIPE) and, with pipefail, the check.
  listed=$(grpcurl -plaintext "127.0.0.1:$port" list)
  grep -qx "$svc" <<<"$listed" || { echo "$svc not listed on $port: $listed" >&2; exit 1; }
  grpcurl -plaintext "127.0.0.1:$port" describe "$svc" >/dev/null
  health=$(grpcurl -plaintext -d "{\"service\":\"$svc\"}" "127.0.0.1:$port" grpc.health.v1.Health/Check)
  grep -q '"SERVING"' <<<"$health" || { echo "$svc is not SERVING: $health" >&2; exit 1; }
  checks=$((checks + 3))
done

# Without credentials the call is refused; with ADMIN_SECRET it routes.
if grpcurl -plaintext -d '{"state":"ga"}' 127.0.0.1:50053 \
    era.pharmacy_routing.v1.PharmacyRoutingService/DecideRoute >/dev/null 2>&1; then
  echo "DecideRoute answered without credentials" >&2; exit 1
fi
decision=$(grpcurl -plaintext -H "authorization: Bearer $ADMIN_SECRET" \
  -d '{"state":" ga ","medication":"semaglutide"}' \
  127.0.0.1:50053 era.pharmacy_routing.v1.PharmacyRoutingService/DecideRoute)
grep -q '"npi": "1982609764"' <<<"$decision" || { echo "DecideRoute gave: $decision" >&2; exit 1; }
decision=$(curl -fsS -H "Authorization: Bearer $ADMIN_SECRET" "http://127.0.0.1:8080/api/admin/routing/GA")
grep -q '"npi":"1982609764"' <<<"$decision" || { echo "the edge gave: $decision" >&2; exit 1; }
# The demo clinic's Rx queue: over gRPC from canvas, and through the edge.
queue=$(grpcurl -plaintext -H "authorization: Bearer $ADMIN_SECRET" -d '{"page":{"pageSize":3}}' \
  127.0.0.1:50051 era.canvas.v1.CanvasService/ListRxReviewTasks)
grep -q '"Rx Review"' <<<"$queue" || { echo "ListRxReviewTasks gave: $queue" >&2; exit 1; }
queue=$(curl -fsS -H "Authorization: Bearer $ADMIN_SECRET" "http://127.0.0.1:8080/api/rx-queue/tasks?pageSize=3")
grep -q '"status":"requested"' <<<"$queue" || { echo "the edge's queue gave: $queue" >&2; exit 1; }
# The approval pipeline's lists answer (over gRPC and through the edge).
runs=$(grpcurl -plaintext -H "authorization: Bearer $ADMIN_SECRET" -d '{"page":{"pageSize":3}}' \
  127.0.0.1:50053 era.pharmacy_routing.v1.PharmacyRoutingService/ListOrchestrationRuns)
grep -q '"page"' <<<"$runs" || { echo "ListOrchestrationRuns gave: $runs" >&2; exit 1; }
logs=$(curl -fsS -H "Authorization: Bearer $ADMIN_SECRET" "http://127.0.0.1:8080/api/admin/sync-logs?pageSize=3")
grep -q '"items"' <<<"$logs" || { echo "the edge's sync log gave: $logs" >&2; exit 1; }
checks=$((checks + 4))
ready=$(curl -fsS http://127.0.0.1:8080/readyz)
grep -q '"status":"ready"' <<<"$ready" || { echo "not ready: $ready" >&2; exit 1; }
checks=$((checks + 4))
echo "grpc smoke: $checks passed, 0 failed"
