#!/usr/bin/env bash
# Offline validation of Stampede's deployment files: Dockerfiles, the Helm chart, the kustomize
# manifests, the compose file and the scenarios they carry. Nothing touches a cluster or a registry;
# the tools come from PyPI once (deploy/lib/tools.sh) and are cached under ~/.cache/stampede-ci.
#
#   bash deploy/validate.sh
#
# Runs every check, prints one line per check, then exits non-zero if any failed.
# Kubernetes versions checked: STAMPEDE_KUBE_VERSIONS (default "1.30.0 1.37.0").
# Scenarios are also loaded by the real binary when one is found: STAMPEDE_BIN, else
# target/release/stampede, else the static build docker/build.sh caches.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
# shellcheck source=deploy/lib/tools.sh
source deploy/lib/tools.sh
stampede_tools || exit 1

read -r -a kube_versions <<<"${STAMPEDE_KUBE_VERSIONS:-1.30.0 1.37.0}"
chart=helm/stampede
out="$(mktemp -d "${TMPDIR:-/tmp}/stampede-validate.XXXXXX")"
bg_pid=""
cleanup() {
  if [[ -n "$bg_pid" ]]; then kill "$bg_pid" 2>/dev/null; fi
  rm -rf "$out"
}
trap cleanup EXIT

passed=0
failed=()
# check WHAT CMD...: runs CMD, prints ok or FAIL with its output.
check() {
  local what="$1"
  shift
  if "$@" >"$out/log" 2>&1; then
    echo "ok    $what"
    passed=$((passed + 1))
  else
    echo "FAIL  $what"
    sed 's/^/      /' "$out/log" | tail -n 40
    failed+=("$what")
  fi
}
# expect_failure WHAT EXPECTED CMD...: CMD must fail, and its output must contain EXPECTED.
expect_failure() {
  local what="$1" expected="$2"
  shift 2
  if "$@" >"$out/log" 2>&1; then
    echo "FAIL  $what: accepted, but must be rejected"
    failed+=("$what")
  elif ! grep -qF -- "$expected" "$out/log"; then
    echo "FAIL  $what: rejected, but without naming \"$expected\":"
    sed 's/^/      /' "$out/log" | tail -n 20
    failed+=("$what")
  else
    echo "ok    $what: rejected ($(grep -F -m1 -- "$expected" "$out/log" | sed 's/^ *//' | cut -c1-110))"
    passed=$((passed + 1))
  fi
}

render_helm() { helm template stampede "$chart" -f "$1" --kube-version "${kube_versions[0]}" --namespace loadtest >"$2"; }
render_notes() {
  helm install stampede "$chart" -f "$1" --dry-run=client --namespace loadtest >"$out/notes.txt" \
    && grep -q '^NOTES:' "$out/notes.txt"
}
render_kustomize() { kubectl kustomize "$1" >"$2"; }

echo "== tools: $(helm version --short), kubectl $(kubectl version --client -o json 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'), \
kubernetes-validate $(kubernetes-validate --version), $(yamllint --version), \
hadolint $(hadolint --version | awk '{print $NF}'), shellcheck $(shellcheck --version | awk '/^version/{print $2}')"

echo "== Dockerfiles (hadolint)"
check "hadolint docker/Dockerfile" hadolint --no-color docker/Dockerfile
check "hadolint docker/Dockerfile.prebuilt" hadolint --no-color docker/Dockerfile.prebuilt

echo "== shell scripts (shellcheck)"
for f in docker/build.sh deploy/validate.sh deploy/smoke.sh deploy/make-certs.sh deploy/lib/tools.sh; do
  check "shellcheck $f" shellcheck -x "$f"
done

echo "== Helm chart"
check "values.schema.json is a valid JSON Schema (draft 7)" python3 -c '
import json, sys, jsonschema
jsonschema.Draft7Validator.check_schema(json.load(open(sys.argv[1])))' "$chart/values.schema.json"
check "helm lint --strict (default values)" helm lint --strict "$chart"
# The chart's ci/ values (which chart-testing would also install) and a few more combinations.
for values in "$chart"/ci/*-values.yaml deploy/validate/extra-values/*-values.yaml; do
  name="$(basename "$values" .yaml)"
  short="${values#"$chart"/}"
  short="${short#deploy/validate/}"
  check "helm lint --strict -f $short" helm lint --strict "$chart" -f "$values"
  check "helm template -f $short" render_helm "$values" "$out/helm-$name.yaml"
  check "helm install --dry-run=client -f $short (NOTES.txt renders)" render_notes "$values"
done
rendered=("$out"/helm-*.yaml)

echo "== Helm chart: values that must be rejected (deploy/validate/bad-values)"
for values in deploy/validate/bad-values/*.yaml; do
  name="$(basename "$values" .yaml)"
  expected="$(sed -n '1s/^# expect: //p' "$values")"
  by="$(sed -n '2s/^# rejected-by: //p' "$values")"
  if [[ -z "$expected" || ! "$by" =~ ^(schema|template)$ ]]; then
    echo "FAIL  $values: lines 1-2 must be '# expect: <error text>' and '# rejected-by: schema|template'"
    failed+=("$values")
    continue
  fi
  expect_failure "helm template -f bad-values/$name.yaml" "$expected" \
    helm template stampede "$chart" -f "$values"
  # helm lint reports a template's `fail` only as a log line (by design), so only schema
  # violations are asserted there.
  if [[ "$by" == schema ]]; then
    expect_failure "helm lint --strict -f bad-values/$name.yaml" "$expected" \
      helm lint --strict "$chart" -f "$values"
  fi
done

echo "== kustomize (kubectl kustomize)"
for dir in deploy/k8s deploy/k8s/base deploy/k8s/target deploy/k8s/overlays/example; do
  name="kustomize-$(echo "${dir#deploy/}" | tr / -)"
  check "kubectl kustomize $dir" render_kustomize "$dir" "$out/$name.yaml"
  rendered+=("$out/$name.yaml")
done

echo "== Kubernetes schemas (kubernetes-validate --strict)"
for v in "${kube_versions[@]}"; do
  for f in "${rendered[@]}"; do
    [[ -s "$f" ]] || continue
    check "kubernetes-validate --strict -k $v $(basename "$f")" \
      kubernetes-validate --strict --quiet -k "$v" "$f"
  done
done

echo "== YAML (yamllint -c deploy/.yamllint.yaml --strict)"
check "yamllint deploy/ and the chart's values" \
  yamllint -c deploy/.yamllint.yaml --strict deploy "$chart/Chart.yaml" "$chart/values.yaml" "$chart/ci"
check "yamllint the rendered manifests" yamllint -c deploy/.yamllint.yaml --strict "${rendered[@]}"

echo "== compose"
compose_file=deploy/compose/compose.yaml
check "docker compose config -q ($(docker-compose version --short 2>/dev/null || echo v2), from PyPI)" \
  docker-compose -f "$compose_file" config -q
if [[ -x /usr/bin/docker-compose ]]; then
  # smoke.sh falls back to a system docker-compose: the file must suit it too.
  check "docker-compose config -q ($(/usr/bin/docker-compose version --short 2>/dev/null), system)" \
    /usr/bin/docker-compose -f "$compose_file" config -q
fi

echo "== scenarios, loaded by the real binary"
# The coordinator validates its scenario before it listens: "listening" means the file is good.
# Nothing dials it and it is stopped at once, so no load is sent.
bin=""
for candidate in "${STAMPEDE_BIN:-}" target/release/stampede \
  "${CARGO_TARGET_DIR:-/nonexistent}/release/stampede" \
  "$STAMPEDE_CI_CACHE/target/$(uname -m)-unknown-linux-gnu/release/stampede"; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then
    bin="$candidate"
    break
  fi
done
scenario_loads() {
  local file="$1" i
  rm -f "$out/coord.log"
  # exec at once, with no EXIT trap: a signal before the exec must not run the cleanup.
  (
    trap - EXIT
    exec "$bin" coordinator --scenario "$file" --listen 127.0.0.1:0 --insecure-plaintext >"$out/coord.log" 2>&1
  ) &
  bg_pid=$!
  for ((i = 0; i < 100; i++)); do
    if grep -qs "coordinator listening" "$out/coord.log"; then
      kill "$bg_pid" 2>/dev/null
      wait "$bg_pid" 2>/dev/null
      bg_pid=""
      return 0
    fi
    if ! kill -0 "$bg_pid" 2>/dev/null; then
      wait "$bg_pid" 2>/dev/null
      bg_pid=""
      cat "$out/coord.log"
      return 1
    fi
    sleep 0.1
  done
  kill "$bg_pid" 2>/dev/null
  wait "$bg_pid" 2>/dev/null
  bg_pid=""
  echo "no verdict within 10 s"
  cat "$out/coord.log"
  return 1
}
if [[ -z "$bin" ]]; then
  echo "skip  no stampede binary found (cargo build --release, or set STAMPEDE_BIN)"
else
  echo "      with $bin ($("$bin" --version))"
  mkdir -p "$out/scenarios"
  # The scenarios the chart renders into its ConfigMaps.
  python3 - "$out/scenarios" "$out"/helm-*.yaml <<'PY'
import os, sys, yaml
dest = sys.argv[1]
for path in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc.get("kind") == "ConfigMap" and "scenario.yaml" in (doc.get("data") or {}):
            name = os.path.basename(path)[: -len(".yaml")]
            with open(os.path.join(dest, name + ".scenario.yaml"), "w") as f:
                f.write(doc["data"]["scenario.yaml"])
PY
  for f in deploy/compose/scenario.yaml deploy/k8s/base/scenario.yaml \
    deploy/k8s/overlays/example/scenario.yaml "$out"/scenarios/*.yaml; do
    check "scenario loads: ${f#"$out"/scenarios/}" scenario_loads "$f"
  done
  # And the check itself rejects a bad scenario.
  sed 's/^  rate: 300 .*/  rate: -5/' deploy/compose/scenario.yaml >"$out/bad-scenario.yaml"
  expect_failure "scenario with load.rate -5" "load.rate" scenario_loads "$out/bad-scenario.yaml"
fi

echo
echo "validate: ${passed} passed, ${#failed[@]} failed"
if ((${#failed[@]})); then
  printf '  failed: %s\n' "${failed[@]}"
  exit 1
fi
