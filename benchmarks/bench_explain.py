"""Benchmark: exact lesion-aware occlusion against captum's Occlusion; IG and GradientSHAP timings.

Run from the repository root, for example::

    PYTHONPATH=src python benchmarks/bench_explain.py --out benchmarks/results/explain.json

Cases (all with 3 outputs, window 8 and stride 4 voxels, zero baseline, batch 16):

* ``resnet10_coarse``: MONAI ResNet10 (MedicalNet layout, conv1 stride 2) at the 3.3 mm grid
  (44×55×47); captum is run in full.
* ``tinycnn_paper``: a small CNN at the paper's 1.667 mm grid (87×109×93); captum is run in full,
  so exactness and the ratio are measured at the paper grid.
* ``resnet10_paper``: ResNet10 at the paper grid; the lesion-aware run is measured, captum's full
  sweep (hours on 2 CPU cores) is *estimated* as windows × outputs × measured seconds per forward
  volume at the same batch size, and labelled as an estimate.

IG (32 steps) and GradientSHAP (8 samples) are timed per volume for all 3 outputs with ResNet10
at both grids. Weights are random (seeded): the timing does not depend on them, and exactness is
checked on whatever the network computes. Volumes are WMH-like synthetic lesion maps
(periventricular and deep white-matter blobs) inside the MNI152 brain.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from deeplsm._utils import package_versions
from deeplsm.cohort import mni_brain_grid
from deeplsm.explain import (
    GradientShapMap,
    IntegratedGradientsMap,
    LesionAwareOcclusion,
    OcclusionMap,
    occlusion_windows,
)

GRIDS = {"coarse": 3.3, "paper": 1.0 / 0.6}


def wmh_like(voxel_size: float, n: int, seed: int) -> tuple[np.ndarray, tuple[int, int, int], float]:
    """WMH-like binary maps: ellipsoidal blobs around the lateral ventricles and in deep WM."""
    grid = mni_brain_grid(voxel_size)
    rng = np.random.default_rng(seed)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in grid.shape], indexing="ij"), -1)
    xyz = ijk @ grid.affine[:3, :3].T + grid.affine[:3, 3]
    out = np.zeros((n, *grid.shape), np.uint8)
    for i in range(n):
        for _ in range(rng.poisson(7) + 2):
            side = rng.choice([-1, 1])
            c = np.array([side * rng.uniform(8, 30), rng.uniform(-45, 30), rng.uniform(0, 32)])
            r = rng.uniform(2.5, 8.0, 3)
            out[i] |= (((xyz - c) / r) ** 2).sum(-1) <= 1
    return out, grid.shape, float(np.prod(grid.voxel_size)) / 1000


class TinyCNN(torch.nn.Module):
    def __init__(self, n_out: int = 3):
        super().__init__()
        self.c1 = torch.nn.Conv3d(1, 4, 5, stride=4, padding=2)
        self.c2 = torch.nn.Conv3d(4, 8, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(8, n_out)

    def forward(self, x):
        return self.fc(torch.relu(self.c2(torch.relu(self.c1(x)))).mean(dim=(2, 3, 4)))


def resnet10(n_out: int = 3) -> torch.nn.Module:
    from monai.networks.nets import resnet10 as r10

    return r10(spatial_dims=3, n_input_channels=1, num_classes=n_out, conv1_t_stride=2)


def occlusion_case(name, net, vols, window, stride, batch, run_captum, vox_ml):
    x = torch.from_numpy(vols[:, None].astype(np.float32))
    la = LesionAwareOcclusion(net)
    t0 = time.perf_counter()
    ours = la.attribute_targets(x, window=window, stride=stride, batch_size=batch)
    t_ours = time.perf_counter() - t0
    starts, _ = occlusion_windows(x.shape[2:], window, stride)
    n_win = int(np.prod([len(s) for s in starts]))
    res = {
        "case": name, "grid": list(x.shape[2:]), "n_volumes": int(x.shape[0]), "n_outputs": 3,
        "window": window, "stride": stride, "batch_size": batch,
        "lesion_volume_ml": [round(float(v.sum()) * vox_ml, 2) for v in vols],
        "windows_per_volume": n_win, "windows_evaluated_total": la.n_evaluated_,
        "lesion_aware_s": round(t_ours, 2),
    }
    if run_captum:
        t0 = time.perf_counter()
        ref = OcclusionMap(net).attribute_targets(x, window=window, stride=stride, batch_size=batch)
        t_ref = time.perf_counter() - t0
        res.update({
            "captum_s": round(t_ref, 2), "captum_measured": True,
            "max_abs_diff": float(torch.max(torch.abs(ours - ref))),
            "max_abs_attribution": float(ref.abs().max()),
            "speedup": round(t_ref / t_ours, 1),
        })
    else:
        xb = x[:1].expand(batch, *x.shape[1:]).contiguous()
        with torch.no_grad():
            net(xb)
            t0 = time.perf_counter()
            net(xb)
            per_vol = (time.perf_counter() - t0) / batch
        est = per_vol * n_win * 3 * x.shape[0]
        res.update({"captum_s_estimated": round(est, 1), "captum_measured": False,
                    "forward_s_per_volume": round(per_vol, 4),
                    "speedup_estimated": round(est / t_ours, 1)})
    print(json.dumps(res), flush=True)
    return res


def gradient_case(grid_name, net, vols):
    x = torch.from_numpy(vols[:1, None].astype(np.float32))
    out = {"case": f"gradients_{grid_name}", "grid": list(x.shape[2:]), "n_outputs": 3}
    t0 = time.perf_counter()
    IntegratedGradientsMap(net).attribute_targets(x, n_steps=32, internal_batch_size=16)
    out["ig_32steps_s_per_volume_3_outputs"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    GradientShapMap(net).attribute_targets(x, n_samples=8, random_state=0)
    out["gradshap_8samples_s_per_volume_3_outputs"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/explain.json")
    ap.add_argument("--n-coarse", type=int, default=2, help="volumes at the coarse grid")
    ap.add_argument("--n-paper", type=int, default=2, help="volumes at the paper grid")
    ap.add_argument("--skip", default="", help="comma list of cases to skip")
    ap.add_argument("--no-captum", action="store_true",
                    help="estimate captum's time at the coarse grid instead of running its full sweep")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    torch.manual_seed(0)
    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "torch_threads": torch.get_num_threads(),
                           "note": "2-core CPU shared with other engineers"},
               "versions": package_versions(), "cases": []}
    coarse, _, vml_c = wmh_like(GRIDS["coarse"], args.n_coarse, seed=1)
    paper, _, vml_p = wmh_like(GRIDS["paper"], args.n_paper, seed=2)
    net = resnet10().eval()
    tiny = TinyCNN().eval()
    if "resnet10_coarse" not in skip:
        results["cases"].append(occlusion_case("resnet10_coarse", net, coarse, 8, 4, 16,
                                                      not args.no_captum, vml_c))
    if "tinycnn_paper" not in skip:
        results["cases"].append(occlusion_case("tinycnn_paper", tiny, paper, 8, 4, 16, True, vml_p))
    if "resnet10_paper" not in skip:
        results["cases"].append(occlusion_case("resnet10_paper", net, paper[:1], 8, 4, 16, False, vml_p))
    if "gradients" not in skip:
        results["cases"].append(gradient_case("coarse", net, coarse))
        results["cases"].append(gradient_case("paper", net, paper))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
