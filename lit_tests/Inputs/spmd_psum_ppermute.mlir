// A shard_map program for 4 devices (jax.jit(jax.shard_map(prog, mesh=AbstractMesh((4,), ("d",)), in_specs=(P("d"), P()), out_specs=(P(), P("d")))) with prog = psum(x * w) and a ring ppermute), the input of collectives.mlir's SPMD test.
module @jit_prog attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
  sdy.mesh @mesh = <["d"=4]> {stablehlo.mesh = {axes = [{name = "d", size = 4 : i64}]}}
  func.func public @main(%arg0: tensor<8x3xf32>, %arg1: tensor<f32>) -> (tensor<2x3xf32> {jax.result_info = "result[0]"}, tensor<8x3xf32> {jax.result_info = "result[1]"}) {
    %0:2 = sdy.manual_computation(%arg0, %arg1) in_shardings=[<@mesh, [{"d"}, {}]>, <@mesh, []>] out_shardings=[<@mesh, [{}, {}]>, <@mesh, [{"d"}, {}]>] manual_axes={"d"} (%arg2: tensor<2x3xf32>, %arg3: tensor<f32>) {
      %1 = stablehlo.broadcast_in_dim %arg3, dims = [] : (tensor<f32>) -> tensor<2x3xf32>
      %2 = stablehlo.multiply %arg2, %1 : tensor<2x3xf32>
      %3 = "stablehlo.all_reduce"(%2) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, replica_groups = dense<[[0, 1, 2, 3]]> : tensor<1x4xi64>, use_global_device_ids}> ({
      ^bb0(%arg4: tensor<f32>, %arg5: tensor<f32>):
        %5 = stablehlo.add %arg4, %arg5 : tensor<f32>
        stablehlo.return %5 : tensor<f32>
      }) : (tensor<2x3xf32>) -> tensor<2x3xf32>
      %4 = "stablehlo.collective_permute"(%arg2) <{channel_handle = #stablehlo.channel_handle<handle = 1, type = 1>, source_target_pairs = dense<[[0, 1], [1, 2], [2, 3], [3, 0]]> : tensor<4x2xi64>}> : (tensor<2x3xf32>) -> tensor<2x3xf32>
      sdy.return %3, %4 : tensor<2x3xf32>, tensor<2x3xf32>
    } : (tensor<8x3xf32>, tensor<f32>) -> (tensor<2x3xf32>, tensor<8x3xf32>)
    return %0#0, %0#1 : tensor<2x3xf32>, tensor<8x3xf32>
  }
}

