;; Products with few rows in the left operand, in WebAssembly SIMD, on tfjs-backend-wasm's own memory.
;; Source of src/backend/wasm-few-rows.bytes.ts (regenerate: npm run build:wasm-kernels). Read by
;; src/backend/wasm-few-rows.ts, which says why and when these run.
;;
;; Every pointer is a byte offset into the imported memory; operands are row-major float32.
;; The memory import is rewritten to non-shared for tfjs' single-threaded build (same code otherwise).
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; out[t, i, j] = Σ_k a[t, i, k] · b[t, j, k]        a [T, M, K], b [T, N, K], out [T, M, N]; K a multiple of 4.
  ;; A decode step's q·Kᵀ: each key row b[t, j] is read once and met by every query row of its batch.
  (func (export "abt")
    (param $a i32) (param $b i32) (param $out i32) (param $T i32) (param $M i32) (param $N i32) (param $K i32)
    (local $rowBytes i32) (local $t i32) (local $j i32) (local $i i32) (local $k i32)
    (local $aBase i32) (local $bRow i32) (local $aRow i32) (local $outBase i32) (local $acc0 v128) (local $acc1 v128)
    (local.set $rowBytes (i32.shl (local.get $K) (i32.const 2)))
    (local.set $t (i32.const 0))
    (block $tDone (loop $tLoop
      (br_if $tDone (i32.ge_u (local.get $t) (local.get $T)))
      (local.set $aBase (i32.add (local.get $a) (i32.mul (i32.mul (local.get $t) (local.get $M)) (local.get $rowBytes))))
      (local.set $outBase (i32.add (local.get $out) (i32.shl (i32.mul (i32.mul (local.get $t) (local.get $M)) (local.get $N)) (i32.const 2))))
      (local.set $j (i32.const 0))
      (block $jDone (loop $jLoop
        (br_if $jDone (i32.ge_u (local.get $j) (local.get $N)))
        (local.set $bRow (i32.add (local.get $b)
          (i32.mul (i32.add (i32.mul (local.get $t) (local.get $N)) (local.get $j)) (local.get $rowBytes))))
        (local.set $i (i32.const 0))
        (block $iDone (loop $iLoop
          (br_if $iDone (i32.ge_u (local.get $i) (local.get $M)))
          (local.set $aRow (i32.add (local.get $aBase) (i32.mul (local.get $i) (local.get $rowBytes))))
          (local.set $acc0 (v128.const f32x4 0 0 0 0))
          (local.set $acc1 (v128.const f32x4 0 0 0 0))
          (local.set $k (i32.const 0))
          ;; two accumulators over alternate 4-lane blocks, so consecutive adds do not wait on each other
          (block $kDone (loop $kLoop
            (br_if $kDone (i32.gt_u (i32.add (local.get $k) (i32.const 32)) (local.get $rowBytes)))
            (local.set $acc0 (f32x4.add (local.get $acc0)
              (f32x4.mul (v128.load (i32.add (local.get $aRow) (local.get $k))) (v128.load (i32.add (local.get $bRow) (local.get $k))))))
            (local.set $acc1 (f32x4.add (local.get $acc1)
              (f32x4.mul (v128.load offset=16 (i32.add (local.get $aRow) (local.get $k))) (v128.load offset=16 (i32.add (local.get $bRow) (local.get $k))))))
            (local.set $k (i32.add (local.get $k) (i32.const 32)))
            (br $kLoop)))
          (if (i32.lt_u (local.get $k) (local.get $rowBytes))
            (then
              (local.set $acc0 (f32x4.add (local.get $acc0)
                (f32x4.mul (v128.load (i32.add (local.get $aRow) (local.get $k))) (v128.load (i32.add (local.get $bRow) (local.get $k))))))))
          (local.set $acc0 (f32x4.add (local.get $acc0) (local.get $acc1)))
          (f32.store
            (i32.add (local.get $outBase) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $N)) (local.get $j)) (i32.const 2)))
            (f32.add
              (f32.add (f32x4.extract_lane 0 (local.get $acc0)) (f32x4.extract_lane 1 (local.get $acc0)))
              (f32.add (f32x4.extract_lane 2 (local.get $acc0)) (f32x4.extract_lane 3 (local.get $acc0)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $iLoop)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $jLoop)))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br $tLoop))))

  ;; out[t, i, :] = Σ_k a[t, i, k] · b[t, k, :]        a [T, M, K], b [T, K, N], out [T, M, N]; N a multiple of 4.
  ;; A decode step's p·V: 16 output columns at a time in four accumulators, k in order.
  (func (export "ab")
    (param $a i32) (param $b i32) (param $out i32) (param $T i32) (param $M i32) (param $K i32) (param $N i32)
    (local $nBytes i32) (local $t i32) (local $i i32) (local $c i32) (local $k i32) (local $width i32)
    (local $aRow i32) (local $bCol i32) (local $p i32) (local $dst i32) (local $s v128)
    (local $acc0 v128) (local $acc1 v128) (local $acc2 v128) (local $acc3 v128)
    (local.set $nBytes (i32.shl (local.get $N) (i32.const 2)))
    (local.set $t (i32.const 0))
    (block $tDone (loop $tLoop
      (br_if $tDone (i32.ge_u (local.get $t) (local.get $T)))
      (local.set $i (i32.const 0))
      (block $iDone (loop $iLoop
        (br_if $iDone (i32.ge_u (local.get $i) (local.get $M)))
        (local.set $aRow (i32.add (local.get $a)
          (i32.shl (i32.mul (i32.add (i32.mul (local.get $t) (local.get $M)) (local.get $i)) (local.get $K)) (i32.const 2))))
        (local.set $dst (i32.add (local.get $out)
          (i32.mul (i32.add (i32.mul (local.get $t) (local.get $M)) (local.get $i)) (local.get $nBytes))))
        (local.set $c (i32.const 0))
        (block $cDone (loop $cLoop
          (br_if $cDone (i32.ge_u (local.get $c) (local.get $nBytes)))
          ;; 64 bytes (16 columns) when that many are left, else 16 bytes (4 columns)
          (local.set $width (select (i32.const 64) (i32.const 16)
            (i32.le_u (i32.add (local.get $c) (i32.const 64)) (local.get $nBytes))))
          (local.set $bCol (i32.add (i32.add (local.get $b) (i32.mul (i32.mul (local.get $t) (local.get $K)) (local.get $nBytes))) (local.get $c)))
          (local.set $acc0 (v128.const f32x4 0 0 0 0))
          (local.set $acc1 (v128.const f32x4 0 0 0 0))
          (local.set $acc2 (v128.const f32x4 0 0 0 0))
          (local.set $acc3 (v128.const f32x4 0 0 0 0))
          (local.set $k (i32.const 0))
          (block $kDone (loop $kLoop
            (br_if $kDone (i32.ge_u (local.get $k) (local.get $K)))
            (local.set $s (f32x4.splat (f32.load (i32.add (local.get $aRow) (i32.shl (local.get $k) (i32.const 2))))))
            (local.set $p (i32.add (local.get $bCol) (i32.mul (local.get $k) (local.get $nBytes))))
            (local.set $acc0 (f32x4.add (local.get $acc0) (f32x4.mul (local.get $s) (v128.load (local.get $p)))))
            (if (i32.eq (local.get $width) (i32.const 64))
              (then
                (local.set $acc1 (f32x4.add (local.get $acc1) (f32x4.mul (local.get $s) (v128.load offset=16 (local.get $p)))))
                (local.set $acc2 (f32x4.add (local.get $acc2) (f32x4.mul (local.get $s) (v128.load offset=32 (local.get $p)))))
                (local.set $acc3 (f32x4.add (local.get $acc3) (f32x4.mul (local.get $s) (v128.load offset=48 (local.get $p)))))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $kLoop)))
          (v128.store (i32.add (local.get $dst) (local.get $c)) (local.get $acc0))
          (if (i32.eq (local.get $width) (i32.const 64))
            (then
              (v128.store offset=16 (i32.add (local.get $dst) (local.get $c)) (local.get $acc1))
              (v128.store offset=32 (i32.add (local.get $dst) (local.get $c)) (local.get $acc2))
              (v128.store offset=48 (i32.add (local.get $dst) (local.get $c)) (local.get $acc3))))
          (local.set $c (i32.add (local.get $c) (local.get $width)))
          (br $cLoop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $iLoop)))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br $tLoop))))
)
