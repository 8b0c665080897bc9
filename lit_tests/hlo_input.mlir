// HLO text (what XLA dumps as *.txt) is converted to StableHLO and batched;
// the converter's stablehlo.dot becomes dot_general, whose rule folds the
// batch into one matmul and leaves the weight unbatched. HLO can go back out.
//
// RUN: stablehlo-batch-opt %S/Inputs/dot_tanh.hlo --axis-size=3 --in-axes=0,none | filecheck %s
// RUN: stablehlo-batch-opt %S/Inputs/dot_tanh.hlo --axis-size=3 --in-axes=0,none --output-format=hlo | filecheck %s --check-prefix=OUTHLO
// RUN: not stablehlo-batch-opt %s --input-format=hlo --axis-size=3 2>&1 | filecheck %s --check-prefix=ERR

// CHECK-LABEL: func.func @main
// CHECK-SAME: (%{{.*}}: tensor<3x4x5xf32>, %{{.*}}: tensor<5x2xf32>) -> tensor<3x4x2xf32>
// CHECK: stablehlo.dot_general {{.*}} contracting_dims = [2] x [0]
// CHECK-SAME: (tensor<3x4x5xf32>, tensor<5x2xf32>) -> tensor<3x4x2xf32>
// CHECK: stablehlo.tanh {{.*}} : tensor<3x4x2xf32>

// OUTHLO: HloModule
// OUTHLO: f32[3,4,2]{{.*}} dot(
// OUTHLO: tanh(

// ERR: error: cannot read HLO: not HLO text and not a serialized HloModuleProto or HloProto
