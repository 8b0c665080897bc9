// The layout pass (passes/layout.py): the transpose that moves an argument
// batched on axis 1 to the front is sunk into its consumers, which then work on
// the unmoved argument through their dimension attributes; what is left moves
// smaller results, or cancels with the move to out_axes.
//
// RUN: stablehlo-batch-opt %s --func=topk --axis-size=4 --in-axes=1 | filecheck %s --check-prefix=TOPK
// RUN: stablehlo-batch-opt %s --func=topk --axis-size=4 --in-axes=1 --out-axes=1 | filecheck %s --check-prefix=TOPK-OUT1
// RUN: stablehlo-batch-opt %s --func=topk_composite --axis-size=4 --in-axes=1 | filecheck %s --check-prefix=COMP
// RUN: stablehlo-batch-opt %s --func=reduce_sum --axis-size=4 --in-axes=1 | filecheck %s --check-prefix=RED
// RUN: stablehlo-batch-opt %s --func=slice_exp --axis-size=4 --in-axes=1 | filecheck %s --check-prefix=SLICE
// RUN: stablehlo-batch-opt %s --func=matmul --axis-size=4 --in-axes=1,none | filecheck %s --check-prefix=DOT
// RUN: stablehlo-batch-opt %s --func=pool --axis-size=4 --in-axes=-1 | filecheck %s --check-prefix=POOL
// RUN: stablehlo-batch-opt %s --func=scan --axis-size=4 --in-axes=1 | filecheck %s --check-prefix=SCAN

// top_k on the unmoved input (the last dim stays last); its results, 16x
// smaller here, are moved instead.
// TOPK-LABEL: func.func @topk
// TOPK-SAME: (%[[X:[^:]+]]: tensor<3x4x8xf32>)
// TOPK-NOT: transpose
// TOPK: chlo.top_k(%[[X]], k = 2) : tensor<3x4x8xf32> -> (tensor<3x4x2xf32>, tensor<3x4x2xi32>)
// TOPK-DAG: stablehlo.transpose %{{.*}}, dims = [1, 0, 2] : (tensor<3x4x2xi32>) -> tensor<4x3x2xi32>
// TOPK-DAG: stablehlo.transpose %{{.*}}, dims = [1, 0, 2] : (tensor<3x4x2xf32>) -> tensor<4x3x2xf32>
// TOPK: return
// With out_axes 1 too, nothing moves at all.
// TOPK-OUT1-LABEL: func.func @topk
// TOPK-OUT1-NOT: transpose
// TOPK-OUT1: chlo.top_k(%{{.*}}, k = 2) : tensor<3x4x8xf32> -> (tensor<3x4x2xf32>, tensor<3x4x2xi32>)
// TOPK-OUT1-NOT: transpose
// TOPK-OUT1: return
func.func @topk(%x: tensor<3x8xf32>) -> (tensor<3x2xf32>, tensor<3x2xi32>) {
  %v, %i = chlo.top_k(%x, k = 2) : tensor<3x8xf32> -> (tensor<3x2xf32>, tensor<3x2xi32>)
  return %v, %i : tensor<3x2xf32>, tensor<3x2xi32>
}

// jax's composite form: the transpose moves into the decomposition, where
// the sort takes it in its dimension and the slices in their bounds, and out
// of it to the composite's results.
// COMP-LABEL: func.func @topk_composite
// COMP-SAME: (%[[X:[^:]+]]: tensor<3x4x8xf32>)
// COMP-NOT: transpose
// COMP: stablehlo.composite "chlo.top_k" %[[X]] {{.*}} : (tensor<3x4x8xf32>) -> (tensor<3x4x2xf32>, tensor<3x4x2xi32>)
// COMP-COUNT-2: stablehlo.transpose
// COMP: return
// COMP-LABEL: func.func private @top_k_impl_b1
// COMP-SAME: (%[[A:[^:]+]]: tensor<3x4x8xf32>)
// COMP-NOT: transpose
// COMP: stablehlo.broadcast_in_dim %{{.*}}, dims = [0, 2] : (tensor<3x8xi32>) -> tensor<3x4x8xi32>
// COMP: "stablehlo.sort"(%[[A]], %{{.*}}) <{dimension = 2 : i64
// COMP: stablehlo.slice %{{.*}} [0:3, 0:4, 0:2]
// COMP-NOT: transpose
// COMP: return
func.func @topk_composite(%x: tensor<3x8xf32>) -> (tensor<3x2xf32>, tensor<3x2xi32>) {
  %0:2 = stablehlo.composite "chlo.top_k" %x {composite_attributes = {k = 2 : i64}, decomposition = @top_k_impl, version = 1 : i32} : (tensor<3x8xf32>) -> (tensor<3x2xf32>, tensor<3x2xi32>)
  return %0#0, %0#1 : tensor<3x2xf32>, tensor<3x2xi32>
}

func.func private @top_k_impl(%x: tensor<3x8xf32>) -> (tensor<3x2xf32>, tensor<3x2xi32>) {
  %i = stablehlo.iota dim = 1 : tensor<3x8xi32>
  %s:2 = "stablehlo.sort"(%x, %i) <{dimension = 1 : i64, is_stable = true}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>, %c: tensor<i32>, %d: tensor<i32>):
    %p = stablehlo.compare GT, %a, %b, TOTALORDER : (tensor<f32>, tensor<f32>) -> tensor<i1>
    stablehlo.return %p : tensor<i1>
  }) : (tensor<3x8xf32>, tensor<3x8xi32>) -> (tensor<3x8xf32>, tensor<3x8xi32>)
  %v = stablehlo.slice %s#0 [0:3, 0:2] : (tensor<3x8xf32>) -> tensor<3x2xf32>
  %j = stablehlo.slice %s#1 [0:3, 0:2] : (tensor<3x8xi32>) -> tensor<3x2xi32>
  return %v, %j : tensor<3x2xf32>, tensor<3x2xi32>
}

// The reduce runs over dim 0 of the unmoved input: its result is batch-first.
// RED-LABEL: func.func @reduce_sum
// RED-NOT: transpose
// RED: stablehlo.reduce(%{{.*}} init: %{{.*}}) applies stablehlo.add across dimensions = [0] : (tensor<3x4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
// RED-NOT: transpose
// RED: return
func.func @reduce_sum(%x: tensor<3x8xf32>) -> tensor<8xf32> {
  %c = stablehlo.constant dense<0.0> : tensor<f32>
  %0 = stablehlo.reduce(%x init: %c) applies stablehlo.add across dimensions = [0] : (tensor<3x8xf32>, tensor<f32>) -> tensor<8xf32>
  return %0 : tensor<8xf32>
}

// The slice and the exp run unmoved, the (smaller) result is moved.
// SLICE-LABEL: func.func @slice_exp
// SLICE-NOT: transpose
// SLICE: stablehlo.slice %{{.*}} [1:3, 0:4, 0:8:2] : (tensor<3x4x8xf32>) -> tensor<2x4x4xf32>
// SLICE: stablehlo.exponential %{{.*}} : tensor<2x4x4xf32>
// SLICE: stablehlo.transpose %{{.*}}, dims = [1, 0, 2] : (tensor<2x4x4xf32>) -> tensor<4x2x4xf32>
// SLICE-NEXT: return
func.func @slice_exp(%x: tensor<3x8xf32>) -> tensor<2x4xf32> {
  %0 = stablehlo.slice %x [1:3, 0:8:2] : (tensor<3x8xf32>) -> tensor<2x4xf32>
  %1 = stablehlo.exponential %0 : tensor<2x4xf32>
  return %1 : tensor<2x4xf32>
}

// dot_general contracts dim 2 of the unmoved input, as jax.vmap's rule does.
// DOT-LABEL: func.func @matmul
// DOT-NOT: transpose
// DOT: stablehlo.dot_general %{{.*}}, %{{.*}}, contracting_dims = [2] x [0] : (tensor<3x4x8xf32>, tensor<8x5xf32>) -> tensor<3x4x5xf32>
// DOT: stablehlo.transpose %{{.*}}, dims = [1, 0, 2] : (tensor<3x4x5xf32>) -> tensor<4x3x5xf32>
// DOT-NEXT: return
func.func @matmul(%x: tensor<3x8xf32>, %w: tensor<8x5xf32>) -> tensor<3x5xf32> {
  %0 = stablehlo.dot_general %x, %w, contracting_dims = [1] x [0] : (tensor<3x8xf32>, tensor<8x5xf32>) -> tensor<3x5xf32>
  return %0 : tensor<3x5xf32>
}

// reduce_window with the batch last: the window attributes are permuted.
// POOL-LABEL: func.func @pool
// POOL-NOT: transpose
// POOL: "stablehlo.reduce_window"{{.*}}window_dimensions = array<i64: 2, 2, 1>, window_strides = array<i64: 2, 2, 1>
// POOL: (tensor<4x6x4xf32>, tensor<f32>) -> tensor<2x3x4xf32>
// POOL: stablehlo.transpose %{{.*}}, dims = [2, 0, 1] : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
// POOL-NEXT: return
func.func @pool(%x: tensor<4x6xf32>) -> tensor<2x3xf32> {
  %c = stablehlo.constant dense<0xFF800000> : tensor<f32>
  %0 = "stablehlo.reduce_window"(%x, %c) <{window_dimensions = array<i64: 2, 2>, window_strides = array<i64: 2, 2>}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %m = stablehlo.maximum %a, %b : tensor<f32>
    stablehlo.return %m : tensor<f32>
  }) : (tensor<4x6xf32>, tensor<f32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// A scan over xs batched on axis 1: xs is carried unmoved (a loop-invariant
// carry), and the per-step dynamic_slice inside the callee takes the move;
// the row it slices is 1x4x3, so the move left is a reshape.
// SCAN-LABEL: func.func @scan
// SCAN-SAME: (%[[XS:[^:]+]]: tensor<5x4x3xf32>)
// SCAN-NOT: transpose
// SCAN: stablehlo.while(%{{[^ ]+}} = %[[XS]],
// SCAN: func.call @row_b10(%{{.*}}) : (tensor<5x4x3xf32>, tensor<i32>) -> tensor<4x3xf32>
// SCAN-LABEL: func.func private @row_b10
// SCAN-NOT: transpose
// SCAN: stablehlo.dynamic_slice %{{.*}}, sizes = [1, 4, 3] : (tensor<5x4x3xf32>, tensor<i32>, tensor<i32>, tensor<i32>) -> tensor<1x4x3xf32>
// SCAN-NEXT: stablehlo.reshape %{{.*}} : (tensor<1x4x3xf32>) -> tensor<4x3xf32>
// SCAN-NOT: transpose
// SCAN: return
func.func @scan(%xs: tensor<5x3xf32>) -> tensor<3xf32> {
  %c0 = stablehlo.constant dense<0> : tensor<i32>
  %c1 = stablehlo.constant dense<1> : tensor<i32>
  %c5 = stablehlo.constant dense<5> : tensor<i32>
  %z = stablehlo.constant dense<0.0> : tensor<3xf32>
  %r:3 = stablehlo.while(%a = %xs, %i = %c0, %h = %z) : tensor<5x3xf32>, tensor<i32>, tensor<3xf32>
  cond {
    %p = stablehlo.compare LT, %i, %c5, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
    stablehlo.return %p : tensor<i1>
  } do {
    %s = func.call @row(%a, %i) : (tensor<5x3xf32>, tensor<i32>) -> tensor<3xf32>
    %n = stablehlo.add %h, %s : tensor<3xf32>
    %j = stablehlo.add %i, %c1 : tensor<i32>
    stablehlo.return %a, %j, %n : tensor<5x3xf32>, tensor<i32>, tensor<3xf32>
  }
  return %r#2 : tensor<3xf32>
}

func.func private @row(%a: tensor<5x3xf32>, %i: tensor<i32>) -> tensor<3xf32> {
  %c0 = stablehlo.constant dense<0> : tensor<i32>
  %0 = stablehlo.dynamic_slice %a, %i, %c0, sizes = [1, 3] : (tensor<5x3xf32>, tensor<i32>, tensor<i32>) -> tensor<1x3xf32>
  %1 = stablehlo.reshape %0 : (tensor<1x3xf32>) -> tensor<3xf32>
  return %1 : tensor<3xf32>
}

// RUN: stablehlo-batch-opt %s --func=select_gt --axis-size=4 --in-axes=1,1 --out-axes=1 | filecheck %s --check-prefix=SEL
// RUN: stablehlo-batch-opt %s --func=pad_reverse --axis-size=4 --in-axes=-1 --out-axes=-1 | filecheck %s --check-prefix=PAD
// RUN: stablehlo-batch-opt %s --func=concat --axis-size=4 --in-axes=1,1 --out-axes=1 | filecheck %s --check-prefix=CAT
// RUN: stablehlo-batch-opt %s --func=gather_rows --axis-size=4 --in-axes=1,none | filecheck %s --check-prefix=GATHER
// RUN: stablehlo-batch-opt %s --func=conv_nchw_input --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=CONV
// RUN: stablehlo-batch-opt %s --func=scan_ys --axis-size=4 --in-axes=1 --out-axes=1 | filecheck %s --check-prefix=YS

// Both inputs feed two consumers each (compare and select, compare and
// multiply): the moves sink into all of them, meet at the select and cancel
// with out_axes 1. Nothing moves.
// SEL-LABEL: func.func @select_gt
// SEL-NOT: transpose
// SEL: stablehlo.compare GT, %{{.*}}, %{{.*}}, FLOAT : (tensor<3x4x6xf32>, tensor<3x4x6xf32>) -> tensor<3x4x6xi1>
// SEL: stablehlo.broadcast_in_dim %{{.*}}, dims = [0, 2] : (tensor<3x6xf32>) -> tensor<3x4x6xf32>
// SEL: stablehlo.select %{{.*}} : tensor<3x4x6xi1>, tensor<3x4x6xf32>
// SEL-NOT: transpose
// SEL: return
func.func @select_gt(%x: tensor<3x6xf32>, %y: tensor<3x6xf32>) -> tensor<3x6xf32> {
  %p = stablehlo.compare GT, %x, %y, FLOAT : (tensor<3x6xf32>, tensor<3x6xf32>) -> tensor<3x6xi1>
  %c = stablehlo.constant dense<2.0> : tensor<3x6xf32>
  %m = stablehlo.multiply %c, %y : tensor<3x6xf32>
  %s = stablehlo.select %p, %x, %m : tensor<3x6xi1>, tensor<3x6xf32>
  return %s : tensor<3x6xf32>
}

// reverse and pad take the move in their dimensions / paddings.
// PAD-LABEL: func.func @pad_reverse
// PAD-NOT: transpose
// PAD: stablehlo.reverse %{{.*}}, dims = [0] : tensor<3x6x4xf32>
// PAD: stablehlo.pad %{{.*}}, low = [1, 0, 0], high = [2, 3, 0], interior = [0, 1, 0] : (tensor<3x6x4xf32>, tensor<f32>) -> tensor<6x14x4xf32>
// PAD-NOT: transpose
// PAD: return
func.func @pad_reverse(%x: tensor<3x6xf32>) -> tensor<6x10xf32> {
  %z = stablehlo.constant dense<0.0> : tensor<f32>
  %r = stablehlo.reverse %x, dims = [0] : tensor<3x6xf32>
  %p = stablehlo.pad %r, %z, low = [1, 0], high = [2, 3], interior = [0, 1] : (tensor<3x6xf32>, tensor<f32>) -> tensor<6x14xf32>
  %s = stablehlo.slice %p [0:6, 0:10] : (tensor<6x14xf32>) -> tensor<6x10xf32>
  return %s : tensor<6x10xf32>
}

// CAT-LABEL: func.func @concat
// CAT-NOT: transpose
// CAT: stablehlo.concatenate %{{.*}}, %{{.*}}, dim = 0 : (tensor<3x4x6xf32>, tensor<2x4x6xf32>) -> tensor<5x4x6xf32>
// CAT-NOT: transpose
// CAT: return
func.func @concat(%x: tensor<3x6xf32>, %y: tensor<2x6xf32>) -> tensor<5x6xf32> {
  %c = stablehlo.concatenate %x, %y, dim = 0 : (tensor<3x6xf32>, tensor<2x6xf32>) -> tensor<5x6xf32>
  return %c : tensor<5x6xf32>
}

// The gather slices the unmoved table: its operand dimension numbers take
// the move (the batch is an offset dim, in the same order).
// GATHER-LABEL: func.func @gather_rows
// GATHER-SAME: (%[[T:[^:]+]]: tensor<5x4x6xf32>
// GATHER-NOT: transpose
// GATHER: "stablehlo.gather"(%[[T]], %{{.*}}) <{dimension_numbers = #stablehlo.gather<offset_dims = [0, 2], collapsed_slice_dims = [0], start_index_map = [0], index_vector_dim = 1>, indices_are_sorted = false, slice_sizes = array<i64: 1, 4, 6>}>
// GATHER-NOT: transpose
// GATHER: return
func.func @gather_rows(%t: tensor<5x6xf32>, %i: tensor<3x1xi32>) -> tensor<3x6xf32> {
  %0 = "stablehlo.gather"(%t, %i) <{dimension_numbers = #stablehlo.gather<offset_dims = [1], collapsed_slice_dims = [0], start_index_map = [0], index_vector_dim = 1>, indices_are_sorted = false, slice_sizes = array<i64: 1, 6>}> : (tensor<5x6xf32>, tensor<3x1xi32>) -> tensor<3x6xf32>
  return %0 : tensor<3x6xf32>
}

// The program's own NCHW -> NHWC move of the (unbatched) image goes into
// the convolution's input dimension numbers; only the batched kernel's
// moves into the features (as vmap's) are left.
// CONV-LABEL: func.func @conv_nchw_input
// CONV-SAME: (%[[X:[^:]+]]: tensor<1x2x6x6xf32>
// CONV-NOT: stablehlo.transpose %[[X]]
// CONV: stablehlo.convolution(%[[X]], %{{.*}}) dim_numbers = [b, f, 0, 1]x[0, 1, i, o]->[b, 0, 1, f]
// CONV-SAME: (tensor<1x2x6x6xf32>, tensor<3x3x2x16xf32>) -> tensor<1x6x6x16xf32>
func.func @conv_nchw_input(%x: tensor<1x2x6x6xf32>, %w: tensor<3x3x2x4xf32>) -> tensor<1x6x6x4xf32> {
  %t = stablehlo.transpose %x, dims = [0, 2, 3, 1] : (tensor<1x2x6x6xf32>) -> tensor<1x6x6x2xf32>
  %0 = stablehlo.convolution(%t, %w) dim_numbers = [b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f], window = {stride = [1, 1], pad = [[1, 1], [1, 1]]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64} : (tensor<1x6x6x2xf32>, tensor<3x3x2x4xf32>) -> tensor<1x6x6x4xf32>
  return %0 : tensor<1x6x6x4xf32>
}

// A scan's stacked ys (a varying while carry) returned at out_axes 1: the
// carry is kept in that layout (its broadcast init takes it), the per-step
// row is reshaped into it (unit dims only) and the dynamic_update_slice
// writes it there; nothing moves before or after the loop.
// YS-LABEL: func.func @scan_ys
// YS-SAME: (%[[XS:[^:]+]]: tensor<5x4x3xf32>) -> tensor<5x4x3xf32>
// YS-NOT: transpose
// YS: stablehlo.broadcast_in_dim %{{.*}}, dims = [0, 2] : (tensor<5x3xf32>) -> tensor<5x4x3xf32>
// YS: stablehlo.while({{.*}}) : tensor<5x4x3xf32>, tensor<i32>, tensor<5x4x3xf32>
// YS: stablehlo.dynamic_update_slice %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<5x4x3xf32>, tensor<1x4x3xf32>, tensor<i32>, tensor<i32>, tensor<i32>) -> tensor<5x4x3xf32>
// YS-NOT: transpose
// YS: return %{{.*}} : tensor<5x4x3xf32>
func.func @scan_ys(%xs: tensor<5x3xf32>) -> tensor<5x3xf32> {
  %c0 = stablehlo.constant dense<0> : tensor<i32>
  %c1 = stablehlo.constant dense<1> : tensor<i32>
  %c5 = stablehlo.constant dense<5> : tensor<i32>
  %z = stablehlo.constant dense<0.0> : tensor<5x3xf32>
  %r:3 = stablehlo.while(%a = %xs, %i = %c0, %ys = %z) : tensor<5x3xf32>, tensor<i32>, tensor<5x3xf32>
  cond {
    %p = stablehlo.compare LT, %i, %c5, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
    stablehlo.return %p : tensor<i1>
  } do {
    %row = stablehlo.dynamic_slice %a, %i, %c0, sizes = [1, 3] : (tensor<5x3xf32>, tensor<i32>, tensor<i32>) -> tensor<1x3xf32>
    %e = stablehlo.exponential %row : tensor<1x3xf32>
    %u = stablehlo.dynamic_update_slice %ys, %e, %i, %c0 : (tensor<5x3xf32>, tensor<1x3xf32>, tensor<i32>, tensor<i32>) -> tensor<5x3xf32>
    %j = stablehlo.add %i, %c1 : tensor<i32>
    stablehlo.return %a, %j, %u : tensor<5x3xf32>, tensor<i32>, tensor<5x3xf32>
  }
  return %r#2 : tensor<5x3xf32>
}

// RUN: stablehlo-batch-opt %s --func=head_split --axis-size=4 --in-axes=1,1 | filecheck %s --check-prefix=HEADS
// RUN: stablehlo-batch-opt %s --func=merge_dims --axis-size=4 --in-axes=1 --out-axes=1 | filecheck %s --check-prefix=MERGE
// RUN: stablehlo-batch-opt %s --func=merge_across_batch --axis-size=4 --in-axes=1 | filecheck %s --check-prefix=ACROSS
// RUN: stablehlo-batch-opt %s --func=center --axis-size=4 --in-axes=-1 --out-axes=-1 | filecheck %s --check-prefix=CENTER

// A head split (s, d) -> (s, h, d / h) with the batch on axis 1: the reshape
// splits d of the unmoved input, the move goes to its result and the
// attention-style dot_general takes it in its dimension numbers (batching
// dims b and h): nothing moves.
// HEADS-LABEL: func.func @head_split
// HEADS-SAME: (%[[X:[^:]+]]: tensor<3x4x8xf32>, %[[W:[^:]+]]: tensor<3x4x8xf32>)
// HEADS-NOT: transpose
// HEADS-DAG: stablehlo.reshape %[[X]] : (tensor<3x4x8xf32>) -> tensor<3x4x2x4xf32>
// HEADS-DAG: stablehlo.reshape %[[W]] : (tensor<3x4x8xf32>) -> tensor<3x4x2x4xf32>
// HEADS: stablehlo.dot_general %{{.*}}, %{{.*}}, batching_dims = [1, 2] x [1, 2], contracting_dims = [3] x [3]{{.*}} : (tensor<3x4x2x4xf32>, tensor<3x4x2x4xf32>) -> tensor<4x2x3x3xf32>
// HEADS-NOT: transpose
// HEADS: return
func.func @head_split(%x: tensor<3x8xf32>, %w: tensor<3x8xf32>) -> tensor<2x3x3xf32> {
  %a = stablehlo.reshape %x : (tensor<3x8xf32>) -> tensor<3x2x4xf32>
  %b = stablehlo.reshape %w : (tensor<3x8xf32>) -> tensor<3x2x4xf32>
  %d = stablehlo.dot_general %a, %b, batching_dims = [1] x [1], contracting_dims = [2] x [2] : (tensor<3x2x4xf32>, tensor<3x2x4xf32>) -> tensor<2x3x3xf32>
  return %d : tensor<2x3x3xf32>
}

// Merging two dims that are adjacent and in order in the unmoved input
// (the batch elsewhere): the reshape merges them there; with out_axes 1 the
// move cancels.
// MERGE-LABEL: func.func @merge_dims
// MERGE-SAME: (%[[X:[^:]+]]: tensor<3x4x2x5xf32>)
// MERGE-NOT: transpose
// MERGE: stablehlo.reshape %[[X]] : (tensor<3x4x2x5xf32>) -> tensor<3x4x10xf32>
// MERGE-NOT: transpose
// MERGE: return %{{.*}} : tensor<3x4x10xf32>
func.func @merge_dims(%x: tensor<3x2x5xf32>) -> tensor<3x10xf32> {
  %0 = stablehlo.reshape %x : (tensor<3x2x5xf32>) -> tensor<3x10xf32>
  return %0 : tensor<3x10xf32>
}

// A merge of the dims on both sides of the batch cannot take the move: the
// transpose stays before the reshape.
// ACROSS-LABEL: func.func @merge_across_batch
// ACROSS: stablehlo.transpose %{{.*}}, dims = [1, 0, 2] : (tensor<3x4x5xf32>) -> tensor<4x3x5xf32>
// ACROSS: stablehlo.reshape %{{.*}} : (tensor<4x3x5xf32>) -> tensor<4x15xf32>
// ACROSS: return
func.func @merge_across_batch(%x: tensor<3x5xf32>) -> tensor<15xf32> {
  %0 = stablehlo.reshape %x : (tensor<3x5xf32>) -> tensor<15xf32>
  return %0 : tensor<15xf32>
}

// x - mean(x, keepdims) with the batch last, in and out: the reduce's result
// goes through the keepdims broadcast (it only adds a unit dim) and the
// broadcast back takes it; the entry and exit moves cancel.
// CENTER-LABEL: func.func @center
// CENTER-SAME: (%[[X:[^:]+]]: tensor<3x8x4xf32>)
// CENTER-NOT: transpose
// CENTER: stablehlo.reduce(%[[X]] init: %{{.*}}) applies stablehlo.add across dimensions = [1] : (tensor<3x8x4xf32>, tensor<f32>) -> tensor<3x4xf32>
// CENTER-NOT: transpose
// CENTER: stablehlo.subtract %[[X]], %{{.*}} : tensor<3x8x4xf32>
// CENTER-NOT: transpose
// CENTER: return %{{.*}} : tensor<3x8x4xf32>
func.func @center(%x: tensor<3x8xf32>) -> tensor<3x8xf32> {
  %c = stablehlo.constant dense<0.0> : tensor<f32>
  %s = stablehlo.reduce(%x init: %c) applies stablehlo.add across dimensions = [1] : (tensor<3x8xf32>, tensor<f32>) -> tensor<3xf32>
  %k = stablehlo.broadcast_in_dim %s, dims = [0] : (tensor<3xf32>) -> tensor<3x1xf32>
  %n = stablehlo.constant dense<8.0> : tensor<3x1xf32>
  %m = stablehlo.divide %k, %n : tensor<3x1xf32>
  %b = stablehlo.broadcast_in_dim %m, dims = [0, 1] : (tensor<3x1xf32>) -> tensor<3x8xf32>
  %0 = stablehlo.subtract %x, %b : tensor<3x8xf32>
  return %0 : tensor<3x8xf32>
}
