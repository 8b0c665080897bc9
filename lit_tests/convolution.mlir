// convolution (passes/rules/windows.py): the batch is folded into a
// dimension the convolution already has, so every case stays ONE
// convolution and no operand is broadcast. Group counts split dims into
// group-major chunks, so with groups the batch goes inside each group
// (reshape to [groups, rest], batch moved in between, merge).
//
// RUN: stablehlo-batch-opt %s --func=nchw --axis-size=5 --in-axes=0,none | filecheck %s --check-prefix=LHS
// RUN: stablehlo-batch-opt %s --func=nchw --axis-size=5 --in-axes=none,0 | filecheck %s --check-prefix=RHS
// RUN: stablehlo-batch-opt %s --func=nchw --axis-size=5 --in-axes=0,0 | filecheck %s --check-prefix=BOTH
// RUN: stablehlo-batch-opt %s --func=depthwise --axis-size=5 --in-axes=0,none | filecheck %s --check-prefix=DW-LHS
// RUN: stablehlo-batch-opt %s --func=depthwise --axis-size=5 --in-axes=none,0 | filecheck %s --check-prefix=DW-RHS
// RUN: stablehlo-batch-opt %s --func=depthwise --axis-size=5 --in-axes=0,0 | filecheck %s --check-prefix=DW-BOTH
// RUN: stablehlo-batch-opt %s --func=batch_groups --axis-size=5 --in-axes=0,none | filecheck %s --check-prefix=BG-LHS
// RUN: stablehlo-batch-opt %s --func=batch_groups --axis-size=5 --in-axes=none,0 | filecheck %s --check-prefix=BG-RHS
// RUN: stablehlo-batch-opt %s --func=batch_groups --axis-size=5 --in-axes=0,0 | filecheck %s --check-prefix=BG-BOTH
// RUN: stablehlo-batch-opt %s --func=conv1d --axis-size=5 --in-axes=0,none | filecheck %s --check-prefix=C1D
// RUN: stablehlo-batch-opt %s --func=conv3d --axis-size=5 --in-axes=none,0 | filecheck %s --check-prefix=C3D

// Only the input batched: the lanes become more images (batch 2 -> 10)
// through the same kernel, whose type is unchanged; one reshape each way.
// LHS-LABEL: func.func @nchw
// LHS-SAME: (%[[X:[^:]+]]: tensor<5x2x3x8x8xf32>, %[[W:[^:]+]]: tensor<4x3x3x3xf32>) -> tensor<5x2x4x8x8xf32>
// LHS-NOT: broadcast
// LHS-NEXT: %[[XF:[^ ]+]] = stablehlo.reshape %[[X]] : (tensor<5x2x3x8x8xf32>) -> tensor<10x3x8x8xf32>
// LHS-NEXT: %[[C:[^ ]+]] = stablehlo.convolution(%[[XF]], %[[W]]) dim_numbers = [b, f, 0, 1]x[o, i, 0, 1]->[b, f, 0, 1], window = {stride = [1, 1], pad = {{\[\[}}1, 1], [1, 1]], lhs_dilate = [1, 1], rhs_dilate = [1, 1], reverse = [false, false]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64, {{.*}}} : (tensor<10x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<10x4x8x8xf32>
// LHS-NEXT: %[[R:[^ ]+]] = stablehlo.reshape %[[C]] : (tensor<10x4x8x8xf32>) -> tensor<5x2x4x8x8xf32>
// LHS-NEXT: return %[[R]]
//
// Only the kernel batched: the lanes become more output features (4 -> 20)
// over the same image.
// RHS-LABEL: func.func @nchw
// RHS-SAME: (%[[X:[^:]+]]: tensor<2x3x8x8xf32>, %[[W:[^:]+]]: tensor<5x4x3x3x3xf32>)
// RHS-NOT: broadcast
// RHS-NEXT: %[[WF:[^ ]+]] = stablehlo.reshape %[[W]] : (tensor<5x4x3x3x3xf32>) -> tensor<20x3x3x3xf32>
// RHS-NEXT: %[[C:[^ ]+]] = stablehlo.convolution(%[[X]], %[[WF]]) {{.*}}feature_group_count = 1 : i64{{.*}} : (tensor<2x3x8x8xf32>, tensor<20x3x3x3xf32>) -> tensor<2x20x8x8xf32>
// RHS-NEXT: %[[S:[^ ]+]] = stablehlo.reshape %[[C]] : (tensor<2x20x8x8xf32>) -> tensor<2x5x4x8x8xf32>
// RHS-NEXT: stablehlo.transpose %[[S]], dims = [1, 0, 2, 3, 4] : (tensor<2x5x4x8x8xf32>) -> tensor<5x2x4x8x8xf32>
//
// Both batched: lane b's input features meet only lane b's kernels, i.e.
// 5 feature groups (lane-major) of one convolution.
// BOTH-LABEL: func.func @nchw
// BOTH-NOT: broadcast
// BOTH: %[[XT:[^ ]+]] = stablehlo.transpose %{{[^,]+}}, dims = [1, 0, 2, 3, 4] : (tensor<5x2x3x8x8xf32>) -> tensor<2x5x3x8x8xf32>
// BOTH-NEXT: %[[XF:[^ ]+]] = stablehlo.reshape %[[XT]] : (tensor<2x5x3x8x8xf32>) -> tensor<2x15x8x8xf32>
// BOTH-NEXT: %[[WF:[^ ]+]] = stablehlo.reshape %{{[^ ]+}} : (tensor<5x4x3x3x3xf32>) -> tensor<20x3x3x3xf32>
// BOTH-NEXT: stablehlo.convolution(%[[XF]], %[[WF]]) {{.*}}batch_group_count = 1 : i64, feature_group_count = 5 : i64{{.*}} : (tensor<2x15x8x8xf32>, tensor<20x3x3x3xf32>) -> tensor<2x20x8x8xf32>
// BOTH-NOT: stablehlo.convolution
// BOTH: return
func.func @nchw(%x: tensor<2x3x8x8xf32>, %w: tensor<4x3x3x3xf32>) -> tensor<2x4x8x8xf32> {
  %0 = stablehlo.convolution(%x, %w) dim_numbers = [b, f, 0, 1]x[o, i, 0, 1]->[b, f, 0, 1], window = {stride = [1, 1], pad = [[1, 1], [1, 1]], lhs_dilate = [1, 1], rhs_dilate = [1, 1], reverse = [false, false]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]} : (tensor<2x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<2x4x8x8xf32>
  return %0 : tensor<2x4x8x8xf32>
}

// Depthwise (feature_group_count = 4, 2 kernels per channel), NHWC/HWIO.
// DW-LHS-LABEL: func.func @depthwise
// DW-LHS-SAME: %[[W:[^:]+]]: tensor<3x3x1x8xf32>
// DW-LHS-NOT: broadcast
// DW-LHS: stablehlo.reshape %{{[^ ]+}} : (tensor<5x2x6x6x4xf32>) -> tensor<10x6x6x4xf32>
// DW-LHS-NEXT: stablehlo.convolution(%{{[^,]+}}, %[[W]]) {{.*}}feature_group_count = 4 : i64{{.*}} : (tensor<10x6x6x4xf32>, tensor<3x3x1x8xf32>) -> tensor<10x6x6x8xf32>
//
// The kernel's 8 output features are 4 groups of 2: each group takes all 5
// lanes' kernels ([4, 5, 2] -> 40), still 4 feature groups; the result's
// features are unfolded the same way.
// DW-RHS-LABEL: func.func @depthwise
// DW-RHS-NOT: broadcast
// DW-RHS: stablehlo.reshape %{{[^ ]+}} : (tensor<5x3x3x1x8xf32>) -> tensor<5x3x3x1x4x2xf32>
// DW-RHS-NEXT: stablehlo.transpose %{{[^,]+}}, dims = [1, 2, 3, 4, 0, 5] : (tensor<5x3x3x1x4x2xf32>) -> tensor<3x3x1x4x5x2xf32>
// DW-RHS-NEXT: stablehlo.reshape %{{[^ ]+}} : (tensor<3x3x1x4x5x2xf32>) -> tensor<3x3x1x40xf32>
// DW-RHS-NEXT: stablehlo.convolution({{.*}}feature_group_count = 4 : i64{{.*}} : (tensor<2x6x6x4xf32>, tensor<3x3x1x40xf32>) -> tensor<2x6x6x40xf32>
// DW-RHS-NEXT: stablehlo.reshape %{{[^ ]+}} : (tensor<2x6x6x40xf32>) -> tensor<2x6x6x4x5x2xf32>
// DW-RHS-NEXT: stablehlo.transpose %{{[^,]+}}, dims = [4, 0, 1, 2, 3, 5] : (tensor<2x6x6x4x5x2xf32>) -> tensor<5x2x6x6x4x2xf32>
// DW-RHS-NEXT: stablehlo.reshape %{{[^ ]+}} : (tensor<5x2x6x6x4x2xf32>) -> tensor<5x2x6x6x8xf32>
//
// Both batched: 4 groups per lane -> 20 feature groups.
// DW-BOTH-LABEL: func.func @depthwise
// DW-BOTH-NOT: broadcast
// DW-BOTH: stablehlo.convolution({{.*}}feature_group_count = 20 : i64{{.*}} : (tensor<2x6x6x20xf32>, tensor<3x3x1x40xf32>) -> tensor<2x6x6x40xf32>
func.func @depthwise(%x: tensor<2x6x6x4xf32>, %w: tensor<3x3x1x8xf32>) -> tensor<2x6x6x8xf32> {
  %0 = stablehlo.convolution(%x, %w) dim_numbers = [b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f], window = {stride = [1, 1], pad = [[1, 1], [1, 1]], lhs_dilate = [1, 1], rhs_dilate = [1, 1], reverse = [false, false]} {batch_group_count = 1 : i64, feature_group_count = 4 : i64, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]} : (tensor<2x6x6x4xf32>, tensor<3x3x1x8xf32>) -> tensor<2x6x6x8xf32>
  return %0 : tensor<2x6x6x8xf32>
}

// batch_group_count = 2 (the shape of a depthwise kernel gradient). Input
// only: its 4 images are 2 batch groups of 2; each group takes all 5 lanes'
// images ([2, 5, 2] -> 20) and the output batch is (lane, image).
// BG-LHS-LABEL: func.func @batch_groups
// BG-LHS-SAME: %[[W:[^:]+]]: tensor<6x3x3x3xf32>
// BG-LHS-NOT: broadcast
// BG-LHS: stablehlo.reshape %{{[^ ]+}} : (tensor<5x4x3x5x5xf32>) -> tensor<5x2x2x3x5x5xf32>
// BG-LHS-NEXT: stablehlo.transpose %{{[^,]+}}, dims = [1, 0, 2, 3, 4, 5] : (tensor<5x2x2x3x5x5xf32>) -> tensor<2x5x2x3x5x5xf32>
// BG-LHS-NEXT: stablehlo.reshape %{{[^ ]+}} : (tensor<2x5x2x3x5x5xf32>) -> tensor<20x3x5x5xf32>
// BG-LHS-NEXT: stablehlo.convolution(%{{[^,]+}}, %[[W]]) {{.*}}batch_group_count = 2 : i64, feature_group_count = 1 : i64{{.*}} : (tensor<20x3x5x5xf32>, tensor<6x3x3x3xf32>) -> tensor<10x6x3x3xf32>
// BG-LHS-NEXT: stablehlo.reshape %{{[^ ]+}} : (tensor<10x6x3x3xf32>) -> tensor<5x2x6x3x3xf32>
//
// Kernel only: each batch group's output features take all lanes' kernels.
// BG-RHS-LABEL: func.func @batch_groups
// BG-RHS-NOT: broadcast
// BG-RHS: stablehlo.convolution({{.*}}batch_group_count = 2 : i64, feature_group_count = 1 : i64{{.*}} : (tensor<4x3x5x5xf32>, tensor<30x3x3x3xf32>) -> tensor<2x30x3x3xf32>
// BG-RHS-NEXT: stablehlo.reshape %{{[^ ]+}} : (tensor<2x30x3x3xf32>) -> tensor<2x2x5x3x3x3xf32>
// BG-RHS-NEXT: stablehlo.transpose %{{[^,]+}}, dims = [2, 0, 1, 3, 4, 5] : (tensor<2x2x5x3x3x3xf32>) -> tensor<5x2x2x3x3x3xf32>
//
// Both: 2 batch groups per lane -> 10, lane-major; no transpose on the way in.
// BG-BOTH-LABEL: func.func @batch_groups
// BG-BOTH-NOT: broadcast
// BG-BOTH: stablehlo.reshape %{{[^ ]+}} : (tensor<5x4x3x5x5xf32>) -> tensor<20x3x5x5xf32>
// BG-BOTH-NEXT: stablehlo.reshape %{{[^ ]+}} : (tensor<5x6x3x3x3xf32>) -> tensor<30x3x3x3xf32>
// BG-BOTH-NEXT: stablehlo.convolution({{.*}}batch_group_count = 10 : i64, feature_group_count = 1 : i64{{.*}} : (tensor<20x3x5x5xf32>, tensor<30x3x3x3xf32>) -> tensor<2x30x3x3xf32>
func.func @batch_groups(%x: tensor<4x3x5x5xf32>, %w: tensor<6x3x3x3xf32>) -> tensor<2x6x3x3xf32> {
  %0 = stablehlo.convolution(%x, %w) dim_numbers = [b, f, 0, 1]x[o, i, 0, 1]->[b, f, 0, 1], window = {stride = [1, 1], pad = [[0, 0], [0, 0]], lhs_dilate = [1, 1], rhs_dilate = [1, 1], reverse = [false, false]} {batch_group_count = 2 : i64, feature_group_count = 1 : i64, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]} : (tensor<4x3x5x5xf32>, tensor<6x3x3x3xf32>) -> tensor<2x6x3x3xf32>
  return %0 : tensor<2x6x3x3xf32>
}

// 1-D, with the output batch not first ([0, b, f]): the lanes are unfolded
// from output dim 1.
// C1D-LABEL: func.func @conv1d
// C1D-SAME: %[[W:[^:]+]]: tensor<3x3x4xf32>
// C1D: stablehlo.reshape %{{[^ ]+}} : (tensor<5x2x9x3xf32>) -> tensor<10x9x3xf32>
// C1D-NEXT: stablehlo.convolution(%{{[^,]+}}, %[[W]]) dim_numbers = [b, 0, f]x[0, i, o]->[0, b, f], window = {stride = [2], pad = {{\[\[}}2, 1]], lhs_dilate = [1], rhs_dilate = [2]{{.*}} : (tensor<10x9x3xf32>, tensor<3x3x4xf32>) -> tensor<4x10x4xf32>
// C1D-NEXT: stablehlo.reshape %{{[^ ]+}} : (tensor<4x10x4xf32>) -> tensor<4x5x2x4xf32>
// C1D-NEXT: stablehlo.transpose %{{[^,]+}}, dims = [1, 0, 2, 3] : (tensor<4x5x2x4xf32>) -> tensor<5x4x2x4xf32>
func.func @conv1d(%x: tensor<2x9x3xf32>, %w: tensor<3x3x4xf32>) -> tensor<4x2x4xf32> {
  %0 = stablehlo.convolution(%x, %w) dim_numbers = [b, 0, f]x[0, i, o]->[0, b, f], window = {stride = [2], pad = [[2, 1]], lhs_dilate = [1], rhs_dilate = [2], reverse = [false]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]} : (tensor<2x9x3xf32>, tensor<3x3x4xf32>) -> tensor<4x2x4xf32>
  return %0 : tensor<4x2x4xf32>
}

// 3-D, kernel batched.
// C3D-LABEL: func.func @conv3d
// C3D: stablehlo.reshape %{{[^ ]+}} : (tensor<5x3x2x2x2x2xf32>) -> tensor<15x2x2x2x2xf32>
// C3D-NEXT: stablehlo.convolution({{.*}}window = {stride = [1, 2, 1]{{.*}} : (tensor<1x2x4x4x4xf32>, tensor<15x2x2x2x2xf32>) -> tensor<1x15x4x2x4xf32>
// The move of the batch past the unit dim 0 is a reshape (passes/layout.py),
// folded into the reshape that splits the output features.
// C3D-NEXT: stablehlo.reshape %{{[^ ]+}} : (tensor<1x15x4x2x4xf32>) -> tensor<5x1x3x4x2x4xf32>
// C3D-NOT: transpose
func.func @conv3d(%x: tensor<1x2x4x4x4xf32>, %w: tensor<3x2x2x2x2xf32>) -> tensor<1x3x4x2x4xf32> {
  %0 = stablehlo.convolution(%x, %w) dim_numbers = [b, f, 0, 1, 2]x[o, i, 0, 1, 2]->[b, f, 0, 1, 2], window = {stride = [1, 2, 1], pad = [[0, 1], [0, 0], [0, 1]], lhs_dilate = [1, 1, 1], rhs_dilate = [1, 1, 1], reverse = [false, false, false]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]} : (tensor<1x2x4x4x4xf32>, tensor<3x2x2x2x2xf32>) -> tensor<1x3x4x2x4xf32>
  return %0 : tensor<1x3x4x2x4xf32>
}
