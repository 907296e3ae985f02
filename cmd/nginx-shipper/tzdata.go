package main

// The IANA time zone database is built in, so that an input's timezone
// (error.log times carry no zone) resolves on hosts and images without
// /usr/share/zoneinfo.
import _ "time/tzdata"
