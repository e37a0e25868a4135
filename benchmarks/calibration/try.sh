#!/bin/bash
# usage: try.sh NAME [synth args...]   (generates candidates/NAME.jsonl.gz, measures 4 models)
cd /work/calib; export PYTHONPATH=/work/calib; P=/work/main/.venv/bin/python
name=$1; shift
nice -n 10 $P -m regen_bench data synth --out candidates/$name.jsonl.gz "$@" | grep -E "per user|critique" | tr -s ' ' | tr '\n' ' '; echo
./candidates/measure.sh candidates/$name.jsonl.gz $name ${MODELS:-popularity markov itemknn sasrec}
