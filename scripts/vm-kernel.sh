#!/usr/bin/env bash
# The Debian kernel that ships wireguard.ko, unpacked (not installed) for the QEMU test of the
# WireGuard kernel backend (tests/wireguard_vm). Idempotent: when the current version of
# linux-image-amd64 is already unpacked this only prints where. Prints the unpacked root, which
# holds boot/vmlinuz-VERSION and lib/modules/VERSION (with modules.dep).
#   cache: $NETCC_VM_KERNEL_CACHE, default ~/.cache/netcc/vm-kernel
set -euo pipefail

cache="${NETCC_VM_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netcc/vm-kernel}"

image_package() {
  apt-cache depends linux-image-amd64 2>/dev/null \
    | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ && !found { print $2; found = 1 }'
}

resolve() {
  pkg="$(image_package)"
  [ -n "$pkg" ] || { echo "vm-kernel: apt knows no linux-image-amd64" >&2; exit 1; }
  version="${pkg#linux-image-}"
  root="$cache/$version"
}

if [ -z "$(image_package)" ]; then
  apt-get update -qq
fi
resolve

if [ ! -f "$root/.complete" ]; then
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/.partial.XXXXXX")"
  download="$(mktemp -d)"
  trap 'rm -rf "$tmp" "$download"' EXIT
  chmod 755 "$download"  # apt-get download runs as _apt, which cannot write under ~root
  echo "vm-kernel: fetching $pkg" >&2
  if ! (cd "$download" && apt-get download -qq "$pkg"); then
    # Stale package lists name a version the mirror no longer has (404): refresh, retry once.
    echo "vm-kernel: download failed; apt-get update and retry" >&2
    apt-get update -qq
    resolve
    if [ -f "$root/.complete" ]; then
      echo "$root"
      exit 0
    fi
    echo "vm-kernel: fetching $pkg" >&2
    (cd "$download" && apt-get download -qq "$pkg")
  fi
  dpkg-deb -x "$download"/"$pkg"_*.deb "$tmp/root"
  depmod -b "$tmp/root" "$version"
  touch "$tmp/root/.complete"
  rm -rf "$root"
  mv "$tmp/root" "$root"
  # Older versions are of no use once the current one is here.
  find "$cache" -mindepth 1 -maxdepth 1 -not -name "$version" -exec rm -rf {} +
fi
echo "$root"
