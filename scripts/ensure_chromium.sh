#!/usr/bin/env bash
# The report test opens run reports in headless Chromium (Debian's `chromium` package). Install it
# when it is missing and this machine can (root with apt-get, or passwordless sudo); otherwise say
# so and carry on: that one test then skips, naming what is missing.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: no apt-get here; the report browser test will skip" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "ensure_chromium: not root and no sudo; the report browser test will skip" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
  || { $SUDO apt-get update -qq >/dev/null 2>&1 \
       && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; } \
  || echo "ensure_chromium: could not install chromium; the report browser test will skip" >&2
exit 0
