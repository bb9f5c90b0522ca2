#!/bin/sh
# The chat page in a real browser: headless Chromium driven by playwright-core.
# usage: sh chat_browser_test.sh PATH/TO/chat WORK_DIR
# playwright-core is installed into WORK_DIR/node_modules on first use (npm
# registry); screenshots land in WORK_DIR. Exits 77 (ctest: skipped), saying
# why, only when Chromium, node or npm is unavailable.
set -u
chat=$1
dir=$2
chromium=${KEEL_CHROMIUM:-/usr/bin/chromium}
here=$(dirname "$0")

if [ ! -x "$chromium" ]; then
  echo "SKIP: no Chromium at $chromium (Debian: apt-get install chromium; or set KEEL_CHROMIUM)"
  exit 77
fi
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool is not installed (Debian: apt-get install nodejs npm)"
    exit 77
  fi
done
mkdir -p "$dir"
if [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
  echo "installing playwright-core into $dir/node_modules"
  if ! timeout 240 npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$dir" playwright-core \
      >"$dir/npm-install.log" 2>&1; then
    tail -n 20 "$dir/npm-install.log"
    echo "SKIP: npm could not install playwright-core (no registry access?); log in $dir/npm-install.log"
    exit 77
  fi
fi
exec node "$here/chat_browser_test.js" "$chat" "$dir" "$chromium"
