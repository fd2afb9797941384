#!/usr/bin/env bash
# Build finemon's image with podman from a base that needs no registry: a Debian root
# filesystem made with mmdebstrap from the package mirror and imported with `podman import`.
#
#   k8s/build-image.sh [TAG]        (default TAG: finemon:<version in pyproject.toml>)
#
# Needs root and Debian's podman, runc and mmdebstrap (apt-get install podman runc mmdebstrap).
# podman runs with k8s/podman/containers.conf (runc, the cgroupfs manager, no default ulimits;
# see that file) unless CONTAINERS_CONF names another. The root filesystem is cached in
# FINEMON_IMAGE_CACHE (default /var/cache/finemon-image), keyed by the mmdebstrap command line,
# and imported once as localhost/finemon-base:<suite>-<key>; delete the cache directory to take
# the mirror's newest packages. The build's RUN steps see the host's CA bundle (a proxy the
# host trusts also works for pip); it is not copied into the image. Prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${FINEMON_IMAGE_CACHE:-/var/cache/finemon-image}
suite=bookworm
mirror=${FINEMON_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${FINEMON_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/k8s/podman/containers.conf}

version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
tag=${1:-finemon:$version}

# python3 and its venv module are all the Dockerfile needs from its base. Merged /usr without
# the usrmerge package (and so without perl), no recommends, no manuals, translations or docs
# (copyright files kept).
debootstrap=(
    mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --aptopt='APT::Install-Recommends "false"'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-include=/usr/share/locale/locale.alias'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    "$suite"
)
sources=(
    "deb $mirror $suite main"
    "deb $mirror $suite-updates main"
    "deb $security $suite-security main"
)
key=$(printf '%s\n' "${debootstrap[@]}" "${sources[@]}" | sha256sum | cut -c1-12)
rootfs=$cache/$suite-$key.tar
base=localhost/finemon-base:$suite-$key

mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9
if ! podman image exists "$base"; then
    if [ ! -f "$rootfs" ]; then
        echo "== mmdebstrap $suite -> $rootfs"
        # mmdebstrap picks the output format from the name: *.tar.
        "${debootstrap[@]}" "$cache/$suite-$key.new.tar" "${sources[@]}"
        mv "$cache/$suite-$key.new.tar" "$rootfs"
    fi
    echo "== podman import $rootfs -> $base"
    # A Docker Hub image carries a PATH; an imported tarball has none.
    podman import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$rootfs" "$base" > /dev/null
fi
flock -u 9

echo "== podman build $tag (BASE_IMAGE=$base)"
# --pull=never: the base is local and nothing else is pulled. --layers=false: no build-stage
# image is left behind. --network=host: the RUN steps reach PyPI through the host's network,
# without a CNI bridge (and the iptables rules it needs).
ca_bundle=/etc/ssl/certs/ca-certificates.crt
volumes=()
if [ -f "$ca_bundle" ]; then
    volumes=(--volume "$ca_bundle:$ca_bundle:ro")
fi
podman build --pull=never --layers=false --network=host "${volumes[@]}" \
    --build-arg "BASE_IMAGE=$base" --tag "$tag" .
podman image inspect --format "$tag {{.Size}} bytes" "$tag"
