// Control flow, sorting and dynamic slices (passes/rules/control_flow.py,
// passes/rules/indexing.py).
//
// RUN: stablehlo-batch-opt %s --func=counter_loop --axis-size=4 --in-axes=0 --out-axes=none,0 | filecheck %s --check-prefix=COUNTER
// RUN: stablehlo-batch-opt %s --func=bounded_loop --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=BPRED
// RUN: stablehlo-batch-opt %s --func=bounded_loop --axis-size=4 --in-axes=none,0 --out-axes=none,0 | filecheck %s --check-prefix=UPRED
// RUN: stablehlo-batch-opt %s --func=if_op --axis-size=4 --in-axes=none,0,0 | filecheck %s --check-prefix=IF-U
// RUN: stablehlo-batch-opt %s --func=if_op --axis-size=4 --in-axes=0,0,none | filecheck %s --check-prefix=IF-B
// RUN: stablehlo-batch-opt %s --func=if_loop --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=IF-FAST
// RUN: stablehlo-batch-opt %s --func=case_op --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=CASE-B
// RUN: stablehlo-batch-opt %s --func=case_costly --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=CASE-FAST
// RUN: stablehlo-batch-opt %s --func=case_op --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=CASE-U
// RUN: stablehlo-batch-opt %s --func=no_results --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=NORES
// RUN: stablehlo-batch-opt %s --func=no_results --axis-size=b --in-axes=0,0 | filecheck %s --check-prefix=NORES-SYM
// RUN: not stablehlo-batch-opt %s --func=side_effect_if --axis-size=4 --in-axes=0,none 2>&1 | filecheck %s --check-prefix=SIDE
// RUN: stablehlo-batch-opt %s --func=sort_op --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=SORT
// RUN: stablehlo-batch-opt %s --func=top_k --axis-size=4 --in-axes=0 | filecheck %s --check-prefix=TOPK
// RUN: stablehlo-batch-opt %s --func=top_k_composite --axis-size=4 --in-axes=0 | filecheck %s --check-prefix=TOPK-COMP
// RUN: stablehlo-batch-opt %s --func=dyn_slice --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=DS-U
// RUN: stablehlo-batch-opt %s --func=dyn_slice --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=DS-B
// RUN: stablehlo-batch-opt %s --func=dyn_slice --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=DS-IDX
// RUN: stablehlo-batch-opt %s --func=dyn_update --axis-size=4 --in-axes=0,none,none | filecheck %s --check-prefix=DUS-U
// RUN: stablehlo-batch-opt %s --func=dyn_update --axis-size=4 --in-axes=0,0,0 | filecheck %s --check-prefix=DUS-B

// ---- while ------------------------------------------------------------------

// A counter whose update depends on nothing batched stays tensor<i32> (the
// fixed point of the carries); only the accumulator is batched. The predicate
// is unbatched: no reduction over lanes, no per-lane select.
// COUNTER-LABEL: func.func @counter_loop
// COUNTER-SAME: (%[[X:[^:]+]]: tensor<4x3xf32>) -> (tensor<i32>, tensor<4x3xf32>)
// COUNTER: stablehlo.while(%[[I:[^ ]+]] = %{{[^,]+}}, %[[ACC:[^ ]+]] = %[[X]]) : tensor<i32>, tensor<4x3xf32>
// COUNTER-NEXT: cond {
// COUNTER-NEXT: stablehlo.compare LT, %[[I]], %{{.*}} : (tensor<i32>, tensor<i32>) -> tensor<i1>
// COUNTER-NEXT: stablehlo.return %{{.*}} : tensor<i1>
// COUNTER-NEXT: } do {
// COUNTER-NEXT: stablehlo.add %[[I]], %{{.*}} : tensor<i32>
// COUNTER-NEXT: stablehlo.multiply %[[ACC]], %[[ACC]] : tensor<4x3xf32>
// COUNTER-NEXT: stablehlo.return %{{.*}}, %{{.*}} : tensor<i32>, tensor<4x3xf32>
// COUNTER-NEXT: }
// COUNTER-NOT: broadcast_in_dim
// COUNTER-NEXT: return %{{.*}}#0, %{{.*}}#1 : tensor<i32>, tensor<4x3xf32>
func.func @counter_loop(%x: tensor<3xf32>) -> (tensor<i32>, tensor<3xf32>) {
  %c0 = stablehlo.constant dense<0> : tensor<i32>
  %c1 = stablehlo.constant dense<1> : tensor<i32>
  %c5 = stablehlo.constant dense<5> : tensor<i32>
  %0:2 = stablehlo.while(%i = %c0, %acc = %x) : tensor<i32>, tensor<3xf32>
  cond {
    %p = stablehlo.compare LT, %i, %c5, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
    stablehlo.return %p : tensor<i1>
  } do {
    %i1 = stablehlo.add %i, %c1 : tensor<i32>
    %a1 = stablehlo.multiply %acc, %acc : tensor<3xf32>
    stablehlo.return %i1, %a1 : tensor<i32>, tensor<3xf32>
  }
  return %0#0, %0#1 : tensor<i32>, tensor<3xf32>
}

// A per-lane bound %n (captured by the cond region, not carried): the
// predicate is batched. The loop runs while any lane runs (reduce with `or`),
// the body recomputes each lane's predicate and freezes finished lanes with
// selects; the counter becomes batched too.
// BPRED-LABEL: func.func @bounded_loop
// BPRED-SAME: (%[[N:[^:]+]]: tensor<4xi32>, %[[X:[^:]+]]: tensor<4x3xf32>) -> (tensor<4xi32>, tensor<4x3xf32>)
// BPRED: %[[I0:[^ ]+]] = stablehlo.broadcast_in_dim %{{.*}}, dims = [] : (tensor<i32>) -> tensor<4xi32>
// BPRED-NEXT: stablehlo.while(%[[I:[^ ]+]] = %[[I0]], %[[ACC:[^ ]+]] = %[[X]]) : tensor<4xi32>, tensor<4x3xf32>
// BPRED-NEXT: cond {
// BPRED-NEXT: %[[P:[^ ]+]] = stablehlo.compare LT, %[[I]], %[[N]], SIGNED : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>
// BPRED-NEXT: %[[F:[^ ]+]] = stablehlo.constant dense<false> : tensor<i1>
// BPRED-NEXT: %[[ANY:[^ ]+]] = stablehlo.reduce(%[[P]] init: %[[F]]) applies stablehlo.or across dimensions = [0] : (tensor<4xi1>, tensor<i1>) -> tensor<i1>
// BPRED-NEXT: stablehlo.return %[[ANY]] : tensor<i1>
// BPRED-NEXT: } do {
// BPRED-NEXT: %[[LIVE:[^ ]+]] = stablehlo.compare LT, %[[I]], %[[N]], SIGNED : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>
// BPRED: %[[I1:[^ ]+]] = stablehlo.add %[[I]], %{{.*}} : tensor<4xi32>
// BPRED: %[[A1:[^ ]+]] = stablehlo.add %[[ACC]], %[[ACC]] : tensor<4x3xf32>
// BPRED: %[[SI:[^ ]+]] = stablehlo.select %[[LIVE]], %[[I1]], %[[I]] : tensor<4xi1>, tensor<4xi32>
// BPRED: %[[M:[^ ]+]] = stablehlo.broadcast_in_dim %[[LIVE]], dims = [0] : (tensor<4xi1>) -> tensor<4x3xi1>
// BPRED-NEXT: %[[SA:[^ ]+]] = stablehlo.select %[[M]], %[[A1]], %[[ACC]] : tensor<4x3xi1>, tensor<4x3xf32>
// BPRED-NEXT: stablehlo.return %[[SI]], %[[SA]] : tensor<4xi32>, tensor<4x3xf32>
// BPRED: return %{{.*}} : tensor<4xi32>, tensor<4x3xf32>
//
// Same loop with an unbatched bound: counter and predicate stay scalar.
// UPRED-LABEL: func.func @bounded_loop
// UPRED-SAME: (%[[N:[^:]+]]: tensor<i32>, %[[X:[^:]+]]: tensor<4x3xf32>) -> (tensor<i32>, tensor<4x3xf32>)
// UPRED-NOT: stablehlo.reduce
// UPRED-NOT: stablehlo.select
// UPRED: stablehlo.while(%{{[^ ]+}} = %{{[^,]+}}, %{{[^ ]+}} = %[[X]]) : tensor<i32>, tensor<4x3xf32>
// UPRED-NEXT: cond {
// UPRED-NEXT: stablehlo.compare LT, %{{.*}}, %[[N]], SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
// UPRED-NOT: stablehlo.reduce
// UPRED-NOT: stablehlo.select
// UPRED: return %{{.*}} : tensor<i32>, tensor<4x3xf32>
func.func @bounded_loop(%n: tensor<i32>, %x: tensor<3xf32>) -> (tensor<i32>, tensor<3xf32>) {
  %c0 = stablehlo.constant dense<0> : tensor<i32>
  %c1 = stablehlo.constant dense<1> : tensor<i32>
  %0:2 = stablehlo.while(%i = %c0, %acc = %x) : tensor<i32>, tensor<3xf32>
  cond {
    %p = stablehlo.compare LT, %i, %n, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
    stablehlo.return %p : tensor<i1>
  } do {
    %i1 = stablehlo.add %i, %c1 : tensor<i32>
    %a1 = stablehlo.add %acc, %acc : tensor<3xf32>
    stablehlo.return %i1, %a1 : tensor<i32>, tensor<3xf32>
  }
  return %0#0, %0#1 : tensor<i32>, tensor<3xf32>
}

// ---- if ---------------------------------------------------------------------

// Unbatched predicate: the op stays, its branches are batched.
// IF-U-LABEL: func.func @if_op
// IF-U-SAME: (%[[P:[^:]+]]: tensor<i1>, %[[X:[^:]+]]: tensor<4x3xf32>, %[[Y:[^:]+]]: tensor<4x3xf32>) -> tensor<4x3xf32>
// IF-U-NEXT: %[[R:[^ ]+]] = "stablehlo.if"(%[[P]]) ({
// IF-U-NEXT: stablehlo.add %[[X]], %[[Y]] : tensor<4x3xf32>
// IF-U-NEXT: stablehlo.return %{{.*}} : tensor<4x3xf32>
// IF-U-NEXT: }, {
// IF-U-NEXT: stablehlo.multiply %[[X]], %[[Y]] : tensor<4x3xf32>
// IF-U-NEXT: stablehlo.return %{{.*}} : tensor<4x3xf32>
// IF-U-NEXT: }) : (tensor<i1>) -> tensor<4x3xf32>
// IF-U-NEXT: return %[[R]] : tensor<4x3xf32>
//
// Batched predicate, cheap branches: both run, inlined, and a select picks
// per lane, as in vmap (a run-time "all lanes agree" test would cost more
// than the branch it skips).
// IF-B-LABEL: func.func @if_op
// IF-B-SAME: (%[[P:[^:]+]]: tensor<4xi1>, %[[X:[^:]+]]: tensor<4x3xf32>, %[[Y:[^:]+]]: tensor<3xf32>) -> tensor<4x3xf32>
// IF-B-NOT: stablehlo.if
// IF-B-NOT: stablehlo.reduce
// IF-B: %[[T:[^ ]+]] = stablehlo.add %[[X]], %{{.*}} : tensor<4x3xf32>
// IF-B: %[[E:[^ ]+]] = stablehlo.multiply %[[X]], %{{.*}} : tensor<4x3xf32>
// IF-B-NEXT: %[[M:[^ ]+]] = stablehlo.broadcast_in_dim %[[P]], dims = [0] : (tensor<4xi1>) -> tensor<4x3xi1>
// IF-B-NEXT: %[[S:[^ ]+]] = stablehlo.select %[[M]], %[[T]], %[[E]] : tensor<4x3xi1>, tensor<4x3xf32>
// IF-B-NEXT: return %[[S]] : tensor<4x3xf32>
func.func @if_op(%p: tensor<i1>, %x: tensor<3xf32>, %y: tensor<3xf32>) -> tensor<3xf32> {
  %0 = "stablehlo.if"(%p) ({
    %a = stablehlo.add %x, %y : tensor<3xf32>
    stablehlo.return %a : tensor<3xf32>
  }, {
    %b = stablehlo.multiply %x, %y : tensor<3xf32>
    stablehlo.return %b : tensor<3xf32>
  }) : (tensor<i1>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// Batched predicate, a branch with a loop: an outer if on "all lanes agree"
// (all true, or none true). Its first branch runs only the agreed branch (an
// inner if on "all true"); its second runs both inlined and picks per lane.
// IF-FAST-LABEL: func.func @if_loop
// IF-FAST-SAME: (%[[P:[^:]+]]: tensor<4xi1>, %[[X:[^:]+]]: tensor<4xf32>) -> tensor<4xf32>
// IF-FAST: %[[ALL:[^ ]+]] = stablehlo.reduce(%[[P]] init: %{{[^)]+}}) applies stablehlo.and across dimensions = [0] : (tensor<4xi1>, tensor<i1>) -> tensor<i1>
// IF-FAST: %[[ANY:[^ ]+]] = stablehlo.reduce(%[[P]] init: %{{[^)]+}}) applies stablehlo.or across dimensions = [0] : (tensor<4xi1>, tensor<i1>) -> tensor<i1>
// IF-FAST-NEXT: %[[NONE:[^ ]+]] = stablehlo.not %[[ANY]] : tensor<i1>
// IF-FAST-NEXT: %[[UNI:[^ ]+]] = stablehlo.or %[[ALL]], %[[NONE]] : tensor<i1>
// IF-FAST-NEXT: %[[R:[^ ]+]] = "stablehlo.if"(%[[UNI]]) ({
// IF-FAST-NEXT: %[[IN:[^ ]+]] = "stablehlo.if"(%[[ALL]]) ({
// IF-FAST: stablehlo.add %[[X]], %{{.*}} : tensor<4xf32>
// IF-FAST: }, {
// IF-FAST: stablehlo.while
// IF-FAST: }) : (tensor<i1>) -> tensor<4xf32>
// IF-FAST-NEXT: stablehlo.return %[[IN]] : tensor<4xf32>
// IF-FAST-NEXT: }, {
// IF-FAST: stablehlo.while
// IF-FAST: stablehlo.select %[[P]], %{{[^,]+}}, %{{[^ ]+}} : tensor<4xi1>, tensor<4xf32>
// IF-FAST: }) : (tensor<i1>) -> tensor<4xf32>
// IF-FAST-NEXT: return %[[R]] : tensor<4xf32>
func.func @if_loop(%p: tensor<i1>, %x: tensor<f32>) -> tensor<f32> {
  %0 = "stablehlo.if"(%p) ({
    %one = stablehlo.constant dense<1.0> : tensor<f32>
    %a = stablehlo.add %x, %one : tensor<f32>
    stablehlo.return %a : tensor<f32>
  }, {
    %ten = stablehlo.constant dense<10.0> : tensor<f32>
    %w = stablehlo.while(%c = %x) : tensor<f32>
    cond {
      %lt = stablehlo.compare LT, %c, %ten, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>
      stablehlo.return %lt : tensor<i1>
    } do {
      %two = stablehlo.constant dense<2.0> : tensor<f32>
      %d = stablehlo.multiply %c, %two : tensor<f32>
      stablehlo.return %d : tensor<f32>
    }
    stablehlo.return %w : tensor<f32>
  }) : (tensor<i1>) -> tensor<f32>
  return %0 : tensor<f32>
}

// ---- case -------------------------------------------------------------------

// Batched index, cheap branches: every branch runs and selects pick per
// lane; the last branch is the default (an index out of range takes it, as
// in stablehlo.case). Branches of an unbatched operand run once.
// CASE-B-LABEL: func.func @case_op
// CASE-B-SAME: (%[[I:[^:]+]]: tensor<4xi32>, %[[X:[^:]+]]: tensor<3xf32>) -> tensor<4x3xf32>
// CASE-B-NOT: stablehlo.if
// CASE-B-NOT: stablehlo.case
// CASE-B: stablehlo.negate %[[X]] : tensor<3xf32>
// CASE-B-NEXT: stablehlo.exponential %[[X]] : tensor<3xf32>
// CASE-B-NEXT: stablehlo.sine %[[X]] : tensor<3xf32>
// CASE-B: %[[K1:[^ ]+]] = stablehlo.constant dense<1> : tensor<4xi32>
// CASE-B-NEXT: %[[IS1:[^ ]+]] = stablehlo.compare EQ, %[[I]], %[[K1]] : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>
// CASE-B-NEXT: %[[M1:[^ ]+]] = stablehlo.broadcast_in_dim %[[IS1]], dims = [0] : (tensor<4xi1>) -> tensor<4x3xi1>
// CASE-B-NEXT: %[[SEL1:[^ ]+]] = stablehlo.select %[[M1]], %{{[^,]+}}, %{{[^ ]+}} : tensor<4x3xi1>, tensor<4x3xf32>
// CASE-B-NEXT: %[[K0:[^ ]+]] = stablehlo.constant dense<0> : tensor<4xi32>
// CASE-B-NEXT: %[[IS0:[^ ]+]] = stablehlo.compare EQ, %[[I]], %[[K0]] : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>
// CASE-B-NEXT: %[[M0:[^ ]+]] = stablehlo.broadcast_in_dim %[[IS0]], dims = [0] : (tensor<4xi1>) -> tensor<4x3xi1>
// CASE-B-NEXT: %[[SEL0:[^ ]+]] = stablehlo.select %[[M0]], %{{[^,]+}}, %[[SEL1]] : tensor<4x3xi1>, tensor<4x3xf32>
// CASE-B-NEXT: return %[[SEL0]] : tensor<4x3xf32>
//
// Unbatched index: the case stays, each branch is batched.
// CASE-U-LABEL: func.func @case_op
// CASE-U-SAME: (%[[I:[^:]+]]: tensor<i32>, %[[X:[^:]+]]: tensor<4x3xf32>) -> tensor<4x3xf32>
// CASE-U-NEXT: %[[R:[^ ]+]] = "stablehlo.case"(%[[I]]) ({
// CASE-U-NEXT: stablehlo.negate %[[X]] : tensor<4x3xf32>
// CASE-U: stablehlo.exponential %[[X]] : tensor<4x3xf32>
// CASE-U: stablehlo.sine %[[X]] : tensor<4x3xf32>
// CASE-U: }) : (tensor<i32>) -> tensor<4x3xf32>
// CASE-U-NEXT: return %[[R]] : tensor<4x3xf32>
func.func @case_op(%i: tensor<i32>, %x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = "stablehlo.case"(%i) ({
    %a = stablehlo.negate %x : tensor<3xf32>
    stablehlo.return %a : tensor<3xf32>
  }, {
    %b = stablehlo.exponential %x : tensor<3xf32>
    stablehlo.return %b : tensor<3xf32>
  }, {
    %c = stablehlo.sine %x : tensor<3xf32>
    stablehlo.return %c : tensor<3xf32>
  }) : (tensor<i32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// A batched selector of an if / case without results (jit(keep_unused=True)
// keeps a dead lax.cond whose branches only forward their operand as a case
// without results): nothing to select, no side effects, the op is removed
// rather than left with a per-lane selector (which does not verify).
// NORES-LABEL: func.func @no_results
// NORES-SAME: (%{{[^:]+}}: tensor<4xi32>, %[[X:[^:]+]]: tensor<4x3xf32>) -> tensor<4x3xf32>
// NORES-NOT: stablehlo.case
// NORES-NOT: stablehlo.if
// NORES: %[[S:[^ ]+]] = stablehlo.sine %[[X]] : tensor<4x3xf32>
// NORES-NEXT: return %[[S]] : tensor<4x3xf32>
// NORES-SYM-LABEL: func.func @no_results
// NORES-SYM-SAME: (%{{[^:]+}}: tensor<?xi32>, %[[X:[^:]+]]: tensor<?x3xf32>) -> tensor<?x3xf32>
// NORES-SYM-NOT: stablehlo.case
// NORES-SYM-NOT: stablehlo.if
// NORES-SYM: stablehlo.sine %[[X]] : tensor<?x3xf32>
func.func @no_results(%i: tensor<i32>, %x: tensor<3xf32>) -> tensor<3xf32> {
  "stablehlo.case"(%i) ({
    stablehlo.return
  }, {
    %a = stablehlo.negate %x : tensor<3xf32>
    stablehlo.return
  }) : (tensor<i32>) -> ()
  %c0 = stablehlo.constant dense<0> : tensor<i32>
  %p = stablehlo.compare GT, %i, %c0, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>
  "stablehlo.if"(%p) ({
    stablehlo.return
  }, {
    stablehlo.return
  }) : (tensor<i1>) -> ()
  %s = stablehlo.sine %x : tensor<3xf32>
  return %s : tensor<3xf32>
}

// A branch with side effects cannot run for lanes that did not take it.
// SIDE: {{^}}error: cannot batch 'stablehlo.if' in function @side_effect_if: a branch with side effects cannot run for lanes that did not take it at
func.func @side_effect_if(%p: tensor<i1>, %x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = "stablehlo.if"(%p) ({
    %a = stablehlo.custom_call @log_it(%x) {has_side_effect = true} : (tensor<3xf32>) -> tensor<3xf32>
    stablehlo.return %a : tensor<3xf32>
  }, {
    stablehlo.return %x : tensor<3xf32>
  }) : (tensor<i1>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// Batched index, a branch with a matrix product: all lanes equal to lane 0?
// Then an inner case on lane 0's index runs that branch alone (unbatched
// operand: once, then broadcast); otherwise every branch runs and selects
// pick per lane.
// CASE-FAST-LABEL: func.func @case_costly
// CASE-FAST-SAME: (%[[I:[^:]+]]: tensor<4xi32>, %[[X:[^:]+]]: tensor<3x3xf32>) -> tensor<4x3x3xf32>
// CASE-FAST-NEXT: %[[S0:[^ ]+]] = stablehlo.slice %[[I]] [0:1] : (tensor<4xi32>) -> tensor<1xi32>
// CASE-FAST-NEXT: %[[FIRST:[^ ]+]] = stablehlo.reshape %[[S0]] : (tensor<1xi32>) -> tensor<i32>
// CASE-FAST-NEXT: %[[BF:[^ ]+]] = stablehlo.broadcast_in_dim %[[FIRST]], dims = [] : (tensor<i32>) -> tensor<4xi32>
// CASE-FAST-NEXT: %[[SAME:[^ ]+]] = stablehlo.compare EQ, %[[I]], %[[BF]] : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>
// CASE-FAST-NEXT: %[[TRUE:[^ ]+]] = stablehlo.constant dense<true> : tensor<i1>
// CASE-FAST-NEXT: %[[UNI:[^ ]+]] = stablehlo.reduce(%[[SAME]] init: %[[TRUE]]) applies stablehlo.and across dimensions = [0]
// CASE-FAST-NEXT: %[[R:[^ ]+]] = "stablehlo.if"(%[[UNI]]) ({
// CASE-FAST-NEXT: %[[IN:[^ ]+]] = "stablehlo.case"(%[[FIRST]]) ({
// CASE-FAST-NEXT: stablehlo.dot_general %[[X]], %[[X]]
// CASE-FAST: stablehlo.sine %[[X]] : tensor<3x3xf32>
// CASE-FAST: }) : (tensor<i32>) -> tensor<3x3xf32>
// CASE-FAST-NEXT: %[[BIN:[^ ]+]] = stablehlo.broadcast_in_dim %[[IN]], dims = [1, 2] : (tensor<3x3xf32>) -> tensor<4x3x3xf32>
// CASE-FAST-NEXT: stablehlo.return %[[BIN]] : tensor<4x3x3xf32>
// CASE-FAST-NEXT: }, {
// CASE-FAST-NOT: stablehlo.case
// CASE-FAST: stablehlo.select
// CASE-FAST: }) : (tensor<i1>) -> tensor<4x3x3xf32>
// CASE-FAST-NEXT: return %[[R]] : tensor<4x3x3xf32>
func.func @case_costly(%i: tensor<i32>, %x: tensor<3x3xf32>) -> tensor<3x3xf32> {
  %0 = "stablehlo.case"(%i) ({
    %a = stablehlo.dot_general %x, %x, contracting_dims = [1] x [0] : (tensor<3x3xf32>, tensor<3x3xf32>) -> tensor<3x3xf32>
    stablehlo.return %a : tensor<3x3xf32>
  }, {
    %b = stablehlo.sine %x : tensor<3x3xf32>
    stablehlo.return %b : tensor<3x3xf32>
  }) : (tensor<i32>) -> tensor<3x3xf32>
  return %0 : tensor<3x3xf32>
}

// ---- sort / top_k -------------------------------------------------------------

// The sort dimension shifts by one; an unbatched operand sorted along with a
// batched one is broadcast; the comparator (on scalars) is unchanged.
// SORT-LABEL: func.func @sort_op
// SORT-SAME: (%[[K:[^:]+]]: tensor<4x2x5xf32>, %[[V:[^:]+]]: tensor<2x5xi32>) -> (tensor<4x2x5xf32>, tensor<4x2x5xi32>)
// SORT-NEXT: %[[BV:[^ ]+]] = stablehlo.broadcast_in_dim %[[V]], dims = [1, 2] : (tensor<2x5xi32>) -> tensor<4x2x5xi32>
// SORT-NEXT: %[[R:[^ ]+]]:2 = "stablehlo.sort"(%[[K]], %[[BV]]) <{dimension = 2 : i64, is_stable = true}> ({
// SORT-NEXT: ^bb0(%{{[^:]+}}: tensor<f32>, %{{[^:]+}}: tensor<f32>, %{{[^:]+}}: tensor<i32>, %{{[^:]+}}: tensor<i32>):
// SORT-NEXT: stablehlo.compare LT, %{{.*}}, TOTALORDER : (tensor<f32>, tensor<f32>) -> tensor<i1>
// SORT-NEXT: stablehlo.return
// SORT-NEXT: }) : (tensor<4x2x5xf32>, tensor<4x2x5xi32>) -> (tensor<4x2x5xf32>, tensor<4x2x5xi32>)
// SORT-NEXT: return %[[R]]#0, %[[R]]#1 : tensor<4x2x5xf32>, tensor<4x2x5xi32>
func.func @sort_op(%k: tensor<2x5xf32>, %v: tensor<2x5xi32>) -> (tensor<2x5xf32>, tensor<2x5xi32>) {
  %0:2 = "stablehlo.sort"(%k, %v) ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>, %c: tensor<i32>, %d: tensor<i32>):
    %lt = stablehlo.compare LT, %a, %b, TOTALORDER : (tensor<f32>, tensor<f32>) -> tensor<i1>
    stablehlo.return %lt : tensor<i1>
  }) {dimension = 1 : i64, is_stable = true} : (tensor<2x5xf32>, tensor<2x5xi32>) -> (tensor<2x5xf32>, tensor<2x5xi32>)
  return %0#0, %0#1 : tensor<2x5xf32>, tensor<2x5xi32>
}

// top_k works on the last dim, which the batch dim never is: only retyped.
// TOPK-LABEL: func.func @top_k
// TOPK-SAME: (%[[X:[^:]+]]: tensor<4x3x8xf32>) -> (tensor<4x3x2xf32>, tensor<4x3x2xi32>)
// TOPK-NEXT: %[[V:[^ ,]+]], %[[I:[^ ]+]] = chlo.top_k(%[[X]], k = 2) : tensor<4x3x8xf32> -> (tensor<4x3x2xf32>, tensor<4x3x2xi32>)
// TOPK-NEXT: return %[[V]], %[[I]] : tensor<4x3x2xf32>, tensor<4x3x2xi32>
func.func @top_k(%x: tensor<3x8xf32>) -> (tensor<3x2xf32>, tensor<3x2xi32>) {
  %0:2 = chlo.top_k(%x, k = 2) : tensor<3x8xf32> -> (tensor<3x2xf32>, tensor<3x2xi32>)
  return %0#0, %0#1 : tensor<3x2xf32>, tensor<3x2xi32>
}

// jax exports top_k as a composite: the name is kept (a backend may match
// it), retyped, with a batched clone of its decomposition.
// TOPK-COMP-LABEL: func.func @top_k_composite
// TOPK-COMP-SAME: (%[[X:[^:]+]]: tensor<4x3x8xf32>) -> (tensor<4x3x2xf32>, tensor<4x3x2xi32>)
// TOPK-COMP-NEXT: %[[R:[^ ]+]]:2 = stablehlo.composite "chlo.top_k" %[[X]] {composite_attributes = {k = 2 : i64}, decomposition = @[[IMPL:[^,]+]], version = 1 : i32} : (tensor<4x3x8xf32>) -> (tensor<4x3x2xf32>, tensor<4x3x2xi32>)
// TOPK-COMP-NEXT: return %[[R]]#0, %[[R]]#1 : tensor<4x3x2xf32>, tensor<4x3x2xi32>
// TOPK-COMP: func.func private @[[IMPL]](%{{[^:]+}}: tensor<4x3x8xf32>) -> (tensor<4x3x2xf32>, tensor<4x3x2xi32>)
// TOPK-COMP: "stablehlo.sort"(%{{.*}}) <{dimension = 2 : i64, is_stable = true}>
// TOPK-COMP: stablehlo.slice %{{.*}} [0:4, 0:3, 0:2] : (tensor<4x3x8xf32>) -> tensor<4x3x2xf32>
func.func @top_k_composite(%x: tensor<3x8xf32>) -> (tensor<3x2xf32>, tensor<3x2xi32>) {
  %0:2 = stablehlo.composite "chlo.top_k" %x {composite_attributes = {k = 2 : i64}, decomposition = @top_k_impl, version = 1 : i32} : (tensor<3x8xf32>) -> (tensor<3x2xf32>, tensor<3x2xi32>)
  return %0#0, %0#1 : tensor<3x2xf32>, tensor<3x2xi32>
}
func.func private @top_k_impl(%x: tensor<3x8xf32>) -> (tensor<3x2xf32>, tensor<3x2xi32>) {
  %0 = stablehlo.iota dim = 1 : tensor<3x8xi32>
  %1:2 = "stablehlo.sort"(%x, %0) ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>, %c: tensor<i32>, %d: tensor<i32>):
    %gt = stablehlo.compare GT, %a, %b, TOTALORDER : (tensor<f32>, tensor<f32>) -> tensor<i1>
    stablehlo.return %gt : tensor<i1>
  }) {dimension = 1 : i64, is_stable = true} : (tensor<3x8xf32>, tensor<3x8xi32>) -> (tensor<3x8xf32>, tensor<3x8xi32>)
  %2 = stablehlo.slice %1#0 [0:3, 0:2] : (tensor<3x8xf32>) -> tensor<3x2xf32>
  %3 = stablehlo.slice %1#1 [0:3, 0:2] : (tensor<3x8xi32>) -> tensor<3x2xi32>
  return %2, %3 : tensor<3x2xf32>, tensor<3x2xi32>
}

// ---- dynamic_slice / dynamic_update_slice ---------------------------------------

// Unbatched start index (a scan's per-step slice): still a dynamic_slice,
// with a zero start and the full batch on the new leading dim.
// DS-U-LABEL: func.func @dyn_slice
// DS-U-SAME: (%[[X:[^:]+]]: tensor<4x8x3xf32>, %[[I:[^:]+]]: tensor<i32>) -> tensor<4x2x3xf32>
// DS-U-NOT: gather
// DS-U: stablehlo.constant dense<0> : tensor<i32>
// DS-U-NEXT: %[[Z:[^ ]+]] = stablehlo.constant dense<0> : tensor<i32>
// DS-U-NEXT: %[[R:[^ ]+]] = stablehlo.dynamic_slice %[[X]], %[[Z]], %[[I]], %{{[^,]+}}, sizes = [4, 2, 3] : (tensor<4x8x3xf32>, tensor<i32>, tensor<i32>, tensor<i32>) -> tensor<4x2x3xf32>
// DS-U-NEXT: return %[[R]] : tensor<4x2x3xf32>
//
// Per-lane start index and batched operand: a gather with a batching dim;
// the [B, 2] start indices pair the lane's index with the constant 0.
// DS-B-LABEL: func.func @dyn_slice
// DS-B-SAME: (%[[X:[^:]+]]: tensor<4x8x3xf32>, %[[I:[^:]+]]: tensor<4xi32>) -> tensor<4x2x3xf32>
// DS-B-NOT: dynamic_slice
// DS-B: %[[C0:[^ ]+]] = stablehlo.reshape %[[I]] : (tensor<4xi32>) -> tensor<4x1xi32>
// DS-B: %[[IDX:[^ ]+]] = stablehlo.concatenate %[[C0]], %{{[^,]+}}, dim = 1 : (tensor<4x1xi32>, tensor<4x1xi32>) -> tensor<4x2xi32>
// DS-B-NEXT: %[[R:[^ ]+]] = "stablehlo.gather"(%[[X]], %[[IDX]])
// DS-B-SAME: offset_dims = [1, 2], operand_batching_dims = [0], start_indices_batching_dims = [0], start_index_map = [1, 2], index_vector_dim = 1
// DS-B-SAME: slice_sizes = array<i64: 1, 2, 3>
// DS-B-SAME: (tensor<4x8x3xf32>, tensor<4x2xi32>) -> tensor<4x2x3xf32>
// DS-B-NEXT: return %[[R]] : tensor<4x2x3xf32>
//
// Per-lane start index, unbatched operand: a gather straight from it (the
// operand is never copied per lane).
// DS-IDX-LABEL: func.func @dyn_slice
// DS-IDX-SAME: (%[[X:[^:]+]]: tensor<8x3xf32>, %[[I:[^:]+]]: tensor<4xi32>) -> tensor<4x2x3xf32>
// DS-IDX-NOT: broadcast_in_dim %[[X]]
// DS-IDX: %[[R:[^ ]+]] = "stablehlo.gather"(%[[X]], %{{[^)]+}})
// DS-IDX-SAME: offset_dims = [1, 2], start_index_map = [0, 1], index_vector_dim = 1
// DS-IDX-SAME: slice_sizes = array<i64: 2, 3>
// DS-IDX-SAME: (tensor<8x3xf32>, tensor<4x2xi32>) -> tensor<4x2x3xf32>
// DS-IDX-NEXT: return %[[R]] : tensor<4x2x3xf32>
func.func @dyn_slice(%x: tensor<8x3xf32>, %i: tensor<i32>) -> tensor<2x3xf32> {
  %c0 = stablehlo.constant dense<0> : tensor<i32>
  %0 = stablehlo.dynamic_slice %x, %i, %c0, sizes = [2, 3] : (tensor<8x3xf32>, tensor<i32>, tensor<i32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// Unbatched start index: still a dynamic_update_slice (zero on the batch
// dim); the unbatched update is broadcast to the batch.
// DUS-U-LABEL: func.func @dyn_update
// DUS-U-SAME: (%[[X:[^:]+]]: tensor<4x8x3xf32>, %[[U:[^:]+]]: tensor<2x3xf32>, %[[I:[^:]+]]: tensor<i32>) -> tensor<4x8x3xf32>
// DUS-U-NOT: scatter
// DUS-U: %[[BU:[^ ]+]] = stablehlo.broadcast_in_dim %[[U]], dims = [1, 2] : (tensor<2x3xf32>) -> tensor<4x2x3xf32>
// DUS-U: %[[Z:[^ ]+]] = stablehlo.constant dense<0> : tensor<i32>
// DUS-U-NEXT: %[[R:[^ ]+]] = stablehlo.dynamic_update_slice %[[X]], %[[BU]], %[[Z]], %[[I]], %{{[^ ]+}} : (tensor<4x8x3xf32>, tensor<4x2x3xf32>, tensor<i32>, tensor<i32>, tensor<i32>) -> tensor<4x8x3xf32>
// DUS-U-NEXT: return %[[R]] : tensor<4x8x3xf32>
//
// Per-lane start index: a scatter with batching dims; indices are clamped
// first to [0, 8 - 2] as dynamic_update_slice does (scatter would skip an
// out-of-bounds window instead), and the update replaces the old value.
// DUS-B-LABEL: func.func @dyn_update
// DUS-B-SAME: (%[[X:[^:]+]]: tensor<4x8x3xf32>, %[[U:[^:]+]]: tensor<4x2x3xf32>, %[[I:[^:]+]]: tensor<4xi32>) -> tensor<4x8x3xf32>
// DUS-B-NOT: dynamic_update_slice
// DUS-B: %[[HI:[^ ]+]] = stablehlo.constant dense<6> : tensor<i32>
// DUS-B-NEXT: stablehlo.clamp %{{[^,]+}}, %[[I]], %[[HI]] : (tensor<i32>, tensor<4xi32>, tensor<i32>) -> tensor<4xi32>
// DUS-B: %[[IDX:[^ ]+]] = stablehlo.concatenate %{{.*}}, dim = 1 : (tensor<4x1xi32>, tensor<4x1xi32>) -> tensor<4x2xi32>
// DUS-B-NEXT: %[[R:[^ ]+]] = "stablehlo.scatter"(%[[X]], %[[IDX]], %[[U]])
// DUS-B-SAME: update_window_dims = [1, 2], input_batching_dims = [0], scatter_indices_batching_dims = [0], scatter_dims_to_operand_dims = [1, 2], index_vector_dim = 1
// DUS-B-NEXT: ^bb0(%{{[^:]+}}: tensor<f32>, %[[NEW:[^:]+]]: tensor<f32>):
// DUS-B-NEXT: stablehlo.return %[[NEW]] : tensor<f32>
// DUS-B-NEXT: }) : (tensor<4x8x3xf32>, tensor<4x2xi32>, tensor<4x2x3xf32>) -> tensor<4x8x3xf32>
// DUS-B-NEXT: return %[[R]] : tensor<4x8x3xf32>
func.func @dyn_update(%x: tensor<8x3xf32>, %u: tensor<2x3xf32>, %i: tensor<i32>) -> tensor<8x3xf32> {
  %c0 = stablehlo.constant dense<0> : tensor<i32>
  %0 = stablehlo.dynamic_update_slice %x, %u, %i, %c0 : (tensor<8x3xf32>, tensor<2x3xf32>, tensor<i32>, tensor<i32>) -> tensor<8x3xf32>
  return %0 : tensor<8x3xf32>
}
