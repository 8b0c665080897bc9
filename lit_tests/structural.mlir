// func.call: a callee is batched once per pattern of batched arguments into a
// private clone named after the pattern (@f_b10: first argument batched,
// second not). Call sites with the same pattern share the clone; a call with
// no batched argument is left alone.
//
// RUN: stablehlo-batch-opt %s --axis-size=4 --in-axes=0,0,none | filecheck %s
// RUN: stablehlo-batch-opt %s --func=nested --axis-size=4 | filecheck %s --check-prefix=NESTED
// RUN: stablehlo-batch-opt %s --func=clash --axis-size=4 | filecheck %s --check-prefix=CLASH
// RUN: stablehlo-batch-opt %s --func=no_result_composite --axis-size=4 | filecheck %s --check-prefix=COMP0

// The original @f is only called from the batched function and is dropped;
// @g is still called unbatched and stays.
// CHECK-NOT: func.func private @f(
// CHECK: func.func private @g(%{{[^:]+}}: tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT: stablehlo.negate %{{.*}} : tensor<3xf32>
//
// CHECK-LABEL: func.func @main
// CHECK-SAME: (%[[X:[^:]+]]: tensor<4x3xf32>, %[[Y:[^:]+]]: tensor<4x3xf32>, %[[W:[^:]+]]: tensor<3xf32>) -> (tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>)
// CHECK-NEXT: %[[A:[^ ]+]] = call @f_b10(%[[X]], %[[W]]) : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT: %[[B:[^ ]+]] = call @f_b10(%[[Y]], %[[W]]) : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT: %[[C:[^ ]+]] = call @f_b01(%[[W]], %[[X]]) : (tensor<3xf32>, tensor<4x3xf32>) -> tensor<4x3xf32>
// The call with only unbatched arguments keeps its callee and types ...
// CHECK-NEXT: %[[G:[^ ]+]] = call @g(%[[W]]) : (tensor<3xf32>) -> tensor<3xf32>
// ... and its unbatched result is broadcast only for out_axes 0 at the exit.
// CHECK-NEXT: %[[GB:[^ ]+]] = stablehlo.broadcast_in_dim %[[G]], dims = [1] : (tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT: return %[[A]], %[[B]], %[[C]], %[[GB]]
//
// The clones come last, one per pattern; inside them the unbatched argument
// is broadcast only where the multiply needs it.
// CHECK-LABEL: func.func private @f_b10
// CHECK-SAME: (%[[FA:[^:]+]]: tensor<4x3xf32>, %[[FW:[^:]+]]: tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT: %[[FWB:[^ ]+]] = stablehlo.broadcast_in_dim %[[FW]], dims = [1] : (tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT: %[[FR:[^ ]+]] = stablehlo.multiply %[[FA]], %[[FWB]] : tensor<4x3xf32>
// CHECK-NEXT: return %[[FR]] : tensor<4x3xf32>
// CHECK-NOT: func.func
// CHECK-LABEL: func.func private @f_b01
// CHECK-SAME: (%[[GW:[^:]+]]: tensor<3xf32>, %[[GA:[^:]+]]: tensor<4x3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT: %[[GWB:[^ ]+]] = stablehlo.broadcast_in_dim %[[GW]], dims = [1] : (tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT: %[[GR:[^ ]+]] = stablehlo.multiply %[[GWB]], %[[GA]] : tensor<4x3xf32>
// CHECK-NEXT: return %[[GR]] : tensor<4x3xf32>
// CHECK-NOT: func.func
func.func private @f(%a: tensor<3xf32>, %w: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.multiply %a, %w : tensor<3xf32>
  return %0 : tensor<3xf32>
}
func.func private @g(%w: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.negate %w : tensor<3xf32>
  return %0 : tensor<3xf32>
}
func.func @main(%x: tensor<3xf32>, %y: tensor<3xf32>, %w: tensor<3xf32>)
    -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) {
  %0 = func.call @f(%x, %w) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %1 = func.call @f(%y, %w) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %2 = func.call @f(%w, %x) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %3 = func.call @g(%w) : (tensor<3xf32>) -> tensor<3xf32>
  return %0, %1, %2, %3 : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
}

// Callees batched inside a clone get their own clones, and a callee result
// that does not depend on a batched argument stays unbatched.
// NESTED-LABEL: func.func @nested
// NESTED-SAME: (%[[X:[^:]+]]: tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<4x3xf32>)
// NESTED-NEXT: %[[R:[^ ]+]]:2 = call @outer_b1(%[[X]]) : (tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<3xf32>)
// NESTED-NEXT: %[[RB:[^ ]+]] = stablehlo.broadcast_in_dim %[[R]]#1, dims = [1] : (tensor<3xf32>) -> tensor<4x3xf32>
// NESTED-NEXT: return %[[R]]#0, %[[RB]] : tensor<4x3xf32>, tensor<4x3xf32>
// NESTED-LABEL: func.func private @outer_b1
// NESTED-SAME: (%[[A:[^:]+]]: tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<3xf32>)
// NESTED-NEXT: call @inner_b1(%[[A]]) : (tensor<4x3xf32>) -> tensor<4x3xf32>
// NESTED-NEXT: stablehlo.constant dense<1.000000e+00> : tensor<3xf32>
// NESTED-NEXT: return %{{.*}} : tensor<4x3xf32>, tensor<3xf32>
// NESTED-LABEL: func.func private @inner_b1
// NESTED-SAME: (%{{[^:]+}}: tensor<4x3xf32>) -> tensor<4x3xf32>
// NESTED-NEXT: %[[E:[^ ]+]] = stablehlo.exponential %{{.*}} : tensor<4x3xf32>
// NESTED-NEXT: return %[[E]] : tensor<4x3xf32>
func.func private @inner(%a: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.exponential %a : tensor<3xf32>
  return %0 : tensor<3xf32>
}
func.func private @outer(%a: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {
  %0 = func.call @inner(%a) : (tensor<3xf32>) -> tensor<3xf32>
  %1 = stablehlo.constant dense<1.0> : tensor<3xf32>
  return %0, %1 : tensor<3xf32>, tensor<3xf32>
}
func.func @nested(%x: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {
  %0:2 = func.call @outer(%x) : (tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>)
  return %0#0, %0#1 : tensor<3xf32>, tensor<3xf32>
}

// A clone's name never collides with an existing symbol.
// CLASH: func.func @h_b1(%{{[^:]+}}: tensor<3xf32>) -> tensor<3xf32>
// CLASH-NEXT: stablehlo.cosine %{{.*}} : tensor<3xf32>
// CLASH-LABEL: func.func @clash
// CLASH-NEXT: %[[C:[^ ]+]] = call @h_b1_1(%{{[^)]+}}) : (tensor<4x3xf32>) -> tensor<4x3xf32>
// CLASH-NEXT: return %[[C]] : tensor<4x3xf32>
// CLASH-LABEL: func.func private @h_b1_1
// CLASH-SAME: (%{{[^:]+}}: tensor<4x3xf32>) -> tensor<4x3xf32>
// CLASH-NEXT: %[[S:[^ ]+]] = stablehlo.sine %{{.*}} : tensor<4x3xf32>
// CLASH-NEXT: return %[[S]] : tensor<4x3xf32>
func.func @h_b1(%a: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.cosine %a : tensor<3xf32>
  return %0 : tensor<3xf32>
}
func.func private @h(%a: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.sine %a : tensor<3xf32>
  return %0 : tensor<3xf32>
}
func.func @clash(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = func.call @h(%x) : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// A composite (not an elementwise name) becomes a call of its batched
// decomposition; one without results is then removed too (no result to
// replace would have left it calling the unbatched decomposition).
// COMP0-LABEL: func.func @no_result_composite
// COMP0-SAME: (%[[X:[^:]+]]: tensor<4x3xf32>) -> tensor<4x3xf32>
// COMP0-NEXT: call @dec_b1(%[[X]]) : (tensor<4x3xf32>) -> ()
// COMP0-NOT: stablehlo.composite
// COMP0: func.func private @dec_b1(%{{[^:]+}}: tensor<4x3xf32>)
func.func private @dec(%a: tensor<3xf32>) {
  return
}
func.func @no_result_composite(%x: tensor<3xf32>) -> tensor<3xf32> {
  "stablehlo.composite"(%x) {name = "test.no_result", decomposition = @dec} : (tensor<3xf32>) -> ()
  return %x : tensor<3xf32>
}
