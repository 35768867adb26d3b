#!/usr/bin/env python3
"""Golden fixtures for JEMCore's tests, made with PyTorch from a Wide-ResNet built exactly as the
reference JEM code builds it (wideresnet.py + CCF head). Random weights, small inputs.

Run:  python scripts/make_fixtures.py Tests/JEMCoreTests/Fixtures
Needs torch, numpy and safetensors (see scripts/setup_torch_venv.sh). Tests read the committed
files and need no PyTorch.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from wrn_torch import CCF  # noqa: E402  (the reference architecture, shared with the benchmarks)


def make(out_dir, name, depth, k, in_ch, hw, classes, norm, batch, seed, train_mode):
    torch.manual_seed(seed)
    mean = [0.5] * in_ch if in_ch == 1 else [0.49, 0.48, 0.45][:in_ch]
    std = [0.5] * in_ch if in_ch == 1 else [0.25, 0.24, 0.26][:in_ch]
    model = CCF(depth, k, in_ch, classes, norm, mean, std)
    # Non-trivial batch-norm statistics and affine parameters.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    sd = {kk: v.detach().clone().contiguous() for kk, v in model.state_dict().items()}
    meta = {"arch": "wrn", "depth": str(depth), "width": str(k), "in_channels": str(in_ch),
            "num_classes": str(classes), "norm": norm, "leak": "0.2",
            "input_mean": ",".join(f"{v:.9g}" for v in mean),
            "input_std": ",".join(f"{v:.9g}" for v in std)}
    save_file(sd, os.path.join(out_dir, f"{name}_model.safetensors"), metadata=meta)

    x = torch.rand(batch, in_ch, hw, hw, dtype=torch.float32)
    y = torch.randint(0, classes, (batch,))
    model.train(train_mode)

    # Input gradients of the summed cross-entropy and of the summed logsumexp (eval mode always:
    # that is how SGLD and attacks run).
    model.eval()
    xi = x.clone().requires_grad_(True)
    logits = model(xi)
    lse = torch.logsumexp(logits, 1)
    (g_lse,) = torch.autograd.grad(lse.sum(), xi, retain_graph=True)
    (g_ce,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xi)

    # Weight gradients of mean CE − mean logsumexp, in the fixture's mode.
    model.train(train_mode)
    model.zero_grad()
    logits_w = model(x)
    loss = F.cross_entropy(logits_w, y) - torch.logsumexp(logits_w, 1).mean()
    loss.backward()
    grads = {kk: p.grad.detach().clone().contiguous() for kk, p in model.named_parameters()
             if p.grad is not None and not kk.startswith(("energy_output", "f.linear"))}
    save_file(grads, os.path.join(out_dir, f"{name}_grads.safetensors"))
    arrays = {"input": x.numpy(), "labels": y.numpy().astype(np.int64),
              "logits": logits.detach().numpy(), "lse": lse.detach().numpy(),
              "grad_lse": g_lse.numpy(), "grad_ce": g_ce.numpy(),
              "logits_train": logits_w.detach().numpy()}
    for kk, v in arrays.items():
        np.save(os.path.join(out_dir, f"{name}_{kk}.npy"), np.ascontiguousarray(v))
    print(name, "params", sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/JEMCoreTests/Fixtures"
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    # wrn-10-1, grey 12×12, 4 classes, no norm (the reference default).
    make(out, "wrn10_1_none", 10, 1, 1, 12, 4, "none", 3, 1, train_mode=False)
    # wrn-10-1, colour 9×9 (odd sizes), 3 classes, batch norm, weight gradients in train mode.
    make(out, "wrn10_1_batch", 10, 1, 3, 9, 3, "batch", 4, 2, train_mode=True)
