// Command imagebuild builds the nginx-shipper container image without a
// Docker daemon: the static binary on an empty base, one image per
// architecture, written as an OCI image layout (a multi-arch index) and as
// a tarball of that layout, with go-containerregistry.
//
//	go run ./packaging/kubernetes/imagebuild -bin amd64=bin/linux-amd64/nginx-shipper \
//	    -bin arm64=bin/linux-arm64/nginx-shipper -out dist/image
//
// writes dist/image/oci/ (the layout: skopeo copy oci:dist/image/oci:VERSION
// docker://REGISTRY/nginx-shipper:VERSION, or crane push --index),
// dist/image/nginx-shipper-oci.tar (the same layout in one file: podman
// load, skopeo's oci-archive:) and dist/image/nginx-shipper-ARCH.tar (a
// docker-style tarball per architecture: docker load, kind load
// image-archive, ctr images import).
//
// The image holds /usr/bin/nginx-shipper, /etc/passwd and /etc/group with
// the user nginx-shipper (65532), the CA certificates of the build machine
// (the S3 and Kafka TLS endpoints need them; an empty base has none), and
// empty /var/lib/nginx-shipper and /etc/nginx-shipper. Its user is
// 65532:65532; it runs with a read-only root filesystem (it writes only to
// data_dir). The binary is checked first: an ELF for the architecture it
// is packaged for, statically linked (there is no libc in the image).
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// User is the image's user and group id (distroless's nonroot).
const User = 65532

// Entrypoint and Cmd of the image.
var (
	Entrypoint = []string{"/usr/bin/nginx-shipper"}
	Cmd        = []string{"run", "-c", "/etc/nginx-shipper/nginx-shipper.toml"}
)

// Options say what to build.
type Options struct {
	Binaries map[string]string // GOARCH → path of the static linux binary
	CABundle string            // PEM file copied to /etc/ssl/certs/ca-certificates.crt; "" for none
	Version  string
	Revision string
	Created  time.Time // the images' creation time (SOURCE_DATE_EPOCH: reproducible)
}

var elfMachine = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"arm":     elf.EM_ARM,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}

// checkBinary refuses what would not run on an empty base of arch.
func checkBinary(path, arch string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: not an ELF binary: %w", path, err)
	}
	defer f.Close()
	want, ok := elfMachine[arch]
	if !ok {
		return fmt.Errorf("architecture %q is not supported", arch)
	}
	if f.Machine != want {
		return fmt.Errorf("%s is built for %v, not %s (GOARCH=%s)", path, f.Machine, arch, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (build it with CGO_ENABLED=0): the image has no libc", path)
		}
	}
	return nil
}

// rootfs is the image's one layer: the files, in a reproducible tar.
func rootfs(bin, caBundle string, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, uid int, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnginx-shipper:x:%d:%d:nginx-shipper:/var/lib/nginx-shipper:/sbin/nologin\n", User, User)
	group := fmt.Sprintf("root:x:0:\nnginx-shipper:x:%d:\n", User)
	steps := []func() error{
		func() error { return dir("etc", 0, 0o755) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("etc/nginx-shipper", 0, 0o755) },
		func() error { return dir("tmp", 0, 0o1777) },
		func() error { return dir("usr", 0, 0o755) },
		func() error { return dir("usr/bin", 0, 0o755) },
		func() error { return file("usr/bin/nginx-shipper", 0o755, data) },
		func() error { return dir("var", 0, 0o755) },
		func() error { return dir("var/lib", 0, 0o755) },
		func() error { return dir("var/lib/nginx-shipper", User, 0o750) },
	}
	if caBundle != "" {
		ca, err := os.ReadFile(caBundle)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		steps = append(steps,
			func() error { return dir("etc/ssl", 0, 0o755) },
			func() error { return dir("etc/ssl/certs", 0, 0o755) },
			func() error { return file("etc/ssl/certs/ca-certificates.crt", 0o644, ca) })
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Image builds the image of one architecture.
func Image(arch string, o Options) (v1.Image, error) {
	bin := o.Binaries[arch]
	if err := checkBinary(bin, arch); err != nil {
		return nil, err
	}
	fs, err := rootfs(bin, o.CABundle, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(fs)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: o.Created}, CreatedBy: "imagebuild: the static nginx-shipper binary, passwd, CA certificates",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if arch == "arm64" {
		cf.Variant = "v8"
	}
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		Entrypoint: Entrypoint,
		Cmd:        Cmd,
		User:       fmt.Sprintf("%d:%d", User, User),
		WorkingDir: "/var/lib/nginx-shipper",
		Env:        []string{"PATH=/usr/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		ExposedPorts: map[string]struct{}{
			"9145/tcp": {},
		},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "nginx-shipper",
			"org.opencontainers.image.description": "ships nginx access and error logs to Kafka and S3, at least once",
			"org.opencontainers.image.version":     o.Version,
			"org.opencontainers.image.revision":    o.Revision,
		},
	}
	return mutate.ConfigFile(img, cf)
}

// Build builds the multi-architecture index of every binary in o, in the
// order of archs.
func Build(archs []string, o Options) (v1.ImageIndex, map[string]v1.Image, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	imgs := map[string]v1.Image{}
	for _, arch := range archs {
		img, err := Image(arch, o)
		if err != nil {
			return nil, nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant},
		}})
		imgs[arch] = img
	}
	return idx, imgs, nil
}

// Write writes the layout, its tarball and the per-architecture docker
// tarballs into out (emptied first).
func Write(out, ref string, archs []string, idx v1.ImageIndex, imgs map[string]v1.Image) error {
	dir := filepath.Join(out, "oci")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	tag := ref
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		tag = ref[i+1:]
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag,
	})); err != nil {
		return err
	}
	if err := tarDir(dir, filepath.Join(out, "nginx-shipper-oci.tar")); err != nil {
		return err
	}
	r, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	for _, arch := range archs {
		if err := tarball.WriteToFile(filepath.Join(out, "nginx-shipper-"+arch+".tar"), r, imgs[arch]); err != nil {
			return err
		}
	}
	return nil
}

// tarDir writes the files under dir into the tar file dst, sorted, with
// fixed times.
func tarDir(dir, dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: time.Unix(0, 0)})
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

type binFlag map[string]string

func (b binFlag) String() string { return fmt.Sprint(map[string]string(b)) }
func (b binFlag) Set(s string) error {
	arch, path, ok := strings.Cut(s, "=")
	if !ok || arch == "" || path == "" {
		return errors.New("want ARCH=PATH, e.g. amd64=bin/linux-amd64/nginx-shipper")
	}
	b[arch] = path
	return nil
}

func main() {
	bins := binFlag{}
	var archs []string
	flag.Func("bin", "ARCH=PATH of a static linux binary (repeat for each architecture)", func(s string) error {
		if err := bins.Set(s); err != nil {
			return err
		}
		arch, _, _ := strings.Cut(s, "=")
		archs = append(archs, arch)
		return nil
	})
	out := flag.String("out", "dist/image", "output directory")
	ref := flag.String("ref", "ghcr.io/nginx-shipper/nginx-shipper:dev", "the image reference written into the tarballs and the layout's ref.name")
	ca := flag.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle copied into the image (\"\" for none)")
	version := flag.String("version", "dev", "org.opencontainers.image.version")
	revision := flag.String("revision", "", "org.opencontainers.image.revision")
	flag.Parse()
	if len(archs) == 0 {
		fmt.Fprintln(os.Stderr, "imagebuild: no -bin ARCH=PATH given")
		os.Exit(2)
	}
	created := time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err == nil {
			created = time.Unix(sec, 0).UTC()
		}
	}
	o := Options{Binaries: bins, CABundle: *ca, Version: *version, Revision: *revision, Created: created}
	idx, imgs, err := Build(archs, o)
	if err == nil {
		if err = os.MkdirAll(*out, 0o755); err == nil {
			err = Write(*out, *ref, archs, idx, imgs)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
	d, _ := idx.Digest()
	fmt.Printf("imagebuild: %s (%s) → %s/oci, %s/nginx-shipper-oci.tar and one tarball per architecture\n", *ref, d, *out, *out)
}
