// KNOWN BUG: the error for a recursive call says "at unknown" where the
// location of the op should be (the call sites that follow it are right):
//   error: cannot batch 'func.call' in function @countdown: recursive calls
//   cannot be batched at unknown, called from -:15:8, called from -:20:8
// Either the recursing call (line 15) or the call from @main (line 20) would
// do as the location. Remove the XFAIL line once it is fixed.
// XFAIL: *
//
// RUN: not stablehlo-batch-opt %s --axis-size=4 2>&1 | filecheck %s

// CHECK-NOT: {{.}}
// CHECK-LABEL: {{^}}error: cannot batch 'func.call' in function @{{.+}}: recursive calls cannot be batched at {{[^ ,]*}}:{{(15|20)}}:{{[0-9]+}}{{(,.*)?$}}
// CHECK-NOT: {{.}}
func.func private @countdown(%a: tensor<3xf32>) -> tensor<3xf32> {
  %0 = func.call @countdown(%a) : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = func.call @countdown(%x) : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}
