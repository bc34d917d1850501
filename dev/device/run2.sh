#!/bin/bash
# Device call 2: NVML telemetry (idle and under load), then the CUDA kernel lab.
export LD_LIBRARY_PATH=$PWD/.devcarry/lib:$LD_LIBRARY_PATH
B=$PWD/.devcarry/deploybench
date -u
$B telemetry --json > $OUT/tel-report.json; head -c 1500 $OUT/tel-report.json; echo
$B telemetry --duration 5 --hz 50 --out /tmp/tel-idle >/dev/null && cp /tmp/tel-idle/summary.json $OUT/tel-idle-summary.json && cat /tmp/tel-idle/summary.json | head -c 2500; echo
python3 -c "import torch,time;a=torch.randn(8192,8192,device='cuda',dtype=torch.bfloat16);t=time.time()
while time.time()-t<12: a@a
torch.cuda.synchronize()" & sleep 4; $B telemetry --duration 5 --hz 50 --out /tmp/tel-load >/dev/null; wait
cp /tmp/tel-load/summary.json $OUT/tel-load-summary.json; head -c 2500 /tmp/tel-load/summary.json; echo
bash dev/cuda/run_lab.sh
