// reduce_window, select_and_scatter and map (passes/rules/windows.py): the
// batch dim gets a window of 1, stride 1, no padding and no dilation (map:
// its dimensions shift by one). A per-lane init value runs the op once per
// lane (the fallback: a warning, or an error under --strict).
//
// RUN: stablehlo-batch-opt %s --func=max_pool --axis-size=4 | filecheck %s --check-prefix=POOL
// RUN: stablehlo-batch-opt %s --func=argmax_window --axis-size=4 --in-axes=0,none,none,none --out-axes=0,0 | filecheck %s --check-prefix=VARIADIC
// RUN: stablehlo-batch-opt %s --func=argmax_window --axis-size=4 --in-axes=0,none,0,none --out-axes=0,0 | filecheck %s --check-prefix=PERLANE
// RUN: not stablehlo-batch-opt %s --func=argmax_window --axis-size=4 --in-axes=0,none,0,none --out-axes=0,0 --strict 2>&1 | filecheck %s --check-prefix=STRICT
// RUN: stablehlo-batch-opt %s --func=pool_grad --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=SAS
// RUN: stablehlo-batch-opt %s --func=map --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=MAP

// POOL-LABEL: func.func @max_pool
// POOL-SAME: (%[[X:[^:]+]]: tensor<4x4x6xf32>) -> tensor<4x2x5xf32>
// POOL-NEXT: %[[INIT:[^ ]+]] = stablehlo.constant
// POOL-NEXT: "stablehlo.reduce_window"(%[[X]], %[[INIT]]) <{base_dilations = array<i64: 1, 1, 2>, padding = dense<{{\[\[}}0, 0], [1, 0], [1, 1]]> : tensor<3x2xi64>, window_dilations = array<i64: 1, 1, 2>, window_dimensions = array<i64: 1, 2, 3>, window_strides = array<i64: 1, 2, 2>}>
// POOL: stablehlo.maximum
// POOL: (tensor<4x4x6xf32>, tensor<f32>) -> tensor<4x2x5xf32>
func.func @max_pool(%x: tensor<4x6xf32>) -> tensor<2x5xf32> {
  %init = stablehlo.constant dense<0xFF800000> : tensor<f32>
  %0 = "stablehlo.reduce_window"(%x, %init) <{base_dilations = array<i64: 1, 2>, padding = dense<[[1, 0], [1, 1]]> : tensor<2x2xi64>, window_dilations = array<i64: 1, 2>, window_dimensions = array<i64: 2, 3>, window_strides = array<i64: 2, 2>}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %m = stablehlo.maximum %a, %b : tensor<f32>
    stablehlo.return %m : tensor<f32>
  }) : (tensor<4x6xf32>, tensor<f32>) -> tensor<2x5xf32>
  return %0 : tensor<2x5xf32>
}

// Variadic: inputs reduced together share a shape, so the unbatched index
// input is broadcast; the init values stay scalars. Attributes that were
// absent (dilations, padding) stay absent.
// VARIADIC-LABEL: func.func @argmax_window
// VARIADIC-SAME: (%[[X:[^:]+]]: tensor<4x8xf32>, %[[I:[^:]+]]: tensor<8xi32>, %[[XI:[^:]+]]: tensor<f32>, %[[II:[^:]+]]: tensor<i32>)
// VARIADIC-NEXT: %[[IB:[^ ]+]] = stablehlo.broadcast_in_dim %[[I]], dims = [1] : (tensor<8xi32>) -> tensor<4x8xi32>
// VARIADIC-NEXT: "stablehlo.reduce_window"(%[[X]], %[[IB]], %[[XI]], %[[II]]) <{window_dimensions = array<i64: 1, 4>, window_strides = array<i64: 1, 2>}>
// VARIADIC: (tensor<4x8xf32>, tensor<4x8xi32>, tensor<f32>, tensor<i32>) -> (tensor<4x3xf32>, tensor<4x3xi32>)
//
// A per-lane init value: a loop over the lanes runs the original op on each.
// PERLANE-LABEL: func.func @argmax_window
// PERLANE: stablehlo.while
// PERLANE: stablehlo.dynamic_slice %{{[^,]+}}, %{{.*}} : (tensor<4xf32>, tensor<i32>) -> tensor<1xf32>
// PERLANE: "stablehlo.reduce_window"
// PERLANE-SAME: <{window_dimensions = array<i64: 4>, window_strides = array<i64: 2>}>
// PERLANE: (tensor<8xf32>, tensor<8xi32>, tensor<f32>, tensor<i32>) -> (tensor<3xf32>, tensor<3xi32>)
// PERLANE: stablehlo.dynamic_update_slice
//
// Under --strict the per-lane loop is refused with the typed error.
// STRICT: error: cannot batch 'stablehlo.reduce_window' in function @argmax_window: an init value differs per batch element (strict mode: no per-lane fallback)
func.func @argmax_window(%x: tensor<8xf32>, %i: tensor<8xi32>, %xi: tensor<f32>, %ii: tensor<i32>) -> (tensor<3xf32>, tensor<3xi32>) {
  %0:2 = "stablehlo.reduce_window"(%x, %i, %xi, %ii) <{window_dimensions = array<i64: 4>, window_strides = array<i64: 2>}> ({
  ^bb0(%a: tensor<f32>, %ai: tensor<i32>, %b: tensor<f32>, %bi: tensor<i32>):
    %p = stablehlo.compare GE, %a, %b, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
    %v = stablehlo.select %p, %a, %b : tensor<i1>, tensor<f32>
    %w = stablehlo.select %p, %ai, %bi : tensor<i1>, tensor<i32>
    stablehlo.return %v, %w : tensor<f32>, tensor<i32>
  }) : (tensor<8xf32>, tensor<8xi32>, tensor<f32>, tensor<i32>) -> (tensor<3xf32>, tensor<3xi32>)
  return %0#0, %0#1 : tensor<3xf32>, tensor<3xi32>
}

// Only the source (the cotangent) batched: the operand must be windowed
// with it, so it is broadcast.
// SAS-LABEL: func.func @pool_grad
// SAS-SAME: (%[[X:[^:]+]]: tensor<4x6xf32>, %[[S:[^:]+]]: tensor<4x2x3xf32>) -> tensor<4x4x6xf32>
// SAS: %[[XB:[^ ]+]] = stablehlo.broadcast_in_dim %[[X]], dims = [1, 2] : (tensor<4x6xf32>) -> tensor<4x4x6xf32>
// SAS-NEXT: "stablehlo.select_and_scatter"(%[[XB]], %[[S]], %{{[^)]+}}) <{padding = dense<{{\[\[}}0, 0], [0, 0], [0, 1]]> : tensor<3x2xi64>, window_dimensions = array<i64: 1, 2, 2>, window_strides = array<i64: 1, 2, 2>}>
// SAS: (tensor<4x4x6xf32>, tensor<4x2x3xf32>, tensor<f32>) -> tensor<4x4x6xf32>
func.func @pool_grad(%x: tensor<4x6xf32>, %src: tensor<2x3xf32>) -> tensor<4x6xf32> {
  %zero = stablehlo.constant dense<0.000000e+00> : tensor<f32>
  %0 = "stablehlo.select_and_scatter"(%x, %src, %zero) <{padding = dense<[[0, 0], [0, 1]]> : tensor<2x2xi64>, window_dimensions = array<i64: 2, 2>, window_strides = array<i64: 2, 2>}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %p = stablehlo.compare GE, %a, %b, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
    stablehlo.return %p : tensor<i1>
  }, {
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %s = stablehlo.add %a, %b : tensor<f32>
    stablehlo.return %s : tensor<f32>
  }) : (tensor<4x6xf32>, tensor<2x3xf32>, tensor<f32>) -> tensor<4x6xf32>
  return %0 : tensor<4x6xf32>
}

// MAP-LABEL: func.func @map
// MAP-SAME: (%[[X:[^:]+]]: tensor<4x2x3xf32>, %[[Y:[^:]+]]: tensor<2x3xf32>) -> tensor<4x2x3xf32>
// MAP-NEXT: %[[YB:[^ ]+]] = stablehlo.broadcast_in_dim %[[Y]], dims = [1, 2] : (tensor<2x3xf32>) -> tensor<4x2x3xf32>
// MAP-NEXT: "stablehlo.map"(%[[X]], %[[YB]]) <{dimensions = array<i64: 0, 1, 2>}>
// MAP: (tensor<4x2x3xf32>, tensor<4x2x3xf32>) -> tensor<4x2x3xf32>
func.func @map(%x: tensor<2x3xf32>, %y: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "stablehlo.map"(%x, %y) <{dimensions = array<i64: 0, 1>}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %m = stablehlo.multiply %a, %b : tensor<f32>
    stablehlo.return %m : tensor<f32>
  }) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}
