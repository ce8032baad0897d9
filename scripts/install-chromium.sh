#!/bin/sh
# Install Debian's chromium for the browser tests (Playwright drives /usr/bin/chromium; nothing
# is downloaded by Playwright itself). Never fails: without root on Debian it says what to run,
# and the browser tests skip with the same reason.
set -u
[ -x /usr/bin/chromium ] && exit 0
[ "$(uname -s)" = "Linux" ] || exit 0
command -v apt-get >/dev/null 2>&1 || { echo "note: no apt-get; install chromium to run the browser tests"; exit 0; }
if [ "$(id -u)" = "0" ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "note: chromium is missing and there is no root or passwordless sudo; browser tests will skip."
    echo "      To run them: sudo apt-get install chromium"
    exit 0
fi
echo "installing chromium for the browser tests"
$SUDO apt-get update -qq >/dev/null 2>&1 || true
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null 2>&1; then
    echo "note: could not install chromium; the browser tests will skip."
fi
exit 0
