// lax.approx_max_k / approx_min_k lower to the ApproxTopK custom call, whose
// kernel treats every dim but `reduction_dim` as a batch dim: the batched call
// is the same call on batch-first operands with `reduction_dim` one further.
// The index iota, unbatched, is broadcast; the init values stay scalars.
//
// RUN: stablehlo-batch-opt %s --func=max_k --axis-size=3 | filecheck %s --check-prefix=MAXK
// RUN: stablehlo-batch-opt %s --func=max_k --axis-size=3 --in-axes=1 --strict | filecheck %s --check-prefix=MAXK-AX1
// A symbolic batch size: the batched call's `?` results could not be refined
// by XLA (a custom call), so the call runs once per lane, each one static.
// RUN: stablehlo-batch-opt %s --func=max_k --axis-size=b 2>/dev/null | filecheck %s --check-prefix=SYM
// RUN: stablehlo-batch-opt %s --func=max_k --axis-size=b -o %t.mlir 2>&1 | filecheck %s --check-prefix=SYM-WARN

// SYM-LABEL: func.func @max_k
// SYM-SAME: tensor<?x8x4xf32>
// SYM: stablehlo.while
// SYM: stablehlo.custom_call @ApproxTopK({{.*}}) {{.*}} -> (tensor<3x4xf32>, tensor<3x4xi32>)
// SYM-WARN: warning: {{.*}}@ApproxTopK{{.*}}runs once per lane{{.*}}the batch size is symbolic

// MAXK-LABEL: func.func @max_k
// MAXK-SAME: (%[[X:[^:]+]]: tensor<3x8x4xf32>)
// MAXK-NOT: stablehlo.while
// MAXK: %[[IOTA:.+]] = stablehlo.iota dim = 0 : tensor<8x4xi32>
// MAXK: %[[IB:.+]] = stablehlo.broadcast_in_dim %[[IOTA]], dims = [1, 2] : (tensor<8x4xi32>) -> tensor<3x8x4xi32>
// MAXK: stablehlo.custom_call @ApproxTopK(%[[X]], %[[IB]],
// MAXK-SAME: reduction_dim = 1 : i64
// MAXK-SAME: top_k = 3 : i64
// MAXK-SAME: (tensor<3x8x4xf32>, tensor<3x8x4xi32>, tensor<f32>, tensor<i32>) -> (tensor<3x3x4xf32>, tensor<3x3x4xi32>)

// MAXK-AX1-LABEL: func.func @max_k
// MAXK-AX1-SAME: (%{{.+}}: tensor<8x3x4xf32>)
// MAXK-AX1: stablehlo.transpose
// MAXK-AX1: stablehlo.custom_call @ApproxTopK
// MAXK-AX1-SAME: reduction_dim = 1 : i64
// MAXK-AX1-SAME: -> (tensor<3x3x4xf32>, tensor<3x3x4xi32>)
func.func private @top_k_gt_f32_comparator(%arg0: tensor<f32>, %arg1: tensor<f32>, %arg2: tensor<i32>, %arg3: tensor<i32>) -> tensor<i1> {
  %0 = stablehlo.compare GT, %arg0, %arg1 : (tensor<f32>, tensor<f32>) -> tensor<i1>
  stablehlo.return %0 : tensor<i1>
}
func.func @max_k(%arg0: tensor<8x4xf32>) -> (tensor<3x4xf32>, tensor<3x4xi32>) {
  %0 = stablehlo.iota dim = 0 : tensor<8x4xi32>
  %c = stablehlo.constant dense<-1> : tensor<i32>
  %cst = stablehlo.constant dense<0xFF800000> : tensor<f32>
  %1:2 = stablehlo.custom_call @ApproxTopK(%arg0, %0, %cst, %c) {called_computations = [@top_k_gt_f32_comparator], mhlo.backend_config = {aggregate_to_topk = true, is_fallback = true, recall_target = 0.949999988 : f32, reduction_dim = 0 : i64, reduction_input_size_override = -1 : i64, top_k = 3 : i64}} : (tensor<8x4xf32>, tensor<8x4xi32>, tensor<f32>, tensor<i32>) -> (tensor<3x4xf32>, tensor<3x4xi32>)
  return %1#0, %1#1 : tensor<3x4xf32>, tensor<3x4xi32>
}
