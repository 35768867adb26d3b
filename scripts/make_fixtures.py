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


def get_norm(n, norm):
    return nn.BatchNorm2d(n, momentum=0.9) if norm == "batch" else nn.Identity()


class WideBasic(nn.Module):
    def __init__(self, in_planes, planes, stride, norm, leak):
        super().__init__()
        self.lrelu = nn.LeakyReLU(leak)
        self.bn1 = get_norm(in_planes, norm)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=True)
        self.bn2 = get_norm(planes, norm)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=True))

    def forward(self, x):
        out = self.conv1(self.lrelu(self.bn1(x)))
        out = self.conv2(self.lrelu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    def __init__(self, depth, k, in_ch, num_classes, norm, leak=0.2):
        super().__init__()
        n = (depth - 4) // 6
        st = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(in_ch, st[0], 3, padding=1, bias=True)
        planes = st[0]
        layers = []
        for s, stride in zip(st[1:], [1, 2, 2]):
            blocks = []
            for i in range(n):
                blocks.append(WideBasic(planes, s, stride if i == 0 else 1, norm, leak))
                planes = s
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn1 = get_norm(st[3], norm)
        self.lrelu = nn.LeakyReLU(leak)
        self.linear = nn.Linear(st[3], num_classes)  # unused, as in the reference
        self.last_dim = st[3]

    def forward(self, x):
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = self.lrelu(self.bn1(out))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


class CCF(nn.Module):
    def __init__(self, depth, k, in_ch, num_classes, norm):
        super().__init__()
        self.f = WideResNet(depth, k, in_ch, num_classes, norm)
        self.energy_output = nn.Linear(self.f.last_dim, 1)
        self.class_output = nn.Linear(self.f.last_dim, num_classes)

    def forward(self, x01, mean, std):
        x = (x01 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        return self.class_output(self.f(x))


def make(out_dir, name, depth, k, in_ch, hw, classes, norm, batch, seed, train_mode):
    torch.manual_seed(seed)
    model = CCF(depth, k, in_ch, classes, norm)
    # Non-trivial batch-norm statistics and affine parameters.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    mean = torch.tensor([0.5] * in_ch if in_ch == 1 else [0.49, 0.48, 0.45][:in_ch])
    std = torch.tensor([0.5] * in_ch if in_ch == 1 else [0.25, 0.24, 0.26][:in_ch])
    sd = {kk: v.detach().clone().contiguous() for kk, v in model.state_dict().items()}
    meta = {"arch": "wrn", "depth": str(depth), "width": str(k), "in_channels": str(in_ch),
            "num_classes": str(classes), "norm": norm, "leak": "0.2",
            "input_mean": ",".join(f"{v:.9g}" for v in mean.tolist()),
            "input_std": ",".join(f"{v:.9g}" for v in std.tolist())}
    save_file(sd, os.path.join(out_dir, f"{name}_model.safetensors"), metadata=meta)

    x = torch.rand(batch, in_ch, hw, hw, dtype=torch.float32)
    y = torch.randint(0, classes, (batch,))
    model.train(train_mode)

    # Input gradients of the summed cross-entropy and of the summed logsumexp (eval mode always:
    # that is how SGLD and attacks run).
    model.eval()
    xi = x.clone().requires_grad_(True)
    logits = model(xi, mean, std)
    lse = torch.logsumexp(logits, 1)
    (g_lse,) = torch.autograd.grad(lse.sum(), xi, retain_graph=True)
    (g_ce,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xi)

    # Weight gradients of mean CE − mean logsumexp, in the fixture's mode.
    model.train(train_mode)
    model.zero_grad()
    logits_w = model(x, mean, std)
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
