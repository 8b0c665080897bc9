// A batched rng_bit_generator state runs once per lane (a loop over the
// lanes), so each lane gets exactly the bits and next state it would get
// alone. An unbatched state is left as it is.
//
// RUN: stablehlo-batch-opt %s --func=rbg --axis-size=4 | filecheck %s --check-prefix=RBG
// RUN: stablehlo-batch-opt %s --func=rbg_shift --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=UNB

// RBG-LABEL: func.func @rbg
// RBG-SAME: (%[[S:[^:]+]]: tensor<4x2xui64>) -> (tensor<4x2xui64>, tensor<4x3xui32>)
// RBG: stablehlo.while
// RBG: cond
// RBG: stablehlo.compare LT
// RBG: do
// RBG: stablehlo.dynamic_slice %[[S]], {{.*}} sizes = [1, 2]
// RBG: stablehlo.rng_bit_generator {{.*}} : (tensor<2xui64>) -> (tensor<2xui64>, tensor<3xui32>)
// RBG: stablehlo.dynamic_update_slice {{.*}} -> tensor<4x2xui64>
// RBG: stablehlo.dynamic_update_slice {{.*}} -> tensor<4x3xui32>
func.func @rbg(%s: tensor<2xui64>) -> (tensor<2xui64>, tensor<3xui32>) {
  %0, %1 = stablehlo.rng_bit_generator %s, algorithm = DEFAULT : (tensor<2xui64>) -> (tensor<2xui64>, tensor<3xui32>)
  return %0, %1 : tensor<2xui64>, tensor<3xui32>
}

// UNB-LABEL: func.func @rbg_shift
// UNB-NOT: stablehlo.while
// UNB: stablehlo.rng_bit_generator {{.*}} : (tensor<2xui64>) -> (tensor<2xui64>, tensor<3xui32>)
// UNB: stablehlo.broadcast_in_dim {{.*}} -> tensor<4x3xui32>
// UNB: stablehlo.xor {{.*}} : tensor<4x3xui32>
func.func @rbg_shift(%s: tensor<2xui64>, %m: tensor<3xui32>) -> tensor<3xui32> {
  %0, %1 = stablehlo.rng_bit_generator %s, algorithm = DEFAULT : (tensor<2xui64>) -> (tensor<2xui64>, tensor<3xui32>)
  %2 = stablehlo.xor %1, %m : tensor<3xui32>
  return %2 : tensor<3xui32>
}

// stablehlo.rng with a per-lane bound: once per lane, like rng_bit_generator.
// RUN: stablehlo-batch-opt %s --func=rng --axis-size=2 --in-axes=0,none --strict | filecheck %s --check-prefix=RNG
// RNG-LABEL: func.func @rng
// RNG-SAME: (%{{[^:]+}}: tensor<2xf32>, %{{[^:]+}}: tensor<f32>) -> tensor<2x3xf32>
// RNG: stablehlo.while
// RNG: stablehlo.rng %{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}, distribution = UNIFORM : (tensor<f32>, tensor<f32>, tensor<1xi64>) -> tensor<3xf32>
// RNG: stablehlo.dynamic_update_slice
func.func @rng(%lo: tensor<f32>, %hi: tensor<f32>) -> tensor<3xf32> {
  %shape = stablehlo.constant dense<3> : tensor<1xi64>
  %0 = stablehlo.rng %lo, %hi, %shape, distribution = UNIFORM : (tensor<f32>, tensor<f32>, tensor<1xi64>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}
