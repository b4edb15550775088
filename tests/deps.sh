#!/usr/bin/env bash
# Installs (as root, with apt) the Debian packages costream needs to build, test and run its
# demo. Only missing packages are installed; `apt-get update` runs only when something is missing.
set -euo pipefail

packages=(
  meson ninja-build pkg-config g++ catch2
  libglib2.0-dev libopus-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  libgstreamer-plugins-bad1.0-dev libsoup-3.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-libav gstreamer1.0-nice ffmpeg
  glib-networking openssl libgstrtspserver-1.0-dev
)
if [ "${COSTREAM_EXTRA_PACKAGES:-}" != "" ]; then
  read -r -a extra <<<"$COSTREAM_EXTRA_PACKAGES"
  packages+=("${extra[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "costream: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "costream: these packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
