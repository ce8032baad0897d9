#!/bin/sh
# Install llama.cpp's prebuilt binaries (npm node-llama-cpp) into the persona studio cache, for
# the tests that check exported GGUF files with the real engine. Needs node and npm; without them
# it says so and exits 0, and those tests skip with the same reason.
set -e
VERSION=3.21.1
CACHE="${PERSONA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/persona-studio}"
DEST="$CACHE/llama"
if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: llama.cpp checks will be skipped (apt-get install -y nodejs npm)"
    exit 0
fi
if [ -f "$DEST/node_modules/node-llama-cpp/package.json" ] &&
    grep -q "\"version\": \"$VERSION\"" "$DEST/node_modules/node-llama-cpp/package.json"; then
    exit 0
fi
mkdir -p "$DEST"
[ -f "$DEST/package.json" ] || echo '{"private": true}' > "$DEST/package.json"
cd "$DEST" && npm i -E --no-audit --no-fund "node-llama-cpp@$VERSION"
