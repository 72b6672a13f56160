#!/bin/sh
# Set up a fresh Debian 12 / Ubuntu 24.04 machine and run pytest-lkft.
#
#   ./bootstrap.sh main [PYTEST ARGS]   apt packages + the project in .venv, then the main job:
#                                       pytest --lkft-device=qemu-arm64
#   ./bootstrap.sh test [PYTEST ARGS]   the same plus the development extras, then our tests
#
# Every command is echoed before it runs. Root runs apt-get directly, others through sudo.
set -eu
cd "$(dirname "$0")"

# mmdebstrap (with gpg for its sources' signed-by), fakeroot and e2fsprogs build the Debian
# rootfs (--lkft-rootfs=debian), kmod's depmod indexes its kernel's modules
MAIN_PACKAGES="python3-venv python3-pip qemu-system-arm qemu-system-x86 dpkg xz-utils zstd \
    mmdebstrap gpg fakeroot e2fsprogs kmod"
# tests boot every device with default artifacts, read cpio archives, start SQUAD in a venv,
# look at pages in Chromium, cross-build an arm64 kernel from Debian's kernel source and run
# stand-in labgrid boards (serial over ser2net, U-Boot); u-boot-tools' mkimage lets LAVA
# validate U-Boot board jobs; gcc and python3-dev build the KTAP parser's C scanner
# (without them pip skips it and the parser is ~3x slower); autoconf, automake and libtool
# build libhugetlbfs's tests
TEST_PACKAGES="$MAIN_PACKAGES gcc python3-dev qemu-system-ppc qemu-system-mips qemu-system-misc cpio git curl chromium \
    linux-source-6.1 gcc-aarch64-linux-gnu libc6-dev-arm64-cross ccache rsync flex bison bc make \
    ser2net u-boot-qemu u-boot-tools autoconf automake libtool"

run() { echo "+ $*" >&2; "$@"; }
as_root() { if [ "$(id -u)" = 0 ]; then run "$@"; else run sudo "$@"; fi; }

install() {
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
    [ -x .venv/bin/python ] || run python3 -m venv .venv
    run .venv/bin/pip install -q --upgrade pip
}

what=${1:-}
[ $# -gt 0 ] && shift
case "$what" in
main)
    # shellcheck disable=SC2086
    install $MAIN_PACKAGES
    run .venv/bin/pip install -q -e .
    run .venv/bin/pytest --lkft-device=qemu-arm64 "$@"
    ;;
test)
    # shellcheck disable=SC2086
    install $TEST_PACKAGES
    run .venv/bin/pip install -q -e '.[dev]'
    run .venv/bin/pytest tests "$@"
    ;;
*)
    echo "usage: $0 main|test [pytest arguments]" >&2
    exit 2
    ;;
esac
