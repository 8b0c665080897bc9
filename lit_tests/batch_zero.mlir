// Batch size 0: every batched value is empty, and each op must still be valid
// StableHLO. A gather's batching dim takes a slice of size 0 then (a size-1
// slice would not fit in the empty operand dim), as jax's own batching rule
// does; unbatched values stay as they are.
//
// RUN: stablehlo-batch-opt %s --func=gather --axis-size=0 --in-axes=0,0 | filecheck %s --check-prefix=G-BOTH
// RUN: stablehlo-batch-opt %s --func=gather --axis-size=0 --in-axes=none,0 | filecheck %s --check-prefix=G-IDX
// RUN: stablehlo-batch-opt %s --func=dynamic_slice --axis-size=0 --in-axes=0,0 | filecheck %s --check-prefix=DS-BOTH
// RUN: stablehlo-batch-opt %s --func=dynamic_slice --axis-size=0 --in-axes=none,0 | filecheck %s --check-prefix=DS-IDX
// RUN: stablehlo-batch-opt %s --func=dynamic_update_slice --axis-size=0 --in-axes=0,0,0 | filecheck %s --check-prefix=DUS
// RUN: stablehlo-batch-opt %s --func=sort --axis-size=0 | filecheck %s --check-prefix=SORT

// G-BOTH-LABEL: func.func @gather
// G-BOTH-SAME: tensor<0x5x3xf32>
// G-BOTH: "stablehlo.gather"
// G-BOTH-SAME: operand_batching_dims = [0], start_indices_batching_dims = [0]
// G-BOTH-SAME: slice_sizes = array<i64: 0, 1, 3>
// G-BOTH-SAME: (tensor<0x5x3xf32>, tensor<0x2x1xi32>) -> tensor<0x2x3xf32>

// G-IDX-LABEL: func.func @gather
// G-IDX: "stablehlo.gather"
// G-IDX-SAME: slice_sizes = array<i64: 1, 3>
// G-IDX-SAME: (tensor<5x3xf32>, tensor<0x2x1xi32>) -> tensor<0x2x3xf32>
func.func @gather(%x: tensor<5x3xf32>, %i: tensor<2x1xi32>) -> tensor<2x3xf32> {
  %0 = "stablehlo.gather"(%x, %i) <{dimension_numbers = #stablehlo.gather<offset_dims = [1], collapsed_slice_dims = [0], start_index_map = [0], index_vector_dim = 1>, indices_are_sorted = true, slice_sizes = array<i64: 1, 3>}> : (tensor<5x3xf32>, tensor<2x1xi32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// DS-BOTH-LABEL: func.func @dynamic_slice
// DS-BOTH: "stablehlo.gather"
// DS-BOTH-SAME: operand_batching_dims = [0], start_indices_batching_dims = [0]
// DS-BOTH-SAME: slice_sizes = array<i64: 0, 2>
// DS-BOTH-SAME: (tensor<0x6xf32>, tensor<0x1xi32>) -> tensor<0x2xf32>

// DS-IDX-LABEL: func.func @dynamic_slice
// DS-IDX: "stablehlo.gather"
// DS-IDX-SAME: slice_sizes = array<i64: 2>
// DS-IDX-SAME: (tensor<6xf32>, tensor<0x1xi32>) -> tensor<0x2xf32>
func.func @dynamic_slice(%x: tensor<6xf32>, %i: tensor<i32>) -> tensor<2xf32> {
  %0 = stablehlo.dynamic_slice %x, %i, sizes = [2] : (tensor<6xf32>, tensor<i32>) -> tensor<2xf32>
  return %0 : tensor<2xf32>
}

// DUS-LABEL: func.func @dynamic_update_slice
// DUS: "stablehlo.scatter"
// DUS-SAME: input_batching_dims = [0], scatter_indices_batching_dims = [0]
// DUS: (tensor<0x6xf32>, tensor<0x1xi32>, tensor<0x2xf32>) -> tensor<0x6xf32>
func.func @dynamic_update_slice(%x: tensor<6xf32>, %u: tensor<2xf32>, %i: tensor<i32>) -> tensor<6xf32> {
  %0 = stablehlo.dynamic_update_slice %x, %u, %i : (tensor<6xf32>, tensor<2xf32>, tensor<i32>) -> tensor<6xf32>
  return %0 : tensor<6xf32>
}

// SORT-LABEL: func.func @sort
// SORT: "stablehlo.sort"
// SORT-SAME: dimension = 1
// SORT: -> tensor<0x6xf32>
func.func @sort(%x: tensor<6xf32>) -> tensor<6xf32> {
  %0 = "stablehlo.sort"(%x) <{dimension = 0 : i64, is_stable = true}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %1 = stablehlo.compare LT, %a, %b : (tensor<f32>, tensor<f32>) -> tensor<i1>
    stablehlo.return %1 : tensor<i1>
  }) : (tensor<6xf32>) -> tensor<6xf32>
  return %0 : tensor<6xf32>
}
