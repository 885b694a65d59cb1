"""The NCSN++ of src/prior/ncsnpp.rs in PyTorch eager, with the same parameter names, so that

- tests/prior.rs can load weights saved by the Rust code (safetensors) with load_state_dict(strict=True)
  and compare outputs on the same input (an independent execution of the same architecture), and
- benches/sampler.rs can time the tch network against PyTorch eager in one run.

Usage (config as the JSON of NcsnppConfig):
  python scripts/ncsnpp_torch.py eval  CONFIG_JSON WEIGHTS.safetensors INPUT.f64 SIGMA.f64 B OUT.f64
  python scripts/ncsnpp_torch.py bench CONFIG_JSON BATCH REPS THREADS DEVICE   -> prints median wall and CPU ms of one forward
"""
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def groups(ch):
    return max(1, min(ch // 4, 32))


def gn(ch):
    return nn.GroupNorm(groups(ch), ch, eps=1e-6)


class Fourier(nn.Module):
    def __init__(self, size, scale):
        super().__init__()
        self.register_buffer("W", torch.randn(size) * scale)

    def forward(self, x):
        p = x[:, None] * self.W[None, :] * 2 * math.pi
        return torch.cat([torch.sin(p), torch.cos(p)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, in_ch, out_ch, temb, resample, dropout, skip_rescale):
        super().__init__()
        self.norm0 = gn(in_ch)
        self.conv0 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.dense0 = nn.Linear(temb, out_ch)
        self.norm1 = gn(out_ch)
        self.conv1 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.resample = resample
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if (in_ch != out_ch or resample) else None
        self.dropout = dropout
        self.skip_rescale = skip_rescale

    def forward(self, x, temb):
        h = F.silu(self.norm0(x))
        if self.resample == "up":
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        elif self.resample == "down":
            h = F.avg_pool2d(h, 2)
            x = F.avg_pool2d(x, 2)
        h = self.conv0(h) + self.dense0(F.silu(temb))[:, :, None, None]
        h = F.dropout(F.silu(self.norm1(h)), self.dropout, self.training)
        h = self.conv1(h)
        if self.skip is not None:
            x = self.skip(x)
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


class Attn(nn.Module):
    def __init__(self, ch, skip_rescale):
        super().__init__()
        self.norm = gn(ch)
        self.q, self.k, self.v, self.out = (nn.Conv2d(ch, ch, 1) for _ in range(4))
        self.skip_rescale = skip_rescale

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q, k, v = (m(h).reshape(b, c, hh * ww) for m in (self.q, self.k, self.v))
        w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) * c ** -0.5, dim=-1)
        h = self.out(torch.einsum("bij,bcj->bci", w, v).reshape(b, c, hh, ww))
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


class Ncsnpp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        nf, temb = c["nf"], 4 * c["nf"]
        res = [c["image_size"] >> i for i in range(len(c["ch_mult"]))]
        blk = lambda i, o, r=None: ResBlock(i, o, temb, r, c.get("dropout", 0.0), c.get("skip_rescale", True))
        attn = lambda ch: Attn(ch, c.get("skip_rescale", True))
        self.fourier = Fourier(nf, c.get("fourier_scale", 16.0))
        self.temb0 = nn.Linear(2 * nf, temb)
        self.temb1 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(c["channels"], nf, 3, padding=1)
        hs_c, in_ch = [nf], nf
        self.down = nn.ModuleList()
        levels = len(c["ch_mult"])
        for l, mult in enumerate(c["ch_mult"]):
            m = nn.Module()
            for b in range(c["num_res_blocks"]):
                setattr(m, f"block{b}", blk(in_ch, nf * mult))
                in_ch = nf * mult
                if res[l] in c["attn_resolutions"]:
                    setattr(m, f"attn{b}", attn(in_ch))
                hs_c.append(in_ch)
            if l + 1 < levels:
                m.downsample = blk(in_ch, in_ch, "down")
                m.input_skip = nn.Conv2d(c["channels"], in_ch, 1)
                hs_c.append(in_ch)
            self.down.append(m)
        self.mid = nn.Module()
        self.mid.block0, self.mid.attn, self.mid.block1 = blk(in_ch, in_ch), attn(in_ch), blk(in_ch, in_ch)
        ups = [None] * levels
        for l in reversed(range(levels)):
            m = nn.Module()
            for b in range(c["num_res_blocks"] + 1):
                setattr(m, f"block{b}", blk(in_ch + hs_c.pop(), nf * c["ch_mult"][l]))
                in_ch = nf * c["ch_mult"][l]
            if res[l] in c["attn_resolutions"]:
                m.attn = attn(in_ch)
            m.head_norm = gn(in_ch)
            m.head_conv = nn.Conv2d(in_ch, c["channels"], 3, padding=1)
            if l > 0:
                m.upsample = blk(in_ch, in_ch, "up")
            ups[l] = m
        self.up = nn.ModuleList(ups)

    def forward(self, x, sigma):
        c = self.c
        temb = self.temb1(F.silu(self.temb0(self.fourier(torch.log(sigma)))))
        x_in = x if c.get("centered", False) else 2 * x - 1
        pyr = x_in
        hs = [self.conv_in(x_in)]
        for m in self.down:
            for b in range(c["num_res_blocks"]):
                h = getattr(m, f"block{b}")(hs[-1], temb)
                if hasattr(m, f"attn{b}"):
                    h = getattr(m, f"attn{b}")(h)
                hs.append(h)
            if hasattr(m, "downsample"):
                h = m.downsample(hs[-1], temb)
                pyr = F.avg_pool2d(pyr, 2)
                hs.append(m.input_skip(pyr) + h)
        h = self.mid.block1(self.mid.attn(self.mid.block0(hs[-1], temb)), temb)
        out = None
        for m in reversed(self.up):
            for b in range(c["num_res_blocks"] + 1):
                h = getattr(m, f"block{b}")(torch.cat([h, hs.pop()], dim=1), temb)
            if hasattr(m, "attn"):
                h = m.attn(h)
            head = m.head_conv(F.silu(m.head_norm(h)))
            out = head if out is None else F.interpolate(out, scale_factor=2, mode="nearest") + head
            if hasattr(m, "upsample"):
                h = m.upsample(h, temb)
        return out / sigma[:, None, None, None]


def main():
    mode, cfg = sys.argv[1], json.loads(sys.argv[2])
    torch.manual_seed(0)
    if mode == "eval":
        from safetensors.torch import load_file

        weights, inp, sig, b, out = sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7]
        net = Ncsnpp(cfg).eval()
        net.load_state_dict(load_file(weights), strict=True)
        s = cfg["image_size"]
        x = torch.from_numpy(np.fromfile(inp, dtype="<f8").reshape(b, cfg["channels"], s, s)).float()
        sigma = torch.from_numpy(np.fromfile(sig, dtype="<f8")).float()
        with torch.no_grad():
            y = net(x, sigma)
        y.double().numpy().astype("<f8").tofile(out)
    elif mode == "bench":
        batch, reps, threads, device = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
        torch.set_num_threads(threads)
        net = Ncsnpp(cfg).eval().to(device)
        s = cfg["image_size"]
        x = torch.rand(batch, cfg["channels"], s, s, device=device)
        sigma = torch.ones(batch, device=device)
        times, cpu = [], []
        with torch.no_grad():
            for i in range(reps + 1):
                if device == "cuda":
                    torch.cuda.synchronize()
                t, c = time.perf_counter(), time.process_time()
                net(x, sigma)
                if device == "cuda":
                    torch.cuda.synchronize()
                if i > 0:  # the first call is a warm-up
                    times.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
        # Median wall ms and median CPU ms (all threads of the process).
        print(f"{1e3 * float(np.median(times)):.3f} {1e3 * float(np.median(cpu)):.3f}")
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
