package s3

// crash stops the sink's goroutines the way kill -9 would: nothing more is
// committed, closed, uploaded or deleted, and open files stay as they are.
// Events not yet acknowledged are never acknowledged.
func (s *Sink) crash() {
	s.mu.Lock()
	s.crashed = true
	s.closed = true
	s.broadcast()
	s.mu.Unlock()
	s.closeOnce.Do(func() { close(s.closing) })
	s.upCancel()
	<-s.commitDone
	<-s.upDone
	s.lock.Close() // the kernel releases a killed process's locks
}
