// --strategy: the full batch (default), the cost model's choice, or measured.
// Per-lane weights times per-lane activations (an ensemble layer): at batch
// 128 the lane-batched GEMM's results are 6 MiB, which the cost model runs as
// a loop over lanes (XLA:CPU's thresholds, docs/tuning.md), emitted as a
// stablehlo.while calling the unbatched function; at batch 8 (0.4 MiB) and by
// default the full batch.
//
// RUN: stablehlo-batch-opt %s --axis-size=128 --strategy=model | filecheck %s --check-prefix=LOOP
// RUN: stablehlo-batch-opt %s --axis-size=128 --strategy=model --report -o /dev/null 2>&1 | filecheck %s --check-prefix=REPORT
// RUN: stablehlo-batch-opt %s --axis-size=128 --in-axes=2,1 --out-axes=1 --strategy=model | filecheck %s --check-prefix=AXES
// RUN: stablehlo-batch-opt %s --axis-size=128 | filecheck %s --check-prefix=FULL
// RUN: stablehlo-batch-opt %s --axis-size=8 --strategy=model --report 2>%t.err | filecheck %s --check-prefix=FULL
// RUN: filecheck %s --check-prefix=SMALL < %t.err
// RUN: not stablehlo-batch-opt %s --axis-size=128 --strategy=model --pre-pipeline=cse 2>&1 | filecheck %s --check-prefix=ERR
// RUN: not stablehlo-batch-opt %s --axis-size=128 --strategy=fast 2>&1 | filecheck %s --check-prefix=BAD

// LOOP-LABEL: func.func @main
// LOOP-SAME: (%{{.*}}: tensor<128x128x128xf32>, %{{.*}}: tensor<128x96x128xf32>) -> tensor<128x96x128xf32>
// LOOP: stablehlo.while
// LOOP: stablehlo.compare LT
// LOOP: stablehlo.dynamic_slice {{.*}} sizes = [1, 128, 128]
// LOOP: stablehlo.dynamic_slice {{.*}} sizes = [1, 96, 128]
// LOOP: func.call @stablehlo_batch_chunk({{.*}}) : (tensor<128x128xf32>, tensor<96x128xf32>) -> tensor<96x128xf32>
// LOOP: stablehlo.dynamic_update_slice
// LOOP: func.func private @stablehlo_batch_chunk(%{{.*}}: tensor<128x128xf32>, %{{.*}}: tensor<96x128xf32>)
// LOOP-NOT: batching_dims
// LOOP: stablehlo.tanh {{.*}} : tensor<96x128xf32>

// REPORT: tuned: lane loop (model)
// REPORT: strategy: lane loop -- cost model, not measured: lane-batched GEMMs are 100% of the FLOPs, results up to 6.0 MiB
// REPORT: full batch
// REPORT: * lane loop

// The lanes are read and written at their own axes: nothing is transposed.
// AXES-LABEL: func.func @main
// AXES-SAME: (%{{.*}}: tensor<128x128x128xf32>, %{{.*}}: tensor<96x128x128xf32>) -> tensor<96x128x128xf32>
// AXES-NOT: stablehlo.transpose
// AXES: stablehlo.while
// AXES: stablehlo.dynamic_slice {{.*}} sizes = [128, 128, 1]
// AXES: stablehlo.dynamic_slice {{.*}} sizes = [96, 1, 128]
// AXES: stablehlo.dynamic_update_slice
// AXES-NOT: stablehlo.transpose

// FULL-LABEL: func.func @main
// FULL-NOT: stablehlo.while
// FULL: stablehlo.dot_general {{.*}} batching_dims = [0] x [0]
// FULL-NOT: stablehlo.while

// SMALL: strategy: full batch -- cost model, not measured: lane-batched GEMMs 100% of the FLOPs (0.4 MiB

// ERR: error: --strategy=model cannot be combined with --pre-pipeline / --post-pipeline
// BAD: error: argument --strategy: invalid choice: 'fast'
func.func @main(%w: tensor<128x128xf32>, %x: tensor<96x128xf32>) -> tensor<96x128xf32> {
  %0 = stablehlo.dot_general %x, %w, contracting_dims = [1] x [0] : (tensor<96x128xf32>, tensor<128x128xf32>) -> tensor<96x128xf32>
  %1 = stablehlo.tanh %0 : tensor<96x128xf32>
  return %1 : tensor<96x128xf32>
}
