#!/usr/bin/env bash
# Builds the container image from this work tree without network access:
# static binaries (CGO_ENABLED=0, GOPROXY=off: every module must already
# be in the module cache), the host's CA bundle, an /etc/passwd with the
# runtime user 65532, then deploy/Containerfile with buildah inside a new
# network namespace that has no interface up (unshare --net; buildah's
# chroot isolation refuses --network none). FROM scratch: nothing is
# pulled, and the Containerfile has no RUN step.
#
# usage: deploy/image/build.sh [IMAGE]     (default localhost/replicatord:dev)
# env:   VERSION, REVISION (default: git describe / git rev-parse)
#        STORAGE_DRIVER (default vfs), CONTEXT_DIR (default a temp dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${1:-localhost/replicatord:dev}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
revision=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
driver=${STORAGE_DRIVER:-vfs}
ca=/etc/ssl/certs/ca-certificates.crt

command -v buildah >/dev/null || { echo "build.sh: buildah not found (apt-get install buildah)" >&2; exit 1; }
command -v unshare >/dev/null || { echo "build.sh: unshare not found (util-linux)" >&2; exit 1; }
[ -s "$ca" ] || { echo "build.sh: no CA bundle at $ca (apt-get install ca-certificates)" >&2; exit 1; }

ctx=${CONTEXT_DIR:-$(mktemp -d)}
[ -n "${CONTEXT_DIR:-}" ] || trap 'rm -rf "$ctx"' EXIT
rm -rf "$ctx/rootfs" "$ctx/data"
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/etc/replicatord/config" \
  "$ctx/data/var/lib/replicatord" "$ctx/data/run/replicatord" "$ctx/data/tmp"

echo "build.sh: static binaries $version ($revision)"
CGO_ENABLED=0 GOPROXY=off GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false" go build -trimpath \
  -ldflags "-s -w -X main.buildVersion=$version -X main.buildRevision=$revision" \
  -o "$ctx/rootfs/usr/local/bin/" ./cmd/replicatord ./cmd/replctl ./cmd/ecsemu

cp "$ca" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:replicatord:/var/lib/replicatord:/sbin/nologin\n' > "$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$ctx/rootfs/etc/group"
# A config that starts on its own, on the simulated cloud, for a first try
# (the smoke test runs it with buildah run), e.g.:
#   podman run --rm -p 9464:9464 IMAGE --config /etc/replicatord/simulated.yaml
cat > "$ctx/rootfs/etc/replicatord/simulated.yaml" <<'YAML'
version: 1
daemon:
  data_dir: /var/lib/replicatord
  listen: unix:///run/replicatord/replicatord.sock
  metrics_listen: 0.0.0.0:9464
  log_format: json
cloud:
  provider: simulated
YAML
chmod 0755 "$ctx/rootfs/usr/local/bin/"*
chmod 0700 "$ctx/data/var/lib/replicatord" "$ctx/data/run/replicatord"
chmod 1777 "$ctx/data/tmp"
cp deploy/Containerfile "$ctx/Containerfile"

# Replace an earlier build of the same name instead of leaving it behind
# untagged (vfs storage keeps a full copy of each image).
buildah --storage-driver "$driver" rmi "$image" >/dev/null 2>&1 || true
echo "build.sh: buildah bud -> $image"
unshare --net buildah --storage-driver "$driver" bud --isolation chroot --pull=never \
  --layers=false --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.source=https://github.com/replicatord/replicatord" \
  -f "$ctx/Containerfile" -t "$image" "$ctx"
