// A batched argument passed to a callee that is only declared (no body): one
// error line naming the declaration and the call (it used to crash the engine
// with an IndexError).
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
