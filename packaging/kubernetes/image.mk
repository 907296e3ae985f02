# make image: the container image without a Docker daemon (included by the
# Makefile). Static binaries for IMAGE_ARCHS, then
# packaging/kubernetes/imagebuild writes dist/image/: oci/ (a multi-arch OCI
# image layout), nginx-shipper-oci.tar (the same, one file) and
# nginx-shipper-ARCH.tar (docker load / kind load image-archive).
IMAGE ?= ghcr.io/nginx-shipper/nginx-shipper:$(subst +,_,$(VERSION))
IMAGE_ARCHS ?= amd64 arm64

.PHONY: image
image:
	@for a in $(IMAGE_ARCHS); do \
		echo "go build linux/$$a"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-$$a/nginx-shipper ./cmd/nginx-shipper || exit 1; \
	done
	$(GO) run ./packaging/kubernetes/imagebuild -ref '$(IMAGE)' -version '$(VERSION)' -revision '$(COMMIT)' -out dist/image \
		$(foreach a,$(IMAGE_ARCHS),-bin $(a)=bin/linux-$(a)/nginx-shipper)
