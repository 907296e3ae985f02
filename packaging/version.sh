#!/bin/sh
# version.sh VERSION [COMMIT]: turn the build's version (usually
# `git describe --tags --always --dirty`) into a package version that dpkg
# and rpm accept and that sorts after the tag it was built from:
#   v1.2.3            -> 1.2.3
#   v1.2.3-4-gabc123  -> 1.2.3+4.gabc123
#   v1.2.3-rc.1       -> 1.2.3-rc.1    (nfpm maps it to 1.2.3~rc.1)
#   abc123[-dirty] or "dev" -> 0.0.0+git.abc123[.dirty]
v=${1#v}
commit=${2:-}
case "$v" in
[0-9]*.[0-9]*.[0-9]*-[0-9]*-g[0-9a-f]*)
	base=${v%%-*}
	rest=$(printf '%s' "${v#*-}" | tr -- '-' '.')
	echo "$base+$rest"
	;;
[0-9]*.[0-9]*.[0-9]*)
	echo "$v"
	;;
*)
	id=${commit:-$v}
	id=$(printf '%s' "${id:-unknown}" | tr -c 'A-Za-z0-9.\n' '.')
	case "$v" in *-dirty) case "$id" in *dirty) ;; *) id="$id.dirty" ;; esac ;; esac
	echo "0.0.0+git.$id"
	;;
esac
