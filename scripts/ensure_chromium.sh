#!/usr/bin/env bash
# The browser tests (run reports, the web console) drive headless Chromium: Debian's `chromium`
# and, for Selenium, `chromium-driver`. Install what is missing when this machine can (root with
# apt-get, or passwordless sudo); otherwise say so and carry on: those tests then skip, naming
# what is missing.
set -uo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: no apt-get here to install ${missing[*]}; the browser tests will skip" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "ensure_chromium: not root and no sudo to install ${missing[*]}; the browser tests will skip" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || { $SUDO apt-get update -qq >/dev/null 2>&1 \
       && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } \
  || echo "ensure_chromium: could not install ${missing[*]}; the browser tests will skip" >&2
exit 0
