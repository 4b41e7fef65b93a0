#!/usr/bin/env bash
# The retrieval study of issue 10 (docs/results.md) on a lent GPU machine's CPU cores (and its GPU through WebGPU):
# many single-core wasm trainings or evaluations side by side. Needs `bench/gpu.sh prepare` here first (Node, the
# node_modules files, dist/ and the models in .cache/gpu), then here:
#   bench/retrieval.sh pack                      corpora into .cache/retrieval/corpora.tar.xz
# and there (the `run` tool, carry [".gl", ".cache/gpu", ".cache/retrieval"]):
#   bash bench/retrieval.sh device JOBS[:SECONDS]...   each line of JOBS: a name and edgeinf's arguments (`a-train train --recipe
#                                           R.yaml --resume`); up to nproc − 1 run at once, each one wasm (or webgpu)
#                                           process, all bounded by EDGEINF_DEVICE_SECONDS (default 540)
# Logs, checkpoints/ and runs/ come back as $OUT/logs.txt and $OUT/results.tar.xz.
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=.cache/gpu
RPACK=.cache/retrieval

pack() {
  mkdir -p "$RPACK"
  tar -C ../shared -cf - corpora | xz -T0 -6 >"$RPACK/corpora.tar.xz"
  # this checkout's build (the bundle's dist/ is as old as its prepare)
  tar --exclude='*.map' --exclude='*.d.ts' -cf - dist/src dist/bench | xz -T0 -6 >"$RPACK/dist.tar.xz"
  du -ch "$PACK"/node.xz "$PACK"/bundle.tar.xz "$RPACK"/*.tar.xz .gl | tail -1
}

device() {
  : "${OUT:=/tmp/retrieval-out}"
  local budget=${EDGEINF_DEVICE_SECONDS:-540}
  mkdir -p "$OUT" /tmp/gpu
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] && export VK_DRIVER_FILES=$icd
  # A warm machine keeps ignored paths between calls (checkpoints/, runs/, the unpacked bundle): unpack once.
  [ -x /tmp/gpu/node ] || { xz -dc "$PACK/node.xz" >/tmp/gpu/node && chmod +x /tmp/gpu/node; }
  export PATH=/tmp/gpu:$PATH
  [ -f "$PACK/.unpacked" ] || { tar -xJf "$PACK/bundle.tar.xz" && touch "$PACK/.unpacked"; }
  tar -xJf "$RPACK/dist.tar.xz"
  # ../shared as the recipes and suites name it
  if [ ! -d ../shared/corpora ]; then
    mkdir -p ../shared/models
    tar -C ../shared -xJf "$RPACK/corpora.tar.xz"
    ln -sfn "$PWD/$PACK/models/edge-lm" ../shared/models/edge-lm
    ln -sfn "$PWD/$PACK/models/stories260K" ../shared/models/stories260K
  fi
  echo "== $(node --version); $(nproc) cores; $(nvidia-smi --query-gpu=name --format=csv,noheader 2>&1 | head -1)"
  local logs=/tmp/retrieval-logs
  mkdir -p "$logs"
  # JOBS[:SECONDS] arguments run one after another; the jobs of one file run side by side and end by its deadline
  # (default EDGEINF_DEVICE_SECONDS); a queued job gets what is left.
  export logs
  for arg in "$@"; do
    local jobs=${arg%%:*} seconds=$budget
    [ "$jobs" != "$arg" ] && seconds=${arg##*:}
    export deadline=$(( $(date +%s) + seconds ))
    echo "== $jobs: ${seconds}s"
    grep -v '^\s*\(#\|$\)' "$jobs" | xargs -P "$(( $(nproc) - 1 ))" -L 1 bash -c \
      'name=$0; left=$(( deadline - $(date +%s) )); [ "$left" -gt 15 ] || exit 0; echo "start $name $(date +%T)";
       timeout -s INT "$left" node dist/src/cli/main.js "$@" >"$logs/$name.log" 2>&1; echo "end $name rc=$? $(date +%T)"' || true
  done
  for f in "$logs"/*.log; do echo "== $f"; grep -v "^\s*at " "$f" | tr '\r' '\n' | grep -v '^$' | tail -6; done | tee "$OUT/logs.txt"
  # modules, logs and eval rows (optimizer states stay on the machine: they would not fit the 16 MiB a file)
  tar --exclude=optimizer.safetensors -cf - checkpoints runs 2>/dev/null | xz -T0 -6 >"$OUT/results.tar.xz"
  ls -la "$OUT"
}

case "${1:-}" in
  pack) pack ;;
  device) shift; device "$@" ;;
  *) echo "usage: bench/retrieval.sh pack | device JOBS"; exit 2 ;;
esac
