#!/bin/bash
# usage: measure.sh DATASET NAME [models...]
cd /work/calib
export PYTHONPATH=/work/calib
P=/work/main/.venv/bin/python
ds=$1; name=$2; shift 2
models=${@:-popularity markov itemknn sasrec}
for m in $models; do
  s=$(date +%s)
  nice -n 10 $P -m regen_bench run --model $m --task sequential --dataset $ds --threads 1 -q --seed 0 --out candidates/results/$name --embedder none > candidates/results_$name_$m.log 2>&1
  rc=$?
  f=$(ls -t candidates/results/$name/*/sequential/*.json 2>/dev/null | grep -v jsonl | head -1)
  echo "$name $m rc=$rc $(( $(date +%s)-s ))s $(python3 -c "import json,sys;d=json.load(open('$f'));m=d.get('metrics',d);print({k:v for k,v in (m.items() if isinstance(m,dict) else []) if k.lower() in ('ndcg@10','recall@10')})" 2>&1 | tail -1)"
done
