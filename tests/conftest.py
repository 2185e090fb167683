"""Suite-wide settings: one torch thread (small networks on 2 cores run fastest that way), and the CPU kernels
pinned to their AVX2 forms.

The exact-resume tests compare a resumed run with an uninterrupted one bit for bit. On CPUs with AVX-512 the
math libraries' kernels may sum in an order that depends on where a tensor lies in memory, so a resumed run
(its tensors allocated afresh) drifts from the uninterrupted one in the last bits; the AVX2 kernels do not.
These variables must be set before torch loads its libraries.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
os.environ.setdefault("MKL_CBWR", "AVX2,STRICT")
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

import torch  # noqa: E402

torch.set_num_threads(1)
