// Package agent follows nginx access logs and hands every line, parsed, to
// the sinks; it checkpoints only what every sink acknowledged.
//
// # Design
//
// The agent (the prospector) matches the inputs' globs every scan_interval
// and starts a harvester for each file it is not reading yet. A file is
// identified by device + inode + a fingerprint of its first 1 KiB (see
// registry.go), never by its name: a renamed file is the same file, and an
// inode reused after a delete is not.
//
// A harvester reads its file through the descriptor it opened, with pread at
// explicit offsets, in 256 KiB chunks. Each complete line (ending in '\n')
// becomes an event carrying its byte offset; a partial last line waits for
// its newline. Lines are parsed straight into the arena of a batch
// (sinks.Batch plus its bytes, a "flight") of up to 2048 lines or 1 MiB, so
// the hot path makes no per-line allocation, channel send or syscall.
//
// At the end of the file the harvester hands on its batch and polls, backing
// off from 2 ms to poll_interval. It then checks the file: a size below the
// read position is a truncation (copytruncate: read again from 0 under a new
// checkpoint entry); a path that now names another inode, or none, is a
// rename or delete: the harvester keeps reading the old file through its
// descriptor (nginx writes there until it reopens its logs on USR1) and lets
// it go only when it has read up to the size fstat reports and that size has
// not changed for rotate_wait (time spent blocked on backpressure does not
// count as idle). The new file under the name is found by the next scan,
// which the rotation triggers at once. A file that keeps growing long after
// its rotation (nginx never got USR1) is let go after 10 × rotate_wait, with
// a warning; a live file idle for close_inactive is closed and opened again
// by a scan when it grows.
//
// Copies: a new file whose first KiB matches a known file's fingerprint is a
// copy (logrotate copytruncate) and is read from the original's checkpoint;
// when a harvester sees its file truncated, it looks for that copy in the
// directory and reads from it the lines it had not read yet. A harvester
// held up by the sinks (waiting for room in flight, or handing on what it
// read a batch at a time) does not look at its file; the agent's watcher
// (watchStale) fingerprints, every poll_interval, the file of each
// harvester that has not looked for twice that, through its descriptor,
// and notes every new generation, and at the truncation
// the copies of those are read whole too (the file was truncated more than
// once while the harvester was blocked). Handling a truncation can itself
// block (its flush waits for room in flight): the harvester takes the head
// of the content it found at the truncation first, and if the file no
// longer starts with it when the handling is done, it was truncated again
// meanwhile and that generation's copy is read whole. At start, files are found by
// identity under their new names, and files rotated in while the agent was
// down (named like a live file plus "." or "-", changed since the last
// checkpoint) are read too.
//
// Continuation lines (multiline.go): in a format that has them (error.log),
// a line without a date continues the previous event. The harvester keeps
// an event's lines unconsumed in its buffer until the line after them
// starts an event (or multiline_timeout passed, or multiline_max_bytes
// would be exceeded), then parses them as one line: log_offset is the
// first line's, and a batch's End, hence the checkpoint, covers the lines
// only once their event is in it.
//
// Routing: each file's sinks.Source carries its input's topic and
// s3_prefix; the sinks use them instead of their own topic and prefix.
//
// Container inputs (container = cri | docker | auto): each physical line
// is a runtime record, unwrapped by agent/container before it is parsed;
// partial records are joined and a batch's checkpoint never passes the
// first record of a line still being joined. See agent/container/doc.go
// and container.go.
//
// # Thousands of files
//
// At most max_open_files files are open at once, each with its harvester
// (a goroutine and a descriptor). A file found while every slot is taken
// waits in a queue, oldest first; files found by identity after a rotation
// go before the others, since the next rotation may take them away. While
// files wait, a harvester that is caught up (read to its end, its batch
// handed on) gives its slot up at once, and one that keeps reading yields
// after slotTurn (1s) and queues again behind them: with N files wanting to
// read and M slots, each is read at least once every ceil(N/M) turns. A file
// that gave its slot up is parked (slots.go): the agent keeps where reading
// stopped and the stream of its batches still in flight, so it resumes
// there, not at the checkpoint, when a scan sees it grow; a file closed
// after close_inactive is parked the same way. The scan notices a parked or
// waiting file renamed away (its name now holds another inode, or none) and
// finds it by inode in its directory; one deleted while it was not open
// cannot be read any more, and what it held unread is counted
// (released_unread_bytes_total) and logged. One warning a minute says how
// many files wait and the longest wait; files_waiting and
// file_wait_seconds measure it. A rotated file keeps its slot until it is
// read to its end and idle.
//
// Turns are paced, because each costs the same whatever it carries (an
// open, an fstat, a read, a compare of the head, a close, a batch): with L
// live files (open, waiting, or parked lately) a caught-up file's next turn
// comes after min(L/turnsPerSecond s, slotRevisit): at every scan for a
// few files, every 3 s for 1,000 (333 turns a second). A scan does not
// stat a file resting between its turns (skipLook); what it got meanwhile
// is read at its next one.
// With more live files than slots (Agent.crowded), a reader at its end
// gives its slot up even when no file waits right then: a turn every 3 s
// is cheaper than polling at poll_interval. A slot's turns run on reused
// goroutines (runners.go; a new one grew its stack again each turn), the
// parked file keeps its head bytes, logger and per-file series, and the
// reader uses pread directly (a short read is the end of the file: no
// second read to be told so, no fstat right after it).
//
// Memory does not grow with the open files: reading needs a read buffer,
// and only readersMax (4) exist; a harvester takes one when the file has
// grown and gives it back at the end of the file (a partial line is read
// again next time). Only a holder builds a batch, and batches start small
// (a flight grows with its lines; grown ones are kept for reuse). Each
// flight in flight is charged the memory it holds (the capacity of its
// arena, events and spans, not what its batch uses: a few lines in a
// flight grown by an earlier batch hold all of it) plus flightOverhead,
// which bounds their number when batches are small.
//
// A scan costs a stat per matched file (syscall.Stat, no allocation) and a
// listing of each pattern's directory only when the directory may have
// changed since the last one (glob.go); 10,000 idle files cost about 3.3 %
// of a core. The checkpoint file is encoded by hand, one entry a line, and
// written in pieces of 64 KiB (10,000 entries: 2.4 MB, 5.5 ms of CPU a
// write). What a file costs while it is known is small: its entry (and an
// index of full fingerprints, for copies), its place on the shelf, its
// head as a hash, its loggers only once it logs. Per-file series are
// removed when no harvester has the path open and no parked file is kept
// under it. At start, checkpoints still under their names take one lstat;
// each directory is listed once for the others (resumeRotated).
//
// # Parallel parsing
//
// Parsing and encoding cost about 1.1 µs of CPU a line, the sinks' produce
// path more; one goroutine per file leaves the other cores idle while a
// file is behind (a restart, an outage, a burst). So the agent has parse
// workers (parallel.go): GOMAXPROCS-1 goroutines (at most 7), started by
// Run, none on one core. A harvester whose read filled its buffer (the
// file is behind) hands its complete lines on in jobs instead of parsing
// them itself: it
// copies them (cut at a line's end: up to batchMaxEvents lines, about one
// batch's bytes) into a job and queues the job; whoever takes it first
// parses it into its own flights: a worker, or the harvester itself while
// it waits for an older job of its file (it parses too, so one file keeps
// every core busy). The harvester alone hands the jobs' batches to the
// sinks, oldest job first, so they enter the file's stream, and so its
// checkpoint, in file order, as if it had parsed them itself.
//
// Only the plain case goes to the workers: no continuation lines
// (multiline.go), no container records, no too-long line being skipped;
// those, and any read that did not fill the buffer (a file that is caught
// up: a trickle), are parsed by the harvester as before, at no extra cost
// (no goroutine hop, channel send or timer). Before anything else is sent
// or decided (flush: the end of the file, a park, a truncation, a
// rotation, a full batch of its own) the harvester drains: it hands on
// every pending job's batches first. A job holds a copy of its lines, so
// the read buffer is reused or given back at once.
//
// Memory: at most workers+1 jobs exist in the agent (a job's lines are
// about one batch: 0.4-0.6 MiB of the 15-variable format, 1.7 MiB once
// parsed, with its events);
// a harvester that finds none free waits for its own oldest one, or parses
// inline when it has none. Like the batch a harvester builds, a job's
// batches enter the in-flight budget when they are sent: send waits for
// room there, as before. Charging them when queued was measured: with
// Kafka, throughput follows the bytes in flight, and the jobs' share of
// the budget cost about 20 % of it (290 k against 351 k lines/s).
//
// # Acknowledgement and checkpoints
//
// Every batch goes to every enabled sink (sinks.Sink.Send). Each sink calls
// Done exactly once per event; the batch counts down (one atomic add) and,
// at zero, completes. Each reading of a file is a stream: an ordered queue of
// its batches. When a batch completes, the stream advances the file's
// checkpoint entry to the end of the longest run of completed batches at the
// head of the queue: the highest contiguous offset acknowledged by every
// sink. A batch that a sink failed for good (the sinks retry what can be
// retried; what they fail is for good) is appended, fsynced, to
// data_dir/dead-letter/YYYY-MM-DD.jsonl by a goroutine of its own (never in
// the sink's callback) and then counts as completed: the checkpoint moves
// on, and the error log names the file, the sink and the cause. Only when
// that write fails too, or the sinks were closed under the batch (shutdown),
// does the stream's checkpoint stop there: its lines are read again after a
// restart, never skipped. A stopped ("blocked") stream stays visible.
//
// # What is visible (health.go)
//
// A stream with batches pending, or blocked, is in the agent's set of live
// streams; per-file series (nginx_shipper_file_unacked_bytes,
// _file_ack_wait_seconds, _file_blocked), Files() and /readyz are read from
// that set at scrape time, so the reader's path pays nothing for them. The
// per-path counters of the readers are deleted when the last reader of the
// path ends and the path keeps no parked file. Per-sink acknowledged and failed counts are the sinks' own
// (sinks.Counts). The main loop's heartbeat (Heartbeat) feeds the systemd
// watchdog: it goes round every scan_interval and checkpoint_interval
// whatever the sinks do.
//
// An error that is both logged and counted (a checkpoint not written,
// events dead-lettered, bytes lost while a file waited for a slot) is
// logged first: whoever sees the counter move, an alert or a test, finds
// the line.
//
// The checkpoint file (data_dir/checkpoints.json) is written every
// checkpoint_interval and at shutdown: temp file, fsync, rename, fsync of
// the directory. A corrupt file is moved aside, never trusted.
//
// # Backpressure
//
// The bytes of batches sent and not yet completed are bounded by
// max_in_flight_bytes: a harvester waits for room before it sends. A slow or
// absent sink therefore stops reading; memory stays flat. Sinks add their
// own bound (franz-go's buffer, the S3 spool's size limit) by blocking Send.
//
// # Shutdown
//
// Run returns after ctx is done and every harvester stopped (the batch being
// built is handed on). The caller then closes the sinks, which flush or
// fail what they hold, and calls Close for the final checkpoint.
package agent
