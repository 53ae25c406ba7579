# Sourced by the scripts that test a running mesh: starts era-dev on free ports and reads back what
# it printed. The caller stops it (kill "$era_dev_pid") in its own EXIT trap.

# start_era_dev LOG [VAR=value ...]: era-dev with those variables, its output in LOG; returns once
# it printed its ready line, or fails showing LOG.
start_era_dev() {
  local log=$1
  shift
  env ERA_DEV_PORTS=any "$@" "${CARGO_TARGET_DIR:-target}/debug/era-dev" >"$log" 2>&1 &
  era_dev_pid=$!
  for _ in $(seq 1 300); do
    grep -q "era-dev ready" "$log" && return 0
    kill -0 "$era_dev_pid" 2>/dev/null || { cat "$log"; echo "era-dev exited before it was ready" >&2; exit 1; }
    sleep 0.2
  done
  cat "$log"
  echo "era-dev not ready in 60 s" >&2
  exit 1
}

# printed LOG NAME: what era-dev printed after NAME (each component's line is its name, then its URL).
printed() {
  local value
  value=$(awk -v name="$2" '$1 == name { print $2; exit }' "$1")
  [ -n "$value" ] || { cat "$1"; echo "era-dev printed nothing for $2" >&2; exit 1; }
  echo "$value"
}
