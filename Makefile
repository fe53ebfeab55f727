# QFLARE build and test entry points. `make run` and `make test` are the two
# commands a newcomer needs; see README.md.
GO       ?= go
GOROOT   := $(shell $(GO) env GOROOT)
WASMEXEC := $(GOROOT)/lib/wasm
BIN      := bin
ADDR     ?= 127.0.0.1:8080
DB       ?= qflare.db
FUZZTIME ?= 8s

# The packages whose tests run under the race detector, and the rest.
SERVER_PKGS := ./server/...
OTHER_PKGS   = $(shell $(GO) list ./... | grep -v '/server')

.PHONY: all build run test test-native test-race test-wasm fuzz vet fmt clean

all: build

build: $(BIN)/qflare

$(BIN)/qflare: FORCE
	$(GO) build -o $@ ./server

run: build
	$(BIN)/qflare serve --addr $(ADDR) --db $(DB) --demo

test: vet test-native test-race test-wasm fuzz

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./shared/...

test-native:
	$(GO) test $(OTHER_PKGS)
	$(GO) test -tags noasm ./shared/...

test-race:
	$(GO) test -race $(SERVER_PKGS)

# The numeric core, protocol and client logic run in the browser: test them
# as wasm under node too.
test-wasm:
	PATH="$(WASMEXEC):$$PATH" GOOS=js GOARCH=wasm $(GO) test ./shared/...

# Brief fuzzing of every decoder that reads outside input.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseFrame$$' -fuzztime $(FUZZTIME) ./shared/wire
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./shared/wire
	$(GO) test -run '^$$' -fuzz '^FuzzParseMessage$$' -fuzztime $(FUZZTIME) ./shared/wire
	$(GO) test -run '^$$' -fuzz '^FuzzReadSet$$' -fuzztime $(FUZZTIME) ./shared/data
	$(GO) test -run '^$$' -fuzz '^FuzzReadIDX$$' -fuzztime $(FUZZTIME) ./shared/data
	$(GO) test -run '^$$' -fuzz '^FuzzReadCIFAR10$$' -fuzztime $(FUZZTIME) ./shared/data

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)

FORCE:
