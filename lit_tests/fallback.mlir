// The universal fallback (passes/fallback.py, passes/lane_loop.py): an op
// with no batching rule runs once per lane in a stablehlo.while, with one
// warning line per op name and function; --strict makes it an error, and
// collectives are refused either way.
//
// RUN: stablehlo-batch-opt %s --func=unknown --axis-size=4 --in-axes=0,none 2>/dev/null | filecheck %s --check-prefix=UNKNOWN
// RUN: stablehlo-batch-opt %s --func=unknown --axis-size=4 --in-axes=0,0 2>/dev/null | filecheck %s --check-prefix=BOTH
// RUN: stablehlo-batch-opt %s --func=unknown --axis-size=4 --in-axes=0,none -o %t.mlir 2>&1 | filecheck %s --check-prefix=WARN
// RUN: stablehlo-batch-opt %s --func=tokens --axis-size=4 --in-axes=0,none --out-axes=none 2>/dev/null | filecheck %s --check-prefix=TOKEN
// RUN: stablehlo-batch-opt %s --func=tuple_result --axis-size=4 2>/dev/null | filecheck %s --check-prefix=TUPLE
// RUN: stablehlo-batch-opt %s --func=no_results --axis-size=4 2>/dev/null | filecheck %s --check-prefix=NORES
// RUN: stablehlo-batch-opt %s --func=unknown --axis-size=4 --in-axes=none,none --out-axes=none | filecheck %s --check-prefix=UNBATCHED
// RUN: not stablehlo-batch-opt %s --func=unknown --axis-size=4 --in-axes=0,none --strict 2>&1 | filecheck %s --check-prefix=STRICT
// RUN: not stablehlo-batch-opt %s --func=collective --axis-size=4 2>&1 | filecheck %s --check-prefix=COLLECTIVE

// The batched operand is sliced per lane; the unbatched one goes in as it is
// (never broadcast); each result row is written back at the lane index.
// UNKNOWN-LABEL: func.func @unknown
// UNKNOWN-SAME: (%[[X:[^:]+]]: tensor<4x3xf32>, %[[W:[^:]+]]: tensor<2xf32>) -> tensor<4x2x3xf32>
// UNKNOWN-NOT: broadcast_in_dim
// UNKNOWN: %[[LOOP:[^:]+]]:2 = stablehlo.while(%[[I:[^ ]+]] = %{{[^,]+}}, %[[ACC:[^ ]+]] = %{{[^)]+}}) : tensor<i32>, tensor<4x2x3xf32>
// UNKNOWN: stablehlo.compare LT, %[[I]], %{{.*}} : (tensor<i32>, tensor<i32>) -> tensor<i1>
// UNKNOWN: } do {
// UNKNOWN: stablehlo.dynamic_slice %[[X]], %[[I]], %{{[^ ]+}} sizes = [1, 3] : (tensor<4x3xf32>, tensor<i32>, tensor<i32>) -> tensor<1x3xf32>
// UNKNOWN: %[[ROW:[^ ]+]] = stablehlo.reshape %{{.*}} : (tensor<1x3xf32>) -> tensor<3xf32>
// UNKNOWN: %[[R:[^ ]+]] = stablehlo.custom_call @some_unknown_target(%[[ROW]], %[[W]]) : (tensor<3xf32>, tensor<2xf32>) -> tensor<2x3xf32>
// UNKNOWN: %[[R1:[^ ]+]] = stablehlo.reshape %[[R]] : (tensor<2x3xf32>) -> tensor<1x2x3xf32>
// UNKNOWN: stablehlo.dynamic_update_slice %[[ACC]], %[[R1]], %[[I]], %{{[^ ]+}}, %{{[^ ]+}} : (tensor<4x2x3xf32>, tensor<1x2x3xf32>, tensor<i32>, tensor<i32>, tensor<i32>) -> tensor<4x2x3xf32>
// UNKNOWN: stablehlo.add %[[I]], %{{.*}} : tensor<i32>
// The second call takes the first one's batched result, sliced per lane.
// UNKNOWN: stablehlo.while
// UNKNOWN: stablehlo.dynamic_slice %[[LOOP]]#1, %{{.*}} sizes = [1, 2, 3]
// UNKNOWN: stablehlo.custom_call @some_unknown_target(%{{[^,]+}}, %[[W]]) : (tensor<2x3xf32>, tensor<2xf32>) -> tensor<2x3xf32>
// UNKNOWN: return %{{.*}}#1 : tensor<4x2x3xf32>
//
// BOTH-LABEL: func.func @unknown
// BOTH-SAME: (%[[X:[^:]+]]: tensor<4x3xf32>, %[[W:[^:]+]]: tensor<4x2xf32>) -> tensor<4x2x3xf32>
// BOTH: stablehlo.dynamic_slice %[[X]], %{{.*}} sizes = [1, 3]
// BOTH: stablehlo.dynamic_slice %[[W]], %{{.*}} sizes = [1, 2]
// BOTH: stablehlo.custom_call @some_unknown_target(%{{[^,]+}}, %{{[^)]+}}) : (tensor<3xf32>, tensor<2xf32>) -> tensor<2x3xf32>
//
// One warning for the two calls of the same target in one function.
// WARN-NOT: {{.}}
// WARN-LABEL: {{^}}warning: 'stablehlo.custom_call @some_unknown_target' in function @unknown runs once per lane in a loop (custom call target @some_unknown_target has no batching rule; {{.*}}) at {{.*}}:[[# @LINE + 12]]:{{[0-9]+}}{{$}}
// WARN-NOT: {{.}}
//
// Nothing batched: the op is kept, no loop.
// UNBATCHED-LABEL: func.func @unknown
// UNBATCHED-NOT: stablehlo.while
// UNBATCHED: stablehlo.custom_call @some_unknown_target(%{{[^,]+}}, %{{[^)]+}}) : (tensor<3xf32>, tensor<2xf32>) -> tensor<2x3xf32>
//
// STRICT-NOT: {{.}}
// STRICT-LABEL: {{^}}error: cannot batch 'stablehlo.custom_call' in function @unknown: custom call target @some_unknown_target has no batching rule (strict mode: no per-lane fallback) at {{.*}}:[[# @LINE + 3]]:{{[0-9]+}}{{$}}
// STRICT-NOT: {{.}}
func.func @unknown(%x: tensor<3xf32>, %w: tensor<2xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.custom_call @some_unknown_target(%x, %w) : (tensor<3xf32>, tensor<2xf32>) -> tensor<2x3xf32>
  %1 = stablehlo.custom_call @some_unknown_target(%0, %w) : (tensor<2x3xf32>, tensor<2xf32>) -> tensor<2x3xf32>
  return %1 : tensor<2x3xf32>
}

// A token is threaded through the lanes: lane i consumes the token lane
// i - 1 produced, so side effects keep the lane order; the token stays
// unbatched.
// TOKEN-LABEL: func.func @tokens
// TOKEN-SAME: (%[[X:[^:]+]]: tensor<4x3xf32>, %[[T:[^:]+]]: !stablehlo.token) -> !stablehlo.token
// TOKEN: %[[LOOP:[^:]+]]:2 = stablehlo.while(%[[I:[^ ]+]] = %{{[^,]+}}, %[[TOK:[^ ]+]] = %[[T]]) : tensor<i32>, !stablehlo.token
// TOKEN: } do {
// TOKEN: %[[ROW:[^ ]+]] = stablehlo.reshape %{{.*}} : (tensor<1x3xf32>) -> tensor<3xf32>
// TOKEN: %[[NEXT:[^ ]+]] = "stablehlo.outfeed"(%[[ROW]], %[[TOK]]) {{.*}} : (tensor<3xf32>, !stablehlo.token) -> !stablehlo.token
// TOKEN: stablehlo.return %{{[^,]+}}, %[[NEXT]] : tensor<i32>, !stablehlo.token
// TOKEN: return %[[LOOP]]#1 : !stablehlo.token
func.func @tokens(%x: tensor<3xf32>, %t: !stablehlo.token) -> !stablehlo.token {
  %0 = "stablehlo.outfeed"(%x, %t) {outfeed_config = ""} : (tensor<3xf32>, !stablehlo.token) -> !stablehlo.token
  return %0 : !stablehlo.token
}

// A tuple result: one accumulator per leaf, the batched tuple rebuilt after
// the loop.
// TUPLE-LABEL: func.func @tuple_result
// TUPLE-SAME: -> (tensor<4x3xf32>, tensor<4xi32>)
// TUPLE: stablehlo.while({{.*}}) : tensor<i32>, tensor<4x3xf32>, tensor<4xi32>
// TUPLE: stablehlo.custom_call @tuple_target(%{{[^)]+}}) : (tensor<3xf32>) -> tuple<tensor<3xf32>, tensor<i32>>
// TUPLE: stablehlo.dynamic_update_slice {{.*}} : (tensor<4x3xf32>, tensor<1x3xf32>, tensor<i32>, tensor<i32>) -> tensor<4x3xf32>
// TUPLE: stablehlo.dynamic_update_slice {{.*}} : (tensor<4xi32>, tensor<1xi32>, tensor<i32>) -> tensor<4xi32>
// TUPLE: stablehlo.tuple %{{[^,]+}}, %{{[^ ]+}} : tuple<tensor<4x3xf32>, tensor<4xi32>>
func.func @tuple_result(%x: tensor<3xf32>) -> (tensor<3xf32>, tensor<i32>) {
  %0 = stablehlo.custom_call @tuple_target(%x) : (tensor<3xf32>) -> tuple<tensor<3xf32>, tensor<i32>>
  %1 = stablehlo.get_tuple_element %0[0] : (tuple<tensor<3xf32>, tensor<i32>>) -> tensor<3xf32>
  %2 = stablehlo.get_tuple_element %0[1] : (tuple<tensor<3xf32>, tensor<i32>>) -> tensor<i32>
  return %1, %2 : tensor<3xf32>, tensor<i32>
}

// An op without results (a side effect): the loop carries only the counter
// and the original op is gone from outside the loop.
// NORES-LABEL: func.func @no_results
// NORES-NEXT: stablehlo.constant
// NORES-NEXT: stablehlo.while(%{{[^)]+}}) : tensor<i32>
// NORES: stablehlo.custom_call @effect(%{{[^)]+}}) {has_side_effect = true} : (tensor<3xf32>) -> ()
// NORES: }
// NORES-NEXT: return %{{.*}} : tensor<4x3xf32>
func.func @no_results(%x: tensor<3xf32>) -> tensor<3xf32> {
  stablehlo.custom_call @effect(%x) {has_side_effect = true} : (tensor<3xf32>) -> ()
  return %x : tensor<3xf32>
}

// COLLECTIVE-NOT: {{.}}
// COLLECTIVE-LABEL: {{^}}error: cannot batch 'stablehlo.all_reduce' in function @collective: a collective cannot be batched: the module must be lowered for one device at {{.*}}:[[# @LINE + 3]]:{{[0-9]+}}{{$}}
// COLLECTIVE-NOT: {{.}}
func.func @collective(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = "stablehlo.all_reduce"(%x) ({
    ^bb0(%a: tensor<f32>, %b: tensor<f32>):
      %s = stablehlo.add %a, %b : tensor<f32>
      stablehlo.return %s : tensor<f32>
  }) {replica_groups = dense<[[0]]> : tensor<1x1xi64>} : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}
