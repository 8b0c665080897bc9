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
// LHS-NEXT: return %{{.*}} : tensor<4x2xf32>

// RHS-LABEL: func.func @main
// RHS-SAME: (%{{.*}}: tensor<2x3xf32>, %{{.*}}: tensor<4x3xf32>)
// RHS-NOT: broadcast_in_dim
// RHS: stablehlo.dot_general %{{.*}}, %{{.*}}, contracting_dims = [1] x [1]
// RHS-SAME: (tensor<4x3xf32>, tensor<2x3xf32>) -> tensor<4x2xf32>
// RHS-NEXT: return %{{.*}} : tensor<4x2xf32>

// BOTH-LABEL: func.func @main
// BOTH: stablehlo.dot_general %{{.*}}, %{{.*}}, batching_dims = [0] x [0], contracting_dims = [2] x [1]
// BOTH-SAME: -> tensor<4x2xf32>
// BOTH-NEXT: return %{{.*}} : tensor<4x2xf32>
func.func @main(%x: tensor<2x3xf32>, %w: tensor<3xf32>) -> tensor<2xf32> {
  %0 = stablehlo.dot_general %x, %w, contracting_dims = [1] x [0] : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2xf32>
  return %0 : tensor<2xf32>
}

// RUN: stablehlo-batch-opt %s --func=bmm --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=BMM-LHS
// RUN: stablehlo-batch-opt %s --func=bmm --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=BMM-RHS
// RUN: stablehlo-batch-opt %s --func=bmm --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=BMM-BOTH

// Batched matmul: x[b, m, k] . y[b, k, n] with batching dims [0] x [0].
// The vmap batch becomes one more free dim of the batched side; dot_general
// puts batching dims first, so one transpose brings the vmap batch to the front.
// BMM-LHS-LABEL: func.func @bmm
// BMM-LHS-SAME: (%[[X:[^:]+]]: tensor<4x5x2x3xf32>, %[[Y:[^:]+]]: tensor<5x3x7xf32>) -> tensor<4x5x2x7xf32>
// BMM-LHS-NOT: broadcast_in_dim
// BMM-LHS: %[[D:[^ ]+]] = stablehlo.dot_general %[[X]], %[[Y]], batching_dims = [1] x [0], contracting_dims = [3] x [1]
// BMM-LHS-SAME: (tensor<4x5x2x3xf32>, tensor<5x3x7xf32>) -> tensor<5x4x2x7xf32>
// BMM-LHS-NEXT: %[[T:[^ ]+]] = stablehlo.transpose %[[D]], dims = [1, 0, 2, 3] : (tensor<5x4x2x7xf32>) -> tensor<4x5x2x7xf32>
// BMM-LHS-NEXT: return %[[T]]
//
// BMM-RHS-LABEL: func.func @bmm
// BMM-RHS-SAME: (%[[X:[^:]+]]: tensor<5x2x3xf32>, %[[Y:[^:]+]]: tensor<4x5x3x7xf32>) -> tensor<4x5x2x7xf32>
// BMM-RHS-NOT: broadcast_in_dim
// BMM-RHS: %[[D:[^ ]+]] = stablehlo.dot_general %[[X]], %[[Y]], batching_dims = [0] x [1], contracting_dims = [2] x [2]
// BMM-RHS-SAME: (tensor<5x2x3xf32>, tensor<4x5x3x7xf32>) -> tensor<5x2x4x7xf32>
// BMM-RHS-NEXT: %[[T:[^ ]+]] = stablehlo.transpose %[[D]], dims = [2, 0, 1, 3] : (tensor<5x2x4x7xf32>) -> tensor<4x5x2x7xf32>
// BMM-RHS-NEXT: return %[[T]]
//
// Both sides batched: the vmap batch becomes a leading batching dim.
// BMM-BOTH-LABEL: func.func @bmm
// BMM-BOTH-SAME: (%[[X:[^:]+]]: tensor<4x5x2x3xf32>, %[[Y:[^:]+]]: tensor<4x5x3x7xf32>) -> tensor<4x5x2x7xf32>
// BMM-BOTH-NEXT: %[[D:[^ ]+]] = stablehlo.dot_general %[[X]], %[[Y]], batching_dims = [0, 1] x [0, 1], contracting_dims = [3] x [2]
// BMM-BOTH-SAME: (tensor<4x5x2x3xf32>, tensor<4x5x3x7xf32>) -> tensor<4x5x2x7xf32>
// BMM-BOTH-NEXT: return %[[D]]
func.func @bmm(%x: tensor<5x2x3xf32>, %y: tensor<5x3x7xf32>) -> tensor<5x2x7xf32> {
  %0 = stablehlo.dot_general %x, %y, batching_dims = [0] x [0], contracting_dims = [2] x [1] : (tensor<5x2x3xf32>, tensor<5x3x7xf32>) -> tensor<5x2x7xf32>
  return %0 : tensor<5x2x7xf32>
}

// RUN: stablehlo-batch-opt %s --func=matmul --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=MM-LHS
// RUN: stablehlo-batch-opt %s --func=matmul --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=MM-RHS
// RUN: stablehlo-batch-opt %s --func=matvec --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=MV-RHS

// Matrix product with a precision config.
// Batched lhs: [B, m, k] . [k, n] -> [B, m, n] directly; the precision is kept.
// MM-LHS-LABEL: func.func @matmul
// MM-LHS-SAME: (%[[X:[^:]+]]: tensor<4x2x3xf32>, %[[W:[^:]+]]: tensor<3x7xf32>) -> tensor<4x2x7xf32>
// MM-LHS-NEXT: %[[D:[^ ]+]] = stablehlo.dot_general %[[X]], %[[W]], contracting_dims = [2] x [0], precision = [DEFAULT, HIGHEST]
// MM-LHS-SAME: (tensor<4x2x3xf32>, tensor<3x7xf32>) -> tensor<4x2x7xf32>
// MM-LHS-NEXT: return %[[D]]
//
// Batched rhs: [m, k] . [B, k, n] -> [m, B, n] (lhs free dims come first),
// so one transpose moves B to the front; the lhs is not broadcast.
// MM-RHS-LABEL: func.func @matmul
// MM-RHS-SAME: (%[[X:[^:]+]]: tensor<2x3xf32>, %[[W:[^:]+]]: tensor<4x3x7xf32>) -> tensor<4x2x7xf32>
// MM-RHS-NOT: broadcast_in_dim
// MM-RHS: %[[D:[^ ]+]] = stablehlo.dot_general %[[X]], %[[W]], contracting_dims = [1] x [1], precision = [DEFAULT, HIGHEST]
// MM-RHS-SAME: (tensor<2x3xf32>, tensor<4x3x7xf32>) -> tensor<2x4x7xf32>
// MM-RHS-NEXT: %[[T:[^ ]+]] = stablehlo.transpose %[[D]], dims = [1, 0, 2] : (tensor<2x4x7xf32>) -> tensor<4x2x7xf32>
// MM-RHS-NEXT: return %[[T]]
func.func @matmul(%x: tensor<2x3xf32>, %w: tensor<3x7xf32>) -> tensor<2x7xf32> {
  %0 = stablehlo.dot_general %x, %w, contracting_dims = [1] x [0], precision = [DEFAULT, HIGHEST] : (tensor<2x3xf32>, tensor<3x7xf32>) -> tensor<2x7xf32>
  return %0 : tensor<2x7xf32>
}

// Batched rhs with no free rhs dim: swapping the sides gives [B, m] without a
// transpose, and the precision config is swapped with the operands.
// MV-RHS-LABEL: func.func @matvec
// MV-RHS-SAME: (%[[X:[^:]+]]: tensor<2x3xf32>, %[[V:[^:]+]]: tensor<4x3xf32>) -> tensor<4x2xf32>
// MV-RHS-NEXT: %[[D:[^ ]+]] = stablehlo.dot_general %[[V]], %[[X]], contracting_dims = [1] x [1], precision = [HIGHEST, DEFAULT]
// MV-RHS-SAME: (tensor<4x3xf32>, tensor<2x3xf32>) -> tensor<4x2xf32>
// MV-RHS-NEXT: return %[[D]]
func.func @matvec(%x: tensor<2x3xf32>, %v: tensor<3xf32>) -> tensor<2xf32> {
  %0 = stablehlo.dot_general %x, %v, contracting_dims = [1] x [0], precision = [DEFAULT, HIGHEST] : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2xf32>
  return %0 : tensor<2xf32>
}
