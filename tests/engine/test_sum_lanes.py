"""passes/sum_lanes.py: results summed over the batch inside a module. The
sum sinks into a dot_general's batching dimension (which becomes contracted),
through transpose and add; elsewhere a reduce adds the lanes. Each case runs
the module before and after and compares with numpy's sum; the IR checks say
which form the sum took."""
import jax.numpy as jnp
import numpy as np
import pytest

from batch_cases import run_module
from conftest import assert_same_tree, random_array
from stablehlo_batch.passes.sum_lanes import sum_results_over_lanes
from stablehlo_batch import module_io

# Per-lane outer products (a weight gradient), transposed; a bias gradient;
# two products added (a weight used twice); a value that also has another use.
MODULE = """
func.func @main(%g: tensor<5x3xf32>, %x: tensor<5x4xf32>, %h: tensor<5x3xf32>) ->
    (tensor<5x4x3xf32>, tensor<5x3xf32>, tensor<5x3x4xf32>, tensor<5x3xf32>, tensor<3x5xf32>) {
  %0 = stablehlo.dot_general %g, %x, batching_dims = [0] x [0], contracting_dims = [] x []
      : (tensor<5x3xf32>, tensor<5x4xf32>) -> tensor<5x3x4xf32>
  %1 = stablehlo.transpose %0, dims = [0, 2, 1] : (tensor<5x3x4xf32>) -> tensor<5x4x3xf32>
  %2 = stablehlo.dot_general %h, %x, batching_dims = [0] x [0], contracting_dims = [] x []
      : (tensor<5x3xf32>, tensor<5x4xf32>) -> tensor<5x3x4xf32>
  %3 = stablehlo.dot_general %g, %x, batching_dims = [0] x [0], contracting_dims = [] x []
      : (tensor<5x3xf32>, tensor<5x4xf32>) -> tensor<5x3x4xf32>
  %4 = stablehlo.add %2, %3 : tensor<5x3x4xf32>
  %5 = stablehlo.multiply %g, %h : tensor<5x3xf32>
  %6 = stablehlo.transpose %5, dims = [1, 0] : (tensor<5x3xf32>) -> tensor<3x5xf32>
  return %1, %g, %4, %5, %6 : tensor<5x4x3xf32>, tensor<5x3xf32>, tensor<5x3x4xf32>, tensor<5x3xf32>, tensor<3x5xf32>
}
"""


def _summed(text, results, dims):
    module = module_io.parse_module(text)
    sum_results_over_lanes(module, "main", results, dims)
    assert module.operation.verify()
    return str(module)


@pytest.mark.parametrize("results,dims", [([0, 1, 2, 3], [0, 0, 0, 0]),
                                          ([0, 2, 4], [0, 0, 1]),
                                          ([3, 4], [0, 1])])
def test_sums_match_numpy(rng, results, dims):
    args = [random_array(rng, s, jnp.float32) for s in [(5, 3), (5, 4), (5, 3)]]
    before = run_module(MODULE, *args)
    text = _summed(MODULE, results, dims)
    after = run_module(text, *args)
    want = [jnp.asarray(np.sum(np.asarray(v), axis=dims[results.index(j)]))
            if j in results else v for j, v in enumerate(before)]
    assert_same_tree(after, want, rtol=1e-5, atol=1e-5)


def test_sum_sinks_into_the_matrix_products():
    text = _summed(MODULE, [0, 2], [0, 0])
    # %1 and %4: three products contracting the batch, no per-lane outer product.
    assert text.count("contracting_dims = [0] x [0]") == 3
    assert "tensor<5x3x4xf32>" not in text and "stablehlo.reduce" not in text
    # %5 has another use (%6): it stays, and its sum is a reduce.
    text = _summed(MODULE, [3], [0])
    assert "stablehlo.multiply" in text and text.count("stablehlo.reduce") == 1


def test_a_batched_free_dimension_is_reduced():
    """The lanes at a dot_general's free dimension are not a batching dim: a
    reduce adds them, and the product is left as it was."""
    text = """
func.func @main(%x: tensor<5x4xf32>, %w: tensor<4x3xf32>) -> tensor<5x3xf32> {
  %0 = stablehlo.dot_general %x, %w, contracting_dims = [1] x [0]
      : (tensor<5x4xf32>, tensor<4x3xf32>) -> tensor<5x3xf32>
  return %0 : tensor<5x3xf32>
}
"""
    out = _summed(text, [0], [0])
    assert "stablehlo.reduce" in out and "contracting_dims = [1] x [0]" in out
    x, w = np.arange(20, dtype=np.float32).reshape(5, 4), np.ones((4, 3), np.float32)
    assert_same_tree(run_module(out, x, w)[0], jnp.asarray((x @ w).sum(0)))
