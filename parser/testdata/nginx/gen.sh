#!/usr/bin/env bash
# Regenerates the sample logs in this folder with a real nginx: starts one on
# 127.0.0.1 (high ports) with nginx.conf.in, sends it the requests of
# requests.py, stops it, and copies the access logs here as *.log.
# Usage: parser/testdata/nginx/gen.sh   (needs nginx and python3)
# OUT=DIR writes the logs to DIR instead (and leaves testdata/ alone);
# PORT=N uses ports N, N+1 and N+2 on 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
PORT=${PORT:-18080}
BACKEND=$((PORT + 1))
CLOSED=$((PORT + 2))   # nothing listens there
prefix=$(mktemp -d)
trap 'if [[ -n "${pid:-}" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$prefix"' EXIT

chmod 755 "$prefix"   # nginx workers (nobody) read html/
mkdir -p "$prefix/logs" "$prefix/tmp" "$prefix/html/static" "$prefix/formats"
cp "$here"/formats/*.conf "$prefix/formats/"
printf 'static file\n' > "$prefix/html/static/a.txt"
printf 'caf\xc3\xa9\n' > "$prefix/html/static/caf$(printf '\xc3\xa9').txt"
sed -e "s#@PREFIX@#$prefix#g" -e "s#@PORT@#$PORT#g" -e "s#@BACKEND@#$BACKEND#g" -e "s#@CLOSED@#$CLOSED#g" \
    "$here/nginx.conf.in" > "$prefix/nginx.conf"

# TZ makes $time_local carry a non-zero offset.
TZ=${TZ_NGINX:-Europe/Berlin} "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" &
pid=$!
for _ in $(seq 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then break; fi
    sleep 0.05
done
python3 "$here/requests.py" 127.0.0.1 "$PORT"
kill -QUIT "$pid"   # graceful: flushes the logs
wait "$pid" || true
pid=
out=${OUT:-$here}
for f in "$prefix"/logs/*.log; do
    cp "$f" "$out/$(basename "$f")"
done
if [[ -z "${OUT:-}" ]]; then   # samples for the rest of the repo
    cp "$here/combined.log" "$here/../../../testdata/nginx-combined.log"
    cp "$here/main.log" "$here/../../../testdata/nginx-main.log"
    cp "$here/json_builtin.log" "$here/../../../testdata/nginx-json.log"
fi
echo "wrote $(ls "$out"/*.log | wc -l) logs to $out"
