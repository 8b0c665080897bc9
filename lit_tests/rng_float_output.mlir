// rng_bit_generator with a float output: XLA would give the output the
// unsigned type of its width, so the module draws integer bits and bitcasts
// them to the declared float type (stablehlo_batch/xla_compat.py).
//
// RUN: stablehlo-batch-opt %s --axis-size=3 | filecheck %s

func.func @main(%seed: tensor<2xui64>) -> (tensor<2xui64>, tensor<f64>) {
  %state, %out = stablehlo.rng_bit_generator %seed, algorithm = THREE_FRY : (tensor<2xui64>) -> (tensor<2xui64>, tensor<f64>)
  return %state, %out : tensor<2xui64>, tensor<f64>
}

// CHECK-LABEL: func.func @main
// CHECK-SAME: (%{{.*}}: tensor<3x2xui64>) -> (tensor<3x2xui64>, tensor<3xf64>)
// CHECK: stablehlo.while
// CHECK: stablehlo.rng_bit_generator {{.*}} -> (tensor<2xui64>, tensor<ui64>)
// CHECK: stablehlo.dynamic_update_slice {{.*}} : (tensor<3xui64>, tensor<1xui64>, tensor<i32>) -> tensor<3xui64>
// CHECK: stablehlo.bitcast_convert {{.*}} : (tensor<3xui64>) -> tensor<3xf64>
