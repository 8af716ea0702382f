#!/usr/bin/env bash
# Rebuilds the web UI into netherbrain-http/webui-dist/ (committed, embedded
# into the binary). Deterministic: the same source gives the same bytes, so
# `scripts/test` can rebuild and diff. Needs Node 20 + npm; downloads no
# browser or binary (only npm registry packages).
set -euo pipefail
cd "$(dirname "$0")"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent gen:types
npm run --silent build
