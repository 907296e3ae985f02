# packaging/package.mk: .deb and .rpm packages (amd64, arm64) built with nfpm,
# which is pinned in go.mod as a tool (`go tool nfpm`): no network installer.
# Included by the top-level Makefile, which defines VERSION and COMMIT.
#
#   make package        dist/nginx-shipper_<ver>-1_{amd64,arm64}.deb, dist/nginx-shipper-<ver>-1.{x86_64,aarch64}.rpm
#   make package-test   build them, then lint, install, check and remove (as root; see test-packages.sh)
#
# PKG_PREBUILT=DIR packages DIR/linux-<arch>/nginx-shipper instead of building.

PKG_GO       ?= go
PKG_NFPM     ?= $(PKG_GO) tool nfpm
PKG_ARCHES   ?= amd64 arm64
PKG_DIST     ?= dist
PKG_VERSION  ?= $(shell sh packaging/version.sh '$(VERSION)' '$(COMMIT)')
PKG_LDFLAGS  ?= $(if $(LDFLAGS),$(LDFLAGS),-s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT))
PKG_PREBUILT ?=
# Reproducible file times: the commit's time when in git.
PKG_SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

.PHONY: package package-test package-clean

package:
	@set -e; \
	rm -rf $(PKG_DIST)/pkgbuild; mkdir -p $(PKG_DIST)/pkgbuild; \
	rm -f $(PKG_DIST)/nginx-shipper*.deb $(PKG_DIST)/nginx-shipper*.rpm; \
	gzip -9nc packaging/nginx-shipper.1 > $(PKG_DIST)/pkgbuild/nginx-shipper.1.gz; \
	for arch in $(PKG_ARCHES); do \
		bin=$(PKG_DIST)/pkgbuild/linux-$$arch/nginx-shipper; mkdir -p $$(dirname $$bin); \
		if [ -n "$(PKG_PREBUILT)" ]; then \
			cp "$(PKG_PREBUILT)/linux-$$arch/nginx-shipper" $$bin; \
		else \
			echo "go build linux/$$arch"; \
			CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(PKG_GO) build -trimpath \
				-ldflags '$(PKG_LDFLAGS)' -o $$bin ./cmd/nginx-shipper; \
		fi; \
		for fmt in deb rpm; do \
			PKG_ARCH=$$arch PKG_VERSION='$(PKG_VERSION)' PKG_BIN=$$bin \
			PKG_MAN=$(PKG_DIST)/pkgbuild/nginx-shipper.1.gz \
			SOURCE_DATE_EPOCH=$(PKG_SOURCE_DATE_EPOCH) \
				$(PKG_NFPM) package -f packaging/nfpm.yaml -p $$fmt -t $(PKG_DIST)/; \
		done; \
	done; \
	ls -l $(PKG_DIST)/nginx-shipper*.deb $(PKG_DIST)/nginx-shipper*.rpm

package-test: package
	PKG_DIST=$(PKG_DIST) PKG_VERSION='$(PKG_VERSION)' bash packaging/test-packages.sh

package-clean:
	rm -rf $(PKG_DIST)/pkgbuild $(PKG_DIST)/nginx-shipper*.deb $(PKG_DIST)/nginx-shipper*.rpm
