#!/usr/bin/env bash
# The edge against its own OpenAPI document: the document must pass an OpenAPI 3.1 validator, and
# schemathesis generates requests for every operation from it and checks each answer: no 5xx, a
# status the operation lists, a body matching the schema listed for that status, and that status's
# content type. It runs twice, without credentials and with ADMIN_SECRET, against era-dev on free
# ports with throwaway databases and a raised rate limit (the fuzzer calls the public routes in
# bursts); era-dev is stopped and its databases dropped at the end.
#
# Settings: FUZZ_MAX_EXAMPLES (cases per operation and phase, default 5), FUZZ_SEED (default: a
# fixed one, so a failure can be reproduced).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres}"
export DATABASE_URL
: "${FUZZ_MAX_EXAMPLES:=5}"
: "${FUZZ_SEED:=20260101}"
export ADMIN_SECRET="${ADMIN_SECRET:-fuzz-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}"

command -v schemathesis >/dev/null || pip install -q "schemathesis==4.32.5"
python3 -c 'import openapi_spec_validator' 2>/dev/null || pip install -q "openapi-spec-validator==0.9.0"
command -v schemathesis >/dev/null || { echo "schemathesis is not on PATH after pip install schemathesis" >&2; exit 1; }

source deploy/scripts/era-dev.sh
work=$(mktemp -d)
prefix="fuzz_$$"
era_dev_pid=
cleanup() {
  kill "$era_dev_pid" 2>/dev/null || true
  wait "$era_dev_pid" 2>/dev/null || true
  # The databases were for this run only.
  for db in $(psql "$DATABASE_URL" -Atc "select datname from pg_database where datname like '${prefix}\_%'" 2>/dev/null); do
    psql "$DATABASE_URL" -qc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
start_era_dev "$work/era-dev.log" ERA_DEV_DIR="$work/era" ERA_DEV_DATABASE_PREFIX="$prefix" ERA_DEV_RATE_LIMIT_MULTIPLIER=1000
edge=$(printed "$work/era-dev.log" edge)

curl -fsS "$edge/openapi.json" -o "$work/openapi.json"
python3 - "$work/openapi.json" <<'PY'
import json, sys
from openapi_spec_validator import validate
with open(sys.argv[1]) as f:
    validate(json.load(f))
print("openapi.json: a valid OpenAPI 3.1 document")
PY

config="$PWD/deploy/scripts/api-fuzz.toml"
checks=not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance
fuzz() {
  local name=$1; shift
  echo "== schemathesis: $name"
  # One worker: with several, hypothesis's description of its own filters races and the run fails on
  # the tool's error, not the API's. From the scratch folder: schemathesis keeps a cache of what it
  # found beside where it runs. Its
  # reproductions are printed unsanitised: the only secret in them is this run's ADMIN_SECRET.
  if ! (cd "$work" && schemathesis --no-color --config-file "$config" run "$edge/openapi.json" \
      --checks "$checks" \
      --max-examples "$FUZZ_MAX_EXAMPLES" \
      --seed "$FUZZ_SEED" \
      --workers 1 \
      --request-timeout 20 \
      --suppress-health-check all \
      --generation-database none \
      --output-sanitize false \
      "$@" >"$work/$name.log" 2>&1); then
    cat "$work/$name.log"
    if ! kill -0 "$era_dev_pid" 2>/dev/null; then
      tail -n 40 "$work/era-dev.log"
      echo "era-dev stopped during the run" >&2
      exit 1
    fi
    echo "schemathesis ($name) found answers the document does not describe" >&2
    exit 1
  fi
  tail -n 12 "$work/$name.log"
}
fuzz anonymous
fuzz admin -H "Authorization: Bearer $ADMIN_SECRET"
echo "api fuzz: 2 passed, 0 failed"
