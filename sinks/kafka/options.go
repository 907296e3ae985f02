package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// codec maps sinks.kafka.compression to a franz-go codec.
func codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("%q: want none, gzip, snappy, lz4 or zstd", name)
}

// compression is the franz-go option for sinks.kafka.compression: our own
// lz4 frame writer (lz4.go) for lz4, franz-go's codecs for the others.
func compression(name string) (kgo.Opt, error) {
	c, err := codec(name)
	if err != nil {
		return nil, err
	}
	if name == "lz4" {
		return kgo.WithCompressor(newLZ4Compressor()), nil
	}
	return kgo.ProducerBatchCompression(c), nil
}

// partitioner maps sinks.kafka.partitioner to a franz-go partitioner.
func partitioner(name string, batchBytes int32) (kgo.Partitioner, error) {
	switch name {
	case "sticky":
		return kgo.StickyKeyPartitioner(nil), nil
	case "uniform_bytes":
		return kgo.UniformBytesPartitioner(int(batchBytes), true, true, nil), nil
	case "round_robin":
		return kgo.RoundRobinPartitioner(), nil
	case "least_backup":
		return kgo.LeastBackupPartitioner(), nil
	}
	return nil, fmt.Errorf("%q: want sticky, uniform_bytes, round_robin or least_backup", name)
}

// config builds the client TLS configuration. Its errors name the key.
func (t *TLSConfig) config() (*tls.Config, error) {
	var errs []error
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, documented as for tests
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("sinks.kafka.tls.ca_file: %w", err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("sinks.kafka.tls.ca_file: no PEM certificate in %s", t.CAFile))
			}
			c.RootCAs = pool
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("sinks.kafka.tls.cert_file: loading the client certificate and key: %w", err))
		} else {
			c.Certificates = []tls.Certificate{cert}
		}
	case t.CertFile != "":
		errs = append(errs, errors.New("sinks.kafka.tls.key_file: must be set with sinks.kafka.tls.cert_file"))
	case t.KeyFile != "":
		errs = append(errs, errors.New("sinks.kafka.tls.cert_file: must be set with sinks.kafka.tls.key_file"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// mechanism builds the SASL mechanism, or nil without SASL. Passwords are
// read from their file at each authentication, so a rotated file is picked
// up by the next connection.
func (s *SASLConfig) mechanism() (sasl.Mechanism, error) {
	user := s.Username
	pass := func() (string, error) {
		p, err := s.password()
		if err != nil {
			return "", fmt.Errorf("sinks.kafka.sasl.password_file: %w", err)
		}
		return p, nil
	}
	switch s.Mechanism {
	case "":
		return nil, nil
	case MechPlain:
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			p, err := pass()
			return plain.Auth{User: user, Pass: p}, err
		}), nil
	case MechScram256, MechScram512:
		fn := func(context.Context) (scram.Auth, error) {
			p, err := pass()
			return scram.Auth{User: user, Pass: p}, err
		}
		if s.Mechanism == MechScram256 {
			return scram.Sha256(fn), nil
		}
		return scram.Sha512(fn), nil
	case MechAWSMSKIAM:
		// The AWS chain is loaded lazily, once: environment, shared files,
		// instance or task role. The SDK caches and refreshes credentials.
		load := sync.OnceValues(func() (awssdk.CredentialsProvider, error) {
			cfg, err := awsconfig.LoadDefaultConfig(context.Background())
			if err != nil {
				return nil, fmt.Errorf("sinks.kafka.sasl: loading AWS credentials: %w", err)
			}
			return cfg.Credentials, nil
		})
		return aws.ManagedStreamingIAM(func(ctx context.Context) (aws.Auth, error) {
			prov, err := load()
			if err != nil {
				return aws.Auth{}, err
			}
			cr, err := prov.Retrieve(ctx)
			if err != nil {
				return aws.Auth{}, fmt.Errorf("sinks.kafka.sasl: retrieving AWS credentials: %w", err)
			}
			return aws.Auth{
				AccessKey:    cr.AccessKeyID,
				SecretKey:    cr.SecretAccessKey,
				SessionToken: cr.SessionToken,
				UserAgent:    "nginx-shipper",
			}, nil
		}), nil
	}
	return nil, fmt.Errorf("sinks.kafka.sasl.mechanism: unknown %q", s.Mechanism)
}
