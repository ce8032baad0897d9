#!/bin/sh
# Install OpenBLAS on Debian/Ubuntu so MLX's CPU backend runs 10-30x faster.
# Never fails: without root or sudo it says what to run and carries on.
set -u
[ "$(uname -s)" = "Linux" ] || exit 0
command -v dpkg-query >/dev/null 2>&1 || { echo "note: not Debian/Ubuntu; install OpenBLAS with your package manager for fast MLX on CPU"; exit 0; }
if dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q "install ok installed"; then
    exit 0
fi
if [ "$(id -u)" = "0" ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "note: OpenBLAS is missing and there is no root or passwordless sudo."
    echo "      MLX will use the slow reference BLAS. To fix: sudo apt-get install libopenblas0-pthread"
    exit 0
fi
echo "installing OpenBLAS (libopenblas0-pthread) for fast MLX on CPU"
$SUDO apt-get update -qq >/dev/null 2>&1 || true
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas0-pthread >/dev/null 2>&1; then
    echo "note: could not install libopenblas0-pthread; MLX will use the slow reference BLAS."
fi
exit 0
