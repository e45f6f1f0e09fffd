#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/test_browser.py): installs Debian's `chromium` if it is
# missing and prints ONE line on stdout, the browser's path. Everything else goes to stderr.
#
#   export SPINE_TEST_CHROMIUM="$(bash scripts/install-chromium.sh)"
set -euo pipefail

found=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$found" ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
    echo "install-chromium: installing Debian's chromium" >&2
    "${SUDO[@]}" apt-get update -q >&2 || echo "install-chromium: apt-get update failed; trying the cached lists" >&2
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium >&2
    found=$(command -v chromium || command -v chromium-browser || true)
fi
[ -n "$found" ] || { echo "install-chromium: no chromium after installing it" >&2; exit 1; }
"$found" --headless --no-sandbox --disable-gpu --version >&2 || { echo "install-chromium: $found does not start" >&2; exit 1; }
echo "$found"
