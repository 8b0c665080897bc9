// KNOWN BUG: a batched argument passed to a callee that is only declared
// (no body) crashes the engine with "internal error (IndexError): attempt to
// access out of bounds block" instead of a clean error naming the call.
// Remove the XFAIL line once it is fixed.
// XFAIL: *
//
// RUN: not stablehlo-batch-opt %s --axis-size=4 2>&1 | filecheck %s

// CHECK-NOT: {{.}}
// CHECK-LABEL: {{^}}error: cannot batch 'func.call' in function @main: {{.*}}@external{{.*}} at
// CHECK-SAME: {{.*}}:[[# @LINE + 5]]:{{[0-9]+}}{{$}}
// CHECK-NOT: {{.}}
func.func private @external(tensor<3xf32>) -> tensor<3xf32>

func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = func.call @external(%x) : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}
