package main

import (
	"time"

	"github.com/nginx-shipper/nginx-shipper/systemd/sdnotify"
)

// watchdogTicker ticks at half the systemd watchdog interval; nil (never)
// outside systemd or without WatchdogSec.
func watchdogTicker() <-chan time.Time {
	iv := sdnotify.WatchdogInterval()
	if iv <= 0 {
		return nil
	}
	return time.NewTicker(iv / 2).C
}
