#!/usr/bin/env bash
# Smoke test of the image deploy/image/build.sh made: its configuration
# (user 65532, entrypoint), its files (static binaries, CA bundle, passwd),
# then its binaries run from the image's own root (buildah run, chroot
# isolation): replctl version, ecsemu serving, replicatord on the simulated cloud serving
# /healthz, /readyz and /metrics (build_info of this build) on loopback,
# replctl talking to it over the unix socket, the daemon's uid, and a
# clean stop on SIGTERM.
#
# usage: deploy/image/smoke.sh [IMAGE]     (default localhost/replicatord:dev)
set -euo pipefail
image=${1:-localhost/replicatord:dev}
driver=${STORAGE_DRIVER:-vfs}
b() { buildah --storage-driver "$driver" "$@"; }
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
ok() { echo "smoke: ok: $*"; }

ctr=$(b from --pull=never "$image")
work=$(mktemp -d)
daemon=""
emu=""
cleanup() {
  for p in $daemon $emu; do
    if kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null || true; fi
  done
  b umount "$ctr" >/dev/null 2>&1 || true
  b rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Configuration.
user=$(b inspect --format '{{.OCIv1.Config.User}}' "$image")
[ "$user" = "65532:65532" ] || fail "image user is '$user', want 65532:65532"
ok "runs as 65532:65532"
entry=$(b inspect --format '{{.OCIv1.Config.Entrypoint}}' "$image")
[ "$entry" = '[/usr/local/bin/replicatord]' ] || fail "entrypoint $entry"

# Files.
mnt=$(b mount "$ctr")
for f in replicatord replctl ecsemu; do
  bin="$mnt/usr/local/bin/$f"
  [ -x "$bin" ] || fail "no /usr/local/bin/$f"
  # Whole outputs in variables: a pipe into grep -q could fail on SIGPIPE.
  headers=$(readelf -l "$bin") || fail "readelf $f"
  case "$headers" in *INTERP*) fail "$f has a program interpreter: not static" ;; esac
  info=$(go version -m "$bin") || fail "go version -m $f"
  case "$info" in *CGO_ENABLED=0*) ;; *) fail "$f was not built with CGO_ENABLED=0" ;; esac
done
ok "static binaries (no PT_INTERP, CGO_ENABLED=0)"
[ -s "$mnt/etc/ssl/certs/ca-certificates.crt" ] || fail "no CA bundle"
grep -q 'BEGIN CERTIFICATE' "$mnt/etc/ssl/certs/ca-certificates.crt" || fail "CA bundle holds no certificate"
grep -q '^nonroot:x:65532:65532:' "$mnt/etc/passwd" || fail "no passwd entry for 65532"
ok "CA bundle and passwd"
n=$(find "$mnt" -mindepth 1 -not -type d | wc -l)
[ "$n" -le 8 ] || fail "$n files in the image, want only the binaries, CA bundle, passwd, group and sample config"

# The binaries run from the image's root.
out=$(timeout 60 buildah --storage-driver "$driver" run --isolation chroot "$ctr" -- /usr/local/bin/replctl version) || fail "replctl version: $out"
case "$out" in replctl\ *) ok "in the image: $out" ;; *) fail "replctl version said: $out" ;; esac

descends() { # descends PID ANCESTOR
  local p=$1
  while [ -n "$p" ] && [ "$p" != 1 ] && [ "$p" != 0 ]; do
    [ "$p" = "$2" ] && return 0
    p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
  done
  return 1
}
# inimage NAME ANCESTOR: the pid of the descendant of ANCESTOR (our buildah
# run) whose executable is the image's /usr/local/bin/NAME (buildah runs it
# from a bind mount of the container root).
inimage() {
  local p
  for p in /proc/[0-9]*; do
    case "$(readlink "$p/exe" 2>/dev/null)" in
      */rootfs/usr/local/bin/"$1") if descends "${p#/proc/}" "$2"; then echo "${p#/proc/}"; return; fi ;;
    esac
  done
}

out=$(timeout 60 buildah --storage-driver "$driver" run --isolation chroot "$ctr" -- /usr/local/bin/replicatord --version) || fail "replicatord --version: $out"
case "$out" in replicatord\ *) ok "in the image: $out" ;; *) fail "replicatord --version said: $out" ;; esac

# ecsemu from the image serves its admin API on loopback.
eport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 19465)
timeout 120 buildah --storage-driver "$driver" run --isolation chroot \
  -e ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIsmoketest0001 -e ALIBABA_CLOUD_ACCESS_KEY_SECRET=smoke-secret "$ctr" -- \
  /usr/local/bin/ecsemu --listen "127.0.0.1:$eport" >"$work/ecsemu.log" 2>&1 &
emu=$!
deadline=$((SECONDS + 60))
until curl -sf "http://127.0.0.1:$eport/_ecsemu/stats" >/dev/null; do
  kill -0 "$emu" 2>/dev/null || { cat "$work/ecsemu.log" >&2; fail "ecsemu exited"; }
  [ $SECONDS -lt $deadline ] || { cat "$work/ecsemu.log" >&2; fail "ecsemu did not answer within 60 s"; }
  sleep 0.5 # poll a real process
done
grep -q 'ecsemu listening on http://' "$work/ecsemu.log" || fail "no listening line from ecsemu"
epid=$(inimage ecsemu "$emu")
[ -n "$epid" ] || fail "ecsemu's process was not found under buildah run ($emu)"
kill -TERM "$epid"
wait "$emu" || fail "ecsemu did not stop cleanly on SIGTERM"
emu=""
ok "ecsemu in the image serves its API"

# The daemon on the simulated cloud. Its data and socket directories are
# host directories owned by 65532, as a volume would be.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 19464)
find "$mnt" -mindepth 1 | sort >"$work/root.before"
mkdir -p "$work/data" "$work/run"
chown 65532:65532 "$work/data" "$work/run"
chmod 0700 "$work/data" "$work/run"
timeout 300 buildah --storage-driver "$driver" run --isolation chroot \
  -v "$work/data:/var/lib/replicatord" -v "$work/run:/run/replicatord" "$ctr" -- \
  /usr/local/bin/replicatord --config /etc/replicatord/simulated.yaml --metrics-listen "127.0.0.1:$port" \
  >"$work/daemon.log" 2>&1 &
daemon=$!

deadline=$((SECONDS + 60))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)" = 200 ]; do
  kill -0 "$daemon" 2>/dev/null || { cat "$work/daemon.log" >&2; fail "the daemon exited before it was ready"; }
  [ $SECONDS -lt $deadline ] || { cat "$work/daemon.log" >&2; fail "/readyz not 200 within 60 s"; }
  sleep 0.5 # poll a real process
done
ok "/readyz 200"
[ "$(curl -s "http://127.0.0.1:$port/healthz")" = ok ] || fail "/healthz"
ok "/healthz ok"
# To a file first: grep -q stopping early would fail curl with SIGPIPE.
curl -sf -o "$work/metrics" "http://127.0.0.1:$port/metrics" || fail "GET /metrics"
grep -q '^replicatord_build_info{.*revision="'"${REVISION:-}" "$work/metrics" || fail "no replicatord_build_info with revision ${REVISION:-} in /metrics"
ok "/metrics has replicatord_build_info"

# The daemon process runs as 65532, not root.
pid=$(inimage replicatord "$daemon")
[ -n "$pid" ] || fail "the daemon's process was not found under buildah run ($daemon)"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = 65532 ] || fail "the daemon runs as uid $uid"
ok "the daemon runs as uid 65532"

out=$(timeout 60 buildah --storage-driver "$driver" run --isolation chroot -v "$work/run:/run/replicatord" --user 65532:65532 "$ctr" -- \
  /usr/local/bin/replctl --address unix:///run/replicatord/replicatord.sock policies) || fail "replctl policies: $out"
ok "replctl over the socket: $(echo "$out" | head -1)"

kill -TERM "$pid"
wait "$daemon" || fail "the daemon did not stop cleanly on SIGTERM (exit $?)"
daemon=""
grep -q 'shutting down' "$work/daemon.log" || fail "no shutdown line in the daemon log"
ok "clean stop on SIGTERM"
# Nothing was written outside the two volumes: the image runs with a
# read-only root file system.
find "$mnt" -mindepth 1 | sort >"$work/root.after"
diff "$work/root.before" "$work/root.after" >&2 || fail "the daemon wrote into the image's root (above)"
[ -s "$work/data/state.db" ] || fail "no state.db in the data volume"
ok "wrote only its volumes (state.db in the data dir), nothing in the image root"
echo "smoke: PASS ($image)"
