"""The reference JEM Wide-ResNet (wideresnet.py + CCF head) in PyTorch, shared by the fixture,
benchmark and peer-comparison scripts. Inputs are pixels in [0,1]; normalisation is inside."""
import torch
import torch.nn as nn
import torch.nn.functional as F


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
    def __init__(self, depth, k, in_ch, num_classes, norm="none", mean=None, std=None):
        super().__init__()
        self.f = WideResNet(depth, k, in_ch, num_classes, norm)
        self.energy_output = nn.Linear(self.f.last_dim, 1)
        self.class_output = nn.Linear(self.f.last_dim, num_classes)
        self.register_buffer("mean", torch.tensor(mean or [0.5] * in_ch).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or [0.5] * in_ch).view(1, -1, 1, 1), persistent=False)

    def forward(self, x01):
        return self.class_output(self.f((x01 - self.mean) / self.std))


def load_robust_eval_model(path):
    """Loads a robust-eval .safetensors model into the reference architecture."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    with safe_open(path, "pt") as f:
        m = f.metadata()
    mean = [float(v) for v in m["input_mean"].split(",")]
    std = [float(v) for v in m["input_std"].split(",")]
    model = CCF(int(m["depth"]), int(m["width"]), int(m["in_channels"]), int(m["num_classes"]), m["norm"], mean, std)
    model.load_state_dict(load_file(path), strict=True)
    return model.eval()
