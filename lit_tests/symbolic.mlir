// A symbolic batch size (--axis-size=b): the batch dim of every type is `?`
// and every shape that contains it is built with a dynamic op whose shape
// operand reads the batch size from a batched argument
// (stablehlo.get_dimension_size); jax's shape refinement makes them static
// per call. The module is marked as jax.export marks shape-polymorphic ones.
//
// RUN: stablehlo-batch-opt %s --func=materialize --axis-size=b --in-axes=0,none | filecheck %s --check-prefix=MAT
// RUN: stablehlo-batch-opt %s --func=moved --axis-size=b --in-axes=1 | filecheck %s --check-prefix=MOVED
// RUN: stablehlo-batch-opt %s --func=reshape --axis-size=b | filecheck %s --check-prefix=RESHAPE
// RUN: stablehlo-batch-opt %s --func=broadcast_in_dim --axis-size=b | filecheck %s --check-prefix=BID
// RUN: stablehlo-batch-opt %s --func=slice --axis-size=b | filecheck %s --check-prefix=SLICE
// RUN: stablehlo-batch-opt %s --func=dot --axis-size=b --in-axes=0,none | filecheck %s --check-prefix=DOT
// RUN: stablehlo-batch-opt %s --func=while_loop --axis-size=b --in-axes=0,none | filecheck %s --check-prefix=WHILE
// RUN: stablehlo-batch-opt %s --func=dynamic_slice --axis-size=b --in-axes=0,none | filecheck %s --check-prefix=DSLICE
// A custom call needs static shapes: it runs per lane, in a loop whose trip
// count is the run-time batch size (an error with --strict).
// RUN: stablehlo-batch-opt %s --func=custom_call --axis-size=b | filecheck %s --check-prefix=PERLANE
// RUN: not stablehlo-batch-opt %s --func=custom_call --axis-size=b --strict 2>&1 | filecheck %s --check-prefix=CUSTOM
// Ops that need the batch size as a number fail with the typed error.
// RUN: not stablehlo-batch-opt %s --func=convolution --axis-size=b --in-axes=0,none 2>&1 | filecheck %s --check-prefix=CONV
// RUN: not stablehlo-batch-opt %s --func=moved --axis-size=b --in-axes=none 2>&1 | filecheck %s --check-prefix=NONE

// MAT: module attributes {jax.uses_shape_polymorphism = true}
// MAT-LABEL: func.func @materialize
// MAT-SAME: (%[[X:[^:]+]]: tensor<?x3xf32>, %[[W:[^:]+]]: tensor<3xf32>) -> tensor<?x3xf32>
// MAT: %[[N:.+]] = stablehlo.get_dimension_size %[[X]], dim = 0 : (tensor<?x3xf32>) -> tensor<i32>
// MAT: %[[N1:.+]] = stablehlo.reshape %[[N]] : (tensor<i32>) -> tensor<1xi32>
// MAT: %[[C:.+]] = stablehlo.constant dense<3> : tensor<1xi32>
// MAT: %[[S:.+]] = stablehlo.concatenate %[[N1]], %[[C]], dim = 0
// MAT: %[[B:.+]] = stablehlo.dynamic_broadcast_in_dim %[[W]], %[[S]], dims = [1] : (tensor<3xf32>, tensor<2xi32>) -> tensor<?x3xf32>
// MAT: stablehlo.multiply %[[X]], %[[B]] : tensor<?x3xf32>
func.func @materialize(%x: tensor<3xf32>, %w: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.multiply %x, %w : tensor<3xf32>
  return %0 : tensor<3xf32>
}

// The size is read from the argument where it arrives (dim 1), and results
// move to out_axes with a transpose of dynamic types.
// MOVED-LABEL: func.func @moved
// MOVED-SAME: (%[[X:[^:]+]]: tensor<2x?xf32>) -> tensor<?x2xf32>
// MOVED: stablehlo.transpose %[[X]], dims = [1, 0] : (tensor<2x?xf32>) -> tensor<?x2xf32>
// MOVED: stablehlo.exponential {{.*}} : tensor<?x2xf32>
func.func @moved(%x: tensor<2xf32>) -> tensor<2xf32> {
  %0 = stablehlo.exponential %x : tensor<2xf32>
  return %0 : tensor<2xf32>
}

// RESHAPE-LABEL: func.func @reshape
// RESHAPE: stablehlo.get_dimension_size
// RESHAPE: stablehlo.dynamic_reshape {{.*}} : (tensor<?x2x3xf32>, tensor<3xi32>) -> tensor<?x3x2xf32>
// RESHAPE-NOT: stablehlo.reshape {{.*}}tensor<?x2x3xf32>
func.func @reshape(%x: tensor<2x3xf32>) -> tensor<3x2xf32> {
  %0 = stablehlo.reshape %x : (tensor<2x3xf32>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}

// BID-LABEL: func.func @broadcast_in_dim
// BID: stablehlo.dynamic_broadcast_in_dim {{.*}}, dims = [0, 2] : (tensor<?x3xf32>, tensor<3xi32>) -> tensor<?x2x3xf32>
func.func @broadcast_in_dim(%x: tensor<3xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.broadcast_in_dim %x, dims = [1] : (tensor<3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// The batch dim's limit is the run-time size: real_dynamic_slice.
// SLICE-LABEL: func.func @slice
// SLICE: stablehlo.real_dynamic_slice {{.*}} : (tensor<?x6xf32>, tensor<2xi32>, tensor<2xi32>, tensor<2xi32>) -> tensor<?x2xf32>
func.func @slice(%x: tensor<6xf32>) -> tensor<2xf32> {
  %0 = stablehlo.slice %x [1:5:2] : (tensor<6xf32>) -> tensor<2xf32>
  return %0 : tensor<2xf32>
}

// One batched side: the batch is a free dim of the product, the weight
// stays as it is.
// DOT-LABEL: func.func @dot
// DOT-SAME: (%[[X:[^:]+]]: tensor<?x3xf32>, %[[W:[^:]+]]: tensor<3x4xf32>)
// DOT: stablehlo.dot_general %[[X]], %[[W]], contracting_dims = [1] x [0] : (tensor<?x3xf32>, tensor<3x4xf32>) -> tensor<?x4xf32>
// DOT-NOT: dynamic_broadcast_in_dim %[[W]]
func.func @dot(%x: tensor<3xf32>, %w: tensor<3x4xf32>) -> tensor<4xf32> {
  %0 = stablehlo.dot_general %x, %w, contracting_dims = [0] x [0] : (tensor<3xf32>, tensor<3x4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// A loop with a per-lane trip count: the carry is batched, the predicate
// reduced over lanes, finished lanes frozen with selects.
// WHILE-LABEL: func.func @while_loop
// WHILE: stablehlo.while
// WHILE-SAME: tensor<?xf32>
// WHILE: stablehlo.reduce
// WHILE: stablehlo.select {{.*}} : tensor<?xi1>, tensor<?xf32>
func.func @while_loop(%x: tensor<f32>, %limit: tensor<f32>) -> tensor<f32> {
  %0 = stablehlo.while(%it = %x) : tensor<f32>
  cond {
    %c = stablehlo.compare LT, %it, %limit : (tensor<f32>, tensor<f32>) -> tensor<i1>
    stablehlo.return %c : tensor<i1>
  } do {
    %one = stablehlo.constant dense<1.0> : tensor<f32>
    %n = stablehlo.add %it, %one : tensor<f32>
    stablehlo.return %n : tensor<f32>
  }
  return %0 : tensor<f32>
}

// A slice size cannot be symbolic: unbatched starts become per-lane starts
// of a gather whose batch is a batching dim (gather clamps as dynamic_slice).
// DSLICE-LABEL: func.func @dynamic_slice
// DSLICE-NOT: stablehlo.dynamic_slice
// DSLICE: stablehlo.dynamic_broadcast_in_dim
// DSLICE: "stablehlo.gather"
// DSLICE-SAME: operand_batching_dims = [0]
// DSLICE-SAME: slice_sizes = array<i64: 1, 2>
// DSLICE-SAME: -> tensor<?x2xf32>
func.func @dynamic_slice(%x: tensor<6xf32>, %i: tensor<i32>) -> tensor<2xf32> {
  %0 = stablehlo.dynamic_slice %x, %i, sizes = [2] : (tensor<6xf32>, tensor<i32>) -> tensor<2xf32>
  return %0 : tensor<2xf32>
}

// PERLANE-LABEL: func.func @custom_call
// PERLANE-SAME: (%[[X:[^:]+]]: tensor<?x3xf32>) -> tensor<?x3xf32>
// PERLANE: stablehlo.while
// PERLANE: cond {
// PERLANE: stablehlo.get_dimension_size %[[X]], dim = 0
// PERLANE: stablehlo.compare LT
// PERLANE: stablehlo.custom_call @my_kernel({{.*}}) : (tensor<3xf32>) -> tensor<3xf32>
// PERLANE: stablehlo.dynamic_update_slice {{.*}} : (tensor<?x3xf32>, tensor<1x3xf32>
// CUSTOM: error: cannot batch 'stablehlo.custom_call' in function @custom_call: custom call target @my_kernel has no batching rule (strict mode: no per-lane fallback)
func.func @custom_call(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.custom_call @my_kernel(%x) : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// CONV: error: cannot batch 'stablehlo.convolution' in function @convolution: not supported with a symbolic batch size: this rule needs a static batch size
func.func @convolution(%x: tensor<1x8x1xf32>, %w: tensor<3x1x1xf32>) -> tensor<1x6x1xf32> {
  %0 = stablehlo.convolution(%x, %w) dim_numbers = [b, 0, f]x[0, i, o]->[b, 0, f], window = {stride = [1], pad = [[0, 0]], rhs_dilate = [1]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64} : (tensor<1x8x1xf32>, tensor<3x1x1xf32>) -> tensor<1x6x1xf32>
  return %0 : tensor<1x6x1xf32>
}

// NONE: error: a symbolic batch size needs at least one batched argument
