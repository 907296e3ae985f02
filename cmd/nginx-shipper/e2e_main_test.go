package main

// End-to-end tests: the nginx-shipper binary, built once per test binary,
// between a real nginx and real sinks (kfake in-process, versitygw). The
// support code is in agent/e2e. They skip when nginx, versitygw or kcat is
// absent, unless NGINX_SHIPPER_REQUIRE_E2E=1; the long ones skip with -short.

import (
	"os"
	"testing"

	"github.com/nginx-shipper/nginx-shipper/agent/e2e"
)

func TestMain(m *testing.M) {
	e2e.UseRepoVersitygw()
	code := m.Run()
	e2e.Cleanup()
	os.Exit(code)
}
