#!/usr/bin/env bash
# Refreshes vendor/ from the npm registry: the pinned Apache ECharts build (package.json and
# package-lock.json pin it) and the licenses that go with it. The server embeds vendor/ in its
# binary, so building the server needs no npm; run this only to change the ECharts version:
#
#   cd server/dashboard && ./vendor.sh     # then commit vendor/ and package-lock.json
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v npm >/dev/null 2>&1 || {
    echo "vendor.sh: npm is needed (Debian/Ubuntu: apt-get install npm)" >&2
    exit 1
}
npm ci --ignore-scripts --no-audit --no-fund
mkdir -p vendor
cp node_modules/echarts/dist/echarts.min.js vendor/echarts.min.js
cp node_modules/echarts/LICENSE vendor/ECHARTS-LICENSE
cp node_modules/echarts/NOTICE vendor/ECHARTS-NOTICE
cp node_modules/echarts/licenses/LICENSE-d3 vendor/ECHARTS-LICENSE-d3
cp node_modules/zrender/LICENSE vendor/ZRENDER-LICENSE
version="$(node -p 'require("./node_modules/echarts/package.json").version')"
echo "vendor.sh: vendor/echarts.min.js is Apache ECharts $version" >&2
