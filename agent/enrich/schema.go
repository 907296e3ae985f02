package enrich

import (
	"slices"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

// Fields are the members Append adds to an event, in its order (doc.go);
// each is left out when it cannot be known, so each is nullable (default
// null) in the schemas: the enriched schema is a BACKWARD-compatible
// extension of the original. AppendAvro writes them in this order.
var Fields = []parser.Field{
	{Name: "client_ip", Type: parser.TypeString, Doc: "[enrich]: the client's address past trusted proxies"},
	{Name: "geo", Type: parser.TypeRecord, Doc: "[enrich]: GeoIP of client_ip", Fields: []parser.Field{
		{Name: "country_code", Type: parser.TypeString}, {Name: "country", Type: parser.TypeString},
		{Name: "region", Type: parser.TypeString}, {Name: "city", Type: parser.TypeString},
		{Name: "latitude", Type: parser.TypeDouble}, {Name: "longitude", Type: parser.TypeDouble},
		{Name: "asn", Type: parser.TypeLong}, {Name: "as_org", Type: parser.TypeString},
	}},
	{Name: "ua", Type: parser.TypeRecord, Doc: "[enrich]: the parsed user agent", Fields: []parser.Field{
		{Name: "browser", Type: parser.TypeString}, {Name: "browser_version", Type: parser.TypeString},
		{Name: "os", Type: parser.TypeString}, {Name: "os_version", Type: parser.TypeString},
		{Name: "device", Type: parser.TypeString}, {Name: "bot", Type: parser.TypeBoolean},
	}},
}

// Schema returns the schema of the enriched events of a format whose
// events have schema s: s with Fields appended after its last field (the
// Avro of an enriched event is the original's followed by AppendAvro's).
func Schema(s parser.Schema) parser.Schema {
	s.Fields = append(slices.Clip(s.Fields), Fields...)
	return s
}
