#!/usr/bin/env bash
# Install @tensorflow/tfjs-node (or -gpu) on a machine that cannot reach storage.googleapis.com.
#
# tfjs-node's install script (scripts/install.js) downloads libtensorflow from
#   ${TFJS_NODE_BASE_URI}${type}-linux-x86_64-${LIBTENSORFLOW_VERSION}.tar.gz
# where TFJS_NODE_BASE_URI defaults to
#   https://storage.googleapis.com/tensorflow/libtensorflow/libtensorflow-
# and LIBTENSORFLOW_VERSION is pinned in its scripts/deps-constants.js (2.9.1 for 4.22.0).
# This script serves a local tarball under exactly that file name on 127.0.0.1 and points
# TFJS_NODE_BASE_URI there. The native binding itself is fetched by node-pre-gyp from
#   https://storage.googleapis.com/tf-builds/pre-built-binary/napi-v{N}/{version}/{CPU|GPU}-linux-{version}.tar.gz
# Give that tarball as the optional second argument to serve it too; without it node-pre-gyp
# falls back to building the binding from source (needs python3, make, g++ and Node headers).
#
# Usage: scripts/provision-libtensorflow.sh LIBTENSORFLOW_TARBALL [BINDING_TARBALL]
#   e.g. scripts/provision-libtensorflow.sh ~/dl/libtensorflow-cpu-linux-x86_64-2.9.1.tar.gz
# Env: TFJS_NODE_VERSION (default 4.22.0, must match @tensorflow/tfjs-core in package.json).
# test/provision-libtensorflow.test.ts runs it with a stand-in npm (no network); the real install is untested.
# See docs/backends.md.
set -euo pipefail

die() {
  echo "provision-libtensorflow: $*" >&2
  exit 1
}

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 LIBTENSORFLOW_TARBALL [BINDING_TARBALL] (see docs/backends.md)"
lib_tarball=$1
binding_tarball=${2:-}
tfjs_version=${TFJS_NODE_VERSION:-4.22.0}

case "$lib_tarball" in
  *.whl | */simple | */simple/)
    die "$lib_tarball is a pip wheel/index of tensorflow-cpu: tfjs-node needs the libtensorflow C library tarball — build one from the wheel first (docs/backends.md, 'From a tensorflow-cpu wheel')" ;;
esac
[[ -f "$lib_tarball" ]] || die "$lib_tarball does not exist — pass the path of a libtensorflow-cpu-linux-x86_64-<version>.tar.gz"
[[ -z "$binding_tarball" || -f "$binding_tarball" ]] || die "$binding_tarball does not exist — pass the CPU-linux-$tfjs_version.tar.gz binding or leave it out to build from source"
[[ "$(uname -s)" == "Linux" && "$(uname -m)" == "x86_64" ]] || die "only linux x86_64 is handled here (tfjs-node uses other URLs elsewhere)"
command -v python3 >/dev/null || die "python3 is needed to serve the tarball — install python3"

# cpu or gpu, from the tarball's name; gpu needs the -gpu package.
lib_name=$(basename "$lib_tarball")
if [[ "$lib_name" == *gpu* ]]; then
  lib_type=gpu
  package=@tensorflow/tfjs-node-gpu
  binding_name="GPU-linux-$tfjs_version.tar.gz"
else
  lib_type=cpu
  package=@tensorflow/tfjs-node
  binding_name="CPU-linux-$tfjs_version.tar.gz"
fi

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work_dir=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work_dir"
}
trap cleanup EXIT INT TERM

# The libtensorflow version the install script will ask for: read it from the package itself
# (npm pack needs only the npm registry). Fall back to the version in the tarball's name.
lib_version=""
if (cd "$work_dir" && npm pack --silent "$package@$tfjs_version" >/dev/null 2>&1); then
  lib_version=$(tar -xzOf "$work_dir"/*.tgz package/scripts/deps-constants.js |
    sed -n "s/^const LIBTENSORFLOW_VERSION = '\([0-9.]*\)';.*/\1/p")
fi
name_version=$(sed -n 's/.*-\([0-9][0-9.]*[0-9]\)\.tar\.gz$/\1/p' <<<"$lib_name")
if [[ -z "$lib_version" ]]; then
  [[ -n "$name_version" ]] || die "cannot tell the libtensorflow version: npm pack $package@$tfjs_version failed and $lib_name has no version in its name"
  lib_version=$name_version
  echo "provision-libtensorflow: npm pack failed; assuming libtensorflow $lib_version from the file name" >&2
elif [[ -n "$name_version" && "$name_version" != "$lib_version" ]]; then
  echo "provision-libtensorflow: warning: $package@$tfjs_version expects libtensorflow $lib_version, tarball says $name_version" >&2
fi

# Mirror the download layout: BASE_URI = http://127.0.0.1:PORT/libtensorflow-
serve_dir="$work_dir/serve"
mkdir -p "$serve_dir"
ln -s "$(realpath "$lib_tarball")" "$serve_dir/libtensorflow-$lib_type-linux-x86_64-$lib_version.tar.gz"
if [[ -n "$binding_tarball" ]]; then
  # node-pre-gyp picks the highest N-API version in the package's binary.napi_versions that Node supports.
  napi=$(node -p 'Math.min(Number(process.versions.napi), 8)')
  mkdir -p "$serve_dir/napi-v$napi/$tfjs_version"
  ln -s "$(realpath "$binding_tarball")" "$serve_dir/napi-v$napi/$tfjs_version/$binding_name"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$serve_dir" >"$work_dir/http.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null; then break; fi
  sleep 0.1
done
kill -0 "$server_pid" 2>/dev/null || die "python3 -m http.server did not start: $(cat "$work_dir/http.log")"

echo "provision-libtensorflow: serving $lib_name as libtensorflow-$lib_type-linux-x86_64-$lib_version.tar.gz on 127.0.0.1:$port"
cd "$repo_root"
export TFJS_NODE_BASE_URI="http://127.0.0.1:$port/libtensorflow-"
if [[ -n "$binding_tarball" ]]; then
  # @mapbox/node-pre-gyp reads npm_config_<module_name>_binary_host_mirror.
  export npm_config_tfjs_binding_binary_host_mirror="http://127.0.0.1:$port/"
fi
npm install --no-save "$package@$tfjs_version"

# Proof that it loads and registers backend "tensorflow" with this project's tfjs-core.
node -e "
  const tf = require('@tensorflow/tfjs-core');
  require('$package');
  if (!tf.findBackendFactory('tensorflow')) { console.error('$package loaded but backend tensorflow is not in our tfjs-core'); process.exit(1); }
  tf.setBackend('tensorflow').then(() => console.log('provision-libtensorflow: ok, backend', tf.getBackend(), 'tfjs-core', tf.version_core));
"
