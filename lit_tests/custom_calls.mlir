// Custom calls on CPU (passes/rules/custom_calls.py): the rule table looks
// a custom call up by its target. LAPACK FFI kernels take leading batch dims,
// so a batched call gets one more (types, layouts with the new dim most
// major, num_batch_dims, the sharding rule); a triangular solve whose matrix
// is unbatched folds the lanes into right-hand-side columns instead; a
// replicated Sharding marker stays and a partitioned one is dropped;
// shape_assertion must hold in every lane and reports the first failing
// lane's inputs; a target without a rule runs once per lane. The GPU / TPU
// kernels are in custom_calls_cuda.mlir.
//
// RUN: stablehlo-batch-opt %s --func=potrf --axis-size=4 | filecheck %s --check-prefix=POTRF
// RUN: stablehlo-batch-opt %s --func=trsm --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=TRSM
// RUN: stablehlo-batch-opt %s --func=trsm --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=TRSM-RHS
// RUN: stablehlo-batch-opt %s --func=marker --axis-size=2 | filecheck %s --check-prefix=MARKER
// RUN: stablehlo-batch-opt %s --func=assertion --axis-size=4 --in-axes=none,0 --out-axes=none | filecheck %s --check-prefix=ASSERT
// RUN: stablehlo-batch-opt %s --func=unknown --axis-size=4 2>&1 | filecheck %s --check-prefix=UNKNOWN
// A kernel checks static shapes when compiled: with a symbolic batch size
// its rule declines (per lane; an error under --strict).
// RUN: not stablehlo-batch-opt %s --func=potrf --axis-size=b --strict 2>&1 | filecheck %s --check-prefix=SYMBOLIC
// Shardy's sharding_constraint names one sharding per per-example dim: the
// batched value goes through unannotated.
// RUN: stablehlo-batch-opt %s --func=constraint --axis-size=2 --strict | filecheck %s --check-prefix=SDY

sdy.mesh @mesh = <["x"=2]>

// POTRF-LABEL: func.func @potrf
// POTRF-SAME: (%{{[^:]+}}: tensor<4x3x3xf32>) -> (tensor<4x3x3xf32>, tensor<4xi32>)
// POTRF: stablehlo.custom_call @lapack_spotrf_ffi
// POTRF-SAME: mhlo.frontend_attributes = {num_batch_dims = "1"}
// POTRF-SAME: operand_layouts = [dense<[1, 2, 0]> : tensor<3xindex>]
// POTRF-SAME: result_layouts = [dense<[1, 2, 0]> : tensor<3xindex>, dense<0> : tensor<1xindex>]
// POTRF-SAME: sdy.sharding_rule = #sdy.op_sharding_rule<([i, j, k])->([i, l, m], [i]) {i=4, j=3, k=3, l=3, m=3}, custom>
// POTRF-SAME: (tensor<4x3x3xf32>) -> (tensor<4x3x3xf32>, tensor<4xi32>)
// POTRF-NOT: stablehlo.while
// SYMBOLIC: error: cannot batch 'stablehlo.custom_call' in function @potrf: it needs static shapes and the batch size is symbolic (strict mode: no per-lane fallback)
func.func @potrf(%a: tensor<3x3xf32>) -> (tensor<3x3xf32>, tensor<i32>) {
  %0:2 = stablehlo.custom_call @lapack_spotrf_ffi(%a) {backend_config = "", mhlo.backend_config = {uplo = 76 : ui8}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<> : tensor<0xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j])->([k, l], []) {i=3, j=3, k=3, l=3}, custom>} : (tensor<3x3xf32>) -> (tensor<3x3xf32>, tensor<i32>)
  return %0#0, %0#1 : tensor<3x3xf32>, tensor<i32>
}

// TRSM-LABEL: func.func @trsm
// TRSM-NEXT: stablehlo.custom_call @lapack_strsm_ffi
// TRSM-SAME: num_batch_dims = "1"
// TRSM-SAME: (tensor<4x3x3xf32>, tensor<4x3x2xf32>) -> tensor<4x3x2xf32>
// The matrix unbatched: never copied per lane; the lanes become columns.
// TRSM-RHS-LABEL: func.func @trsm
// TRSM-RHS-NOT: broadcast_in_dim
// TRSM-RHS: stablehlo.reshape %{{.*}} : (tensor<3x2x4xf32>) -> tensor<3x8xf32>
// TRSM-RHS: stablehlo.custom_call @lapack_strsm_ffi
// TRSM-RHS-SAME: num_batch_dims = "0"
// TRSM-RHS-SAME: (tensor<3x3xf32>, tensor<3x8xf32>) -> tensor<3x8xf32>
// TRSM-RHS: stablehlo.transpose %{{.*}}, dims = [2, 0, 1] : (tensor<3x2x4xf32>) -> tensor<4x3x2xf32>
func.func @trsm(%a: tensor<3x3xf32>, %b: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %0 = stablehlo.custom_call @lapack_strsm_ffi(%a, %b) {backend_config = "", mhlo.backend_config = {diag = 78 : ui8, side = 76 : ui8, trans_x = 78 : ui8, uplo = 76 : ui8}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [], operand_index = 1, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j], [k, l])->([m, n]) {i=3, j=3, k=3, l=2, m=3, n=2}, custom>} : (tensor<3x3xf32>, tensor<3x2xf32>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}

// MARKER-LABEL: func.func @marker
// MARKER-NEXT: stablehlo.custom_call @Sharding(%{{[^)]+}}) {mhlo.sharding = "{replicated}"} : (tensor<2x3xf32>) -> tensor<2x3xf32>
// MARKER-NEXT: return
func.func @marker(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.custom_call @Sharding(%x) {mhlo.sharding = "{replicated}"} : (tensor<3xf32>) -> tensor<3xf32>
  %1 = stablehlo.custom_call @Sharding(%0) {mhlo.sharding = "{devices=[2]<=[2]}"} : (tensor<3xf32>) -> tensor<3xf32>
  return %1 : tensor<3xf32>
}

// ASSERT-LABEL: func.func @assertion
// ASSERT-SAME: tensor<4xi32>) -> tensor<3xi32>
// ASSERT: stablehlo.reduce(%{{[^ ]+}} init: %{{[^)]+}}) applies stablehlo.minimum
// ASSERT: %[[ALL:.+]] = stablehlo.reduce(%{{[^ ]+}} init: %{{[^)]+}}) applies stablehlo.and
// ASSERT: stablehlo.dynamic_slice
// ASSERT: %[[LANE:.+]] = stablehlo.reshape %{{.*}} : (tensor<1xi32>) -> tensor<i32>
// ASSERT: stablehlo.custom_call @shape_assertion(%[[ALL]], %[[LANE]])
// ASSERT-SAME: (tensor<i1>, tensor<i32>) -> ()
func.func @assertion(%x: tensor<3xi32>, %n: tensor<i32>) -> tensor<3xi32> {
  %c = stablehlo.constant dense<0> : tensor<i32>
  %p = stablehlo.compare GE, %n, %c, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
  stablehlo.custom_call @shape_assertion(%p, %n) {api_version = 2 : i32, error_message = "n = {0} < 0", has_side_effect = true} : (tensor<i1>, tensor<i32>) -> ()
  return %x : tensor<3xi32>
}

// UNKNOWN: warning: 'stablehlo.custom_call @my_cpu_kernel' in function @unknown runs once per lane in a loop (custom call target @my_cpu_kernel has no batching rule;
// UNKNOWN-LABEL: func.func @unknown
// UNKNOWN: stablehlo.while
// UNKNOWN: stablehlo.custom_call @my_cpu_kernel(%{{[^)]+}}) : (tensor<3xf32>) -> tensor<3xf32>
func.func @unknown(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.custom_call @my_cpu_kernel(%x) : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// SDY-LABEL: func.func @constraint
// SDY-SAME: (%[[X:.+]]: tensor<2x4xf32>) -> tensor<2x4xf32>
// SDY-NOT: sdy.sharding_constraint
// SDY-NEXT: stablehlo.sine %[[X]] : tensor<2x4xf32>
func.func @constraint(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = sdy.sharding_constraint %x <@mesh, [{"x"}]> : tensor<4xf32>
  %1 = stablehlo.sine %0 : tensor<4xf32>
  return %1 : tensor<4xf32>
}
