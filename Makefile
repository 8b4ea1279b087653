# vigia's everyday commands. `make help` lists them.

GO              ?= go
BIN             ?= bin/vigia
RUN_DIR         ?= run
CLIENT_REPLICAS ?= 1
NATIVE_ADDR     ?= 127.0.0.1:7574
HTTP_ADDR       ?= 127.0.0.1:7575
FUZZTIME        ?= 3s
# How long make down waits for each process it stopped, in seconds: a
# server finishes its requests and flushes its head first.
STOP_TIMEOUT    ?= 60
# Test binaries run two at a time: CI machines have 2 cores.
TESTFLAGS       ?= -race -count=1 -p 2 -timeout 20m

.PHONY: help build test check lint fmt vet staticcheck fuzz bench up logs manual down clean

help:
	@echo "make build            build $(BIN)"
	@echo "make test             run every test with the race detector"
	@echo "make check            gofmt, go vet, staticcheck, tests with -race, short fuzzing"
	@echo "make fuzz             fuzz every Fuzz target for FUZZTIME (default 3s) each"
	@echo "make bench            run the Go benchmarks once"
	@echo "make up               start a server and CLIENT_REPLICAS load clients in the background (logs in $(RUN_DIR)/)"
	@echo "make logs             follow their logs"
	@echo "make manual           type native protocol commands to the running server"
	@echo "make down             stop exactly the processes make up started"

build:
	$(GO) build -o $(BIN) ./cmd/vigia

test:
	$(GO) test $(TESTFLAGS) ./...

check: lint test fuzz

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	@command -v staticcheck >/dev/null || { echo "staticcheck not found: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2"; exit 1; }
	staticcheck ./...

# A target whose first run fails is run again: a real failure leaves its
# input in testdata/fuzz, so the second run fails too, while a fuzzing
# engine hiccup (a worker hung under load) does not fail the build.
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    if ! $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1; then \
	      cat $$log; echo "fuzz $$pkg $$f failed; running it again"; \
	      $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	    fi; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# RUNS_BIN, in a recipe, succeeds when process $$pid still runs $(BIN): a
# PID recorded by up and since reused by another program does not.
RUNS_BIN = tr '\0' ' ' 2>/dev/null </proc/$$pid/cmdline | grep -q "^$(BIN) "

# up refuses to start while what an earlier up started still runs (the
# server or a load client: make down stops them), and reports success only
# once its own server is listening (it waits up to a minute, for a long WAL
# replay, unless the server exits).
up: build
	@mkdir -p $(RUN_DIR)
	@for f in $(RUN_DIR)/server.pid $(RUN_DIR)/load-*.pid; do \
	  [ -f "$$f" ] || continue; pid=$$(cat $$f); \
	  if $(RUNS_BIN); then \
	    echo "already up ($$f: pid $$pid still runs); make down first"; exit 1; fi; \
	  rm -f $$f; \
	done
	@$(BIN) server --data-dir $(RUN_DIR)/data --native-addr $(NATIVE_ADDR) --http-addr $(HTTP_ADDR) \
	  >$(RUN_DIR)/server.log 2>&1 & echo $$! >$(RUN_DIR)/server.pid
	@pid=$$(cat $(RUN_DIR)/server.pid); \
	for i in $$(seq 600); do \
	  kill -0 $$pid 2>/dev/null || break; \
	  grep -q 'msg="native protocol listening"' $(RUN_DIR)/server.log && exit 0; \
	  sleep 0.1; \
	done; \
	echo "server did not start (set NATIVE_ADDR, HTTP_ADDR or RUN_DIR for its --native-addr, --http-addr and data dir):"; cat $(RUN_DIR)/server.log; kill $$pid 2>/dev/null; rm -f $(RUN_DIR)/server.pid; exit 1
	@for i in $$(seq $(CLIENT_REPLICAS)); do \
	  $(BIN) load --addr $(NATIVE_ADDR) --clients 1 --rate 10 --metrics 10 --prefix load$$i --duration 0 \
	    >$(RUN_DIR)/load-$$i.log 2>&1 & echo $$! >$(RUN_DIR)/load-$$i.pid; \
	done
	@echo "up: server on $(NATIVE_ADDR) (http $(HTTP_ADDR)), $(CLIENT_REPLICAS) load client(s); logs in $(RUN_DIR)/"

logs:
	tail -n 20 -F $(RUN_DIR)/*.log

manual: build
	$(BIN) client --addr $(NATIVE_ADDR)

# down signals only the PIDs that up recorded, and only if each still runs
# $(BIN) (a PID reused by another program is left alone). A process still
# running STOP_TIMEOUT seconds later is reported and its PID file kept.
down:
	@rc=0; for f in $(RUN_DIR)/load-*.pid $(RUN_DIR)/server.pid; do \
	  [ -f "$$f" ] || continue; pid=$$(cat $$f); \
	  if $(RUNS_BIN); then \
	    kill -TERM $$pid; for i in $$(seq $$(($(STOP_TIMEOUT) * 10))); do $(RUNS_BIN) || break; sleep 0.1; done; \
	    if $(RUNS_BIN); then \
	      echo "$$f: pid $$pid still runs $(STOP_TIMEOUT) s after SIGTERM; make down again to end it at once (a server replays what it acknowledged from its WAL at the next start)"; rc=1; continue; fi; \
	    echo "stopped $$f ($$pid)"; \
	  fi; rm -f $$f; \
	done; exit $$rc

clean:
	rm -rf bin
