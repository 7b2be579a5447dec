#!/usr/bin/env bash
# The H100 profile owed by issue 4, in one command, for a GPU machine that has torch, nvidia-ml-py,
# psutil, numpy, matplotlib, typer and rich but not this package installed (the device machine
# lent to some sessions: see docs/profiler.md, "On a lent GPU machine").
#
#   scripts/gpu_profile.sh OUT_DIR [paper|zoo] [STEPS_PER_EPOCH]
#
# paper: AlexNet, ResNet-18, ResNet-50 and VGG-16 alone, in pairs, triples and all four together
#        on GPU 0 at the paper's per-GPU load (batch 32, 224 px, 1000 classes, full width);
# zoo:   ResNet-50 and the zoo's transformer LM, LSTM LM and NCF alone and in pairs.
# Writes OUT_DIR/<part>/ (profile store, report, figures, time series) and OUT_DIR/<part>.tgz (the
# same in one file, for machines that hand back few files). Reads the GPU only: never changes its
# clocks, power limit or modes.
#
# Resumable: runs already saved in OUT_DIR/<part>/runs with the same settings on the same GPU are
# kept, and no new run starts after EACO_PROFILE_BUDGET_S seconds (default 300; each run is
# limited to 240 s, so one call ends within about 9 minutes). Exit 3: not finished yet; the .tgz
# holds what is done; unpack it into OUT_DIR of the next call and run the same command again.
set -euo pipefail
out=${1:?usage: scripts/gpu_profile.sh OUT_DIR [paper|zoo] [STEPS_PER_EPOCH]}
part=${2:-paper}
steps=${3:-150}
budget=${EACO_PROFILE_BUDGET_S:-300}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
case "$part" in paper|zoo) ;; *) echo "unknown part '$part': expected paper or zoo" >&2; exit 2 ;; esac
# Preflight, seconds instead of a lent session's minutes: the driver answers, CUDA is usable from
# torch, and every package the profiler imports is there (carry the missing ones as wheels).
nvidia-smi -L || { echo "nvidia-smi failed: no usable NVIDIA driver here" >&2; exit 2; }
python3 - <<'EOF' || exit 2
import importlib, sys
missing = []
for name in ("torch", "pynvml", "psutil", "numpy", "matplotlib", "typer", "rich"):
    try:
        importlib.import_module(name)
    except Exception as exc:  # an import that breaks counts as missing too
        missing.append(f"{name} ({exc.__class__.__name__}: {exc})")
if missing:
    sys.exit("missing on this machine, carry them as wheels: " + "; ".join(missing))
import torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device")
import eaco.profiler.__main__  # the profiler's own imports
print(f"preflight ok: torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
EOF
mkdir -p "$out/$part"
nvidia-smi --query-gpu=index,name,driver_version,power.limit,clocks.max.sm,memory.total --format=csv \
  > "$out/$part/nvidia_smi.csv"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" > "$out/$part/torch_version.txt"
rc=0
case "$part" in
  paper)
    python3 -m eaco.profiler --models alexnet,resnet18,resnet50,vgg16 --sets pairs,triples,all \
      --batch-size 32 --image-size 224 --num-classes 1000 --width-mult 1 \
      --epochs 3 --steps-per-epoch "$steps" --workers 4 --threads 0 \
      --device cuda --gpus 0 --sample-hz 10 --timeout-s 240 --out "$out/$part" \
      --resume --time-budget-s "$budget" || rc=$? ;;
  zoo)
    python3 -m eaco.profiler --models resnet50,transformer_lm,lstm_lm,ncf --sets pairs \
      --batch-size 32 --seq-len 256 --vocab-size 32000 --width-mult 1 \
      --epochs 3 --steps-per-epoch "$steps" --workers 4 --threads 0 \
      --device cuda --gpus 0 --sample-hz 10 --timeout-s 240 --out "$out/$part" \
      --resume --time-budget-s "$budget" || rc=$? ;;
esac
tar czf "$out/$part.tgz" --exclude=checkpoints -C "$out" "$part"
case "$rc" in
  0) echo "wrote $out/$part and $out/$part.tgz" ;;
  3) echo "not finished (time budget): what is done is in $out/$part.tgz; run again with it unpacked in $out" ;;
  *) echo "the profiler failed (exit $rc); what is done is in $out/$part.tgz" >&2 ;;
esac
exit "$rc"
