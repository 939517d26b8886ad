package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/archive"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want int64
		err  bool
	}{
		{in: float64(1 << 20), want: 1 << 20},
		{in: "256MiB", want: 256 << 20},
		{in: "1G", want: 1 << 30},
		{in: " 512 mb ", want: 512 << 20},
		{in: "0.5GiB", want: 512 << 20},
		{in: "4096", want: 4096},
		{in: "12 parsecs", err: true},
		{in: "MiB", err: true},
		{in: true, err: true},
	} {
		got, err := parseBytes(tc.in)
		if tc.err {
			assert.Error(t, err, "%v", tc.in)
			continue
		}
		require.NoError(t, err, "%v", tc.in)
		assert.Equal(t, tc.want, got, "%v", tc.in)
	}
}

func TestDistAndGoals(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name     string
		ced, ref []time.Duration
		g        goal
		want     dist
		met      bool
	}{
		{"odd count, ratio met", []time.Duration{3 * ms, 1 * ms, 2 * ms}, []time.Duration{2 * ms}, ratioGoal(1.05), dist{2e6, 1e6, 3e6}, true},
		{"even count, ratio missed", []time.Duration{4 * ms, 1 * ms, 2 * ms, 3 * ms}, []time.Duration{2 * ms}, ratioGoal(1.05), dist{2.5e6, 1e6, 4e6}, false},
		{"plus goal met", []time.Duration{100 * ms}, []time.Duration{85 * ms}, plusGoal(20 * ms), dist{100e6, 100e6, 100e6}, true},
		{"plus goal missed", []time.Duration{150 * ms}, []time.Duration{85 * ms}, plusGoal(20 * ms), dist{150e6, 150e6, 150e6}, false},
		{"absolute goal", []time.Duration{14 * ms, 16 * ms, 15 * ms}, nil, absGoal(15 * ms), dist{15e6, 14e6, 16e6}, true},
		{"no reference, ratio missed", []time.Duration{1 * ms}, nil, ratioGoal(1.10), dist{1e6, 1e6, 1e6}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := distOf(tc.ced)
			assert.Equal(t, tc.want, c)
			assert.Equal(t, tc.met, tc.g.ok(c, distOf(tc.ref)))
		})
	}
	assert.Equal(t, dist{}, distOf([]int64(nil)))
	assert.Equal(t, "2.0 ms [1.0..3.0 ms]", cell(dist{2e6, 1e6, 3e6}, fmtMs))
	assert.Equal(t, "-", cell(dist{}, fmtMs))
}

func TestPaired(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name      string
		ced, ref  []time.Duration
		ratio, to string
	}{
		// The machine halves its speed between iterations: the medians' ratio is 2x, each iteration's 1.1x.
		{"drift", []time.Duration{110 * ms, 220 * ms, 440 * ms}, []time.Duration{100 * ms, 200 * ms, 400 * ms}, "1.10x [1.10..1.10x]", "+20.0 ms [+10.0..+40.0 ms]"},
		{"fewer references", []time.Duration{90 * ms, 300 * ms}, []time.Duration{100 * ms}, "0.90x [0.90..0.90x]", "-10.0 ms [-10.0..-10.0 ms]"},
		{"none", nil, []time.Duration{100 * ms}, "-", "-"},
		{"zero reference", []time.Duration{90 * ms}, []time.Duration{0}, "-", "+90.0 ms [+90.0..+90.0 ms]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.ratio, pairedRatio(tc.ced, tc.ref))
			assert.Equal(t, tc.to, pairedPlus(tc.ced, tc.ref))
		})
	}
}

// TestRestoreBounds: each iteration's bound is the largest of the raw restore, decoding alone and
// their CPU time over the cores; iterations missing a sample have none.
func TestRestoreBounds(t *testing.T) {
	ms := time.Millisecond
	k := newKindSamples("random")
	k.rawRestore = []time.Duration{600 * ms, 600 * ms, 600 * ms, 600 * ms}
	k.rawRestoreCPU = []time.Duration{500 * ms, 500 * ms, 500 * ms, 500 * ms}
	z := k.ced[archive.Zstd]
	z.decodeWall = []time.Duration{300 * ms, 900 * ms, 300 * ms}
	z.decodeCPU = []time.Duration{400 * ms, 1000 * ms, 1500 * ms}
	assert.Equal(t, []time.Duration{
		600 * ms,  // the raw restore: (500+400)/2 = 450 and decoding's 300 are less
		900 * ms,  // decoding alone takes longer than (500+1000)/2 = 750
		1000 * ms, // the CPU time: (500+1500)/2
	}, k.restoreBounds(archive.Zstd, 2))
	assert.Empty(t, k.restoreBounds(archive.LZ4, 2))
}

// TestDumpBounds: each iteration's bound is the larger of the raw dump and the CPU time of the raw
// dump and of compressing over the cores; compressing alone's wall time plays no part.
func TestDumpBounds(t *testing.T) {
	ms := time.Millisecond
	k := newKindSamples("compressible")
	k.rawDump = []time.Duration{700 * ms, 700 * ms}
	k.rawDumpCPU = []time.Duration{600 * ms, 600 * ms}
	k.compressWall[archive.LZ4] = []time.Duration{5000 * ms, 5000 * ms}
	k.compressCPU[archive.LZ4] = []time.Duration{400 * ms, 4000 * ms}
	assert.Equal(t, []time.Duration{
		700 * ms,  // the raw dump: (600+400)/2 is less
		2300 * ms, // the CPU time: (600+4000)/2
	}, k.dumpBounds(archive.LZ4, 2))
	assert.Empty(t, k.dumpBounds(archive.Zstd, 2))
}
