package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	daemonv1 "github.com/cedana/cedana/gen/cedana/daemon/v1"
)

var known = []string{"process", "runc", "containerd"}

func TestWanted(t *testing.T) {
	tests := []struct {
		tags string
		want []string
	}{
		{"", []string{"containerd", "process", "runc"}},
		{"custom,runtimes", []string{"containerd", "process", "runc"}},
		{"custom", nil},
		{"custom,runtimes.containerd", []string{"containerd"}},
		{"custom,runtimes.runc,runtimes.process", []string{"process", "runc"}},
		{"runtimes.runc", []string{"containerd", "process", "runc"}}, // without custom: everything
	}
	for _, tt := range tests {
		t.Run(tt.tags, func(t *testing.T) {
			assert.Equal(t, tt.want, wanted(tt.tags, known))
		})
	}
}

func TestListedAndCompare(t *testing.T) {
	list := &daemonv1.ListFeaturesResponse{Features: []*daemonv1.FeatureProviders{
		{Name: "dump-cmd", Runtimes: []string{"containerd"}},
		{Name: "dump-middleware", Runtimes: []string{"containerd", "runc"}},
	}}
	got := listed(list)
	assert.Equal(t, []string{"containerd", "runc"}, got)

	err := compare([]string{"containerd"}, got)
	require.Error(t, err, "a runtime the tags did not ask for fails the check")
	assert.Contains(t, err.Error(), "has runtime runc")

	err = compare([]string{"containerd", "process", "runc"}, got)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lacks runtime process")

	assert.NoError(t, compare([]string{"containerd", "runc"}, got))
	assert.NoError(t, compare(nil, nil))
}
