// stablehlo.reduce: the reduced dims shift by one, the body (on scalars) and
// unbatched init values stay as they are.
//
// RUN: stablehlo-batch-opt %s --func=sum --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=SUM
// RUN: stablehlo-batch-opt %s --func=max_const_init --axis-size=4 | filecheck %s --check-prefix=MAX
// RUN: stablehlo-batch-opt %s --func=argmax --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=ARGMAX
// RUN: stablehlo-batch-opt %s --func=argmax --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=ARGMAX-IOTA

// Several dims, and an init value that is an unbatched argument.
// SUM-LABEL: func.func @sum
// SUM-SAME: (%[[X:[^:]+]]: tensor<4x2x3x5xf32>, %[[INIT:[^:]+]]: tensor<f32>) -> tensor<4x3xf32>
// SUM-NOT: broadcast_in_dim
// SUM: %[[R:[^ ]+]] = stablehlo.reduce(%[[X]] init: %[[INIT]]) applies stablehlo.add across dimensions = [1, 3]
// SUM-SAME: (tensor<4x2x3x5xf32>, tensor<f32>) -> tensor<4x3xf32>
// SUM-NEXT: return %[[R]] : tensor<4x3xf32>
func.func @sum(%x: tensor<2x3x5xf32>, %init: tensor<f32>) -> tensor<3xf32> {
  %0 = stablehlo.reduce(%x init: %init) applies stablehlo.add across dimensions = [0, 2] : (tensor<2x3x5xf32>, tensor<f32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// A single reduce of the last dim with a constant init; the body (written
// out here, printed in its short form) is kept.
// MAX-LABEL: func.func @max_const_init
// MAX-SAME: (%[[X:[^:]+]]: tensor<4x3x5xf32>) -> tensor<4x3xf32>
// MAX: %[[INIT:[^ ]+]] = stablehlo.constant dense<0xFF800000> : tensor<f32>
// MAX-NOT: broadcast_in_dim
// MAX: stablehlo.reduce(%[[X]] init: %[[INIT]]) applies stablehlo.maximum across dimensions = [2]
// MAX-SAME: (tensor<4x3x5xf32>, tensor<f32>) -> tensor<4x3xf32>
// MAX-NEXT: return
func.func @max_const_init(%x: tensor<3x5xf32>) -> tensor<3xf32> {
  %init = stablehlo.constant dense<0xFF800000> : tensor<f32>
  %0 = stablehlo.reduce(%x init: %init) across dimensions = [1] : (tensor<3x5xf32>, tensor<f32>) -> tensor<3xf32>
    reducer(%a: tensor<f32>, %b: tensor<f32>) {
      %m = stablehlo.maximum %a, %b : tensor<f32>
      stablehlo.return %m : tensor<f32>
    }
  return %0 : tensor<3xf32>
}

// Variadic reduce (argmax): values and indices reduced together.
// ARGMAX-LABEL: func.func @argmax
// ARGMAX-SAME: (%[[X:[^:]+]]: tensor<4x3x5xf32>, %[[I:[^:]+]]: tensor<4x3x5xi32>) -> (tensor<4x3xf32>, tensor<4x3xi32>)
// ARGMAX-DAG: %[[XI:[^ ]+]] = stablehlo.constant dense<0xFF800000> : tensor<f32>
// ARGMAX-DAG: %[[II:[^ ]+]] = stablehlo.constant dense<0> : tensor<i32>
// ARGMAX-NOT: broadcast_in_dim
// ARGMAX: %[[R:[^ ]+]]:2 = stablehlo.reduce(%[[X]] init: %[[XI]]), (%[[I]] init: %[[II]]) across dimensions = [2]
// ARGMAX-SAME: (tensor<4x3x5xf32>, tensor<4x3x5xi32>, tensor<f32>, tensor<i32>) -> (tensor<4x3xf32>, tensor<4x3xi32>)
// ARGMAX-NEXT: reducer(%{{[^:]+}}: tensor<f32>, %{{[^:]+}}: tensor<f32>) (%{{[^:]+}}: tensor<i32>, %{{[^:]+}}: tensor<i32>)
// ARGMAX-NEXT: stablehlo.compare GT, %{{.*}} : (tensor<f32>, tensor<f32>) -> tensor<i1>
// ARGMAX-NEXT: stablehlo.select %{{.*}} : tensor<i1>, tensor<f32>
// ARGMAX-NEXT: stablehlo.select %{{.*}} : tensor<i1>, tensor<i32>
// ARGMAX-NEXT: stablehlo.return %{{.*}} : tensor<f32>, tensor<i32>
// ARGMAX-NEXT: }
// ARGMAX-NEXT: return %[[R]]#0, %[[R]]#1 : tensor<4x3xf32>, tensor<4x3xi32>
//
// Inputs reduced together must share a shape: an unbatched index input
// (e.g. an iota) is broadcast when the values are batched. The inits are not.
// ARGMAX-IOTA-LABEL: func.func @argmax
// ARGMAX-IOTA-SAME: (%[[X:[^:]+]]: tensor<4x3x5xf32>, %[[I:[^:]+]]: tensor<3x5xi32>) -> (tensor<4x3xf32>, tensor<4x3xi32>)
// ARGMAX-IOTA-DAG: %[[XI:[^ ]+]] = stablehlo.constant dense<0xFF800000> : tensor<f32>
// ARGMAX-IOTA-DAG: %[[II:[^ ]+]] = stablehlo.constant dense<0> : tensor<i32>
// ARGMAX-IOTA-DAG: %[[IB:[^ ]+]] = stablehlo.broadcast_in_dim %[[I]], dims = [1, 2] : (tensor<3x5xi32>) -> tensor<4x3x5xi32>
// ARGMAX-IOTA-NOT: broadcast_in_dim
// ARGMAX-IOTA: %[[R:[^ ]+]]:2 = stablehlo.reduce(%[[X]] init: %[[XI]]), (%[[IB]] init: %[[II]]) across dimensions = [2]
// ARGMAX-IOTA-SAME: (tensor<4x3x5xf32>, tensor<4x3x5xi32>, tensor<f32>, tensor<i32>) -> (tensor<4x3xf32>, tensor<4x3xi32>)
// ARGMAX-IOTA: return %[[R]]#0, %[[R]]#1 : tensor<4x3xf32>, tensor<4x3xi32>
func.func @argmax(%x: tensor<3x5xf32>, %i: tensor<3x5xi32>) -> (tensor<3xf32>, tensor<3xi32>) {
  %c = stablehlo.constant dense<0xFF800000> : tensor<f32>
  %c0 = stablehlo.constant dense<0> : tensor<i32>
  %0:2 = stablehlo.reduce(%x init: %c), (%i init: %c0) across dimensions = [1] : (tensor<3x5xf32>, tensor<3x5xi32>, tensor<f32>, tensor<i32>) -> (tensor<3xf32>, tensor<3xi32>)
    reducer(%a: tensor<f32>, %b: tensor<f32>) (%ai: tensor<i32>, %bi: tensor<i32>) {
      %p = stablehlo.compare GT, %a, %b, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
      %m = stablehlo.select %p, %a, %b : tensor<i1>, tensor<f32>
      %mi = stablehlo.select %p, %ai, %bi : tensor<i1>, tensor<i32>
      stablehlo.return %m, %mi : tensor<f32>, tensor<i32>
    }
  return %0#0, %0#1 : tensor<3xf32>, tensor<3xi32>
}
