package state

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// releaseMappings unmaps every mapping of the file at path in this process.
// It is called only after bbolt panicked inside Open: the *bolt.DB is then
// lost, and its mmap would keep the file's flock (a lock belongs to the open
// file, which a mapping holds) so that no later Open in this process could
// take it.
func releaseMappings(path string) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	type span struct{ start, end uintptr }
	var spans []span
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || strings.Join(fields[5:], " ") != abs {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && e > s {
			spans = append(spans, span{uintptr(s), uintptr(e)})
		}
	}
	_ = f.Close()
	for _, s := range spans {
		_, _, _ = syscall.Syscall(syscall.SYS_MUNMAP, s.start, s.end-s.start, 0)
	}
}
