#!/usr/bin/env bash
# Mesa's lavapipe (software Vulkan) unpacked into DIR (default .cache/lavapipe), so that the WebGPU code runs on a
# machine without a GPU: test/webgpu-fused.test.ts, bench/gpu-bench.ts. Nothing is installed system-wide (apt uses
# its own lists under DIR; the debs are unpacked, not installed). Bookworm's Mesa 22.3 lavapipe is rejected by Dawn
# ("shaderUniform*ArrayDynamicIndexing required"), so Mesa comes from bookworm-backports. Speed means nothing there
# (a few GFLOP/s); values and limits (a 128 MiB storage binding) are what it is for. docs/gpu.md.
#
#   env $(bash scripts/lavapipe.sh) npx vitest run test/webgpu-fused.test.ts
#
# Prints the environment to run with (LD_LIBRARY_PATH=… VK_ICD_FILENAMES=…) on stdout; progress on stderr.
set -euo pipefail
dir=$(mkdir -p "${1:-.cache/lavapipe}" && cd "${1:-.cache/lavapipe}" && pwd)
root=$dir/root
lib=$root/usr/lib/x86_64-linux-gnu
icd=$dir/lvp_icd.json
if [ ! -f "$lib/libvulkan_lvp.so" ] || [ ! -f "$icd" ]; then
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(uname -m)" != x86_64 ]; then
    echo "error: lavapipe needs Debian's apt-get on x86_64 — run on a Debian bookworm machine, or use a GPU" >&2
    exit 1
  fi
  apt=$dir/apt
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir/debs"
  printf '%s\n' "deb http://deb.debian.org/debian bookworm main" "deb http://deb.debian.org/debian bookworm-backports main" >"$apt/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=-" -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=root")
  echo "lavapipe: apt lists (bookworm, bookworm-backports) into $apt" >&2
  apt-get "${opts[@]}" update -qq >&2
  cd "$dir/debs"
  apt-get "${opts[@]}" download -qq -t bookworm-backports mesa-vulkan-drivers libdrm-amdgpu1 libdrm2 >&2
  apt-get "${opts[@]}" download -qq libvulkan1 libllvm15 libelf1 libwayland-client0 libx11-xcb1 libxcb-dri3-0 libxcb-present0 \
    libxcb-randr0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 libxcb1 libxshmfence1 libxau6 libxdmcp6 libx11-6 libffi8 \
    libedit2 libtinfo6 libxml2 libicu72 libbsd0 libmd0 libzstd1 libexpat1 libz3-4 libstdc++6 >&2
  rm -rf "$root"
  for f in *.deb; do dpkg -x "$f" "$root"; done
  [ -f "$lib/libvulkan_lvp.so" ] || { echo "error: no libvulkan_lvp.so in the unpacked mesa-vulkan-drivers — delete $dir and run again" >&2; exit 1; }
  printf '{"ICD":{"api_version":"1.4.305","library_path":"%s"},"file_format_version":"1.0.1"}\n' "$lib/libvulkan_lvp.so" >"$icd"
  echo "lavapipe: unpacked into $root" >&2
fi
echo "LD_LIBRARY_PATH=$lib VK_ICD_FILENAMES=$icd"
