#!/usr/bin/env bash
# The GPU check's environment report: date, commit, pack, GPU and driver, Python, torch, CUDA, cuDNN, tools.
#   benchmarks/gpu/environment.sh PACK PYTHON
pack=$1
python=$2
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit: $(cat "$pack/COMMIT" 2>/dev/null || echo unknown)"
echo "pack: $(du -sh "$pack" | cut -f1)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "GPU: none"
"$python" -c 'import sys, torch; print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda",
torch.version.cuda, "| cudnn", torch.backends.cudnn.version())'
echo "compute-sanitizer: $(command -v compute-sanitizer || echo 'not installed')"
echo "cpu: $(nproc) threads"
missing=$(ldd "$pack/bin/leanconv_cuda_driver" 2>&1 | grep "not found" || true)
echo "pack libraries: ${missing:-all found}"
