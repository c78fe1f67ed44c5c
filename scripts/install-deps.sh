#!/usr/bin/env bash
# Installs the Debian packages berth needs. Idempotent: quiet and quick when all are present.
# Shared by the set-up command, the test command and CI.
set -euo pipefail

# Runtime parts (see docs/architecture.md "Carefully chosen parts").
PKGS=(
  crun runc conmon catatonit          # OCI runtimes, per-container monitor, --init
  busybox-static debootstrap          # base images made locally (berth image seed)
  iproute2 iptables procps            # network namespaces, NAT, `top`
  zstd openssl curl                   # zstd layers (Node 20 has no zstd), TLS test certs, set-up checks
  netavark aardvark-dns               # container networking and DNS
  skopeo docker-registry              # registry interoperability tests and benchmarks
  python3-docker docker-compose       # client compatibility tests (docker-py, compose v1)
  build-essential python3 ca-certificates git
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Update the lists only when they are absent or older than a day.
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n1)" ]; then
    apt-get update -qq >/dev/null
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm dependencies (better-sqlite3 compiles from source here: a few minutes the first time).
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ] || \
   { [ -f package-lock.json ] && [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  echo "install-deps: installing npm dependencies" >&2
  # npm install (not ci): the lock file cannot list node-unix-socket's optional per-platform
  # binaries for other platforms, which npm ci then reports as out of sync.
  npm install --no-audit --no-fund >/dev/null
fi
