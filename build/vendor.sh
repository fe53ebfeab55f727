#!/bin/sh
# Copies the pages' browser libraries from npm (www/package.json, locked in
# www/package-lock.json) into static/vendor/, with gzip -9 siblings, so the
# server embeds them and no page loads anything from a CDN. It runs
# `npm ci` first when www/node_modules is missing or older than the lock.
#
#   build/vendor.sh [OUT_DIR]   (default: www/static/vendor)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/www/static/vendor}
www=$root/www
if [ ! -d "$www/node_modules" ] || [ "$www/package-lock.json" -nt "$www/node_modules/.package-lock.json" ]; then
	(cd "$www" && npm ci --no-audit --no-fund --loglevel=error)
fi
mkdir -p "$out"
cp "$www/node_modules/uplot/dist/uPlot.iife.min.js" "$out/uplot.min.js"
cp "$www/node_modules/uplot/dist/uPlot.min.css" "$out/uplot.min.css"
cp "$www/node_modules/qrcode-generator/dist/qrcode.js" "$out/qrcode.js"
cp "$www/node_modules/uplot/LICENSE" "$out/uplot.LICENSE" 2>/dev/null || true
for f in uplot.min.js uplot.min.css qrcode.js; do
	gzip -9 -n -c "$out/$f" >"$out/$f.gz"
done
echo "vendor: $(ls "$out" | tr '\n' ' ')"
