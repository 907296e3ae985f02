package s3test

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

//go:embed duckdb.cjs
var duckdbScript []byte

// DuckDBResult is what one statement returned: its rows (DuckDB's JSON
// rendering of each value: BIGINT as a string, nested values as JSON) and
// the bytes the DuckDB process read from files while it ran.
type DuckDBResult struct {
	Rows []map[string]any `json:"rows"`
	Read int64            `json:"read"`
}

// DuckDB runs the statements, in order, in one in-memory DuckDB
// (@duckdb/node-api under node, installed by .ci/deps into
// .tools/duckdb). It skips t when node or the package is missing, unless
// NGINX_SHIPPER_REQUIRE_E2E=1, then it fails. A failing statement fails t.
func DuckDB(t testing.TB, stmts ...string) []DuckDBResult {
	t.Helper()
	mods := DuckDBModules(t)
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node not found")
	}
	script := filepath.Join(t.TempDir(), "duckdb.cjs")
	if err := os.WriteFile(script, duckdbScript, 0o644); err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(stmts)
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, stderr.String())
	}
	var res []DuckDBResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("duckdb output: %v\n%s", err, out)
	}
	return res
}

// DuckDBModules is the node_modules folder holding @duckdb/node-api
// ($NGINX_SHIPPER_TOOLS/duckdb or the repository's .tools/duckdb); it skips
// or fails t as DuckDB does when there is none.
func DuckDBModules(t testing.TB) string {
	t.Helper()
	var cands []string
	if d := os.Getenv("NGINX_SHIPPER_TOOLS"); d != "" {
		cands = append(cands, filepath.Join(d, "duckdb", "node_modules"))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				cands = append(cands, filepath.Join(dir, ".tools", "duckdb", "node_modules"))
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, "@duckdb", "node-api", "package.json")); err == nil {
			return c
		}
	}
	missing(t, "npm package @duckdb/node-api not in %v", cands)
	return ""
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("NGINX_SHIPPER_REQUIRE_E2E") == "1" {
		t.Fatalf(format+" (NGINX_SHIPPER_REQUIRE_E2E=1: failing instead of skipping; `make deps` installs it)", args...)
	}
	t.Skipf(format+"; skipping (`make deps` installs it)", args...)
}
