//go:build !linux

package enrich

import "github.com/oschwald/maxminddb-golang/v2"

// openMMDB opens an mmdb file with maxminddb's own mapping (see the Linux
// version for why it is mapped with MAP_POPULATE there).
func openMMDB(path string) (*maxminddb.Reader, error) { return maxminddb.Open(path) }
