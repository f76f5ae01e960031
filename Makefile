# The two commands (see README):
#   make run    build and run the offline demo (trustgate demo); with CONFIG=file, run
#               trustgate serve --config file instead
#   make test   install the real peers, then run every check and test (unit + real-peer e2e)
GO       ?= go
GOBIN    ?= $(shell $(GO) env GOPATH)/bin
CONFIG   ?=
export PATH := $(GOBIN):$(PATH)

.PHONY: run build image deps test lint unit oracle deploy fuzz bench clean

build:
	$(GO) build -o bin/trustgate ./cmd/trustgate

# The container image, built without pulling a base image (internal/image): a static binary on an
# empty base, as a tarball for `docker load -i bin/trustgate-image.tar`. The Dockerfile builds the
# same image where a registry is reachable.
IMAGE ?= trustgate:dev
GO_TAGS ?=
image:
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -tags "$(GO_TAGS)" -ldflags "-s -w" -o bin/trustgate-linux ./cmd/trustgate
	$(GO) run ./internal/image/mkimage --binary bin/trustgate-linux --tag $(IMAGE) --out bin/trustgate-image.tar

run: build
ifeq ($(CONFIG),)
	./bin/trustgate demo
else
	./bin/trustgate serve --config $(CONFIG)
endif

deps:
	bash scripts/install-deps.sh

lint:
	@out=$$(gofmt -l . | grep -v '^oracle/' ; cd oracle && gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...
	staticcheck ./...
	cd oracle && $(GO) mod tidy -diff && $(GO) vet ./...
	cd deploy && $(GO) mod tidy -diff && $(GO) vet ./...

# unit + real-peer e2e tests of the main module (fuzz seed corpora run as ordinary tests).
unit:
	$(GO) test -count=1 -timeout 20m ./...

# the differential test against the notary v0.7.0 client library, kept in its own module.
oracle:
	cd oracle && $(GO) test -count=1 -timeout 10m ./...

# deploy/kubernetes and the Helm chart: strict decoding into the k8s.io/api types, helm lint and
# helm template; a module of its own, so the Kubernetes types stay out of trustgate's.
deploy:
	cd deploy && $(GO) test -count=1 ./...

test: deps lint unit oracle deploy

# Not part of `make test`: each fuzz target for FUZZTIME (default 20s).
FUZZTIME ?= 20s
fuzz:
	bash scripts/fuzz-all.sh $(FUZZTIME)

bench:
	bash bench/run.sh

clean:
	rm -rf bin
