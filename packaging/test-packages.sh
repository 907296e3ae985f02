#!/usr/bin/env bash
# test-packages.sh: check the packages that `make package` built.
#
# Run by `make package-test`, as root, on Debian 12 or later (CI). It installs
# what it needs (lintian, rpm, systemd's systemd-analyze, man-db), then:
#   - prints the package sizes;
#   - lintian on every .deb: no errors;
#   - the .rpm files: rpm -qpl, --scripts, config files, owners, arch;
#   - installs the host's .deb with dpkg -i and checks files, conffile, user,
#     groups, permissions, enablement; runs the installed
#     `nginx-shipper validate` on the installed default config (also as the
#     service user); systemd-analyze verify and security (exposure <= 2.0)
#     on the installed unit;
#   - reinstalls over it (upgrade path): a locally edited config is kept;
#   - dpkg -r (config and data kept) then dpkg -P (both deleted).
# The machine need not run systemd as PID 1: the maintainer scripts only call
# systemctl when /run/systemd/system exists.
#
# Environment: PKG_DIST (default dist), MAX_EXPOSURE (default 2.0).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1   # the repository root, like make

PKG_DIST=${PKG_DIST:-dist}
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
NAME=nginx-shipper
UNIT=$NAME.service
CONF=/etc/$NAME/$NAME.toml
STATE=/var/lib/$NAME

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
not_ok() { failed=$((failed + 1)); echo "FAIL - $*"; }
# check DESCRIPTION COMMAND...: run COMMAND, count it.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
die() {
	echo "test-packages: $*" >&2
	echo "$passed passed, $((failed + 1)) failed"
	exit 1
}

# with_lock CMD...: run a dpkg/apt command, retrying while another process
# (another engineer's apt-get) holds the dpkg lock. Up to ~10 minutes.
with_lock() {
	local out rc i
	for i in $(seq 1 120); do
		out=$("$@" 2>&1)
		rc=$?
		if [ $rc -ne 0 ] && grep -qiE 'lock|dpkg was interrupted' <<<"$out"; then
			echo "test-packages: dpkg lock busy, retrying ($i): $*" >&2
			sleep 5
			continue
		fi
		printf '%s\n' "$out"
		return $rc
	done
	printf '%s\n' "$out"
	return 1
}

ensure_tools() {
	local missing=()
	command -v lintian >/dev/null || missing+=(lintian)
	command -v rpm >/dev/null || missing+=(rpm)
	command -v systemd-analyze >/dev/null || missing+=(systemd)
	command -v man >/dev/null || missing+=(man-db)
	command -v adduser >/dev/null || missing+=(adduser)
	command -v deb-systemd-helper >/dev/null || missing+=(init-system-helpers)
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "test-packages: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! with_lock apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"; then
		with_lock apt-get update -q -o DPkg::Lock::Timeout=600 || true
		with_lock apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" ||
			die "could not install ${missing[*]}"
	fi
}

# get_promtool: print a promtool path: on PATH, or extracted from Debian's
# prometheus package into $tmp (downloaded, never installed: installing it
# would start a Prometheus server).
get_promtool() {
	if command -v promtool >/dev/null; then command -v promtool; return 0; fi
	[ -x "$tmp/prom/usr/bin/promtool" ] && { echo "$tmp/prom/usr/bin/promtool"; return 0; }
	(
		cd "$tmp" || exit 1
		apt-get download -q prometheus >/dev/null 2>&1 ||
			{ with_lock apt-get update -q >/dev/null 2>&1; apt-get download -q prometheus >/dev/null 2>&1; } || exit 1
		dpkg-deb -x prometheus_*.deb prom && rm -f prometheus_*.deb
	) || return 1
	echo "$tmp/prom/usr/bin/promtool"
}

# elf_machine FILE: the ELF e_machine of FILE (62 x86-64, 183 aarch64).
elf_machine() { od -An -tu2 -j18 -N2 "$1" | tr -d ' '; }

# stat_is PATH OWNER:GROUP MODE
stat_is() {
	local got
	got=$(stat -c '%U:%G %a' "$1" 2>/dev/null)
	[ "$got" = "$2 $3" ] || { echo "  $1: got '$got', want '$2 $3'"; return 1; }
}

cleanup() {
	if dpkg-query -W -f='${Status}' $NAME 2>/dev/null | grep -q 'installed\|config-files'; then
		with_lock dpkg -P $NAME >/dev/null 2>&1 || true
	fi
	[ -n "${tmp:-}" ] && rm -rf "$tmp"
}

# rules_and_dashboard: the alert rules (promtool check and test rules) and the
# Grafana dashboard (valid JSON, every query valid PromQL). Needs no root.
rules_and_dashboard() {
	echo "# Prometheus alert rules and Grafana dashboard"
	here=$(cd "$(dirname "$0")" && pwd)
	check "grafana-dashboard.json is valid JSON with panels" bash -c \
		'python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"panels\"] and d[\"uid\"]" "$1"' _ "$here/grafana-dashboard.json"
	for m in nginx_shipper_lines_read_total nginx_shipper_bytes_read_total nginx_shipper_parse_errors_total \
		nginx_shipper_file_lag_bytes nginx_shipper_rotations_total nginx_shipper_events_acked_total \
		nginx_shipper_sink_errors_total nginx_shipper_in_flight_events nginx_shipper_checkpoint_age_seconds \
		nginx_shipper_s3_spool_bytes nginx_shipper_s3_spool_max_bytes nginx_shipper_sink_up \
	nginx_shipper_file_unacked_bytes nginx_shipper_file_ack_wait_seconds nginx_shipper_file_blocked \
	nginx_shipper_event_ack_latency_seconds nginx_shipper_read_ack_latency_seconds \
	nginx_shipper_dead_lettered_events_total nginx_shipper_released_unread_bytes_total; do
		check "dashboard shows $m" grep -q "$m" "$here/grafana-dashboard.json"
	done
	if promtool=$(get_promtool); then
		out=$("$promtool" check rules "$here/prometheus-alerts.yml" 2>&1)
		rc=$?
		[ $rc -eq 0 ] || sed 's/^/  /' <<<"$out"
		check "promtool check rules prometheus-alerts.yml" test $rc -eq 0
		out=$(cd "$here" && "$promtool" test rules prometheus-alerts.test.yml 2>&1)
		rc=$?
		[ $rc -eq 0 ] || sed 's/^/  /' <<<"$out"
		check "promtool test rules prometheus-alerts.test.yml" test $rc -eq 0
		# Every dashboard query, with Grafana's variables filled in, must be
		# valid PromQL: check them as recording rules.
		python3 - "$here/grafana-dashboard.json" >"$tmp/dash-rules.yml" <<-'PY'
	import json, sys
	d = json.load(open(sys.argv[1]))
	print("groups:\n  - name: dashboard\n    rules:")
	n = 0
	for p in d["panels"]:
	    for t in p.get("targets", []):
	        e = t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$job", ".*")
	        n += 1
	        print("      - record: dashboard:q%d" % n)
	        print("        expr: " + json.dumps(e))
	PY
		out=$("$promtool" check rules "$tmp/dash-rules.yml" 2>&1)
		rc=$?
		[ $rc -eq 0 ] || sed 's/^/  /' <<<"$out"
		check "every dashboard query is valid PromQL ($(grep -c record: "$tmp/dash-rules.yml") queries)" test $rc -eq 0
	elif [ "${NGINX_SHIPPER_REQUIRE_E2E:-}" = 1 ]; then
		not_ok "promtool not available (apt-get download prometheus failed)"
	else
		echo "SKIP - promtool not available (apt-get download prometheus failed): alert rules not unit-tested"
	fi

}

if [ "$(id -u)" != 0 ]; then
	# A normal user's `make test`: what needs no root still runs.
	[ "${NGINX_SHIPPER_REQUIRE_E2E:-}" = 1 ] &&
		die "must run as root (it installs the package; NGINX_SHIPPER_REQUIRE_E2E=1 forbids skipping)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	rules_and_dashboard
	echo "SKIP - package tests (lintian, rpm contents, dpkg install/upgrade/remove, systemd-analyze) need root: run make package-test as root"
	echo "$passed passed, $failed failed"
	[ $failed -eq 0 ]
	exit
fi
command -v dpkg >/dev/null || die "needs a Debian-based machine (dpkg)"
ensure_tools

shopt -s nullglob
debs=("$PKG_DIST/${NAME}"_*.deb)
rpms=("$PKG_DIST/$NAME"-*.rpm)
[ ${#debs[@]} -gt 0 ] || die "no .deb in $PKG_DIST: run make package"
[ ${#rpms[@]} -gt 0 ] || die "no .rpm in $PKG_DIST: run make package"
tmp=$(mktemp -d)
trap cleanup EXIT

echo "# package sizes"
for p in "${debs[@]}" "${rpms[@]}"; do
	printf '  %8d bytes  %s\n' "$(stat -c %s "$p")" "$(basename "$p")"
done

echo "# both architectures, both formats"
for arch in amd64 arm64; do
	check "deb for $arch built" test -n "$(ls "$PKG_DIST"/${NAME}_*_$arch.deb 2>/dev/null)"
done
for arch in x86_64 aarch64; do
	check "rpm for $arch built" test -n "$(ls "$PKG_DIST"/$NAME-*.$arch.rpm 2>/dev/null)"
done

echo "# lintian"
for deb in "${debs[@]}"; do
	# Shown with the overrides and their reasons; judged without them
	# (--show-overrides makes lintian fail on overridden errors).
	lintian --fail-on none --display-level '>=warning' --show-overrides "$deb" 2>&1 | sed 's/^/  /'
	out=$(lintian --fail-on error --display-level '>=warning' "$deb" 2>&1)
	rc=$?
	check "lintian: no errors in $(basename "$deb")" test $rc -eq 0
	check "lintian: no E: tags in $(basename "$deb")" bash -c '! grep -q "^E:" <<<"$1"' _ "$out"
done

echo "# deb contents and control"
for deb in "${debs[@]}"; do
	arch=$(dpkg-deb -f "$deb" Architecture)
	d=$tmp/deb-$arch
	mkdir -p "$d"
	dpkg-deb -x "$deb" "$d"
	want=62
	[ "$arch" = arm64 ] && want=183
	check "$arch deb: /usr/bin/nginx-shipper is an ELF for $arch" test "$(elf_machine "$d/usr/bin/$NAME")" = $want
	check "$arch deb: conffiles lists $CONF" bash -c 'dpkg-deb -I "$1" conffiles | grep -qx "$2"' _ "$deb" "$CONF"
	check "$arch deb: depends on adduser" bash -c 'dpkg-deb -f "$1" Depends | grep -qw adduser' _ "$deb"
	check "$arch deb: has postinst, prerm, postrm" bash -c 'for s in postinst prerm postrm; do dpkg-deb -I "$1" $s >/dev/null || exit 1; done' _ "$deb"
done

echo "# rpm"
for r in "${rpms[@]}"; do
	rarch=$(rpm -qp --qf '%{ARCH}' "$r" 2>/dev/null)
	echo "  rpm -qpl $(basename "$r"):"
	rpm -qpl "$r" 2>/dev/null | sed 's/^/    /'
	list=$(rpm -qpl "$r" 2>/dev/null)
	for f in /usr/bin/$NAME $CONF /usr/lib/systemd/system/$UNIT $STATE /usr/share/man/man1/$NAME.1.gz; do
		check "$rarch rpm: contains $f" grep -qx "$f" <<<"$list"
	done
	check "$rarch rpm: $CONF is %config(noreplace)" bash -c \
		'rpm -qp --qf "[%{FILENAMES} %{FILEFLAGS:fflags}\n]" "$1" 2>/dev/null | grep -qx "$2 cn"' _ "$r" "$CONF"
	check "$rarch rpm: $STATE owned by $NAME, 0750" bash -c \
		'rpm -qplv "$1" 2>/dev/null | grep -E "^drwxr-x--- .* nginx-sh.* nginx-sh.* $2\$" >/dev/null' _ "$r" "$STATE"
	scripts=$(rpm -qp --scripts "$r" 2>/dev/null)
	check "$rarch rpm: %pre creates the user" grep -q 'useradd -r' <<<"$scripts"
	check "$rarch rpm: %post enables the unit" grep -q 'enable "$UNIT"' <<<"$scripts"
	check "$rarch rpm: %preun stops on erase" grep -q 'systemctl stop' <<<"$scripts"
	check "$rarch rpm: %postun try-restarts on upgrade" grep -q 'try-restart' <<<"$scripts"
	check "$rarch rpm: scriptlets are valid sh" bash -c \
		'for t in PREIN POSTIN PREUN POSTUN; do rpm -qp --qf "%{$t}" "$1" 2>/dev/null | sh -n || exit 1; done' _ "$r"
done
echo "  rpm -qp --scripts $(basename "${rpms[0]}"):"
rpm -qp --scripts "${rpms[0]}" 2>/dev/null | sed 's/^/    /'

rules_and_dashboard

echo "# install the $(dpkg --print-architecture) .deb"
host_deb=$(ls "$PKG_DIST"/${NAME}_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -1)
[ -n "$host_deb" ] || die "no .deb for $(dpkg --print-architecture)"
cleanup_before=$(dpkg-query -W -f='${Status}' $NAME 2>/dev/null)
if [ -n "$cleanup_before" ]; then
	with_lock dpkg -P $NAME >/dev/null
fi
# A user left by an earlier purge: remove it, so user creation is tested.
if getent passwd $NAME >/dev/null; then
	deluser --quiet --system $NAME >/dev/null 2>&1 || userdel $NAME
	getent group $NAME >/dev/null && { delgroup --quiet --system $NAME >/dev/null 2>&1 || groupdel $NAME; }
fi

out=$(with_lock dpkg -i "$host_deb")
rc=$?
sed 's/^/  /' <<<"$out"
check "dpkg -i succeeds" test $rc -eq 0
check "dpkg -i: no systemctl errors without systemd as PID 1" bash -c '! grep -qiE "Failed to|not been booted|error" <<<"$1"' _ "$out"
check "dpkg -i prints how to start it" grep -q "enabled but not started" <<<"$out"
check "package state is installed" test "$(dpkg-query -W -f='${Status}' $NAME)" = "install ok installed"

check "/usr/bin/$NAME root:root 0755" stat_is /usr/bin/$NAME root:root 755
check "$CONF root:root 0644" stat_is $CONF root:root 644
check "/lib/systemd/system/$UNIT root:root 0644" stat_is /lib/systemd/system/$UNIT root:root 644
check "man page installed" test -f /usr/share/man/man1/$NAME.1.gz
check "$CONF is a conffile" bash -c 'dpkg-query -W -f="\${Conffiles}\n" "$1" | grep -q " $2 "' _ $NAME $CONF
check "user $NAME exists" getent passwd $NAME
uid=$(id -u $NAME 2>/dev/null || echo 99999)
check "user $NAME is a system user (uid $uid < 1000)" test "$uid" -lt 1000
check "user $NAME has no login shell" bash -c 'getent passwd "$1" | cut -d: -f7 | grep -q nologin' _ $NAME
check "user $NAME home is $STATE" test "$(getent passwd $NAME | cut -d: -f6)" = $STATE
check "group $NAME exists and is the primary group" test "$(id -gn $NAME 2>/dev/null)" = $NAME
check "user $NAME is in group adm (reads /var/log/nginx)" bash -c 'id -nG "$1" | tr " " "\n" | grep -qx adm' _ $NAME
check "$STATE $NAME:$NAME 0750" stat_is $STATE $NAME:$NAME 750
check "service enabled (multi-user.target.wants symlink)" test -L /etc/systemd/system/multi-user.target.wants/$UNIT
# (Other nginx-shipper processes, e.g. tests, may run: look for this binary.)
check "service not started on install" bash -c \
	'for p in $(pgrep -x "$1"); do [ "$(readlink /proc/$p/exe)" = /usr/bin/$1 ] && exit 1; done; exit 0' _ $NAME

echo "# the installed binary on the installed default config"
out=$(/usr/bin/$NAME version 2>&1)
check "nginx-shipper version: $out" test -n "$out"
out=$(/usr/bin/$NAME validate 2>&1)
rc=$?
echo "  validate: $out"
check "nginx-shipper validate (default path) exits 0" test $rc -eq 0
check "nginx-shipper validate says OK" grep -qiE "ok|success" <<<"$out"
out=$(runuser -u $NAME -- /usr/bin/$NAME validate -c $CONF 2>&1)
rc=$?
echo "  validate as $NAME: $out"
check "nginx-shipper validate -c $CONF as user $NAME exits 0" test $rc -eq 0

out=$(timeout 30 runuser -u $NAME -- /usr/bin/$NAME run -c $CONF 2>&1)
rc=$?
echo "  run as $NAME on the default config (exit $rc): $out"
check "run on the default config refuses: 'no sink enabled'" grep -q "no sink enabled" <<<"$out"
check "run on the default config exits 78 (EX_CONFIG: the unit's RestartPreventExitStatus)" test $rc -eq 78
check "unit does not restart on exit 78" grep -qx "RestartPreventExitStatus=78" /lib/systemd/system/$UNIT

echo "# systemd unit"
man_flag=()
command -v man >/dev/null || man_flag=(--man=no)
out=$(systemd-analyze verify "${man_flag[@]}" /lib/systemd/system/$UNIT 2>&1)
rc=$?
[ -n "$out" ] && sed 's/^/  /' <<<"$out"
check "systemd-analyze verify $UNIT" test $rc -eq 0 -a -z "$out"
out=$(systemd-analyze security --offline=true --root=/ /lib/systemd/system/$UNIT 2>&1)
grep '✗' <<<"$out" | sed 's/^/  /'
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
echo "  systemd-analyze security exposure: ${score:-?}"
check "exposure ${score:-?} <= $MAX_EXPOSURE" awk -v s="${score:-99}" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'
for kv in Type=notify WatchdogSec= ExecReload= Restart=on-failure TimeoutStopSec= ProtectSystem=strict \
	ReadWritePaths=/var/lib/nginx-shipper NoNewPrivileges=yes PrivateTmp=yes ProtectHome=yes \
	'CapabilityBoundingSet=$' SystemCallFilter=@system-service; do
	check "unit sets $kv" grep -q "^$kv" /lib/systemd/system/$UNIT
done
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' /lib/systemd/system/$UNIT)
check "TimeoutStopSec (${stop:-?}s) above the 30s shutdown deadline" test "${stop:-0}" -gt 30

echo "# the unit's SystemCallFilter against the syscalls the daemon really makes"
# systemd cannot run here (not PID 1), so the filter is checked by tracing the
# daemon while cmd/demo ships a sample into in-process Kafka and S3, then
# comparing every syscall it made with the unit's SystemCallFilter= lines
# (@system-service minus @privileged @resources).
host_bin=$PKG_DIST/pkgbuild/linux-$(dpkg --print-architecture)/$NAME
if [ -f cmd/demo/main.go ] && [ -x "$host_bin" ] && command -v go >/dev/null && command -v strace >/dev/null; then
	cat >"$tmp/traced" <<EOF
#!/bin/bash
# strace does not pass SIGTERM on: forward it to the daemon.
strace -f -qq -o "$tmp/strace.log" "$(readlink -f "$host_bin")" "\$@" &
tracer=\$!
trap 'kill -TERM \$(pgrep -P \$tracer) 2>/dev/null' TERM INT
wait \$tracer; wait \$tracer
EOF
	chmod +x "$tmp/traced"
	if timeout 600 go run ./cmd/demo -bin "$tmp/traced" >"$tmp/demo.log" 2>&1; then
		ok "cmd/demo ran the traced daemon to completion"
	else
		echo "  cmd/demo failed; the syscalls it made are still checked:"
		tail -5 "$tmp/demo.log" | sed 's/^/  /'
	fi
	python3 - "$tmp/strace.log" /lib/systemd/system/$UNIT >"$tmp/seccomp.out" 2>&1 <<'PY'
import re, subprocess, sys
def members(group):
    out = subprocess.run(["systemd-analyze", "syscall-filter", group],
                         capture_output=True, text=True, check=True).stdout
    res = set()
    for line in out.splitlines()[1:]:
        l = line.strip()
        if not l or l.startswith("#"):
            continue
        res |= members(l) if l.startswith("@") else {l}
    return res
allow, deny = set(), set()
for line in open(sys.argv[2]):
    m = re.match(r"SystemCallFilter=(~?)(.*)", line.strip())
    if not m:
        continue
    names = set()
    for n in m.group(2).split():
        names |= members(n) if n.startswith("@") else {n}
    (deny if m.group(1) else allow).update(names)
used = set()
for line in open(sys.argv[1]):
    m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z0-9_]+)\(", line)
    if m:
        used.add(m.group(1))
bad = sorted(s for s in used if s not in allow or s in deny)
print("%d syscalls traced: %s" % (len(used), " ".join(sorted(used))))
if bad:
    print("outside the unit's SystemCallFilter: " + " ".join(bad))
    sys.exit(1)
PY
	rc=$?
	sed 's/^/  /' "$tmp/seccomp.out"
	check "every syscall the daemon made is allowed by the unit's SystemCallFilter" test $rc -eq 0
	check "the trace saw the daemon at work (>= 30 distinct syscalls)" bash -c \
		'[ "$(sed -n "s/^\([0-9]*\) syscalls traced.*/\1/p" "$1")" -ge 30 ]' _ "$tmp/seccomp.out"
elif [ "${NGINX_SHIPPER_REQUIRE_E2E:-}" = 1 ]; then
	not_ok "SystemCallFilter check needs cmd/demo, go, strace and $host_bin"
else
	echo "SKIP - SystemCallFilter check needs cmd/demo, go, strace and $host_bin"
fi

echo "# upgrade (reinstall over it): the edited config and the data stay"
echo "# local edit" >>$CONF
echo checkpoint >$STATE/test-data
chown $NAME:$NAME $STATE/test-data
out=$(with_lock dpkg -i --force-confold "$host_deb")
rc=$?
sed 's/^/  /' <<<"$out"
check "dpkg -i over the installed package succeeds" test $rc -eq 0
check "locally edited $CONF kept on upgrade" grep -qx "# local edit" $CONF
check "data kept on upgrade" test -f $STATE/test-data
check "$STATE still $NAME:$NAME 0750" stat_is $STATE $NAME:$NAME 750

echo "# dpkg -r: binary and unit go, config and data stay"
out=$(with_lock dpkg -r $NAME)
rc=$?
sed 's/^/  /' <<<"$out"
check "dpkg -r succeeds" test $rc -eq 0
check "binary removed" test ! -e /usr/bin/$NAME
check "unit removed" test ! -e /lib/systemd/system/$UNIT
check "config kept on remove" test -f $CONF
check "data kept on remove" test -f $STATE/test-data
check "user kept on remove" getent passwd $NAME

echo "# dpkg -P: config and data deleted"
out=$(with_lock dpkg -P $NAME)
rc=$?
sed 's/^/  /' <<<"$out"
check "dpkg -P succeeds" test $rc -eq 0
check "config deleted on purge" test ! -e $CONF
check "/etc/$NAME deleted on purge" test ! -e /etc/$NAME
check "data deleted on purge" test ! -e $STATE
check "enablement symlink deleted on purge" test ! -L /etc/systemd/system/multi-user.target.wants/$UNIT
check "package gone from dpkg" bash -c '! dpkg-query -W -f="\${Status}" "$1" 2>/dev/null | grep -q installed' _ $NAME

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
