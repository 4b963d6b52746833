"""Shapes of each bottom and tower, and the gates' mixtures."""

import pytest
import torch

from mtlrec.model.layers import (
    MLP,
    Embedding,
    ExpertBank,
    _keep_scale,
    relu_dropout,
    set_train_dtype,
    settle_numpy_blas,
    short_softmax,
    wide_product,
)
from mtlrec.model.mmoe import MMoE, mix_tasks
from mtlrec.model.ple import PLE
from mtlrec.model.shared_bottom import SharedBottom
from mtlrec.model.towers import Tower

BATCH, IN_DIM, N_TASKS = 5, 12, 3


@pytest.mark.parametrize(
    "bottom",
    [
        SharedBottom(IN_DIM, (16, 8), N_TASKS, dropout=0.0),
        MMoE(IN_DIM, n_experts=2, expert_dims=(8,), n_tasks=N_TASKS, dropout=0.0),
        PLE(IN_DIM, 2, 1, expert_dims=(8,), n_tasks=N_TASKS, dropout=0.0),
    ],
    ids=["shared_bottom", "mmoe", "ple"],
)
def test_bottom_gives_one_output_per_task(bottom: torch.nn.Module) -> None:
    outputs = bottom(torch.randn(BATCH, IN_DIM))
    assert len(outputs) == N_TASKS
    assert all(out.shape == (BATCH, 8) for out in outputs)
    assert bottom.out_dim == 8


def mix_experts(gate_logits: torch.Tensor, expert_out: torch.Tensor) -> torch.Tensor:
    """The reference mix: (B, E) logits, (B, E, D) outputs -> (B, D), one task at a time."""
    weights = short_softmax(gate_logits).unsqueeze(1)  # (B, 1, E)
    return torch.bmm(weights, expert_out).squeeze(1)  # (B, D)


def test_mmoe_tasks_mix_experts_differently() -> None:
    torch.manual_seed(0)
    outputs = MMoE(IN_DIM, 2, (8,), 2, dropout=0.0)(torch.randn(BATCH, IN_DIM))
    assert not torch.allclose(outputs[0], outputs[1])


def test_mix_experts_is_a_convex_combination() -> None:
    experts = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, E=2, D=2)
    mixed = mix_experts(torch.tensor([[0.0, 0.0]]), experts)  # equal gate logits
    assert torch.allclose(mixed, torch.tensor([[0.5, 0.5]]))


def test_ple_gate_sees_own_and_shared_experts_only() -> None:
    ple = PLE(IN_DIM, n_task_experts=3, n_shared_experts=2, expert_dims=(4,), n_tasks=2, dropout=0)
    assert [gate.out_features for gate in ple.gates] == [5, 5]
    assert ple.experts.n == 2 + 3 * 2 and ple.read_only_experts is None
    ple = PLE(IN_DIM, 3, 2, expert_dims=(4, 4), n_tasks=3, dropout=0, read_only=[1])
    assert (ple.experts.n, ple.read_only_experts.n) == (2 + 3 * 2, 3)
    assert [out.shape for out in ple(torch.randn(BATCH, IN_DIM))] == [(BATCH, 4)] * 3


@pytest.mark.parametrize("read_only", [(), (1,), (0, 2)])
def test_ple_mixes_each_task_s_own_and_the_shared_experts(read_only: tuple[int, ...]) -> None:
    """The placed-columns mix equals the textbook one: a softmax over [own, shared] experts."""
    torch.manual_seed(0)
    k, n_shared = 3, 2
    ple = PLE(IN_DIM, k, n_shared, expert_dims=(4,), n_tasks=3, dropout=0, read_only=read_only)
    x = torch.randn(BATCH, IN_DIM)
    bank = ple.experts(x)
    readers = [t for t in range(3) if t in read_only]
    read_bank = ple.read_only_experts(x) if readers else None
    writers = [t for t in range(3) if t not in read_only]
    for t, out in enumerate(ple(x)):
        if t in read_only:
            r = readers.index(t)
            own = read_bank[:, r * k : (r + 1) * k]
        else:
            w = writers.index(t)
            own = bank[:, n_shared + w * k : n_shared + (w + 1) * k]
        candidates = torch.cat([own, bank[:, :n_shared]], dim=1)
        expected = mix_experts(ple.gates[t](x), candidates)
        torch.testing.assert_close(out, expected)


def test_relu_dropout_is_relu_then_dropout() -> None:
    torch.manual_seed(0)
    x = torch.randn(200_000, requires_grad=True)
    out = relu_dropout(x, 0.25, training=True)
    passed = out != 0
    positive = x.detach() > 0
    assert not (passed & ~positive).any()  # only positive units pass
    rate = passed.sum().item() / positive.sum().item()
    assert abs(rate - 0.75) < 0.005  # kept with probability 1 - p
    torch.testing.assert_close(out[passed], x.detach()[passed] / 0.75)  # scaled by 1 / (1 - p)
    out.sum().backward()
    torch.testing.assert_close(x.grad, passed.float() / 0.75)  # the gradient of the same mask
    assert torch.equal(relu_dropout(x, 0.25, training=False), torch.relu(x))
    torch.manual_seed(1)
    first = relu_dropout(x, 0.25, training=True)
    torch.manual_seed(1)
    assert torch.equal(first, relu_dropout(x, 0.25, training=True))  # the global RNG decides


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_relu_dropout_is_relu_times_its_keep_tensor_bit_for_bit(dtype: torch.dtype) -> None:
    """Its own backward gives autograd's numbers for relu(x) * keep; a bf16 x (the first layer's
    product) comes out fp32, and its gradient goes back in bf16."""
    torch.manual_seed(3)
    x = torch.randn(300, 7, dtype=dtype, requires_grad=True)
    torch.manual_seed(4)
    out = relu_dropout(x, 0.3, training=True)
    torch.manual_seed(4)
    keep = _keep_scale(x.shape, 0.3)
    assert keep.unique().tolist() == [0.0, pytest.approx(1 / 0.7)]  # dropped, kept and scaled
    reference_x = x.detach().clone().requires_grad_()
    reference = torch.relu(reference_x.float()) * keep
    assert out.dtype == torch.float32 and torch.equal(out, reference)
    grad = torch.randn(out.shape)
    out.backward(grad)
    reference.backward(grad)
    assert x.grad.dtype == dtype and torch.equal(x.grad, reference_x.grad)
    assert relu_dropout(x, 0.3, training=False).dtype == torch.float32


def test_relu_without_dropout_widens_a_bf16_x_with_autograds_numbers() -> None:
    """p = 0 while training: relu(x.float()) and its gradient, bit for bit, by its own function."""
    torch.manual_seed(5)
    x = torch.randn(300, 7, dtype=torch.bfloat16, requires_grad=True)
    x.data[0, :3] = torch.tensor([0.0, -0.0, float("nan")])  # ties and a NaN go the same way
    out = relu_dropout(x, 0.0, training=True)
    reference_x = x.detach().clone().requires_grad_()
    reference = torch.relu(reference_x.float())
    assert out.dtype == torch.float32 and torch.equal(out.nan_to_num(), reference.nan_to_num())
    grad = torch.randn(out.shape)
    out.backward(grad)
    reference.backward(grad)
    assert x.grad.dtype == torch.bfloat16
    assert torch.equal(x.grad.nan_to_num(), reference_x.grad.nan_to_num())


def test_an_expert_bank_computes_each_expert_as_its_own_mlp() -> None:
    bank = ExpertBank(IN_DIM, 3, (8, 4), dropout=0.0)
    x = torch.randn(BATCH, IN_DIM)
    out = bank(x)
    assert out.shape == (BATCH, 3, 4)
    for e in range(3):
        h = x
        for weight, bias in zip(bank.weights, bank.biases, strict=True):
            h = torch.relu(h @ weight[e] + bias[e])
        torch.testing.assert_close(out[:, e], h)


def test_mmoe_gates_mix_the_experts_as_the_textbook_does() -> None:
    torch.manual_seed(0)
    mmoe = MMoE(IN_DIM, 3, (4,), n_tasks=3, dropout=0.0, read_only=[1])
    x = torch.randn(BATCH, IN_DIM)
    experts = mmoe.experts(x)
    for t, out in enumerate(mmoe(x)):
        torch.testing.assert_close(out, mix_experts(mmoe.gates[t](x), experts))


def test_a_bf16_wide_product_rounds_the_product_not_the_weights() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 300)
    weight = torch.randn(300, 40, requires_grad=True)
    bias = torch.randn(40, requires_grad=True)
    exact = torch.addmm(bias, x, weight)
    out = wide_product(x, weight, bias, torch.bfloat16)
    assert out.dtype == torch.bfloat16  # relu_dropout widens it
    out = out.float()
    assert not torch.equal(out, exact)  # really rounded
    # bf16 keeps 8 bits of mantissa: each input ~0.4% off, the sum of 300 products ~0.5% of
    # its scale (~17 here).
    assert (out - exact).abs().max() < 0.02 * exact.abs().max()
    out.sum().backward()
    assert weight.grad is not None and weight.grad.dtype == torch.float32  # fp32 master weights
    torch.testing.assert_close(weight.grad, x.sum(0, keepdim=True).t().expand(-1, 40),
                               atol=0.5, rtol=0.02)  # fmt: skip
    assert torch.equal(wide_product(x, weight, bias, torch.float32), exact)


@pytest.mark.parametrize("make", [
    lambda: SharedBottom(IN_DIM, (16, 8), N_TASKS, dropout=0.0),
    lambda: PLE(IN_DIM, 2, 1, expert_dims=(8,), n_tasks=N_TASKS, dropout=0.0, read_only=[1]),
], ids=["shared_bottom", "ple"])  # fmt: skip
def test_bf16_training_products_leave_evaluation_in_fp32(make) -> None:
    torch.manual_seed(0)
    bottom = make()
    x = torch.randn(BATCH, IN_DIM)
    before = [out.detach() for out in bottom.eval()(x)]
    set_train_dtype(bottom, torch.bfloat16)
    layers = [m for m in bottom.modules() if isinstance(m, ExpertBank | MLP)]
    assert layers and all(m.train_dtype == torch.bfloat16 for m in layers)
    assert all(torch.equal(a, b) for a, b in zip(before, bottom(x), strict=True))  # eval: fp32
    trained = bottom.train()(x)  # dropout 0: only the rounding differs
    assert not all(torch.equal(a, b) for a, b in zip(before, trained, strict=True))
    for a, b in zip(before, trained, strict=True):
        torch.testing.assert_close(b, a, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("transposed", [False, True], ids=["bank", "mlp"])
def test_numpy_blas_products_give_addmms_numbers_and_gradients(
    transposed: bool, with_bias: bool, numpy_calls: list[tuple[int, ...]]
) -> None:
    """The fp32 product through numpy's BLAS: the same function and gradients as `addmm` (or
    `mm`, without a bias: a factored first layer's `rest`) to rounding, for a contiguous weight
    (an expert bank's) and a transposed view (an MLP's)."""
    torch.manual_seed(0)
    x = torch.randn(64, 300, requires_grad=True)
    stored = torch.randn(40, 300) if transposed else torch.randn(300, 40)
    stored.requires_grad_(True)
    bias = torch.randn(40, requires_grad=True) if with_bias else None
    grad = torch.randn(64, 40)
    results = []
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the numpy path runs on one torch thread only
    try:
        for numpy_blas in (False, True):
            weight = stored.t() if transposed else stored
            out = wide_product(x, weight, bias, torch.float32, numpy_blas)
            out.backward(grad)
            results.append((out.detach(), x.grad, stored.grad))
            if bias is not None:
                results[-1] += (bias.grad,)
                bias.grad = None
            x.grad = stored.grad = None
    finally:
        torch.set_num_threads(previous)
    assert numpy_calls == [(64, 40), (64, 300), (300, 40)]  # forward, x's and weight's grads
    for torch_value, numpy_value in zip(*results, strict=True):
        torch.testing.assert_close(numpy_value, torch_value, atol=1e-4, rtol=1e-5)


def test_numpy_blas_is_for_training_on_one_thread_only(numpy_calls: list[tuple[int, ...]]) -> None:
    """Evaluation (no autograd) and a multi-threaded torch keep torch's products: evaluation's
    bits do not depend on where training ran, and numpy's BLAS threads would contend with
    torch's."""
    x, weight, bias = torch.randn(8, 12), torch.randn(12, 4, requires_grad=True), torch.randn(4)
    with torch.no_grad():
        assert torch.equal(wide_product(x, weight, bias, torch.float32, True),
                           torch.addmm(bias, x, weight))  # fmt: skip
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        wide_product(x, weight, bias, torch.float32, True).sum().backward()
        assert numpy_calls == []
        torch.set_num_threads(1)
        wide_product(x, weight, bias, torch.float32, True)
        assert numpy_calls == [(8, 4)]
        bank = ExpertBank(12, 3, (4,), dropout=0.0)
        set_train_dtype(bank, torch.float32, numpy_blas=True)
        bank.train()(x)
        assert numpy_calls == [(8, 4), (8, 12)]
        bank.eval()(x)
        bank.train()(x.double())  # fp32 only
        assert len(numpy_calls) == 2
    finally:
        torch.set_num_threads(previous)


def test_numpy_blas_is_settled_once_before_the_first_product(
    numpy_calls: list[tuple[int, ...]],
) -> None:
    """The settling product (`settle_numpy_blas`) runs once per process, before the first
    product through numpy's BLAS and not as one of the model's `np.matmul` calls; evaluation
    and torch's products do not run it."""
    settle_numpy_blas.cache_clear()
    x, weight, bias = torch.randn(8, 12), torch.randn(12, 4, requires_grad=True), torch.randn(4)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        wide_product(x, weight, bias, torch.float32, False).sum().backward()
        with torch.no_grad():
            wide_product(x, weight, bias, torch.float32, True)
        assert settle_numpy_blas.cache_info().misses == 0
        for _ in range(2):
            wide_product(x, weight, bias, torch.float32, True).sum().backward()
        info = settle_numpy_blas.cache_info()
        assert (info.misses, info.hits) == (1, 1)
        assert numpy_calls == [(8, 4), (12, 4)] * 2  # the model's own products only
    finally:
        torch.set_num_threads(previous)


def test_tower_outputs_one_scalar_per_row() -> None:
    assert Tower(8, (4,), dropout=0.0)(torch.randn(BATCH, 8)).shape == (BATCH,)


@pytest.mark.parametrize(
    "bottom",
    [
        SharedBottom(IN_DIM, (16, 8), N_TASKS, dropout=0.0, read_only=[1]),
        MMoE(IN_DIM, 2, expert_dims=(8,), n_tasks=N_TASKS, dropout=0.0, read_only=[1]),
        PLE(IN_DIM, 2, 1, expert_dims=(8,), n_tasks=N_TASKS, dropout=0.0, read_only=[1]),
    ],
    ids=["shared_bottom", "mmoe", "ple"],
)
def test_a_read_only_task_trains_only_its_own_parts(bottom: torch.nn.Module) -> None:
    x = torch.randn(BATCH, IN_DIM, requires_grad=True)
    outputs = bottom(x)
    tower = torch.ones(8, requires_grad=True)  # stands in for the task's own tower
    (outputs[1] * tower).sum().backward()  # task 1 reads; its loss must not reach shared parts
    assert _untouched(x) and tower.grad is not None
    shared = {
        SharedBottom: lambda b: b.mlp,
        MMoE: lambda b: b.experts,
        PLE: lambda b: b.experts,
    }[type(bottom)](bottom)
    assert all(_untouched(p) for p in shared.parameters())
    own = {SharedBottom: None, MMoE: lambda b: b.gates[1], PLE: lambda b: b.read_only_experts}
    if own[type(bottom)] is not None:
        assert all(p.grad is not None for p in own[type(bottom)](bottom).parameters())
    x.grad = None
    bottom(x)[0].sum().backward()  # a writing task still reaches the inputs
    assert x.grad is not None and x.grad.abs().sum() > 0


def _untouched(tensor: torch.Tensor) -> bool:
    """No gradient reached `tensor`: none, or zero (a first layer that the read-only task's
    experts and gate share with the writers' returns a zero gradient for the writers' part)."""
    return tensor.grad is None or not tensor.grad.any()


@pytest.mark.parametrize("n_tasks", [1, 2, 3])
def test_mixing_has_the_batched_product_s_value_and_gradient(n_tasks: int) -> None:
    from mtlrec.model.mmoe import _Mix

    torch.manual_seed(0)
    weights = torch.rand(5, n_tasks, 4, dtype=torch.double, requires_grad=True)
    experts = torch.randn(5, 4, 3, dtype=torch.double, requires_grad=True)
    assert torch.allclose(_Mix.apply(weights, experts), torch.bmm(weights, experts))
    assert torch.autograd.gradcheck(_Mix.apply, (weights, experts))


@pytest.mark.parametrize("n_tasks", [1, 2])
def test_mixing_several_banks_is_mixing_them_concatenated(n_tasks: int) -> None:
    """A read-only task's own experts and the detached shared ones, without the copy."""
    from mtlrec.model.mmoe import _Mix

    torch.manual_seed(0)
    weights = torch.rand(5, n_tasks, 6, dtype=torch.double, requires_grad=True)
    own = torch.randn(5, 4, 3, dtype=torch.double, requires_grad=True)
    shared = torch.randn(5, 2, 3, dtype=torch.double)  # detached: no gradient computed
    expected = torch.bmm(weights, torch.cat([own, shared], dim=1))
    torch.testing.assert_close(_Mix.apply(weights, own, shared), expected)
    assert torch.autograd.gradcheck(lambda w, o: _Mix.apply(w, o, shared), (weights, own))


def test_placing_gate_weights_by_columns_is_the_0_1_placement_product_bit_for_bit() -> None:
    """mix_tasks scatters each task's gate weights onto its experts' columns; the product with a
    0/1 placement tensor it replaced gives the same bits, forward and backward."""
    torch.manual_seed(0)
    columns = torch.tensor([[2, 3, 0, 1], [4, 5, 0, 1]])  # (T, G) of a bank of 6
    placement = torch.zeros(2, 4, 6)
    for t in range(2):
        placement[t, torch.arange(4), columns[t]] = 1.0
    logits = [torch.randn(BATCH, 4, requires_grad=True) for _ in range(2)]
    bank = torch.randn(BATCH, 6, 5)
    grads = [torch.randn(BATCH, 5) for _ in range(2)]
    mixed = mix_tasks(logits, bank, columns)
    torch.autograd.backward(mixed, grads)
    ours = [logit.grad.clone() for logit in logits]
    for logit in logits:
        logit.grad = None
    weights = short_softmax(torch.stack(logits, dim=1))  # mix_tasks' softmax
    placed = torch.einsum("btg,tge->bte", weights, placement)
    expected = list(torch.bmm(placed, bank).unbind(1))
    torch.autograd.backward(expected, grads)
    assert all(torch.equal(a, b) for a, b in zip(mixed, expected, strict=True))
    assert all(torch.equal(a, logit.grad) for a, logit in zip(ours, logits, strict=True))


@pytest.mark.parametrize("shape", [(7, 6), (5, 2, 6), (4, 1, 3)])
def test_short_softmax_is_softmax_with_its_gradient(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = (torch.randn(*shape, dtype=torch.double) * 30).requires_grad_()  # large: the shift
    assert torch.allclose(short_softmax(x), torch.softmax(x, dim=-1), rtol=0, atol=1e-15)
    assert torch.autograd.gradcheck(short_softmax, (x,))
    small = x.detach().float()
    assert torch.allclose(short_softmax(small), torch.softmax(small, dim=-1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("padding", [None, 0])
def test_embedding_has_nn_embedding_s_numbers_bit_for_bit(padding: int | None) -> None:
    """The same rows forward, the same gradient (duplicates summed in the rows' order; no
    gradient for the padding row), and the same state dict."""
    torch.manual_seed(0)
    ours = Embedding(9, 4, padding_idx=padding)
    theirs = torch.nn.Embedding(9, 4, padding_idx=padding)
    theirs.load_state_dict(ours.state_dict())
    rows = torch.randint(0, 9, (64, 3))
    rows[0] = 0  # the padding row, if any, is read
    grad = torch.randn(64, 3, 4)
    out, expected = ours(rows), theirs(rows)
    out.backward(grad)
    expected.backward(grad)
    assert torch.equal(out, expected)
    assert torch.equal(ours.weight.grad, theirs.weight.grad)
    if padding is not None:
        assert not ours.weight.grad[padding].any()
    with torch.no_grad():
        assert torch.equal(ours(rows), expected)
