// Linear algebra: cholesky, triangular_solve, batch_norm_* (passes/rules/linalg.py)
// and the CPU LAPACK custom calls and shape assertions (passes/rules/custom_calls.py).
//
// RUN: stablehlo-batch-opt %s --func=cholesky --axis-size=4 | filecheck %s --check-prefix=CHOL
// RUN: stablehlo-batch-opt %s --func=trsm_left --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=TS-LB
// RUN: stablehlo-batch-opt %s --func=trsm_right --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=TS-RB
// RUN: stablehlo-batch-opt %s --func=trsm_left --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=TS-A
// RUN: stablehlo-batch-opt %s --func=trsm_left --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=TS-AB
// RUN: stablehlo-batch-opt %s --func=trsm_left --axis-size=b --in-axes=none,0 | filecheck %s --check-prefix=TS-SYM
// RUN: stablehlo-batch-opt %s --func=bn_inference --axis-size=4 --in-axes=0,none,none,none,none | filecheck %s --check-prefix=BNI-X
// RUN: stablehlo-batch-opt %s --func=bn_inference --axis-size=4 --in-axes=0,0,none,none,none | filecheck %s --check-prefix=BNI-S
// RUN: stablehlo-batch-opt %s --func=bn_training --axis-size=4 --in-axes=0,none,none | filecheck %s --check-prefix=BNT
// RUN: stablehlo-batch-opt %s --func=bn_grad --axis-size=4 --in-axes=none,none,none,none,0 | filecheck %s --check-prefix=BNG
// RUN: stablehlo-batch-opt %s --func=getrf --axis-size=4 | filecheck %s --check-prefix=GETRF
// RUN: stablehlo-batch-opt %s --func=lapack_trsm --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=LTRSM-B
// RUN: stablehlo-batch-opt %s --func=lapack_trsm --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=LTRSM-A
// RUN: stablehlo-batch-opt %s --func=gesdd --axis-size=4 | filecheck %s --check-prefix=GESDD
// RUN: stablehlo-batch-opt %s --func=shape_assertion --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=ASSERT
// RUN: stablehlo-batch-opt %s --func=shape_assertion --axis-size=0 --in-axes=0,0 | filecheck %s --check-prefix=ASSERT0
// RUN: not stablehlo-batch-opt %s --func=legacy_getrf --axis-size=4 --strict 2>&1 | filecheck %s --check-prefix=LEGACY

// CHOL-LABEL: func.func @cholesky
// CHOL-SAME: (%[[A:[^:]+]]: tensor<4x2x3x3xf32>) -> tensor<4x2x3x3xf32>
// CHOL-NEXT: stablehlo.cholesky %[[A]], lower = true : tensor<4x2x3x3xf32>
// CHOL-NEXT: return
func.func @cholesky(%a: tensor<2x3x3xf32>) -> tensor<2x3x3xf32> {
  %0 = stablehlo.cholesky %a, lower = true : tensor<2x3x3xf32>
  return %0 : tensor<2x3x3xf32>
}

// Only the right-hand side batched: the matrix stays 3x3 and the lanes
// become columns of one solve ([3, 2, 4] -> [3, 8], lane-minor).
// TS-LB-LABEL: func.func @trsm_left
// TS-LB-SAME: (%[[A:[^:]+]]: tensor<3x3xf32>, %[[B:[^:]+]]: tensor<4x3x2xf32>) -> tensor<4x3x2xf32>
// TS-LB-NEXT: %[[T:.+]] = stablehlo.transpose %[[B]], dims = [1, 2, 0] : (tensor<4x3x2xf32>) -> tensor<3x2x4xf32>
// TS-LB-NEXT: %[[F:.+]] = stablehlo.reshape %[[T]] : (tensor<3x2x4xf32>) -> tensor<3x8xf32>
// TS-LB-NEXT: %[[X:.+]] = "stablehlo.triangular_solve"(%[[A]], %[[F]]) <{left_side = true, lower = true, transpose_a = #stablehlo<transpose TRANSPOSE>, unit_diagonal = true}> : (tensor<3x3xf32>, tensor<3x8xf32>) -> tensor<3x8xf32>
// TS-LB-NEXT: %[[U:.+]] = stablehlo.reshape %[[X]] : (tensor<3x8xf32>) -> tensor<3x2x4xf32>
// TS-LB-NEXT: stablehlo.transpose %[[U]], dims = [2, 0, 1] : (tensor<3x2x4xf32>) -> tensor<4x3x2xf32>
// TS-LB-NEXT: return

// With the matrix batched, the right-hand side is broadcast and the solve
// gets a batch dim.
// TS-A-LABEL: func.func @trsm_left
// TS-A-SAME: (%[[A:[^:]+]]: tensor<4x3x3xf32>, %[[B:[^:]+]]: tensor<3x2xf32>)
// TS-A-NEXT: %[[BB:.+]] = stablehlo.broadcast_in_dim %[[B]], dims = [1, 2] : (tensor<3x2xf32>) -> tensor<4x3x2xf32>
// TS-A-NEXT: "stablehlo.triangular_solve"(%[[A]], %[[BB]]) <{left_side = true, lower = true, transpose_a = #stablehlo<transpose TRANSPOSE>, unit_diagonal = true}> : (tensor<4x3x3xf32>, tensor<4x3x2xf32>) -> tensor<4x3x2xf32>

// TS-AB-LABEL: func.func @trsm_left
// TS-AB-NOT: broadcast_in_dim
// TS-AB: "stablehlo.triangular_solve"(%{{.*}}, %{{.*}}) {{.*}} : (tensor<4x3x3xf32>, tensor<4x3x2xf32>) -> tensor<4x3x2xf32>
// A symbolic batch size cannot become a static column count: the matrix is
// broadcast to the lanes instead.
// TS-SYM-LABEL: func.func @trsm_left
// TS-SYM-SAME: (%[[A:[^:]+]]: tensor<3x3xf32>, %[[B:[^:]+]]: tensor<?x3x2xf32>) -> tensor<?x3x2xf32>
// TS-SYM: %[[AB:.+]] = stablehlo.dynamic_broadcast_in_dim %[[A]]
// TS-SYM: "stablehlo.triangular_solve"(%[[AB]], %[[B]]) {{.*}} : (tensor<?x3x3xf32>, tensor<?x3x2xf32>) -> tensor<?x3x2xf32>
func.func @trsm_left(%a: tensor<3x3xf32>, %b: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %0 = "stablehlo.triangular_solve"(%a, %b) {left_side = true, lower = true, unit_diagonal = true, transpose_a = #stablehlo<transpose TRANSPOSE>} : (tensor<3x3xf32>, tensor<3x2xf32>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}

// Right side, with a batch dim of its own: lanes become rows,
// [5, 2, 3] (x4 lanes) -> [5, 2, 4, 3] -> [5, 8, 3].
// TS-RB-LABEL: func.func @trsm_right
// TS-RB-SAME: (%[[A:[^:]+]]: tensor<5x3x3xf64>, %[[B:[^:]+]]: tensor<4x5x2x3xf64>)
// TS-RB-NEXT: stablehlo.transpose %[[B]], dims = [1, 2, 0, 3] : (tensor<4x5x2x3xf64>) -> tensor<5x2x4x3xf64>
// TS-RB-NEXT: stablehlo.reshape %{{.*}} : (tensor<5x2x4x3xf64>) -> tensor<5x8x3xf64>
// TS-RB-NEXT: "stablehlo.triangular_solve"(%[[A]], %{{.*}}) {{.*}}left_side = false{{.*}} : (tensor<5x3x3xf64>, tensor<5x8x3xf64>) -> tensor<5x8x3xf64>
// TS-RB-NEXT: stablehlo.reshape %{{.*}} : (tensor<5x8x3xf64>) -> tensor<5x2x4x3xf64>
// TS-RB-NEXT: stablehlo.transpose %{{.*}}, dims = [2, 0, 1, 3] : (tensor<5x2x4x3xf64>) -> tensor<4x5x2x3xf64>
func.func @trsm_right(%a: tensor<5x3x3xf64>, %b: tensor<5x2x3xf64>) -> tensor<5x2x3xf64> {
  %0 = "stablehlo.triangular_solve"(%a, %b) {left_side = false, lower = false, unit_diagonal = false, transpose_a = #stablehlo<transpose NO_TRANSPOSE>} : (tensor<5x3x3xf64>, tensor<5x2x3xf64>) -> tensor<5x2x3xf64>
  return %0 : tensor<5x2x3xf64>
}

// Only the operand batched: the feature index moves, the per-feature
// vectors stay unbatched.
// BNI-X-LABEL: func.func @bn_inference
// BNI-X-SAME: (%[[X:[^:]+]]: tensor<4x2x3x5xf32>, %[[S:[^:]+]]: tensor<3xf32>, %[[O:[^:]+]]: tensor<3xf32>, %[[M:[^:]+]]: tensor<3xf32>, %[[V:[^:]+]]: tensor<3xf32>)
// BNI-X-NEXT: "stablehlo.batch_norm_inference"(%[[X]], %[[S]], %[[O]], %[[M]], %[[V]]) <{epsilon = 1.000000e-03 : f32, feature_index = 2 : i64}> : (tensor<4x2x3x5xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<4x2x3x5xf32>
// BNI-X-NEXT: return

// A per-lane scale: lanes fold into the feature dim (feature b*3+f).
// BNI-S-LABEL: func.func @bn_inference
// BNI-S-SAME: (%[[X:[^:]+]]: tensor<4x2x3x5xf32>, %[[S:[^:]+]]: tensor<4x3xf32>
// BNI-S: stablehlo.transpose %[[X]], dims = [1, 0, 2, 3] : (tensor<4x2x3x5xf32>) -> tensor<2x4x3x5xf32>
// BNI-S: stablehlo.reshape %{{.*}} : (tensor<2x4x3x5xf32>) -> tensor<2x12x5xf32>
// BNI-S: stablehlo.reshape %[[S]] : (tensor<4x3xf32>) -> tensor<12xf32>
// BNI-S: "stablehlo.batch_norm_inference"({{.*}}) <{epsilon = 1.000000e-03 : f32, feature_index = 1 : i64}> : (tensor<2x12x5xf32>, tensor<12xf32>, tensor<12xf32>, tensor<12xf32>, tensor<12xf32>) -> tensor<2x12x5xf32>
// BNI-S: stablehlo.reshape %{{.*}} : (tensor<2x12x5xf32>) -> tensor<2x4x3x5xf32>
// BNI-S: stablehlo.transpose %{{.*}}, dims = [1, 0, 2, 3] : (tensor<2x4x3x5xf32>) -> tensor<4x2x3x5xf32>
func.func @bn_inference(%x: tensor<2x3x5xf32>, %s: tensor<3xf32>, %o: tensor<3xf32>, %m: tensor<3xf32>, %v: tensor<3xf32>) -> tensor<2x3x5xf32> {
  %0 = "stablehlo.batch_norm_inference"(%x, %s, %o, %m, %v) {epsilon = 1.0e-3 : f32, feature_index = 1 : i64} : (tensor<2x3x5xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<2x3x5xf32>
  return %0 : tensor<2x3x5xf32>
}

// Training statistics are per lane: lanes fold into the features even when
// only the operand is batched; a feature index of 0 needs no transpose.
// BNT-LABEL: func.func @bn_training
// BNT-SAME: (%[[X:[^:]+]]: tensor<4x3x6xf32>, %[[S:[^:]+]]: tensor<3xf32>, %[[O:[^:]+]]: tensor<3xf32>) -> (tensor<4x3x6xf32>, tensor<4x3xf32>, tensor<4x3xf32>)
// BNT-NOT: transpose
// BNT: stablehlo.reshape %[[X]] : (tensor<4x3x6xf32>) -> tensor<12x6xf32>
// BNT: stablehlo.broadcast_in_dim %[[S]], dims = [1] : (tensor<3xf32>) -> tensor<4x3xf32>
// BNT: "stablehlo.batch_norm_training"({{.*}}) <{epsilon = 1.000000e-03 : f32, feature_index = 0 : i64}> : (tensor<12x6xf32>, tensor<12xf32>, tensor<12xf32>) -> (tensor<12x6xf32>, tensor<12xf32>, tensor<12xf32>)
// BNT-NOT: transpose
// BNT: return
func.func @bn_training(%x: tensor<3x6xf32>, %s: tensor<3xf32>, %o: tensor<3xf32>) -> (tensor<3x6xf32>, tensor<3xf32>, tensor<3xf32>) {
  %0:3 = "stablehlo.batch_norm_training"(%x, %s, %o) {epsilon = 1.0e-3 : f32, feature_index = 0 : i64} : (tensor<3x6xf32>, tensor<3xf32>, tensor<3xf32>) -> (tensor<3x6xf32>, tensor<3xf32>, tensor<3xf32>)
  return %0#0, %0#1, %0#2 : tensor<3x6xf32>, tensor<3xf32>, tensor<3xf32>
}

// BNG-LABEL: func.func @bn_grad
// BNG: "stablehlo.batch_norm_grad"({{.*}}) <{epsilon = 1.000000e-03 : f32, feature_index = 1 : i64}> : (tensor<6x12xf32>, tensor<12xf32>, tensor<12xf32>, tensor<12xf32>, tensor<6x12xf32>) -> (tensor<6x12xf32>, tensor<12xf32>, tensor<12xf32>)
// BNG: return {{.*}} : tensor<4x6x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>
func.func @bn_grad(%x: tensor<6x3xf32>, %s: tensor<3xf32>, %m: tensor<3xf32>, %v: tensor<3xf32>, %g: tensor<6x3xf32>) -> (tensor<6x3xf32>, tensor<3xf32>, tensor<3xf32>) {
  %0:3 = "stablehlo.batch_norm_grad"(%x, %s, %m, %v, %g) {epsilon = 1.0e-3 : f32, feature_index = 1 : i64} : (tensor<6x3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<6x3xf32>) -> (tensor<6x3xf32>, tensor<3xf32>, tensor<3xf32>)
  return %0#0, %0#1, %0#2 : tensor<6x3xf32>, tensor<3xf32>, tensor<3xf32>
}

// A LAPACK kernel takes the lanes as one more leading batch dim: types,
// layouts (the new dim most major), num_batch_dims and the sharding rule (a
// factor shared by every operand and result) follow; the backend config,
// aliases and api_version are kept.
// GETRF-LABEL: func.func @getrf
// GETRF-SAME: (%[[A:[^:]+]]: tensor<4x5x3xf64>)
// GETRF-NEXT: stablehlo.custom_call @lapack_dgetrf_ffi(%[[A]])
// GETRF-SAME: api_version = 4 : i32
// GETRF-SAME: mhlo.backend_config = {}
// GETRF-SAME: mhlo.frontend_attributes = {num_batch_dims = "1"}
// GETRF-SAME: operand_layouts = [dense<[1, 2, 0]> : tensor<3xindex>]
// GETRF-SAME: output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>]
// GETRF-SAME: result_layouts = [dense<[1, 2, 0]> : tensor<3xindex>, dense<[1, 0]> : tensor<2xindex>, dense<0> : tensor<1xindex>]
// GETRF-SAME: sdy.sharding_rule = #sdy.op_sharding_rule<([i, j, k])->([i, l, m], [i, n], [i]) {i=4, j=5, k=3, l=5, m=3, n=3}, custom>
// GETRF-SAME: (tensor<4x5x3xf64>) -> (tensor<4x5x3xf64>, tensor<4x3xi32>, tensor<4xi32>)
func.func @getrf(%a: tensor<5x3xf64>) -> (tensor<5x3xf64>, tensor<3xi32>, tensor<i32>) {
  %0:3 = stablehlo.custom_call @lapack_dgetrf_ffi(%a) {api_version = 4 : i32, mhlo.backend_config = {}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<0> : tensor<1xindex>, dense<> : tensor<0xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j])->([k, l], [m], []) {i=5, j=3, k=5, l=3, m=3}, custom>} : (tensor<5x3xf64>) -> (tensor<5x3xf64>, tensor<3xi32>, tensor<i32>)
  return %0#0, %0#1, %0#2 : tensor<5x3xf64>, tensor<3xi32>, tensor<i32>
}

// trsm with an unbatched triangle: the lanes become more right-hand-side
// columns (side = 'L'); the kernel call keeps its unbatched matrix and rank.
// LTRSM-B-LABEL: func.func @lapack_trsm
// LTRSM-B-SAME: (%[[A:[^:]+]]: tensor<3x3xf32>, %[[B:[^:]+]]: tensor<4x3x1xf32>)
// LTRSM-B: %[[F:.+]] = stablehlo.reshape %{{.*}} : (tensor<3x1x4xf32>) -> tensor<3x4xf32>
// LTRSM-B-NEXT: stablehlo.custom_call @lapack_strsm_ffi(%[[A]], %[[F]])
// LTRSM-B-SAME: num_batch_dims = "0"
// LTRSM-B-SAME: operand_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<[0, 1]> : tensor<2xindex>]
// LTRSM-B-SAME: sdy.sharding_rule = #sdy.op_sharding_rule<([i, j], [k, l])->([m, n]) {i=3, j=3, k=3, l=4, m=3, n=4}, custom>
// LTRSM-B-SAME: (tensor<3x3xf32>, tensor<3x4xf32>) -> tensor<3x4xf32>
// LTRSM-B: return {{.*}} : tensor<4x3x1xf32>

// LTRSM-A-LABEL: func.func @lapack_trsm
// LTRSM-A: %[[BB:.+]] = stablehlo.broadcast_in_dim
// LTRSM-A-NEXT: stablehlo.custom_call @lapack_strsm_ffi(%{{.*}}, %[[BB]])
// LTRSM-A-SAME: num_batch_dims = "1"
// LTRSM-A-SAME: (tensor<4x3x3xf32>, tensor<4x3x1xf32>) -> tensor<4x3x1xf32>
func.func @lapack_trsm(%a: tensor<3x3xf32>, %b: tensor<3x1xf32>) -> tensor<3x1xf32> {
  %0 = stablehlo.custom_call @lapack_strsm_ffi(%a, %b) {mhlo.backend_config = {diag = 85 : ui8, side = 76 : ui8, trans_x = 78 : ui8, uplo = 76 : ui8}, mhlo.frontend_attributes = {num_batch_dims = "0"}, operand_layouts = [dense<[0, 1]> : tensor<2xindex>, dense<[0, 1]> : tensor<2xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [], operand_index = 1, operand_tuple_indices = []>], result_layouts = [dense<[0, 1]> : tensor<2xindex>], sdy.sharding_rule = #sdy.op_sharding_rule<([i, j], [k, l])->([m, n]) {i=3, j=3, k=3, l=1, m=3, n=1}, custom>} : (tensor<3x3xf32>, tensor<3x1xf32>) -> tensor<3x1xf32>
  return %0 : tensor<3x1xf32>
}

// An already batched call (num_batch_dims = 1) gets a second batch dim.
// GESDD-LABEL: func.func @gesdd
// GESDD-NEXT: stablehlo.custom_call @lapack_cgesdd_ffi
// GESDD-SAME: mhlo.backend_config = {mode = 65 : ui8}
// GESDD-SAME: num_batch_dims = "2"
// GESDD-SAME: operand_layouts = [dense<[2, 3, 1, 0]> : tensor<4xindex>]
// GESDD-SAME: result_layouts = [dense<[2, 3, 1, 0]> : tensor<4xindex>, dense<[2, 1, 0]> : tensor<3xindex>, dense<[2, 3, 1, 0]> : tensor<4xindex>, dense<[2, 3, 1, 0]> : tensor<4xindex>, dense<[1, 0]> : tensor<2xindex>]
// GESDD-SAME: (tensor<4x2x3x3xcomplex<f32>>) -> (tensor<4x2x3x3xcomplex<f32>>, tensor<4x2x3xf32>, tensor<4x2x3x3xcomplex<f32>>, tensor<4x2x3x3xcomplex<f32>>, tensor<4x2xi32>)
func.func @gesdd(%a: tensor<2x3x3xcomplex<f32>>) -> (tensor<2x3xf32>, tensor<2xi32>) {
  %0:5 = stablehlo.custom_call @lapack_cgesdd_ffi(%a) {mhlo.backend_config = {mode = 65 : ui8}, mhlo.frontend_attributes = {num_batch_dims = "1"}, operand_layouts = [dense<[1, 2, 0]> : tensor<3xindex>], output_operand_aliases = [#stablehlo.output_operand_alias<output_tuple_indices = [0], operand_index = 0, operand_tuple_indices = []>], result_layouts = [dense<[1, 2, 0]> : tensor<3xindex>, dense<[1, 0]> : tensor<2xindex>, dense<[1, 2, 0]> : tensor<3xindex>, dense<[1, 2, 0]> : tensor<3xindex>, dense<0> : tensor<1xindex>]} : (tensor<2x3x3xcomplex<f32>>) -> (tensor<2x3x3xcomplex<f32>>, tensor<2x3xf32>, tensor<2x3x3xcomplex<f32>>, tensor<2x3x3xcomplex<f32>>, tensor<2xi32>)
  return %0#1, %0#4 : tensor<2x3xf32>, tensor<2xi32>
}

// A batched predicate must hold in every lane (reduce with `and`); a batched
// message input is reported for the first failing lane.
// ASSERT-LABEL: func.func @shape_assertion
// ASSERT-SAME: (%[[P:[^:]+]]: tensor<4xi1>, %[[N:[^:]+]]: tensor<4xi32>)
// ASSERT: %[[LANE:.+]] = stablehlo.reduce(%{{.*}} init: %{{.*}}) applies stablehlo.minimum across dimensions = [0] : (tensor<4xi32>, tensor<i32>) -> tensor<i32>
// ASSERT: %[[ALL:.+]] = stablehlo.reduce(%[[P]] init: %{{.*}}) applies stablehlo.and across dimensions = [0] : (tensor<4xi1>, tensor<i1>) -> tensor<i1>
// ASSERT: %[[ONE:.+]] = stablehlo.dynamic_slice %[[N]], %[[LANE]], sizes = [1] : (tensor<4xi32>, tensor<i32>) -> tensor<1xi32>
// ASSERT: %[[V:.+]] = stablehlo.reshape %[[ONE]] : (tensor<1xi32>) -> tensor<i32>
// ASSERT: stablehlo.custom_call @shape_assertion(%[[ALL]], %[[V]]) {{.*}}error_message = "bad {0}"{{.*}} : (tensor<i1>, tensor<i32>) -> ()
// An empty batch: nothing to assert, no lane to read a message input from.
// ASSERT0-LABEL: func.func @shape_assertion
// ASSERT0-NOT: dynamic_slice
// ASSERT0-DAG: %[[T:.+]] = stablehlo.constant dense<true> : tensor<i1>
// ASSERT0-DAG: %[[Z:.+]] = stablehlo.constant dense<0> : tensor<i32>
// ASSERT0: stablehlo.custom_call @shape_assertion(%[[T]], %[[Z]])
func.func @shape_assertion(%p: tensor<i1>, %n: tensor<i32>) -> tensor<i32> {
  stablehlo.custom_call @shape_assertion(%p, %n) {api_version = 2 : i32, error_message = "bad {0}", has_side_effect = true} : (tensor<i1>, tensor<i32>) -> ()
  return %n : tensor<i32>
}

// A legacy (non-FFI) kernel carries its sizes in scalar operands / opaque
// descriptors: it gets no vectorized rule (the typed error under --strict).
// LEGACY: error: {{.*}}stablehlo.custom_call{{.*}}lapack_sgetrf
func.func @legacy_getrf(%a: tensor<3x3xf32>) -> tensor<3x3xf32> {
  %0:3 = stablehlo.custom_call @lapack_sgetrf(%a) : (tensor<3x3xf32>) -> (tensor<3x3xf32>, tensor<3xi32>, tensor<i32>)
  return %0#0 : tensor<3x3xf32>
}
