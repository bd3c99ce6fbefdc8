# pxed — build, test, demo, benchmarks. See README.md.
GO ?= go
LAB ?= $(CURDIR)/.cache/lab

.PHONY: build test unit assets demo bench-tftp fuzz lint clean package screenshots

build:
	$(GO) build -o pxed ./cmd/pxed

# The full test suite: unit, fuzz seeds, interop and the QEMU end-to-end set.
# Root and QEMU are needed for the namespace and firmware tests (they say so when they skip).
test: assets lint
	PXED_LAB=$(LAB) $(GO) test -count=1 -timeout 45m -p 1 ./...

# The Debian package (pure Go tooling: nfpm via go run; see packaging/):
# pxed_VERSION_amd64.deb in the repository root. `make test` builds and
# checks it too (packaging/deb_test.go).
package:
	GO=$(GO) scripts/package.sh .

# Unit tests only: no root, no network namespaces, no QEMU.
unit:
	$(GO) test -count=1 -short ./...

# README's web page screenshots (docs/*.png), rendered by headless Chromium.
screenshots:
	$(GO) test -count=1 -run TestScreenshots ./internal/web -screenshots $(CURDIR)/docs

# Kernel (Debian linux-image, apt-get download) and busybox initramfs for the lab.
assets:
	scripts/lab-assets.sh $(LAB)

demo: build assets
	scripts/demo.sh $(LAB)

bench-tftp: build
	bench/tftp.sh

FUZZTIME ?= 30s
fuzz:
	scripts/fuzz-all.sh $(FUZZTIME)

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf pxed .cache
