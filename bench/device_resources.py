"""On a GPU: the kernels' real registers, spills and occupancy, next to the compile check's static figures.

The compile check (``python -m rsengine.kernels.compile_check --json STATIC.json``) reads
registers from cubins compiled without a GPU and computes occupancy from the CUDA occupancy
rules. This script launches every engine case of that check for real on the GPU, then asks the
loaded kernels for their register and spill counts (what the driver reports when it loads the
cubin) and the CUDA driver for their occupancy (cuOccupancyMaxActiveBlocksPerMultiprocessor), and
writes both side by side: the first GPU run confirms or corrects the static model.

Run on a CUDA machine, interpreter off (bench/device_check.sh does):
    python bench/device_resources.py --static STATIC.json --json OUT.json
"""
from __future__ import annotations

import argparse
import ctypes
import json
import sys

import torch

__all__ = ["driver_occupancy_blocks", "measure", "main"]


def driver_occupancy_blocks(function_handle: int, threads_per_block: int, dynamic_shared_bytes: int) -> int:
    """Resident blocks per SM for a loaded kernel, from the CUDA driver's own occupancy calculator."""
    libcuda = ctypes.CDLL("libcuda.so.1")
    blocks = ctypes.c_int()
    status = libcuda.cuOccupancyMaxActiveBlocksPerMultiprocessor(
        ctypes.byref(blocks), ctypes.c_void_p(function_handle), ctypes.c_int(threads_per_block),
        ctypes.c_size_t(dynamic_shared_bytes))
    if status != 0:
        raise RuntimeError(f"cuOccupancyMaxActiveBlocksPerMultiprocessor returned CUDA error {status}")
    return blocks.value


def measure() -> list[dict]:
    """Run every compile-check case on the GPU; each distinct loaded kernel's real figures."""
    from rsengine.backends import Backend
    from rsengine.kernels import compile_check, noise, sound_noise, votes

    backend = Backend("triton", noise.noise_normalize, votes.vote_count, sound_noise.sound_noise_normalize)
    device = torch.device("cuda")
    for case in compile_check.engine_cases():
        compile_check.launch_case(case, backend, device)
    torch.cuda.synchronize()
    found = []
    for jit_function in (noise._noise_image_kernel, noise._noise_rows_kernel, votes._vote_kernel):
        for caches in jit_function.device_caches.values():
            for kernel in caches[0].values():
                kernel._init_handles()  # loaded already by the launches; sets n_regs and n_spills
                threads = 32 * kernel.metadata.num_warps
                record = {"kernel": kernel.name, "hash": kernel.hash, "registers": kernel.n_regs,
                          "spills": kernel.n_spills, "num_warps": kernel.metadata.num_warps,
                          "shared_bytes": kernel.metadata.shared}
                try:
                    blocks = driver_occupancy_blocks(kernel.function, threads, kernel.metadata.shared)
                    record["resident_warps"] = blocks * kernel.metadata.num_warps
                except (OSError, AttributeError, RuntimeError) as error:
                    record["resident_warps_error"] = str(error)
                found.append(record)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--static", required=True, metavar="PATH", help="the compile check's --json output")
    parser.add_argument("--json", required=True, metavar="PATH", help="where to write the comparison")
    opts = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("device_resources: no CUDA device", file=sys.stderr)
        return 2
    major, minor = torch.cuda.get_device_capability()
    arch = 10 * major + minor
    with open(opts.static) as handle:
        static = {variant["hash"]: variant for report in json.load(handle) for variant in report["variants"]
                  if report["arch"] == arch}
    rows = []
    for real in measure():
        model = static.get(real["hash"], {})
        rows.append({"kernel": real["kernel"], "hash": real["hash"], "case": (model.get("cases") or ["?"])[0],
                     "static_registers": model.get("registers"), "registers": real["registers"],
                     "spills": real["spills"], "static_resident_warps": model.get("resident_warps"),
                     "resident_warps": real.get("resident_warps"), "error": real.get("resident_warps_error")})
    with open(opts.json, "w") as handle:
        json.dump({"device": torch.cuda.get_device_name(), "arch": arch, "variants": rows}, handle, indent=1)
    print(f"{'kernel':<22} {'registers static/real':>22} {'spills':>6} {'warps/SM static/real':>21}  case")
    mismatches = 0
    for row in rows:
        same = row["static_registers"] == row["registers"] and row["static_resident_warps"] == row["resident_warps"]
        mismatches += not same
        print(f"{row['kernel']:<22} {str(row['static_registers']):>10} / {row['registers']:<9} {row['spills']:>6} "
              f"{str(row['static_resident_warps']):>9} / {str(row['resident_warps']):<9}  {row['case']}"
              f"{'' if same else '   <- differs'}")
    print(f"{len(rows)} variants, {mismatches} differ from the static figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
