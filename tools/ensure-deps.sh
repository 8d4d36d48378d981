#!/usr/bin/env bash
# Make sure the Debian 12 packages attnres needs are installed.
#
#   tools/ensure-deps.sh [--python] [--fortunes] [extra-package...]
#
# Prints nothing and exits 0 when everything is present. Otherwise installs the missing
# packages when run as root, or prints the apt-get line to run and exits 1.
set -euo pipefail

packages=(cmake ninja-build g++ clang-14 libclang-rt-14-dev libomp-14-dev libeigen3-dev
          libxsimd-dev nlohmann-json3-dev catch2 libbenchmark-dev libopenblas-openmp-dev)

for arg in "$@"; do
  case "$arg" in
    --python) packages+=(python3-torch python3-numpy python3-matplotlib) ;;
    --fortunes) packages+=(fortunes) ;;
    -h|--help)
      sed -n '2,7s/^# \{0,1\}//p' "$0"
      exit 0 ;;
    -*) echo "ensure-deps.sh: unknown option: $arg" >&2; exit 2 ;;
    *) packages+=("$arg") ;;
  esac
done

# Prints the packages of "$@" that are not fully installed, space-separated (one dpkg-query call).
missing_packages() {
  local -A ok=()
  local pkg status out=()
  while IFS=' ' read -r pkg status; do
    [[ "$status" == "install ok installed" ]] && ok["${pkg%%:*}"]=1
  done < <(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true)
  for pkg in "$@"; do
    [[ -n "${ok[$pkg]:-}" ]] || out+=("$pkg")
  done
  echo "${out[*]:-}"
}

read -r -a missing <<<"$(missing_packages "${packages[@]}")"
if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
  echo "attnres needs these Debian packages; run as root:" >&2
  echo "apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "ensure-deps.sh: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"

read -r -a still_missing <<<"$(missing_packages "${missing[@]}")"
if ((${#still_missing[@]} != 0)); then
  echo "ensure-deps.sh: still missing after apt-get install: ${still_missing[*]}" >&2
  exit 1
fi
