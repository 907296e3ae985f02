package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// sendOne sends one event and waits for its acknowledgement.
func (e *env) sendOne() {
	e.t.Helper()
	b := e.batch(testSource, line{key: "k", value: `{"a":1}`})
	e.mustSend(b)
	e.mustDone(b)
	waitMetric(e.t, e.reg, 1, "nginx_shipper_kafka_records_produced_total", "topic", topicMain)
}

func TestSASL(t *testing.T) {
	for _, mech := range []string{MechPlain, MechScram256, MechScram512} {
		t.Run(mech, func(t *testing.T) {
			c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "shipper", "s3cret-pass"))
			t.Run("password", func(t *testing.T) {
				cfg := testConfig(c.ListenAddrs())
				cfg.SASL = SASLConfig{Mechanism: mech, Username: "shipper", Password: "s3cret-pass"}
				e := newEnv(t, c, cfg)
				if err := e.s.Check(context.Background()); err != nil {
					t.Fatalf("Check: %v", err)
				}
				e.sendOne()
			})
			t.Run("password_file", func(t *testing.T) {
				f := filepath.Join(t.TempDir(), "pass")
				if err := os.WriteFile(f, []byte("s3cret-pass\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg := testConfig(c.ListenAddrs())
				cfg.SASL = SASLConfig{Mechanism: strings.ToLower(mech), Username: "shipper", PasswordFile: f}
				e := newEnv(t, c, cfg)
				e.sendOne()
			})
			t.Run("wrong password", func(t *testing.T) {
				cfg := testConfig(c.ListenAddrs())
				cfg.SASL = SASLConfig{Mechanism: mech, Username: "shipper", Password: "wrong-pass"}
				e := newEnv(t, c, cfg)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := e.s.Check(ctx)
				if !errors.Is(err, ErrBrokerUnreachable) || !strings.Contains(err.Error(), c.ListenAddrs()[0]) {
					t.Fatalf("Check = %v, want an error naming the broker", err)
				}
				if strings.Contains(err.Error(), "wrong-pass") {
					t.Fatalf("the password is in the error: %v", err)
				}
			})
		})
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and kafka.test,
// and a client certificate, written as PEM files in a temporary folder.
type testPKI struct {
	caFile, certFile, keyFile string // the client's files
	server                    tls.Certificate
	nameOnly                  tls.Certificate // for kafka.test only: no IP SAN
	pool                      *x509.CertPool
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage, ips []net.IP, dns []string) ([]byte, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: ips, DNSNames: dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := leaf(2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")}, []string{"kafka.test"})
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	nameDER, nameKey := leaf(4, x509.ExtKeyUsageServerAuth, nil, []string{"kafka.test"})
	p.nameOnly = tls.Certificate{Certificate: [][]byte{nameDER}, PrivateKey: nameKey}
	cliDER, cliKey := leaf(3, x509.ExtKeyUsageClientAuth, nil, nil)
	p.certFile = write("client.pem", "CERTIFICATE", cliDER)
	keyDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	p.keyFile = write("client-key.pem", "EC PRIVATE KEY", keyDER)
	return p
}

func TestTLS(t *testing.T) {
	pki := newPKI(t)
	t.Run("custom CA", func(t *testing.T) {
		c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}))
		cfg := testConfig(c.ListenAddrs())
		cfg.TLS = TLSConfig{CAFile: pki.caFile}
		e := newEnv(t, c, cfg)
		if err := e.s.Check(context.Background()); err != nil {
			t.Fatalf("Check: %v", err)
		}
		e.sendOne()
	})
	t.Run("system roots reject the test CA", func(t *testing.T) {
		c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}))
		cfg := testConfig(c.ListenAddrs())
		cfg.TLS = TLSConfig{Enabled: true}
		e := newEnv(t, c, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var unknown x509.UnknownAuthorityError
		if err := e.s.Check(ctx); !errors.As(err, &unknown) {
			t.Fatalf("Check = %v, want an unknown authority error", err)
		}
	})
	// The broker's certificate names kafka.test only (no 127.0.0.1 SAN),
	// so only a client that verifies against server_name can connect: the
	// test fails if server_name is ignored.
	t.Run("server_name is what is verified", func(t *testing.T) {
		c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.nameOnly}, MinVersion: tls.VersionTLS12}))
		for _, tc := range []struct {
			name, serverName string
			ok               bool
		}{{"server_name kafka.test", "kafka.test", true}, {"no server_name", "", false}, {"another server_name", "other.test", false}} {
			t.Run(tc.name, func(t *testing.T) {
				cfg := testConfig(c.ListenAddrs())
				cfg.TLS = TLSConfig{CAFile: pki.caFile, ServerName: tc.serverName}
				e := newEnv(t, c, cfg)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := e.s.Check(ctx)
				var host x509.HostnameError
				switch {
				case tc.ok && err != nil:
					t.Fatalf("Check: %v", err)
				case tc.ok:
					e.sendOne()
				case !errors.As(err, &host):
					t.Fatalf("Check = %v, want a hostname mismatch", err)
				}
			})
		}
	})
	t.Run("mutual TLS with server name", func(t *testing.T) {
		c := newCluster(t, kfake.TLS(&tls.Config{
			Certificates: []tls.Certificate{pki.nameOnly}, MinVersion: tls.VersionTLS12,
			ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert,
		}))
		cfg := testConfig(c.ListenAddrs())
		cfg.TLS = TLSConfig{CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile, ServerName: "kafka.test"}
		e := newEnv(t, c, cfg)
		if err := e.s.Check(context.Background()); err != nil {
			t.Fatalf("Check: %v", err)
		}
		e.sendOne()

		// Without the client certificate the broker refuses us.
		cfg.TLS.CertFile, cfg.TLS.KeyFile = "", ""
		e2 := newEnv(t, c, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e2.s.Check(ctx); !errors.Is(err, ErrBrokerUnreachable) {
			t.Fatalf("Check without a client certificate = %v, want unreachable", err)
		}
	})
}
