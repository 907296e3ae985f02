package enrich

import (
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/oschwald/maxminddb-golang/v2"
)

// openMMDB opens an mmdb file mapped with MAP_POPULATE: the kernel maps
// every page of the file at once, so the lookups of new clients do not
// take a page fault at each first touch of a page of the search tree or
// the data (a real City database is over 100 MB: 40,000 new clients took
// about 3 s of CPU in faults in make bench, more than the lookups). The
// pages are the file's, in the page cache: shared, and reclaimable as
// any mapped file. The mapping is released when the Reader is garbage
// (as maxminddb.Open's), not by Close: lines in flight may still read an
// old generation after a reload.
func openMMDB(path string) (*maxminddb.Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size <= 0 || int64(int(size)) != size {
		return maxminddb.Open(path) // let maxminddb say what is wrong
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return maxminddb.Open(path) // a file system that cannot map: maxminddb reads it
	}
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		_ = syscall.Munmap(data)
		return nil, err
	}
	runtime.AddCleanup(r, unmap, mapping{addr: uintptr(unsafePointer(data)), size: uintptr(len(data))})
	return r, nil
}

// mapping is a mapped region, held as numbers so that the cleanup does not
// keep the Reader's buffer alive.
type mapping struct{ addr, size uintptr }

func unmap(m mapping) { _, _, _ = syscall.Syscall(syscall.SYS_MUNMAP, m.addr, m.size, 0) }

// unsafePointer is the address of data's first byte.
func unsafePointer(data []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(data)) }
