#!/usr/bin/env bash
# WebGPU (Dawn) benchmarks on a lent GPU machine that has no Node and no network. See docs/gpu.md.
#
#   bench/gpu.sh prepare train  here: a smaller pack for `device batch` alone (carry .cache/gpu only)
#   bench/gpu.sh prepare        here: build dist/, pack Node + the node_modules files the benches load + dist/ + the
#                               two test models into .cache/gpu/, fetch the Vulkan loader debs into .gl/
#   bench/gpu.sh device smoke   there: Node, Vulkan, adapter, stories260K on webgpu vs wasm (about a minute)
#   bench/gpu.sh device full    there: everything below, one call (about 8 minutes)
#   bench/gpu.sh device must    there: parity, a training step and TTFT at 4k/16k/64k in one short call (about 5 minutes)
#   bench/gpu.sh device long    there: TTFT at 64k tokens, full KV vs EdgeInfinite (about 8 minutes)
#   bench/gpu.sh device cli     there: the CLI on webgpu: generate, ppl, train, eval (every method), vs wasm
#   bench/gpu.sh device batch   there: bench:train on webgpu at seq 2048, batch 1,8,32 (one batched forward per TBPTT
#                               block), beside PyTorch eager on CUDA, same step and ids (about 5 minutes at most)
#   bench/gpu.sh device infer   there: decode tok/s and prefill time on webgpu for each EDGEINF_GPU_ENV_SETS entry
#   bench/gpu.sh device node ARGS…  there: after the same setup, `node ARGS…` (a script of the working tree, e.g. with
#                               --cpu-prof --cpu-prof-dir "$OUT"); EDGEINF_GPU_MODEL is edge-lm's path in the pack
#   bench/gpu.sh cli BACKEND    here: the same CLI checks on any backend (prepare runs them on cpu under strace)
#
# Device call (the `run` tool): command "bash bench/gpu.sh device full", carry [".gl", ".cache/gpu"].
# Everything written under $OUT comes back: full.log, gpu-bench.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=.cache/gpu

# The CLI on one backend, with stories260K and two corpus files: generate (full, h2o), ppl (full, edgeinfinite),
# train (3 steps, checkpoints), eval (every method, the edgeinfinite one from that checkpoint). Output under $2.
cli_checks() {
  local backend=$1 out=$2 models=$3 corpus=$4
  local sm=$models/stories260K/stories260K.bin failed=()
  local prompt="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog Max. One day, she saw a big red ball under a tree. She ran to get it, but a bird was sitting on the ball."
  # Runs the CLI, output to $out/NAME.out (and the terminal); a failure is recorded and the next check still runs.
  cli() {
    local name=$1; shift
    echo "== cli on $backend: $name"
    if node dist/src/cli/main.js "$@" >"$out/$name.out" 2>"$out/$name.err"; then tail -c 1500 "$out/$name.out"; else
      echo "FAILED ($name): $(grep -v '^\s*at ' "$out/$name.err" | tail -5)"; failed+=("$name"); fi
  }
  rm -rf "$out" && mkdir -p "$out"
  cli generate-full generate -m "$sm" --backend "$backend" -p "$prompt" -n 32 --json
  cli generate-h2o generate -m "$sm" --backend "$backend" -p "$prompt" -n 16 --method h2o --budget 50% --json
  cli ppl-full ppl -m "$sm" --backend "$backend" -f "$corpus/heldout/heldout.txt" --max-tokens 1500
  cli ppl-edgeinfinite ppl -m "$sm" --backend "$backend" -f "$corpus/heldout/heldout.txt" --max-tokens 1500 --method edgeinfinite
  cat >"$out/recipe.yaml" <<YAML
name: gpu-cli
seed: 5
backend: $backend
backbone: $sm
data:
  sequenceLength: 256
  mixture:
    - { source: text, path: $corpus/train, weight: 1 }
  heldout: { path: $corpus/heldout, sequences: 1 }
edgeinfinite: { sinkTokens: 4, windowTokens: 64, segmentLength: 64 }
training:
  steps: 3
  tbpttSegments: 2
  gradAccumulation: 1
  gradClip: 1.0
  optimizer: { lr: 0.01 }
  evalInterval: 3
  checkpointInterval: 3
output: $out/train
YAML
  cli train train --recipe "$out/recipe.yaml"
  cat >"$out/suite.yaml" <<YAML
name: gpu-cli
backbone: $sm
corpus: $corpus/heldout
seed: 7
lengths: [256]
tasks: [{ name: passkey, source: synthetic, count: 1, depths: [0.5], intro: false }]
methods:
  - { name: full }
  - { name: streaming, budget: 64, sinkTokens: 4 }
  - { name: h2o, budget: 64 }
  - { name: snapkv, budget: 64 }
  - { name: pyramidkv, budget: 64 }
  - { name: tova, budget: 64 }
  - { name: random, budget: 64 }
  - { name: edgeinfinite, checkpoint: $out/train, windowTokens: 124, segmentLength: 64, checkpointIfMissing: untrained }
generation: { maxNewTokens: 8, temperature: 0 }
warmup: true
YAML
  cli eval eval --suite "$out/suite.yaml" --backend "$backend" --run-dir "$out/run" --progress lines
  if [ ${#failed[@]} -gt 0 ]; then echo "cli on $backend: FAILED: ${failed[*]}"; return 1; fi
  echo "cli on $backend: all passed"
}

# Node: the same binary as here (x86-64, glibc), without its debug symbols, xz-compressed with the x86 filter
# (99 MB → 21 MB). Kept while the version is the same.
pack_node() {
  local node_bin; node_bin=$(readlink -f "$(command -v node)")
  if [ ! -f "$PACK/node.xz" ] || [ "$(cat "$PACK/node.version" 2>/dev/null)" != "$(node --version) stripped" ]; then
    local tmp; tmp=$(mktemp)
    strip -o "$tmp" "$node_bin" && "$tmp" --version >/dev/null
    xz -T0 --x86 --lzma2=preset=9e -c "$tmp" >"$PACK/node.xz"
    rm -f "$tmp"
    echo "$(node --version) stripped" >"$PACK/node.version"
  fi
}

# A smaller pack for `device batch` alone, when the repo's own files leave less than prepare's 58 MB of the 64 MiB
# a device call may send: Node, the node_modules files dist/bench/train.js opens (strace, edge-lm on cpu) plus the
# webgpu backend, dist's .js files, edge-lm, and only the Vulkan loader's deb (in $PACK/gl; carry .cache/gpu alone).
prepare_train() {
  command -v strace >/dev/null || { echo "bench/gpu.sh: strace not found — apt-get install strace"; exit 1; }
  local edge=../shared/models/edge-lm
  [ -f "$edge/config.json" ] || { echo "bench/gpu.sh: $edge missing — run from the repo next to ../shared"; exit 1; }
  npx tsc -p tsconfig.json >/dev/null 2>&1 || echo "tsc reported errors (emitted anyway); see npx tsc -p tsconfig.json --noEmit"
  [ -f dist/bench/train.js ] || { echo "bench/gpu.sh: dist/bench/train.js was not built — fix the build first"; exit 1; }
  rm -rf "$PACK/corpus" "$PACK/bundle.tar.xz" "$PACK/gl"
  mkdir -p "$PACK/gl"
  local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # The Vulkan loader alone is not enough: NVIDIA's ICD (libGLX_nvidia.so.0) needs glvnd and its X libraries, else
  # "vkCreateInstance: Found no drivers" (seen on the H100 on 2026-12-06). About 1.4 MB in all.
  mkdir -p /tmp/amd64/partial
  apt-get $o update -qq && (cd "$PACK/gl" && apt-get $o download libvulkan1 libglvnd0 libglx0 libegl1 libgl1 libopengl0 libgles2 \
    libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0)
  pack_node
  local trace; trace=$(mktemp -d)
  EDGEINF_TORCH_PYTHON=/nonexistent strace -f -qq -e trace=openat -o "$trace/a" node dist/bench/train.js --model "$edge" --seq 16 --segment 8 \
    --window 8 --sink 2 --batch 2 --workers 1 --steps 1 --backends cpu >"$trace/log" 2>&1 || { tail -5 "$trace/log"; echo "bench/gpu.sh: train.js failed on cpu"; exit 1; }
  local nm; nm=$(readlink -f node_modules)
  { grep -v ENOENT "$trace/a" | grep -o '"[^"]*node_modules/[^"]*"' | tr -d '"' | sed "s#^$nm/#node_modules/#; s#^$PWD/##" | grep '^node_modules/' | grep -v '/$' || true
    echo node_modules/@tensorflow/tfjs-backend-webgpu/package.json
    echo node_modules/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.node.js
    echo node_modules/webgpu/package.json
    echo node_modules/webgpu/index.js
    echo node_modules/webgpu/dist/linux-x64/dawn.node
  } | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done >"$trace/files"
  find dist/src dist/bench -name '*.js' >>"$trace/files"
  echo package.json >>"$trace/files"
  rm -rf "$trace/stage" && mkdir -p "$trace/stage/$PACK/models/edge-lm"
  cp "$edge"/{config.json,model.safetensors.index.json,tokenizer.json,tokenizer_config.json} "$trace/stage/$PACK/models/edge-lm/"
  grep -v '/dawn.node$' "$trace/files" | tar -cf - --files-from=- | tar -xf - -C "$trace/stage"
  (cd "$trace/stage" && tar -cf - .) | xz -T0 -9e >"$PACK/bundle.tar.xz"
  # Dawn's binary with the x86 filter (21.5 MB → 4.3 MB). The fp16 weights byte-split (all low bytes, then all high
  # bytes: the high bytes compress, 27.1 → 25.7 MB); `device` puts them back and checks their sha256.
  xz -T0 --x86 --lzma2=preset=9e -c node_modules/webgpu/dist/linux-x64/dawn.node >"$PACK/dawn.node.xz"
  # This checkout's PyTorch side and this script: the device call sends the session's own checkout, which may be
  # older; `device` takes bench/torch_llama.py from the pack (run it as: cp .cache/gpu/gpu.sh bench/gpu.sh && ...).
  cp bench/torch_llama.py bench/gpu.sh "$PACK/"
  mkdir -p "$PACK/weights"
  (cd "$edge" && sha256sum model-0000?-of-00002.safetensors) >"$PACK/weights/SHA256SUMS"
  for f in "$edge"/model-0000?-of-00002.safetensors; do
    node -e 'const fs = require("fs"); const b = fs.readFileSync(process.argv[1]); if (b.length % 2) throw new Error("odd length");
      const o = Buffer.allocUnsafe(b.length), h = b.length / 2; for (let i = 0; i < h; i++) { o[i] = b[2 * i]; o[h + i] = b[2 * i + 1]; }
      process.stdout.write(o);' "$f" | xz -T0 -9e >"$PACK/weights/$(basename "$f").split.xz"
  done
  echo "node_modules files: $(grep -c '^node_modules/' "$trace/files")"
  rm -rf "$trace"
  du -cb "$PACK" | tail -1 | awk '{printf "%.1f MiB to carry (.cache/gpu alone; the device call sends at most 64 MiB with the working tree)\n", $1 / 1048576}'
}

prepare() {
  command -v strace >/dev/null || { echo "bench/gpu.sh: strace not found — apt-get install strace (it lists the files the benches load)"; exit 1; }
  local shared=../shared/models
  [ -f "$shared/stories260K/stories260K.bin" ] && [ -f "$shared/edge-lm/config.json" ] || { echo "bench/gpu.sh: $shared/{stories260K,edge-lm} missing — run from the repo next to ../shared"; exit 1; }
  # Others' files may not compile yet; tsc still emits, and the files the benches need are checked below.
  npx tsc -p tsconfig.json >/dev/null 2>&1 || echo "tsc reported errors (emitted anyway); see npx tsc -p tsconfig.json --noEmit"
  for f in dist/bench/gpu-bench.js dist/bench/backbone.js dist/bench/prefill.js dist/bench/train.js; do
    [ -f "$f" ] || { echo "bench/gpu.sh: $f was not built — fix the build first"; exit 1; }
  done
  mkdir -p "$PACK" .gl
  if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial
    apt-get $o update -qq && (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  fi
  pack_node
  # node_modules: exactly the files Node opens while running every bench on the CPU backends (strace), plus the
  # webgpu backend, which only loads where an adapter exists, and Dawn's linux-x64 binary.
  local trace; trace=$(mktemp -d)
  local sm=$shared/stories260K/stories260K.bin
  strace -f -qq -e trace=openat -o "$trace/a" node dist/bench/gpu-bench.js --models "$sm" --backends cpu,wasm --tasks parity,train,ttft --lengths 520 --budget-s 20 >/dev/null 2>&1
  strace -f -qq -e trace=openat -o "$trace/b" node dist/bench/backbone.js --model "$sm" --prefill 16 --decode 2 --backends cpu >/dev/null 2>&1
  strace -f -qq -e trace=openat -o "$trace/c" node dist/bench/prefill.js --model "$sm" --lengths 400 --backend cpu >/dev/null 2>&1
  strace -f -qq -e trace=openat -o "$trace/d" node dist/bench/train.js --model "$sm" --seq 64 --segment 16 --window 32 --steps 1 --backends cpu >/dev/null 2>&1
  strace -f -qq -e trace=openat -o "$trace/e" node -e 'import("./dist/src/loaders/index.js").then(m => m.loadBackbone(process.argv[1]))' "$shared/edge-lm" >/dev/null 2>&1
  # Two corpus files (train and held-out text) for the CLI checks, and the CLI's own node_modules files.
  rm -rf "$PACK/corpus" && mkdir -p "$PACK/corpus/train" "$PACK/corpus/heldout"
  cp ../shared/corpora/gutenberg/train/Peter_Pan.txt "$PACK/corpus/train/train.txt"
  cp ../shared/corpora/gutenberg/heldout/Treasure_Island.txt "$PACK/corpus/heldout/heldout.txt"
  strace -f -qq -e trace=openat -o "$trace/f" bash bench/gpu.sh cli cpu "$trace/cli" "$shared" "$PACK/corpus" >"$trace/cli.log" 2>&1 \
    || { tail -20 "$trace/cli.log"; echo "bench/gpu.sh: the CLI checks failed on cpu"; exit 1; }
  # A worktree's node_modules may be a symlink: Node opens the files under its target.
  local nm; nm=$(readlink -f node_modules)
  { cat "$trace"/? | grep -v ENOENT | grep -o '"[^"]*node_modules/[^"]*"' | tr -d '"' | sed "s#^$nm/#node_modules/#; s#^$PWD/##" | grep '^node_modules/' | grep -v '/$' || true
    echo node_modules/@tensorflow/tfjs-backend-webgpu/package.json
    echo node_modules/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.node.js
    echo node_modules/webgpu/package.json
    echo node_modules/webgpu/index.js
    echo node_modules/webgpu/dist/linux-x64/dawn.node
    ls node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm
  } | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done >"$trace/files"
  rm -rf "$trace/stage" && mkdir -p "$trace/stage/$PACK/models"
  cp -rL "$shared/stories260K" "$trace/stage/$PACK/models/"
  mkdir -p "$trace/stage/$PACK/models/edge-lm"
  cp "$shared"/edge-lm/{config.json,model.safetensors.index.json,model-0000?-of-00002.safetensors,tokenizer.json,tokenizer_config.json,reference.json} "$trace/stage/$PACK/models/edge-lm/"
  cp -r "$PACK/corpus" "$trace/stage/$PACK/"
  tar -cf - --files-from="$trace/files" dist/src dist/bench package.json | tar -xf - -C "$trace/stage"
  (cd "$trace/stage" && tar -cf - .) | xz -T0 -6 >"$PACK/bundle.tar.xz"
  echo "node_modules files: $(wc -l <"$trace/files")"
  rm -rf "$trace"
  du -ch .gl "$PACK"/node.xz "$PACK"/bundle.tar.xz | tail -1 | sed 's/$/ to carry (limit 64 MiB with the working tree)/'
}

device() {
  local mode=${1:-full}
  : "${OUT:=/tmp/gpu-out}"
  mkdir -p "$OUT"
  exec > >(tee "$OUT/$mode.log") 2>&1
  for f in .gl/*.deb "$PACK"/gl/*.deb; do if [ -f "$f" ]; then dpkg -x "$f" /; fi; done
  ldconfig
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] && export VK_DRIVER_FILES=$icd
  mkdir -p /tmp/gpu
  xz -dc "$PACK/node.xz" >/tmp/gpu/node && chmod +x /tmp/gpu/node
  export PATH=/tmp/gpu:$PATH
  tar -xJf "$PACK/bundle.tar.xz"
  # `prepare train`'s pack: Dawn and the byte-split weights beside the bundle, and the PyTorch script it was made with.
  if [ -f "$PACK/torch_llama.py" ]; then cp "$PACK/torch_llama.py" bench/torch_llama.py; fi
  if [ -f "$PACK/dawn.node.xz" ]; then
    mkdir -p node_modules/webgpu/dist/linux-x64 && xz -dc "$PACK/dawn.node.xz" >node_modules/webgpu/dist/linux-x64/dawn.node
  fi
  if [ -d "$PACK/weights" ]; then
    for f in "$PACK"/weights/*.split.xz; do
      xz -dc "$f" | node -e 'const c = []; process.stdin.on("data", (d) => c.push(d)).on("end", () => { const b = Buffer.concat(c), h = b.length / 2;
        const o = Buffer.allocUnsafe(b.length); for (let i = 0; i < h; i++) { o[2 * i] = b[i]; o[2 * i + 1] = b[h + i]; } require("fs").writeFileSync(process.argv[1], o); });' \
        "$PACK/models/edge-lm/$(basename "$f" .split.xz)"
    done
    (cd "$PACK/models/edge-lm" && sha256sum -c --quiet ../../weights/SHA256SUMS) || { echo "edge-lm weights do not match their sha256"; exit 1; }
  fi
  echo "== $(node --version); $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1); vulkan: $(ldconfig -p | grep -c libvulkan) loader entries"
  local sm=$PACK/models/stories260K/stories260K.bin edge=$PACK/models/edge-lm
  local quiet='artificially reduced|^ - While|^validation:|^\[Invalid|^Binding size'
  if [ "$mode" = node ]; then
    EDGEINF_GPU_MODEL=$edge node "${@:2}" 2>&1 | grep -Ev "$quiet" | grep -v "CheckVkOOM" || echo "node: exit ${PIPESTATUS[0]}"
    return
  fi
  if [ "$mode" = cli ]; then
    # Compare with `bench/gpu.sh cli cpu` here (same inputs): greedy ids and perplexities should agree.
    timeout 400 bash bench/gpu.sh cli webgpu "$OUT/cli-webgpu" "$PACK/models" "$PACK/corpus" 2>&1 | grep -Ev "$quiet" || echo "cli webgpu: exit ${PIPESTATUS[0]}"
    echo "== the benches on webgpu, small (stories260K; no PyTorch column)"
    export EDGEINF_TORCH_PYTHON=/nonexistent
    timeout 90 node dist/bench/backbone.js --model "$sm" --prefill 256 --decode 16 --backends webgpu 2>&1 | grep -Ev "$quiet" || echo "backbone: exit ${PIPESTATUS[0]}"
    timeout 90 node dist/bench/train.js --model "$sm" --seq 256 --segment 64 --window 64 --sink 4 --backends webgpu --steps 1 2>&1 | grep -Ev "$quiet" || echo "train: exit ${PIPESTATUS[0]}"
    timeout 90 node dist/bench/prefill.js --model "$sm" --backend webgpu --lengths 1024,2048 2>&1 | grep -Ev "$quiet" || echo "prefill: exit ${PIPESTATUS[0]}"
    rm -rf "$OUT"/cli-*/train
    return
  fi
  if [ "$mode" = batch ]; then
    # Issue 11: training tok/s with a batch dimension on webgpu vs PyTorch eager on this GPU (bench/torch_llama.py
    # --device cuda, the image's python3), in the same bench:train run. A smoke first (seq 512, B = 2), so a broken
    # setup shows in seconds; then seq 2048 (segment 256, window 512, as the 642 tok/s row of docs/performance.md)
    # at B = 1, 8, 32. A row that fails keeps its error line; --budget-s skips a row whose estimate would not fit.
    export EDGEINF_TORCH_PYTHON=$(command -v python3 || echo /usr/bin/python3)
    echo "== torch: $("$EDGEINF_TORCH_PYTHON" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>&1 | tail -1)"
    echo "== smoke: edge-lm seq 512, batch 2, webgpu and torch cuda"
    timeout 90 node dist/bench/train.js --model "$edge" --backends webgpu --workers 1 --seq 512 --segment 128 --window 252 --sink 4 \
      --tbptt 2 --batch 2 --steps 1 --torch-device cuda --torch-timeout-s 60 --json "$OUT/batch-smoke.json" 2>&1 | grep -Ev "$quiet" | grep -v "CheckVkOOM" || echo "batch smoke: exit ${PIPESTATUS[0]}"
    # EDGEINF_GPU_BATCHES / EDGEINF_GPU_BUDGET_S widen the grid (e.g. 1,8,32,64,128 with 480 s) within one call;
    # EDGEINF_GPU_TRAIN_ARGS adds bench:train options (e.g. --profile, with EDGEINF_DAWN_FLAGS=enable-dawn-features=allow_unsafe_apis).
    # EDGEINF_GPU_FLAG_SETS ("A=1,B=2;C=3"): the grid again for each set of tfjs flags (EDGEINF_TFJS_FLAGS), PyTorch
    # only beside the first set. EDGEINF_GPU_ENV_SETS ("NAME=V OTHER=W;NAME=X"): the same, each set a list of environment
    # assignments (e.g. EDGEINF_REDUCE_GRADS=tfjs) instead of tfjs flags.
    local batches=${EDGEINF_GPU_BATCHES:-1,8,32} budget=${EDGEINF_GPU_BUDGET_S:-300} sets=${EDGEINF_GPU_FLAG_SETS:-} n=0
    local env_sets=${EDGEINF_GPU_ENV_SETS:-}
    local torch_python=$EDGEINF_TORCH_PYTHON
    IFS=';' read -r -a flag_sets <<<"${env_sets:-$sets}"
    [ ${#flag_sets[@]} -gt 0 ] || flag_sets=("")
    for flags in "${flag_sets[@]}"; do
      n=$((n + 1))
      local assignments=(EDGEINF_TFJS_FLAGS="$flags")
      [ -z "$env_sets" ] || read -r -a assignments <<<"$flags"
      echo "== bench:train seq 2048, batch $batches, webgpu ($([ -n "$env_sets" ] && echo "environment: ${flags:-unchanged}" || echo "tfjs flags: ${flags:-defaults}"))$([ $n = 1 ] && echo ' and torch cuda')"
      env "${assignments[@]}" EDGEINF_TORCH_PYTHON=$([ $n = 1 ] && echo "$torch_python" || echo /nonexistent) \
      timeout $((budget + 30)) node dist/bench/train.js --model "$edge" --backends webgpu --workers 1 --seq 2048 --segment 256 --window 512 --sink 4 \
        --tbptt 2 --batch "$batches" --steps 1 --torch-device cuda --torch-timeout-s 90 --baseline 642 --budget-s "$budget" ${EDGEINF_GPU_TRAIN_ARGS:-} \
        --json "$OUT/batch-$n.json" 2>&1 | grep -Ev "$quiet" | grep -v "CheckVkOOM" || echo "batch: exit ${PIPESTATUS[0]}"
    done
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>&1 | tail -2
    return
  fi
  if [ "$mode" = infer ]; then
    # Inference on webgpu for each EDGEINF_GPU_ENV_SETS entry ("NAME=V;NAME=W", e.g. EDGEINF_WEBGPU_FUSED=on;…=off), in
    # one call: decode tok/s after a 512-token prompt (full KV, h2o) and prefill time at 1024 and 4096 tokens (full KV
    # and EdgeInfinite). Only the train pack's files are needed (edge-lm, webgpu).
    local env_sets=${EDGEINF_GPU_ENV_SETS:-}
    IFS=';' read -r -a sets <<<"$env_sets"
    [ ${#sets[@]} -gt 0 ] || sets=("")
    for assignments in "${sets[@]}"; do
      local list=()
      read -r -a list <<<"$assignments"
      echo "== inference on webgpu (environment: ${assignments:-unchanged})"
      env "${list[@]}" EDGEINF_TORCH_PYTHON=/nonexistent timeout 150 node dist/bench/backbone.js --model "$edge" --prefill 512 --decode 32 \
        --backends webgpu 2>&1 | grep -Ev "$quiet" | grep -v "CheckVkOOM" || echo "backbone: exit ${PIPESTATUS[0]}"
      env "${list[@]}" timeout 120 node dist/bench/prefill.js --model "$edge" --backend webgpu --lengths 1024,4096 2>&1 | grep -Ev "$quiet" \
        | grep -v "CheckVkOOM" || echo "prefill: exit ${PIPESTATUS[0]}"
    done
    return
  fi
  if [ "$mode" = must ]; then
    # Issue #7's numbers in one call that fits a short lease. TTFT of full KV vs EdgeInfinite at 4k/16k/64k first (one
    # cold run each; full skipped where its estimate overruns), then logit parity on both models and training steps.
    timeout 270 node dist/bench/gpu-bench.js --models "$edge" --backends webgpu,wasm --lengths 4096,16384,65536 --repeat 1 \
      --tasks ttft,no-cpu-ttft --budget-s 240 --json "$OUT/must-ttft.json" 2>&1 | grep -Ev "$quiet" | grep -v "CheckVkOOM" || echo "must ttft: exit ${PIPESTATUS[0]}"
    timeout 100 node dist/bench/gpu-bench.js --models "$sm,$edge" --backends webgpu,wasm \
      --tasks parity,train --budget-s 75 --json "$OUT/must-parity-train.json" 2>&1 | grep -Ev "$quiet" | grep -v "CheckVkOOM" || echo "must parity/train: exit ${PIPESTATUS[0]}"
    return
  fi
  if [ "$mode" = long ]; then
    echo "== TTFT at 16k and 64k: full KV vs EdgeInfinite (segment 256), one cold run each"
    timeout 480 node dist/bench/gpu-bench.js --models "$edge" --backends webgpu,wasm --tasks ttft,no-cpu-ttft --lengths 16384,65536 --repeat 1 \
      --budget-s 470 --json "$OUT/long.json" 2>&1 | grep -Ev "$quiet" | grep -v "CheckVkOOM" || echo "long: exit ${PIPESTATUS[0]}"
    return
  fi
  if [ "$mode" = smoke ]; then
    timeout 200 node dist/bench/gpu-bench.js --models "$sm" --backends webgpu,wasm --tasks matmul,parity --budget-s 150 --json "$OUT/smoke.json" 2>&1 | grep -Ev "$quiet" || echo "smoke: exit ${PIPESTATUS[0]}"
    return
  fi
  echo "== binding limit (own process: Dawn's state after validation errors is not trusted further)"
  timeout 150 node dist/bench/gpu-bench.js --models "$sm" --backends webgpu,wasm --tasks limits --json "$OUT/limits.json" 2>&1 | grep -Ev "$quiet" || echo "limits: exit ${PIPESTATUS[0]}"
  echo "== gpu-bench: matmul, parity, training, TTFT"
  timeout 330 node dist/bench/gpu-bench.js --models "$sm,$edge" --backends webgpu,wasm --lengths 4096,16384,65536 \
    --tasks matmul,parity,train,ttft --budget-s 270 --json "$OUT/gpu-bench.json" 2>&1 | grep -Ev "$quiet" || echo "gpu-bench: exit ${PIPESTATUS[0]}"
  # The project's benches read asynchronously: each runs on webgpu and wasm (and PyTorch CPU, the image's python3,
  # in the same run).
  export EDGEINF_TORCH_PYTHON=$(command -v python3 || echo /usr/bin/python3)
  echo "== dist/bench/backbone.js --backends webgpu,wasm"
  timeout 150 node dist/bench/backbone.js --model "$edge" --prefill 512 --decode 32 --backends webgpu,wasm 2>&1 | grep -Ev "$quiet" || echo "backbone: exit ${PIPESTATUS[0]}"
  echo "== dist/bench/train.js --backends webgpu,wasm"
  timeout 150 node dist/bench/train.js --model "$edge" --backends webgpu,wasm --steps 1 2>&1 | grep -Ev "$quiet" || echo "train: exit ${PIPESTATUS[0]}"
  echo "== dist/bench/prefill.js --backend webgpu, then wasm"
  timeout 90 node dist/bench/prefill.js --model "$edge" --backend webgpu --lengths 1024,4096 2>&1 | grep -Ev "$quiet" || echo "prefill webgpu: exit ${PIPESTATUS[0]}"
  timeout 90 node dist/bench/prefill.js --model "$edge" --backend wasm --lengths 1024,4096 2>&1 | grep -Ev "$quiet" || echo "prefill wasm: exit ${PIPESTATUS[0]}"
}

case "${1:-}" in
  prepare) if [ "${2:-}" = train ]; then prepare_train; else prepare; fi ;;
  device) device "${2:-full}" "${@:3}" ;;
  cli) cli_checks "${2:-cpu}" "${3:-/tmp/edgeinf-cli}" "${4:-../shared/models}" "${5:-.cache/gpu/corpus}" ;;
  *) echo "usage: bench/gpu.sh prepare [train] | device smoke|full|long|cli|must|batch|infer|node ARGS… | cli BACKEND [OUT MODELS CORPUS]   (see docs/gpu.md)"; exit 2 ;;
esac
