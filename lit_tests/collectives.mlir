// Collectives over the batch axis (passes/rules/collectives.py): in a module
// lowered for a named batch axis (module attribute stablehlo_batch.lanes = B,
// each collective marked {stablehlo_batch.lane}), device k is lane k and each
// collective becomes batch-dimension ops; no collective, no per-lane loop.
//
// RUN: stablehlo-batch-opt %s --func=psum --axis-size=4 | filecheck %s --check-prefix=PSUM
// RUN: stablehlo-batch-opt %s --func=pmax_groups --axis-size=4 | filecheck %s --check-prefix=GROUPS
// RUN: stablehlo-batch-opt %s --func=psum_unequal --axis-size=4 | filecheck %s --check-prefix=UNEQUAL
// RUN: stablehlo-batch-opt %s --func=all_gather --axis-size=4 | filecheck %s --check-prefix=GATHER
// RUN: stablehlo-batch-opt %s --func=reduce_scatter --axis-size=4 | filecheck %s --check-prefix=SCATTER
// RUN: stablehlo-batch-opt %s --func=all_to_all --axis-size=4 | filecheck %s --check-prefix=A2A
// RUN: stablehlo-batch-opt %s --func=collective_permute --axis-size=4 | filecheck %s --check-prefix=PERM
// RUN: stablehlo-batch-opt %s --func=collective_broadcast --axis-size=4 | filecheck %s --check-prefix=BCAST
// RUN: stablehlo-batch-opt %s --func=partition_id --axis-size=4 --in-axes=none | filecheck %s --check-prefix=PID
// RUN: not stablehlo-batch-opt %s --func=unmarked --axis-size=4 2>&1 | filecheck %s --check-prefix=UNMARKED
// RUN: not stablehlo-batch-opt %s --func=psum --axis-size=3 2>&1 | filecheck %s --check-prefix=SIZE
// RUN: stablehlo-batch-opt %S/Inputs/spmd_psum_ppermute.mlir --spmd-axis=d | filecheck %s --check-prefix=SPMD
// RUN: not stablehlo-batch-opt %S/Inputs/spmd_psum_ppermute.mlir --spmd-axis=x 2>&1 | filecheck %s --check-prefix=SPMD-ERR
// RUN: stablehlo-batch-opt %s --func=two_op_body --axis-size=4 | filecheck %s --check-prefix=MAP
// RUN: stablehlo-batch-opt %S/Inputs/spmd_plain.mlir --spmd-axis=d | filecheck %s --check-prefix=PLAIN
// RUN: stablehlo-batch-opt %S/Inputs/collectives_symbolic.mlir --func=psum --axis-size=b | filecheck %s --check-prefix=SYM
// RUN: stablehlo-batch-opt %S/Inputs/collectives_symbolic.mlir --func=collective_broadcast --axis-size=b | filecheck %s --check-prefix=SYM-BCAST
// RUN: not stablehlo-batch-opt %S/Inputs/collectives_symbolic.mlir --func=split_groups --axis-size=b 2>&1 | filecheck %s --check-prefix=SYM-SPLIT
// RUN: not stablehlo-batch-opt %S/Inputs/collectives_symbolic.mlir --func=all_gather --axis-size=b 2>&1 | filecheck %s --check-prefix=SYM-GATHER
// RUN: not stablehlo-batch-opt %S/Inputs/collectives_symbolic.mlir --func=collective_permute --axis-size=b 2>&1 | filecheck %s --check-prefix=SYM-PERM
// RUN: stablehlo-batch-opt %S/Inputs/collectives_symbolic.mlir --func=all_gather_lanes --axis-size=b | filecheck %s --check-prefix=SYM-GATHER-LANES
// RUN: stablehlo-batch-opt %S/Inputs/collectives_symbolic.mlir --func=reduce_scatter_lanes --axis-size=b | filecheck %s --check-prefix=SYM-SCATTER-LANES
// RUN: stablehlo-batch-opt %S/Inputs/collectives_symbolic.mlir --func=all_to_all_lanes --axis-size=b | filecheck %s --check-prefix=SYM-A2A-LANES
// RUN: not stablehlo-batch-opt %S/Inputs/collectives_symbolic.mlir --func=all_to_all_static --axis-size=b 2>&1 | filecheck %s --check-prefix=SYM-A2A-STATIC
// RUN: stablehlo-batch-opt %S/Inputs/collectives_symbolic.mlir --func=slice_lanes --axis-size=b --in-axes=0,none,none,none | filecheck %s --check-prefix=SYM-SLICE-LANES

// A symbolic batch size (Inputs/collectives_symbolic.mlir, lowered at a
// placeholder count): a psum over the whole axis is one reduce over the
// dynamic batch dim, partition_id a dynamic_iota reading the batch size.
// SYM-LABEL: func.func @psum
// SYM-SAME: (%[[X:[^:]+]]: tensor<?x3xf32>) -> tensor<?x3xf32>
// SYM-NOT: all_reduce
// SYM: stablehlo.reduce(%[[X]] init: %{{[^ ]+}}) applies stablehlo.add across dimensions = [0]
// SYM-SAME: (tensor<?x3xf32>, tensor<f32>) -> tensor<3xf32>
// SYM: %[[N:[^ ]+]] = stablehlo.get_dimension_size %[[X]], dim = 0
// SYM: stablehlo.dynamic_iota {{.*}} -> tensor<?xui32>
// SYM-NOT: partition_id
// SYM: return
// pbroadcast over the whole axis: the source lane's value, unbatched.
// SYM-BCAST-LABEL: func.func @collective_broadcast
// SYM-BCAST-NOT: collective_broadcast
// SYM-BCAST: stablehlo.slice %arg0 [1:2, 0:3] : (tensor<?x3xf32>) -> tensor<1x3xf32>
// SYM-BCAST: stablehlo.dynamic_broadcast_in_dim
// Lane groups and per-example shapes that need the number of lanes: refused.
// SYM-SPLIT: error: cannot batch 'stablehlo.all_reduce' in function @split_groups: replica groups that split the batch axis over a symbolic batch size
// SYM-GATHER: error: cannot batch 'stablehlo.all_gather' in function @all_gather: all_gather over a symbolic batch size
// SYM-PERM: error: cannot batch 'stablehlo.collective_permute' in function @collective_permute: {{.*}} source-target pairs name lanes explicitly, which needs a concrete number of lanes
// A per-example dimension that is the number of lanes (`?` in the input:
// lowered at 2 and 3 placeholder lanes, named_axes._lane_count_dims) is the
// batch size. all_gather of one element per lane: the batched operand, the
// lanes moved into the gather dimension, unbatched (every lane gets it); the
// marked broadcast to a shape with the number of lanes reads the batch size.
// SYM-GATHER-LANES-LABEL: func.func @all_gather_lanes
// SYM-GATHER-LANES-SAME: (%[[X:[^:]+]]: tensor<?x3xf32>) -> tensor<?x?x3xf32>
// SYM-GATHER-LANES-NOT: all_gather
// SYM-GATHER-LANES-NOT: all_reduce
// SYM-GATHER-LANES: %[[B:[^ ]+]] = stablehlo.dynamic_broadcast_in_dim %[[X]], %{{[^ ]+}}, dims = [0, 2] : (tensor<?x3xf32>, tensor<3xi32>) -> tensor<?x1x3xf32>
// SYM-GATHER-LANES: %[[G:[^ ]+]] = stablehlo.dynamic_reshape %[[B]], %{{[^ ]+}} : (tensor<?x1x3xf32>, tensor<2xi32>) -> tensor<?x3xf32>
// SYM-GATHER-LANES: stablehlo.dynamic_broadcast_in_dim %[[G]], %{{[^ ]+}}, dims = [1, 2] : (tensor<?x3xf32>, tensor<3xi32>) -> tensor<?x?x3xf32>
// SYM-GATHER-LANES: stablehlo.subtract {{.*}} : tensor<?x?x3xf32>
// reduce_scatter of a dimension of one block per lane: the sum over the
// lanes, lane i keeping block i (the summed dimension becomes the batch).
// SYM-SCATTER-LANES-LABEL: func.func @reduce_scatter_lanes
// SYM-SCATTER-LANES-SAME: (%[[X:[^:]+]]: tensor<?x?x3xf32>) -> tensor<?x1x3xf32>
// SYM-SCATTER-LANES: %[[S:[^ ]+]] = stablehlo.reduce(%[[X]] init: %{{[^ ]+}}) applies stablehlo.add across dimensions = [0] : (tensor<?x?x3xf32>, tensor<f32>) -> tensor<?x3xf32>
// SYM-SCATTER-LANES: stablehlo.dynamic_reshape %[[S]], %{{[^ ]+}} : (tensor<?x3xf32>, tensor<3xi32>) -> tensor<?x1x3xf32>
// all_to_all with one chunk per lane: the lanes swap with the split dimension.
// SYM-A2A-LANES-LABEL: func.func @all_to_all_lanes
// SYM-A2A-LANES-NOT: all_to_all
// SYM-A2A-LANES: stablehlo.transpose %arg0, dims = [1, 0, 2] : (tensor<?x?x3xf32>) -> tensor<?x?x3xf32>
// SYM-A2A-LANES-NEXT: return
// A split dimension that is not the number of lanes: chunks of 4 / the batch size.
// SYM-A2A-STATIC: error: cannot batch 'stablehlo.all_to_all' in function @all_to_all_static: an all_to_all whose split dimension is not the number of lanes
// A marked slice of the whole lane dimension of a batched value: the limit
// there is the batch size, read at run time.
// SYM-SLICE-LANES-LABEL: func.func @slice_lanes
// SYM-SLICE-LANES-SAME: (%[[G:[^:]+]]: tensor<?x?x3xf32>
// SYM-SLICE-LANES: %[[N:[^ ]+]] = stablehlo.get_dimension_size %[[G]], dim = 0
// SYM-SLICE-LANES: stablehlo.real_dynamic_slice %[[G]], {{.*}} : (tensor<?x?x3xf32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>) -> tensor<?x?x1xf32>
// SYM-SLICE-LANES-NOT: stablehlo_batch.lane_slice

// psum over all lanes: one reduce over the batch with the op's own combiner
// and its identity; the result is the same for every lane (unbatched) and is
// only broadcast because out_axes asks for a batched result.
// PSUM-LABEL: func.func @psum
// PSUM-SAME: (%[[X:[^:]+]]: tensor<4x3xf32>) -> tensor<4x3xf32>
// PSUM-NOT: all_reduce
// PSUM: %[[INIT:[^ ]+]] = stablehlo.constant dense<0.000000e+00> : tensor<f32>
// PSUM: stablehlo.reduce(%{{[^ ]+}} init: %[[INIT]]) applies stablehlo.add across dimensions = [1]
// PSUM-SAME: (tensor<1x4x3xf32>, tensor<f32>) -> tensor<1x3xf32>
// PSUM: stablehlo.broadcast_in_dim {{.*}} (tensor<3xf32>) -> tensor<4x3xf32>
// PSUM-NOT: all_reduce
// PSUM: return

// Groups of unequal sizes (padded with -1): one reduce per group, stacked,
// each lane given its group's value.
// UNEQUAL-LABEL: func.func @psum_unequal
// UNEQUAL-NOT: all_reduce
// UNEQUAL: stablehlo.constant dense<{{\[}}[0], [3], [1]]> : tensor<3x1xi64>
// UNEQUAL: stablehlo.reduce{{.*}} applies stablehlo.add across dimensions = [0] : (tensor<3x3xf32>, tensor<f32>) -> tensor<3xf32>
// UNEQUAL: stablehlo.reduce{{.*}} applies stablehlo.add across dimensions = [0] : (tensor<1x3xf32>, tensor<f32>) -> tensor<3xf32>
// UNEQUAL: stablehlo.concatenate {{.*}} -> tensor<2x3xf32>
// UNEQUAL: stablehlo.constant dense<{{\[}}[0], [0], [1], [0]]> : tensor<4x1xi64>
// UNEQUAL: return

// Replica groups that split the lanes: gather the lanes group by group,
// reduce each group, give each lane its group's value.
// GROUPS-LABEL: func.func @pmax_groups
// GROUPS: stablehlo.constant dense<{{\[}}[0], [2], [1], [3]]> : tensor<4x1xi64>
// GROUPS: stablehlo.gather
// GROUPS: stablehlo.reshape {{.*}} -> tensor<2x2x3xi32>
// GROUPS: stablehlo.constant dense<-2147483648> : tensor<i32>
// GROUPS: stablehlo.reduce({{.*}}) applies stablehlo.maximum across dimensions = [1]
// GROUPS-SAME: -> tensor<2x3xi32>
// GROUPS: stablehlo.constant dense<{{\[}}[0], [1], [0], [1]]> : tensor<4x1xi64>
// GROUPS: stablehlo.gather{{.*}}(tensor<2x3xi32>, tensor<4x1xi64>) -> tensor<4x3xi32>
// GROUPS-NOT: all_reduce
// GROUPS: return

// all_gather: the batched operand itself, the lanes folded into dim 1.
// GATHER-LABEL: func.func @all_gather
// GATHER-NOT: all_gather
// GATHER: stablehlo.transpose {{.*}} dims = [0, 2, 1, 3] : (tensor<1x4x2x3xf32>) -> tensor<1x2x4x3xf32>
// GATHER: stablehlo.reshape {{.*}} -> tensor<2x12xf32>
// GATHER-NOT: all_gather
// GATHER: return

// reduce_scatter: the sum over the lanes, lane k keeping block k.
// SCATTER-LABEL: func.func @reduce_scatter
// SCATTER-NOT: reduce_scatter
// SCATTER: stablehlo.reduce({{.*}}) applies stablehlo.add across dimensions = [1] : (tensor<1x4x8x3xf32>, tensor<f32>) -> tensor<1x8x3xf32>
// SCATTER: stablehlo.reshape {{.*}} -> tensor<4x2x3xf32>
// SCATTER-NOT: reduce_scatter
// SCATTER: return

// all_to_all: chunk j of lane i becomes chunk i of lane j, one transpose.
// A2A-LABEL: func.func @all_to_all
// A2A-NOT: all_to_all
// A2A: stablehlo.reshape {{.*}} -> tensor<1x4x4x1x6xf32>
// A2A: stablehlo.transpose {{.*}} dims = [0, 2, 3, 1, 4] : (tensor<1x4x4x1x6xf32>) -> tensor<1x4x1x4x6xf32>
// A2A: stablehlo.reshape {{.*}} -> tensor<4x1x24xf32>
// A2A-NOT: all_to_all
// A2A: return

// collective_permute: a gather along the batch; lane 0 has no source: zeros.
// PERM-LABEL: func.func @collective_permute
// PERM: stablehlo.constant dense<{{\[}}[0], [0], [1], [2]]> : tensor<4x1xi64>
// PERM: stablehlo.gather
// PERM: stablehlo.constant dense<[false, true, true, true]> : tensor<4xi1>
// PERM: stablehlo.constant dense<0.000000e+00> : tensor<4x3xf32>
// PERM: stablehlo.select
// PERM-NOT: collective_permute
// PERM: return

// collective_broadcast: every lane of the group takes its first member's value.
// BCAST-LABEL: func.func @collective_broadcast
// BCAST: stablehlo.constant dense<2> : tensor<4x1xi64>
// BCAST: stablehlo.gather
// BCAST-NOT: collective_broadcast
// BCAST: return

// partition_id (axis_index): an iota over the batch, even with no batched argument.
// PID-LABEL: func.func @partition_id
// PID-SAME: () -> tensor<4xi32>
// PID: stablehlo.iota dim = 0 : tensor<4xui32>
// PID-NOT: partition_id
// PID: return

// A body with no known identity (here two ops; jax's complex pmax is one):
// the body, cloned into stablehlo.map, combines halves of the lanes, log2(B)
// times (an odd count carries its last lane on: tests/test_named_axes.py).
// MAP-LABEL: func.func @two_op_body
// MAP-NOT: all_reduce
// MAP: stablehlo.slice {{.*}} [0:1, 0:2, 0:3]
// MAP: stablehlo.slice {{.*}} [0:1, 2:4, 0:3]
// MAP: "stablehlo.map"
// MAP: stablehlo.maximum
// MAP: stablehlo.multiply
// MAP: stablehlo.slice {{.*}} [0:1, 0:1, 0:3]
// MAP: stablehlo.slice {{.*}} [0:1, 1:2, 0:3]
// MAP: "stablehlo.map"
// MAP-NOT: all_reduce
// MAP: return

// A collective that is not over the batch axis is refused, naming it.
// UNMARKED: error: cannot batch 'stablehlo.all_reduce' in function @unmarked: a collective cannot be batched

// The lanes are the devices the module was lowered for: another batch size is refused.
// SIZE: error: cannot batch 'stablehlo.all_reduce' in function @psum: the collectives were lowered for 4 lanes but the batch has 3

// --spmd-axis: a shard_map program for 4 devices as one module; x split along
// dim 0 becomes 4 lanes of 2 rows, the replicated psum result is lane 0's.
// SPMD-LABEL: func.func public @main
// SPMD-SAME: (%[[X:[^:]+]]: tensor<8x3xf32>, %[[W:[^:]+]]: tensor<f32>) -> (tensor<2x3xf32>{{.*}}, tensor<8x3xf32>
// SPMD: %[[L:[^ ]+]] = stablehlo.reshape %[[X]] : (tensor<8x3xf32>) -> tensor<4x2x3xf32>
// SPMD: call @main_lanes_0(%[[L]], %[[W]])
// SPMD: stablehlo.slice {{.*}} [0:1, 0:2, 0:3]
// SPMD: stablehlo.reshape {{.*}} : (tensor<4x2x3xf32>) -> tensor<8x3xf32>
// SPMD-LABEL: func.func private @main_lanes_0
// SPMD: stablehlo.reduce({{.*}}) applies stablehlo.add across dimensions = [1]
// SPMD: stablehlo.constant dense<{{\[}}[3], [0], [1], [2]]> : tensor<4x1xi64>
// SPMD: stablehlo.gather
// SPMD-NOT: manual_computation
// SPMD-NOT: sdy.
// SPMD-NOT: all_reduce
// SPMD-NOT: collective_permute

// SPMD-ERR: error: the manual computation is over ['d'], not over 'x'

// Plain SPMD code (no manual_computation): per-device code over
// mhlo.num_partitions devices; every argument and result gets the devices as
// a leading dimension.
// PLAIN-LABEL: func.func public @main
// PLAIN-SAME: (%{{[^:]+}}: tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<4xui32>)
// PLAIN: stablehlo.reshape {{.*}} -> tensor<2x2x3xf32>
// PLAIN: stablehlo.reduce({{.*}}) applies stablehlo.add across dimensions = [1]
// PLAIN: stablehlo.constant dense<{{\[}}[0], [0], [1], [1]]> : tensor<4x1xi64>
// PLAIN: stablehlo.gather
// PLAIN: stablehlo.iota dim = 0 : tensor<4xui32>
// PLAIN-NOT: all_reduce
// PLAIN-NOT: partition_id
// PLAIN: return

module attributes {stablehlo_batch.lanes = 4 : i64} {
  func.func @psum(%x: tensor<3xf32>) -> tensor<3xf32> {
    %0 = "stablehlo.all_reduce"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0, 1, 2, 3]]> : tensor<1x4xi64>, use_global_device_ids}> ({
    ^bb0(%a: tensor<f32>, %b: tensor<f32>):
      %s = stablehlo.add %a, %b : tensor<f32>
      stablehlo.return %s : tensor<f32>
    }) {stablehlo_batch.lane} : (tensor<3xf32>) -> tensor<3xf32>
    return %0 : tensor<3xf32>
  }
  func.func @pmax_groups(%x: tensor<3xi32>) -> tensor<3xi32> {
    %0 = "stablehlo.all_reduce"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0, 2], [1, 3]]> : tensor<2x2xi64>, use_global_device_ids}> ({
    ^bb0(%a: tensor<i32>, %b: tensor<i32>):
      %s = stablehlo.maximum %a, %b : tensor<i32>
      stablehlo.return %s : tensor<i32>
    }) {stablehlo_batch.lane} : (tensor<3xi32>) -> tensor<3xi32>
    return %0 : tensor<3xi32>
  }
  func.func @all_gather(%x: tensor<2x3xf32>) -> tensor<2x12xf32> {
    %0 = "stablehlo.all_gather"(%x) <{all_gather_dim = 1 : i64, channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0, 1, 2, 3]]> : tensor<1x4xi64>, use_global_device_ids}> {stablehlo_batch.lane} : (tensor<2x3xf32>) -> tensor<2x12xf32>
    return %0 : tensor<2x12xf32>
  }
  func.func @reduce_scatter(%x: tensor<8x3xf32>) -> tensor<2x3xf32> {
    %0 = "stablehlo.reduce_scatter"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0, 1, 2, 3]]> : tensor<1x4xi64>, scatter_dimension = 0 : i64, use_global_device_ids}> ({
    ^bb0(%a: tensor<f32>, %b: tensor<f32>):
      %s = stablehlo.add %a, %b : tensor<f32>
      stablehlo.return %s : tensor<f32>
    }) {stablehlo_batch.lane} : (tensor<8x3xf32>) -> tensor<2x3xf32>
    return %0 : tensor<2x3xf32>
  }
  func.func @all_to_all(%x: tensor<4x6xf32>) -> tensor<1x24xf32> {
    %0 = "stablehlo.all_to_all"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, concat_dimension = 1 : i64, replica_groups = dense<[[0, 1, 2, 3]]> : tensor<1x4xi64>, split_count = 4 : i64, split_dimension = 0 : i64}> {stablehlo_batch.lane} : (tensor<4x6xf32>) -> tensor<1x24xf32>
    return %0 : tensor<1x24xf32>
  }
  func.func @collective_permute(%x: tensor<3xf32>) -> tensor<3xf32> {
    %0 = "stablehlo.collective_permute"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, source_target_pairs = dense<[[0, 1], [1, 2], [2, 3]]> : tensor<3x2xi64>}> {stablehlo_batch.lane} : (tensor<3xf32>) -> tensor<3xf32>
    return %0 : tensor<3xf32>
  }
  func.func @collective_broadcast(%x: tensor<3xf32>) -> tensor<3xf32> {
    %0 = "stablehlo.collective_broadcast"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[2, 0, 1, 3]]> : tensor<1x4xi64>}> {stablehlo_batch.lane} : (tensor<3xf32>) -> tensor<3xf32>
    return %0 : tensor<3xf32>
  }
  func.func @partition_id() -> tensor<i32> {
    %0 = stablehlo.partition_id {stablehlo_batch.lane} : tensor<ui32>
    %1 = stablehlo.convert %0 : (tensor<ui32>) -> tensor<i32>
    return %1 : tensor<i32>
  }
  func.func @psum_unequal(%x: tensor<3xf32>) -> tensor<3xf32> {
    %0 = "stablehlo.all_reduce"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0, 3, 1], [2, -1, -1]]> : tensor<2x3xi64>, use_global_device_ids}> ({
    ^bb0(%a: tensor<f32>, %b: tensor<f32>):
      %s = stablehlo.add %a, %b : tensor<f32>
      stablehlo.return %s : tensor<f32>
    }) {stablehlo_batch.lane} : (tensor<3xf32>) -> tensor<3xf32>
    return %0 : tensor<3xf32>
  }
  func.func @two_op_body(%x: tensor<3xf32>) -> tensor<3xf32> {
    %0 = "stablehlo.all_reduce"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0, 1, 2, 3]]> : tensor<1x4xi64>, use_global_device_ids}> ({
    ^bb0(%a: tensor<f32>, %b: tensor<f32>):
      %m = stablehlo.maximum %a, %b : tensor<f32>
      %r = stablehlo.multiply %m, %m : tensor<f32>
      stablehlo.return %r : tensor<f32>
    }) {stablehlo_batch.lane} : (tensor<3xf32>) -> tensor<3xf32>
    return %0 : tensor<3xf32>
  }
  func.func @unmarked(%x: tensor<3xf32>) -> tensor<3xf32> {
    %0 = "stablehlo.all_reduce"(%x) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0, 1]]> : tensor<1x2xi64>, use_global_device_ids}> ({
    ^bb0(%a: tensor<f32>, %b: tensor<f32>):
      %s = stablehlo.add %a, %b : tensor<f32>
      stablehlo.return %s : tensor<f32>
    }) : (tensor<3xf32>) -> tensor<3xf32>
    return %0 : tensor<3xf32>
  }
}
