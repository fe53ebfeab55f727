#!/bin/sh
# Reproduces the federated runs of the README's "Learning quality" section
# (McMahan et al. 2017's MNIST rows: 100 clients, C=0.1, B=10, seed 1) and
# draws their accuracy plots. Run from the repository root. Each run's JSON
# lines go to build/learning/NAME.jsonl and its wall time to stderr; on this
# 2-core machine the CNN run took 45 minutes, the 2NN runs 99 and 184 s.
#
#   sh build/learning/run.sh            # every run, then the plots
#   sh build/learning/run.sh plot       # only the plots, from the .jsonl files
set -eu
dir=build/learning
bin=${QFLARE_BIN:-$(mktemp -d)/qflare}

sim() {
	name=$1
	shift
	echo "qflare sim $* --json > $dir/$name.jsonl" >&2
	start=$(date +%s)
	nice -n 10 "$bin" sim "$@" --json >"$dir/$name.jsonl"
	echo "$name: $(($(date +%s) - start)) s" >&2
}

if [ "${1:-}" != plot ]; then
	go build -o "$bin" ./server
	sim 2nn-iid --model mnist-2nn --clients 100 --fraction 0.1 --epochs 1 --partition iid --rounds 100 --target 0.97 --seed 1
	sim 2nn-shards --model mnist-2nn --clients 100 --fraction 0.1 --epochs 1 --partition shards:2 --rounds 400 --target 0.97 --stop-at-target --seed 1
	sim cnn-iid --model mnist-cnn --clients 100 --fraction 0.1 --epochs 5 --partition iid --rounds 20 --target 0.99 --seed 1
fi

go run ./build/learning/plot -o "$dir/cnn.svg" -ymin 0.9 -target 0.99 \
	-title "mnist-cnn, IID, E=5, B=10, C=0.1, 100 clients" \
	"mnist-cnn, IID, E=5=$dir/cnn-iid.jsonl"
go run ./build/learning/plot -o "$dir/2nn.svg" -ymin 0.8 -target 0.97 \
	-title "mnist-2nn, E=1, B=10, C=0.1, 100 clients" \
	"mnist-2nn, IID=$dir/2nn-iid.jsonl" \
	"mnist-2nn, pathological non-IID (shards:2)=$dir/2nn-shards.jsonl"
