#!/bin/sh
# The commands deploybench study ran, in order (study manifest: manifest.json).
# Run from the folder the study ran in; DPB names the binary.
# study: deploybench study --out /tmp/h200/study-h200 --resume --steps report
cd /work/main || exit 1
DPB=${DPB:-deploybench}
set -e
# gpt-oss-20b latency: complete, started 2026-11-26T13:25:14.805Z
"$DPB" latency --model synth:gpt-oss-20b --out /root/out/study-h200/gpt-oss-20b/latency --backend cuda --prompt-tokens 128,2048 --gen-tokens 64 --num-requests 3 --warmup 1 --seed 1
# gpt-oss-20b memory: complete, started 2026-11-26T13:25:18.301Z
"$DPB" memory --model synth:gpt-oss-20b --out /root/out/study-h200/gpt-oss-20b/memory --backend cuda --contexts 2048,8192 --gen-tokens 64 --seed 1
# gpt-oss-20b energy: complete, started 2026-11-26T13:25:20.165Z
"$DPB" energy --model synth:gpt-oss-20b --out /root/out/study-h200/gpt-oss-20b/energy --backend cuda --contexts 2048 --gen-tokens 64 --num-runs 5 --idle-seconds 5 --power-poll-hz 20 --seed 1
# gpt-oss-20b ablate-experts: complete, started 2026-11-26T13:25:27.663Z
"$DPB" ablate --model synth:gpt-oss-20b --out /root/out/study-h200/gpt-oss-20b/ablate-experts --backend cuda --tests experts --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# gpt-oss-20b ablate-kv: complete, started 2026-11-26T13:25:31.275Z
"$DPB" ablate --model synth:gpt-oss-20b --out /root/out/study-h200/gpt-oss-20b/ablate-kv --backend cuda --tests kv --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# gpt-oss-20b ablate-precision: complete, started 2026-11-26T13:25:33.151Z
"$DPB" ablate --model synth:gpt-oss-20b --out /root/out/study-h200/gpt-oss-20b/ablate-precision --backend cuda --tests precision --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# gpt-oss-20b ablate-graphs: complete, started 2026-11-26T13:25:35.162Z
"$DPB" ablate --model synth:gpt-oss-20b --out /root/out/study-h200/gpt-oss-20b/ablate-graphs --backend cuda --tests graphs --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# gpt-oss-20b serve: complete, started 2026-11-26T13:25:37.075Z
"$DPB" load --launch '/work/main/.devcarry/deploybench serve --model synth:gpt-oss-20b --backend cuda --host 127.0.0.1 --port 60169 --max-batch 16 --max-model-len 592' --endpoint http://127.0.0.1:60169 --model synth:gpt-oss-20b --concurrency 1,4,16 --num-requests 16 --prompt-tokens 512 --gen-tokens 64 --goodput ttft:2000,tpot:100 --seed 1 --out /root/out/study-h200/gpt-oss-20b/serve
# qwen3-32b latency: complete, started 2026-11-26T13:25:54.953Z
"$DPB" latency --model synth:qwen3-32b --out /root/out/study-h200/qwen3-32b/latency --backend cuda --prompt-tokens 128,2048 --gen-tokens 64 --num-requests 3 --warmup 1 --seed 1
# qwen3-32b memory: complete, started 2026-11-26T13:26:08.567Z
"$DPB" memory --model synth:qwen3-32b --out /root/out/study-h200/qwen3-32b/memory --backend cuda --contexts 2048,8192 --gen-tokens 64 --seed 1
# qwen3-32b energy: complete, started 2026-11-26T13:26:22.271Z
"$DPB" energy --model synth:qwen3-32b --out /root/out/study-h200/qwen3-32b/energy --backend cuda --contexts 2048 --gen-tokens 64 --num-runs 5 --idle-seconds 5 --power-poll-hz 20 --seed 1
# qwen3-32b ablate-experts: complete, started 2026-11-26T13:26:40.296Z
"$DPB" ablate --model synth:qwen3-32b --out /root/out/study-h200/qwen3-32b/ablate-experts --backend cuda --tests experts --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# qwen3-32b ablate-kv: complete, started 2026-11-26T13:26:40.318Z
"$DPB" ablate --model synth:qwen3-32b --out /root/out/study-h200/qwen3-32b/ablate-kv --backend cuda --tests kv --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# qwen3-32b ablate-precision: complete, started 2026-11-26T13:26:48.684Z
"$DPB" ablate --model synth:qwen3-32b --out /root/out/study-h200/qwen3-32b/ablate-precision --backend cuda --tests precision --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# qwen3-32b ablate-graphs: complete, started 2026-11-26T13:26:57.143Z
"$DPB" ablate --model synth:qwen3-32b --out /root/out/study-h200/qwen3-32b/ablate-graphs --backend cuda --tests graphs --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# qwen3-32b serve: complete, started 2026-11-26T13:27:05.687Z
"$DPB" load --launch '/work/main/.devcarry/deploybench serve --model synth:qwen3-32b --backend cuda --host 127.0.0.1 --port 49785 --max-batch 16 --max-model-len 592' --endpoint http://127.0.0.1:49785 --model synth:qwen3-32b --concurrency 1,4,16 --num-requests 16 --prompt-tokens 512 --gen-tokens 64 --goodput ttft:2000,tpot:100 --seed 1 --out /root/out/study-h200/qwen3-32b/serve
# yi-34b latency: complete, started 2026-11-26T13:28:15.102Z
"$DPB" latency --model synth:yi-34b --out /root/out/study-h200/yi-34b/latency --backend cuda --prompt-tokens 128,2048 --gen-tokens 64 --num-requests 3 --warmup 1 --seed 1
# yi-34b memory: complete, started 2026-11-26T13:28:28.402Z
"$DPB" memory --model synth:yi-34b --out /root/out/study-h200/yi-34b/memory --backend cuda --contexts 2048 --gen-tokens 64 --seed 1
# yi-34b energy: complete, started 2026-11-26T13:28:30.577Z
"$DPB" energy --model synth:yi-34b --out /root/out/study-h200/yi-34b/energy --backend cuda --contexts 2048 --gen-tokens 64 --num-runs 5 --idle-seconds 5 --power-poll-hz 20 --seed 1
# yi-34b ablate-experts: complete, started 2026-11-26T13:28:48.030Z
"$DPB" ablate --model synth:yi-34b --out /root/out/study-h200/yi-34b/ablate-experts --backend cuda --tests experts --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# yi-34b ablate-kv: complete, started 2026-11-26T13:28:48.054Z
"$DPB" ablate --model synth:yi-34b --out /root/out/study-h200/yi-34b/ablate-kv --backend cuda --tests kv --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# yi-34b ablate-precision: complete, started 2026-11-26T13:28:56.551Z
"$DPB" ablate --model synth:yi-34b --out /root/out/study-h200/yi-34b/ablate-precision --backend cuda --tests precision --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# yi-34b ablate-graphs: complete, started 2026-11-26T13:29:05.076Z
"$DPB" ablate --model synth:yi-34b --out /root/out/study-h200/yi-34b/ablate-graphs --backend cuda --tests graphs --prompt-tokens 512 --gen-tokens 64 --num-requests 2 --warmup 1 --seed 1
# yi-34b serve: complete, started 2026-11-26T13:29:13.659Z
"$DPB" load --launch '/work/main/.devcarry/deploybench serve --model synth:yi-34b --backend cuda --host 127.0.0.1 --port 43167 --max-batch 16 --max-model-len 592' --endpoint http://127.0.0.1:43167 --model synth:yi-34b --concurrency 1,4,16 --num-requests 16 --prompt-tokens 512 --gen-tokens 64 --goodput ttft:2000,tpot:100 --seed 1 --out /root/out/study-h200/yi-34b/serve
# (all models) unify: complete, started 2026-11-26T13:30:11.244Z
"$DPB" unify --results /root/out/study-h200/gpt-oss-20b/latency --results /root/out/study-h200/gpt-oss-20b/memory --results /root/out/study-h200/gpt-oss-20b/energy --results /root/out/study-h200/qwen3-32b/latency --results /root/out/study-h200/qwen3-32b/memory --results /root/out/study-h200/qwen3-32b/energy --results /root/out/study-h200/yi-34b/latency --results /root/out/study-h200/yi-34b/memory --results /root/out/study-h200/yi-34b/energy --out /root/out/study-h200/unified
# (all models) ape: complete, started 2026-11-26T13:30:11.248Z
"$DPB" ape --results /root/out/study-h200/gpt-oss-20b/latency --results /root/out/study-h200/gpt-oss-20b/memory --results /root/out/study-h200/gpt-oss-20b/energy --results /root/out/study-h200/qwen3-32b/latency --results /root/out/study-h200/qwen3-32b/memory --results /root/out/study-h200/qwen3-32b/energy --results /root/out/study-h200/yi-34b/latency --results /root/out/study-h200/yi-34b/memory --results /root/out/study-h200/yi-34b/energy --out /root/out/study-h200/ape
# (all models) report: complete, started 2026-11-26T13:31:37.907Z
"$DPB" report --results /tmp/h200/study-h200
