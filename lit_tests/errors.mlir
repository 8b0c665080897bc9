// Failures: each prints exactly one line `error: ...` (with the op's
// location where there is an op to blame) and exits non-zero. Every case
// batches its own function of this module with --func; inputs that cannot be
// read at all live under Inputs/.
//
// An op with no batching rule, on a batched operand, with --strict (without
// it the op runs once per lane: lit_tests/fallback.mlir).
// RUN: not stablehlo-batch-opt %s --func=custom_call --axis-size=4 --strict 2>&1 | filecheck %s --check-prefix=CUSTOM
// RUN: not stablehlo-batch-opt %s --func=dynamic_reshape --axis-size=4 --in-axes=0,none --strict 2>&1 | filecheck %s --check-prefix=NORULE
// RUN: not stablehlo-batch-opt %s --func=outfeed --axis-size=4 --in-axes=0,none --out-axes=none --strict 2>&1 | filecheck %s --check-prefix=OUTFEED
// The same inside a callee: the op's location in the callee's body, then
// the call site that led there.
// RUN: not stablehlo-batch-opt %s --func=calls_no_rule --axis-size=4 --in-axes=0,none --strict 2>&1 | filecheck %s --check-prefix=CALLEE
// A rule that declines one use of its op (fb.decline): under --strict, the
// error says why (without it the op runs once per lane).
// RUN: not stablehlo-batch-opt %s --func=reduce_batched_init --axis-size=4 --strict 2>&1 | filecheck %s --check-prefix=INIT
// RUN: not stablehlo-batch-opt %s --func=reduce_body_capture --axis-size=4 --in-axes=none,0 --strict 2>&1 | filecheck %s --check-prefix=CAPTURE
// An op without a rule is fine while none of its operands is batched.
// RUN: stablehlo-batch-opt %s --func=cholesky_unbatched --axis-size=4 --in-axes=0,none --out-axes=0,none | filecheck %s --check-prefix=UNBATCHED
//
// Unreadable input.
// RUN: not stablehlo-batch-opt %S/Inputs/parse_error.mlir --axis-size=4 2>&1 | filecheck %s --check-prefix=PARSE
// RUN: not stablehlo-batch-opt %S/Inputs/invalid_module.mlir --axis-size=4 2>&1 | filecheck %s --check-prefix=INVALID
// RUN: not stablehlo-batch-opt %S/Inputs/does_not_exist.mlir --axis-size=4 2>&1 | filecheck %s --check-prefix=MISSING
//
// Axis specs that do not fit the function.
// RUN: not stablehlo-batch-opt %s --func=identity --axis-size=4 --out-axes=none 2>&1 | filecheck %s --check-prefix=OUT-NONE
// RUN: not stablehlo-batch-opt %s --func=identity --axis-size=4 --in-axes=0,none 2>&1 | filecheck %s --check-prefix=IN-COUNT
// RUN: not stablehlo-batch-opt %s --func=identity --axis-size=4 --out-axes=0,0 2>&1 | filecheck %s --check-prefix=OUT-COUNT
// RUN: not stablehlo-batch-opt %s --func=identity --axis-size=4 --in-axes=2 2>&1 | filecheck %s --check-prefix=IN-RANGE
// RUN: not stablehlo-batch-opt %s --func=identity --axis-size=4 --in-axes=-3 2>&1 | filecheck %s --check-prefix=IN-RANGE-NEG
// RUN: not stablehlo-batch-opt %s --func=identity --axis-size=4 --out-axes=2 2>&1 | filecheck %s --check-prefix=OUT-RANGE
// RUN: not stablehlo-batch-opt %s --func=no_such_function --axis-size=4 2>&1 | filecheck %s --check-prefix=NO-FUNC
// RUN: not stablehlo-batch-opt %s --func=identity --axis-size=4 --in-axes=x 2>&1 | filecheck %s --check-prefix=BAD-AXIS
// RUN: not stablehlo-batch-opt %s --func=identity 2>&1 | filecheck %s --check-prefix=NO-SIZE

// CUSTOM-NOT: {{.}}
// CUSTOM-LABEL: {{^}}error: cannot batch 'stablehlo.custom_call' in function @custom_call: {{.+}} at
// CUSTOM-SAME: {{.*}}:[[# @LINE + 3]]:{{[0-9]+}}{{$}}
// CUSTOM-NOT: {{.}}
func.func @custom_call(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.custom_call @some_unknown_target(%x) : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// NORULE-NOT: {{.}}
// NORULE-LABEL: {{^}}error: cannot batch 'stablehlo.dynamic_reshape' in function @dynamic_reshape: no batching rule (strict mode: no per-lane fallback) at
// NORULE-SAME: {{.*}}:[[# @LINE + 3]]:{{[0-9]+}}{{$}}
// NORULE-NOT: {{.}}
func.func @dynamic_reshape(%a: tensor<3x2xf32>, %shape: tensor<1xi64>) -> tensor<6xf32> {
  %0 = stablehlo.dynamic_reshape %a, %shape : (tensor<3x2xf32>, tensor<1xi64>) -> tensor<6xf32>
  return %0 : tensor<6xf32>
}

// OUTFEED-NOT: {{.}}
// OUTFEED-LABEL: {{^}}error: cannot batch 'stablehlo.outfeed' in function @outfeed: no batching rule (strict mode: no per-lane fallback) at
// OUTFEED-SAME: {{.*}}:[[# @LINE + 3]]:{{[0-9]+}}{{$}}
// OUTFEED-NOT: {{.}}
func.func @outfeed(%x: tensor<3xf32>, %t: !stablehlo.token) -> !stablehlo.token {
  %0 = "stablehlo.outfeed"(%x, %t) {outfeed_config = ""} : (tensor<3xf32>, !stablehlo.token) -> !stablehlo.token
  return %0 : !stablehlo.token
}

// CALLEE-NOT: {{.}}
// CALLEE-LABEL: {{^}}error: cannot batch 'stablehlo.dynamic_reshape' in function {{.+}}: no batching rule (strict mode: no per-lane fallback) at
// CALLEE-SAME: {{.*}}:[[# @LINE + 3]]:{{[0-9]+}}, called from {{.*}}:[[# @LINE + 7]]:{{[0-9]+}}{{$}}
// CALLEE-NOT: {{.}}
func.func private @flatten(%a: tensor<3x2xf32>, %shape: tensor<1xi64>) -> tensor<6xf32> {
  %0 = stablehlo.dynamic_reshape %a, %shape : (tensor<3x2xf32>, tensor<1xi64>) -> tensor<6xf32>
  return %0 : tensor<6xf32>
}
func.func @calls_no_rule(%a: tensor<3x2xf32>, %shape: tensor<1xi64>) -> tensor<6xf32> {
  %0 = func.call @flatten(%a, %shape) : (tensor<3x2xf32>, tensor<1xi64>) -> tensor<6xf32>
  return %0 : tensor<6xf32>
}

// INIT-NOT: {{.}}
// INIT-LABEL: {{^}}error: cannot batch 'stablehlo.reduce' in function @reduce_batched_init: init values differ per batch element (strict mode: no per-lane fallback) at
// INIT-SAME: {{.*}}:[[# @LINE + 3]]:{{[0-9]+}}{{$}}
// INIT-NOT: {{.}}
func.func @reduce_batched_init(%x: tensor<3xf32>, %init: tensor<f32>) -> tensor<f32> {
  %0 = stablehlo.reduce(%x init: %init) applies stablehlo.add across dimensions = [0] : (tensor<3xf32>, tensor<f32>) -> tensor<f32>
  return %0 : tensor<f32>
}

// CAPTURE-NOT: {{.}}
// CAPTURE-LABEL: {{^}}error: cannot batch 'stablehlo.reduce' in function @reduce_body_capture: the reduction body uses a batched value from outside the op (strict mode: no per-lane fallback) at
// CAPTURE-SAME: {{.*}}:[[# @LINE + 4]]:{{[0-9]+}}{{$}}
// CAPTURE-NOT: {{.}}
func.func @reduce_body_capture(%x: tensor<3xf32>, %s: tensor<f32>) -> tensor<f32> {
  %c = stablehlo.constant dense<0.0> : tensor<f32>
  %0 = stablehlo.reduce(%x init: %c) across dimensions = [0] : (tensor<3xf32>, tensor<f32>) -> tensor<f32>
    reducer(%a: tensor<f32>, %b: tensor<f32>) {
      %m = stablehlo.add %a, %b : tensor<f32>
      %m2 = stablehlo.multiply %m, %s : tensor<f32>
      stablehlo.return %m2 : tensor<f32>
    }
  return %0 : tensor<f32>
}

// UNBATCHED-LABEL: func.func @cholesky_unbatched
// UNBATCHED-SAME: (%[[X:[^:]+]]: tensor<4x3xf32>, %[[A:[^:]+]]: tensor<3x3xf32>) -> (tensor<4x3xf32>, tensor<3x3xf32>)
// UNBATCHED-NEXT: %[[L:[^ ]+]] = stablehlo.cholesky %[[A]], lower = true : tensor<3x3xf32>
// UNBATCHED-NEXT: %[[N:[^ ]+]] = stablehlo.negate %[[X]] : tensor<4x3xf32>
// UNBATCHED-NEXT: return %[[N]], %[[L]] : tensor<4x3xf32>, tensor<3x3xf32>
func.func @cholesky_unbatched(%x: tensor<3xf32>, %a: tensor<3x3xf32>) -> (tensor<3xf32>, tensor<3x3xf32>) {
  %0 = stablehlo.cholesky %a, lower = true : tensor<3x3xf32>
  %1 = stablehlo.negate %x : tensor<3xf32>
  return %1, %0 : tensor<3xf32>, tensor<3x3xf32>
}

// Inputs/parse_error.mlir uses an unknown op on line 3.
// PARSE-NOT: {{.}}
// PARSE-LABEL: {{^}}error: cannot parse module: {{.*}}'stablehlo.bogus'{{.*}} at {{.*}}:3:{{[0-9]+}}{{$}}
// PARSE-NOT: {{.}}
//
// Inputs/invalid_module.mlir fails the verifier on line 4.
// INVALID-NOT: {{.}}
// INVALID-LABEL: {{^}}error: {{.*}}'stablehlo.add' op requires the same shape for all operands and results at {{.*}}:4:{{[0-9]+}}{{$}}
// INVALID-NOT: {{.}}
//
// MISSING-NOT: {{.}}
// MISSING-LABEL: {{^}}error: {{.*}}does_not_exist.mlir{{.*$}}
// MISSING-NOT: {{.}}

// OUT-NONE-NOT: {{.}}
// OUT-NONE-LABEL: {{^}}error: result 0 of @identity is batched but its out_axes is None{{$}}
// OUT-NONE-NOT: {{.}}
//
// IN-COUNT-NOT: {{.}}
// IN-COUNT-LABEL: {{^}}error: in_axes has 2 entries but @identity takes 1 arguments{{$}}
// IN-COUNT-NOT: {{.}}
//
// OUT-COUNT-NOT: {{.}}
// OUT-COUNT-LABEL: {{^}}error: out_axes has 2 entries but @identity returns 1 results{{$}}
// OUT-COUNT-NOT: {{.}}
//
// A rank-1 argument batched has rank 2: axes -2..1 are valid.
// IN-RANGE-NOT: {{.}}
// IN-RANGE-LABEL: {{^}}error: in_axes[0]=2 is out of range for argument 0 of rank 1{{$}}
// IN-RANGE-NOT: {{.}}
//
// IN-RANGE-NEG-NOT: {{.}}
// IN-RANGE-NEG-LABEL: {{^}}error: in_axes[0]=-3 is out of range for argument 0 of rank 1{{$}}
// IN-RANGE-NEG-NOT: {{.}}
//
// OUT-RANGE-NOT: {{.}}
// OUT-RANGE-LABEL: {{^}}error: out_axes[0]=2 is out of range for result 0 of rank 1{{$}}
// OUT-RANGE-NOT: {{.}}
//
// NO-FUNC-NOT: {{.}}
// NO-FUNC-LABEL: {{^}}error: function @no_such_function not found in the module{{$}}
// NO-FUNC-NOT: {{.}}
//
// BAD-AXIS-NOT: {{.}}
// BAD-AXIS-LABEL: {{^}}error: {{.*}}invalid axis 'x'{{.*$}}
// BAD-AXIS-NOT: {{.}}
//
// NO-SIZE-NOT: {{.}}
// NO-SIZE-LABEL: {{^}}error: {{.*}}--axis-size{{.*$}}
// NO-SIZE-NOT: {{.}}
func.func @identity(%x: tensor<3xf32>) -> tensor<3xf32> {
  return %x : tensor<3xf32>
}
