// gather and scatter use StableHLO's batching dimensions: a batched operand
// with unbatched indices makes the batch a full-size window dim, batched
// indices into an unbatched table (an embedding) leave the table as it is,
// and both batched pair up through operand/start-indices batching dims.
// indices_are_sorted survives only where the lanes do not interleave.
//
// RUN: stablehlo-batch-opt %s --func=gather --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=G-OP
// RUN: stablehlo-batch-opt %s --func=gather --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=G-IDX
// RUN: stablehlo-batch-opt %s --func=gather --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=G-BOTH
// RUN: stablehlo-batch-opt %s --func=scatter_add --axis-size=4 --in-axes=0,none,none | filecheck %s --check-prefix=S-OP
// RUN: stablehlo-batch-opt %s --func=scatter_add --axis-size=4 --in-axes=none,0,none | filecheck %s --check-prefix=S-IDX
// RUN: stablehlo-batch-opt %s --func=scatter_add --axis-size=4 --in-axes=none,none,0 | filecheck %s --check-prefix=S-UPD
// RUN: stablehlo-batch-opt %s --func=scatter_add --axis-size=4 --in-axes=0,0,0 | filecheck %s --check-prefix=S-ALL
// RUN: stablehlo-batch-opt %s --func=scalar_dynamic_slice --axis-size=3 | filecheck %s --check-prefix=DS-SCALAR
// RUN: stablehlo-batch-opt %s --func=scalar_dynamic_slice --axis-size=abc | filecheck %s --check-prefix=DS-SYM
// RUN: stablehlo-batch-opt %s --func=scalar_dynamic_update_slice --axis-size=3 --in-axes=0,none | filecheck %s --check-prefix=DUS-SCALAR

// G-OP-LABEL: func.func @gather
// G-OP-SAME: (%[[X:[^:]+]]: tensor<4x5x3xf32>, %[[I:[^:]+]]: tensor<2x1xi32>)
// G-OP-NEXT: "stablehlo.gather"(%[[X]], %[[I]])
// G-OP-SAME: offset_dims = [0, 2], collapsed_slice_dims = [1], start_index_map = [1], index_vector_dim = 1
// G-OP-SAME: indices_are_sorted = true, slice_sizes = array<i64: 4, 1, 3>
// G-OP-SAME: -> tensor<4x2x3xf32>
// G-OP-NEXT: return

// G-IDX-LABEL: func.func @gather
// G-IDX-NOT: broadcast_in_dim
// G-IDX: "stablehlo.gather"
// G-IDX-SAME: offset_dims = [2], collapsed_slice_dims = [0], start_index_map = [0], index_vector_dim = 2
// G-IDX-SAME: indices_are_sorted = false, slice_sizes = array<i64: 1, 3>
// G-IDX-SAME: (tensor<5x3xf32>, tensor<4x2x1xi32>) -> tensor<4x2x3xf32>

// G-BOTH-LABEL: func.func @gather
// G-BOTH: "stablehlo.gather"
// G-BOTH-SAME: operand_batching_dims = [0], start_indices_batching_dims = [0]
// G-BOTH-SAME: slice_sizes = array<i64: 1, 1, 3>
// G-BOTH-SAME: (tensor<4x5x3xf32>, tensor<4x2x1xi32>) -> tensor<4x2x3xf32>
func.func @gather(%x: tensor<5x3xf32>, %i: tensor<2x1xi32>) -> tensor<2x3xf32> {
  %0 = "stablehlo.gather"(%x, %i) <{dimension_numbers = #stablehlo.gather<offset_dims = [1], collapsed_slice_dims = [0], start_index_map = [0], index_vector_dim = 1>, indices_are_sorted = true, slice_sizes = array<i64: 1, 3>}> : (tensor<5x3xf32>, tensor<2x1xi32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// The same updates go to every lane's own operand: one window per lane.
// S-OP-LABEL: func.func @scatter_add
// S-OP: stablehlo.broadcast_in_dim %{{.*}}, dims = [1, 2] : (tensor<2x3xf32>) -> tensor<4x2x3xf32>
// S-OP: "stablehlo.scatter"
// S-OP-SAME: update_window_dims = [0, 2], inserted_window_dims = [1], scatter_dims_to_operand_dims = [1], index_vector_dim = 1
// S-OP: stablehlo.add %{{.*}}, %{{.*}} : tensor<f32>
// S-OP: }) : (tensor<4x5x3xf32>, tensor<2x1xi32>, tensor<4x2x3xf32>) -> tensor<4x5x3xf32>

// S-IDX-LABEL: func.func @scatter_add
// S-IDX: "stablehlo.scatter"
// S-IDX-SAME: indices_are_sorted = false
// S-IDX-SAME: input_batching_dims = [0], scatter_indices_batching_dims = [0]
// S-IDX-SAME: index_vector_dim = 2
// S-IDX: }) : (tensor<4x5x3xf32>, tensor<4x2x1xi32>, tensor<4x2x3xf32>) -> tensor<4x5x3xf32>

// S-UPD-LABEL: func.func @scatter_add
// S-UPD: "stablehlo.scatter"
// S-UPD-SAME: indices_are_sorted = true
// S-UPD-SAME: update_window_dims = [0, 2]
// S-UPD: }) : (tensor<4x5x3xf32>, tensor<2x1xi32>, tensor<4x2x3xf32>) -> tensor<4x5x3xf32>

// S-ALL-LABEL: func.func @scatter_add
// S-ALL-NOT: broadcast_in_dim
// S-ALL: "stablehlo.scatter"
// S-ALL-SAME: input_batching_dims = [0], scatter_indices_batching_dims = [0]
// S-ALL-SAME: unique_indices = true
// S-ALL: }) : (tensor<4x5x3xf32>, tensor<4x2x1xi32>, tensor<4x2x3xf32>) -> tensor<4x5x3xf32>
func.func @scatter_add(%x: tensor<5x3xf32>, %i: tensor<2x1xi32>, %u: tensor<2x3xf32>) -> tensor<5x3xf32> {
  %0 = "stablehlo.scatter"(%x, %i, %u) <{indices_are_sorted = true, scatter_dimension_numbers = #stablehlo.scatter<update_window_dims = [1], inserted_window_dims = [0], scatter_dims_to_operand_dims = [0], index_vector_dim = 1>, unique_indices = true}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %1 = stablehlo.add %a, %b : tensor<f32>
    stablehlo.return %1 : tensor<f32>
  }) : (tensor<5x3xf32>, tensor<2x1xi32>, tensor<2x3xf32>) -> tensor<5x3xf32>
  return %0 : tensor<5x3xf32>
}

// A slice of a scalar has no start indices: the batched op still slices
// the whole batch dim from 0 (an i32 start when there is no other to copy).
// A slice of a scalar (no start indices) is the scalar: the batched operand
// itself, at a fixed or a symbolic size (that once raised an IndexError).
// DS-SCALAR-LABEL: func.func @scalar_dynamic_slice
// DS-SCALAR-SAME: (%[[X:[^:]+]]: tensor<3xf32>)
// DS-SCALAR-NOT: stablehlo.dynamic_slice
// DS-SCALAR-NEXT: return %[[X]] : tensor<3xf32>
// DS-SYM-LABEL: func.func @scalar_dynamic_slice
// DS-SYM-SAME: (%[[X:[^:]+]]: tensor<?xf32>)
// DS-SYM-NEXT: return %[[X]] : tensor<?xf32>
func.func @scalar_dynamic_slice(%x: tensor<f32>) -> tensor<f32> {
  %0 = stablehlo.dynamic_slice %x, sizes = [] : (tensor<f32>) -> tensor<f32>
  return %0 : tensor<f32>
}

// DUS-SCALAR-LABEL: func.func @scalar_dynamic_update_slice
// DUS-SCALAR-SAME: (%[[X:[^:]+]]: tensor<3xf32>, %[[U:[^:]+]]: tensor<f32>)
// DUS-SCALAR: %[[UB:.+]] = stablehlo.broadcast_in_dim %[[U]], dims = [] : (tensor<f32>) -> tensor<3xf32>
// DUS-SCALAR: stablehlo.dynamic_update_slice %[[X]], %[[UB]], %{{.+}} : (tensor<3xf32>, tensor<3xf32>, tensor<i32>) -> tensor<3xf32>
func.func @scalar_dynamic_update_slice(%x: tensor<f32>, %u: tensor<f32>) -> tensor<f32> {
  %0 = stablehlo.dynamic_update_slice %x, %u : (tensor<f32>, tensor<f32>) -> tensor<f32>
  return %0 : tensor<f32>
}
