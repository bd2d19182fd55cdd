#!/usr/bin/env bash
# Installs the Debian packages the bot and its tests use, if any is missing (safe to rerun).
set -euo pipefail

PACKAGES=(
  git python3 python3-venv ca-certificates xz-utils
  public-inbox                                  # the local archive the tests and the demo serve
  make gcc bc bison flex libelf-dev libssl-dev cpio   # kernel builds
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross   # arm64 cross builds (kernel and the static stress init)
  ccache bubblewrap                              # cached, sandboxed builds
  qemu-system-x86 qemu-system-arm               # boot tests
  chromium chromium-driver fonts-dejavu-core    # the dashboard's browser tests and screenshot (headless)
  redis-server                                  # [workers] engine = "celery": the broker (tests start their own)
)

missing=()
for p in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
