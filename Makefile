# Developer entry points. CI runs .ci/run, which uses these targets.
BUF := tools/node_modules/.bin/buf

.PHONY: all build test tools gen proto-check lint run bench fuzz clean ops-tools chart-check rules-check deploy-check image image-test

all: build

build:
	go build -o bin/ ./cmd/...

# The README's test command.
test:
	go test -race -count=1 ./...

# buf from npm (pinned in tools/package-lock.json); the protoc plugins,
# staticcheck and gocyclo from tools/go.mod; etcd (for the HA e2e tests)
# from tools/etcd/go.mod; offline-capable once installed.
tools: $(BUF) tools/bin/protoc-gen-go tools/bin/protoc-gen-go-grpc tools/bin/staticcheck tools/bin/gocyclo tools/bin/etcd

$(BUF): tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund --loglevel=error
	touch $(BUF)

tools/bin/protoc-gen-go tools/bin/protoc-gen-go-grpc: tools/go.mod
	cd tools && GOBIN=$(CURDIR)/tools/bin go install google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

tools/bin/staticcheck tools/bin/gocyclo: tools/go.mod
	cd tools && GOBIN=$(CURDIR)/tools/bin go install honnef.co/go/tools/cmd/staticcheck github.com/fzipp/gocyclo/cmd/gocyclo

# etcd's own server, built from the module proxy: go install of
# go.etcd.io/etcd/server/v3 refuses (replace directives), so tools/etcd is a
# three-line main in its own module.
tools/bin/etcd: tools/etcd/go.mod tools/etcd/go.sum tools/etcd/main.go
	cd tools/etcd && go build -trimpath -o $(CURDIR)/tools/bin/etcd .

gen: tools
	$(BUF) generate

# Lint, format, breaking-change check against the previous commit, and
# proof that the committed generated code is what the proto produces.
proto-check: tools
	$(BUF) lint
	$(BUF) format -d --exit-code
	@if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:proto 2>/dev/null; then \
		$(BUF) breaking --against '.git#ref=HEAD~1'; fi
	$(BUF) generate
	git diff --exit-code -- gen
	@test -z "$$(git status --porcelain -- gen)" || { echo "untracked generated files:"; git status --porcelain -- gen; exit 1; }

# staticcheck, then the complexity budget: no function in internal/ above
# cyclomatic complexity 25 except the ones CONTRIBUTING.md names (and each
# one it names must still need it, so the list cannot go stale).
lint: tools/bin/staticcheck tools/bin/gocyclo
	tools/bin/staticcheck ./...
	GOCYCLO=tools/bin/gocyclo .ci/complexity

# Runs the daemon on the example file against the simulated cloud.
run:
	go run ./cmd/replicatord --config policies.example.yaml

bench:
	go test -run '^$$' -bench . -benchtime 1x ./...

# Every fuzz target, each for FUZZTIME: a count of executions by default
# (CI), a duration for a release (make fuzz FUZZTIME=10m). A count because
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when a -fuzztime duration ends on a loaded machine, having found
# nothing (golang/go#75804, fixed in Go 1.27); a count sets no deadline.
# 20000 executions take 1-20 s per target on a 2-core machine.
# Seed corpora live in each package's testdata/fuzz/<Target>; a crasher the
# fuzzer finds is written there too and becomes a regression test.
FUZZTIME ?= 20000x
FUZZ_TARGETS := \
	./internal/policy:FuzzParse \
	./internal/policy:FuzzRender \
	./internal/ecsemu:FuzzServeHTTP \
	./internal/ecsemu:FuzzVerifySignature \
	./internal/server:FuzzValidateCopy \
	./internal/state:FuzzDecodeJob \
	./internal/state:FuzzDecodeToken \
	./internal/transport:FuzzParseTokens \
	./cmd/replctl:FuzzParseAddress \
	./cmd/replctl:FuzzRenderFrame

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -parallel 2 $$pkg; \
	done

# helm and promtool for the deploy checks, each pinned in its own module
# (tools/helm, tools/promtool) so that their Kubernetes and cloud SDK
# dependencies touch neither go.mod nor tools/go.mod. Built from source
# through the Go module proxy; with a warm build cache each is only a
# link (times in BENCHMARKS.md). OPS_BIN must be absolute.
OPS_BIN ?= $(CURDIR)/tools/bin
HELM := $(OPS_BIN)/helm
PROMTOOL := $(OPS_BIN)/promtool
# helm built from source assumes Kubernetes 1.20 for .Capabilities; the
# chart needs 1.25 or later.
KUBE_VERSION ?= 1.30.0
CHART := deploy/helm/replicatord

ops-tools: $(HELM) $(PROMTOOL)

$(HELM): tools/helm/go.mod tools/helm/go.sum
	cd tools/helm && GOBIN=$(OPS_BIN) go install -trimpath helm.sh/helm/v3/cmd/helm

$(PROMTOOL): tools/promtool/go.mod tools/promtool/go.sum
	cd tools/promtool && GOBIN=$(OPS_BIN) go install -trimpath github.com/prometheus/prometheus/cmd/promtool

# helm lint and helm template of the chart with its default values and
# with every option on (ci/*-values.yaml), and proof that the guards
# refuse what would break the store.
chart-check: $(HELM)
	$(HELM) lint --strict --kube-version $(KUBE_VERSION) $(CHART)
	@set -e; for f in $(CHART)/ci/*-values.yaml; do \
		echo "helm lint + template -f $$f"; \
		$(HELM) lint --strict --kube-version $(KUBE_VERSION) -f $$f $(CHART); \
		$(HELM) template replicatord $(CHART) --kube-version $(KUBE_VERSION) -f $$f >/dev/null; \
	done
	$(HELM) template replicatord $(CHART) --kube-version $(KUBE_VERSION) >/dev/null
	@if $(HELM) template replicatord $(CHART) --kube-version $(KUBE_VERSION) --set replicas=2 >/dev/null 2>&1; then \
		echo "chart-check: replicas=2 with the bbolt store rendered; the guard is gone"; exit 1; fi

# promtool check rules and the rules' unit tests.
rules-check: $(PROMTOOL)
	$(PROMTOOL) check rules deploy/prometheus/alerts.yaml
	$(PROMTOOL) test rules deploy/prometheus/alerts_test.yaml

deploy-check: chart-check rules-check

# The container image (deploy/Containerfile), built offline with buildah,
# and its smoke test. Needs root (or a rootless buildah setup) and
# buildah; IMAGE names the result.
IMAGE ?= localhost/replicatord:dev
image:
	deploy/image/build.sh $(IMAGE)

image-test: image
	REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) deploy/image/smoke.sh $(IMAGE)

clean:
	rm -rf bin tools/bin tools/node_modules
