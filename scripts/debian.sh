#!/usr/bin/env bash
# Source it: `debian_package PATH PACKAGE... -- WHY` installs the Debian packages when PATH is missing
# (with sudo when not root). The test and app scripts name what they need through it.
debian_package() {
  local path="$1"; shift
  local packages=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do packages+=("$1"); shift; done
  shift || true
  if [ -e "$path" ]; then return 0; fi
  local sudo=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
  echo "installing Debian's ${packages[*]}: $*" >&2
  $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}
