# QFLARE build and test entry points. `make run` and `make test` are the two
# commands a newcomer needs; see README.md.
GO       ?= go
GOROOT   := $(shell $(GO) env GOROOT)
WASMEXEC := $(GOROOT)/lib/wasm
BIN      := bin
ADDR     ?= 127.0.0.1:8080
DB       ?= qflare.db
# Fuzzing budgets are execution counts, not durations: with a duration, Go
# 1.26's fuzz coordinator can report a spurious "context deadline exceeded"
# when the time runs out (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME ?= 60000x
FUZZTIME_SLOW ?= 20000x
# The toolchain of the SIMD128 wasm build (fetched from the Go module proxy on
# first use); "none" skips it.
SIMD_TOOLCHAIN ?= go1.27.3
# The container image make image builds (podman or buildah).
IMAGE ?= localhost/qflare:latest
# workerd, the Workers runtime the edge shard's tests and make edge-dev run
# under (npm package, pinned in build/edge/package-lock.json).
WORKERD := build/edge/node_modules/.bin/workerd
SHARDS ?= 2

# The packages whose tests run under the race detector, and the rest. The
# browser tests (e2e) run after the others, not beside them: they measure how
# responsive a tab stays, which a machine busy with other packages' tests
# would decide instead.
SERVER_PKGS := ./server/...
E2E_PKG := ./server/internal/e2e
OTHER_PKGS   = $(shell $(GO) list ./... | grep -v '/server')

.PHONY: all build wasm vendor run image test vet test-native test-race test-wasm test-wasm-simd fuzz bench-smoke \
	test-e2e bench bench-workers bench-demo bench-load bench-soak bench-secagg screenshots fmt clean edge edge-dev test-edge

all: build

# The server embeds www/static, so the wasm client (and the gzipped copies
# of the vendored scripts) are built first.
build: $(BIN)/qflare

$(BIN)/qflare: wasm vendor FORCE
	$(GO) build -o $@ ./server

wasm:
	GO=$(GO) SIMD_TOOLCHAIN=$(SIMD_TOOLCHAIN) sh build/wasm.sh

vendor:
	sh build/vendor.sh

run: build
	$(BIN)/qflare serve --addr $(ADDR) --db $(DB) --demo

# The edge shard's Worker bundle (bin/edge: edge.wasm and the JS glue), and
# the pages it serves as static assets (www/static, with client.wasm).
edge: wasm vendor
	GO=$(GO) sh build/edge.sh $(BIN)/edge

$(WORKERD): build/edge/package-lock.json
	npm ci --prefix build/edge --no-audit --no-fund
	touch $@

# The server with SHARDS edge shards in front of it, each under workerd on
# its own port from 8787 (README.md, Edge shards).
edge-dev: build edge $(WORKERD)
	$(GO) run ./build/edgedev -serve $(BIN)/qflare -bundle $(BIN)/edge -addr $(ADDR) -db $(DB) -shards $(SHARDS)

# serve, two shards under workerd and 40 headless clients, five rounds of
# mnist-2nn, then the same directly: one JSON line; and a Chromium tab
# through a shard.
test-edge: $(WORKERD)
	bash -o pipefail -c "QFLARE_TEST_EDGE=1 $(GO) test -count=1 -v -run 'TestEdge' -timeout 40m ./server/edge ./server/internal/e2e | grep -E '^[{]|^(ok|FAIL|--- )|(edge|e2e)_test.go'"

# The OCI image (build/Containerfile, FROM scratch): the static server with
# the wasm client embedded. See README.md, "Run it for real".
image: wasm vendor
	GO=$(GO) sh build/image.sh $(IMAGE)

test: vet test-native test-race test-wasm test-wasm-simd fuzz bench-smoke

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./shared/... ./wasmclient ./server/edge ./server/internal/shard ./server/internal/shardwire

test-native:
	$(GO) test $(OTHER_PKGS)
	$(GO) test -tags noasm ./shared/...

# The server packages, including the browser end-to-end tests (headless
# Chromium; they skip, saying why, where it is not installed).
test-race:
	$(GO) test -race $$($(GO) list $(SERVER_PKGS) | grep -v '/server/internal/e2e$$')
	$(GO) test -race $(E2E_PKG)

# The numeric core, protocol and client logic run in the browser: test them
# as wasm under node too, with the portable kernel and with SIMD128.
test-wasm:
	PATH="$(WASMEXEC):$$PATH" GOOS=js GOARCH=wasm $(GO) test ./shared/... ./wasmclient

test-wasm-simd:
	@if [ "$(SIMD_TOOLCHAIN)" = none ] || ! root=$$(GOTOOLCHAIN=$(SIMD_TOOLCHAIN) $(GO) env GOROOT 2>/dev/null); then \
	  echo "test-wasm-simd: toolchain $(SIMD_TOOLCHAIN) unavailable, skipped"; \
	else \
	  echo "PATH=$$root/lib/wasm:\$$PATH GOTOOLCHAIN=$(SIMD_TOOLCHAIN) GOEXPERIMENT=simd GOOS=js GOARCH=wasm go test ./shared/nn ./shared/kernels"; \
	  PATH="$$root/lib/wasm:$$PATH" GOTOOLCHAIN=$(SIMD_TOOLCHAIN) GOEXPERIMENT=simd GOOS=js GOARCH=wasm $(GO) test ./shared/nn ./shared/kernels; \
	fi

# Brief fuzzing of every decoder that reads outside input.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseFrame$$' -fuzztime $(FUZZTIME) ./shared/wire
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./shared/wire
	$(GO) test -run '^$$' -fuzz '^FuzzParseMessage$$' -fuzztime $(FUZZTIME) ./shared/wire
	$(GO) test -run '^$$' -fuzz '^FuzzParseSecAgg$$' -fuzztime $(FUZZTIME) ./shared/wire
	$(GO) test -run '^$$' -fuzz '^FuzzReadSet$$' -fuzztime $(FUZZTIME) ./shared/data
	$(GO) test -run '^$$' -fuzz '^FuzzReadIDX$$' -fuzztime $(FUZZTIME) ./shared/data
	$(GO) test -run '^$$' -fuzz '^FuzzReadCIFAR10$$' -fuzztime $(FUZZTIME_SLOW) ./shared/data
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./server/internal/shardwire

# Every benchmark once, so none rots (the measurements are make bench and
# make bench-load), and the load generator on a small scale.
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./shared/... ./server/internal/store
	$(GO) run ./build/loadbench -quick

test-e2e:
	$(GO) test -count=1 -v ./server/internal/e2e

# Training speed (native, wasm, TF.js), Sgemm GFLOPS and codec speeds, as
# JSON lines with the ratios; then 1 vs 2 workers in headless Chromium.
bench:
	SIMD_TOOLCHAIN=$(SIMD_TOOLCHAIN) $(GO) run ./build/bench -simd-toolchain $(SIMD_TOOLCHAIN)
	bash -o pipefail -c "QFLARE_BENCH_WORKERS=1 QFLARE_BENCH_JSON=1 $(GO) test -count=1 -v -run WorkerSpeedup -timeout 20m ./server/internal/e2e | grep -E '^[{]|speed-up|^(ok|FAIL|--- )'"

# The server under load over real WebSockets (1,000 clients on mlp:32 and
# mnist-2nn, 10,000 idle sockets): JSON lines, with the machine's
# decode+fold limit measured in the same run. SHARD=auto drives 200
# clients (CLIENTS=N) through one edge shard under workerd instead (make
# edge first), and reports what the shard folds per second.
bench-load:
	$(GO) run ./build/loadbench $(if $(SHARD),-shard $(SHARD) -idle 0 -clients $(or $(CLIENTS),200))

# Memory over long runs: 500 rounds of a mnist-2nn sim, 30 of a mnist-cnn sim
# (E=5; about an hour here) and 200 rounds of serve under load. Live heap and
# RSS (also after debug.FreeOSMemory) as JSON lines every few rounds. The
# sims record into a database file, as serve does: with the default
# in-memory store the run's record (rows, every 10th model) is memory too.
SOAKDIR ?= $(or $(TMPDIR),/tmp)/qflare-soak
bench-soak:
	rm -rf $(SOAKDIR) && mkdir -p $(SOAKDIR)
	$(GO) run ./server sim --model mnist-2nn --clients 100 --fraction 0.1 --epochs 1 --rounds 500 --eval-limit 2000 --mem-every 25 --db $(SOAKDIR)/2nn.db --json | grep '"mem"'
	$(GO) run ./server sim --model mnist-cnn --clients 100 --fraction 0.1 --epochs 5 --rounds 30 --eval-limit 2000 --mem-every 3 --db $(SOAKDIR)/cnn.db --json | grep '"mem"'
	$(GO) run ./build/loadbench -models none -idle 0 -soak 200

bench-workers:
	QFLARE_BENCH_WORKERS=1 $(GO) test -count=1 -v -run WorkerSpeedup -timeout 20m ./server/internal/e2e

# Secure aggregation's costs (README.md, Secure aggregation): one member's
# work natively, in wasm under node and in Chromium (n = 10, 100, 1000);
# headless clients over WebSockets (n = 10, 100); simulations (n = 10, 100,
# and 1000 with k:8: a simulated round of 1000 on the complete graph is a
# thousand members' work, about a thousand CPU-seconds). About an hour.
bench-secagg:
	QFLARE_SECAGG_MEMBERS=10,100,1000 $(GO) test -run '^$$' -bench '^BenchmarkMember$$' -benchtime 5x -timeout 30m ./shared/secagg
	QFLARE_SECAGG_MEMBERS=10,100,1000 PATH="$(WASMEXEC):$$PATH" GOOS=js GOARCH=wasm $(GO) test -run '^$$' -bench '^BenchmarkMember$$' -benchtime 5x -timeout 30m ./shared/secagg
	bash -o pipefail -c "QFLARE_BENCH_SECAGG=1 QFLARE_SECAGG_MEMBERS=10,100,1000 $(GO) test -count=1 -v -run SecAggMemberCostInChromium -timeout 40m ./server/internal/e2e | grep -E '^[{]|^(ok|FAIL|--- )'"
	bash -o pipefail -c "QFLARE_BENCH_SECAGG=1 $(GO) test -count=1 -v -run SecAggCostHeadless -timeout 60m ./server | grep -E '^[{]|^(ok|FAIL|--- )'"
	$(GO) run ./server study secagg --grid 10,100 --rounds 3 --json
	$(GO) run ./server study secagg --grid 1000 --graphs k:8 --rounds 2 --json

# Three Chromium tabs on the demo run: how long until 97% (README.md, Demo).
bench-demo:
	QFLARE_BENCH_DEMO=1 $(GO) test -count=1 -v -run DemoReaches97 -timeout 30m ./server/internal/e2e

screenshots:
	QFLARE_UPDATE_SCREENSHOTS=1 $(GO) test -count=1 -v -run 'TabsTrainTogether|OwnData|PhoneAndPresenter|AsyncProfiles' ./server/internal/e2e

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) www/static/vendor/*.gz www/static/client.wasm* www/static/client-simd.wasm* www/static/wasm_exec.js*

FORCE:
