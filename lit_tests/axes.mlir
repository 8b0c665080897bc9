// in_axes / out_axes: the rules see an argument batched along another axis
// moved to the front by one transpose at entry, and a result is moved to its
// out_axes by one transpose at exit. The layout pass (passes/layout.py) then
// sinks the entry transpose through the elementwise ops, whose broadcasts take
// the batch where the argument has it, and composes it with the exit one.
// Constants and iota stay unbatched.
//
// RUN: stablehlo-batch-opt %s --axis-size=4 --in-axes=1,none | filecheck %s --check-prefix=IN1
// RUN: stablehlo-batch-opt %s --axis-size=4 --in-axes=-1,none | filecheck %s --check-prefix=INLAST
// RUN: stablehlo-batch-opt %s --axis-size=4 --in-axes=0,none --out-axes=1,none | filecheck %s --check-prefix=OUT1
// RUN: stablehlo-batch-opt %s --axis-size=4 --in-axes=0,none --out-axes=-1,0 | filecheck %s --check-prefix=OUTLAST
// RUN: stablehlo-batch-opt %s --func=passthrough --axis-size=4 --in-axes=1 --out-axes=1 | filecheck %s --check-prefix=PASS

// x is batched, w is not. Result 0 depends on x; result 1 only on w.
//
// IN1-LABEL: func.func @main
// IN1-SAME: (%[[X:[^:]+]]: tensor<2x4x3xf32>, %[[W:[^:]+]]: tensor<2x3xf32>) -> (tensor<4x2x3xf32>, tensor<4x2x3xf32>)
// IN1-NOT: transpose
// The constant and the iota are not batched; they are broadcast only where a
// same-shape op meets a batched value, with the batch at x's axis 1.
// IN1-DAG: %[[C:[^ ]+]] = stablehlo.constant dense<1.000000e+00> : tensor<2x3xf32>
// IN1-DAG: %[[I:[^ ]+]] = stablehlo.iota dim = 1 : tensor<2x3xf32>
// IN1-DAG: %[[CB:[^ ]+]] = stablehlo.broadcast_in_dim %[[C]], dims = [0, 2] : (tensor<2x3xf32>) -> tensor<2x4x3xf32>
// IN1-DAG: %[[S:[^ ]+]] = stablehlo.add %[[X]], %[[CB]] : tensor<2x4x3xf32>
// IN1-DAG: %[[IB:[^ ]+]] = stablehlo.broadcast_in_dim %[[I]], dims = [0, 2] : (tensor<2x3xf32>) -> tensor<2x4x3xf32>
// IN1-DAG: %[[P:[^ ]+]] = stablehlo.multiply %[[S]], %[[IB]] : tensor<2x4x3xf32>
// The product is moved to the batch-first result once, at the end.
// IN1: %[[PT:[^ ]+]] = stablehlo.transpose %[[P]], dims = [1, 0, 2] : (tensor<2x4x3xf32>) -> tensor<4x2x3xf32>
// The unbatched result stays unbatched through negate ...
// IN1: %[[N:[^ ]+]] = stablehlo.negate %[[W]] : tensor<2x3xf32>
// ... and is broadcast once at the exit for its out_axes 0.
// IN1: %[[NB:[^ ]+]] = stablehlo.broadcast_in_dim %[[N]], dims = [1, 2] : (tensor<2x3xf32>) -> tensor<4x2x3xf32>
// IN1-NOT: transpose
// IN1-NEXT: return %[[PT]], %[[NB]] : tensor<4x2x3xf32>, tensor<4x2x3xf32>
//
// INLAST-LABEL: func.func @main
// INLAST-SAME: (%[[X:[^:]+]]: tensor<2x3x4xf32>, %{{[^:]+}}: tensor<2x3xf32>) -> (tensor<4x2x3xf32>, tensor<4x2x3xf32>)
// INLAST-NOT: transpose
// INLAST: broadcast_in_dim %{{.*}}, dims = [0, 1] : (tensor<2x3xf32>) -> tensor<2x3x4xf32>
// INLAST: %[[S:[^ ]+]] = stablehlo.add %[[X]], %{{.*}} : tensor<2x3x4xf32>
// INLAST: %[[P:[^ ]+]] = stablehlo.multiply %[[S]], %{{.*}} : tensor<2x3x4xf32>
// INLAST-NEXT: stablehlo.transpose %[[P]], dims = [2, 0, 1] : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
// INLAST-NOT: transpose
// INLAST: return
// out_axes 1 for the batched result: one transpose right before the return.
// out_axes none for the unbatched result: it is returned as is.
// OUT1-LABEL: func.func @main
// OUT1-SAME: (%{{[^:]+}}: tensor<4x2x3xf32>, %[[W:[^:]+]]: tensor<2x3xf32>) -> (tensor<2x4x3xf32>, tensor<2x3xf32>)
// OUT1-NOT: transpose
// OUT1: %[[P:[^ ]+]] = stablehlo.multiply %{{.*}} : tensor<4x2x3xf32>
// OUT1-NOT: transpose
// OUT1: %[[N:[^ ]+]] = stablehlo.negate %[[W]] : tensor<2x3xf32>
// OUT1-NEXT: %[[PT:[^ ]+]] = stablehlo.transpose %[[P]], dims = [1, 0, 2] : (tensor<4x2x3xf32>) -> tensor<2x4x3xf32>
// OUT1-NEXT: return %[[PT]], %[[N]] : tensor<2x4x3xf32>, tensor<2x3xf32>
//
// OUTLAST-LABEL: func.func @main
// OUTLAST-SAME: (%{{[^:]+}}: tensor<4x2x3xf32>, %{{[^:]+}}: tensor<2x3xf32>) -> (tensor<2x3x4xf32>, tensor<4x2x3xf32>)
// OUTLAST-NOT: transpose
// OUTLAST: %[[P:[^ ]+]] = stablehlo.multiply %{{.*}} : tensor<4x2x3xf32>
// OUTLAST-NOT: transpose
// OUTLAST: %[[N:[^ ]+]] = stablehlo.negate %{{.*}} : tensor<2x3xf32>
// OUTLAST-DAG: %[[PT:[^ ]+]] = stablehlo.transpose %[[P]], dims = [1, 2, 0] : (tensor<4x2x3xf32>) -> tensor<2x3x4xf32>
// OUTLAST-DAG: %[[NB:[^ ]+]] = stablehlo.broadcast_in_dim %[[N]], dims = [1, 2] : (tensor<2x3xf32>) -> tensor<4x2x3xf32>
// OUTLAST-NEXT: return %[[PT]], %[[NB]] : tensor<2x3x4xf32>, tensor<4x2x3xf32>
func.func @main(%x: tensor<2x3xf32>, %w: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>) {
  %c = stablehlo.constant dense<1.0> : tensor<2x3xf32>
  %i = stablehlo.iota dim = 1 : tensor<2x3xf32>
  %0 = stablehlo.add %x, %c : tensor<2x3xf32>
  %1 = stablehlo.multiply %0, %i : tensor<2x3xf32>
  %2 = stablehlo.negate %w : tensor<2x3xf32>
  return %1, %2 : tensor<2x3xf32>, tensor<2x3xf32>
}

// in_axes 1 and out_axes 1: the entry and exit transposes cancel; the
// function runs on the batch where it already is.
// PASS-LABEL: func.func @passthrough
// PASS-SAME: (%[[X:[^:]+]]: tensor<2x4x3xf32>) -> tensor<2x4x3xf32>
// PASS-NEXT: %[[E:[^ ]+]] = stablehlo.exponential %[[X]] : tensor<2x4x3xf32>
// PASS-NEXT: return %[[E]] : tensor<2x4x3xf32>
func.func @passthrough(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.exponential %x : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}
