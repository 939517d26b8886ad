package store

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testPath is a database path under a directory that does not exist yet.
func testPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "state", "nested", "cedana.db")
}

// openTest opens a store at path, closing it when the test ends.
func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

// at is a fixed time plus d.
func at(d time.Duration) time.Time {
	return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(d)
}

func TestMigrationsEmbedded(t *testing.T) {
	require.NotEmpty(t, migrations)
	for i, m := range migrations {
		assert.NotEmpty(t, m, "migration %d", i+1)
	}
}

func TestOpenMigratesFromEmpty(t *testing.T) {
	ctx := t.Context()
	path := testPath(t)
	s := openTest(t, path)

	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, len(migrations), v)

	var n int
	require.NoError(t, s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n))
	assert.Equal(t, len(migrations), n)

	for _, table := range []string{"jobs", "checkpoints"} {
		var name string
		err := s.db.QueryRowContext(ctx,
			"SELECT name FROM sqlite_schema WHERE type = 'table' AND name = ?", table).Scan(&name)
		assert.NoError(t, err, table)
	}

	var mode string
	require.NoError(t, s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
	assert.Equal(t, "wal", mode)
	var fk, busy int
	require.NoError(t, s.db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk))
	assert.Equal(t, 1, fk)
	require.NoError(t, s.db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy))
	assert.Equal(t, 5000, busy)

	dir, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm())
	file, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), file.Mode().Perm())
	assert.Equal(t, path, s.Path())
}

func TestOpenBadPath(t *testing.T) {
	for _, path := range []string{"", "/tmp/what?.db"} {
		_, err := Open(t.Context(), path)
		assert.Error(t, err, path)
	}
}

func TestReopenIsIdempotent(t *testing.T) {
	ctx := t.Context()
	path := testPath(t)

	appliedAt := func(s *Store) []string {
		rows, err := s.db.QueryContext(ctx, "SELECT version || ' ' || applied_at FROM schema_migrations ORDER BY version")
		require.NoError(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var v string
			require.NoError(t, rows.Scan(&v))
			out = append(out, v)
		}
		require.NoError(t, rows.Err())
		return out
	}

	s, err := Open(ctx, path)
	require.NoError(t, err)
	first := appliedAt(s)
	require.Len(t, first, len(migrations))
	require.NoError(t, s.Close())

	for range 3 {
		s, err := Open(ctx, path)
		require.NoError(t, err)
		v, err := s.SchemaVersion(ctx)
		require.NoError(t, err)
		assert.Equal(t, len(migrations), v)
		assert.Equal(t, first, appliedAt(s))
		require.NoError(t, s.Close())
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	ctx := t.Context()
	path := testPath(t)
	s, err := Open(ctx, path)
	require.NoError(t, err)
	newer := len(migrations) + 1
	_, err = s.db.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
		newer, formatTime(time.Now()))
	require.NoError(t, err)
	require.NoError(t, s.Close())

	_, err = Open(ctx, path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf(
		"database schema version %d is newer than this cedana supports (%d): upgrade cedana",
		newer, len(migrations)))
	assert.Contains(t, err.Error(), path)
}

func TestMigrateOlderSchema(t *testing.T) {
	// A database made by a binary that knew fewer migrations is brought up
	// to date; simulate it by applying only the first one.
	ctx := t.Context()
	path := testPath(t)
	all := migrations
	migrations = all[:1]
	s, err := Open(ctx, path)
	migrations = all
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = openTest(t, path)
	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, len(migrations), v)
}

func TestJobCRUD(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))

	j := Job{
		JID:       "brave-otter-3f2a",
		Type:      "process",
		PID:       1234,
		Status:    JobRunning,
		Log:       "/var/log/cedana/brave-otter-3f2a.log",
		Details:   []byte(`{"process":{"pid":1234}}`),
		StartTime: 987654321,
		CreatedAt: at(0),
	}
	require.NoError(t, s.CreateJob(ctx, j))

	got, err := s.GetJob(ctx, j.JID)
	require.NoError(t, err)
	want := j
	want.UpdatedAt = j.CreatedAt
	assert.Equal(t, want, got)
	assert.Nil(t, got.ExitCode)

	// A zero CreatedAt means now.
	before := time.Now()
	require.NoError(t, s.CreateJob(ctx, Job{JID: "second", Type: "process", Status: JobHalted, ExitCode: ptr(0)}))
	second, err := s.GetJob(ctx, "second")
	require.NoError(t, err)
	assert.WithinDuration(t, before, second.CreatedAt, time.Minute)
	assert.Equal(t, second.CreatedAt, second.UpdatedAt)
	require.NotNil(t, second.ExitCode)
	assert.Equal(t, 0, *second.ExitCode)
	assert.Nil(t, second.Details)

	require.NoError(t, s.CreateJob(ctx, Job{JID: "first", Type: "process", Status: JobUnknown, CreatedAt: at(-time.Hour)}))
	jobs, err := s.ListJobs(ctx)
	require.NoError(t, err)
	var jids []string
	for _, j := range jobs {
		jids = append(jids, j.JID)
	}
	assert.Equal(t, []string{"first", "brave-otter-3f2a", "second"}, jids)

	updated, err := s.UpdateJob(ctx, j.JID, func(j *Job) error {
		j.Status = JobHalted
		j.ExitCode = ptr(137)
		j.PID = 0
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, JobHalted, updated.Status)
	assert.True(t, updated.UpdatedAt.After(j.CreatedAt))
	got, err = s.GetJob(ctx, j.JID)
	require.NoError(t, err)
	assert.Equal(t, updated, got)
	require.NotNil(t, got.ExitCode)
	assert.Equal(t, 137, *got.ExitCode)
	assert.Equal(t, j.CreatedAt, got.CreatedAt)
	assert.Equal(t, j.Details, got.Details)

	require.NoError(t, s.DeleteJob(ctx, j.JID))
	_, err = s.GetJob(ctx, j.JID)
	assert.ErrorIs(t, err, errdefs.ErrNotFound)
	jobs, err = s.ListJobs(ctx)
	require.NoError(t, err)
	assert.Len(t, jobs, 2)
}

func TestCreateJobErrors(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "taken", Type: "process", Status: JobRunning}))

	tests := []struct {
		name  string
		job   Job
		errIs error
	}{
		{"duplicate JID", Job{JID: "taken", Type: "process", Status: JobRunning}, errdefs.ErrAlreadyExists},
		{"empty JID", Job{Type: "process", Status: JobRunning}, nil},
		{"empty status", Job{JID: "x", Type: "process"}, nil},
		{"bad status", Job{JID: "x", Type: "process", Status: "dumped"}, nil},
		{"start time out of range", Job{JID: "x", Status: JobRunning, StartTime: 1 << 63}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.CreateJob(ctx, tt.job)
			require.Error(t, err)
			if tt.errIs != nil {
				assert.ErrorIs(t, err, tt.errIs)
			}
		})
	}
	jobs, err := s.ListJobs(ctx)
	require.NoError(t, err)
	assert.Len(t, jobs, 1)
}

func TestNotFound(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "bare", Type: "process", Status: JobRunning}))

	tests := []struct {
		name string
		call func() error
	}{
		{"GetJob", func() error { _, err := s.GetJob(ctx, "nope"); return err }},
		{"UpdateJob", func() error {
			_, err := s.UpdateJob(ctx, "nope", func(*Job) error { return nil })
			return err
		}},
		{"DeleteJob", func() error { return s.DeleteJob(ctx, "nope") }},
		{"GetCheckpoint", func() error { _, err := s.GetCheckpoint(ctx, "ck-nope"); return err }},
		{"DeleteCheckpoint", func() error { return s.DeleteCheckpoint(ctx, "ck-nope") }},
		{"AddCheckpoint unknown job", func() error {
			return s.AddCheckpoint(ctx, Checkpoint{ID: "ck-1", JID: "nope", Path: "/ck/1", Type: "process"})
		}},
		{"ListCheckpoints unknown job", func() error { _, err := s.ListCheckpoints(ctx, "nope"); return err }},
		{"LatestCheckpoint unknown job", func() error { _, err := s.LatestCheckpoint(ctx, "nope"); return err }},
		{"LatestCheckpoint job without checkpoints", func() error { _, err := s.LatestCheckpoint(ctx, "bare"); return err }},
		{"LatestCheckpoint none at all", func() error { _, err := s.LatestCheckpoint(ctx, ""); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			assert.ErrorIs(t, err, errdefs.ErrNotFound)
			t.Log(err)
		})
	}

	// A job without checkpoints lists none, without error.
	cs, err := s.ListCheckpoints(ctx, "bare")
	require.NoError(t, err)
	assert.Empty(t, cs)
}

func TestCheckpointCRUD(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "a", Type: "process", Status: JobRunning}))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "b", Type: "process", Status: JobRunning}))

	c := Checkpoint{
		ID:        "ck-0123456789",
		JID:       "a",
		Path:      "/var/lib/cedana/checkpoints/ck-0123456789",
		Type:      "process",
		Size:      5 << 30,
		CreatedAt: at(0),
		Metadata:  []byte(`{"name":"ck-0123456789","pid":1234}`),
	}
	require.NoError(t, s.AddCheckpoint(ctx, c))
	got, err := s.GetCheckpoint(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, c, got)

	err = s.AddCheckpoint(ctx, Checkpoint{ID: c.ID, Path: "/elsewhere"})
	assert.ErrorIs(t, err, errdefs.ErrAlreadyExists)
	assert.Error(t, s.AddCheckpoint(ctx, Checkpoint{Path: "/no/id"}))
	assert.Error(t, s.AddCheckpoint(ctx, Checkpoint{ID: "ck-nopath"}))

	// A checkpoint of a bare PID, with no metadata and a default time.
	bare := Checkpoint{ID: "ck-bare", Path: "/ck/bare", Type: "process"}
	require.NoError(t, s.AddCheckpoint(ctx, bare))
	gotBare, err := s.GetCheckpoint(ctx, bare.ID)
	require.NoError(t, err)
	assert.Equal(t, "", gotBare.JID)
	assert.Nil(t, gotBare.Metadata)
	assert.WithinDuration(t, time.Now(), gotBare.CreatedAt, time.Minute)

	require.NoError(t, s.DeleteCheckpoint(ctx, c.ID))
	_, err = s.GetCheckpoint(ctx, c.ID)
	assert.ErrorIs(t, err, errdefs.ErrNotFound)
	assert.ErrorIs(t, s.DeleteCheckpoint(ctx, c.ID), errdefs.ErrNotFound)
}

func TestListCheckpoints(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "a", Type: "process", Status: JobRunning}))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "b", Type: "process", Status: JobRunning}))

	// Added out of order; times include a whole second, which RFC3339Nano
	// would write without a fraction and so sort after its neighbours.
	for _, c := range []Checkpoint{
		{ID: "a2", JID: "a", CreatedAt: at(2 * time.Second)},
		{ID: "a1", JID: "a", CreatedAt: at(500 * time.Millisecond)},
		{ID: "b1", JID: "b", CreatedAt: at(1 * time.Second)},
		{ID: "p1", CreatedAt: at(1500 * time.Millisecond)},
		{ID: "a3", JID: "a", CreatedAt: at(2*time.Second + time.Nanosecond)},
		{ID: "a0", JID: "a", CreatedAt: at(0)},
	} {
		c.Path = "/ck/" + c.ID
		c.Type = "process"
		require.NoError(t, s.AddCheckpoint(ctx, c))
	}

	ids := func(cs []Checkpoint) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	tests := []struct {
		jid    string
		want   []string
		latest string
	}{
		{"", []string{"a3", "a2", "p1", "b1", "a1", "a0"}, "a3"},
		{"a", []string{"a3", "a2", "a1", "a0"}, "a3"},
		{"b", []string{"b1"}, "b1"},
	}
	for _, tt := range tests {
		t.Run("jid="+tt.jid, func(t *testing.T) {
			cs, err := s.ListCheckpoints(ctx, tt.jid)
			require.NoError(t, err)
			assert.Equal(t, tt.want, ids(cs))
			latest, err := s.LatestCheckpoint(ctx, tt.jid)
			require.NoError(t, err)
			assert.Equal(t, tt.latest, latest.ID)
		})
	}

	// Equal times: the one added last counts as newest.
	require.NoError(t, s.AddCheckpoint(ctx, Checkpoint{ID: "b2", JID: "b", Path: "/ck/b2", CreatedAt: at(time.Second)}))
	latest, err := s.LatestCheckpoint(ctx, "b")
	require.NoError(t, err)
	assert.Equal(t, "b2", latest.ID)
}

func TestDeleteJobCascades(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "doomed", Type: "process", Status: JobRunning}))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "kept", Type: "process", Status: JobRunning}))
	for _, c := range []Checkpoint{
		{ID: "ck-d1", JID: "doomed"},
		{ID: "ck-d2", JID: "doomed"},
		{ID: "ck-k1", JID: "kept"},
		{ID: "ck-p1"},
	} {
		c.Path = "/ck/" + c.ID
		require.NoError(t, s.AddCheckpoint(ctx, c))
	}

	require.NoError(t, s.DeleteJob(ctx, "doomed"))
	for _, id := range []string{"ck-d1", "ck-d2"} {
		_, err := s.GetCheckpoint(ctx, id)
		assert.ErrorIs(t, err, errdefs.ErrNotFound, id)
	}
	cs, err := s.ListCheckpoints(ctx, "")
	require.NoError(t, err)
	require.Len(t, cs, 2)
	got := []string{cs[0].ID, cs[1].ID}
	slices.Sort(got)
	assert.Equal(t, []string{"ck-k1", "ck-p1"}, got)
	assert.ErrorIs(t, s.DeleteJob(ctx, "doomed"), errdefs.ErrNotFound)
}

func TestUpdateJob(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	orig := Job{JID: "j", Type: "process", PID: 7, Status: JobRunning, CreatedAt: at(0)}
	require.NoError(t, s.CreateJob(ctx, orig))

	t.Run("fn error rolls back", func(t *testing.T) {
		boom := fmt.Errorf("boom")
		_, err := s.UpdateJob(ctx, "j", func(j *Job) error {
			j.PID = 99
			return boom
		})
		assert.ErrorIs(t, err, boom)
		got, err := s.GetJob(ctx, "j")
		require.NoError(t, err)
		assert.Equal(t, 7, got.PID)
	})
	t.Run("JID and CreatedAt are immutable", func(t *testing.T) {
		got, err := s.UpdateJob(ctx, "j", func(j *Job) error {
			j.JID = "other"
			j.CreatedAt = at(time.Hour)
			j.Log = "/log"
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, "j", got.JID)
		assert.Equal(t, orig.CreatedAt, got.CreatedAt)
		_, err = s.GetJob(ctx, "other")
		assert.ErrorIs(t, err, errdefs.ErrNotFound)
		stored, err := s.GetJob(ctx, "j")
		require.NoError(t, err)
		assert.Equal(t, "/log", stored.Log)
	})
	t.Run("invalid status is refused", func(t *testing.T) {
		_, err := s.UpdateJob(ctx, "j", func(j *Job) error {
			j.Status = "bogus"
			return nil
		})
		assert.Error(t, err)
		got, err := s.GetJob(ctx, "j")
		require.NoError(t, err)
		assert.Equal(t, JobRunning, got.Status)
	})
}

func TestUpdateJobConcurrent(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "counter", Type: "process", Status: JobRunning}))

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := s.UpdateJob(ctx, "counter", func(j *Job) error {
				j.PID++
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	got, err := s.GetJob(ctx, "counter")
	require.NoError(t, err)
	assert.Equal(t, n, got.PID)
}

func TestWriteHonoursContext(t *testing.T) {
	s := openTest(t, testPath(t))
	require.NoError(t, s.CreateJob(t.Context(), Job{JID: "j", Status: JobRunning}))

	entered := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.UpdateJob(t.Context(), "j", func(*Job) error {
			close(entered)
			<-release
			return nil
		})
		done <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := s.CreateJob(ctx, Job{JID: "k", Status: JobRunning})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	close(release)
	require.NoError(t, <-done)
}

func TestPersistsAcrossReopen(t *testing.T) {
	ctx := t.Context()
	path := testPath(t)

	job := Job{
		JID: NewJID(), Type: "process", PID: 42, Status: JobHalted, ExitCode: ptr(3),
		Log: "/log", Details: []byte(`{"k":"v"}`), StartTime: 1 << 40, CreatedAt: at(0), UpdatedAt: at(time.Minute),
	}
	ck := Checkpoint{
		ID: NewCheckpointID(), JID: job.JID, Path: "/ck", Type: "process", Size: 1 << 20,
		CreatedAt: at(30 * time.Second), Metadata: []byte(`{"pid":42}`),
	}

	s, err := Open(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.CreateJob(ctx, job))
	require.NoError(t, s.AddCheckpoint(ctx, ck))
	require.NoError(t, s.Close())

	s = openTest(t, path)
	gotJob, err := s.GetJob(ctx, job.JID)
	require.NoError(t, err)
	assert.Equal(t, job, gotJob)
	gotCk, err := s.LatestCheckpoint(ctx, job.JID)
	require.NoError(t, err)
	assert.Equal(t, ck, gotCk)
}

func TestTimesAreUTCText(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testPath(t))
	local := time.Date(2026, 3, 1, 13, 0, 0, 5, time.FixedZone("CET", 3600))
	require.NoError(t, s.CreateJob(ctx, Job{JID: "j", Status: JobRunning, CreatedAt: local}))

	var raw string
	require.NoError(t, s.db.QueryRowContext(ctx, "SELECT created_at FROM jobs WHERE jid = 'j'").Scan(&raw))
	assert.Equal(t, "2026-03-01T12:00:00.000000005Z", raw)
	parsed, err := time.Parse(time.RFC3339Nano, raw)
	require.NoError(t, err)
	assert.True(t, parsed.Equal(local))

	got, err := s.GetJob(ctx, "j")
	require.NoError(t, err)
	assert.True(t, got.CreatedAt.Equal(local))
	assert.Equal(t, time.UTC, got.CreatedAt.Location())
}

func TestNewJID(t *testing.T) {
	re := regexp.MustCompile(`^([a-z]+)-([a-z]+)-[0-9a-f]{4}$`)
	seen := make(map[string]bool)
	for range 1000 {
		jid := NewJID()
		m := re.FindStringSubmatch(jid)
		require.NotNil(t, m, jid)
		assert.Contains(t, adjectives, m[1])
		assert.Contains(t, animals, m[2])
		// 2^30 JIDs: a repeat within 1000 draws has odds of about 1 in 2000.
		assert.False(t, seen[jid], "repeated JID %s", jid)
		seen[jid] = true
	}
}

func TestWordLists(t *testing.T) {
	word := regexp.MustCompile(`^[a-z]{2,7}$`)
	for name, words := range map[string][]string{"adjectives": adjectives, "animals": animals} {
		assert.Len(t, words, 128, name)
		seen := make(map[string]bool)
		for _, w := range words {
			assert.Regexp(t, word, w, name)
			assert.False(t, seen[w], "%s: duplicate %q", name, w)
			seen[w] = true
		}
	}
}

func TestNewCheckpointID(t *testing.T) {
	re := regexp.MustCompile(`^ck-[0-9a-f]{10}$`)
	seen := make(map[string]bool)
	for range 1000 {
		id := NewCheckpointID()
		require.Regexp(t, re, id)
		assert.False(t, seen[id], "repeated ID %s", id)
		seen[id] = true
	}
}

// TestBuildsWithoutCgo checks that the package, driver included, is pure Go,
// so that cedana stays a static binary.
func TestBuildsWithoutCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	cmd := exec.CommandContext(t.Context(), gobin, "build", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "CGO_ENABLED=0 go build: %s", out)
}
