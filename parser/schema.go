package parser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Type is the type of an event field in a Schema.
type Type uint8

const (
	TypeString    Type = iota // JSON string; Avro string
	TypeLong                  // JSON integer; Avro long
	TypeDouble                // JSON number; Avro double
	TypeBoolean               // JSON true; Avro boolean
	TypeTimestamp             // JSON RFC 3339 string; Avro timestamp-millis + offset minutes
	TypeArray                 // JSON array of Items (null entries allowed)
	TypeRecord                // JSON object of Fields
)

// Field is one field of an event.
type Field struct {
	// Name is the event's JSON key (inside its record, for a header).
	Name string
	Type Type
	// Items is the type of the elements of a TypeArray (each may be null).
	Items Type
	// Fields are the members of a TypeRecord, in order.
	Fields []Field
	// Required fields are on every event (host, log_file, log_offset);
	// the others are left out of the JSON (null in Avro) when nginx wrote
	// "-" or nothing.
	Required bool
	// Doc says where the field comes from ("$status").
	Doc string
}

// Schema describes the events of one compiled format: their fields, in the
// order the JSON writes them. See doc.go.
type Schema struct {
	Name      string // Avro record name ("access")
	Namespace string // Avro namespace ("nginx_shipper")
	Fields    []Field
}

// kindTypes is the field type of each variable kind, beside varKinds: the
// JSON encoder and the schema read the same table.
var kindTypes = [...]struct{ t, items Type }{
	kString:      {t: TypeString},
	kInt:         {t: TypeLong},
	kNumber:      {t: TypeDouble},
	kTimeLocal:   {t: TypeTimestamp},
	kTimeISO:     {t: TypeTimestamp},
	kMsec:        {t: TypeDouble}, // "msec"; the timestamp is its own field
	kRequest:     {t: TypeString},
	kListNum:     {t: TypeArray, items: TypeDouble},
	kListInt:     {t: TypeArray, items: TypeLong},
	kListStr:     {t: TypeArray, items: TypeString},
	kToken:       {t: TypeString},
	kCacheStatus: {t: TypeString},
	kTimeError:   {t: TypeTimestamp},
	kLevel:       {t: TypeString},
	kBool:        {t: TypeBoolean},
}

// Schema returns the description of the parser's events.
func (p *Parser) Schema() Schema {
	c := p.impl
	s := Schema{Name: "access", Namespace: "nginx_shipper"}
	if c.errlog != nil {
		s.Name = "error"
	}
	for _, it := range c.items {
		switch it.kind {
		case itTimestamp:
			var docs []string
			for _, vi := range c.timeVars {
				docs = append(docs, "$"+c.vars[vi].name)
			}
			s.Fields = append(s.Fields, Field{Name: "timestamp", Type: TypeTimestamp, Doc: strings.Join(docs, ", ")})
		case itGroup:
			g := Field{Name: groupNames[it.group], Type: TypeRecord}
			for _, vi := range it.members {
				v := &c.vars[vi]
				g.Fields = append(g.Fields, Field{Name: v.field(), Type: TypeString, Doc: "$" + v.name})
			}
			s.Fields = append(s.Fields, g)
		case itVar:
			v := &c.vars[it.v]
			kt := kindTypes[v.kind]
			s.Fields = append(s.Fields, Field{Name: v.field(), Type: kt.t, Items: kt.items, Doc: "$" + v.name})
			if v.kind == kRequest {
				for _, part := range [...]struct {
					on   bool
					name string
				}{{v.emitMethod, "request_method"}, {v.emitURI, "request_uri"}, {v.emitProto, "server_protocol"}} {
					if part.on {
						s.Fields = append(s.Fields, Field{Name: part.name, Type: TypeString, Doc: "part of $request"})
					}
				}
			}
		}
	}
	s.Fields = append(s.Fields,
		Field{Name: "host", Type: TypeString, Required: true, Doc: "the agent's hostname"},
		Field{Name: "log_file", Type: TypeString, Required: true, Doc: "the file the line was read from"},
		Field{Name: "log_offset", Type: TypeLong, Required: true, Doc: "byte offset of the line in log_file"},
		Field{Name: "invalid_utf8", Type: TypeBoolean, Doc: "true when a value held invalid UTF-8 (replaced by U+FFFD)"},
	)
	return s
}

// AvroName is the Avro name of a field: its JSON name, with "_" in front
// when that starts with a digit (nginx's $1).
func AvroName(name string) string {
	if name != "" && name[0] >= '0' && name[0] <= '9' {
		return "_" + name
	}
	return name
}

// Avro returns the Avro schema (JSON text, one line) of the events; see
// doc.go for the mapping.
func (s Schema) Avro() string {
	var b bytes.Buffer
	b.WriteString(`{"type":"record","name":`)
	writeJSONString(&b, s.Name)
	if s.Namespace != "" {
		b.WriteString(`,"namespace":`)
		writeJSONString(&b, s.Namespace)
	}
	b.WriteString(`,"fields":`)
	avroFields(&b, s.Fields)
	b.WriteByte('}')
	return b.String()
}

func avroPrimitive(t Type) string {
	switch t {
	case TypeLong:
		return `"long"`
	case TypeDouble:
		return `"double"`
	case TypeBoolean:
		return `"boolean"`
	}
	return `"string"`
}

func avroFields(b *bytes.Buffer, fs []Field) {
	b.WriteByte('[')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		var typ string
		switch f.Type {
		case TypeTimestamp:
			typ = `{"type":"long","logicalType":"timestamp-millis"}`
		case TypeArray:
			typ = `{"type":"array","items":["null",` + avroPrimitive(f.Items) + `]}`
		case TypeRecord:
			var rb bytes.Buffer
			rb.WriteString(`{"type":"record","name":`)
			writeJSONString(&rb, AvroName(f.Name))
			rb.WriteString(`,"fields":`)
			avroFields(&rb, f.Fields)
			rb.WriteByte('}')
			typ = rb.String()
		default:
			typ = avroPrimitive(f.Type)
		}
		b.WriteString(`{"name":`)
		writeJSONString(b, AvroName(f.Name))
		if f.Required {
			b.WriteString(`,"type":` + typ)
		} else {
			b.WriteString(`,"type":["null",` + typ + `],"default":null`)
		}
		if f.Doc != "" {
			b.WriteString(`,"doc":`)
			writeJSONString(b, f.Doc)
		}
		b.WriteByte('}')
		if f.Type == TypeTimestamp {
			b.WriteString(`,{"name":`)
			writeJSONString(b, AvroName(f.Name)+"_offset")
			b.WriteString(`,"type":["null","int"],"default":null,"doc":"UTC offset nginx wrote, minutes east"}`)
		}
	}
	b.WriteByte(']')
}

func writeJSONString(b *bytes.Buffer, s string) {
	j, _ := json.Marshal(s)
	b.Write(j)
}

// JSONSchema returns the JSON Schema (draft 2020-12, indented) of the
// JSON events. Fields absent from an event are simply not required;
// additional properties are refused, so a consumer learns of a new field
// through a new schema.
func (s Schema) JSONSchema() string {
	root := map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"title":   s.Namespace + "." + s.Name,
	}
	for k, v := range jsonSchemaObject(s.Fields) {
		root[k] = v
	}
	out, _ := json.MarshalIndent(root, "", "  ")
	return string(out) + "\n"
}

func jsonSchemaType(t Type) map[string]any {
	switch t {
	case TypeLong:
		return map[string]any{"type": "integer"}
	case TypeDouble:
		return map[string]any{"type": "number"}
	case TypeBoolean:
		return map[string]any{"type": "boolean"}
	case TypeTimestamp:
		return map[string]any{"type": "string", "format": "date-time"}
	}
	return map[string]any{"type": "string"}
}

func jsonSchemaObject(fs []Field) map[string]any {
	props := map[string]any{}
	var req []string
	for _, f := range fs {
		var p map[string]any
		switch f.Type {
		case TypeArray:
			item := jsonSchemaType(f.Items)
			item["type"] = []any{item["type"], "null"}
			p = map[string]any{"type": "array", "items": item}
		case TypeRecord:
			p = jsonSchemaObject(f.Fields)
		default:
			p = jsonSchemaType(f.Type)
		}
		if f.Doc != "" {
			p["description"] = f.Doc
		}
		props[f.Name] = p
		if f.Required {
			req = append(req, f.Name)
		}
	}
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(req) > 0 {
		o["required"] = req
	}
	return o
}

// Table dialects of TableDDL.
const (
	DialectAthena = "athena"
	DialectHive   = "hive"
)

// TableDDL returns the CREATE EXTERNAL TABLE statement of the S3 objects
// written with this schema: gzip NDJSON read with a JSON SerDe, located at
// s3://bucket/ plus the literal head of prefix, partitioned by the
// prefix's key=value segments (dt=%Y-%m-%d/hour=%H/ gives the partitions
// dt and hour). For Athena, partition projection is set up for segments
// it can project (%Y-%m-%d dates, %H hours), so no partition needs adding;
// for Hive the statement ends with MSCK REPAIR TABLE.
func (s Schema) TableDDL(dialect, table, bucket, prefix string) (string, error) {
	return s.tableDDL(dialect, table, bucket, prefix, false)
}

// ParquetTableDDL is TableDDL for the S3 sink's Parquet objects
// ([sinks.s3] format = "parquet"): STORED AS PARQUET, the timestamp a
// timestamp column (TIMESTAMP(MILLIS, UTC) in the files) followed by
// <name>_offset int, the UTC offset nginx wrote in minutes; the other
// columns as in TableDDL.
func (s Schema) ParquetTableDDL(dialect, table, bucket, prefix string) (string, error) {
	return s.tableDDL(dialect, table, bucket, prefix, true)
}

func (s Schema) tableDDL(dialect, table, bucket, prefix string, parquet bool) (string, error) {
	if dialect != DialectAthena && dialect != DialectHive {
		return "", fmt.Errorf("unknown table dialect %q (want athena or hive)", dialect)
	}
	loc, parts, err := prefixPartitions(prefix)
	if err != nil {
		return "", err
	}
	if table == "" {
		table = "nginx_" + s.Name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS `%s` (\n", table)
	var cols []string
	for _, f := range s.Fields {
		if parquet && f.Type == TypeTimestamp {
			cols = append(cols, fmt.Sprintf("`%s` timestamp", f.Name), fmt.Sprintf("`%s_offset` int", f.Name))
			continue
		}
		cols = append(cols, fmt.Sprintf("`%s` %s", f.Name, hiveType(f)))
	}
	b.WriteString("  " + strings.Join(cols, ",\n  ") + "\n")
	b.WriteString(")\n")
	if len(parts) > 0 {
		b.WriteString("PARTITIONED BY (")
		for i, p := range parts {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "`%s` string", p.key)
		}
		b.WriteString(")\n")
	}
	switch {
	case parquet:
		b.WriteString("STORED AS PARQUET\n")
	case dialect == DialectAthena:
		b.WriteString("ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n")
	default:
		b.WriteString("ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'\n")
	}
	if !parquet {
		b.WriteString("STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'\n")
		b.WriteString("OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n")
	}
	location := "s3://" + bucket + "/" + loc
	fmt.Fprintf(&b, "LOCATION '%s'", location)
	props := []string{}
	if dialect == DialectAthena && len(parts) > 0 {
		projectable := true
		tmpl := location
		for _, p := range parts {
			switch p.value {
			case "%Y-%m-%d":
				props = append(props, fmt.Sprintf("'projection.%s.type'='date'", p.key),
					fmt.Sprintf("'projection.%s.format'='yyyy-MM-dd'", p.key),
					fmt.Sprintf("'projection.%s.range'='2020-01-01,NOW'", p.key),
					fmt.Sprintf("'projection.%s.interval'='1'", p.key),
					fmt.Sprintf("'projection.%s.interval.unit'='DAYS'", p.key))
			case "%H":
				props = append(props, fmt.Sprintf("'projection.%s.type'='integer'", p.key),
					fmt.Sprintf("'projection.%s.range'='0,23'", p.key),
					fmt.Sprintf("'projection.%s.digits'='2'", p.key))
			default:
				projectable = false
			}
			tmpl += p.key + "=${" + p.key + "}/"
		}
		if projectable {
			props = append([]string{"'projection.enabled'='true'"}, props...)
			props = append(props, fmt.Sprintf("'storage.location.template'='%s'", tmpl))
		} else {
			props = nil
		}
	}
	if len(props) > 0 {
		b.WriteString("\nTBLPROPERTIES (\n  " + strings.Join(props, ",\n  ") + "\n)")
	}
	b.WriteString(";\n")
	if dialect == DialectHive && len(parts) > 0 {
		fmt.Fprintf(&b, "MSCK REPAIR TABLE `%s`;\n", table)
	}
	return b.String(), nil
}

func hiveType(f Field) string {
	switch f.Type {
	case TypeLong:
		return "bigint"
	case TypeDouble:
		return "double"
	case TypeBoolean:
		return "boolean"
	case TypeArray:
		return "array<" + hiveType(Field{Type: f.Items}) + ">"
	case TypeRecord:
		var parts []string
		for _, m := range f.Fields {
			parts = append(parts, m.Name+":"+hiveType(m))
		}
		return "struct<" + strings.Join(parts, ",") + ">"
	}
	return "string" // TypeTimestamp: RFC 3339 with offset, which Hive's timestamp does not read
}

type partition struct{ key, value string }

// prefixPartitions splits an S3 prefix (strftime of the event time) into
// its literal head (the table's location) and the key=value segments after
// it.
func prefixPartitions(prefix string) (loc string, parts []partition, err error) {
	segs := strings.Split(strings.TrimPrefix(prefix, "/"), "/")
	i := 0
	for ; i < len(segs); i++ {
		if strings.ContainsAny(segs[i], "%=") {
			break
		}
		if segs[i] != "" {
			loc += segs[i] + "/"
		}
	}
	for ; i < len(segs); i++ {
		seg := segs[i]
		if seg == "" {
			continue
		}
		k, v, ok := strings.Cut(seg, "=")
		if !ok || k == "" || strings.Contains(k, "%") {
			return "", nil, fmt.Errorf("s3 prefix %q: segment %q after the first partition is not key=value; Hive partitions need key=value segments", prefix, seg)
		}
		parts = append(parts, partition{key: k, value: v})
	}
	return loc, parts, nil
}
