// RUN: stablehlo-batch-opt %s --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=LHS
// RUN: stablehlo-batch-opt %s --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=RHS
// RUN: stablehlo-batch-opt %s --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=BOTH

// Matrix-vector product: x[m, k] . w[k].

// LHS-LABEL: func.func @main
// LHS-SAME: (%{{.*}}: tensor<4x2x3xf32>, %{{.*}}: tensor<3xf32>)
// The batch folds into the free dims of the batched side; w is not broadcast.
// LHS-NOT: broadcast_in_dim
// LHS: stablehlo.dot_general %{{.*}}, %{{.*}}, contracting_dims = [2] x [0]
// LHS-SAME: (tensor<4x2x3xf32>, tensor<3xf32>) -> tensor<4x2xf32>
// LHS-NOT: transpose

// RHS-LABEL: func.func @main
// RHS-SAME: (%{{.*}}: tensor<2x3xf32>, %{{.*}}: tensor<4x3xf32>)
// RHS-NOT: broadcast_in_dim
// RHS: stablehlo.dot_general %{{.*}}, %{{.*}}, contracting_dims = [1] x [1]
// RHS-SAME: (tensor<4x3xf32>, tensor<2x3xf32>) -> tensor<4x2xf32>
// RHS-NOT: transpose

// BOTH-LABEL: func.func @main
// BOTH: stablehlo.dot_general %{{.*}}, %{{.*}}, batching_dims = [0] x [0], contracting_dims = [2] x [1]
// BOTH-SAME: -> tensor<4x2xf32>
func.func @main(%x: tensor<2x3xf32>, %w: tensor<3xf32>) -> tensor<2xf32> {
  %0 = stablehlo.dot_general %x, %w, contracting_dims = [1] x [0] : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2xf32>
  return %0 : tensor<2xf32>
}
