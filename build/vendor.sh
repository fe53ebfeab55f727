#!/bin/sh
# The pages' browser libraries are committed in www/static/vendor/ (uPlot
# 1.6.32 and qrcode-generator 2.0.4, both MIT; their licences sit next to
# them), so building and running QFLARE needs only Go: no page loads
# anything from a CDN and no build step needs npm.
#
#   build/vendor.sh [OUT_DIR]   writes gzip -9 siblings of the vendored files
#                               into OUT_DIR (default www/static/vendor), which
#                               the server sends to browsers that accept gzip
#   build/vendor.sh --update    maintainers: refreshes the vendored files from
#                               npm (www/package.json, locked in
#                               www/package-lock.json; needs node and npm)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
vendor=$root/www/static/vendor
files="uplot.min.js uplot.min.css qrcode.js"
if [ "${1:-}" = --update ]; then
	www=$root/www
	(cd "$www" && npm ci --no-audit --no-fund --loglevel=error)
	cp "$www/node_modules/uplot/dist/uPlot.iife.min.js" "$vendor/uplot.min.js"
	cp "$www/node_modules/uplot/dist/uPlot.min.css" "$vendor/uplot.min.css"
	cp "$www/node_modules/qrcode-generator/dist/qrcode.js" "$vendor/qrcode.js"
	cp "$www/node_modules/uplot/LICENSE" "$vendor/uplot.LICENSE"
	echo "vendor: updated $files from npm; check the licences and commit"
	shift
fi
out=${1:-$vendor}
mkdir -p "$out"
for f in $files; do
	gzip -9 -n -c "$vendor/$f" >"$out/$f.gz.tmp"
	mv "$out/$f.gz.tmp" "$out/$f.gz"
done
echo "vendor: $out: gzipped $files"
