package main

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// configKeys lists every TOML key of the config, dotted ("sinks.kafka.tls.ca_file";
// inputs' keys as "inputs.paths").
func configKeys(t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("toml"), ",")[0]
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.NumField() > 0 && ft.Field(0).Tag.Get("toml") != "" {
			configKeys(ft, key, out)
			continue
		}
		out[key] = true
	}
}

// TestREADMEConfigReferenceMatchesCode: every key of the code is in the
// README's reference, and every key there exists in the code.
func TestREADMEConfigReferenceMatchesCode(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "### Configuration reference")
	end := strings.Index(text[start:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("README has no configuration reference section")
	}
	ref := text[start : start+end]
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9_.]+)` \\|").FindAllStringSubmatch(ref, -1) {
		documented[m[1]] = true
	}
	code := map[string]bool{}
	configKeys(reflect.TypeOf(Config{}), "", code)
	var missing, extra []string
	for k := range code {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !code[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("keys in the code but not in README's configuration reference: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("keys in README's configuration reference but not in the code: %v", extra)
	}
	if len(code) < 40 {
		t.Fatalf("found only %d keys in the code: the walker is broken", len(code))
	}
}

// TestPackagedConfigIsValid: the default config shipped in the packages
// loads, and names every key of the contract's example.
func TestPackagedConfigIsValid(t *testing.T) {
	b, err := os.ReadFile("../../packaging/nginx-shipper.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig("nginx-shipper.toml", b); err != nil {
		t.Fatalf("packaged config invalid: %v", err)
	}
	for _, k := range []string{"hostname", "data_dir", "metrics_listen", "paths", "format", "escape", "read_from",
		"brokers", "topic", "key", "compression", "dead_letter_topic", "bucket", "region", "endpoint",
		"force_path_style", "prefix", "batch_max_bytes", "batch_max_age"} {
		if !regexp.MustCompile(`(?m)^#?\s*` + k + `\s*=`).Match(b) {
			t.Errorf("packaged config does not mention %s", k)
		}
	}
}
