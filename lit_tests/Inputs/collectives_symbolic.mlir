// A module lowered for a named batch axis with a symbolic batch size: lowered
// at a placeholder count (stablehlo_batch.lanes = 2, marked
// stablehlo_batch.symbolic_lanes), its replica groups are the one group of
// every placeholder lane (named_axes.export_named).
module attributes {stablehlo_batch.lanes = 2 : i64, stablehlo_batch.symbolic_lanes} {
  func.func @psum(%x: tensor<3xf32>) -> tensor<3xf32> {
    %0 = "stablehlo.all_reduce"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0, 1]]> : tensor<1x2xi64>, use_global_device_ids}> ({
    ^bb0(%a: tensor<f32>, %b: tensor<f32>):
      %s = stablehlo.add %a, %b : tensor<f32>
      stablehlo.return %s : tensor<f32>
    }) {stablehlo_batch.lane} : (tensor<3xf32>) -> tensor<3xf32>
    %1 = stablehlo.partition_id {stablehlo_batch.lane} : tensor<ui32>
    %2 = stablehlo.convert %1 : (tensor<ui32>) -> tensor<f32>
    %3 = stablehlo.broadcast_in_dim %2, dims = [] : (tensor<f32>) -> tensor<3xf32>
    %4 = stablehlo.add %0, %3 : tensor<3xf32>
    return %4 : tensor<3xf32>
  }
  func.func @collective_broadcast(%x: tensor<3xf32>) -> tensor<3xf32> {
    %0 = "stablehlo.collective_broadcast"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[1, 0]]> : tensor<1x2xi64>}> {stablehlo_batch.lane} : (tensor<3xf32>) -> tensor<3xf32>
    return %0 : tensor<3xf32>
  }
  func.func @split_groups(%x: tensor<3xf32>) -> tensor<3xf32> {
    %0 = "stablehlo.all_reduce"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0], [1]]> : tensor<2x1xi64>, use_global_device_ids}> ({
    ^bb0(%a: tensor<f32>, %b: tensor<f32>):
      %s = stablehlo.add %a, %b : tensor<f32>
      stablehlo.return %s : tensor<f32>
    }) {stablehlo_batch.lane} : (tensor<3xf32>) -> tensor<3xf32>
    return %0 : tensor<3xf32>
  }
  func.func @all_gather(%x: tensor<3xf32>) -> tensor<6xf32> {
    %0 = "stablehlo.all_gather"(%x) <{all_gather_dim = 0 : i64, channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0, 1]]> : tensor<1x2xi64>, use_global_device_ids}> {stablehlo_batch.lane} : (tensor<3xf32>) -> tensor<6xf32>
    return %0 : tensor<6xf32>
  }
  func.func @collective_permute(%x: tensor<3xf32>) -> tensor<3xf32> {
    %0 = "stablehlo.collective_permute"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, source_target_pairs = dense<[[0, 1], [1, 0]]> : tensor<2x2xi64>}> {stablehlo_batch.lane} : (tensor<3xf32>) -> tensor<3xf32>
    return %0 : tensor<3xf32>
  }
  // all_gather of one element per lane (x[None]): the per-example module
  // lowered at 2 and 3 placeholder lanes has the number of lanes as a
  // dimension, `?` here; a broadcast to such a shape is a marked dynamic one
  // whose shape reads the number of lanes from a psum of 1
  // (named_axes._lane_count_dims).
  func.func @all_gather_lanes(%x: tensor<3xf32>) -> tensor<?x3xf32> {
    %0 = stablehlo.broadcast_in_dim %x, dims = [1] : (tensor<3xf32>) -> tensor<1x3xf32>
    %1 = "stablehlo.all_gather"(%0) <{all_gather_dim = 0 : i64, channel_handle = #stablehlo.channel_handle<handle = 1, type = 0>, replica_groups = dense<[[0, 1]]> : tensor<1x2xi64>, use_global_device_ids}> {stablehlo_batch.lane} : (tensor<1x3xf32>) -> tensor<?x3xf32>
    %c = stablehlo.constant dense<1> : tensor<i32>
    %2 = "stablehlo.all_reduce"(%c) <{replica_groups = dense<[[0, 1]]> : tensor<1x2xi64>}> ({
    ^bb0(%a: tensor<i32>, %b: tensor<i32>):
      %s = stablehlo.add %a, %b : tensor<i32>
      stablehlo.return %s : tensor<i32>
    }) {stablehlo_batch.lane} : (tensor<i32>) -> tensor<i32>
    %3 = stablehlo.reshape %2 : (tensor<i32>) -> tensor<1xi32>
    %c3 = stablehlo.constant dense<3> : tensor<1xi32>
    %4 = stablehlo.concatenate %3, %c3, dim = 0 : (tensor<1xi32>, tensor<1xi32>) -> tensor<2xi32>
    %5 = stablehlo.dynamic_broadcast_in_dim %0, %4, dims = [0, 1] {stablehlo_batch.lane_shape} : (tensor<1x3xf32>, tensor<2xi32>) -> tensor<?x3xf32>
    %6 = stablehlo.subtract %1, %5 : tensor<?x3xf32>
    return %6 : tensor<?x3xf32>
  }
  func.func @reduce_scatter_lanes(%x: tensor<?x3xf32>) -> tensor<1x3xf32> {
    %0 = "stablehlo.reduce_scatter"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 0>, replica_groups = dense<[[0, 1]]> : tensor<1x2xi64>, scatter_dimension = 0 : i64, use_global_device_ids}> ({
    ^bb0(%a: tensor<f32>, %b: tensor<f32>):
      %s = stablehlo.add %a, %b : tensor<f32>
      stablehlo.return %s : tensor<f32>
    }) {stablehlo_batch.lane} : (tensor<?x3xf32>) -> tensor<1x3xf32>
    return %0 : tensor<1x3xf32>
  }
  func.func @all_to_all_lanes(%x: tensor<?x3xf32>) -> tensor<?x3xf32> {
    %0 = "stablehlo.all_to_all"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 0>, concat_dimension = 0 : i64, replica_groups = dense<[[0, 1]]> : tensor<1x2xi64>, split_count = 2 : i64, split_dimension = 0 : i64}> {stablehlo_batch.lane} : (tensor<?x3xf32>) -> tensor<?x3xf32>
    return %0 : tensor<?x3xf32>
  }
  func.func @all_to_all_static(%x: tensor<4x3xf32>) -> tensor<4x3xf32> {
    %0 = "stablehlo.all_to_all"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 0>, concat_dimension = 0 : i64, replica_groups = dense<[[0, 1]]> : tensor<1x2xi64>, split_count = 2 : i64, split_dimension = 0 : i64}> {stablehlo_batch.lane} : (tensor<4x3xf32>) -> tensor<4x3xf32>
    return %0 : tensor<4x3xf32>
  }
  // A slice of the whole lane dimension (g[:, 1] of a gathered g): a marked
  // real_dynamic_slice whose limit there is the number of lanes (-1 in
  // stablehlo_batch.lane_slice = start, limit, strides).
  func.func @slice_lanes(%g: tensor<?x3xf32>, %s: tensor<2xi32>, %l: tensor<2xi32>, %t: tensor<2xi32>) -> tensor<?x1xf32> {
    %0 = stablehlo.real_dynamic_slice %g, %s, %l, %t {stablehlo_batch.lane_shape, stablehlo_batch.lane_slice = array<i64: 0, 1, -1, 2, 1, 1>} : (tensor<?x3xf32>, tensor<2xi32>, tensor<2xi32>, tensor<2xi32>) -> tensor<?x1xf32>
    return %0 : tensor<?x1xf32>
  }
}
