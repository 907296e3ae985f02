#!/usr/bin/env bash
# Regenerates the sample logs in this folder (and ../../../testdata) with a
# real nginx: TestRealNginx (parser/nginx_e2e_test.go) starts one on
# 127.0.0.1 (free high ports) with nginx.conf.in, sends it tricky requests
# (nginxRequests), stops it, and with -update-nginx-logs copies the access
# logs here. Then refresh the expected events: go test ./parser -update.
# Needs nginx (apt-get install -y nginx).
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -count=1 -run '^TestRealNginx$' . -args -update-nginx-logs
go test -count=1 -run '^TestGolden$' . -args -update
git status --short testdata ../testdata
