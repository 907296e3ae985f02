package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fakeELF writes a minimal 64-bit little-endian ELF executable header for
// machine m; with interp it has a PT_INTERP program header (dynamically
// linked). Enough for debug/elf, which is what the builder checks with.
func fakeELF(t *testing.T, m elf.Machine, interp bool) string {
	t.Helper()
	var b bytes.Buffer
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(m), Version: 1, Ehsize: 64}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	if interp {
		h.Phoff, h.Phentsize, h.Phnum = 64, 56, 1
	}
	binary.Write(&b, binary.LittleEndian, h)
	if interp {
		binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_INTERP), Off: 120, Filesz: 1, Memsz: 1})
		b.WriteByte(0)
	}
	b.WriteString("payload-" + m.String())
	p := filepath.Join(t.TempDir(), "nginx-shipper")
	if err := os.WriteFile(p, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImageLayout(t *testing.T) {
	bins := map[string]string{"amd64": fakeELF(t, elf.EM_X86_64, false), "arm64": fakeELF(t, elf.EM_AARCH64, false)}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644)
	archs := []string{"amd64", "arm64"}
	idx, imgs, err := Build(archs, Options{Binaries: bins, CABundle: ca, Version: "1.2.3", Created: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := Write(out, "example.com/nginx-shipper:1.2.3", archs, idx, imgs); err != nil {
		t.Fatal(err)
	}

	checkLayout(t, filepath.Join(out, "oci"), "1.2.3", bins)
	if cf, _ := imgs["amd64"].ConfigFile(); !cf.Created.Time.Equal(time.Unix(1700000000, 0)) || cf.Config.Labels["org.opencontainers.image.version"] != "1.2.3" {
		t.Errorf("created %v labels %v", cf.Created, cf.Config.Labels)
	}

	// The docker-style tarball of each architecture loads as one image.
	for _, arch := range archs {
		img, err := tarball.ImageFromPath(filepath.Join(out, "nginx-shipper-"+arch+".tar"), nil)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil || cf.Architecture != arch {
			t.Errorf("%s tarball: %v %v", arch, cf, err)
		}
	}
	// The layout's tarball holds the layout.
	if fi, err := os.Stat(filepath.Join(out, "nginx-shipper-oci.tar")); err != nil || fi.Size() == 0 {
		t.Errorf("oci tarball: %v", err)
	}
}

// TestBuiltImage checks the image make image built, when there is one.
func TestBuiltImage(t *testing.T) {
	dir := "../../../dist/image/oci"
	if _, err := os.Stat(dir); err != nil {
		t.Skip("no dist/image/oci: run make image to check the real image too")
	}
	checkLayout(t, dir, "", nil)
}

// checkLayout reads an image layout back, as a registry client would: one
// index tagged tag ("" any) of linux/amd64 and linux/arm64 images with the
// entrypoint, a non-root user, the binary (equal to bins[arch] unless nil;
// else an ELF of the architecture) and nothing much else.
func checkLayout(t *testing.T, dir, tag string, bins map[string]string) {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	rm, err := root.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Manifests) != 1 || rm.Manifests[0].MediaType != types.OCIImageIndex || (tag != "" && rm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != tag) {
		t.Fatalf("layout index: %+v", rm.Manifests)
	}
	ii, err := root.ImageIndex(rm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range im.Manifests {
		if d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("manifest media type %s", d.MediaType)
		}
		img, err := ii.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		arch := cf.Architecture
		got = append(got, d.Platform.OS+"/"+d.Platform.Architecture)
		if cf.OS != "linux" || d.Platform.Architecture != arch {
			t.Errorf("%s: os %s, platform %+v", arch, cf.OS, d.Platform)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/bin/nginx-shipper"}) || !slices.Equal(cf.Config.Cmd, Cmd) {
			t.Errorf("%s: entrypoint %q cmd %q", arch, cf.Config.Entrypoint, cf.Config.Cmd)
		}
		if cf.Config.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532 (non-root, numeric for runAsNonRoot)", arch, cf.Config.User)
		}
		files := layerFiles(t, img)
		bin := files["usr/bin/nginx-shipper"]
		if bin == nil || bin.mode != 0o755 {
			t.Fatalf("%s: no executable /usr/bin/nginx-shipper in the layer", arch)
		}
		if bins != nil {
			if want, _ := os.ReadFile(bins[arch]); !bytes.Equal(bin.data, want) {
				t.Errorf("%s: the binary in the layer is not the one given", arch)
			}
		} else if f, err := elf.NewFile(bytes.NewReader(bin.data)); err != nil || f.Machine != elfMachine[arch] {
			t.Errorf("%s: the binary in the layer is not an ELF for %s: %v", arch, arch, err)
		}
		if d := files["var/lib/nginx-shipper/"]; d == nil || d.uid != User {
			t.Errorf("%s: data dir %+v, want owned by %d", arch, d, User)
		}
		if f := files["etc/passwd"]; f == nil || !strings.Contains(string(f.data), "nginx-shipper:x:65532:65532:") {
			t.Errorf("%s: /etc/passwd %+v", arch, f)
		}
		if files["etc/ssl/certs/ca-certificates.crt"] == nil {
			t.Errorf("%s: no CA bundle", arch)
		}
		if len(files) > 20 {
			t.Errorf("%s: %d files in an image on an empty base", arch, len(files))
		}
	}
	if !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %v", got)
	}
}

type tarFile struct {
	data []byte
	mode int64
	uid  int
}

func layerFiles(t *testing.T, img v1.Image) map[string]*tarFile {
	t.Helper()
	ls, err := img.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers: %d %v", len(ls), err)
	}
	rc, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tarFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = &tarFile{data: data, mode: h.Mode, uid: h.Uid}
	}
	return files
}

func TestImageRefusesWrongBinaries(t *testing.T) {
	for _, tc := range []struct {
		name string
		bin  string
		want string
	}{
		{"wrong arch", fakeELF(t, elf.EM_X86_64, false), "not arm64"},
		{"dynamic", fakeELF(t, elf.EM_AARCH64, true), "dynamically linked"},
		{"not elf", func() string {
			p := filepath.Join(t.TempDir(), "x")
			os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
			return p
		}(), "not an ELF"},
	} {
		_, err := Image("arm64", Options{Binaries: map[string]string{"arm64": tc.bin}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}
