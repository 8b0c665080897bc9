// GPU linear-algebra kernels as jax lowers them for `cuda` / `rocm`
// (jax.jit(f).trace(...).lower(lowering_platforms=("cuda",))), checked as IR
// only: they cannot run on this machine. Also TPU's LuDecomposition (its Qr
// and Eigh run on CPU: tests/rules/test_custom_calls.py). The CPU (LAPACK)
// kernels are in custom_calls.mlir. Each kernel takes leading batch dims, so a batched call gets one more: types, layouts (new dim most major),
// num_batch_dims and the sharding rule follow; backend configs and aliases
// stay (passes/rules/custom_calls.py).
//
// RUN: stablehlo-batch-opt %s --func=solve --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=SOLVE
// RUN: stablehlo-batch-opt %s --func=solve --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=SOLVE-RHS
// RUN: stablehlo-batch-opt %s --func=svd --axis-size=2 | filecheck %s --check-prefix=SVD
// RUN: stablehlo-batch-opt %s --func=qr --axis-size=2 | filecheck %s --check-prefix=QR
// RUN: stablehlo-batch-opt %s --func=eigh --axis-size=2 | filecheck %s --check-prefix=EIGH
// RUN: stablehlo-batch-opt %s --func=potrf --axis-size=2 | filecheck %s --check-prefix=POTRF
// RUN: stablehlo-batch-opt %s --func=eig --axis-size=2 | filecheck %s --check-prefix=EIG
// RUN: stablehlo-batch-opt %s --func=sytrd --axis-size=2 | filecheck %s --check-prefix=SYTRD
// RUN: stablehlo-batch-opt %s --func=gtsv --axis-size=2 --in-axes=none,0 | filecheck %s --check-prefix=GTSV
// RUN: stablehlo-batch-opt %s --func=hip_lu --axis-size=2 | filecheck %s --check-prefix=HIPLU
// RUN: stablehlo-batch-opt %s --func=hip_svd --axis-size=2 | filecheck %s --check-prefix=HIPSVD
// RUN: stablehlo-batch-opt %s --func=tpu_lu --axis-size=2 | filecheck %s --check-prefix=TPULU
// RUN: stablehlo-batch-opt %s --func=threefry --axis-size=2 --in-axes=0,0,none,none --strict | filecheck %s --check-prefix=THREEFRY
// RUN: stablehlo-batch-opt %s --func=tpu_approx_top_k --axis-size=2 --strict | filecheck %s --check-prefix=TPUTOPK
// RUN: not stablehlo-batch-opt %s --func=cholesky_update --axis-size=2 --strict 2>&1 | filecheck %s --check-prefix=CHUPD

// jnp.linalg.solve for cuda, as lowered: getrf + lu_pivots_to_permutation
// custom calls and two stablehlo.triangular_solve.
// SOLVE-LABEL: func.func @solve
// SOLVE-SAME: (%{{[^:]+}}: tensor<4x3x3xf32>, %{{[^:]+}}: tensor<4x3xf32>) -> tensor<4x3xf32>
// SOLVE: stablehlo.custom_call @cusolver_getrf_ffi
// SOLVE-SAME: mhlo.frontend_attributes = {num_batch_dims = "1"}
// SOLVE-SAME: operand_layouts = [dense<[1, 2, 0]> : tensor<3xindex>]
// SOLVE-SAME: result_layouts = [dense<[1, 2, 0]> : tensor<3xindex>, dense<[1, 0]> : tensor<2xindex>, dense<0> : tensor<1xindex>]
// SOLVE-SAME: sdy.sharding_rule = #sdy.op_sharding_rule<([i, j, k])->([i, l, m], [i, n], [i]) {i=4, j=3, k=3, l=3, m=3, n=3}, custom>
// SOLVE-SAME: (tensor<4x3x3xf32>) -> (tensor<4x3x3xf32>, tensor<4x3xi32>, tensor<4xi32>)
// SOLVE: stablehlo.custom_call @cu_lu_pivots_to_permutation
// SOLVE-SAME: num_batch_dims = "1"
// SOLVE-SAME: operand_layouts = [dense<[1, 0]> : tensor<2xindex>], result_layouts = [dense<[1, 0]> : tensor<2xindex>]
// SOLVE-SAME: sdy.sharding_rule = #sdy.op_sharding_rule<([i, j])->([i, k]) {i=4, j=3, k=3}, custom>
// SOLVE-SAME: (tensor<4x3xi32>) -> tensor<4x3xi32>
// SOLVE: "stablehlo.triangular_solve"{{.*}}unit_diagonal = true{{.*}} : (tensor<4x3x3xf32>, tensor<4x3x1xf32>) -> tensor<4x3x1xf32>
// SOLVE: "stablehlo.triangular_solve"{{.*}}unit_diagonal = false{{.*}} : (tensor<4x3x3xf32>, tensor<4x3x1xf32>) -> tensor<4x3x1xf32>

// Only the right-hand side batched: the factorization stays unbatched and
// runs once; the lanes become columns of the two triangular solves.
// SOLVE-RHS-LABEL: func.func @solve
// SOLVE-RHS-SAME: (%{{[^:]+}}: tensor<3x3xf32>, %{{[^:]+}}: tensor<4x3xf32>) -> tensor<4x3xf32>
// SOLVE-RHS: stablehlo.custom_call @cusolver_getrf_ffi
// SOLVE-RHS-SAME: num_batch_dims = "0"
// SOLVE-RHS-SAME: (tensor<3x3xf32>) -> (tensor<3x3xf32>, tensor<3xi32>, tensor<i32>)
// SOLVE-RHS: stablehlo.custom_call @cu_lu_pivots_to_permutation
// SOLVE-RHS-SAME: (tensor<3xi32>) -> tensor<3xi32>
// SOLVE-RHS: "stablehlo.triangular_solve"{{.*}} : (tensor<3x3xf32>, tensor<3x4xf32>) -> tensor<3x4xf32>
// SOLVE-RHS: "stablehlo.triangular_solve"{{.*}} : (tensor<3x3xf32>, tensor<3x4xf32>) -> tensor<3x4xf32>
// SOLVE-RHS-NOT: tensor<4x3x3xf32>
func.func @solve(%arg0: tensor<3x3xf32>, %arg1: tensor<3xf32>) -> tensor<3xf32> {
  %0:3 = stablehlo.custom_call @cusolver_getrf_ffi(%arg0) {backend_config = "", mhlo.backend_config = {}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<0> : tensor<1xindex>, dense<> : tensor<0xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j])->([k, l], [m], []) {i=3, j=3, k=3, l=3, m=3}, custom>} : (tensor<3x3xf32>) -> (tensor<3x3xf32>, tensor<3xi32>, tensor<i32>)
  %c = stablehlo.constant dense<1> : tensor<i32>
  %1 = stablehlo.broadcast_in_dim %c, dims = [] : (tensor<i32>) -> tensor<3xi32>
  %2 = stablehlo.subtract %0#1, %1 : tensor<3xi32>
  %c_0 = stablehlo.constant dense<0> : tensor<i32>
  %3 = stablehlo.broadcast_in_dim %c_0, dims = [] : (tensor<i32>) -> tensor<i32>
  %4 = stablehlo.compare GE, %0#2, %3, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
  %5 = stablehlo.broadcast_in_dim %4, dims = [] : (tensor<i1>) -> tensor<1x1xi1>
  %cst = stablehlo.constant dense<0x7FC00000> : tensor<f32>
  %6 = stablehlo.broadcast_in_dim %cst, dims = [] : (tensor<f32>) -> tensor<3x3xf32>
  %7 = stablehlo.broadcast_in_dim %5, dims = [0, 1] : (tensor<1x1xi1>) -> tensor<3x3xi1>
  %8 = stablehlo.select %7, %0#0, %6 : tensor<3x3xi1>, tensor<3x3xf32>
  %9 = stablehlo.custom_call @cu_lu_pivots_to_permutation(%2) {backend_config = "", mhlo.backend_config = {}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<0> : tensor<1xindex>], result_layouts = [dense<0> : tensor<1xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i])->([j]) {i=3, j=3}, custom>} : (tensor<3xi32>) -> tensor<3xi32>
  %10 = stablehlo.broadcast_in_dim %arg1, dims = [0] : (tensor<3xf32>) -> tensor<3x1xf32>
  %c_1 = stablehlo.constant dense<0> : tensor<i32>
  %11 = stablehlo.broadcast_in_dim %c_1, dims = [] : (tensor<i32>) -> tensor<3xi32>
  %12 = stablehlo.compare LT, %9, %11, SIGNED : (tensor<3xi32>, tensor<3xi32>) -> tensor<3xi1>
  %c_2 = stablehlo.constant dense<3> : tensor<i32>
  %13 = stablehlo.broadcast_in_dim %c_2, dims = [] : (tensor<i32>) -> tensor<3xi32>
  %14 = stablehlo.add %9, %13 : tensor<3xi32>
  %15 = stablehlo.select %12, %14, %9 : tensor<3xi1>, tensor<3xi32>
  %16 = stablehlo.broadcast_in_dim %15, dims = [0] : (tensor<3xi32>) -> tensor<3x1xi32>
  %17 = "stablehlo.gather"(%10, %16) <{dimension_numbers = #stablehlo.gather<offset_dims = [1], collapsed_slice_dims = [0], start_index_map = [0], index_vector_dim = 1>, indices_are_sorted = false, slice_sizes = array<i64: 1, 1>}> : (tensor<3x1xf32>, tensor<3x1xi32>) -> tensor<3x1xf32>
  %18 = "stablehlo.triangular_solve"(%8, %17) <{left_side = true, lower = true, transpose_a = #stablehlo<transpose NO_TRANSPOSE>, unit_diagonal = true}> : (tensor<3x3xf32>, tensor<3x1xf32>) -> tensor<3x1xf32>
  %19 = "stablehlo.triangular_solve"(%8, %18) <{left_side = true, lower = false, transpose_a = #stablehlo<transpose NO_TRANSPOSE>, unit_diagonal = false}> : (tensor<3x3xf32>, tensor<3x1xf32>) -> tensor<3x1xf32>
  %20 = stablehlo.reshape %19 : (tensor<3x1xf32>) -> tensor<3xf32>
  return %20 : tensor<3xf32>
}

// SVD-LABEL: func.func @svd
// SVD-NEXT: stablehlo.custom_call @cusolver_gesvdj_ffi
// SVD-SAME: mhlo.backend_config = {compute_uv = true, full_matrices = true}
// SVD-SAME: num_batch_dims = "1"
// SVD-SAME: output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>]
// SVD-SAME: result_layouts = [dense<[1, 2, 0]> : tensor<3xindex>, dense<[1, 0]> : tensor<2xindex>, dense<[1, 2, 0]> : tensor<3xindex>, dense<[1, 2, 0]> : tensor<3xindex>, dense<0> : tensor<1xindex>]
// SVD-SAME: sdy.sharding_rule = #sdy.op_sharding_rule<([i, j, k])->([i, l, m], [i, n], [i, o, p], [i, q, r], [i]) {i=2, j=4, k=3, l=4, m=3, n=3, o=4, p=4, q=3, r=3}, custom>
// SVD-SAME: (tensor<2x4x3xf32>) -> (tensor<2x4x3xf32>, tensor<2x3xf32>, tensor<2x4x4xf32>, tensor<2x3x3xf32>, tensor<2xi32>)
func.func @svd(%arg0: tensor<4x3xf32>) -> (tensor<3xf32>, tensor<4x4xf32>, tensor<3x3xf32>, tensor<i32>) {
  %0:5 = stablehlo.custom_call @cusolver_gesvdj_ffi(%arg0) {backend_config = "", mhlo.backend_config = {compute_uv = true, full_matrices = true}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<0> : tensor<1xindex>, dense<[0, 1]> : tensor<2xindex>, dense<[0, 1]> : tensor<2xindex>, dense<> : tensor<0xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j])->([k, l], [m], [n, o], [p, q], []) {i=4, j=3, k=4, l=3, m=3, n=4, o=4, p=3, q=3}, custom>} : (tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<3xf32>, tensor<4x4xf32>, tensor<3x3xf32>, tensor<i32>)
  return %0#1, %0#2, %0#3, %0#4 : tensor<3xf32>, tensor<4x4xf32>, tensor<3x3xf32>, tensor<i32>
}

// QR-LABEL: func.func @qr
// QR-NEXT: %[[F:.+]]:2 = stablehlo.custom_call @cusolver_geqrf_ffi
// QR-SAME: num_batch_dims = "1"
// QR-SAME: (tensor<2x4x3xf32>) -> (tensor<2x4x3xf32>, tensor<2x3xf32>)
// QR-NEXT: stablehlo.custom_call @cusolver_orgqr_ffi(%[[F]]#0, %[[F]]#1)
// QR-SAME: num_batch_dims = "1"
// QR-SAME: operand_layouts = [dense<[1, 2, 0]> : tensor<3xindex>, dense<[1, 0]> : tensor<2xindex>]
// QR-SAME: sdy.sharding_rule = #sdy.op_sharding_rule<([i, j, k], [i, l])->([i, m, n]) {i=2, j=4, k=3, l=3, m=4, n=3}, custom>
// QR-SAME: (tensor<2x4x3xf32>, tensor<2x3xf32>) -> tensor<2x4x3xf32>
func.func @qr(%arg0: tensor<4x3xf32>) -> tensor<4x3xf32> {
  %0:2 = stablehlo.custom_call @cusolver_geqrf_ffi(%arg0) {backend_config = "", mhlo.backend_config = {}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<0> : tensor<1xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j])->([k, l], [m]) {i=4, j=3, k=4, l=3, m=3}, custom>} : (tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<3xf32>)
  %1 = stablehlo.custom_call @cusolver_orgqr_ffi(%0#0, %0#1) {backend_config = "", mhlo.backend_config = {}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<0> : tensor<1xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j], [k])->([l, m]) {i=4, j=3, k=3, l=4, m=3}, custom>} : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
  return %1 : tensor<4x3xf32>
}

// EIGH-LABEL: func.func @eigh
// EIGH-NEXT: stablehlo.custom_call @cusolver_syevd_ffi
// EIGH-SAME: mhlo.backend_config = {algorithm = 0 : ui8, lower = true}
// EIGH-SAME: num_batch_dims = "1"
// EIGH-SAME: (tensor<2x4x4xcomplex<f32>>) -> (tensor<2x4x4xcomplex<f32>>, tensor<2x4xf32>, tensor<2xi32>)
func.func @eigh(%arg0: tensor<4x4xcomplex<f32>>) -> (tensor<4x4xcomplex<f32>>, tensor<4xf32>, tensor<i32>) {
  %0:3 = stablehlo.custom_call @cusolver_syevd_ffi(%arg0) {backend_config = "", mhlo.backend_config = {algorithm = 0 : ui8, lower = true}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<0> : tensor<1xindex>, dense<> : tensor<0xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j])->([k, l], [m], []) {i=4, j=4, k=4, l=4, m=4}, custom>} : (tensor<4x4xcomplex<f32>>) -> (tensor<4x4xcomplex<f32>>, tensor<4xf32>, tensor<i32>)
  return %0#0, %0#1, %0#2 : tensor<4x4xcomplex<f32>>, tensor<4xf32>, tensor<i32>
}

// POTRF-LABEL: func.func @potrf
// POTRF-NEXT: stablehlo.custom_call @cusolver_potrf_ffi
// POTRF-SAME: mhlo.backend_config = {lower = true}
// POTRF-SAME: num_batch_dims = "2"
// POTRF-SAME: operand_layouts = [dense<[2, 3, 1, 0]> : tensor<4xindex>]
// POTRF-SAME: (tensor<2x5x4x4xf64>) -> (tensor<2x5x4x4xf64>, tensor<2x5xi32>)
func.func @potrf(%arg0: tensor<5x4x4xf64>) -> (tensor<5x4x4xf64>, tensor<5xi32>) {
  %0:2 = stablehlo.custom_call @cusolver_potrf_ffi(%arg0) {backend_config = "", mhlo.backend_config = {lower = true}, mhlo.frontend_attributes = {num_batch_dims = "1"}, operand_layouts = [dense<[1, 2, 0]> : tensor<3xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[1, 2, 0]> : tensor<3xindex>, dense<0> : tensor<1xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j, k])->([i, l, m], [i]) {i=5, j=4, k=4, l=4, m=4}, custom>} : (tensor<5x4x4xf64>) -> (tensor<5x4x4xf64>, tensor<5xi32>)
  return %0#0, %0#1 : tensor<5x4x4xf64>, tensor<5xi32>
}

// EIG-LABEL: func.func @eig(
// EIG-NEXT: stablehlo.custom_call @cuhybrid_eig_real
// EIG-SAME: mhlo.backend_config = {left = false, magma = "auto", right = true}
// EIG-SAME: num_batch_dims = "1"
// EIG-SAME: (tensor<2x4x4xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4x4xcomplex<f32>>, tensor<2x4x4xcomplex<f32>>, tensor<2xi32>)
func.func @eig(%arg0: tensor<4x4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4x4xcomplex<f32>>, tensor<i32>) {
  %0:5 = stablehlo.custom_call @cuhybrid_eig_real(%arg0) {backend_config = "", mhlo.backend_config = {left = false, magma = "auto", right = true}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>], result_layouts = [dense<0> : tensor<1xindex>, dense<0> : tensor<1xindex>, dense<[0, 1]> : tensor<2xindex>, dense<[0, 1]> : tensor<2xindex>, dense<> : tensor<0xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j])->([k], [l], [m, n], [o, p], []) {i=4, j=4, k=4, l=4, m=4, n=4, o=4, p=4}, custom>} : (tensor<4x4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4x4xcomplex<f32>>, tensor<4x4xcomplex<f32>>, tensor<i32>)
  return %0#0, %0#1, %0#3, %0#4 : tensor<4xf32>, tensor<4xf32>, tensor<4x4xcomplex<f32>>, tensor<i32>
}

// SYTRD-LABEL: func.func @sytrd
// SYTRD-NEXT: stablehlo.custom_call @cusolver_sytrd_ffi
// SYTRD-SAME: sdy.sharding_rule = #sdy.op_sharding_rule<([i, j, k])->([i, l, m], [i, n], [i, o], [i, p], [i]) {i=2, j=4, k=4, l=4, m=4, n=4, o=3, p=3}, custom>
// SYTRD-SAME: (tensor<2x4x4xf32>) -> (tensor<2x4x4xf32>, tensor<2x4xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2xi32>)
func.func @sytrd(%arg0: tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<i32>) {
  %0:5 = stablehlo.custom_call @cusolver_sytrd_ffi(%arg0) {backend_config = "", mhlo.backend_config = {lower = true}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<0> : tensor<1xindex>, dense<0> : tensor<1xindex>, dense<0> : tensor<1xindex>, dense<> : tensor<0xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j])->([k, l], [m], [n], [o], []) {i=4, j=4, k=4, l=4, m=4, n=3, o=3}, custom>} : (tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<i32>)
  return %0#0, %0#1, %0#2, %0#3, %0#4 : tensor<4x4xf32>, tensor<4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<i32>
}

// Batched right-hand side, unbatched diagonals: the diagonals are broadcast
// (the kernel needs equal batch dims).
// GTSV-LABEL: func.func @gtsv
// GTSV-SAME: (%[[D:[^:]+]]: tensor<4xf32>, %[[B:[^:]+]]: tensor<2x4x3xf32>)
// GTSV: %[[DB:.+]] = stablehlo.broadcast_in_dim %[[D]], dims = [1] : (tensor<4xf32>) -> tensor<2x4xf32>
// GTSV: stablehlo.custom_call @cusparse_gtsv2_ffi(%[[DB]], %[[DB]], %[[DB]], %[[B]])
// GTSV-SAME: operand_layouts = [dense<[1, 0]> : tensor<2xindex>, dense<[1, 0]> : tensor<2xindex>, dense<[1, 0]> : tensor<2xindex>, dense<[1, 2, 0]> : tensor<3xindex>]
// GTSV-SAME: output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [], operand_index = 3, operand_tuple_indices = []>]
// GTSV-SAME: (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4x3xf32>) -> tensor<2x4x3xf32>
func.func @gtsv(%arg0: tensor<4xf32>, %arg1: tensor<4x3xf32>) -> tensor<4x3xf32> {
  %0 = stablehlo.custom_call @cusparse_gtsv2_ffi(%arg0, %arg0, %arg0, %arg1) {backend_config = "", mhlo.backend_config = {}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<0> : tensor<1xindex>, dense<0> : tensor<1xindex>, dense<0> : tensor<1xindex>, dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [], operand_index = 3, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i], [j], [k], [l, m])->([n, o]) {i=4, j=4, k=4, l=4, m=3, n=4, o=3}, custom>} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4x3xf32>) -> tensor<4x3xf32>
  return %0 : tensor<4x3xf32>
}

// ROCm: hipSOLVER targets.
// HIPLU-LABEL: func.func @hip_lu
// HIPLU-NEXT: %[[LU:.+]]:3 = stablehlo.custom_call @hipsolver_getrf_ffi
// HIPLU-SAME: num_batch_dims = "1"
// HIPLU-SAME: (tensor<2x4x4xf32>) -> (tensor<2x4x4xf32>, tensor<2x4xi32>, tensor<2xi32>)
// HIPLU-NEXT: stablehlo.custom_call @hip_lu_pivots_to_permutation(%[[LU]]#1)
// HIPLU-SAME: num_batch_dims = "1"
// HIPLU-SAME: (tensor<2x4xi32>) -> tensor<2x4xi32>
func.func @hip_lu(%arg0: tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4xi32>) {
  %0:3 = stablehlo.custom_call @hipsolver_getrf_ffi(%arg0) {backend_config = "", mhlo.backend_config = {}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<0> : tensor<1xindex>, dense<> : tensor<0xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j])->([k, l], [m], []) {i=4, j=4, k=4, l=4, m=4}, custom>} : (tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4xi32>, tensor<i32>)
  %1 = stablehlo.custom_call @hip_lu_pivots_to_permutation(%0#1) {backend_config = "", mhlo.backend_config = {}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<0> : tensor<1xindex>], result_layouts = [dense<0> : tensor<1xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i])->([j]) {i=4, j=4}, custom>} : (tensor<4xi32>) -> tensor<4xi32>
  return %0#0, %1 : tensor<4x4xf32>, tensor<4xi32>
}

// HIPSVD-LABEL: func.func @hip_svd
// HIPSVD-NEXT: stablehlo.custom_call @hipsolver_gesvdj_ffi
// HIPSVD-SAME: num_batch_dims = "1"
// HIPSVD-SAME: (tensor<2x4x3xf32>) -> (tensor<2x4x3xf32>, tensor<2x3xf32>, tensor<2x4x4xf32>, tensor<2x3x3xf32>, tensor<2xi32>)
func.func @hip_svd(%arg0: tensor<4x3xf32>) -> tensor<3xf32> {
  %0:5 = stablehlo.custom_call @hipsolver_gesvdj_ffi(%arg0) {backend_config = "", mhlo.backend_config = {compute_uv = true, full_matrices = true}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<0> : tensor<1xindex>, dense<[0, 1]> : tensor<2xindex>, dense<[0, 1]> : tensor<2xindex>, dense<> : tensor<0xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j])->([k, l], [m], [n, o], [p, q], []) {i=4, j=3, k=4, l=3, m=3, n=4, o=4, p=3, q=3}, custom>} : (tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<3xf32>, tensor<4x4xf32>, tensor<3x3xf32>, tensor<i32>)
  return %0#1 : tensor<3xf32>
}

// TPU: XLA's own LU custom call, no layouts or frontend attributes to update.
// TPULU-LABEL: func.func @tpu_lu
// TPULU-NEXT: stablehlo.custom_call @LuDecomposition(%{{.*}}) {api_version = 2 : i32, backend_config = ""} : (tensor<2x4x4xf32>) -> (tensor<2x4x4xf32>, tensor<2x4xi32>, tensor<2x4xi32>)
func.func @tpu_lu(%arg0: tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4xi32>, tensor<4xi32>) {
  %0:3 = stablehlo.custom_call @LuDecomposition(%arg0) {api_version = 2 : i32, backend_config = ""} : (tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4xi32>, tensor<4xi32>)
  return %0#0, %0#1, %0#2 : tensor<4x4xf32>, tensor<4xi32>, tensor<4xi32>
}

// cu_cholesky_update_ffi is not a batched kernel (jax marks the primitive
// supports_batching=False): no vectorized rule.
// CHUPD: error: {{.*}}cu_cholesky_update_ffi
func.func @cholesky_update(%arg0: tensor<4x4xf32>, %arg1: tensor<4xf32>) -> tensor<4x4xf32> {
  %0:2 = stablehlo.custom_call @cu_cholesky_update_ffi(%arg0, %arg1) {api_version = 4 : i32, output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>, #stablehlo.output_operand_alias<output_tuple_indices = [1], operand_index = 1, operand_tuple_indices = []>]} : (tensor<4x4xf32>, tensor<4xf32>) -> (tensor<4x4xf32>, tensor<4xf32>)
  return %0#0 : tensor<4x4xf32>
}

// The GPU threefry kernel (jax_threefry_gpu_kernel_lowering) is elementwise
// over four same-shape operands: the unbatched counters are copied per lane
// and the call takes the batch as one more (most major) dim.
// THREEFRY-LABEL: func.func @threefry
// THREEFRY-SAME: (%[[K0:[^:]+]]: tensor<2x3xui32>, %[[K1:[^:]+]]: tensor<2x3xui32>, %[[X0:[^:]+]]: tensor<3xui32>, %[[X1:[^:]+]]: tensor<3xui32>)
// THREEFRY-DAG: %[[B0:.+]] = stablehlo.broadcast_in_dim %[[X0]], dims = [1] : (tensor<3xui32>) -> tensor<2x3xui32>
// THREEFRY-DAG: %[[B1:.+]] = stablehlo.broadcast_in_dim %[[X1]], dims = [1] : (tensor<3xui32>) -> tensor<2x3xui32>
// THREEFRY: stablehlo.custom_call @cu_threefry2x32_ffi(%[[K0]], %[[K1]], %[[B0]], %[[B1]])
// THREEFRY-SAME: operand_layouts = [dense<[1, 0]> : tensor<2xindex>, dense<[1, 0]> : tensor<2xindex>, dense<[1, 0]> : tensor<2xindex>, dense<[1, 0]> : tensor<2xindex>]
// THREEFRY-SAME: -> (tensor<2x3xui32>, tensor<2x3xui32>)
func.func @threefry(%k0: tensor<3xui32>, %k1: tensor<3xui32>, %x0: tensor<3xui32>, %x1: tensor<3xui32>) -> (tensor<3xui32>, tensor<3xui32>) {
  %0:2 = stablehlo.custom_call @cu_threefry2x32_ffi(%k0, %k1, %x0, %x1) {backend_config = "", mhlo.backend_config = {}, operand_layouts = [dense<0> : tensor<1xindex>, dense<0> : tensor<1xindex>, dense<0> : tensor<1xindex>, dense<0> : tensor<1xindex>], result_layouts = [dense<0> : tensor<1xindex>, dense<0> : tensor<1xindex>]} : (tensor<3xui32>, tensor<3xui32>, tensor<3xui32>, tensor<3xui32>) -> (tensor<3xui32>, tensor<3xui32>)
  return %0#0, %0#1 : tensor<3xui32>, tensor<3xui32>
}

// TPU's ApproxTopK (no is_fallback: XLA's approximate TPU algorithm): the same
// rule as on CPU, reduction_dim one further.
// TPUTOPK-LABEL: func.func @tpu_approx_top_k
// TPUTOPK: stablehlo.custom_call @ApproxTopK
// TPUTOPK-SAME: reduction_dim = 2 : i64
// TPUTOPK-SAME: (tensor<2x3x16xbf16>, tensor<2x3x16xi32>, tensor<bf16>, tensor<i32>) -> (tensor<2x3x4xbf16>, tensor<2x3x4xi32>)
func.func private @top_k_gt_bf16_comparator(%arg0: tensor<bf16>, %arg1: tensor<bf16>, %arg2: tensor<i32>, %arg3: tensor<i32>) -> tensor<i1> {
  %0 = stablehlo.compare GT, %arg0, %arg1 : (tensor<bf16>, tensor<bf16>) -> tensor<i1>
  return %0 : tensor<i1>
}
func.func @tpu_approx_top_k(%arg0: tensor<3x16xbf16>) -> (tensor<3x4xbf16>, tensor<3x4xi32>) {
  %0 = stablehlo.iota dim = 1 : tensor<3x16xi32>
  %c = stablehlo.constant dense<-1> : tensor<i32>
  %cst = stablehlo.constant dense<0xFF80> : tensor<bf16>
  %1:2 = stablehlo.custom_call @ApproxTopK(%arg0, %0, %cst, %c) {called_computations = [@top_k_gt_bf16_comparator], mhlo.backend_config = {aggregate_to_topk = true, recall_target = 0.949999988 : f32, reduction_dim = 1 : i64, reduction_input_size_override = -1 : i64, top_k = 4 : i64}} : (tensor<3x16xbf16>, tensor<3x16xi32>, tensor<bf16>, tensor<i32>) -> (tensor<3x4xbf16>, tensor<3x4xi32>)
  return %1#0, %1#1 : tensor<3x4xbf16>, tensor<3x4xi32>
}
