package store

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned, wrapped, by Open when another process has the database open: two
// daemons must not share one state database.
var ErrLocked = errors.New("state database locked by another process")

// lockSuffix names the lock file beside a database: <db>.lock.
const lockSuffix = ".lock"

// dbLock is the exclusive advisory lock (flock) on <db>.lock that an open Store holds, so
// that no second daemon opens the same database. The kernel releases it when the process
// exits, however it exits, so a lock file left by a daemon that crashed blocks nobody. The file
// holds the PID of the holder, for the error of the process it keeps out.
type dbLock struct{ f *os.File }

// lockDB takes the lock of the database at path without waiting, or fails with an error
// wrapping ErrLocked that names the holder.
func lockDB(path string) (*dbLock, error) {
	lockPath := path + lockSuffix
	// O_CLOEXEC (always set by os.OpenFile): processes the daemon starts must not inherit the
	// lock and keep it after the daemon is gone.
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state database %s: cannot open its lock file: %w; set db.path (CEDANA_DB_PATH) to a writable location", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &lockedError{path: path, holder: holder}
		}
		return nil, fmt.Errorf("state database %s: cannot lock %s: %w", path, lockPath, err)
	}
	// Record the holder. The lock, not the content, is what keeps others out: a failure here
	// only makes their error less precise.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dbLock{f: f}, nil
}

// release empties the lock file and releases the lock.
func (l *dbLock) release() {
	_ = l.f.Truncate(0)
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
}

// readHolder is the PID recorded in a lock file, or 0.
func readHolder(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// lockedError says which process holds the database.
type lockedError struct {
	path   string
	holder int // 0: unknown
}

func (e *lockedError) Error() string {
	who := "another cedana daemon"
	if e.holder > 0 {
		who = fmt.Sprintf("another cedana daemon (pid %d)", e.holder)
	}
	return fmt.Sprintf("state database %s is in use by %s: stop that daemon, or give this one its own database with db.path (CEDANA_DB_PATH)",
		e.path, who)
}

func (e *lockedError) Unwrap() error { return ErrLocked }
