import torch

from lstm_bench import Result


@torch.enable_grad()  # the harness may call a kernel under no_grad (gradcheck does)
def my_lstm(case):
    """One layer, one direction, time-major: x (T, B, I), h0 and c0 (1, B, H). Gradients by autograd."""
    w = {name: t.detach().requires_grad_() for name, t in case.weights.items()}
    x, h0, c0 = (t.detach().requires_grad_() for t in (case.x, case.h0, case.c0))
    h, c, outputs = h0[0], c0[0], []
    for x_t in x:
        z = x_t @ w["weight_ih_l0"].T + w["bias_ih_l0"] + h @ w["weight_hh_l0"].T + w["bias_hh_l0"]
        i, f, g, o = z.chunk(4, dim=1)  # nn.LSTM's gate order: (B, 4H) -> four (B, H)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        outputs.append(h)
    output, h_n, c_n = torch.stack(outputs), h[None], c[None]  # (T, B, H), (1, B, H), (1, B, H)
    inputs = {"x": x, "h0": h0, "c0": c0, **w}  # the keys of Result.grads: x, h0, c0, every weight
    grads = torch.autograd.grad((output, h_n, c_n), list(inputs.values()), (case.d_output, case.d_h_n, case.d_c_n))
    return Result(output.detach(), h_n.detach(), c_n.detach(), dict(zip(inputs, grads)))


my_lstm.features = ()  # none of layers, bidirectional, projection, batch_first, lengths: those cases skip
my_lstm.dtypes = ("float32", "float64")  # the default; "bfloat16", "float16" if it computes in them
my_lstm.devices = ("cpu", "cuda")  # the default
