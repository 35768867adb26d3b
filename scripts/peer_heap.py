"""The peers run with the heap settings robust-eval gives itself.

robust-eval sets glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD to 1 GiB when it starts
(Sources/CJEMKernels/runtime.c), so its activation buffers stay in the heap instead of being mapped
fresh, and faulted in page by page, on every pass. A Python process with glibc's defaults maps
every large tensor anew until a large enough free raises the dynamic threshold: PyTorch's forward
and input-gradient rows at batch 64 ran 9-18 % slower in a same-run A/B (docs/PERFORMANCE.md, "The
peer's heap"), and a benchmark that times it fresh flatters robust-eval. `same_heap_as_robust_eval()` sets the same two
thresholds through glibc's environment variables and restarts the interpreter once (they are read
when malloc initialises), before torch is imported. PEER_HEAP=default skips it, to measure the
difference.
"""
import os
import sys

SETTINGS = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def same_heap_as_robust_eval():
    if os.environ.get("PEER_HEAP") == "default":
        return
    if all(os.environ.get(k) == v for k, v in SETTINGS.items()):
        return
    os.environ.update(SETTINGS)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable] + sys.orig_argv[1:])   # keeps interpreter flags such as -u


def heap_note():
    """What the JSON of a peer run records about the heap."""
    if all(os.environ.get(k) == v for k, v in SETTINGS.items()):
        return "glibc mmap and trim thresholds 1 GiB (as robust-eval)"
    return "glibc defaults"
