package explore

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPrint(t *testing.T) {
	for _, tc := range []struct {
		kind, json, want string
	}{
		{
			"ps", `{"pid":10,"pgid":10,"sid":10,"comm":"bash","children":[{"pid":12,"pgid":10,"sid":10,"comm":"sleep"},{"pid":11,"pgid":10,"sid":10,"comm":"cat"}]}`,
			"PID   PGID  SID  COMM\n10    10    10   bash\n  11  10    10   cat\n  12  10    10   sleep\n",
		},
		{
			"fd", `[{"pid":10,"files":[{"fd":"0","type":"REG","path":"/dev/null"},{"fd":"cwd","path":"/"}]}]`,
			"PID  FD   TYPE  PATH\n10   0    REG   /dev/null\n10   cwd  -     /\n",
		},
		{
			"mem", `[{"pid":10,"exe":"/bin/bash","mems":[{"start":"1000","end":"2000","protection":"r-x","resource":"/bin/bash + 0x1"}]}]`,
			"PID  START  END   PROT  RESOURCE\n10   -      -     -     exe /bin/bash\n10   1000   2000  r-x   /bin/bash + 0x1\n",
		},
		{
			"rss", `[{"pid":10,"rss":[{"phy_addr":"1000","phy_pages":2,"vmas":[{"addr":"1000","pages":4}]}]}]`,
			"PID  ADDR  PAGES  VMAS    RESOURCE\n10   1000  2      1000/4  -\n",
		},
		{
			"sk", `[{"pid":10,"sockets":[{"fd":3,"fd_type":"INETSK","family":"IPV4","protocol":"TCP","type":"STREAM","state":"LISTEN","src_addr":"0.0.0.0","src_port":80}]}]`,
			"PID  FD  KIND    FAMILY  PROTO  TYPE    STATE   SOURCE      DESTINATION\n10   3   INETSK  IPV4    TCP    STREAM  LISTEN  0.0.0.0:80  -\n",
		},
		{"sk", `[]`, "PID  FD  KIND  FAMILY  PROTO  TYPE  STATE  SOURCE  DESTINATION\n"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, Print(&out, tc.kind, []byte(tc.json)))
			assert.Equal(t, tc.want, out.String())
		})
	}
}

func TestCheckKind(t *testing.T) {
	for _, k := range Kinds {
		assert.NoError(t, CheckKind(k))
	}
	assert.ErrorContains(t, CheckKind("gpu"), `cannot inspect "gpu": choose one of ps, fd, mem, rss, sk`)
	assert.ErrorContains(t, Print(&bytes.Buffer{}, "gpu", nil), "choose one of")
}

func TestDirNotACheckpoint(t *testing.T) {
	_, err := Dir(t.TempDir(), "fd")
	assert.ErrorContains(t, err, "no CRIU image pstree.img")
}

func TestBound(t *testing.T) {
	long := make([]int, MaxEntries+1)
	assert.True(t, bound(&long))
	assert.Len(t, long, MaxEntries)
	assert.False(t, bound(&long))
}
