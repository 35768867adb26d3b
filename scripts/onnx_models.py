"""CNNs that users bring, in PyTorch, for the ONNX import fixtures, parity checks and benchmarks:
a CIFAR ResNet-18, a PreAct ResNet-18 with SiLU and F.pad, RobustBench's WideResNet-28-10 (BN,
ReLU), a LeNet with MaxPool, and a small "zoo" net that uses every other supported op. Each takes
pixels in [0, 1]; `width` scales the channels so the same code makes tiny test fixtures."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """The common CIFAR ResNet-18 (3×3 stem, no max-pool), normalisation inside the graph."""
    def __init__(self, in_ch=3, classes=10, width=64, blocks=(2, 2, 2, 2)):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4914, 0.4822, 0.4465][:in_ch]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([0.2471, 0.2435, 0.2616][:in_ch]).view(1, -1, 1, 1))
        self.conv1 = nn.Conv2d(in_ch, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2 ** i
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1((x - self.mean) / self.std)))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(out.view(out.size(0), -1))


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 0, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.silu(self.bn1(x))
        sc = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(F.pad(out, (1, 1, 1, 1)))
        out = self.conv2(F.pad(F.silu(self.bn2(out)), (1, 1, 1, 1)))
        return out + sc


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 with SiLU, explicit F.pad before each 3×3 conv (as in the robust-training
    codebases that export padding separately)."""
    def __init__(self, in_ch=3, classes=10, width=64, blocks=(2, 2, 2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 3, 1, 1, bias=False)
        layers, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2 ** i
            for j in range(n):
                layers.append(PreActBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x):
        out = self.layers(self.conv1(x))
        out = F.silu(self.bn(out))
        out = F.avg_pool2d(out, out.shape[-1])
        return self.linear(torch.flatten(out, 1))


class RBBlock(nn.Module):
    """RobustBench's WideResNet block (BN-ReLU-conv, pre-activation)."""
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.shortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        if not self.equal:
            x = F.relu(self.bn1(x))
            out = x
        else:
            out = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + (x if self.equal else self.shortcut(x))


class RobustBenchWRN(nn.Module):
    def __init__(self, depth=28, k=10, in_ch=3, classes=10):
        super().__init__()
        n = (depth - 4) // 6
        ch = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(in_ch, ch[0], 3, 1, 1, bias=False)
        blocks, cin = [], ch[0]
        for i, s in enumerate([1, 2, 2]):
            for j in range(n):
                blocks.append(RBBlock(cin, ch[i + 1], s if j == 0 else 1))
                cin = ch[i + 1]
        self.blocks = nn.Sequential(*blocks)
        self.bn1 = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, classes)
        self.n = cin

    def forward(self, x):
        out = F.relu(self.bn1(self.blocks(self.conv1(x))))
        out = F.avg_pool2d(out, out.shape[-1])
        return self.fc(out.view(-1, self.n))


class LeNet(nn.Module):
    def __init__(self, in_ch=1, classes=10, hw=28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        side = ((hw // 2) - 4) // 2
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x):
        x = F.max_pool2d(torch.tanh(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Zoo(nn.Module):
    """Every op of the import list the other nets do not use: grouped, depthwise, dilated and
    strided-asymmetric convolutions, ReLU6 (Clip), LeakyReLU, Sigmoid, Tanh, Softplus, Mul/Add/Sub/
    Div with broadcasting, Concat, Transpose, MatMul, AveragePool with padding, MaxPool with
    padding, Dropout (inference) and a BatchNorm that stays unfolded."""
    def __init__(self, in_ch=3, classes=10, width=8):
        super().__init__()
        w = width
        self.stem = nn.Conv2d(in_ch, w, 3, padding=1)
        self.dw = nn.Conv2d(w, w, 3, padding=1, groups=w)
        self.grouped = nn.Conv2d(w, 2 * w, 3, padding=2, dilation=2, groups=2)
        self.bn = nn.BatchNorm2d(2 * w)
        self.rect = nn.Conv2d(2 * w, w, (3, 1), stride=(2, 1), padding=(1, 0))
        self.scale = nn.Parameter(torch.randn(1, w, 1, 1) * 0.5 + 1)
        self.drop = nn.Dropout(0.3)
        self.proj = nn.Parameter(torch.randn(2 * w, 2 * w) * 0.3)
        self.fc = nn.Linear(2 * w, classes)

    def forward(self, x):
        x = (x - 0.5) / 0.25
        a = F.relu6(self.stem(x))
        b = torch.sigmoid(self.dw(a)) * a                  # SiLU-like gate
        c = F.leaky_relu(self.bn(self.grouped(b)), 0.1)
        d = torch.tanh(self.rect(c)) * self.scale + F.softplus(self.rect(c)) / 2 - 0.1
        d = F.max_pool2d(d, 3, stride=2, padding=1)
        e = F.avg_pool2d(d, 3, stride=1, padding=1)
        f = torch.cat([d, e], dim=1)                       # N, 2w, h, w
        g = F.adaptive_avg_pool2d(f, 1)                    # GlobalAveragePool
        h = self.drop(torch.flatten(g, 1))                 # N, 2w
        h = torch.matmul(h, self.proj) - h / 3             # MatMul
        h = h.unsqueeze(2).transpose(1, 2).flatten(1)      # Unsqueeze, Transpose
        return self.fc(h)


def calibrate_bn(model, shape, seed=0, batches=4):
    """Gives every BatchNorm real running statistics (a few training-mode passes on noise),
    and the affine parameters non-trivial values, then switches to eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand(*shape, generator=g))
    return model.eval()


def export(model, path, shape, opset=17):
    x = torch.rand(*shape)
    torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=opset, dynamo=False, do_constant_folding=True)
