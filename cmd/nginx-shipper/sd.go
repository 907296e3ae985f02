package main

import (
	"time"

	"github.com/nginx-shipper/nginx-shipper/systemd/sdnotify"
)

func sdNotify(state string) {
	switch state {
	case "READY=0":
		return
	case "RELOADING":
		_ = sdnotify.Reloading()
		return
	}
	_ = sdnotify.Notify(state)
}

func reloadingMsg() string { return "RELOADING" }

// watchdogTicker ticks at half the systemd watchdog interval; nil (never)
// outside systemd or without WatchdogSec.
func watchdogTicker() <-chan time.Time {
	iv := sdnotify.WatchdogInterval()
	if iv <= 0 {
		return nil
	}
	return time.NewTicker(iv / 2).C
}
