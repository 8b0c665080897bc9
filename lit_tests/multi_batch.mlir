// Several batch dimensions at once (--axis-size=2,3): batched once per
// dimension, innermost first, as nested vmaps. One --in-axes / --out-axes flag
// per dimension, outer first; a single flag applies to every dimension.
//
// RUN: stablehlo-batch-opt %s --axis-size=2,3 | filecheck %s --check-prefix=ALL0
// RUN: stablehlo-batch-opt %s --axis-size=2,3 --in-axes=0,none --in-axes=1,0 --out-axes=0 --out-axes=1 | filecheck %s --check-prefix=LEVELS
// RUN: not stablehlo-batch-opt %s --axis-size=2,3 --in-axes=0 --in-axes=0 --in-axes=0 2>&1 | filecheck %s --check-prefix=ERR

func.func @main(%x: tensor<4xf32>, %w: tensor<4xf32>) -> tensor<4xf32> {
  %0 = stablehlo.multiply %x, %w : tensor<4xf32>
  %1 = stablehlo.sine %0 : tensor<4xf32>
  return %1 : tensor<4xf32>
}

// ALL0-LABEL: func.func @main
// ALL0-SAME: (%{{.*}}: tensor<2x3x4xf32>, %{{.*}}: tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
// ALL0: stablehlo.multiply {{.*}} : tensor<2x3x4xf32>
// ALL0: stablehlo.sine {{.*}} : tensor<2x3x4xf32>

// The inner level batches x at axis 1 of its 4x3 lane and w at 0; the outer
// one x at 0 and not w: w stays 3x4, never broadcast to the outer size.
// The inner level's moves of x to the front and back cancel (passes/layout.py):
// w is broadcast straight into x's layout.
// LEVELS-LABEL: func.func @main
// LEVELS-SAME: (%{{.*}}: tensor<2x4x3xf32>, %{{.*}}: tensor<3x4xf32>) -> tensor<2x4x3xf32>
// LEVELS-NOT: transpose
// LEVELS: stablehlo.broadcast_in_dim {{.*}} dims = [2, 1] : (tensor<3x4xf32>) -> tensor<2x4x3xf32>
// LEVELS: stablehlo.sine {{.*}} : tensor<2x4x3xf32>
// LEVELS-NOT: transpose

// ERR: error: --in-axes is given 3 times; --axis-size has 2 dimensions
