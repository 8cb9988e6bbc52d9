# Developer entry points. CI runs .ci/run, which uses these targets.
BUF := tools/node_modules/.bin/buf

.PHONY: all build test tools gen proto-check run bench fleet clean

all: build

build:
	go build -o bin/ ./cmd/...

# The README's test command.
test:
	go test -race -count=1 ./...

# buf from npm (pinned in tools/package-lock.json) and the protoc plugins
# from tools/go.mod; both offline-capable once installed.
tools: $(BUF) tools/bin/protoc-gen-go tools/bin/protoc-gen-go-grpc

$(BUF): tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund --loglevel=error
	touch $(BUF)

tools/bin/protoc-gen-go tools/bin/protoc-gen-go-grpc: tools/go.mod
	cd tools && GOBIN=$(CURDIR)/tools/bin go install google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

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

# Runs the daemon on the example file against the simulated cloud.
run:
	go run ./cmd/replicatord --config policies.example.yaml

bench:
	go test -run '^$$' -bench . -benchtime 1x ./...

clean:
	rm -rf bin tools/bin tools/node_modules
